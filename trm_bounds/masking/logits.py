r"""Per-position divergences from logged next-token distributions (docs/theory.md §3).

:func:`exact_token_divergences` (and :func:`exact_token_kl`, :func:`exact_token_tv`) compute
exact per-position KL(roll || theta) and TV from full logits with the vocabulary processed in
chunks; :func:`topk_divergence_bounds` gives guaranteed lower and upper bounds from top-k
logprobs. The per-entry KL terms come from :mod:`trm_bounds.divergences_torch`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from trm_bounds.masking._tensors import _as_tensor, _torch

if TYPE_CHECKING:
    import torch

__all__ = [
    "exact_token_divergences",
    "exact_token_kl",
    "exact_token_tv",
    "topk_divergence_bounds",
]


def exact_token_divergences(
    logits_theta: Any,
    logits_roll: Any,
    mask: Any = None,
    *,
    chunk_size: int = 8192,
    max_block_elements: int = 1 << 22,
    compute_dtype: Any = None,
) -> dict[str, torch.Tensor]:
    r"""Exact per-position KL(roll || theta) and TV from full logits (docs/theory.md §3).

    .. math::

        \mathrm{KL}(c) = \sum_v p_v\,(e^{d_v} - 1 - d_v),\quad
        d_v = \log q_v - \log p_v,\qquad
        \mathrm{TV}(c) = \tfrac12\sum_v |q_v - p_v|,

    ``p = softmax(logits_roll)``, ``q = softmax(logits_theta)`` (forward KL, rollout first,
    nats; the stable form of docs/theory.md §3, whose added ``q - p`` terms sum to zero).
    Log-softmax is done in two passes over vocabulary chunks of ``chunk_size``: first the
    per-chunk log-sum-exp, combined stably, then the terms per chunk; rows are taken in blocks
    so that a temporary never exceeds ``max_block_elements`` elements. Peak extra memory is
    therefore ``O(max_block_elements)`` whatever ``V`` (e.g. 150k) is.

    Precision: each chunk is converted to ``compute_dtype`` — float64 by default on CPU
    (agrees with a direct float64 computation to about 1e-15 relative), float32 on GPU
    (relative error about 1e-6: the stable form is insensitive to first order to the
    normalisation error of the log-softmax).

    Args:
        logits_theta, logits_roll: ``(..., V)`` logits (or logprobs) of theta and roll.
        mask: optional ``(...)`` valid mask; masked positions get 0.

    Returns:
        ``{"kl": (...), "tv": (...)}`` in ``compute_dtype``.
    """
    from trm_bounds.divergences_torch import kl_from_logprobs, tv_from_logprobs

    torch = _torch()
    xt = _as_tensor(logits_theta)
    xr = _as_tensor(logits_roll, xt.device)
    if xt.shape != xr.shape or xt.ndim < 1:
        raise ValueError(f"logits shapes differ: {tuple(xt.shape)} vs {tuple(xr.shape)}")
    dev = xt.device
    if compute_dtype is None:
        compute_dtype = torch.float64 if dev.type == "cpu" else torch.float32
    lead = xt.shape[:-1]
    V = xt.shape[-1]
    xt2 = xt.reshape(-1, V)
    xr2 = xr.reshape(-1, V)
    n = xt2.shape[0]
    kl = torch.zeros(n, dtype=compute_dtype, device=dev)
    tv = torch.zeros(n, dtype=compute_dtype, device=dev)
    C = max(1, min(int(chunk_size), V))
    rows = max(1, int(max_block_elements) // C)
    for r0 in range(0, n, rows):
        rs = slice(r0, min(n, r0 + rows))
        # pass 1: log-sum-exp per chunk, combined
        lse_t = []
        lse_r = []
        for c0 in range(0, V, C):
            lse_t.append(torch.logsumexp(xt2[rs, c0 : c0 + C].to(compute_dtype), dim=-1))
            lse_r.append(torch.logsumexp(xr2[rs, c0 : c0 + C].to(compute_dtype), dim=-1))
        zt = torch.logsumexp(torch.stack(lse_t, dim=-1), dim=-1, keepdim=True)  # (rows, 1)
        zr = torch.logsumexp(torch.stack(lse_r, dim=-1), dim=-1, keepdim=True)
        # pass 2: the terms per chunk (p = 0 gives q, the limit; q = 0 < p gives +inf)
        for c0 in range(0, V, C):
            lq = xt2[rs, c0 : c0 + C].to(compute_dtype) - zt  # (rows, C) log q
            lp = xr2[rs, c0 : c0 + C].to(compute_dtype) - zr  # (rows, C) log p
            tv[rs] += tv_from_logprobs(lp, lq)  # 1/2 sum |q - p| over the chunk
            kl[rs] += kl_from_logprobs(lp, lq)  # sum p (expm1(d) - d), d = log q - log p
    kl = kl.reshape(lead)
    tv = tv.reshape(lead)
    if mask is not None:
        mk = _as_tensor(mask, dev)
        valid = mk if mk.dtype == torch.bool else mk != 0
        kl = kl.masked_fill(~valid, 0.0)
        tv = tv.masked_fill(~valid, 0.0)
    return {"kl": kl, "tv": tv}


def exact_token_kl(
    logits_theta: Any, logits_roll: Any, mask: Any = None, *, chunk_size: int = 8192, **kw: Any
) -> torch.Tensor:
    r"""Exact per-position forward KL(roll || theta) in nats from full logits, ``(B, T)``.

    ``KL(c) = sum_v p_v (e^{d_v} - 1 - d_v)``, ``d = log q - log p`` (docs/theory.md §3);
    chunked over the vocabulary, see :func:`exact_token_divergences`.

    >>> import torch
    >>> lt = torch.log(torch.tensor([[[0.5, 0.5]]], dtype=torch.float64))
    >>> lr = torch.log(torch.tensor([[[0.9, 0.1]]], dtype=torch.float64))
    >>> round(float(exact_token_kl(lt, lr)[0, 0]), 12)
    0.368064207168
    """
    return exact_token_divergences(logits_theta, logits_roll, mask, chunk_size=chunk_size, **kw)[
        "kl"
    ]


def exact_token_tv(
    logits_theta: Any, logits_roll: Any, mask: Any = None, *, chunk_size: int = 8192, **kw: Any
) -> torch.Tensor:
    r"""Exact per-position TV ``1/2 sum_v |q_v - p_v|`` from full logits (docs/theory.md §3).

    >>> import torch
    >>> lt = torch.log(torch.tensor([[[0.5, 0.5]]], dtype=torch.float64))
    >>> lr = torch.log(torch.tensor([[[0.9, 0.1]]], dtype=torch.float64))
    >>> round(float(exact_token_tv(lt, lr)[0, 0]), 12)
    0.4
    """
    return exact_token_divergences(logits_theta, logits_roll, mask, chunk_size=chunk_size, **kw)[
        "tv"
    ]


# ---------------------------------------------------------------------------------------------
# Guaranteed bounds from top-k logprobs


def _amin_or_inf(x: torch.Tensor) -> torch.Tensor:
    """Minimum over the last axis, ``+inf`` when that axis is empty."""
    torch = _torch()
    if x.shape[-1] == 0:
        return torch.full(x.shape[:-1], math.inf, dtype=x.dtype, device=x.device)
    return x.amin(-1)


def topk_divergence_bounds(
    idx_theta: Any,
    logp_theta: Any,
    idx_roll: Any,
    logp_roll: Any,
    *,
    vocab_size: int | None = None,
    assume_topk: bool = False,
) -> dict[str, torch.Tensor]:
    r"""Guaranteed lower and upper bounds on per-position TV and KL(roll || theta) from top-k.

    At one position let ``p = pi_roll``, ``q = pi_theta`` (full distributions, unknown) and
    ``S_r``, ``S_t`` the index sets whose probabilities are known for roll and theta
    (entries with index ``< 0`` are padding). Split the vocabulary into ``A = S_r & S_t``,
    ``B = S_r - S_t`` (``p`` known, ``q`` not), ``C = S_t - S_r`` (``q`` known, ``p`` not)
    and ``D`` (neither). Tail masses ``m_p = 1 - sum_{S_r} p``, ``m_q = 1 - sum_{S_t} q``
    (clamped at 0). An unknown ``q_v`` lies in ``[0, u_q]`` with ``u_q = m_q``; with
    ``assume_topk=True`` (every unknown probability is at most every known one of the same
    policy, i.e. the known sets are true top-k sets) ``u_q = min(m_q, min_{S_t} q)``; same for
    ``p``. ``P_X``, ``Q_X`` are the known masses on a set ``X``.

    TV, lower: data processing on the partition ``{v}_{v in A}, A^c`` gives
    ``sum_{A^c} |p - q| >= |P_{A^c} - Q_{A^c}| = |Q_A - P_A|``; termwise,
    ``|p_v - q_v| >= (p_v - u_q)_+`` on ``B`` and ``(q_v - u_p)_+`` on ``C``. So

    .. math:: TV \ge \tfrac12\Big(\sum_A |p-q| + \max\big(|Q_A - P_A|,
              \sum_B (p_v - u_q)_+ + \sum_C (q_v - u_p)_+\big)\Big).

    TV, upper: ``|p_v - q_v| <= p_v + q_v`` on ``A^c``, whose masses are ``1 - P_A`` and
    ``1 - Q_A``:  ``TV <= min(1, 1/2 (sum_A |p - q| + (1 - P_A) + (1 - Q_A)))``.

    KL, lower: data processing (log-sum inequality) on the same partition,
    ``KL >= sum_A p log(p/q) + P_{A^c} log(P_{A^c} / Q_{A^c})``, and Pinsker
    ``KL >= 2 TV^2 >= 2 TV_lower^2``; the larger of the two.

    KL, upper: ``+inf`` unless every token that can carry roll mass has a known ``q``:
    any ``v in B`` (``p_v > 0`` known, ``q_v`` may be arbitrarily close to 0), or
    ``m_p > 0`` with ``D`` possibly non-empty (``D`` is empty only when ``vocab_size`` is
    given and ``|S_r | S_t| = V``), makes KL unbounded above. Otherwise
    ``KL = sum_A p log(p/q) + sum_C p_v log(p_v/q_v)`` with ``p_v <= u_p``, so
    ``sum_C p_v log(p_v/q_v) <= m_p max(0, max_C log(u_p/q_v))``.

    With ``k = V`` (all known) ``A`` is the vocabulary, the tails vanish, and both bounds
    equal the exact values. Probabilities are taken as ``exp`` of the logprobs in float64;
    per-set indices must be unique.

    Args:
        idx_theta, logp_theta: ``(..., k_t)`` indices and logprobs of theta.
        idx_roll, logp_roll: ``(..., k_r)`` indices and logprobs of roll.
        vocab_size: ``V``, needed only to recognise an empty ``D``.
        assume_topk: use the smallest known probability as a cap (see above).

    Returns:
        ``{"tv_lower", "tv_upper", "kl_lower", "kl_upper"}``, ``(...)`` float64 tensors.
    """
    from trm_bounds.divergences_torch import kl_terms_from_logprobs

    torch = _torch()
    f64 = torch.float64
    it = _as_tensor(idx_theta).long()
    dev = it.device
    ir = _as_tensor(idx_roll, dev).long()
    lq_k = _as_tensor(logp_theta, dev).to(f64)
    lp_k = _as_tensor(logp_roll, dev).to(f64)
    known_t = it >= 0  # (..., kt)
    known_r = ir >= 0  # (..., kr)
    q_k = torch.where(known_t, lq_k.exp(), 0.0)  # (..., kt)
    p_k = torch.where(known_r, lp_k.exp(), 0.0)  # (..., kr)
    eq = (ir.unsqueeze(-1) == it.unsqueeze(-2)) & known_r.unsqueeze(-1) & known_t.unsqueeze(-2)
    r_in_t = eq.any(-1)  # (..., kr) roll index also known for theta  (A from roll's side)
    t_in_r = eq.any(-2)  # (..., kt)
    q_at_r = (eq.to(f64) * q_k.unsqueeze(-2)).sum(-1)  # (..., kr) q of A tokens, 0 elsewhere
    m_p = (1.0 - p_k.sum(-1)).clamp(min=0.0)
    m_q = (1.0 - q_k.sum(-1)).clamp(min=0.0)
    if assume_topk:
        u_p = torch.minimum(m_p, _amin_or_inf(torch.where(known_r, p_k, math.inf)))
        u_q = torch.minimum(m_q, _amin_or_inf(torch.where(known_t, q_k, math.inf)))
    else:
        u_p, u_q = m_p, m_q
    inA = r_in_t  # roll-side view of A
    P_A = torch.where(inA, p_k, 0.0).sum(-1)
    Q_A = (q_k * t_in_r).sum(-1)
    tv_A = torch.where(inA, (p_k - q_at_r).abs(), 0.0).sum(-1)
    inB = known_r & ~r_in_t
    inC = known_t & ~t_in_r
    capB = torch.where(inB, (p_k - u_q.unsqueeze(-1)).clamp(min=0.0), 0.0).sum(-1)
    capC = torch.where(inC, (q_k - u_p.unsqueeze(-1)).clamp(min=0.0), 0.0).sum(-1)
    rest_p = (1.0 - P_A).clamp(min=0.0)
    rest_q = (1.0 - Q_A).clamp(min=0.0)
    tv_lower = 0.5 * (tv_A + torch.maximum((Q_A - P_A).abs(), capB + capC))
    tv_upper = torch.clamp(0.5 * (tv_A + rest_p + rest_q), max=1.0)
    tv_lower = torch.minimum(tv_lower, tv_upper)
    # KL over A: p log(p/q) = p (e^d - 1 - d) + p - q, d = log q - log p
    lq_at_r = torch.where(inA, q_at_r.log(), 0.0)
    tA = kl_terms_from_logprobs(torch.where(inA, lp_k, 0.0), lq_at_r)  # 0 outside A
    termA = torch.where(inA, tA, 0.0).sum(-1) + (P_A - Q_A)
    # coarse term P log(P/Q) for the rest, in the stable form P (e^D - 1 - D) + P - Q
    # rounding: 1 - sum has an absolute error up to ~k 2^-53; a rest mass below ``tol`` may be
    # a true 0 (P -> 0 changes P log(P/Q) by at most tol |log tol| ~ 1e-13), and Q is raised to
    # at least ``tol`` (P log(P/Q) decreases in Q, so the bound stays below the truth)
    tol = 4.0 * (known_r.shape[-1] + known_t.shape[-1] + 1) * 2.0**-52
    pos = rest_p > tol
    Qc = rest_q.clamp(min=tol)
    D = torch.where(pos, Qc.log() - rest_p.log(), 0.0)
    coarse = torch.where(pos, rest_p * (torch.expm1(D) - D) + (rest_p - Qc), 0.0)
    kl_lower = torch.maximum(termA + coarse, 2.0 * tv_lower * tv_lower).clamp(min=0.0)
    # upper: finite only if no B token and (m_p = 0 or D empty)
    n_union = known_r.sum(-1) + inC.sum(-1)
    d_empty = (
        (n_union >= vocab_size) if vocab_size is not None else torch.zeros_like(m_p, dtype=bool)
    )
    finite = (~inB.any(-1)) & ((m_p == 0) | d_empty)
    log_ratio_C = torch.where(inC & (q_k > 0), u_p.unsqueeze(-1).log() - q_k.log(), -math.inf)
    log_ratio_C = torch.where(inC & (q_k == 0) & (u_p.unsqueeze(-1) > 0), math.inf, log_ratio_C)
    tailC = m_p * (-_amin_or_inf(-log_ratio_C)).clamp(min=0.0)
    tailC = torch.where(m_p > 0, tailC, 0.0)
    kl_upper = torch.where(finite, termA + tailC, math.inf)
    kl_upper = torch.maximum(kl_upper, kl_lower)
    return {"tv_lower": tv_lower, "tv_upper": tv_upper, "kl_lower": kl_lower, "kl_upper": kl_upper}
