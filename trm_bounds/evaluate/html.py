"""``report.html``: the evaluation report as one self-contained page (docs/theory.md §6).

The page reads only the ``report.json`` dictionary and the PNG figures drawn from it; figures
are inlined as base64 ``data:`` URIs, there is no script and no external resource, so the file
opens offline and can be mailed. Order: the verdict first (the certified bound and whether it
is vacuous when the report has a ``certified`` section, the estimated error when it has one,
acceptance at the thresholds in use), then the metrics, the criteria with their thresholds,
the length buckets, per-step trends for runs, the observed divergences and conditional
bounds, each figure with a caption in plain words, and the caveats, each stated once.

Everything that comes from the dump or the command line (file names, sequence and prompt
ids, criterion names, free text) is HTML-escaped, quotes included: a dump whose fields hold
``<script>`` renders it as text.

>>> page = report_html({"n_sequences": 1, "n_tokens": 2, "inputs": ["<script>x</script>"]})
>>> "<script>" in page, "&lt;script&gt;x&lt;/script&gt;" in page
(False, True)
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trm_bounds.evaluate.report import error_notes, plugin_note
from trm_bounds.evaluate.words import meaning, percent, version_line

__all__ = ["TITLE", "FIGURE_CAPTIONS", "TREND_CAPTIONS", "report_html", "run_html"]

#: The page title (a test checks it in a real browser).
TITLE = "trm-bounds evaluation report"

#: Captions by figure file stem (:func:`trm_bounds.plot.evaluate.draw_report_figures`).
FIGURE_CAPTIONS = {
    "acceptance_vs_threshold": (
        "Share of sequences the mask keeps as the threshold of each criterion varies; the "
        "dotted line marks the threshold in use, and the height of the curve there is the "
        "share kept now. A curve still low at its dotted line means that threshold discards "
        "many sequences."
    ),
    "acceptance_by_length": (
        "Share of sequences kept, by sequence length. Criteria that sum over tokens reject "
        "long sequences more often; a steep fall with length is that effect."
    ),
    "dbar_estimate": (
        "Average per-token divergence between trainer and rollout policies at each "
        "position (an estimate of Dbar_t); the dashed line is the eps plug-in value "
        "(see the caveats). Growth along the sequence means the mismatch "
        "accumulates; the bounds grow with the sum of this curve."
    ),
    "hist_k2_max": (
        "How often each value of the largest per-token k2 = r^2/2 in a sequence occurs "
        "(log scale). A long right tail is a few tokens with a large mismatch."
    ),
    "hist_ser": (
        "Distribution of the SER score (mean |ratio - 1| per sequence). Mass far right of "
        "the threshold is what the SER criterion masks."
    ),
}

#: Every caveat once, in a practitioner's words.
_CAVEATS = (
    (
        "What is estimated",
        "D_KL^seq and Dbar_t are averages over the logged sequences: unbiased estimates "
        "with sampling noise. delta and eps are plug-in values, not estimates: the true "
        "maxima range over every context a policy can reach, which no log shows, and a "
        "sampled token's k2 is neither a lower bound nor an unbiased estimate of its "
        "context's KL (log logits or top-k logprobs for guaranteed values). The certified "
        "bound needs neither maximum.",
    ),
    (
        "What is conditional",
        "The plug-in bounds hold only if the true maxima equal the plug-in values used, "
        "which no log can show: they are conditional statements, not guarantees.",
    ),
    (
        "What is certified",
        "A certified bound (when present) holds with the stated confidence under the stated "
        "conditions (sequences, or groups of responses to one prompt, sampled independently "
        "from the rollout policy; the generation limit and the reward range known before the "
        "data). It is vacuous when it is not below the reward span (1 for rewards in [0, 1]): "
        "it then says nothing the reward range did not already say.",
    ),
    (
        "Acceptance",
        "Acceptance rates are exact counts over this dump at the thresholds listed; other "
        "thresholds give other rates (see the first figure).",
    ),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:60rem;
margin:1.5rem auto;padding:0 1rem;color:#1b1b1b;line-height:1.45}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.25rem .6rem;
text-align:left;font-variant-numeric:tabular-nums}th{background:#f3f3f3}
.verdict{border:2px solid #555;border-radius:.4rem;padding:.6rem 1rem;background:#fafafa}
.good{color:#17632a}.bad{color:#9b1c1c}figure{margin:1rem 0}figure img{max-width:100%}
figcaption{font-size:.92rem;color:#333}code{background:#f3f3f3;padding:0 .2rem}
"""


