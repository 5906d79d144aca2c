"""Benchmark: all twelve bounds for every T in 1..10^6 in one vectorised call.

Writes ``experiments/results/bench_bounds.json`` with, per scenario, the median time of
one :func:`trm_bounds.compute_bounds` call over the array ``T = 1..N`` (target: at most
50 ms for N = 10^6 on the 2-core machine), the time of a plain Python loop calling
``compute_bounds(int(T))`` for the same values (``--loop-sample K`` times a strided
subset of K values and scales up, stated in the file), and the ratio of the two.

Scenarios: ``fixed`` -- the paper's measurements with scalar sequence divergences
(delta = 1e-2 so that D_KL^seq = 0.01 <= T delta holds from T = 1); ``uniform`` -- the
uniform-divergence regime, D_KL^seq = T delta and D_TV^seq = min(1, sqrt(D_KL^seq/2))
passed as arrays over T.

Usage: ``python experiments/bench_bounds.py [--n 1000000] [--repeats 15] [--loop-sample 0]``
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trm_bounds import compute_bounds
from trm_bounds.results import write_results

OUT = Path(__file__).resolve().parent / "results" / "bench_bounds.json"


def scenarios(T: np.ndarray) -> dict[str, dict]:
    dkl = T * 1e-4
    return {
        "fixed": dict(eps=5e-3, delta=1e-2, dkl_seq=0.01, dtv_seq=0.05),
        "uniform": dict(eps=5e-3, delta=1e-4, dkl_seq=dkl, dtv_seq=np.minimum(1, np.sqrt(dkl / 2))),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10**6, help="largest T (T = 1..n)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--loop-sample", type=int, default=0,
                    help="time the per-T loop on K strided values and scale (0: all n)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    T = np.arange(1, args.n + 1, dtype=np.int64)
    res = {}
    for name, kw in scenarios(T).items():
        compute_bounds(T, **kw)  # warm-up
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            compute_bounds(T, **kw)
            times.append(time.perf_counter() - t0)
        vec = statistics.median(times)
        idx = (np.arange(args.n) if args.loop_sample <= 0
               else np.linspace(0, args.n - 1, args.loop_sample).astype(np.int64))
        scal = {k: (v if np.ndim(v) == 0 else v[idx]) for k, v in kw.items()}
        t0 = time.perf_counter()
        for j, i in enumerate(tqdm(idx, desc=f"per-T loop ({name})", mininterval=2.0)):
            compute_bounds(int(T[i]), **{k: (v if np.ndim(v) == 0 else float(v[j]))
                                         for k, v in scal.items()})
        loop = (time.perf_counter() - t0) * (args.n / idx.size)
        res[name] = {"vectorised_median_s": vec, "vectorised_min_s": min(times),
                     "loop_s": loop, "loop_values_timed": int(idx.size),
                     "ratio_loop_over_vectorised": loop / vec,
                     "meets_50ms_target": vec <= 0.05}
        print(f"{name}: vectorised {vec * 1e3:.1f} ms (min {min(times) * 1e3:.1f} ms), "
              f"loop {loop:.1f} s, ratio {loop / vec:.0f}x")
    write_results(args.out, {"n": args.n, "repeats": args.repeats, "scenarios": res,
                             "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                         "numpy": np.__version__,
                                         "load_avg_1min": os.getloadavg()[0]}},
                  experiment="bench_bounds", args=vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
