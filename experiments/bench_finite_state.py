"""Benchmark of the finite-state DP engine (``T = 10^5, S = 32, V = 8``).

Times :func:`trm_bounds.engines.dp.dp_exact` and
:func:`trm_bounds.engines.dp.exact_report` (which adds the bounds and the certified
``D_TV^seq``) on a random instance with policies that vary with ``t`` (the general path),
and on a time-homogeneous instance (one step's values reused).  Drawing the random policies
and validating them (``FiniteStateInstance`` construction) are timed separately and not
included.  Each timing is repeated; process CPU time and wall time are both recorded, with
the load average beside them, because shared machines distort them (the medians are the
figures to quote).

Writes ``experiments/results/bench_finite_state.json``::

    {"cases": [{"name", "T", "S", "V", "time_homogeneous", "generate_s", "validate_s",
                "dp_exact_s", "exact_report_s": [per repeat] (wall clock),
                "dp_exact_cpu_s", "exact_report_cpu_s": [per repeat] (process CPU time),
                "loadavg_1min": [per repeat], "median_dp_exact_s", "median_exact_report_s",
                "median_dp_exact_cpu_s", "median_exact_report_cpu_s", "best_dp_exact_s",
                "best_exact_report_s", "error", "D_TV_seq_method"}],
     "loadavg_before", "loadavg_after", "cpu_count", "numpy", "scipy"}
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from tqdm import tqdm

from trm_bounds.engines.dp import dp_exact, exact_report
from trm_bounds.instances.finite import FiniteStateInstance
from trm_bounds.results import write_results

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_finite_state.json"


def random_instance(T: int, S: int, V: int, seed: int, homogeneous: bool) -> FiniteStateInstance:
    """Random machine and policies; ``pi_theta`` a small tilt of ``pi_roll`` (full support)."""
    return FiniteStateInstance(*random_arrays(T, S, V, seed, homogeneous), name="bench")


def random_arrays(T: int, S: int, V: int, seed: int, homogeneous: bool) -> tuple:
    """``(p0, f, pi_roll, pi_theta, reward)`` of :func:`random_instance` (not validated)."""
    rng = np.random.default_rng(seed)
    f = rng.integers(0, S, size=(S, V))
    n = 1 if homogeneous else T
    pr = rng.random((n, S, V)) + 0.1
    pr /= pr.sum(-1, keepdims=True)
    pt = pr * np.exp(0.05 * rng.standard_normal((n, S, V)))
    pt /= pt.sum(-1, keepdims=True)
    if homogeneous:
        pr, pt = np.broadcast_to(pr, (T, S, V)), np.broadcast_to(pt, (T, S, V))
    return np.eye(S)[0], f, pr, pt, rng.random(S)


def _timed(fn: Any) -> tuple[Any, float, float]:
    """``(fn(), wall seconds, process CPU seconds)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="result JSON path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="7 repeats instead of 3")
    parser.add_argument("--repeats", type=int, default=None, help="override the repeat count")
    parser.add_argument("--T", type=int, default=100_000, help="horizon")
    parser.add_argument("--S", type=int, default=32, help="states")
    parser.add_argument("--V", type=int, default=8, help="vocabulary")
    ns = parser.parse_args(argv)
    if min(ns.T, ns.S, ns.V) < 1:
        parser.error("--T, --S, --V must be positive")
    repeats = ns.repeats if ns.repeats is not None else (7 if ns.full else 3)
    if repeats < 1:
        parser.error("--repeats must be positive")
    load_before = os.getloadavg()
    cases = []
    for homogeneous in tqdm((False, True), desc="cases", leave=False):
        arrays, gen, _ = _timed(lambda h=homogeneous: random_arrays(ns.T, ns.S, ns.V, ns.seed, h))
        inst, _, validate = _timed(lambda a=arrays: FiniteStateInstance(*a, name="bench"))
        t_dp, t_rep, c_dp, c_rep, load = [], [], [], [], []
        for _ in range(repeats):
            _, wall, cpu = _timed(lambda i=inst: dp_exact(i))
            t_dp.append(wall)
            c_dp.append(cpu)
            rep, wall, cpu = _timed(lambda i=inst: exact_report(i))
            t_rep.append(wall)
            c_rep.append(cpu)
            load.append(os.getloadavg()[0])
        name = "homogeneous" if homogeneous else "time_varying"
        cases.append(
            {
                "name": name,
                "T": ns.T,
                "S": ns.S,
                "V": ns.V,
                "time_homogeneous": homogeneous,
                "generate_s": gen,
                "validate_s": validate,
                "dp_exact_s": t_dp,
                "exact_report_s": t_rep,
                "dp_exact_cpu_s": c_dp,
                "exact_report_cpu_s": c_rep,
                "loadavg_1min": load,
                "median_dp_exact_s": float(np.median(t_dp)),
                "median_exact_report_s": float(np.median(t_rep)),
                "median_dp_exact_cpu_s": float(np.median(c_dp)),
                "median_exact_report_cpu_s": float(np.median(c_rep)),
                "best_dp_exact_s": min(t_dp),
                "best_exact_report_s": min(t_rep),
                "error": rep["error"],
                "D_TV_seq_method": rep["D_TV_seq_method"],
            }
        )
        print(
            f"{name:13s} T={ns.T} S={ns.S} V={ns.V}: exact_report median "
            f"{np.median(t_rep):.2f} s wall, {np.median(c_rep):.2f} s CPU; dp_exact "
            f"{np.median(t_dp):.2f} s wall ({repeats} repeats, load {np.median(load):.1f}); "
            f"validation {validate:.2f} s CPU"
        )
    data = {
        "cases": cases,
        "loadavg_before": list(load_before),
        "loadavg_after": list(os.getloadavg()),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    write_results(ns.out, data, experiment="bench_finite_state", args=vars(ns), seed=ns.seed)
    print(f"wrote {ns.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
