r"""Exact evaluation of transformer policy pairs by enumerating every sequence.

For a pair ``(roll, theta)`` of :class:`trm_bounds.transformer.GPT` policies, a vocabulary
``V``, horizon ``T`` and prompt distribution ``P(x)``:

1. :func:`enumerate_tables` runs each model once on every prefix of length ``T - 1`` (in
   batches) and reads off the next-token distribution of *every* context, in the tree order
   of the ``trm-oracle-instances/v1`` format (docs/theory.md §1):
   ``ctx(t, y_<t) = (V^(t-1) - 1)/(V - 1) + sum_{s<t} y_s V^(t-1-s)``, ``C = (V^T - 1)/(V - 1)``
   contexts per prompt.  Causality makes this exact: a context's distribution does not
   depend on the tokens that follow it.
2. :func:`exact_quantities` computes, in float64 torch on any device, every exact quantity of
   docs/theory.md §2-§4 from the probability tables, over all ``V^T`` sequences
   ``seq(y) = sum_t y_t V^(T-t)``.
3. The tables export as a ``trm-oracle-instances/v1`` instance with the report as its
   expected values (:func:`trm_bounds.instances.format.instance_record`, written by
   :func:`trm_bounds.instances.format.write_instances`), so the tree engine
   (:func:`trm_bounds.engines.tree.exact_report`) recomputes everything from the same tables.

All policies here are softmax policies evaluated in float64, so every context has full
support and ``rho_t`` is finite; every context is reachable (docs/theory.md §3).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from trm_bounds.divergences_torch import k3, kl_from_logprobs, tv_from_logprobs
from trm_bounds.instances.tree import n_contexts
from trm_bounds.report import ExactReport
from trm_bounds.transformer import GPT, MarkovSource, grammar_reward, policy_logprobs

__all__ = [
    "sequence_tokens",
    "context_indices",
    "enumerate_tables",
    "exact_quantities",
    "reward_table",
]

Device = str | torch.device | None


def _position_of_context(V: int, T: int, device: Device = None) -> tuple[Tensor, Tensor]:
    """Position ``t`` (1-based) and prefix number ``p`` of every context, both ``(C,)``.

    Context ``c = (V^(t-1) - 1)/(V - 1) + p`` has a prefix of length ``t - 1`` whose base-``V``
    reading is ``p`` (tree order, docs/theory.md §1).
    """
    sizes = V ** torch.arange(T, device=device)  # (T,)  V^(t-1) contexts at position t
    t_of = torch.repeat_interleave(torch.arange(1, T + 1, device=device), sizes)  # (C,)
    offset = torch.cumsum(sizes, 0) - sizes  # (T,)  first context of position t
    p_of = torch.arange(len(t_of), device=device) - offset[t_of - 1]  # (C,)
    return t_of, p_of


def sequence_tokens(V: int, T: int, device: Device = None) -> Tensor:
    """All ``V^T`` sequences as tokens ``(V^T, T)``, row ``seq(y) = sum_t y_t V^(T-t)``.

    >>> sequence_tokens(2, 2).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    n = torch.arange(V**T, device=device)[:, None]  # (V^T, 1)
    powers = V ** torch.arange(T - 1, -1, -1, device=device)  # (T,)
    return (n // powers) % V  # (V^T, T)


def context_indices(V: int, T: int, device: Device = None) -> Tensor:
    """Tree-order context index of ``c_t`` for every sequence and position, ``(V^T, T)``.

    ``ctx(t, y_<t) = (V^(t-1) - 1)/(V - 1) + floor(seq(y) / V^(T-t+1))`` (the prefix
    ``y_<t`` read in base ``V``, ``y_1`` most significant).

    >>> context_indices(2, 2).tolist()  # c_1 is the root; c_2 = 1 + y_1
    [[0, 1], [0, 1], [0, 2], [0, 2]]
    """
    n = torch.arange(V**T, device=device)[:, None]  # (V^T, 1)
    t = torch.arange(1, T + 1, device=device)  # (T,)
    offset = torch.tensor([n_contexts(V, s - 1) for s in range(1, T + 1)], device=device)  # (T,)
    return offset + n // (V ** (T - t + 1))  # (V^T, T)


def enumerate_tables(
    model: GPT, T: int, *, n_prompts: int | None = None, batch: int = 4096
) -> np.ndarray:
    """Next-token distributions of every context, float64 ``(n_prompts, C, V)``, tree order.

    The model runs on the ``V^(T-1)`` prefixes of length ``T - 1`` (after the prompt token),
    ``batch`` inputs at a time; context ``(t, p)`` (prefix ``p`` of length ``t-1`` in base
    ``V``) is read at input position ``t-1`` of row ``p V^(T-t)``.  Rows are
    ``exp(log_softmax(logits in float64))``.
    """
    V = model.cfg.vocab_size
    n_prompts = model.cfg.n_prompts if n_prompts is None else n_prompts
    dev = model.device
    prefixes = sequence_tokens(V, T - 1, dev) if T > 1 else torch.zeros(1, 0, dtype=torch.long)
    prefixes = prefixes.to(dev)  # (V^(T-1), T-1)
    # row and column of each context c = (t, p) in the (V^(T-1), T) grid of positions
    t_of, p_of = _position_of_context(V, T)  # (C,), (C,)
    rows, cols = p_of * V ** (T - t_of), t_of - 1  # (C,), (C,)
    out = np.empty((n_prompts, n_contexts(V, T), V))
    for x in range(n_prompts):
        first = torch.full((prefixes.shape[0], 1), V + x, device=dev)  # (M, 1)
        idx = torch.cat([first, prefixes], dim=1)  # (M, T)
        logp = torch.cat([policy_logprobs(model, b) for b in idx.split(batch)])  # (M, T, V)
        out[x] = logp[rows.to(dev), cols.to(dev)].exp().cpu().numpy()  # (C, V)
    return out


def exact_quantities(
    pi_roll: ArrayLike,
    pi_theta: ArrayLike,
    reward: ArrayLike,
    p_x: ArrayLike,
    *,
    device: str | torch.device = "cpu",
) -> ExactReport:
    r"""Every exact quantity of docs/theory.md §2-§4 for a tree instance, by enumeration.

    ``pi_roll``, ``pi_theta``: ``(n_prompts, C, V)`` probabilities in tree order; ``reward``:
    ``(n_prompts, V^T)`` in ``[0, 1]``; ``p_x``: ``(n_prompts,)``.  With ``r_t = log rho_t``
    and ``S = sum_t r_t`` (all in float64):

    - ``J_roll``, ``J_theta`` ``= E_x sum_y P^pi(y|x) R``;
      ``L_prime = E_roll[R sum_t expm1(r_t)]`` (docs/theory.md §2);
    - ``error = E_roll[R (expm1(S) - sum_t expm1(r_t))]`` (definition, log space) and
      ``error_identity = E_roll[R sum_t expm1(r_t) expm1(S_{>t})]`` (telescoping identity);
      ``error_from_J = J_theta - J_roll - L_prime``;
    - ``error_max_over_rewards = 1/2 E_x sum_y P^roll |expm1(S) - sum_t expm1(r_t)|``;
    - ``eps``, ``delta``: max per-context TV and forward KL (nats); ``Dbar`` (``t = 1..T``);
      ``D_KL_seq`` by the chain rule and ``D_KL_seq_direct = E_x sum_y P^roll (expm1(S) - S)``
      with ``S = log P^theta - log P^roll`` (stable sequence-level form);
      ``D_TV_seq = 1/2 E_x sum_y P^roll |expm1(S)|``;
    - ``bounds_published`` / ``bounds_sharp``: ``trm_bounds.bounds.compute_bounds`` (docs/theory.md §4
      and §5) at these values.

    Returns an :class:`~trm_bounds.report.ExactReport` with the keys every engine reports
    plus ``error_from_J`` and ``D_KL_seq_direct``.
    """
    from trm_bounds.bounds import compute_bounds

    f64 = dict(dtype=torch.float64, device=device)
    lpr = torch.log(torch.as_tensor(np.asarray(pi_roll), **f64))  # (X, C, V)
    lpt = torch.log(torch.as_tensor(np.asarray(pi_theta), **f64))  # (X, C, V)
    R = torch.as_tensor(np.asarray(reward), **f64)  # (X, V^T)
    px = torch.as_tensor(np.asarray(p_x), **f64)  # (X,)
    X, C, V = lpr.shape
    T = int(round(np.log(R.shape[1]) / np.log(V)))
    toks = sequence_tokens(V, T, device)  # (N, T), N = V^T
    ctx = context_indices(V, T, device)  # (N, T)
    lr_tok = lpr[:, ctx, toks]  # (X, N, T)  log pi_roll(y_t | c_t)
    r = lpt[:, ctx, toks] - lr_tok  # (X, N, T)  r_t = log rho_t
    w = px[:, None] * lr_tok.sum(-1).exp()  # (X, N)  P(x) P^roll(y|x)
    S = r.sum(-1)  # (X, N)
    em = torch.expm1(r)  # (X, N, T)  rho_t - 1
    suffix = S[..., None] - r.cumsum(-1)  # (X, N, T)  S_{>t} = sum_{j>t} r_j
    c = torch.expm1(S) - em.sum(-1)  # (X, N)  prod rho - 1 - sum (rho - 1)
    J_roll = float((w * R).sum())
    J_theta = float((px[:, None] * lpt[:, ctx, toks].sum(-1).exp() * R).sum())
    L_prime = float((w * R * em.sum(-1)).sum())

    # per-context divergences and context probabilities d_t^roll (tree order)
    kl_c = kl_from_logprobs(lpr, lpt)  # (X, C)  forward KL(roll || theta), nats
    tv_c = tv_from_logprobs(lpr, lpt)  # (X, C)
    logd = torch.full((X, C), float("-inf"), **f64)  # (X, C)  log d_t^roll(c), per prompt
    prefix_logp = torch.cat([torch.zeros(X, len(toks), 1, **f64), lr_tok.cumsum(-1)], -1)
    logd[:, ctx] = prefix_logp[..., :T]  # duplicates write the same value
    d = px[:, None] * logd.exp()  # (X, C)  P(x) d_t^roll(c)
    t_of = _position_of_context(V, T, device)[0] - 1  # (C,)  0-based position of each context
    dbar = torch.zeros(T, **f64).index_add_(0, t_of, (d * tv_c).sum(0))  # (T,)
    q = {
        "eps": float(tv_c.max()),
        "delta": float(kl_c.max()),
        "dkl_seq": float((d * kl_c).sum()),
        "dtv_seq": float(0.5 * (w * torch.expm1(S).abs()).sum()),
        "dbar": dbar.cpu().numpy(),
    }
    bounds = {
        key: {k: float(v) for k, v in compute_bounds(T, sharp=sharp, **q).items()}
        for key, sharp in (("bounds_published", False), ("bounds_sharp", True))
    }
    return ExactReport(
        J_roll=J_roll,
        J_theta=J_theta,
        L_prime=L_prime,
        error=float((w * R * c).sum()),
        error_identity=float((w * R * (em * torch.expm1(suffix)).sum(-1)).sum()),
        error_max_over_rewards=float(0.5 * (w * c.abs()).sum()),
        eps=q["eps"],
        delta=q["delta"],
        Dbar=q["dbar"],
        D_KL_seq=q["dkl_seq"],
        D_TV_seq=q["dtv_seq"],
        D_KL_seq_direct=float((w * k3(S)).sum()),
        error_from_J=J_theta - J_roll - L_prime,
        **bounds,
    )


def reward_table(source: MarkovSource, n_prompts: int, T: int) -> np.ndarray:
    """Grammar reward of every sequence, ``(n_prompts, V^T)`` in ``[0, 1]`` (row ``seq(y)``)."""
    toks = sequence_tokens(source.V, T).numpy()  # (V^T, T)
    return np.stack([grammar_reward(source, np.full(len(toks), x), toks) for x in range(n_prompts)])
