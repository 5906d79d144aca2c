r"""The evaluator's certified section, error estimate and verdict (docs/theory.md §9).

The certificate needs the per-sequence variable of :mod:`trm_bounds.certify.samples`,

.. math::

    X_i = \sum_{t\le T_i} (1 - \rho_{it})_+ \in [0, T_i],
    \qquad \mathbb E_{\text{roll}} X = \sum_t \bar D_t \quad\text{(§9, Lemma 9.1)},

and the error estimate needs :math:`S_i = \sum_t r_{it}` and
:math:`U_i = \sum_t (\rho_{it} - 1)` with the reward :math:`R_i`.  A confidence bound on a
mean is not mergeable from per-chunk bounds, so :class:`SequenceTerms` keeps these four
float64 numbers per sequence (``O(N)`` memory, 32 bytes a sequence, plus the reward) while
the evaluator streams the chunks, and the sections are computed once at the end by the
library (:func:`trm_bounds.certify.linear.certified_mean`, the confidence-bound routine
behind :func:`~trm_bounds.certify.certify_linear`).

Per chunk the work is ``O(B T)`` in float64, in row blocks of at most ``2^20`` cells so the
temporaries stay small whatever the chunk size.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from trm_bounds.logs import Batch

__all__ = ["SequenceTerms", "sequence_columns", "TERM_COLUMNS", "certified_section",
           "error_section", "thresholds_section", "verdict"]  # fmt: skip

#: Cells per block of the per-chunk pass.
_BLOCK_CELLS = 1 << 20


#: The per-sequence columns :func:`sequence_columns` adds to a chunk's columns.
TERM_COLUMNS = ("cert:length", "cert:x", "cert:S", "cert:U")


def sequence_columns(batch: Batch) -> dict[str, np.ndarray]:
    """Per-sequence ``T_i, X_i, S_i, U_i`` of one canonical chunk (prefix masks, validated), as
    columns named :data:`TERM_COLUMNS`; computed where the chunk is read (a Ray worker or this
    process), so only ``4 B`` floats travel."""
    from trm_bounds.certify.samples import divergence_terms

    B, T = batch.log_probs.shape
    step = max(1, _BLOCK_CELLS // max(T, 1))
    parts = []
    for i in range(0, B, step):
        m = batch.response_mask[i : i + step]
        lp = batch.log_probs[i : i + step].astype(np.float64)
        lr = batch.rollout_log_probs[i : i + step].astype(np.float64)
        with np.errstate(invalid="ignore"):
            r = np.where(m, lp - np.where(m, lr, 0.0), 0.0)  # (b, T); -inf allowed
        with np.errstate(over="ignore"):
            u = np.where(m, np.expm1(r), 0.0).sum(axis=1)
        parts.append((m.sum(axis=1).astype(np.float64),
                      divergence_terms(r, m).sum(axis=1), r.sum(axis=1), u))  # fmt: skip
    cols = [np.concatenate(c) if parts else np.zeros(0) for c in zip(*parts, strict=True)]
    return dict(zip(TERM_COLUMNS, cols or [np.zeros(0)] * 4, strict=True))


class SequenceTerms:
    """Per-sequence ``T_i, X_i, S_i, U_i`` (and ``R_i``) collected chunk by chunk."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._rewards: list[np.ndarray] | None = []

    def add(self, batch: Batch, cols: dict[str, np.ndarray]) -> None:
        """Append one chunk: its :func:`sequence_columns` (in ``cols``) and its rewards."""
        self._parts.append(tuple(cols[k] for k in TERM_COLUMNS))
        if self._rewards is not None:
            if batch.reward is None:
                self._rewards = None
            else:
                self._rewards.append(np.asarray(batch.reward, dtype=np.float64))

    def arrays(self) -> dict[str, np.ndarray | None]:
        """``lengths, x, S, U`` (each ``(N,)``) and ``reward`` (``(N,)`` or None)."""
        cols = [np.concatenate(c) for c in zip(*self._parts, strict=True)]
        out: dict[str, np.ndarray | None] = dict(zip(("lengths", "x", "S", "U"), cols,
                                                     strict=True))  # fmt: skip
        out["reward"] = np.concatenate(self._rewards) if self._rewards else None
        return out


_CONDITIONS = [
    "each sequence of the log is an independent draw from pi_roll (prompts i.i.d., one "
    "response each), and rollout_log_probs are the sampler's own log-probabilities",
    "reward R in [0, 1] (multiply every bound by the reward range otherwise)",
    "no absolute continuity needed: holds with top-p/top-k truncated rollouts "
    "(docs/theory.md §9)",
]


