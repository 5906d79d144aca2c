r"""Policy pairs ``(roll, theta)`` carrying the paper's mismatch sources, and their rollouts.

A policy is a :class:`~trm_bounds.transformer.model.GPT` module with its own weights, dtype
and (for MoE) router perturbation.  Pairs are returned as ``(roll, theta)``:

- :func:`precision_pair`: same weights, ``roll`` in bfloat16 or float16, ``theta`` in
  float64 (backend discrepancy);
- :func:`staleness_pair`: ``theta`` is ``roll`` after ``k`` optimizer steps on the RL
  surrogate ``E_roll[(R - b) sum_t rho_t]`` (distributed staleness);
- :func:`moe_routing_pair`: ``roll`` routes with perturbed router logits
  ``l + x P`` (MoE routing discontinuities);
- :func:`weight_noise_pair`: ``roll`` has weights ``w + scale * rms(w) * N(0, 1)``.

:func:`rollout_logratios` samples from ``roll`` and returns the inputs of the Monte Carlo
estimators (:mod:`trm_bounds.estimators`); exact enumeration of a pair lives in
:mod:`trm_bounds.engines.neural`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import Tensor

from trm_bounds.divergences import kl_from_logprobs, tv_from_logprobs
from trm_bounds.transformer.model import GPT, model_inputs, policy_logprobs, sample, token_logprobs
from trm_bounds.transformer.source import MarkovSource, grammar_reward

__all__ = [
    "precision_pair",
    "staleness_pair",
    "moe_routing_pair",
    "weight_noise_pair",
    "count_route_flips",
    "rollout_logratios",
]


def precision_pair(
    model: GPT, roll_dtype: torch.dtype = torch.bfloat16, theta_dtype: torch.dtype = torch.float64
) -> tuple[GPT, GPT]:
    """Backend mismatch: the same weights cast to ``roll_dtype`` (roll) and ``theta_dtype``."""
    return copy.deepcopy(model).to(roll_dtype), copy.deepcopy(model).to(theta_dtype)


def weight_noise_pair(
    model: GPT, scale: float, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[GPT, GPT]:
    """Weight noise: roll has ``w + scale * rms(w) * N(0,1)`` per tensor; theta is ``model``."""
    roll = copy.deepcopy(model).to(dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for p in roll.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype)
            p.add_(scale * p.pow(2).mean().sqrt() * noise)
    return roll, copy.deepcopy(model).to(dtype)


def moe_routing_pair(
    model: GPT, scale: float, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[GPT, GPT]:
    """MoE routing: roll adds ``x P`` to the router logits, ``P ~ scale * N(0, 1/D)`` per layer.

    A small ``scale`` flips the top-k selection only for contexts near a routing boundary
    (count them with :func:`count_route_flips`); theta routes with the unperturbed logits.
    """
    if model.cfg.n_experts == 0:
        raise ValueError("moe_routing_pair needs a model with n_experts > 0")
    roll = copy.deepcopy(model).to(dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    D, E = model.cfg.d_model, model.cfg.n_experts
    for block in roll.blocks:
        P = torch.randn(D, E, generator=gen, dtype=torch.float64) * scale / math.sqrt(D)
        block.mlp.router_perturbation = P.to(roll.device, dtype)
    return roll, copy.deepcopy(model).to(dtype)


def count_route_flips(roll: GPT, theta: GPT, idx: Tensor, batch: int = 4096) -> tuple[int, int]:
    """Number of (layer, token position) pairs whose top-k expert set differs, and the total."""
    flips = total = 0
    for chunk in idx.split(batch):  # (b, L)
        with torch.no_grad():
            roll(chunk)
            theta(chunk)
        for br, bt in zip(roll.blocks, theta.blocks, strict=True):
            k = br.mlp.top_k
            sr = br.mlp.last_router_logits.topk(k, -1).indices.sort(-1).values  # (b, L, k)
            st = bt.mlp.last_router_logits.topk(k, -1).indices.sort(-1).values  # (b, L, k)
            flips += int((sr != st).any(-1).sum())
            total += sr.shape[0] * sr.shape[1]
    return flips, total


def staleness_pair(
    model: GPT,
    source: MarkovSource,
    *,
    k: int = 2,
    lr: float = 1e-3,
    T: int = 8,
    batch: int = 64,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[GPT, GPT]:
    r"""Staleness: theta = roll after ``k`` Adam steps on the RL surrogate (docs/theory.md §2).

    Each step samples ``batch`` responses of length ``T`` from the *fixed* roll policy and
    ascends ``E_roll[(R - b) sum_t rho_t]`` with ``b`` the batch mean reward (the gradient of
    ``L'`` at ``theta``).
    """
    roll = copy.deepcopy(model).to(dtype)
    theta = copy.deepcopy(model).to(dtype)
    opt = torch.optim.Adam(theta.parameters(), lr=lr)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    for _ in range(k):
        x = torch.randint(0, model.cfg.n_prompts, (batch,), generator=gen, device=model.device)
        y, logp_roll = sample(roll, x, T, gen)
        lr_tok = logp_roll.gather(-1, y[..., None]).squeeze(-1)  # (B, T)
        R = torch.as_tensor(grammar_reward(source, x.cpu().numpy(), y.cpu().numpy()))
        adv = (R - R.mean()).to(model.device)  # (B,)
        rho = torch.exp(token_logprobs(theta, x, y) - lr_tok)  # (B, T)
        loss = -(adv[:, None] * rho).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return roll, theta


def rollout_logratios(
    roll: GPT,
    theta: GPT,
    source: MarkovSource,
    *,
    N: int,
    T: int,
    p_x: np.ndarray | None = None,
    seed: int = 0,
    batch: int = 64,
) -> dict[str, np.ndarray]:
    r"""Sample ``N`` responses of length ``T`` from ``roll``; the inputs of Monte Carlo estimation.

    Prompts ``x ~ p_x`` (uniform by default), responses from :func:`sample` (KV cache; its
    log-probabilities *define* the rollout policy, as an inference engine's do), theta's
    distributions by one teacher-forced pass per batch.  Returns float64 numpy arrays:
    ``prompts`` ``(N,)``, ``tokens`` ``(N, T)``, ``logr`` ``(N, T)`` (``log rho_t``),
    ``reward`` ``(N,)`` (:func:`grammar_reward`), and the exact forward ``kl_ctx`` and
    ``tv_ctx`` ``(N, T)`` of each visited context (docs/theory.md §3).

    For a low-precision ``roll`` the KV-cache (decode) path and the full (prefill) pass round
    differently, as in real inference engines: on a trained V = 4 model, float16 decode and
    prefill log-probabilities differ by up to 2e-3 (the float16-float64 gap is 3e-3),
    bfloat16 ones agreed exactly, float32 ones by 1e-6.  Enumeration
    (:mod:`trm_bounds.engines.neural`) uses the prefill path, so Monte Carlo rows of precision
    pairs describe the decode-path policy.
    """
    n_prompts = roll.cfg.n_prompts
    p_x = np.full(n_prompts, 1.0 / n_prompts) if p_x is None else np.asarray(p_x)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=roll.device).manual_seed(seed)
    prompts = rng.choice(n_prompts, size=N, p=p_x)
    parts: dict[str, list] = {k: [] for k in ("tokens", "logr", "kl_ctx", "tv_ctx")}
    for x in np.array_split(prompts, max(1, -(-N // batch))):
        xt = torch.as_tensor(x, device=roll.device)
        y, lpr = sample(roll, xt, T, gen)  # (B, T), (B, T, V)
        idx = model_inputs(theta, xt.to(theta.device), y.to(theta.device))  # (B, T)
        chunk = max(1, 2**22 // (T * T))  # keeps the (chunk, H, T, T) attention small
        lpt = torch.cat([policy_logprobs(theta, i) for i in idx.split(chunk)])  # (B, T, V)
        lpr, lpt, y = lpr.cpu().numpy(), lpt.cpu().numpy(), y.cpu().numpy()
        tok = y[..., None]
        parts["tokens"].append(y)
        parts["logr"].append((np.take_along_axis(lpt - lpr, tok, -1))[..., 0])
        parts["kl_ctx"].append(kl_from_logprobs(lpr, lpt))
        parts["tv_ctx"].append(tv_from_logprobs(lpr, lpt))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["prompts"] = prompts
    out["reward"] = grammar_reward(source, prompts, out["tokens"])
    return out
