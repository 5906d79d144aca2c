"""The evaluation report: ``report.json`` (schema ``trm-bounds-report/v1``), ``report.md``
and ``sequences.csv`` (:mod:`trm_bounds.evaluate.sequences_csv`; docs/theory.md §6, §9).

The observed divergences are plug-in values (maxima over the logged tokens only; with
sampled tokens only, neither lower bounds nor unbiased estimates); the bounds
are the plug-in bounds of :func:`trm_bounds.bounds.plugin_bounds` at those estimates,
conditional on them.  The ``certified`` section holds bounds on ``|Error|`` that are true at
a stated confidence level with no assumption on the maxima (docs/theory.md §9), and
``report.md`` leads with a verdict in plain words (:mod:`trm_bounds.evaluate.certified`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.evaluate.stats import HIST_EDGES, Stats
from trm_bounds.evaluate.words import headline, meaning, percent, version_line
from trm_bounds.masking.criteria import (
    DEFAULT_THRESHOLDS,
    STAT_OF_CRITERION,
    check_threshold,
    criterion_parts,
)
from trm_bounds.results import git_hash

__all__ = ["SCHEMA", "build_report", "report_markdown"]

SCHEMA = "trm-bounds-report/v1"


def _thresholds(overrides: Mapping[str, float] | None) -> dict[str, float]:
    """:data:`~trm_bounds.masking.DEFAULT_THRESHOLDS` with the (validated) overrides."""
    th = dict(DEFAULT_THRESHOLDS)
    for k, v in (overrides or {}).items():
        for p in criterion_parts(k):
            th[p] = check_threshold(p, v)
    return th


def _curve(hist: np.ndarray, n: int) -> dict[str, list[float]]:
    """Acceptance ``P(score <= edge)`` at each histogram edge (exact: right-closed bins)."""
    acc = np.cumsum(hist)[: HIST_EDGES.shape[0]] / max(n, 1)
    return {"thresholds": HIST_EDGES.tolist(), "acceptance": acc.tolist()}


def _length_buckets(s: Stats, n_buckets: int) -> list[dict[str, Any]]:
    """Acceptance per criterion in length quantile buckets (from per-length counts)."""
    lengths = np.arange(s.len_count.shape[0])
    cdf = np.cumsum(s.len_count)
    n = int(cdf[-1])
    # bucket upper edges: the length at quantile k / n_buckets (inverted empirical CDF)
    qs = [
        int(lengths[np.searchsorted(cdf, math.ceil(k * n / n_buckets))])
        for k in range(1, n_buckets)
    ]
    uppers = sorted(set(qs + [int(lengths[-1])]))
    out, lo = [], int(lengths[s.len_count > 0][0])
    for hi in uppers:
        sel = slice(lo, hi + 1)
        cnt = int(s.len_count[sel].sum())
        if cnt:
            out.append(
                {
                    "min_length": lo,
                    "max_length": hi,
                    "n_sequences": cnt,
                    "acceptance_rate": {
                        c: float(a[sel].sum() / cnt) for c, a in s.len_accepted.items()
                    },
                }
            )
        lo = hi + 1
    return out


def _observed_and_bounds(s: Stats, dbar: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """Observed (lower) estimates of delta and eps, and the bounds conditional on them."""
    T = int(dbar.shape[0])
    dkl_seq = s.sum("k3_sum") / s.n_sequences
    if s.kl_max is not None and s.topk_max is None:
        source = "exact token KL/TV from full distributions"
        delta, eps = s.kl_max, min(1.0, s.tv_max)
        d_label = "max over logged contexts of the exact KL(roll || theta): a lower bound on delta"
        e_label = "max over logged contexts of the exact TV: a lower bound on eps"
    elif s.topk_max is not None:
        source = "guaranteed lower bounds on token KL/TV from top-k (tail mass)"
        delta, eps = s.topk_max["kl_lower"], min(1.0, s.topk_max["tv_lower"])
        d_label = "max over logged contexts of a guaranteed lower bound on the KL: delta >= it"
        e_label = "max over logged contexts of a guaranteed lower bound on the TV: eps >= it"
    else:
        source = "maximum sampled-token k2 = r^2/2 (no distributions given)"
        delta = s.k2_max
        eps = min(1.0, math.sqrt(delta / 2.0)) if math.isfinite(delta) else 1.0
        d_label = (
            "max over logged tokens of the sampled-token k2 = r^2/2: NEITHER a lower bound "
            "NOR an unbiased estimate of any context's KL (p_roll = (0.99, 0.01), "
            "p_theta = (0.98, 0.02) has KL 0.0031, sampling token 2 gives k2 = 0.24); a "
            "plug-in value only, give logits or top-k logprobs for a guaranteed one"
        )
        e_label = (
            "sqrt(delta_plugin / 2): Pinsker's upper bound on the TV of a context whose KL "
            "were delta_plugin, not an estimate of eps"
        )
    observed = {
        "label": (
            "plug-in values: maxima over the logged tokens only; the true delta and eps are "
            "maxima over every reachable context and are not estimable from samples "
            "(docs/theory.md §6); delta_label and eps_label say what each number is"
        ),
        "source": source,
        "delta_plugin": delta,
        "eps_plugin": eps,
        "delta_label": d_label,
        "eps_label": e_label,
        "max_token_k2": s.k2_max,
        "max_token_kl": s.kl_max,
        "max_token_tv": s.tv_max,
        "topk_max": s.topk_max,
        "dkl_seq_estimate": dkl_seq,
        "dkl_seq_label": "mean over sequences of sum_t k3 (unbiased for D_KL^seq)",
        "dbar_label": (
            "dbar_estimate averages over the sequences that reach t; with docs/theory.md "
            "§1's absorbing end token, ended sequences carry zero divergence and the "
            "unbiased estimate of Dbar_t is dbar_estimate_absorbing (sum over all sequences "
            "/ N), which is never larger; the bounds use the larger, conservative one"
        ),
        "dbar_estimate_absorbing": ((s.pos_sum[0] + s.pos_sum[1]) / s.n_sequences).tolist(),
    }
    bounds: dict[str, Any] = {
        "label": (
            "conditional: valid only if the true delta, eps, D_KL^seq, D_TV^seq and Dbar_t "
            "equal the values used here; the observed values are plug-in values (see "
            "observed.delta_label), so these bounds are not guaranteed"
        ),
    }
    if not (math.isfinite(delta) and math.isfinite(dkl_seq)):
        bounds.update(computed=False, reason="observed delta or D_KL^seq is infinite")
        return observed, bounds
    # D_TV^seq is not observed: its Pinsker value from the D_KL^seq estimate
    dkl = max(dkl_seq, 0.0)
    dtv_seq = min(1.0, math.sqrt(dkl / 2.0))
    try:
        from trm_bounds.bounds import plugin_bounds

        # the one rule for estimates that violate docs/theory.md §3: raise inputs only
        pub = plugin_bounds(T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv_seq, dbar=dbar)
        sharp = plugin_bounds(
            T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv_seq, dbar=dbar, sharp=True
        )
    except (ImportError, ValueError) as err:
        used = {"T": T, "delta": delta, "eps": eps, "dkl_seq": dkl, "dtv_seq": dtv_seq}
        bounds.update(computed=False, reason=str(err), inputs=used, adjustments=[])
        return observed, bounds
    inp = pub["inputs"]
    used = {k: inp[k] for k in ("T", "delta", "eps", "dkl_seq", "dtv_seq")}
    bounds.update(
        computed=True,
        inputs=used,
        adjustments=[_adjustment_text(a) for a in inp["adjusted"]],
        dbar_used=inp["dbar"],
        published=dict(pub["bounds"]),
        sharp=dict(sharp["bounds"]),
    )
    return observed, bounds


#: Report notation of the inputs of :func:`trm_bounds.bounds.plugin_bounds`.
_NOTATION = (("dkl_seq", "D_KL^seq"), ("dtv_seq", "D_TV^seq"), ("dbar", "Dbar_t"))


def _adjustment_text(a: Mapping[str, Any]) -> str:
    """One line per raised input: ``NAME raised from X to Y (relations)``."""
    text = (
        f"{a['input']} raised from {a['from']:.6g} to {a['to']:.6g} ({'; '.join(a['relations'])})"
    )
    for name, label in _NOTATION:
        text = text.replace(name, label)
    return text


def build_report(
    s: Stats,
    *,
    thresholds: Mapping[str, float] | None = None,
    n_buckets: int = 4,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    inputs: Sequence[str] = (),
    terms: Mapping[str, Any] | None = None,
    level: float = 0.95,
    T_max: int | None = None,
    T_max_source: str | None = None,
    reward_range: tuple[float, float] = (0.0, 1.0),
) -> dict[str, Any]:
    """The ``trm-bounds-report/v1`` dictionary from merged :class:`Stats` .

    Contract keys: ``schema, n_sequences, n_tokens, metrics, criteria, length_buckets,
    dbar_estimate, observed, bounds``. Extra keys used by the figures: ``acceptance_curves``
    and ``histograms`` (right-closed bins on :data:`HIST_EDGES`), plus ``options``/``inputs``.
    With ``terms`` (:meth:`~trm_bounds.evaluate.certified.SequenceTerms.arrays`) also
    ``certified`` (at ``level``, with the generation limit ``T_max`` from ``T_max_source``
    and the a-priori ``reward_range``; without ``T_max`` no certified claim),
    ``trm_thresholds``, ``verdict``, ``headline`` and, when rewards are logged,
    ``error_estimate`` (docs/theory.md §9).
    """
    if s.n_sequences == 0:
        raise ValueError("no sequences")
    if s.n_tokens == 0:
        raise ValueError("no valid response tokens: nothing to evaluate")
    th = _thresholds(thresholds)
    acc = s.accepted
    criteria = {}
    for c in s.criteria:
        parts = c.split(",")
        criteria[c] = {
            "threshold": th[parts[0]] if len(parts) == 1 else {p: th[p] for p in parts},
            "accepted": acc[c],
            "acceptance_rate": acc[c] / s.n_sequences,
        }
    dbar = s.dbar_estimate
    observed, bounds = _observed_and_bounds(s, dbar)
    curves = {}
    for c in s.criteria:
        if "," not in c and STAT_OF_CRITERION[c] in s.hists:
            curves[c] = _curve(s.hists[STAT_OF_CRITERION[c]], s.n_sequences)
    extra = {} if terms is None else _certified_keys(
        s, terms, th, level=level, T_max=T_max, T_max_source=T_max_source,
        reward_range=reward_range)  # fmt: skip
    from trm_bounds import __version__

    report = {
        "schema": SCHEMA,
        "n_sequences": s.n_sequences,
        "n_tokens": s.n_tokens,
        "n_untrained_rows": s.n_untrained_rows,
        "n_nan_tokens": s.n_nan_tokens,
        "warnings": s.warnings,
        "metrics": {
            "log_ppl_abs_diff": s.sum("abs_log_ppl_diff") / s.n_sequences,
            "k3_mean": s.sum("k3_sum") / max(s.n_tokens, 1),
            "k2_max": s.k2_max,
            "ser_mean": s.sum("ser") / s.n_sequences,
        },
        "criteria": criteria,
        "length_buckets": _length_buckets(s, n_buckets),
        "dbar_estimate": dbar.tolist(),
        "observed": observed,
        "bounds": bounds,
        "acceptance_curves": curves,
        "histograms": {
            k: {"edges": HIST_EDGES.tolist(), "counts": h.tolist()} for k, h in s.hists.items()
        },
        "options": {"ln_delta": ln_delta, "ln_eps": ln_eps, "n_buckets": n_buckets,
                    "level": level, "max_response_length": T_max,
                    "reward_range": list(reward_range)},
        "inputs": [str(p) for p in inputs],
        "version": __version__,
        "git_hash": git_hash(),
        **extra,
    }
    report["headline"] = headline(report)
    return report


def _certified_keys(s: Stats, terms: Mapping[str, Any], th: Mapping[str, float], *,
                    level: float, T_max: int | None, T_max_source: str | None,
                    reward_range: tuple[float, float]) -> dict[str, Any]:
    """``certified``, ``error_estimate`` (rewards only), ``trm_thresholds`` and ``verdict``."""
    from trm_bounds.evaluate.certified import (
        certified_section,
        error_section,
        thresholds_section,
        verdict,
    )

    cert = certified_section(dict(terms), level=level, T_max=T_max, T_max_source=T_max_source,
                             reward_range=reward_range, n_unscored=s.n_nan_tokens)  # fmt: skip
    err = error_section(dict(terms), level=level, T_max=T_max, reward_range=reward_range,
                        n_unscored=s.n_nan_tokens)
    lengths = np.repeat(np.arange(s.len_count.shape[0]), s.len_count)
    trm = thresholds_section(th["seq_max_k2"], lengths[lengths > 0])
    out = {"certified": cert, "trm_thresholds": trm, "verdict": verdict(cert, err, trm)}
    if err is not None:
        out["error_estimate"] = err
    return out


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in x.items())
    return str(x)


def report_markdown(report: dict[str, Any], figures: Iterable[Path] = ()) -> str:
    """A readable ``report.md``: the headline, the verdict, the certificate, then the detail
    (every raw id with its meaning and unit, rates in percent) and the figures."""
    r = report
    lines = ["# trm-bounds log evaluation", ""]
    if "headline" in r:
        lines += [f"**{r['headline']}**", ""]
    if "verdict" in r:
        lines += ["## Verdict", "", r["verdict"]["text"], ""]
    lines += [f"Inputs: {', '.join(r['inputs']) or '-'}  ", _counts_line(r), ""]
    lines += [f"- {w}" for w in r.get("warnings", [])] + ([""] if r.get("warnings") else [])
    if "certified" in r:
        lines += _certified_markdown(r)
    lines += ["## Metrics", "", "| metric | value | meaning (unit) |", "|---|---|---|"]
    lines += [f"| `{k}` | {_fmt(v)} | {meaning(k)} |" for k, v in r["metrics"].items()]
    lines += ["", "## Criteria (accepted = kept by the mask)", "",
              "| criterion | meaning (unit) | threshold | accepted | rate |",
              "|---|---|---|---|---|"]  # fmt: skip
    for c, d in r["criteria"].items():
        lines.append(f"| `{c}` | {meaning(c)} | {_fmt(d['threshold'])} | {d['accepted']} | "
                     f"{percent(d['acceptance_rate'])} |")  # fmt: skip
    lines += ["", "## Acceptance by length bucket (percent of the bucket's sequences)", ""]
    crit = list(r["criteria"])
    lines.append("| lengths | n | " + " | ".join(f"`{c}`" for c in crit) + " |")
    lines.append("|---|---|" + "---|" * len(crit))
    for b in r["length_buckets"]:
        rates = " | ".join(percent(b["acceptance_rate"][c]) for c in crit)
        lines.append(f"| {b['min_length']}-{b['max_length']} | {b['n_sequences']} | {rates} |")
    o = r["observed"]
    lines += [
        "", "## Observed divergences", "",
        f"*{o['label']}.* Source: {o['source']}.", "",
        f"- delta (plug-in, nats): {_fmt(o['delta_plugin'])} -- {o['delta_label']}",
        f"- eps (plug-in, dimensionless): {_fmt(o['eps_plugin'])} -- {o['eps_label']}",
        f"- D_KL^seq estimate (nats per sequence): {_fmt(o['dkl_seq_estimate'])}",
        "", "## Plug-in bounds (conditional: they guarantee nothing)", "",
        f"*{r['bounds']['label']}.*", "",
    ]  # fmt: skip
    b = r["bounds"]
    if b.get("computed"):
        note = plugin_note(r)
        lines += [note, ""] if note else []
        lines += [f"Inputs used: {_fmt(b['inputs'])}", ""]
        lines += [f"- adjustment: {a}" for a in b["adjustments"]]
        lines += ["", "| bound | published | sharp |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(v)} | {_fmt(b['sharp'][k])} |" for k, v in b["published"].items()]
    else:
        lines.append(f"Not computed: {b.get('reason')}")
    t = r.get("trm_thresholds")
    if t is not None:
        lines += ["", f"What the TRM threshold buys ({t['label']}): at delta = "
                  f"{t['delta']:g} and T = {t['T']}, the paper's B* would be "
                  f"{_fmt(t['unified_published'])} (sharp "
                  f"{_fmt(t['unified_sharp'])})."]  # fmt: skip
    figs = list(figures)
    if figs:
        lines += ["", "## Figures", ""]
        lines += [f"![{p.stem}]({p.name})" for p in figs if p.suffix == ".png"]
    lines += ["", "---", version_line(r.get("version", "?"), r.get("git_hash"))]
    return "\n".join(lines) + "\n"


def _counts_line(r: Mapping[str, Any]) -> str:
    """Sequences, untrained rows and the certificate's unit (groups and their field)."""
    text = f"Sequences: {r['n_sequences']}, trained response tokens: {r['n_tokens']}"
    c = r.get("certified")
    if c is not None and c.get("unit") == "group":
        text += (f"; {c['n_groups']} groups of responses sharing a prompt (key: "
                 f"{c.get('group_field') or 'the prompt id'}): the certificate is over groups")
    elif c is not None:
        text += ("; no group key in the dump: the certificate assumes one response per prompt "
                 "(with GRPO-style groups its level is not guaranteed)")
    return text