def certified_section(terms: dict[str, Any], *, level: float = 0.95,
                      method: str = "betting") -> dict[str, Any]:
    """Certified bounds on ``|Error|`` at ``level``: ``c * U`` with ``U`` the upper confidence
    bound on ``sum_t Dbar_t = E X`` and ``c`` = 4 (``published``, docs/theory.md §4), 2
    (``sharp``, §5) or 1 (``proved_here``, §9 Theorem 9.3, this toolkit).

    Each variant carries the keys of :func:`~trm_bounds.certify.certify_linear`
    (``level, method, n_sequences, T_max, variant, constant, dbar_sum_estimate,
    dbar_sum_ucb, width, bound, conditions``).  The three are multiples of one ``U``, so
    they hold together on one event of probability ``>= level``.
    """
    from trm_bounds.certify.linear import CONSTANTS, certified_mean

    L, x = terms["lengths"], terms["x"]
    if L.max() < 1:
        raise ValueError("certified bound: no valid token in the dump")
    cm = certified_mean(x, L, T_max=None, level=level, method=method)
    common = {"level": float(level), "method": method, "n_sequences": int(x.shape[0]),
              "T_max": cm["T_max"], "dbar_sum_estimate": cm["estimate"],
              "dbar_sum_ucb": cm["ucb"], "width": cm["ucb"] - cm["estimate"]}  # fmt: skip
    out: dict[str, Any] = {
        "label": f"certified at level {level:g}: true with probability >= {level:g} over the "
                 "sampling of the logged sequences, with no assumption on delta or eps",
        **common,
    }  # fmt: skip
    where = {"published": "§4, the paper", "sharp": "§5", "proved_here": "§9 Theorem 9.3, "
             "this toolkit, not the paper"}  # fmt: skip
    for variant, c in CONSTANTS.items():
        out[variant] = {
            **common, "variant": variant, "constant": c, "bound": c * cm["ucb"],
            "conditions": [*_CONDITIONS, f"Linear |Error| <= {c:g} sum_t Dbar_t ({variant}, "
                           f"docs/theory.md {where.get(variant, '§9')})", *cm["conditions"]],
        }  # fmt: skip
        out[f"bound_{variant}"] = c * cm["ucb"]
    return out


def error_section(terms: dict[str, Any], *, level: float = 0.95) -> dict[str, Any] | None:
    """Estimates of Error, ``J_theta - J_roll`` and ``L'`` (``None`` without rewards); the
    per-sequence form of :func:`trm_bounds.certify.estimate_error` (same keys)."""
    from trm_bounds.certify.error_estimate import ESS_WARN_FRACTION

    R = terms["reward"]
    if R is None:
        return None
    S, U = terms["S"], terms["U"]
    with np.errstate(over="ignore", invalid="ignore"):
        jd = R * np.expm1(S)
        lpr = R * U
        err = jd - lpr
    z = NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)
    n = S.shape[0]

    def summary(v: np.ndarray) -> dict[str, float]:
        mean = float(v.mean())
        se = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
        return {"estimate": mean, "se": se, "lo": mean - z * se, "hi": mean + z * se}

    finite = np.isfinite(S)
    w = np.exp(S - S[finite].max()) if finite.any() else np.zeros(n)
    ess = float(w.sum() ** 2 / (w**2).sum()) if w.sum() > 0 and np.isfinite(jd).all() else 1.0
    warnings = []
    if ess < ESS_WARN_FRACTION * n:
        warnings.append(f"effective sample size of prod_t rho_t is {ess:.3g} of {n} sequences: "
                        "the interval of error and J_diff is unreliable (heavy tails)")
    if not (np.isfinite(err).all() and np.isfinite(lpr).all()):
        warnings.append("prod_t rho_t or rho_t overflows float64 on some sequence: estimates "
                        "are inf")
    return {
        "level": float(level), "n_sequences": n,
        "error": summary(err), "J_diff": summary(jd), "L_prime": summary(lpr),
        "ess": ess, "ess_fraction": ess / n, "warnings": warnings,
        "assumptions": [
            "estimates, not certified bounds: CLT intervals (normal approximation at level "
            f"{level:g}), which heavy-tailed prod_t rho_t can break",
            "sequences are i.i.d. from pi_roll with their rewards",
            "unbiased only under pi_theta << pi_roll; otherwise J_theta and Error are "
            "underestimated",
        ],
    }  # fmt: skip


