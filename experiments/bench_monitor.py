"""Benchmark: the monitor's time per update against one GRPO loss computation, side by side.

On one float32 CPU batch (default ``B x L = 512 x 8192``, lengths uniform in ``1..L``,
``log pi_roll`` of uniform probabilities in ``[0.05, 1]``, ``log pi_theta`` = that plus
``N(0, 0.05^2)``, rewards uniform in ``[0, 1]``, GRPO groups of 8), in one process, alternating:

- **GRPO loss**: TRL's ``loss_type="grpo"`` expression (``coef = exp(lp - old)``, two-sided
  clip at ``0.2``, ``-min(coef A, clip(coef) A)``, per-sequence mean, batch mean) with its
  backward pass to the log-probs (``fwd+bwd``), and the forward alone;
- **monitor**: :meth:`trm_bounds.monitor.Monitor.update` with rewards and group ids, without
  TensorBoard and dumps (``update``), and with TensorBoard (``update_tensorboard``); plus the
  parts, each timed alone: the statistics and decisions (``stats_decide``), verl's names
  (``verl_metrics``), the float64 log-ratios with their validation (``validate_float64``,
  :func:`~trm_bounds.certify.samples.valid_log_ratios`, shared by the next two), the
  certificate (``certificate``: ``X_i`` and the confidence bound over groups), the error
  estimate (``error_estimate``: ``S_i``, ``U_i`` and the PSIS-gated estimator).

Medians of ``--repeats`` runs; ``ratio = update / loss fwd+bwd``. torch runs on ``--threads``
threads for both (the monitor's statistics always use one, :data:`~trm_bounds.masking._tensors.CPU_THREADS`).

Usage: ``python experiments/bench_monitor.py [--B 512] [--L 8192] [--repeats 5] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from trm_bounds.certify.samples import divergence_terms, valid_log_ratios
from trm_bounds.masking import decide, sequence_stats
from trm_bounds.monitor import Monitor
from trm_bounds.monitor.metrics import verl_metrics
from trm_bounds.results import write_results

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_monitor.json"


def make_batch(B: int, L: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    n = torch.randint(1, L + 1, (B,), generator=g)
    mask = torch.arange(L)[None] < n[:, None]
    rlp = torch.log(torch.rand(B, L, generator=g) * 0.95 + 0.05)
    lp = (rlp + 0.05 * torch.randn(B, L, generator=g)).clamp(max=0.0)
    return {"lp": lp, "rlp": rlp, "mask": mask, "rewards": torch.rand(B, generator=g),
            "groups": torch.arange(B) // 8, "adv": torch.randn(B, generator=g)}  # fmt: skip


def grpo_loss(lp: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
              eps: float = 0.2) -> torch.Tensor:  # fmt: skip
    """TRL 1.16's ``loss_type="grpo"`` expression on given log-probs."""
    coef_1 = torch.exp(lp - old)
    coef_2 = torch.clamp(coef_1, 1 - eps, 1 + eps)
    a = adv.unsqueeze(1)
    per_token = -torch.min(coef_1 * a, coef_2 * a)
    m = mask.to(lp.dtype)
    return ((per_token * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean()


def median_time(fn, repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--B", type=int, default=512)
    p.add_argument("--L", type=int, default=8192)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    b = make_batch(args.B, args.L, args.seed)
    lp, rlp, mask = b["lp"], b["rlp"], b["mask"]
    old = lp.clone()

    def loss_fwd_bwd() -> None:
        x = lp.clone().requires_grad_(True)
        grpo_loss(x, old, b["adv"], mask).backward()

    def loss_fwd() -> None:
        grpo_loss(lp, old, b["adv"], mask)

    crit = ["seq_max_k2", "seq_mean_k3"]
    th = {"seq_max_k2": 0.05, "seq_mean_k3": 0.001}
    stats = sequence_stats(lp, rlp, mask, k2_sum=True)
    dec = decide(stats, th, [*crit, ",".join(crit)])
    r64, v64 = valid_log_ratios(lp, rlp, mask)
    R64, groups = b["rewards"].double().numpy(), b["groups"].numpy()
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        mons = {name: Monitor(Path(d) / name, max_response_length=args.L, tensorboard=tb)
                for name, tb in (("update", False), ("update_tensorboard", True))}  # fmt: skip
        steps = dict.fromkeys(mons, 0)

        def update(name: str):
            def run() -> None:
                mons[name].update(steps[name], lp, rlp, mask, rewards=b["rewards"],
                                  group_ids=b["groups"])  # fmt: skip
                steps[name] += 1
            return run

        parts = {
            "loss_fwd_bwd": loss_fwd_bwd,
            "loss_fwd": loss_fwd,
            "update": update("update"),
            "update_tensorboard": update("update_tensorboard"),
            "stats_decide": lambda: decide(sequence_stats(lp, rlp, mask, k2_sum=True), th,
                                           [*crit, ",".join(crit)]),  # fmt: skip
            "verl_metrics": lambda: verl_metrics(lp, rlp, mask, stats, dec, crit),
            "validate_float64": lambda: valid_log_ratios(lp, rlp, mask),
            "certificate": lambda: mons["update"]._certificate(
                divergence_terms(r64, v64).sum(axis=1), v64.sum(axis=1), groups),
            "error_estimate": lambda: mons["update"]._error(r64, v64, R64, groups),
        }
        for fn in parts.values():  # warm-up
            fn()
        per = {k: [] for k in parts}
        for _ in range(args.repeats):  # interleaved: a busy neighbour hits every part alike
            for k, fn in parts.items():
                per[k].append(median_time(fn, 1))
        times = {k: statistics.median(v) for k, v in per.items()}
        for m in mons.values():
            m.close()
    n_tok = int(mask.sum())
    data = {
        "B": args.B, "L": args.L, "n_tokens": n_tok, "dtype": "float32",
        "seconds": times,
        "ratio_update_over_loss_fwd_bwd": times["update"] / times["loss_fwd_bwd"],
        "ratio_update_tensorboard_over_loss_fwd_bwd": times["update_tensorboard"] / times["loss_fwd_bwd"],
        "ratio_update_over_loss_fwd": times["update"] / times["loss_fwd"],
        "torch_threads": args.threads, "cpu_count": os.cpu_count(),
        "machine": platform.machine(), "torch_version": torch.__version__,
        "numpy_version": np.__version__, "python": sys.version.split()[0],
    }  # fmt: skip
    write_results(args.out, data, experiment="bench_monitor", args=vars(args), seed=args.seed)
    for k, v in times.items():
        print(f"{k:>20}: {v * 1e3:9.1f} ms")
    print(f"update / loss fwd+bwd = {data['ratio_update_over_loss_fwd_bwd']:.2f} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