def plugin_note(r: Mapping[str, Any]) -> str | None:
    """Why the smallest plug-in bound can sit under the certified one (then it is said)."""
    b, c = r["bounds"], r.get("certified")
    if not b.get("computed") or not c or not c.get("computed"):
        return None
    vals = {k: v for k, v in b["published"].items() if isinstance(v, float) and math.isfinite(v)}
    vals |= {f"{k} (sharp)": v for k, v in b["sharp"].items()
             if isinstance(v, float) and math.isfinite(v)}  # fmt: skip
    if not vals:
        return None
    name, v = min(vals.items(), key=lambda kv: kv[1])
    cert = c["proved_here"]["bound"]
    if not v < cert:
        return None
    return (f"The smallest plug-in bound, {name} = {v:.4g}, is below the certified {cert:.4g} "
            "because it assumes that the largest divergence over every reachable context equals "
            "the largest one seen in the log, which no log can show: it is conditional and "
            "guarantees nothing. The certified bound assumes nothing about that maximum and pays "
            "for the sampling instead.")


def _certified_markdown(r: dict[str, Any]) -> list[str]:
    """The certified bounds and, with rewards, the error estimate, as markdown lines."""
    c = r["certified"]
    if not c.get("computed", True):
        lines = ["## Certified bound on |Error|: none", "",
                 f"No certified claim: {c['reason']}. To get one, {c['what_to_pass']}.", "",
                 f"(Plug-in mean of X = sum_t (1 - rho_t)_+, not a bound: "
                 f"{_fmt(c['dbar_sum_estimate'])}.)", ""]  # fmt: skip
    else:
        lo, hi = c["reward_range"]
        src = f" from {c['T_max_source']}" if c.get("T_max_source") else ""
        lines = [
            f"## Certified bounds on |Error| (level {c['level']:g}, {c['method']})", "",
            f"*{c['label']}.* sum_t Dbar_t: estimate {_fmt(c['dbar_sum_estimate'])}, upper "
            f"confidence bound {_fmt(c['dbar_sum_ucb'])} over {c['n_units']} {c['unit']}s; "
            f"generation limit T_max = {c['T_max']}{src}; reward range [{lo:g}, {hi:g}].", "",
            "| bound | constant | certified bound on abs(Error) |", "|---|---|---|",
            f"| Linear, published (docs/theory.md §4) | 4 | {_fmt(c['published']['bound'])} |",
            f"| Linear, sharp (§5) | 2 | {_fmt(c['sharp']['bound'])} |",
            f"| Linear, proved here (§9 Theorem 9.3, not the paper) | 1 | "
            f"{_fmt(c['proved_here']['bound'])} |", "",
            "Conditions: " + "; ".join(c["conditions"]) + ".", "",
        ]  # fmt: skip
        if c.get("more_data"):
            lines += [c["more_data"]["text"], ""]
    e = r.get("error_estimate")
    if e is not None:
        lines += error_markdown(e)
    return lines


