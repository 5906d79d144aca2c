"""Benchmark: all twelve bounds over arrays of horizons, against a plain numpy reference.

Writes ``experiments/results/bench_bounds.json``.  For each size ``N`` (``T = 100..N``,
``N = 10^3 .. 10^6``; from T = 100 the fixed scenario satisfies every relation of §3) and
each scenario it times, interleaved in one process (A, B, A, B, ...), one
:func:`trm_bounds.compute_bounds` call (validation included) and a plain numpy
reference that builds the same prefix sums of ``docs/theory.md §4`` with ``np.cumsum``
over ``k = 0..N-1`` and multiplies them by the bounds' constants (no validation).  The
reported ratio is the median over repetitions of ``time(compute_bounds) / time(reference)``
taken pairwise, so a load change hits both sides alike.  ``--busy`` repeats everything with
a competing process spinning on one core.  Target (issue 16): ratio at most 1 on the
array ``T = 100..10^6``; the smaller sizes show the fixed cost of one call (validation and
a few dozen ufunc calls, about 0.1 ms), which the reference, validating nothing, does not pay.

Scenarios: ``fixed`` -- the paper's measurements with scalar sequence divergences
(delta = 1e-2 so that D_KL^seq = 0.01 <= T delta holds); ``uniform`` -- the
uniform-divergence regime, D_KL^seq = T delta and D_TV^seq = min(1, sqrt(D_KL^seq/2))
passed as arrays over T.

Usage: ``python experiments/bench_bounds.py [--repeats 31] [--no-busy]``
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from trm_bounds import compute_bounds
from trm_bounds.results import write_results

OUT = Path(__file__).resolve().parent / "results" / "bench_bounds.json"
SIZES = (10**3, 10**4, 10**5, 10**6)


def scenarios(T: np.ndarray) -> dict[str, dict]:
    dkl = T * 1e-4
    return {
        "fixed": dict(eps=5e-3, delta=1e-2, dkl_seq=0.01, dtv_seq=0.05),
        "uniform": dict(eps=5e-3, delta=1e-4, dkl_seq=dkl, dtv_seq=np.minimum(1, np.sqrt(dkl / 2))),
    }


def reference(T: np.ndarray, *, eps: float, delta: float, dkl_seq, dtv_seq) -> dict:
    """The twelve published bounds (docs/theory.md §4) from ``np.cumsum`` prefix sums."""
    k = np.arange(int(T.max()), dtype=np.float64)
    tv_w = np.minimum(1.0, k * eps)
    kl_w = np.minimum(1.0, np.sqrt(k * (delta / 2.0)))
    i = T - 1
    C, P, H = np.cumsum(tv_w)[i], np.cumsum(kl_w)[i], np.cumsum(np.minimum(tv_w, kl_w))[i]
    Tf = T.astype(np.float64)
    e, a = min(1.0, eps), min(1.0, math.sqrt(delta / 2.0))
    out = {"classical_tv": 2.0 * eps * eps * Tf * (Tf - 1.0),
           "classical_kl": delta * Tf * (Tf - 1.0),
           "coupling": 4.0 * e * C, "pm_kl": 4.0 * a * P, "pm_tv": 4.0 * e * P,
           "mix_kl": 4.0 * a * Tf * np.minimum(1.0, np.sqrt(np.asarray(dkl_seq) / 2.0)),
           "mix_tv": 4.0 * e * Tf * np.minimum(1.0, dtv_seq),
           "adaptive_hybrid": 4.0 * e * H, "linear": 4.0 * e * Tf}
    out["adaptive_kl"], out["adaptive_tv"] = out["pm_tv"], out["coupling"]
    uni = out["pm_kl"]
    for name in ("pm_tv", "mix_kl", "mix_tv", "coupling", "adaptive_hybrid"):
        uni = np.minimum(uni, out[name])
    out["unified"] = uni
    return out


def _spin(stop) -> None:  # pragma: no cover (a competing process)
    while not stop.is_set():
        sum(range(10_000))


def side_by_side(repeats: int) -> dict:
    """Pairwise-interleaved timings of compute_bounds and the reference at every size."""
    res: dict = {}
    for n in SIZES:
        T = np.arange(100, n + 1, dtype=np.int64)
        for name, kw in scenarios(T).items():
            ours, ref = compute_bounds(T, **kw), reference(T, **kw)
            worst = max(float(np.max(np.abs(ours[b] - ref[b]) / np.maximum(1.0, np.abs(ref[b]))))
                        for b in ref)  # the reference's cumsum drifts by ~n ulps
            a_t, b_t = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                compute_bounds(T, **kw)
                t1 = time.perf_counter()
                reference(T, **kw)
                t2 = time.perf_counter()
                a_t.append(t1 - t0)
                b_t.append(t2 - t1)
            ratio = statistics.median(x / y for x, y in zip(a_t, b_t, strict=True))
            res.setdefault(name, {})[str(n)] = {
                "compute_bounds_median_s": statistics.median(a_t),
                "reference_median_s": statistics.median(b_t),
                "ratio_median": ratio, "at_most_1x": bool(ratio <= 1.0),
                "max_rel_diff_vs_reference": worst}
            print(f"{name:8s} N = {n:>7d}: compute_bounds {statistics.median(a_t) * 1e3:8.3f} ms, "
                  f"reference {statistics.median(b_t) * 1e3:8.3f} ms, ratio {ratio:.2f}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--no-busy", action="store_true", help="skip the competing-process run")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    load = os.getloadavg()[0]
    runs = {"no_competitor": side_by_side(args.repeats)}
    if not args.no_busy:
        stop = mp.Event()
        proc = mp.Process(target=_spin, args=(stop,), daemon=True)
        proc.start()
        try:
            print("with a competing process on one core:")
            runs["busy_neighbour"] = side_by_side(args.repeats)
        finally:
            stop.set()
            proc.join()
    write_results(args.out, {"sizes": list(SIZES), "repeats": args.repeats, "runs": runs,
                             "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                         "numpy": np.__version__, "load_avg_1min_start": load}},
                  experiment="bench_bounds", args=vars(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
