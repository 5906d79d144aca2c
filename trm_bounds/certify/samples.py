r"""Per-sequence variables of the certified bounds, from sampled logprobs (docs/theory.md §9).

Inputs, for ``B`` sequences sampled from ``pi_roll`` and padded to length ``T``:
``log_probs`` ``(B, T)`` = :math:`\log\pi_\theta(y_t\mid c_t)`, ``rollout_log_probs``
``(B, T)`` = :math:`\log\pi_{\text{roll}}(y_t\mid c_t)`, ``mask`` ``(B, T)`` (non-zero at
valid response tokens).  numpy arrays or torch tensors (converted to float64 numpy; torch
is never imported here).  Only valid positions are checked and used.

With :math:`r_t = \log\pi_\theta - \log\pi_{\text{roll}}` and :math:`\rho_t = e^{r_t}`:

- :math:`a_t = (1-\rho_t)_+ = -\mathrm{expm1}(\min(r_t, 0)) \in [0, 1]`, so
  :math:`\mathbb E[a_t \mid c_t] = \mathrm{TV}(c_t)` (§9, Lemma 9.1);
- :math:`X = \sum_t a_t \in [0, T_i]`, :math:`\mathbb E_{\text{roll}} X = \sum_t \bar D_t`.

``log_probs = -inf`` (theta gives the sampled token zero probability, e.g. top-p/top-k on the
other side) is allowed: ``rho = 0``.  ``rollout_log_probs = -inf`` cannot occur for a token the
rollout sampled and is an error, as are NaN and ``+inf``, a log-probability above
:data:`MAX_LOGPROB` (a probability above 1 beyond rounding) and a mask
value other than 0 or 1; each such error names the field and the first bad row.  A row without
valid token (all-masked padding) is not a sequence: it has length 0 and the certificates
exclude it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Largest accepted log-probability (nats): a probability above 1 beyond rounding is a logging
#: bug.  The one owner; the log readers (trm_bounds.logs.batch) use it too.
MAX_LOGPROB = 1e-6

__all__ = ["as_float64", "valid_log_ratios", "divergence_terms", "log_ratio_sums"]


def as_float64(a: Any, field: str) -> np.ndarray:
    """``a`` (numpy array, torch tensor or nested list) as a float64 numpy array."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor, without importing torch
        a = a.detach().cpu().double().numpy()
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{field}: not convertible to a float array ({exc})") from None


def valid_log_ratios(log_probs: Any, rollout_log_probs: Any, mask: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(r, m)``: log-ratios ``(B, T)`` with 0 at invalid positions, and the bool mask.

    Raises ``ValueError`` naming the field (and the row and token) for shape mismatch, a mask
    value other than 0/1, NaN, ``+inf`` or a value above ``MAX_LOGPROB`` at a valid position,
    ``-inf`` in ``rollout_log_probs`` at a valid position, or no valid token at all.
    """
    lp = as_float64(log_probs, "log_probs")
    lr = as_float64(rollout_log_probs, "rollout_log_probs")
    m = as_float64(mask, "mask")
    if lp.ndim != 2:
        raise ValueError(f"log_probs: expected shape (B, T), got {lp.shape}")
    for name, a in (("rollout_log_probs", lr), ("mask", m)):
        if a.shape != lp.shape:
            raise ValueError(f"{name}: shape {a.shape} differs from log_probs {lp.shape}")
    bad_mask = ~((m == 0) | (m == 1))  # NaN, -1, 0.5, ... (True/False arrive as 1.0/0.0)
    if bad_mask.any():
        i, t = _first(bad_mask)
        raise ValueError(f"mask: row {i}, token {t}: value {float(m[i, t])!r} is not 0 or 1")
    valid = m == 1
    if not valid.any():
        raise ValueError("mask: no valid token (every entry is 0)")
    for name, a in (("log_probs", lp), ("rollout_log_probs", lr)):
        for bad, what in ((valid & (np.isnan(a) | (a == np.inf)), "NaN or +inf"),
                          (valid & np.isfinite(a) & (a > MAX_LOGPROB),
                           f"log-probability above {MAX_LOGPROB:g}")):
            if bad.any():
                i, t = _first(bad)
                raise ValueError(f"{name}: row {i}, token {t}: {what} at a valid position "
                                 f"(value {float(a[i, t])!r})")
    bad = valid & (lr == -np.inf)
    if bad.any():
        i, t = _first(bad)
        raise ValueError(f"rollout_log_probs: row {i}, token {t}: -inf at a valid position (the "
                         "rollout cannot sample a token it gives probability 0)")
    r = np.where(valid, lp - np.where(valid, lr, 0.0), 0.0)  # (B, T); -inf allowed
    return r, valid


def _first(bad: np.ndarray) -> tuple[int, int]:
    """Row and column of the first True of a ``(B, T)`` boolean array (row-major order)."""
    i = int(np.flatnonzero(bad.any(axis=1))[0])
    return i, int(np.flatnonzero(bad[i])[0])


def divergence_terms(r: np.ndarray, valid: np.ndarray) -> np.ndarray:
    r"""``a_t = (1 - rho_t)_+ = -expm1(min(r_t, 0))`` at valid positions, 0 elsewhere; ``(B, T)``."""
    return np.where(valid, -np.expm1(np.minimum(r, 0.0)), 0.0) + 0.0


def log_ratio_sums(r: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Per-sequence ``S_i = sum_t r_t`` (``log prod_t rho_t``, may be ``-inf``) and
    ``U_i = sum_t (rho_t - 1)`` over the valid positions, each ``(B,)``: the inputs of the
    error estimate (docs/theory.md §9, "The actual error, estimated").  ``r`` is 0 outside
    ``valid`` (as :func:`valid_log_ratios` returns it)."""
    S = r.sum(axis=1)
    with np.errstate(over="ignore"):
        U = np.where(valid, np.expm1(r), 0.0).sum(axis=1)
    return S, U
