r"""The actual surrogate error of a logged run, estimated (docs/theory.md §2, §9): the one owner.

For sequences sampled from :math:`\pi_{\text{roll}}` with rewards ``R``,
:math:`S = \sum_t r_t = \log\prod_t\rho_t` and :math:`U = \sum_t(\rho_t - 1)` per sequence:

.. math::

    J_\theta - J_{\text{roll}} = \mathbb E_{\text{roll}}[R\,\mathrm{expm1}(S)],
    \quad L' = \mathbb E_{\text{roll}}[R\,U],
    \quad \mathrm{Error} = \mathbb E_{\text{roll}}\big[R\,(\mathrm{expm1}(S) - U)\big],

each estimated by the sample mean of its per-sequence summand (:func:`error_terms`), unbiased
under :math:`\pi_\theta \ll \pi_{\text{roll}}` (without it the sequences only
:math:`\pi_\theta` produces are never sampled, and their share of :math:`J_\theta` is missed).  These
are **estimates**, not certificates.  Each comes with its standard error and the Pareto k-hat
of its summands (both tails, :mod:`trm_bounds.certify.pareto`; Vehtari et al., JMLR 2024): the
summands are heavy-tailed (:math:`e^S`), and above the paper's threshold
:math:`\min(1 - 1/\log_{10} n, 0.7)`, or when the weights do not average 1 within their
standard errors, the point estimate is flagged as unreliable.  The **interval** is not a
central-limit interval (gated by k-hat it still covered 28 of 36 times on one instance,
docs/theory.md §9): it is :func:`trm_bounds.certify.error_interval.error_intervals`, which
covers with probability at least ``level`` for every law, given the generation limit
``T_max`` and the reward range; without ``T_max`` it is withheld, with the reason.
The Kish effective sample size :math:`(\sum_i w_i)^2/\sum_i w_i^2` of the weights
:math:`w_i = e^{S_i}` is reported too (0 when every weight is 0).

>>> import numpy as np
>>> lp = np.log(np.full((4, 3), 0.5))
>>> estimate_error(lp, lp, np.ones((4, 3)), np.ones(4))["error"]["estimate"]
0.0
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from trm_bounds.certify.error_interval import error_intervals
from trm_bounds.certify.linear import ORDER_SEED, check_reward_range, check_T_max, group_means
from trm_bounds.certify.pareto import khat_threshold, pareto_khat
from trm_bounds.certify.samples import as_float64, log_ratio_sums, valid_log_ratios

__all__ = ["estimate_error", "estimate_error_sums", "error_terms", "ESS_WARN_FRACTION",
           "QUANTITIES"]

#: ESS / N below which a warning is given (the interval is gated by k-hat, not by the ESS).
ESS_WARN_FRACTION = 0.1
#: Relative size below which ``expm1(S) - U`` is rounding noise (:func:`error_terms`).
NOISE = 1e-10
#: The estimated quantities, in report order.
QUANTITIES = ("error", "J_diff", "L_prime")


def error_terms(S: np.ndarray, U: np.ndarray, R: np.ndarray) -> dict[str, np.ndarray]:
    r"""Per-sequence summands ``(N,)``: ``J_diff = R expm1(S)``, ``L_prime = R U``,
    ``error = J_diff - L_prime`` (docs/theory.md §2, §9).  ``S = -inf`` (some
    :math:`\rho_t = 0`) gives ``expm1(S) = -1``; overflow gives ``inf`` (flagged by the caller).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        jd = R * np.expm1(S)
        lp = R * U
        err = jd - lp
        # expm1(S) - U cancels exactly where one rho_t differs from 1 (second order vanishes);
        # rounding leaves |err| <= T_i 2^-52 (|jd| + |lp|), far below 1e-10 (|jd| + |lp|)
        # for any T_i < 4e5: such values are 0, so no decision rests on rounding noise.
        err = np.where(np.abs(err) <= NOISE * (np.abs(jd) + np.abs(lp)), 0.0, err)
        return {"error": err, "J_diff": jd, "L_prime": lp}


