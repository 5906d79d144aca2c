r"""The torch twin of :mod:`trm_bounds.divergences` (docs/theory.md §3 and §6).

Same formulas, on tensors of any dtype and device, for the trainer-side code (masking, exact
divergences from logits) and the neural enumeration engine.  Forward KL, rollout first, nats:

.. math:: \mathrm{KL}(p\|q) = \sum_v p_v\,(e^{d_v} - 1 - d_v),\quad d_v = \log q_v - \log p_v.

Tests check every function here against its numpy twin in float64.  Importing this module
imports torch; the numpy kernel does not.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["kl_terms_from_logprobs", "kl_from_logprobs", "tv_from_logprobs", "k1", "k2", "k3"]


def kl_terms_from_logprobs(logp: Tensor, logq: Tensor) -> Tensor:
    r"""Per-entry forward-KL terms ``p (expm1(d) - d)``, ``d = log q - log p`` (docs/theory.md §3).

    ``p = 0`` gives ``q`` (the limit of ``p log(p/q) + q - p``); ``q = 0 < p`` gives ``+inf``
    (also where ``p`` underflows: ``log p = -800`` is a positive probability).
    Twin of :func:`trm_bounds.divergences.kl_terms_from_logprobs`.

    >>> lp = torch.log(torch.tensor([0.9, 0.1], dtype=torch.float64))
    >>> lq = torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64))
    >>> round(float(kl_terms_from_logprobs(lp, lq).sum()), 12)
    0.368064207168
    """
    p = logp.exp()
    d = logq - logp
    term = (torch.expm1(d) - d) * p
    if not bool(torch.isfinite(term).all()):
        # e^d overflows where p is far below q: the same term is q - p - p d there
        q = logq.exp()
        term = torch.where(torch.isfinite(term) | ~(q > 0), term, q - p - p * d)
    term = torch.where(torch.isneginf(logp), logq.exp(), term)
    return torch.where(~torch.isneginf(logp) & torch.isneginf(logq), torch.inf, term)


def kl_from_logprobs(logp: Tensor, logq: Tensor, dim: int = -1) -> Tensor:
    """Forward KL(p || q) in nats from log-probabilities, summed over ``dim`` (docs/theory.md §3)."""
    return kl_terms_from_logprobs(logp, logq).sum(dim=dim)


def tv_from_logprobs(logp: Tensor, logq: Tensor, dim: int = -1) -> Tensor:
    """Total variation ``1/2 sum_v |q_v - p_v|`` from log-probabilities (docs/theory.md §3)."""
    return 0.5 * (logq.exp() - logp.exp()).abs().sum(dim=dim)


def k1(r: Tensor) -> Tensor:
    """Sample estimator ``k1 = -r``, ``r = log rho`` (docs/theory.md §6)."""
    return -r


def k2(r: Tensor) -> Tensor:
    """Sample estimator ``k2 = r^2 / 2`` (docs/theory.md §6)."""
    return 0.5 * r * r


def k3(r: Tensor) -> Tensor:
    """Sample estimator ``k3 = expm1(r) - r`` (unbiased for KL(roll||theta); docs/theory.md §6)."""
    return torch.expm1(r) - r