def _e(x: Any) -> str:
    """HTML-escape ``str(x)``, quotes included."""
    return html.escape(str(x), quote=True)


def _num(x: Any) -> str:
    """A number as text (4 significant digits), anything else escaped."""
    if isinstance(x, bool) or x is None:
        return _e("-" if x is None else x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.4g}" if math.isfinite(x) else _e(x)
    if isinstance(x, Mapping):
        return ", ".join(f"{_e(k)}={_num(v)}" for k, v in x.items())
    return _e(x)


def _table(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_num(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _verdict(r: Mapping[str, Any]) -> list[str]:
    out = ['<section class="verdict" id="verdict"><h2>Verdict</h2>']
    v, cert = r.get("verdict"), r.get("certified")
    if isinstance(v, Mapping) and v.get("text"):
        good = v.get("status") in ("informative", "decides the sign of the gain")
        cls = "good" if good else "bad"
        out.append(f'<p class="{cls}">{_e(v["text"])}</p>')
    if isinstance(cert, Mapping) and cert.get("computed", True) and "bound_proved_here" in cert:
        out.append(_table(("certified bound on |Error|", "value"), (
            ("constant 1, proved here (docs/theory.md §9)", cert["bound_proved_here"]),
            ("sharp constant 2", cert.get("bound_sharp")),
            ("published constant 4", cert.get("bound_published")),
        )))  # fmt: skip
        lo, hi = cert.get("reward_range", (0.0, 1.0))
        src = f" (from {_e(cert['T_max_source'])})" if cert.get("T_max_source") else ""
        out.append(
            f"<p>At confidence level {_num(cert.get('level'))} ({_e(cert.get('method', '-'))} "
            f"upper confidence bound on sum_t Dbar_t over {_num(cert.get('n_units'))} "
            f"{_e(cert.get('unit', 'sequence'))}s, generation limit T_max = "
            f"{_num(cert.get('T_max'))}{src}, rewards in [{_num(lo)}, {_num(hi)}]).</p>"
        )
        if cert.get("conditions"):
            out.append("<p>It assumes: " + "; ".join(_e(c) for c in cert["conditions"]) + ".</p>")
    elif isinstance(cert, Mapping) and "reason" in cert:
        out.append(f'<p class="bad" id="no-certificate">No certified claim: {_e(cert["reason"])}.'
                   f" To get one, {_e(cert.get('what_to_pass', ''))}.</p>")
    else:
        out.append("<p>No certified bound in this report (it has no <code>certified</code> "
                   "section); the bounds below are conditional plug-in values.</p>")
    est = r.get("error_estimate")
    if isinstance(est, Mapping) and isinstance(est.get("error"), Mapping):
        e = est["error"]
        iv = (f", interval [{_num(e.get('lo'))}, {_num(e.get('hi'))}]"
              if e.get("lo") is not None else "")  # fmt: skip
        out.append(f"<p>Estimated actual error (from rewards, a sample mean): "
                   f"{_num(e.get('estimate'))}{iv}. {_e(error_notes(est))}</p>")  # fmt: skip
    note = plugin_note(r) if isinstance(r.get("bounds"), Mapping) else None
    if note:
        out.append(f"<p>{_e(note)}</p>")
    crit = r.get("criteria") or {}
    if crit:
        out.append(f"<p>Acceptance at the thresholds in use ({_num(r.get('n_sequences'))} "
                   "sequences):</p>")
        out.append(_table(
            ("criterion", "threshold", "kept"),
            ((c, d.get("threshold"), percent(d.get("acceptance_rate", math.nan)))
             for c, d in crit.items()),
        ))  # fmt: skip
    out.append("</section>")
    return out


def _steps(r: Mapping[str, Any]) -> list[str]:
    """Per-step trends of a run (a list of per-step dictionaries), scalars only."""
    steps = r.get("per_step") or r.get("steps")
    if not isinstance(steps, list) or not steps or not isinstance(steps[0], Mapping):
        return []
    keys = [k for k, v in steps[0].items() if isinstance(v, (int, float, str, bool))]
    rows = ([s.get(k) for k in keys] for s in steps if isinstance(s, Mapping))
    return ["<h2>Per-step trends</h2>", _table(keys, rows)]


def _figure(p: Path, captions: Mapping[str, str] = FIGURE_CAPTIONS) -> str:
    data = base64.b64encode(p.read_bytes()).decode("ascii")
    cap = captions.get(p.stem, p.stem.replace("_", " "))
    return (
        f'<figure id="fig-{_e(p.stem)}"><img alt="{_e(p.stem)}" '
        f'src="data:image/png;base64,{data}"><figcaption>{_e(cap)}</figcaption></figure>'
    )


def report_html(report: Mapping[str, Any], figures: Iterable[Path] = ()) -> str:
    """The self-contained ``report.html`` text for a ``trm-bounds-report/v1`` dictionary.

    ``figures``: PNG files inlined in order, each with its caption from
    :data:`FIGURE_CAPTIONS` (other suffixes are skipped). Sections whose keys are absent are
    skipped; every value from the report is escaped.
    """
    r = report
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(TITLE)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(TITLE)}</h1>",
    ]
    if r.get("headline"):
        parts.append(f'<p id="headline"><b>{_e(r["headline"])}</b></p>')
    parts.append(f"<p>{_num(r.get('n_sequences'))} sequences, {_num(r.get('n_tokens'))} "
                 f"trained response tokens. Inputs: "
                 f"{', '.join(_e(i) for i in r.get('inputs', [])) or '-'}</p>")
    parts += [f"<p>{_e(w)}</p>" for w in r.get("warnings", [])]
    parts += _verdict(r)
    if r.get("metrics"):
        parts += ["<h2>Metrics</h2>", _table(("metric", "value", "meaning (unit)"),
                                             ((k, v, meaning(k)) for k, v in r["metrics"].items()))]
    if r.get("criteria"):
        parts += [
            "<h2>Criteria (accepted = kept by the mask)</h2>",
            _table(
                ("criterion", "meaning (unit)", "threshold", "accepted", "rate"),
                ((c, meaning(c), d.get("threshold"), d.get("accepted"),
                  percent(d.get("acceptance_rate", math.nan))) for c, d in r["criteria"].items()),
            ),
        ]  # fmt: skip
    buckets = r.get("length_buckets") or []
    if buckets:
        crit = list(buckets[0].get("acceptance_rate", {}))
        parts += [
            "<h2>Acceptance by length bucket (percent kept)</h2>",
            _table(
                ["lengths", "n", *crit],
                ([f"{b['min_length']}-{b['max_length']}", b["n_sequences"],
                  *(percent(b["acceptance_rate"].get(c, math.nan)) for c in crit)]
                 for b in buckets),
            ),
        ]  # fmt: skip
    parts += _steps(r)
    o = r.get("observed")
    if isinstance(o, Mapping):
        parts += [
            "<h2>Observed divergences (plug-in values)</h2>",
            f"<p>Source: {_e(o.get('source', '-'))}.</p>",
            _table(("quantity", "value", "what it is"), (
                ("delta (per-token KL, max)", o.get("delta_plugin"), o.get("delta_label", "")),
                ("eps (per-token TV, max)", o.get("eps_plugin"), o.get("eps_label", "")),
                ("D_KL^seq (mean)", o.get("dkl_seq_estimate"), o.get("dkl_seq_label", "")),
            )),
        ]  # fmt: skip
    b = r.get("bounds")
    if isinstance(b, Mapping):
        parts.append("<h2>Plug-in bounds (conditional)</h2>")
        if b.get("computed"):
            parts.append(f"<p>Inputs used: {_num(b.get('inputs', {}))}</p>")
            parts += [f"<p>Adjustment: {_e(a)}</p>" for a in b.get("adjustments", [])]
            sharp = b.get("sharp", {})
            parts.append(_table(
                ("bound", "published", "sharp"),
                ((k, v, sharp.get(k)) for k, v in b.get("published", {}).items()),
            ))  # fmt: skip
        else:
            parts.append(f"<p>Not computed: {_e(b.get('reason', '-'))}</p>")
    figs = [Path(p) for p in figures if Path(p).suffix == ".png"]
    if figs:
        parts.append("<h2>Figures</h2>")
        parts += [_figure(p) for p in figs]
    parts.append('<h2>Caveats</h2><dl id="caveats">')
    parts += [f"<dt><b>{_e(t)}</b></dt><dd>{_e(d)}</dd>" for t, d in _CAVEATS]
    foot = version_line(str(r.get("version", "?")), r.get("git_hash"))
    parts += ["</dl>", f"<p><small>{_e(foot)}, schema {_e(r.get('schema', '-'))}</small></p>",
              "</body></html>"]  # fmt: skip
    return "\n".join(parts) + "\n"