def _tail_k(v: np.ndarray) -> float:
    """k-hat of the heavier of the two tails of ``v`` (``inf`` if ``v`` is not finite)."""
    if not np.isfinite(v).all():
        return math.inf
    return max(pareto_khat(v), pareto_khat(-v))


def _summary(v: np.ndarray, k_max: float) -> dict[str, Any]:
    """Mean, standard error, k-hat of the summands ``v`` and whether k-hat trusts the mean
    (``reliable``; ``unreliable_because`` otherwise)."""
    n = v.shape[0]
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(v.mean())
        se = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    k = _tail_k(v)
    why = None
    if k == math.inf:
        why = ("no Pareto tail fit: fewer than 5 distinct values in a tail of the summands "
               f"({n} {'units' if n != 1 else 'unit'})")
    elif not k < k_max:
        why = f"Pareto k-hat of the summands {k:.2f} not below {k_max:.2f}"
    return {"estimate": mean, "se": se, "pareto_k": k, "reliable": why is None,
            "unreliable_because": why}


def _weights_check(uw: np.ndarray, z: float) -> dict[str, Any]:
    r"""The sample mean of the unit weights :math:`e^{S}` against its known mean 1.

    Under :math:`\pi_\theta \ll \pi_{\text{roll}}`, :math:`\mathbb E_{\text{roll}}[e^S] = 1`
    (Owen 2013, §9.3); a mean further than ``z`` standard errors from 1 says that the sample
    misses where :math:`\pi_\theta` puts its mass (an unseen heavy tail, or no absolute
    continuity), which no tail diagnostic of the seen values can show.
    """
    n = uw.shape[0]
    with np.errstate(invalid="ignore", over="ignore"):
        mean = float(uw.mean())
        se = float(uw.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    ok = bool(math.isfinite(mean) and math.isfinite(se) and abs(mean - 1.0) <= z * se)
    return {"estimate": mean, "se": se, "consistent": ok}


def estimate_error_sums(S: Any, U: Any, rewards: Any, *, level: float = 0.95,
                        group_ids: Any = None, lengths: Any = None, T_max: Any = None,
                        reward_range: Any = (0.0, 1.0), withhold: str | None = None,
                        order_seed: int | None = ORDER_SEED) -> dict[str, Any]:
    r"""Estimates of Error, ``J_theta - J_roll`` and ``L'`` from per-row arrays ``(N,)``, with
    intervals that hold for every law where ``T_max`` is known (docs/theory.md §9).

    ``S``: :math:`\sum_t\log\rho_t` (``-inf`` allowed), ``U``: :math:`\sum_t(\rho_t - 1)`,
    ``rewards``: finite; ``lengths`` optional valid-token counts (rows of length 0 are not
    sequences: excluded, counted in ``n_empty_rows``); ``group_ids`` optional, one id per row:
    the units are the prompt groups (means of the summands per group).  ``T_max`` (the
    generation limit, known before the data) and ``reward_range`` give the intervals of
    :func:`~trm_bounds.certify.error_interval.error_intervals` (rewards outside the range are
    then an error); ``withhold``: a caller's reason to give no interval (it is reported).
    Returns ``level``, ``unit``, ``n_units``, ``n_sequences``, ``n_empty_rows``, for each of
    ``error``, ``J_diff``, ``L_prime`` a dict (``estimate``, ``se``, ``pareto_k``, ``reliable``,
    ``unreliable_because``, ``shown``, ``lo``, ``hi``, ``withheld_because``; ``lo`` and ``hi``
    are None where withheld), ``interval`` (what the intervals are, or why none),
    ``pareto_k_threshold``, ``pareto_k_weights`` (k-hat of the unit weights :math:`e^{S}`),
    ``weights_mean``, ``ess``, ``ess_fraction`` (Kish, of the sequence weights),
    ``diagnostic`` (one sentence: what is shown and why), ``warnings`` and ``assumptions``.
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {float(level)}")
    S = as_float64(S, "S").reshape(-1)
    Uv = as_float64(U, "U").reshape(-1)
    R = as_float64(rewards, "rewards").reshape(-1)
    n_rows = S.shape[0]
    for name, a in (("U", Uv), ("rewards", R)):
        if a.shape[0] != n_rows:
            raise ValueError(f"{name}: {a.shape[0]} values for {n_rows} sequences")
    if not np.all(np.isfinite(R)):
        i = int(np.flatnonzero(~np.isfinite(R))[0])
        raise ValueError(f"rewards: row {i}: NaN or inf (value {float(R[i])})")
    if np.isnan(S).any() or (S == np.inf).any() or np.isnan(Uv).any():
        raise ValueError("S, U: NaN or S = +inf (log-probabilities must be validated first)")
    L = None if lengths is None else as_float64(lengths, "lengths").reshape(-1)
    keep = np.ones(n_rows, dtype=bool) if L is None else L > 0
    if keep.shape[0] != n_rows:
        raise ValueError(f"lengths: {keep.shape[0]} values for {n_rows} sequences")
    n = int(keep.sum())
    if n == 0:
        raise ValueError("no sequence: every row is empty (no valid token)")
    ids = None
    if group_ids is not None:
        ids = np.asarray(group_ids)
        if ids.shape != (n_rows,):
            raise ValueError(f"group_ids: expected one id per row ({n_rows}), got {ids.shape}")
        ids = ids[keep]
    S, Uv, R = S[keep], Uv[keep], R[keep]
    terms = error_terms(S, Uv, R)
    finite = np.isfinite(S)
    w = np.exp(S - S[finite].max()) if finite.any() else np.zeros(n)  # (n,) scaled weights
    with np.errstate(over="ignore"):
        w1 = np.exp(S)  # (n,) the weights themselves, mean 1 under absolute continuity
    if ids is None:
        unit, units = "sequence", {q: terms[q] for q in QUANTITIES}
        uw, uw1 = w, w1
    else:
        unit = "group"
        units = {q: group_means(terms[q], ids)[0] for q in QUANTITIES}
        uw, uw1 = group_means(w, ids)[0], group_means(w1, ids)[0]
    n_units = int(units["error"].shape[0])
    z = NormalDist().inv_cdf(1.0 - (1.0 - float(level)) / 2.0)
    k_max = khat_threshold(n_units)
    wcheck = _weights_check(uw1, z)
    k_w = pareto_khat(uw)
    out_q = {q: _summary(units[q], k_max) for q in QUANTITIES}
    if withhold is None and T_max is None:
        withhold = ("the generation limit T_max is unknown: the interval's range must be known "
                    "before the data (docs/theory.md §9)")
    if withhold is None:
        T = check_T_max(T_max)
        if L is not None and float(L.max()) > T:
            i = int(np.argmax(L > T))
            raise ValueError(f"lengths: row {i} has {int(L[i])} valid tokens, more than "
                             f"T_max = {T}")
        lo, hi = check_reward_range(reward_range)
        ivs = error_intervals(S, Uv, R, T_max=T, reward_range=(lo, hi), level=level,
                              group_ids=ids, order_seed=order_seed)
        ac = ("without needing pi_theta << pi_roll (the reward range contains 0)"
              if lo <= 0.0 <= hi else
              "pi_theta << pi_roll for Error and L' (the reward range does not contain 0)")
        interval = (f"level {float(level):g} for every law of the {unit}s (docs/theory.md §9, "
                    f"Theorem 9.4), given T_max = {T}, rewards in [{lo:g}, {hi:g}], independent "
                    f"{unit}s from pi_roll with the end token in the mask, {ac}")
    for q in QUANTITIES:
        shown, why = withhold is None, withhold
        if shown and not ivs[q][0] <= ivs[q][1]:
            shown, why = False, (
                f"the interval is empty (lower end {ivs[q][0]:.4g} above upper end "
                f"{ivs[q][1]:.4g}): the sample contradicts E[prod_t rho_t] = 1 or "
                "E[sum_t (rho_t - 1)] = 0, so pi_theta << pi_roll or the end token in the mask "
                "fails, or an event of probability below 1 - level occurred")
        out_q[q].update(shown=shown, lo=ivs[q][0] if shown else None,
                        hi=ivs[q][1] if shown else None, withheld_because=why)
    ess = float(w.sum() ** 2 / (w**2).sum()) if w.sum() > 0 else 0.0
    warnings = []
    if ess < ESS_WARN_FRACTION * n:
        warnings.append(f"effective sample size of prod_t rho_t is {ess:.3g} of {n} sequences "
                        "(heavy-tailed or vanishing importance weights)")
    if not all(np.isfinite(terms[q]).all() for q in QUANTITIES):
        warnings.append("prod_t rho_t or rho_t overflows float64 on some sequence: estimates "
                        "are inf")
    why_w = None
    if not k_w < k_max:
        why_w = f"Pareto k-hat of the weights prod_t rho_t {k_w:.2f} not below {k_max:.2f}"
    elif not wcheck["consistent"]:
        why_w = (f"the weights prod_t rho_t average {wcheck['estimate']:.3g} (se "
                 f"{wcheck['se']:.2g}), not 1: the sample misses where pi_theta puts mass")
    flagged = [f"{q}: {out_q[q]['unreliable_because']}" for q in QUANTITIES
               if not out_q[q]["reliable"]] + ([why_w] if why_w else [])
    if flagged:
        warnings.append("point estimates unreliable (PSIS diagnostics, Vehtari et al. 2024): "
                        + "; ".join(flagged))
    empty = [q for q in QUANTITIES if withhold is None and not out_q[q]["shown"]]
    if empty:
        warnings.append("; ".join(f"{q}: {out_q[q]['withheld_because']}" for q in empty))
    if withhold is None:
        diagnostic = "intervals: " + interval
    else:
        diagnostic = "intervals withheld: " + withhold
        interval = None
    return {
        "level": float(level),
        "unit": unit,
        "n_units": n_units,
        "n_sequences": n,
        "n_empty_rows": n_rows - n,
        **out_q,
        "interval": interval,
        "pareto_k_threshold": k_max,
        "pareto_k_weights": k_w,
        "weights_mean": wcheck,
        "ess": ess,
        "ess_fraction": ess / n,
        "diagnostic": diagnostic,
        "warnings": warnings,
        "assumptions": [
            "the estimates are sample means (not bounds), flagged by the Pareto k-hat "
            "diagnostic where their heavy tail makes them unreliable; the intervals hold for "
            "every law, given the generation limit and the reward range",
            ("rows are independent sequences from pi_roll with their rewards, one per prompt"
             if unit == "sequence" else
             "prompt groups are independent, responses within a group each from pi_roll"),
            "the estimates are unbiased only under pi_theta << pi_roll (rollouts without "
            "top-p/top-k truncation); otherwise they miss what pi_theta does where pi_roll "
            "never samples",
        ],
    }


def estimate_error(log_probs: Any, rollout_log_probs: Any, mask: Any, rewards: Any, *,
                   level: float = 0.95, group_ids: Any = None, T_max: Any = None,
                   reward_range: Any = (0.0, 1.0)) -> dict[str, Any]:
    r"""Estimates of Error, ``J_theta - J_roll`` and ``L'`` from padded arrays (docs/theory.md §9).

    ``log_probs``, ``rollout_log_probs``, ``mask``: ``(B, T)`` as in
    :func:`trm_bounds.certify.certify_linear`; ``rewards``: ``(B,)`` finite; ``group_ids``
    ``(B,)`` optional; ``T_max``, ``reward_range``: for the intervals.  Computes ``S``, ``U``
    per row and returns :func:`estimate_error_sums` (its keys).
    """
    r, valid = valid_log_ratios(log_probs, rollout_log_probs, mask)
    S, U = log_ratio_sums(r, valid)  # (B,), (B,)
    R = as_float64(rewards, "rewards").reshape(-1)
    if R.shape[0] != r.shape[0]:
        raise ValueError(f"rewards: {R.shape[0]} values for {r.shape[0]} sequences")
    return estimate_error_sums(S, U, R, level=level, group_ids=group_ids,
                               lengths=valid.sum(axis=1), T_max=T_max,
                               reward_range=reward_range)