def thresholds_section(delta: float, lengths: np.ndarray) -> dict[str, Any]:
    """The paper's ``B*`` at the TRM-Max threshold in use, *if* it were the true maximum
    per-token KL: :func:`trm_bounds.planner.unified_at` at the horizon ``T = max T_i``
    with the logged length law (``D_KL^seq = delta mean T_i``, ``Dbar_t = eps Pr(T_i >= t)``)."""
    from trm_bounds.planner import unified_at

    L = lengths[lengths > 0].astype(np.int64)
    T = int(L.max())
    return {
        "label": "conditional: the paper's B* if the TRM-Max threshold delta were the true "
                 "maximum per-token KL over every reachable context, which no log can show "
                 "(k2 on sampled tokens is not even an estimate of that maximum)",
        "criterion": "seq_max_k2", "delta": float(delta), "T": T,
        "unified_published": unified_at(T, delta, lengths=L) if delta > 0 else 0.0,
        "unified_sharp": unified_at(T, delta, lengths=L, sharp=True) if delta > 0 else 0.0,
    }  # fmt: skip


def verdict(certified: dict[str, Any], error: dict[str, Any] | None,
            thresholds: dict[str, Any] | None) -> dict[str, Any]:
    """The plain-words verdict (``report.md`` leads with ``text``).

    Against what a bound ``B`` on ``|Error|`` is vacuous.  It certifies
    ``J_theta - J_roll >= L' - B`` and, if ``L' > B``, an improvement.  The true gain lies
    in ``[-1, 1]`` for rewards in ``[0, 1]``, so ``B >= 1`` can certify an improvement only
    when the surrogate gain ``L'`` exceeds 1, more than any true gain can be: ``B >= 1`` is
    *vacuous against the reward range*.  With rewards logged, ``B`` is compared with the
    estimated ``|L'|``: ``B < |L'|`` decides the sign of the gain (up to the estimate's
    error), ``B >= |L'|`` cannot.
    """
    B = certified["proved_here"]["bound"]
    Bp = certified["published"]["bound"]
    lvl = certified["level"]
    status = "vacuous" if B >= 1 else "informative"
    against = "the reward range: |J_theta - J_roll| <= 1 for rewards in [0, 1]"
    lines = [f"With probability at least {lvl:g} over the sampling of these "
             f"{certified['n_sequences']} sequences, |Error| <= {B:.4g} (Linear bound with the "
             f"constant 1 proved in docs/theory.md §9); the paper's Linear bound with its published constant "
             f"certifies |Error| <= {Bp:.4g} (sharp constant: "
             f"{certified['sharp']['bound']:.4g}). No assumption on delta or eps is needed."]
    if B >= 1:
        lines.append("This is vacuous against the reward range: a bound B >= 1 can certify an "
                     "improvement J_theta > J_roll only if the surrogate gain L' exceeds 1, "
                     "more than any true gain can be for rewards in [0, 1].")
    else:
        lines.append(f"This is below 1, so not vacuous against the reward range; it certifies "
                     f"J_theta > J_roll whenever the surrogate gain L' exceeds {B:.4g}.")
    if error is not None:
        lp = error["L_prime"]["estimate"]
        against = "the estimated surrogate gain |L'|"
        if B < abs(lp):
            status = "decides the sign of the gain"
            lines.append(f"The estimated L' = {lp:.4g} (an estimate, interval "
                         f"[{error['L_prime']['lo']:.4g}, {error['L_prime']['hi']:.4g}]) exceeds "
                         f"the certified bound in size, so the sign of J_theta - J_roll is that "
                         f"of L' (up to the error of the L' estimate).")
        else:
            status = "vacuous" if B >= 1 else "inconclusive"
            lines.append(f"The estimated L' = {lp:.4g} is smaller in size than the certified "
                         f"bound, so the bound cannot decide whether theta improves on the "
                         f"rollout policy.")
        lines.append(f"Estimated actual error: {error['error']['estimate']:.4g} (interval "
                     f"[{error['error']['lo']:.4g}, {error['error']['hi']:.4g}], an estimate, "
                     f"ESS {error['ess']:.3g} of {error['n_sequences']}).")
    if thresholds is not None:
        lines.append(f"What the TRM threshold buys (conditional): if delta = "
                     f"{thresholds['delta']:g} were the true maximum per-token KL over every "
                     f"reachable context (no log can show this), the paper's B* at T = "
                     f"{thresholds['T']} would be {thresholds['unified_published']:.4g} "
                     f"(sharp {thresholds['unified_sharp']:.4g}).")
    return {"status": status, "against": against, "bound": B, "text": " ".join(lines)}