#: Captions of the run page's trend figures (:mod:`trm_bounds.plot.figures_runs`).
TREND_CAPTIONS = {
    "trend_certified": "Certified bound on |Error| at each training step (constant 1, "
                       "docs/theory.md §9); a step without a generation limit has no point.",
    "trend_mismatch_nats": "Mismatch metrics measured in nats, at each training step.",
    "trend_mismatch_scores": "Dimensionless mismatch scores at each training step.",
    "trend_acceptance": "Percent of sequences each mask keeps, at each training step.",
    "trend_bounds": "Plug-in unified bound at each step: conditional, guarantees nothing.",
}


def run_html(run: Mapping[str, Any], figures: Iterable[Path] = ()) -> str:
    """``run.html``: the run page of ``run.json`` (:func:`trm_bounds.evaluate.runs.evaluate_run`),
    self-contained like :func:`report_html`: the certified bound per step first, then the
    mask rates and the mismatch metrics with their meanings, then the trend figures."""
    rows = [r for r in run.get("steps", []) if isinstance(r, Mapping)]
    crit = sorted({k.split(":", 1)[1] for r in rows for k in r if k.startswith("acceptance:")})
    metr = sorted({k.split(":", 1)[1] for r in rows for k in r if k.startswith("metric:")})
    title = "trm-bounds run report"
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{_e(title)}</h1>", '<section class="verdict" id="verdict">']  # fmt: skip
    certs = [r["certified:bound"] for r in rows if r.get("certified:bound") is not None]
    if certs:
        parts.append(f"<p><b>Certified |Error| (level {_num(run.get('level'))}) from "
                     f"{_num(min(certs))} to {_num(max(certs))} over {len(rows)} steps.</b></p>")
    else:
        parts.append("<p><b>No certified bound at any step: pass --max-response-length N "
                     "(the generation limit).</b></p>")
    parts.append(_table(("step", "certified bound on |Error|", "verdict"), (
        (r.get("step"), r.get("certified:bound"), r.get("verdict") or "-") for r in rows)))
    parts += ["</section>", "<h2>What the masks keep (percent of sequences)</h2>",
              _table(["step", *crit], ([r.get("step"), *(percent(r.get(f"acceptance:{c}",
                                                                       math.nan))
                                                         for c in crit)] for r in rows)),
              "<h2>Mismatch metrics</h2>",
              _table(["step", *metr], ([r.get("step"), *(r.get(f"metric:{m}") for m in metr)]
                                       for r in rows)),
              "<dl>"]  # fmt: skip
    parts += [f"<dt><code>{_e(k)}</code></dt><dd>{_e(meaning(k))}</dd>" for k in [*metr, *crit]]
    parts.append("</dl>")
    figs = [Path(p) for p in figures if Path(p).suffix == ".png"]
    if figs:
        parts.append("<h2>Trends</h2>")
        parts += [_figure(p, TREND_CAPTIONS) for p in figs]
    foot = version_line(str(run.get("version", "?")), run.get("git_hash"))
    parts += [f"<p><small>{_e(foot)}, schema {_e(run.get('schema', '-'))}</small></p>",
              "</body></html>"]
    return "\n".join(parts) + "\n"
