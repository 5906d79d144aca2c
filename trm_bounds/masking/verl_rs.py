r"""verl's rejection-sampling mask, token by token (docs/theory.md §6).

verl 0.9.1 (``rollout_corr_helper.compute_rollout_rejection_mask``) returns a modified
``(B, T)`` response mask: ``seq_*`` options zero every token of a rejected sequence,
``token_*`` options only the rejected tokens. :func:`rollout_rs_mask` returns that mask from
our statistics (:func:`~trm_bounds.masking.sequence_stats`, :func:`~trm_bounds.masking.decide`)
plus one per-token pass for the ``token_*`` options, so its decisions are verl's on every row
(``tests/masking/test_verl_rs.py``). Like verl, it clips ``r = log pi_theta - log pi_roll`` to
``[-20, 20]`` by default (verl's ``SAFETY_BOUND``, :data:`VERL_SAFETY_BOUND`): a finite
``|r| > 20`` counts as ``|r| = 20`` (``k2 = 200``) and a trainer logprob of ``-inf`` as
``r = -20``. The switch that departs from verl is ``clamp_log_ratio=None``: ``r`` unclipped,
so a token with ``|r| > 20`` counts in full and a trainer ``-inf`` is an infinite divergence
that every criterion rejects (the honest reading of a zero-probability token; verl keeps a
long sequence holding one under ``seq_mean_k3``). Token ``k1 = -r``, ``k2 = r^2/2``,
``k3 = e^r - 1 - r``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from trm_bounds.masking._tensors import _as_tensor, _compute_dtype, _torch
from trm_bounds.masking.criteria import criterion_parts, decide, needs_k2_sum, parse_rollout_rs
from trm_bounds.masking.stats import sequence_stats

if TYPE_CHECKING:
    import torch

__all__ = ["VERL_SAFETY_BOUND", "rollout_rs_mask"]

#: verl's clip of the log ratio (``rollout_corr_helper``: ``SAFETY_BOUND = 20.0``).
VERL_SAFETY_BOUND = 20.0


def rollout_rs_mask(
    log_probs: Any,
    rollout_log_probs: Any,
    response_mask: Any,
    rollout_rs: str,
    rollout_rs_threshold: str | float,
    *,
    clamp_log_ratio: float | None = VERL_SAFETY_BOUND,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""verl's modified response mask for ``rollout_rs`` at ``rollout_rs_threshold``.

    .. math:: M'_{it} = m_{it}\prod_{o} \mathrm{keep}_o(i, t),

    ``keep_o(i, t)`` the token decision of a ``token_*`` option, the sequence decision of
    :func:`~trm_bounds.masking.decide` for a ``seq_*`` option.

    Args:
        log_probs, rollout_log_probs: ``(B, T)`` trainer and rollout logprobs (nats).
        response_mask: ``(B, T)`` valid-token mask.
        rollout_rs, rollout_rs_threshold: verl's option strings
            (:func:`~trm_bounds.masking.parse_rollout_rs`).
        clamp_log_ratio: clip ``r`` to ``[-c, c]`` first; default verl's 20 (verl's
            decisions exactly); None departs from verl (``r`` unclipped).

    Returns:
        ``(token_mask, seq_accept)``: ``(B, T)`` bool (True = kept; False on padding) and
        ``(B,)`` bool (True iff no valid token was rejected).

    >>> import torch
    >>> lp = torch.tensor([[-1.0, -1.0], [-1.0, -3.0]])
    >>> tm, acc = rollout_rs_mask(lp, torch.full((2, 2), -1.0), torch.ones(2, 2), "token_k2", 0.5)
    >>> tm.tolist(), acc.tolist()
    ([[True, True], [True, False]], [True, False])
    """
    torch = _torch()
    name, th = parse_rollout_rs(rollout_rs, rollout_rs_threshold)
    parts = criterion_parts(name)
    lp = _as_tensor(log_probs).detach()
    rlp = _as_tensor(rollout_log_probs, lp.device).detach()
    m = _as_tensor(response_mask, lp.device).detach()
    valid = m if m.dtype == torch.bool else m != 0
    keep = valid.clone()  # (B, T)
    seq_parts = [p for p in parts if not p.startswith("token_")]
    if seq_parts:
        st = sequence_stats(
            lp, rlp, m, clamp_log_ratio=clamp_log_ratio, k2_sum=needs_k2_sum(seq_parts)
        )
        dec = decide(st, th, seq_parts)
        for p in seq_parts:
            keep &= dec[p].unsqueeze(-1)
    tok_parts = [p for p in parts if p.startswith("token_")]
    if tok_parts:
        dtype = _compute_dtype(lp, rlp)
        r = lp.to(dtype) - rlp.to(dtype)  # (B, T)
        if clamp_log_ratio is not None:
            r.clamp_(-float(clamp_log_ratio), float(clamp_log_ratio))
        for p in tok_parts:
            t = th[p]
            if p == "token_k1":
                k1 = -r
                keep &= (k1 >= math.log(t[0])) & (k1 <= math.log(t[1]))  # type: ignore[index]
            elif p == "token_k2":
                keep &= 0.5 * r * r <= t
            else:  # token_k3, as verl writes it
                keep &= torch.exp(r) - 1.0 - r <= t
    seq_accept = ~(valid & ~keep).any(dim=-1)
    return keep, seq_accept
