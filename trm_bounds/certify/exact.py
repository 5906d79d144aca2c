r"""Exact values of the certified quantities on a tree instance, by enumeration (docs/theory.md §9).

The reference the certificates are tested against.  Unlike :mod:`trm_bounds.engines.tree`, it
does **not** require :math:`\pi_\theta \ll \pi_{\text{roll}}`: the error is taken from its
definition :math:`\mathrm{Error} = J_\theta - J_{\text{roll}} - L'` with the centred surrogate
:math:`L' = \mathbb E_{\text{roll}}[R\sum_t(\rho_t - 1)]` (docs/theory.md §2), which only needs
:math:`\rho_t` on sequences the rollout samples.  Per sequence ``y`` of prompt ``x``:

- ``w_roll`` = :math:`P(x)P^{\text{roll}}(y\mid x)`, ``w_theta`` likewise;
- ``X`` = :math:`\sum_t(1-\rho_t)_+` (:mod:`trm_bounds.certify.samples`), defined where
  ``w_roll > 0`` and 0 elsewhere;
- ``S`` = :math:`\sum_t\log\rho_t` and ``U`` = :math:`\sum_t(\rho_t - 1)` (the summands of
  the error estimate, :mod:`trm_bounds.certify.error_estimate`), defined where ``w_roll > 0``
  (``S = -inf`` where some :math:`\rho_t = 0`) and 0 elsewhere;
- ``coef`` = :math:`w_\theta - w_{\text{roll}} - w_{\text{roll}}\sum_t(\rho_t - 1)`, so that
  :math:`\mathrm{Error} = \sum_y R(y)\,\mathrm{coef}(y)` and
  :math:`\max_{R\in[0,1]}|\mathrm{Error}| = \max(\sum\mathrm{coef}_+, \sum\mathrm{coef}_-)`.

Cost: ``n_prompts * V^T * T`` — for small trees only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["SequenceTable", "sequence_table"]


@dataclass(frozen=True)
class SequenceTable:
    """Per-sequence arrays ``(n_prompts, V^T)`` and the exact sums (module docstring)."""

    w_roll: np.ndarray
    w_theta: np.ndarray
    X: np.ndarray
    coef: np.ndarray
    reward: np.ndarray
    dbar: np.ndarray  # (T,) Dbar_t = E_roll TV(c_t), from the context tables directly
    S: np.ndarray  # (n_prompts, V^T) sum_t log rho_t
    U: np.ndarray  # (n_prompts, V^T) sum_t (rho_t - 1)

    @property
    def dbar_sum(self) -> float:
        r""":math:`\sum_t \bar D_t` computed from the contexts' TV (not from ``X``)."""
        return float(self.dbar.sum())

    @property
    def error(self) -> float:
        """``Error`` at the instance's reward."""
        return float((self.reward * self.coef).sum())

    @property
    def error_max(self) -> float:
        r""":math:`\max_{R\in[0,1]}|\mathrm{Error}|`."""
        return float(max(np.clip(self.coef, 0, None).sum(), np.clip(-self.coef, 0, None).sum()))


def sequence_table(p_x: ArrayLike, pi_roll: ArrayLike, pi_theta: ArrayLike,
                   reward: ArrayLike) -> SequenceTable:
    """Enumerate every response of a tree instance (layout of :mod:`trm_bounds.instances.tree`).

    ``p_x (n,)``, ``pi_roll``/``pi_theta (n, C, V)``, ``reward (n, V^T)``; no absolute
    continuity required.
    """
    p_x = np.asarray(p_x, dtype=np.float64)
    pr = np.asarray(pi_roll, dtype=np.float64)
    pt = np.asarray(pi_theta, dtype=np.float64)
    R = np.asarray(reward, dtype=np.float64)
    V = pr.shape[-1]
    T = int(round(np.log(R.shape[-1]) / np.log(V)))
    K = V**T
    seq = np.arange(K)
    tok = (seq[:, None] // V ** np.arange(T - 1, -1, -1)[None, :]) % V  # (K, T) y_t
    prefix = seq[:, None] // V ** np.arange(T, 0, -1)[None, :]  # (K, T) prefix value y_<t
    ctx = (V ** np.arange(T) - 1)[None, :] // (V - 1) + prefix  # (K, T) context index
    r = pr[:, ctx, tok]  # (n, K, T)
    q = pt[:, ctx, tok]  # (n, K, T)
    w_roll = p_x[:, None] * r.prod(axis=2)  # (n, K)
    w_theta = p_x[:, None] * q.prod(axis=2)  # (n, K)
    live = w_roll > 0  # (n, K): every r_t > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(live[..., None], q / np.where(r > 0, r, 1.0), 1.0)  # (n, K, T)
    a = np.clip(1.0 - rho, 0.0, None)  # (n, K, T)
    X = a.sum(axis=2)
    coef = w_theta - w_roll - w_roll * (rho - 1.0).sum(axis=2)
    # Dbar_t from the context tables: d_t^roll(c) TV(c), independent of X.
    tv_c = 0.5 * np.abs(pt - pr).sum(axis=2)  # (n, C)
    dbar = np.empty(T)
    for t in range(T):
        first = (V**t - 1) // (V - 1)
        # reach probability of each context at position t+1: sum of w over sequences sharing it
        reach = np.zeros((p_x.shape[0], V**t))
        np.add.at(reach, (slice(None), prefix[:, t]), w_roll)
        dbar[t] = float((reach * tv_c[:, first:first + V**t]).sum())
    with np.errstate(divide="ignore"):
        S = np.where(live, np.log(rho).sum(axis=2), 0.0)
    U = np.where(live, (rho - 1.0).sum(axis=2), 0.0)
    return SequenceTable(w_roll, w_theta, X, coef, R, dbar, S, U)
