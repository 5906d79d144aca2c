r"""The evaluator's certified section, error estimate and verdict (docs/theory.md §9).

The certificate needs the per-sequence variable of :mod:`trm_bounds.certify.samples`,

.. math::

    X_i = \sum_{t\le T_i} (1 - \rho_{it})_+ \in [0, T_i],
    \qquad \mathbb E_{\text{roll}} X = \sum_t \bar D_t \quad\text{(§9, Lemma 9.1)},

and the error estimate needs :math:`S_i = \sum_t r_{it}` and
:math:`U_i = \sum_t (\rho_{it} - 1)` with the reward :math:`R_i`.  A confidence bound on a
mean is not mergeable from per-chunk bounds, so :class:`SequenceTerms` keeps these four
float64 numbers per sequence (``O(N)`` memory, 32 bytes a sequence, plus the reward and
the group key) while the evaluator streams the chunks, and the sections are computed once at
the end by the library: :func:`trm_bounds.certify.certify_sums` (the certificate, over
groups when the dump has a group key, with the a-priori generation limit and reward range)
and :mod:`trm_bounds.certify.error_estimate` (the one error estimator). This module only
shapes their results for the report and words the verdict.

Per chunk the work is ``O(B T)`` in float64, in row blocks of at most ``2^20`` cells so the
temporaries stay small whatever the chunk size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_bounds.logs import Batch

__all__ = ["SequenceTerms", "sequence_columns", "TERM_COLUMNS", "certified_section",
           "error_section", "thresholds_section", "verdict", "DECISION_MARGIN",
           "LIMIT_HINT"]  # fmt: skip

#: Cells per block of the per-chunk pass.
_BLOCK_CELLS = 1 << 20


#: The per-sequence columns :func:`sequence_columns` adds to a chunk's columns.
TERM_COLUMNS = ("cert:length", "cert:x", "cert:S", "cert:U")


def sequence_columns(batch: Batch) -> dict[str, np.ndarray]:
    """Per-sequence ``T_i, X_i, S_i, U_i`` of one canonical chunk (prefix masks, validated), as
    columns named :data:`TERM_COLUMNS`; computed where the chunk is read (a Ray worker or this
    process), so only ``4 B`` floats travel."""
    from trm_bounds.certify.samples import divergence_terms, log_ratio_sums

    B, T = batch.log_probs.shape
    step = max(1, _BLOCK_CELLS // max(T, 1))
    parts = []
    for i in range(0, B, step):
        m = batch.response_mask[i : i + step]
        lp = batch.log_probs[i : i + step].astype(np.float64)
        lr = batch.rollout_log_probs[i : i + step].astype(np.float64)
        with np.errstate(invalid="ignore"):
            r = np.where(m, lp - np.where(m, lr, 0.0), 0.0)  # (b, T); -inf allowed
        S, U = log_ratio_sums(r, m)
        parts.append((m.sum(axis=1).astype(np.float64), divergence_terms(r, m).sum(axis=1), S, U))
    cols = [np.concatenate(c) if parts else np.zeros(0) for c in zip(*parts, strict=True)]
    return dict(zip(TERM_COLUMNS, cols or [np.zeros(0)] * 4, strict=True))


class SequenceTerms:
    """Per-sequence ``T_i, X_i, S_i, U_i`` (and ``R_i``, the group key) collected chunk by chunk.

    Rows with no trained token are kept here (``T_i = 0``) and dropped by the sections: they
    are never sequences (docs/theory.md §9)."""

    def __init__(self) -> None:
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._rewards: list[np.ndarray] | None = []
        self._groups: list[np.ndarray] | None = []
        self.group_field: str | None = None

    def add(self, batch: Batch, cols: dict[str, np.ndarray]) -> None:
        """Append one chunk: its :func:`sequence_columns` (in ``cols``), rewards and group keys
        (``Batch.prompt_id``; a key only when every chunk has one)."""
        self._parts.append(tuple(cols[k] for k in TERM_COLUMNS))
        if self._rewards is not None:
            if batch.reward is None:
                self._rewards = None
            else:
                self._rewards.append(np.asarray(batch.reward, dtype=np.float64))
        if self._groups is not None:
            if batch.prompt_id is None:
                self._groups = None
            else:  # ids as strings: one comparable type across files and readers
                self._groups.append(np.asarray([str(g) for g in batch.prompt_id.tolist()]))
                self.group_field = self.group_field or getattr(batch, "group_field", None)

    def arrays(self) -> dict[str, Any]:
        """``lengths, x, S, U`` (each ``(N,)``), ``reward`` and ``group`` (``(N,)`` or None),
        ``group_field`` (the field the keys came from, or None); ``N`` counts every row."""
        cols = [np.concatenate(c) for c in zip(*self._parts, strict=True)]
        out: dict[str, Any] = dict(zip(("lengths", "x", "S", "U"), cols, strict=True))
        out["reward"] = np.concatenate(self._rewards) if self._rewards else None
        out["group"] = np.concatenate(self._groups) if self._groups else None
        out["group_field"] = self.group_field if self._groups else None
        return out


#: What to pass when the generation limit is unknown (the frameworks' names for it).
LIMIT_HINT = ("pass --max-response-length N, the generation limit of the run (verl "
              "data.max_response_length, OpenRLHF --generate_max_len, TRL "
              "max_completion_length, vLLM max_tokens)")  # fmt: skip

#: Relative margin of the "informative" decision: a bound within this fraction of the reward
#: range is called vacuous. Float rounding of the bound is below 1e-12 relative (a sum of N
#: float64 terms and a root-finder to 1e-12), so the decision reads the same on every CPU.
DECISION_MARGIN = 1e-6


def certified_section(terms: dict[str, Any], *, level: float = 0.95, T_max: int | None,
                      T_max_source: str | None = None,
                      reward_range: tuple[float, float] = (0.0, 1.0),
                      method: str = "betting", n_unscored: int = 0) -> dict[str, Any]:
    """Certified bounds on ``|Error|`` at ``level`` (docs/theory.md §9), by
    :func:`trm_bounds.certify.certify_sums` over the trained rows: ``(hi - lo) c U`` (plus the
    offset term of §9 for a range without 0) with ``U`` the upper confidence bound on
    ``sum_t Dbar_t = E X`` over sequences, or over groups when the dump has a group key, and
    ``c`` = 4 (``published``, §4), 2 (``sharp``, §5) or 1 (``proved_here``, §9 Theorem 9.3).

    ``T_max``: the generation limit (``T_max_source`` says where it came from); None: no
    certified claim (``computed: False``, ``reason`` and ``what_to_pass``), the plug-in mean
    of ``X`` is still reported. ``n_unscored``: trained tokens without a rollout logprob (vLLM's
    NaN, left out of the mask by the reader): their divergence is unknown, so no certified
    claim either (the other numbers leave them out, as TRL's own correction does). The three
    variants are multiples of one ``U``: they hold
    together on one event of probability ``>= level``.
    """
    from trm_bounds.certify.linear import CONSTANTS, certify_sums

    L, x, g = terms["lengths"], terms["x"], terms.get("group")
    trained = L > 0
    n_untrained = int((~trained).sum())
    n_seq = int(trained.sum())
    if n_seq == 0:
        raise ValueError("certified bound: no trained token in the dump")
    grouping = {"unit": "sequence" if g is None else "group", "group_field": terms.get(
        "group_field"), "n_untrained_rows": n_untrained}  # fmt: skip
    if g is not None:
        G = np.unique(g[trained]).shape[0]
        grouping["n_groups"] = int(G)
    base = {"level": float(level), "method": method, "n_sequences": n_seq,
            "dbar_sum_estimate": float(x[trained].mean()), **grouping,
            "reward_range": [float(v) for v in reward_range]}  # fmt: skip
    if T_max is None:
        return {"computed": False, **base,
                "reason": "the generation limit (maximum response length) is unknown: the "
                          "range of X must be known before the data, and the longest logged "
                          "response is not a valid range (docs/theory.md §9)",
                "what_to_pass": LIMIT_HINT}  # fmt: skip
    if n_unscored:
        return {"computed": False, **base,
                "reason": f"{n_unscored} trained token{'s have' if n_unscored != 1 else ' has'} "
                          "no rollout log-probability (NaN in the dump, as vLLM returns for a "
                          "token it cannot score): the divergence there is unknown, and the "
                          "certificate needs every sampled token (docs/theory.md §9)",
                "what_to_pass": "a dump whose rollout log-probabilities are all scored"}
    res = certify_sums(x, T_max=int(T_max), level=level, method=method, group_ids=g,
                       reward_range=reward_range, lengths=L)  # fmt: skip
    span = float(reward_range[1] - reward_range[0])
    out: dict[str, Any] = {
        "computed": True, **base,
        "label": f"certified at level {level:g}: true with probability >= {level:g} over the "
                 f"sampling of the logged {res['unit']}s, with no assumption on delta or eps",
        "T_max": res["T_max"], "T_max_source": T_max_source, "n_units": res["n_units"],
        "group_size": res.get("group_size"), "dbar_sum_estimate": res["dbar_sum_estimate"],
        "dbar_sum_ucb": res["dbar_sum_ucb"], "width": res["width"], "reward_span": span,
        "conditions": res["conditions"],
    }  # fmt: skip
    for variant, c in CONSTANTS.items():
        out[variant] = {"variant": variant, "constant": c, "bound": res["bounds"][variant]}
        out[f"bound_{variant}"] = res["bounds"][variant]
    out["vacuous"] = not out["bound_proved_here"] < (1 - DECISION_MARGIN) * span
    out["more_data"] = _more_data(out, level=level, method=method)
    return out


def _more_data(cert: dict[str, Any], *, level: float, method: str) -> dict[str, Any] | None:
    """When the certificate is vacuous: whether more data could fix it, and how many units.

    The bound with ``c = 1`` is ``((hi - lo) + d) U`` (``d = dist(0, [lo, hi])``, docs/theory.md
    §9) and it is informative below ``(1 - DECISION_MARGIN)(hi - lo)``. ``U`` never falls below
    the estimate, so an estimate that alone reaches that level is not fixed by more data of the
    same kind; otherwise the planner's :func:`~trm_bounds.planner.required_sample_size` gives
    the units needed in the best case (every ``X = 0`` observed), a lower limit."""
    if not cert["vacuous"]:
        return None
    from trm_bounds.planner import required_sample_size

    unit = cert["unit"]
    est = cert["dbar_sum_estimate"]
    lo, hi = cert["reward_range"]
    target = (1 - DECISION_MARGIN) * (hi - lo)
    factor = (hi - lo) + max(lo, -hi, 0.0)
    if not est * factor < target:
        return {"possible": False,
                "text": f"More data of this kind is not expected to help: the estimated "
                        f"sum_t Dbar_t = {est:.3g} alone already makes the bound reach the "
                        "reward span, and the upper confidence bound never falls below the "
                        "estimate; the mismatch itself must shrink."}  # fmt: skip
    need = required_sample_size(target, T_max=cert["T_max"], level=level, method=method,
                                reward_range=(lo, hi), constant=1.0)  # fmt: skip
    n = int(need["n_units"])
    return {"possible": True, "n_units_at_least": n, "lower_limit": need.get("lower_limit"),
            "text": f"More data could help: even if every {unit} showed no mismatch at all, at "
                    f"least {n} {unit}s (now {cert['n_units']}) are needed for an informative "
                    f"bound at T_max = {cert['T_max']} and level {level:g} ({method}); with the "
                    f"observed mismatch (estimate {est:.3g}) more (trm-bounds plan "
                    "--certified-bound answers for other targets)."}  # fmt: skip


def error_section(terms: dict[str, Any], *, level: float = 0.95, T_max: int | None = None,
                  reward_range: tuple[float, float] = (0.0, 1.0),
                  n_unscored: int = 0) -> dict[str, Any] | None:
    """Estimates of Error, ``J_theta - J_roll`` and ``L'`` (``None`` without rewards):
    :func:`trm_bounds.certify.error_estimate.estimate_error_sums`, the one estimator, over
    the trained rows and the groups, with its intervals for every law (docs/theory.md §9,
    Theorem 9.4) where the generation limit is known and every trained token is scored;
    otherwise the intervals are withheld with the reason and what to pass."""
    from trm_bounds.certify.error_estimate import estimate_error_sums

    if terms["reward"] is None:
        return None
    withhold = None
    if T_max is None:
        withhold = (f"the generation limit is unknown (the intervals' range must be known "
                    f"before the data); to get them, {LIMIT_HINT}")
    elif n_unscored:
        withhold = (f"{n_unscored} trained token{'s have' if n_unscored != 1 else ' has'} no "
                    "rollout log-probability, so prod_t rho_t and sum_t (rho_t - 1) are not "
                    "known on every sequence")
    return estimate_error_sums(terms["S"], terms["U"], terms["reward"], level=level,
                               group_ids=terms.get("group"), lengths=terms["lengths"],
                               T_max=T_max, reward_range=reward_range, withhold=withhold)


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
    """The plain-words verdict (the reports lead with ``text``; docs/theory.md §9).

    Against what a bound ``B`` on ``|Error|`` is vacuous: the true gain
    ``J_theta - J_roll`` lies within the reward span ``hi - lo``, so ``B >= hi - lo`` can
    certify an improvement only when the surrogate gain ``L'`` exceeds what any true gain can
    be: *vacuous against the reward range* (``B < (1 - DECISION_MARGIN) (hi - lo)`` is
    informative, the margin far above float noise). With rewards logged, ``B`` is compared
    with the interval of ``L'`` (docs/theory.md §9, Theorem 9.4): an interval beyond ``B``
    on one side decides the sign of the gain, with probability at least ``2 level - 1`` for
    both statements at once; otherwise the bound cannot.
    """
    if not certified.get("computed", True):
        text = (f"No certified bound: {certified['reason']}. To get one, "
                f"{certified['what_to_pass']}.")  # fmt: skip
        return {"status": "no certified claim", "against": None, "bound": None, "text": text}
    B = certified["proved_here"]["bound"]
    lvl = certified["level"]
    lo, hi = certified["reward_range"]
    span = hi - lo
    unit = certified["unit"]
    status = "vacuous" if certified["vacuous"] else "informative"
    against = f"the reward range: |J_theta - J_roll| <= {span:g} for rewards in [{lo:g}, {hi:g}]"
    n_text = (f"{certified['n_units']} groups ({certified['n_sequences']} sequences)"
              if unit == "group" else f"{certified['n_sequences']} sequences")
    lines = [f"With probability at least {lvl:g} over the sampling of these {n_text}, "
             f"|Error| <= {B:.4g} (Linear bound, constant 1, docs/theory.md §9; the paper's "
             f"published constant gives {certified['published']['bound']:.4g}, the sharp one "
             f"{certified['sharp']['bound']:.4g}), for rewards in [{lo:g}, {hi:g}] and responses "
             f"of at most {certified['T_max']} tokens. No assumption on delta or eps is needed."]
    if certified["vacuous"]:
        lines.append(f"This is vacuous against the reward range: it is not below {span:g}, so it "
                     "cannot certify an improvement that a true gain could show.")
        if certified.get("more_data"):
            lines.append(certified["more_data"]["text"])
    else:
        lines.append(f"This is below the reward span {span:g}: it certifies J_theta > J_roll "
                     f"whenever the surrogate gain L' exceeds {B:.4g}.")
    if error is not None:
        q = error["L_prime"]
        lp = q["estimate"]
        against = "the surrogate gain L' (its interval at the same level)"
        both = 2 * lvl - 1  # both events at once (union bound)
        l_lo, l_hi = q.get("lo"), q.get("hi")
        side = 0
        if l_lo is not None and l_lo - B > DECISION_MARGIN * max(abs(l_lo), B):
            side = 1
        elif l_hi is not None and -l_hi - B > DECISION_MARGIN * max(abs(l_hi), B):
            side = -1
        if side:
            status = "decides the sign of the gain"
            edge = l_lo - B if side > 0 else -l_hi - B
            lines.append(f"L' lies in [{l_lo:.4g}, {l_hi:.4g}] (level {lvl:g}, for every law, "
                         f"docs/theory.md §9 Theorem 9.4), beyond the certified bound, so "
                         f"J_theta {'>' if side > 0 else '<'} J_roll by at least {edge:.4g}, with "
                         f"probability at least {both:g} (both statements at once).")
        else:
            status = "vacuous" if certified["vacuous"] else "inconclusive"
            iv = (f", interval [{l_lo:.4g}, {l_hi:.4g}]" if l_lo is not None
                  else ", interval withheld")  # fmt: skip
            lines.append(f"The surrogate gain L' (estimate {lp:.4g}{iv}) is not certified to "
                         "exceed the bound in size, so the bound cannot decide whether theta "
                         "improves on the rollout policy.")
    return {"status": status, "against": against, "bound": B, "text": " ".join(lines)}
