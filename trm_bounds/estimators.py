r"""Monte Carlo estimates of the surrogate error and the divergences from sampled sequences.

Generic: arrays in, estimates with confidence intervals out, for any sampled policy pair.
Inputs for ``N`` sequences of horizon ``T`` sampled from ``pi_roll`` (prompts included):

- ``logr`` ``(N, T)``: sampled-token log-ratios
  ``r_t = log pi_theta(y_t|c_t) - log pi_roll(y_t|c_t)``;
- ``reward`` ``(N,)`` in ``[0, 1]``;
- optionally ``kl_ctx``, ``tv_ctx`` ``(N, T)``: the exact forward ``KL(c_t)`` and ``TV(c_t)`` of
  each *visited* context, from the full next-token distributions of both policies.

Every estimate is a sample mean of i.i.d. per-sequence terms, hence unbiased; its interval is
``mean +- z * sd / sqrt(N)`` (``z = 4`` by default).  Estimators (docs/theory.md §2, §3, §6):

- ``error``, ``L_prime``, ``J_diff``: the summands of
  :func:`trm_bounds.certify.error_estimate.error_terms` (their one owner), here with the
  ``z``-sigma intervals of the studies instead of the gated intervals of the log reports;
- ``Dbar`` (per ``t``): ``|expm1(r_t)| / 2`` (since ``E_{y_t~roll}|rho_t - 1| = 2 TV(c_t)``);
  ``Dbar_rb``: ``TV(c_t)`` of the visited context (Rao-Blackwellised, lower variance);
- ``D_KL_seq``: ``sum_t k3(r_t) = sum_t (expm1(r_t) - r_t)`` (each term unbiased for
  ``KL(c_t)``, so the sum is unbiased for the chain-rule ``D_KL^seq``); ``D_KL_seq_k1``:
  ``-S``; ``D_KL_seq_rb``: ``sum_t KL(c_t)`` of the visited contexts;
- ``D_TV_seq``: ``|expm1(S)| / 2`` (``TV(P, Q) = 1/2 E_P |Q/P - 1|``).

The maxima ``eps`` and ``delta`` are *not* estimable from samples: ``eps_observed`` and
``delta_observed`` are the maxima of ``TV(c_t)`` and ``KL(c_t)`` over the visited contexts,
lower estimates of the true maxima (docs/theory.md §6).  :func:`plugin_bounds_from_estimates`
evaluates the bounds at these values by the one plug-in rule
(:func:`trm_bounds.bounds.plugin_bounds`) and says so in its ``caveat`` field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.bounds import plugin_bounds
from trm_bounds.certify.error_estimate import error_terms
from trm_bounds.divergences import k1, k3

__all__ = ["Estimate", "mean_ci", "mc_estimates", "plugin_bounds_from_estimates", "CAVEAT"]

CAVEAT = (
    "Monte Carlo plug-in: eps and delta are observed maxima over visited contexts (lower "
    "estimates of the true maxima), Dbar_t, D_KL_seq and D_TV_seq are point estimates; these "
    "bounds are therefore estimates, not certified upper bounds on |Error|."
)


@dataclass(frozen=True)
class Estimate:
    """A sample-mean estimate ``mean`` with standard error ``se`` and interval ``[lo, hi]``."""

    mean: float | np.ndarray
    se: float | np.ndarray
    lo: float | np.ndarray
    hi: float | np.ndarray

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (numpy arrays kept; use ``trm_bounds.results.to_jsonable`` for JSON)."""
        return {"mean": self.mean, "se": self.se, "lo": self.lo, "hi": self.hi}

    def contains(self, value: ArrayLike) -> bool:
        """Whether every entry of ``value`` lies in ``[lo, hi]``."""
        v = np.asarray(value, dtype=np.float64)
        return bool(np.all((self.lo <= v) & (v <= self.hi)))


def mean_ci(samples: ArrayLike, *, z: float = 4.0, axis: int = 0) -> Estimate:
    """Sample mean along ``axis`` with interval ``mean +- z sd / sqrt(N)`` (sd with ``ddof=1``).

    >>> e = mean_ci([1.0, 2.0, 3.0], z=1.0)
    >>> float(e.mean), float(e.se)
    (2.0, 0.5773502691896258)
    """
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[axis]
    m = x.mean(axis=axis)
    se = x.std(axis=axis, ddof=1) / np.sqrt(n) if n > 1 else np.full_like(m, np.inf)
    return Estimate(m, se, m - z * se, m + z * se)


