"""Benchmark: exact enumeration of a transformer pair with the KV-cached prefix-tree walk.

Times :func:`trm_bounds.engines.neural.enumerate_tables` (``method="kv"``, one model token per
context; and, where it is affordable, the ``"full"`` recompute on the ``V^(T-1)`` longest
prefixes) and :func:`trm_bounds.engines.neural.exact_quantities` on a float64 weight-noise pair
(2 prompts, 2 layers, ``d_model = 32``, scale 0.05) at the sizes of issue 12: ``V = 4,
T = 12`` and ``V = 8, T = 8`` (16.7M sequences per prompt each).  Writes
``experiments/results/bench_neural.json`` with the wall and process-CPU seconds, sizes, CPU count and the exact
error, its identity residual and the sharp unified bound of each case.

Usage::

    python experiments/bench_neural.py                 # V=4 T=12 and V=8 T=8 (minutes)
    python experiments/bench_neural.py --cases 4x8     # one small case
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from trm_bounds.engines.neural import enumerate_tables, exact_quantities, reward_table
from trm_bounds.results import write_results
from trm_bounds.transformer import GPT, GPTConfig, MarkovSource, weight_noise_pair

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_neural.json"


class _Clock:
    """Wall and process-CPU seconds of a block (CPU seconds do not count other processes on a
    shared machine)."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def bench_case(V: int, T: int, *, full_up_to: int, seed: int = 0) -> dict:
    """Seconds of the KV walk (both models), the full recompute (if ``V^T <= full_up_to``) and
    the exact quantities, on one weight-noise pair."""
    n_prompts = 2
    model = GPT(GPTConfig(vocab_size=V, n_prompts=n_prompts, seed=seed))
    roll, theta = weight_noise_pair(model, 0.05, seed=seed)
    out: dict = {"V": V, "T": T, "n_prompts": n_prompts, "sequences": n_prompts * V**T}
    with _Clock() as c:
        pr, pt = enumerate_tables(roll, T), enumerate_tables(theta, T)
    out["seconds_kv_walk_two_models"], out["cpu_seconds_kv_walk_two_models"] = c.wall, c.cpu
    out["contexts"] = int(pr.shape[0] * pr.shape[1])
    if V**T <= full_up_to:
        with _Clock() as c:
            enumerate_tables(roll, T, method="full")
            enumerate_tables(theta, T, method="full")
        out["seconds_full_recompute_two_models"] = c.wall
        out["cpu_seconds_full_recompute_two_models"] = c.cpu
    with _Clock() as c:
        R = reward_table(MarkovSource(V=V, n_prompts=n_prompts, seed=seed), n_prompts, T)
    out["seconds_reward_table"], out["cpu_seconds_reward_table"] = c.wall, c.cpu
    with _Clock() as c:
        q = exact_quantities(pr, pt, R, [0.5, 0.5])
    out["seconds_exact_quantities"], out["cpu_seconds_exact_quantities"] = c.wall, c.cpu
    out.update(error=q["error"], error_minus_identity=q["error"] - q["error_identity"],
               unified_sharp=q["bounds_sharp"]["unified"],
               error_max_over_rewards=q["error_max_over_rewards"])  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: time each ``VxT`` case, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", nargs="+", default=["4x12", "8x8"], help="VxT cases")
    ap.add_argument("--full-up-to", type=int, default=4**9,
                    help="also time the full recompute when V^T is at most this")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for case in args.cases:
        V, T = (int(v) for v in case.split("x"))
        rows.append(bench_case(V, T, full_up_to=args.full_up_to))
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()},
              flush=True)
    write_results(args.out, {"cases": rows, "cpu_count": os.cpu_count(),
                             "machine": platform.machine(), "torch_version": torch.__version__,
                             "threads": args.threads},
                  experiment="bench_neural", args=vars(args), seed=0)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
