"""Write the demo logprob dump shipped with the package (``trm_bounds/data/demo_dump.npz``).

A tabular pair of order-1 Markov policies over a vocabulary of ``V`` tokens (token 0 is the
end token) plays the inference engine (``pi_roll``) and the trainer (``pi_theta``). The
trainer's logits are the engine's plus a small dense perturbation (numerical mismatch, e.g.
bf16 kernels, sigma 0.01) and, on 3% of the contexts, a larger one (sigma 0.2; an MoE
routing flip). Responses are sampled from ``pi_roll`` until the end token or ``T_max``
(variable lengths), four per prompt; a prompt fixes the first context token. The dump
stores, in verl's field names, the right-padded ``(B, T)`` arrays ``old_log_probs``
(trainer), ``rollout_log_probs`` (engine) and ``response_mask``, plus ``reward`` and
``prompt_id``, as float32 in a compressed ``.npz`` (under 1 MB).

Usage: ``python experiments/make_demo_dump.py [--seed 0] [--full] [--dump PATH] [--out JSON]``
then ``python -m trm_bounds.evaluate --demo --out DIR``.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trm_bounds.results import write_results

ROOT = Path(__file__).resolve().parents[1]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def make_pair(V: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Log-probability tables ``(V, V)`` [previous token, next token] for roll and theta."""
    z_roll = rng.normal(0.0, 2.0, (V, V))
    z_roll[:, 0] = -3.0  # end token: rare at first, see the length ramp in ``sample``
    dense = rng.normal(0.0, 0.01, (V, V))
    flip = (rng.random((V, 1)) < 0.03) * rng.normal(0.0, 0.2, (V, V))
    z_theta = z_roll + dense + flip
    return _log_softmax(z_roll), _log_softmax(z_theta)


def sample(
    n_prompts: int, per_prompt: int, T_max: int, V: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Sample ``n_prompts * per_prompt`` responses from roll; log both policies' logprobs."""
    roll, theta = make_pair(V, rng)
    B = n_prompts * per_prompt
    prompt_id = np.repeat(np.arange(n_prompts), per_prompt)
    prev = rng.integers(1, V, n_prompts)[prompt_id]  # (B,) prompt's last token
    lp = np.zeros((B, T_max))
    lr = np.zeros((B, T_max))
    alive = np.ones(B, dtype=bool)
    mask = np.zeros((B, T_max), dtype=bool)
    hits = np.zeros(B)
    for t in tqdm(range(T_max), desc="sampling", leave=False):  # sequential by nature
        logits = roll[prev].copy()  # (B, V)
        logits[:, 0] += 0.025 * t  # the end token grows likelier with length
        p = np.exp(_log_softmax(logits))
        y = (p.cumsum(axis=1) > rng.random((B, 1))).argmax(axis=1)  # (B,) sampled tokens
        lt = theta[prev].copy()
        lt[:, 0] += 0.025 * t
        lr[:, t] = np.where(alive, _log_softmax(logits)[np.arange(B), y], 0.0)
        lp[:, t] = np.where(alive, _log_softmax(lt)[np.arange(B), y], 0.0)
        mask[:, t] = alive
        hits += alive & (y % 2 == 0)
        alive &= y != 0
        prev = y
    L = mask.sum(axis=1)
    return {
        "old_log_probs": lp.astype(np.float32),
        "rollout_log_probs": lr.astype(np.float32),
        "response_mask": mask,
        "reward": (hits / L > 0.5).astype(np.float32),
        "prompt_id": prompt_id.astype(np.int64),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="more prompts (not for shipping)")
    ap.add_argument("--device", default="cpu", help="unused (numpy only)")
    ap.add_argument("--dump", type=Path, default=ROOT / "trm_bounds" / "data" / "demo_dump.npz")
    ap.add_argument(
        "--out", type=Path, default=ROOT / "experiments" / "results" / "make_demo_dump.json"
    )
    ap.add_argument("--prompts", type=int, default=None)
    ap.add_argument("--t-max", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=64)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n_prompts = args.prompts or (2048 if args.full else 96)
    data = sample(n_prompts, 4, args.t_max, args.vocab, rng)
    buf = io.BytesIO()
    np.savez_compressed(buf, **data)
    args.dump.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.dump.with_suffix(".tmp.npz")
    tmp.write_bytes(buf.getvalue())
    tmp.replace(args.dump)
    L = data["response_mask"].sum(axis=1)
    summary = {
        "dump": str(args.dump.relative_to(ROOT) if args.dump.is_relative_to(ROOT) else args.dump),
        "bytes": len(buf.getvalue()),
        "n_sequences": int(L.shape[0]),
        "n_tokens": int(L.sum()),
        "length_min": int(L.min()),
        "length_median": float(np.median(L)),
        "length_max": int(L.max()),
    }
    write_results(args.out, summary, experiment="make_demo_dump", args=vars(args), seed=args.seed)
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
