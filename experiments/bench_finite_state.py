"""Benchmark of the finite-state DP engine (issue 3, item 7: ``T = 10^5, S = 32, V = 8``).

Times :func:`trm_bounds.finite_state.dp_exact` and
:func:`trm_bounds.finite_state.exact_report` (which adds the bounds and the certified
``D_TV^seq``) on a random instance with policies that vary with ``t`` (the general path),
and on a time-homogeneous instance (one transition matrix, the fast path).  Instance
generation is timed separately and not included.  The machine's load average is recorded
beside the timings, because shared machines distort them.

Writes ``experiments/results/bench_finite_state.json``::

    {"cases": [{"name", "T", "S", "V", "time_homogeneous", "generate_s",
                "dp_exact_s": [per repeat], "exact_report_s": [per repeat] (wall clock),
                "dp_exact_cpu_s", "exact_report_cpu_s": [per repeat] (process CPU time),
                "best_dp_exact_s", "best_exact_report_s", "error", "D_TV_seq_method"}],
     "loadavg_before", "loadavg_after", "cpu_count", "numpy"}
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from trm_bounds.finite_state import FiniteStateInstance, dp_exact, exact_report
from trm_bounds.results import write_results

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_finite_state.json"


def random_instance(T: int, S: int, V: int, seed: int, homogeneous: bool) -> FiniteStateInstance:
    """Random machine and policies; ``pi_theta`` a small tilt of ``pi_roll`` (full support)."""
    rng = np.random.default_rng(seed)
    f = rng.integers(0, S, size=(S, V))
    n = 1 if homogeneous else T
    pr = rng.random((n, S, V)) + 0.1
    pr /= pr.sum(-1, keepdims=True)
    pt = pr * np.exp(0.05 * rng.standard_normal((n, S, V)))
    pt /= pt.sum(-1, keepdims=True)
    if homogeneous:
        pr, pt = np.broadcast_to(pr, (T, S, V)), np.broadcast_to(pt, (T, S, V))
    return FiniteStateInstance(np.eye(S)[0], f, pr, pt, rng.random(S), name="bench")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="3 repeats instead of 1")
    parser.add_argument("--T", type=int, default=100_000, help="horizon")
    parser.add_argument("--S", type=int, default=32, help="states")
    parser.add_argument("--V", type=int, default=8, help="vocabulary")
    ns = parser.parse_args(argv)
    if min(ns.T, ns.S, ns.V) < 1:
        parser.error("--T, --S, --V must be positive")
    repeats = 3 if ns.full else 1
    load_before = os.getloadavg()
    cases = []
    for homogeneous in (False, True):
        t0 = time.perf_counter()
        inst = random_instance(ns.T, ns.S, ns.V, ns.seed, homogeneous)
        gen = time.perf_counter() - t0
        t_dp, t_rep, c_dp, c_rep = [], [], [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            dp_exact(inst)
            t_dp.append(time.perf_counter() - t0)
            c_dp.append(time.process_time() - c0)
            t0, c0 = time.perf_counter(), time.process_time()
            rep = exact_report(inst)
            t_rep.append(time.perf_counter() - t0)
            c_rep.append(time.process_time() - c0)
        cases.append(
            {
                "name": "homogeneous" if homogeneous else "time_varying",
                "T": ns.T,
                "S": ns.S,
                "V": ns.V,
                "time_homogeneous": homogeneous,
                "generate_s": gen,
                "dp_exact_s": t_dp,
                "exact_report_s": t_rep,
                "best_dp_exact_s": min(t_dp),
                "best_exact_report_s": min(t_rep),
                "dp_exact_cpu_s": c_dp,
                "exact_report_cpu_s": c_rep,
                "error": rep["error"],
                "D_TV_seq_method": rep["D_TV_seq_method"],
            }
        )
        print(
            f"{cases[-1]['name']:13s} T={ns.T} S={ns.S} V={ns.V}: dp_exact {min(t_dp):.2f} s, "
            f"exact_report {min(t_rep):.2f} s wall, {min(c_rep):.2f} s CPU "
            f"(load {os.getloadavg()[0]:.1f})"
        )
    data = {
        "cases": cases,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }
    write_results(ns.out, data, experiment="bench_finite_state", args=vars(ns), seed=ns.seed)
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