def error_notes(e: Mapping[str, Any]) -> str:
    """The estimator's sentence on what is shown and why, and its other warnings, once each."""
    parts = [p[0].upper() + p[1:] + ("" if p.endswith(".") else ".")
             for p in (e.get("diagnostic") or "", *e.get("warnings", [])) if p]
    return " ".join(p for i, p in enumerate(parts)  # a part another part holds: said once
                    if not any(p in q and (p != q or j < i) for j, q in enumerate(parts) if j != i))


def error_markdown(e: Mapping[str, Any]) -> list[str]:
    """The error estimate: estimates with standard error and Pareto k-hat, and the intervals
    that hold for every law (or why they are withheld)."""
    about = ("Estimates are sample means with their standard error (not a claim of "
             "coverage); ") + (
        f"the interval holds with probability at least {e['level']:g} for every law of the "
        f"logged {e['unit']}s under the conditions below (docs/theory.md §9)."
        if e.get("interval") else "the intervals are withheld (the reason is below).")
    lines = ["## Estimated error", "", about, "",
             f"| quantity | estimate | standard error | Pareto k-hat | interval, level "
             f"{e['level']:g} |", "|---|---|---|---|---|"]  # fmt: skip
    for k, name in (("error", "Error"), ("J_diff", "J_theta - J_roll"), ("L_prime", "L'")):
        q = e[k]
        iv = (f"[{_fmt(q['lo'])}, {_fmt(q['hi'])}]" if q.get("lo") is not None
              else "withheld")  # fmt: skip
        lines.append(f"| {name} | {_fmt(q['estimate'])} | {_fmt(q.get('se'))} | "
                     f"{_fmt(q.get('pareto_k'))} | {iv} |")
    lines += ["", error_notes(e), "", "Assumptions: " + "; ".join(e["assumptions"]) + ".", ""]
    return lines
