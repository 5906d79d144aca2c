r"""Per-context and sample-based divergences (docs/theory.md §3 and section 6).

All KL divergences are *forward*, rollout first, in nats:
``KL(c) = sum_v pi_roll(v|c) log(pi_roll(v|c) / pi_theta(v|c))``.

Numerics (docs/theory.md §3): each KL term is computed as
``p (expm1(d) - d)`` with ``d = log q - log p``, which equals
``p log(p/q) + q - p``; the added ``q - p`` terms sum to zero over the vocabulary,
and the form has no cancellation when ``q`` is close to ``p`` (it is
``p (u - log1p(u))`` with ``u = (q - p)/p``).  Terms with ``p = 0`` contribute ``q``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "kl",
    "kl_terms",
    "kl_terms_from_logprobs",
    "kl_from_logprobs",
    "softmax",
    "tv",
    "tv_from_logprobs",
    "k1",
    "k2",
    "k3",
    "PINSKER_SLACK",
]

#: Additive slack used when checking Pinsker-type relations in squared form,
#: ``2 TV^2 <= KL + PINSKER_SLACK`` (docs/theory.md §3).
PINSKER_SLACK = 1e-14

_TINY = np.finfo(np.float64).tiny  # smallest positive normal float64


def kl_terms_from_logprobs(logp: ArrayLike, logq: ArrayLike) -> np.ndarray:
    r"""Per-entry terms of the forward KL(p || q) from log-probabilities, nats (log-space form).

    .. math:: p_v\,(e^{d_v} - 1 - d_v),\quad d_v = \log q_v - \log p_v

    which equals ``p log(p/q) + q - p`` (docs/theory.md §3, stable form); the terms sum to
    the KL over the vocabulary.  ``p = 0`` gives ``q``; ``q = 0 < p`` gives ``+inf``.

    >>> kl_terms_from_logprobs(np.log([0.5, 0.5]), np.log([0.5, 0.5])).tolist()
    [0.0, 0.0]
    """
    logp = np.asarray(logp, dtype=np.float64)
    logq = np.asarray(logq, dtype=np.float64)
    p = np.exp(logp)
    with np.errstate(invalid="ignore", over="ignore"):
        d = logq - logp
        term = p * (np.expm1(d) - d)
        if not np.isfinite(term).all():
            # e^d overflows where p is far below q (d > 709, e.g. a subnormal p): there the
            # same term is q - p - p d, with no cancellation since e^d dominates.
            q = np.exp(logq)
            term = np.where(np.isfinite(term) | ~(q > 0.0), term, q - p - p * d)
    # p = 0: the term is q (limit of p log(p/q) + q - p); q = 0 < p: +inf, also where p
    # itself underflows (log p = -800 is a positive probability).
    term = np.where(np.isneginf(logp), np.exp(logq), term)
    return np.where(~np.isneginf(logp) & np.isneginf(logq), np.inf, term)


def kl_from_logprobs(logp: ArrayLike, logq: ArrayLike, axis: int = -1) -> np.ndarray:
    r"""Forward KL(p || q) in nats from log-probabilities, summed over ``axis``.

    .. math:: \mathrm{KL}(p\|q) = \sum_v p_v\,(e^{d_v} - 1 - d_v),\quad d_v = \log q_v - \log p_v

    (docs/theory.md §3, stable form; terms from :func:`kl_terms_from_logprobs`).  ``p`` is
    the rollout policy.

    >>> float(kl_from_logprobs(np.log([0.5, 0.5]), np.log([0.5, 0.5])))
    0.0
    """
    return kl_terms_from_logprobs(logp, logq).sum(axis=axis)


def kl_terms(
    p: np.ndarray,
    q: np.ndarray,
    *,
    diff: np.ndarray | None = None,
    work: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    r"""Per-entry terms of the forward KL(p || q), nats (probability-space form, in place).

    .. math:: p_v\,(u_v - \log(1 + u_v)),\quad u_v = (q_v - p_v)/p_v

    with ``log(1 + u) = log1p(u)`` where ``u >= -1/2`` and ``log(q/p)`` below (there ``1 + u``
    is not accurate from ``u``); equal to ``p log(p/q) + q - p`` (docs/theory.md §3).  A term
    with ``p = 0`` is ``q``; one with ``q = 0 < p`` is ``+inf``.  This is the form for hot loops
    over float64 probability tables (the finite-state DP): ``diff = q - p`` may be passed when
    the caller has it, and ``work`` (two scratch arrays of ``p``'s shape) avoids allocation; the
    result is written into ``work[0]``.  Same values as :func:`kl_terms_from_logprobs` to a few
    ulps (tested).

    >>> t = kl_terms(np.array([0.9, 0.1]), np.array([0.5, 0.5]))
    >>> textbook = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    >>> bool(abs(t.sum() - textbook) < 1e-15)
    True
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    D = q - p if diff is None else diff
    u, lg = work if work is not None else (np.empty_like(D), np.empty_like(D))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        np.divide(D, p, out=u)
        np.log1p(u, out=lg)
        if not u.min(initial=0.0) >= -0.5:  # also when a NaN (p = 0) hides the minimum
            far = u < -0.5
            ratio = q[far] / p[far]
            # log(q/p), or log q - log p where q/p is subnormal and has lost its digits
            lg[far] = np.where(ratio >= _TINY, np.log(ratio), np.log(q[far]) - np.log(p[far]))
        np.subtract(u, lg, out=u)
        np.multiply(u, p, out=u)
    if not p.all():
        np.copyto(u, q, where=p == 0)
    if not np.isfinite(u).all():
        # D / p overflows where p is subnormal beside a normal q: there the same term is
        # q - p - p log(q/p) (no cancellation: q - p dominates).  q = 0 < p stays +inf.
        redo = ~np.isfinite(u) & (p > 0) & (q > 0)
        u[redo] = D[redo] - p[redo] * (np.log(q[redo]) - np.log(p[redo]))
    return u


def kl(p: ArrayLike, q: ArrayLike, axis: int = -1) -> np.ndarray:
    r"""Forward KL(p || q) in nats between probability vectors along ``axis``.

    .. math:: \mathrm{KL}(p\|q) = \sum_v p_v \log(p_v/q_v) + q_v - p_v

    computed as ``p (u - log1p(u))``, ``u = (q-p)/p`` (docs/theory.md §3).

    >>> import math  # the textbook sum 0.9 log(0.9/0.5) + 0.1 log(0.1/0.5)
    >>> abs(float(kl([0.9, 0.1], [0.5, 0.5])) - (0.9 * math.log(1.8) + 0.1 * math.log(0.2))) < 1e-15
    True
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return kl_from_logprobs(np.log(p), np.log(q), axis=axis)


def tv(p: ArrayLike, q: ArrayLike, axis: int = -1) -> np.ndarray:
    r"""Total variation ``TV(p, q) = 1/2 sum_v |p_v - q_v|`` along ``axis`` (docs/theory.md §3).

    >>> float(tv([0.9, 0.1], [0.5, 0.5]))
    0.4
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    return 0.5 * np.abs(p - q).sum(axis=axis)


def tv_from_logprobs(logp: ArrayLike, logq: ArrayLike, axis: int = -1) -> np.ndarray:
    r"""Total variation from log-probabilities: ``1/2 sum_v |e^{log p_v} - e^{log q_v}|``."""
    return tv(np.exp(np.asarray(logp, np.float64)), np.exp(np.asarray(logq, np.float64)), axis)


def softmax(z: ArrayLike, axis: int = -1) -> np.ndarray:
    """Softmax along ``axis`` in float64 (max-shifted), the one numpy softmax of the package.

    >>> softmax([0.0, 0.0]).tolist()
    [0.5, 0.5]
    """
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def k1(r: ArrayLike) -> np.ndarray:
    r"""Sample estimator ``k1 = -r`` of KL(roll||theta), ``r = log rho`` (docs/theory.md §6)."""
    return -np.asarray(r, dtype=np.float64)


def k2(r: ArrayLike) -> np.ndarray:
    r"""Sample estimator ``k2 = r^2 / 2`` (symmetric, for max-filtering; docs/theory.md §6)."""
    r = np.asarray(r, dtype=np.float64)
    return 0.5 * r * r


def k3(r: ArrayLike) -> np.ndarray:
    r"""Sample estimator ``k3 = rho - 1 - r = expm1(r) - r`` (docs/theory.md §6).

    Unbiased for KL(roll || theta) under rollout sampling; non-negative.

    >>> float(k3(0.0))
    0.0
    """
    r = np.asarray(r, dtype=np.float64)
    return np.expm1(r) - r