def mc_estimates(
    logr: ArrayLike,
    reward: ArrayLike,
    *,
    kl_ctx: ArrayLike | None = None,
    tv_ctx: ArrayLike | None = None,
    z: float = 4.0,
) -> dict[str, Any]:
    r"""Unbiased estimates with ``z``-sigma intervals from ``N`` rollout samples (module doc).

    ``logr`` ``(N, T)`` sampled log-ratios ``log rho_t``; ``reward`` ``(N,)`` in ``[0, 1]``;
    ``kl_ctx``, ``tv_ctx`` ``(N, T)`` optional exact per-visited-context forward KL (nats) and
    TV.  Returns a dict of :class:`Estimate` (``error``, ``L_prime``, ``J_diff``, ``Dbar``,
    ``D_KL_seq`` (k3), ``D_KL_seq_k1``, ``D_TV_seq``, and with the per-context arrays
    ``Dbar_rb``, ``D_KL_seq_rb``), plus floats ``eps_observed``, ``delta_observed`` (lower
    estimates of ``eps`` and ``delta``) and ``N``, ``T``.

    >>> est = mc_estimates(np.zeros((4, 3)), np.ones(4))
    >>> float(est["error"].mean), float(est["D_KL_seq"].mean)
    (0.0, 0.0)
    """
    r = np.asarray(logr, dtype=np.float64)
    R = np.asarray(reward, dtype=np.float64)
    if r.ndim != 2 or R.shape != r.shape[:1]:
        raise ValueError(f"logr must be (N, T) and reward (N,); got {r.shape} and {R.shape}")
    N, T = r.shape
    S = r.sum(axis=1)  # (N,)
    em = np.expm1(r)  # (N, T)  rho_t - 1
    terms = error_terms(S, em.sum(axis=1), R)  # the one owner of the summands (§2, §9)
    out: dict[str, Any] = {
        "N": N,
        "T": T,
        "z": z,
        "error": mean_ci(terms["error"], z=z),
        "L_prime": mean_ci(terms["L_prime"], z=z),
        "J_diff": mean_ci(terms["J_diff"], z=z),
        "Dbar": mean_ci(0.5 * np.abs(em), z=z),
        "D_KL_seq": mean_ci(k3(r).sum(axis=1), z=z),
        "D_KL_seq_k1": mean_ci(k1(S), z=z),
        "D_TV_seq": mean_ci(0.5 * np.abs(np.expm1(S)), z=z),
    }
    if tv_ctx is not None:
        tv_c = np.asarray(tv_ctx, dtype=np.float64)
        out["Dbar_rb"] = mean_ci(tv_c, z=z)
        out["eps_observed"] = float(tv_c.max())
    if kl_ctx is not None:
        kl_c = np.asarray(kl_ctx, dtype=np.float64)
        out["D_KL_seq_rb"] = mean_ci(kl_c.sum(axis=1), z=z)
        out["delta_observed"] = float(kl_c.max())
    return out


def plugin_bounds_from_estimates(est: dict[str, Any], *, sharp: bool = False) -> dict[str, Any]:
    r"""Bounds of docs/theory.md §4 (or §5 with ``sharp``) at the Monte Carlo estimates.

    Takes the output of :func:`mc_estimates` (with the per-context arrays) and evaluates
    :func:`trm_bounds.bounds.plugin_bounds` at ``eps = eps_observed``,
    ``delta = delta_observed``, ``dkl_seq`` = the Rao-Blackwellised ``D_KL_seq_rb``,
    ``dtv_seq = D_TV_seq`` and ``dbar = Dbar_rb`` (point estimates).  Sampled estimates need
    not satisfy the relations of docs/theory.md §3 exactly; the one plug-in rule makes them
    consistent by *raising* inputs only (every bound is non-decreasing in each divergence),
    and names each raised input in ``inputs["adjusted"]``.  Returns
    ``{"bounds": {...}, "inputs": {...}, "caveat": CAVEAT}``: the result is an estimate, not
    a certified bound (``eps``, ``delta`` are observed maxima).

    >>> est = mc_estimates(np.zeros((4, 3)), np.ones(4), kl_ctx=np.zeros((4, 3)),
    ...                    tv_ctx=np.zeros((4, 3)))
    >>> out = plugin_bounds_from_estimates(est)
    >>> out["bounds"]["unified"], out["caveat"] == CAVEAT
    (0.0, True)
    """
    missing = [
        k for k in ("eps_observed", "delta_observed", "Dbar_rb", "D_KL_seq_rb") if k not in est
    ]
    if missing:
        raise ValueError(
            f"estimates: missing {', '.join(missing)} (call mc_estimates with kl_ctx and tv_ctx)"
        )
    out = plugin_bounds(
        est["T"],
        eps=float(est["eps_observed"]),
        delta=float(est["delta_observed"]),
        dkl_seq=float(est["D_KL_seq_rb"].mean),
        dtv_seq=float(est["D_TV_seq"].mean),
        dbar=np.asarray(est["Dbar_rb"].mean, dtype=np.float64),
        sharp=sharp,
    )
    return {
        "bounds": {k: float(v) for k, v in out["bounds"].items()},
        "inputs": out["inputs"],
        "caveat": CAVEAT,
    }
