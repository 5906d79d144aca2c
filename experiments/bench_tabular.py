"""Benchmark: exact tree report on about 10^6 sequences (target < 5 s).

Times :func:`trm_bounds.engines.tree.exact_report` (every quantity of docs/theory.md §1-§3 and
every bound, published and sharp) on dense-noise instances with ``V^T ~ 10^6`` responses:
``V = 2, T = 20`` and ``V = 4, T = 10`` (one prompt each). Writes
``experiments/results/bench_tabular.json`` with the best and median wall times of
``--repeat`` runs, the sequence count and the machine's CPU count.

Usage::

    python experiments/bench_tabular.py                # the two 10^6 cases
    python experiments/bench_tabular.py --full         # adds V=2, T=22 (4.2e6 sequences)
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trm_bounds.engines.tree import exact_report
from trm_bounds.instances.named import dense_noise
from trm_bounds.results import write_results

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_tabular.json"
TARGET_SECONDS = 5.0  # the exact tree engine on ~10^6 sequences in under 5 s


def bench_case(V: int, T: int, n_prompts: int, repeat: int, seed: int) -> dict:
    """Best and median seconds of ``exact_report`` on one dense-noise instance."""
    t0 = time.perf_counter()
    inst = dense_noise(V, T, n_prompts=n_prompts, scale=0.1, seed=seed)
    t_build = time.perf_counter() - t0
    times = []
    rep = None
    for _ in tqdm(range(repeat), desc=f"V={V} T={T}", leave=False):
        t0 = time.perf_counter()
        rep = exact_report(inst)
        times.append(time.perf_counter() - t0)
    n_seq = n_prompts * V**T
    return {
        "V": V,
        "T": T,
        "n_prompts": n_prompts,
        "sequences": n_seq,
        "contexts": n_prompts * inst.n_contexts,
        "seconds_best": min(times),
        "seconds_median": float(np.median(times)),
        "seconds_all": times,
        "seconds_build_instance": t_build,
        "under_target": min(times) < TARGET_SECONDS,
        "error": rep["error"],
        "error_minus_identity": rep["error"] - rep["error_identity"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the cases and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="add V=2, T=22 (4.2e6 sequences)")
    parser.add_argument(
        "--case", nargs=2, type=int, action="append", metavar=("V", "T"),
        help="benchmark these (V, T) instead (repeatable; one prompt each)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    cases = [(2, 20, 1), (4, 10, 1)] + ([(2, 22, 1)] if args.full else [])
    if args.case:
        cases = [(V, T, 1) for V, T in args.case]
    results = [bench_case(V, T, n, args.repeat, args.seed) for V, T, n in cases]
    write_results(
        args.out,
        {
            "target_seconds": TARGET_SECONDS,
            "cases": results,
            "cpu_count": os.cpu_count(),
            "machine": platform.processor() or platform.machine(),
            "numpy": np.__version__,
        },
        experiment="bench_tabular",
        args=vars(args),
        seed=args.seed,
    )
    for r in results:
        print(
            f"V={r['V']} T={r['T']}: {r['sequences']} sequences, best {r['seconds_best']:.2f} s,"
            f" median {r['seconds_median']:.2f} s (target {TARGET_SECONDS} s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
