"""Benchmark of the Ray engine of the evaluator against the local engine, on this machine.

Two figures, written to ``experiments/results/bench_scale.json``:

1. **throughput**: :func:`trm_bounds.evaluate.evaluate` (no figures, no HTML) on a generated
   dump of ``--shards`` parquet files of ``--seqs`` sequences x ``--T`` tokens; tokens/s =
   valid tokens / median wall time of ``--repeats`` runs, for the local engine and for the Ray
   engine on a local cluster of 1 and 2 workers (``ray.init(num_cpus=w)``), all in this one
   run; the local engine also with one torch thread, as Ray's workers run. The cluster start
   and one warm-up evaluation per engine (imports; Ray workers import torch) are timed
   separately and left out of the rate.
2. **driver memory**: the driver's peak traced allocation (``tracemalloc``: Python and numpy
   buffers) during a Ray evaluation as the number of equally sized shards grows
   (``--mem-shards``). It must stay flat: the driver holds the shards in flight, never the
   data.

Run from the checkout with ``PYTHONPATH=.`` so that the Ray workers import the same package.
Usage: ``python experiments/bench_scale.py [--shards 8 --seqs 256 --T 1024] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from trm_bounds.evaluate import evaluate
from trm_bounds.results import write_results

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_scale.json"


def write_dump(d: Path, n_shards: int, seqs: int, T: int, seed: int) -> int:
    """``n_shards`` parquet files of ragged ``list<float>`` logprobs; returns valid tokens."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    tokens = 0
    for k in range(n_shards):
        L = rng.integers(T // 2, T + 1, seqs)
        lr = [(-rng.exponential(1.0, n) - 1e-3).astype(np.float32) for n in L]
        lp = [np.minimum(x + rng.normal(0, 0.05, x.shape).astype(np.float32), 0) for x in lr]
        table = pa.table({"old_log_probs": lp, "rollout_log_probs": lr})
        pq.write_table(table, d / f"shard_{k:04d}.parquet")
        tokens += int(L.sum())
    return tokens


def _timed(paths: list[str], out: Path, repeats: int, **kw) -> list[float]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        evaluate(paths, out, progress=False, html=False, **kw)
        times.append(time.perf_counter() - t0)
    return times


def throughput(tmp: Path, args: argparse.Namespace) -> dict:
    import ray

    tokens = write_dump(tmp / "dump", args.shards, args.seqs, args.T, args.seed)
    paths = [str(tmp / "dump")]
    out: dict = {"tokens": tokens, "shards": args.shards, "seqs_per_shard": args.seqs,
                 "T": args.T, "cpu_count": os.cpu_count()}  # fmt: skip
    warm = _timed(paths, tmp / "o_local", 1, chunk_size=args.chunk_size)  # imports, caches
    t = _timed(paths, tmp / "o_local", args.repeats, chunk_size=args.chunk_size)
    out["local"] = {"warmup_s": warm[0], "seconds": t, "torch_threads": torch.get_num_threads(),
                    "tokens_per_s": tokens / statistics.median(t)}  # fmt: skip
    # Ray workers run with one torch/OpenMP thread (OMP_NUM_THREADS=1); the same, locally
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        t = _timed(paths, tmp / "o_local", args.repeats, chunk_size=args.chunk_size)
    finally:
        torch.set_num_threads(threads)
    out["local_1_thread"] = {"seconds": t, "tokens_per_s": tokens / statistics.median(t)}
    for w in args.workers:
        t0 = time.perf_counter()
        ray.init(num_cpus=w, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter() - t0
        try:
            warm = _timed(paths, tmp / f"o_ray{w}", 1, chunk_size=args.chunk_size, engine="ray")
            t = _timed(paths, tmp / f"o_ray{w}", args.repeats, chunk_size=args.chunk_size,
                       engine="ray")  # fmt: skip
        finally:
            ray.shutdown()
        out[f"ray_{w}"] = {"workers": w, "cluster_start_s": start, "warmup_s": warm[0],
                           "seconds": t, "tokens_per_s": tokens / statistics.median(t)}  # fmt: skip
    return out


def driver_memory(tmp: Path, args: argparse.Namespace) -> list[dict]:
    import ray

    rows = []
    ray.init(num_cpus=min(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
    try:
        for n in args.mem_shards:
            d = tmp / f"mem{n}"
            tokens = write_dump(d, n, args.mem_seqs, args.mem_T, args.seed + n)
            tracemalloc.start()
            evaluate([str(d)], tmp / "o_mem", progress=False, html=False, engine="ray",
                     chunk_size=args.chunk_size)  # fmt: skip
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            rows.append({"shards": n, "tokens": tokens, "driver_peak_traced_mb": peak / 2**20})
    finally:
        ray.shutdown()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--seqs", type=int, default=256, help="sequences per shard")
    ap.add_argument("--T", type=int, default=1024, help="longest response (lengths T/2..T)")
    ap.add_argument("--chunk-size", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--mem-shards", type=int, nargs="+", default=[4, 16, 64])
    ap.add_argument("--mem-seqs", type=int, default=64)
    ap.add_argument("--mem-T", type=int, default=512)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_scale.") as tmp:
        data = {"throughput": throughput(Path(tmp), args),
                "driver_memory": driver_memory(Path(tmp), args)}  # fmt: skip
    write_results(args.out, data, experiment="bench_scale",
                  args={**vars(args), "out": str(args.out)}, seed=args.seed)  # fmt: skip
    th = data["throughput"]
    print(f"{th['tokens']} tokens: local {th['local']['tokens_per_s']:.3g} tok/s; " + "; ".join(
        f"ray {w} worker(s) {th[f'ray_{w}']['tokens_per_s']:.3g} tok/s" for w in args.workers))
    for r in data["driver_memory"]:
        print(f"  {r['shards']:4d} shards: driver peak {r['driver_peak_traced_mb']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
