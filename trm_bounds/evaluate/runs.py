"""Per-step runs and side-by-side comparisons of the evaluator (docs/theory.md §6).

A directory of step files (NeMo-RL ``train_data_step{N}.jsonl``, slime
``train_data/{rollout_id}.pt``, SkyRL ``global_step_{N}_training_input.pkl``) is a *run*:
:func:`evaluate_run` evaluates every step on its own (``out/step_{N}/``) and writes
``run.json`` (schema ``trm-bounds-run/v1``): one row per step with the mismatch metrics, the
acceptance of every criterion and the bounds, the input of the trend figures.
:func:`compare` evaluates two dumps (two runs' steps, or two runs) into ``out/a``, ``out/b``
and writes ``compare.json``/``compare.md``: the certified bounds and verdicts first, then the
numbers that matter side by side with ``b - a`` (every number stays in ``compare.json``).
The step of a file is parsed from its framework's naming (:func:`trm_bounds.logs.step_of`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trm_bounds.evaluate.options import EvaluateOptions
from trm_bounds.evaluate.output import OutputFolder
from trm_bounds.evaluate.run import evaluate
from trm_bounds.evaluate.words import meaning, percent, version_line
from trm_bounds.logs import LogFormatError, steps_of
from trm_bounds.results import atomic_write_text, git_hash, to_jsonable

__all__ = [
    "RUN_SCHEMA", "COMPARE_SCHEMA", "steps_of_run", "summary_row", "evaluate_run", "compare",
    "evaluate_runs", "run_markdown", "compare_markdown",
]  # fmt: skip

RUN_SCHEMA = "trm-bounds-run/v1"
COMPARE_SCHEMA = "trm-bounds-compare/v1"

#: ``draw_trends(run_json, directory) -> paths``
#: (:func:`trm_bounds.plot.figures_runs.draw_run_figures`).
TrendDrawer = Callable[[dict[str, Any], Path], Sequence[Path]]


def steps_of_run(run: str | os.PathLike | Sequence[str | os.PathLike]) -> dict[int, list[Path]]:
    """``{step: files}`` of a run, steps ascending (:func:`trm_bounds.logs.steps_of`, the one
    rule of which files make up a run); ``LogFormatError`` when no file of it names a step.
    The files are :class:`~trm_bounds.logs.DataFile` paths: one found by scanning the run
    folder is optional, so a validation file beside a step's training file is skipped with
    a notice, never the step.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for n in ("train_data_step2.jsonl", "train_data_step10.jsonl", "val_data_step2.jsonl"):
    ...     _ = (d / n).write_text("")
    >>> {k: [p.path.name for p in v] for k, v in steps_of_run(d).items()}
    {2: ['train_data_step2.jsonl', 'val_data_step2.jsonl'], 10: ['train_data_step10.jsonl']}
    """
    return steps_of(run)  # type: ignore[return-value]


def summary_row(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one report that a trend or a comparison shows (plain values): the
    certified bound and verdict first (``certified:*``, None without a certificate), then
    counts, metrics, acceptance rates and the plug-in bounds."""
    b = report["bounds"]
    o = report["observed"]
    c = report.get("certified") or {}
    ok = bool(c.get("computed"))
    return {
        "certified:bound": c["proved_here"]["bound"] if ok else None,
        "certified:dbar_sum_ucb": c.get("dbar_sum_ucb") if ok else None,
        "certified:dbar_sum_estimate": c.get("dbar_sum_estimate"),
        "certified:n_units": c.get("n_units") if ok else None,
        "verdict": (report.get("verdict") or {}).get("status"),
        "n_sequences": report["n_sequences"],
        "n_tokens": report["n_tokens"],
        **{f"metric:{k}": v for k, v in report["metrics"].items()},
        "delta_plugin": o["delta_plugin"],
        "eps_plugin": o["eps_plugin"],
        "dkl_seq_estimate": o["dkl_seq_estimate"],
        **{f"acceptance:{c}": d["acceptance_rate"] for c, d in report["criteria"].items()},
        **(
            {f"bound:{k}": v for k, v in b["published"].items()}
            | {f"bound_sharp:{k}": v for k, v in b["sharp"].items()}
            if b.get("computed")
            else {}
        ),
    }


#: What :func:`evaluate_run` and :func:`compare` write into their folders.
RUN_OUTPUTS = ("step_*", "run.json", "run.md", "run.html", "trend_*.*")
COMPARE_OUTPUTS = ("a", "b", "compare.json", "compare.md")


def _write_json(path: Path, obj: dict[str, Any]) -> str:
    text = json.dumps(to_jsonable(obj), indent=1) + "\n"
    atomic_write_text(path, text)
    return text


def _options(options: EvaluateOptions | None, changes: dict[str, Any]) -> EvaluateOptions:
    opts = options if options is not None else EvaluateOptions()
    return opts.replace(**changes) if changes else opts


def evaluate_run(
    run: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: EvaluateOptions | None = None,
    *,
    draw_trends: TrendDrawer | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Evaluate every step of a run on its own; write ``out/step_{N}/``, ``run.json`` and the
    run page ``run.md`` (and ``run.html`` with ``options.html``).

    ``options``/``changes`` as for :func:`~trm_bounds.evaluate.evaluate` (``draw_figures``
    per step, ``overwrite`` for ``out_dir``). ``draw_trends(run_json, directory) -> paths``
    draws the trend figures from the saved ``run.json``
    (:func:`trm_bounds.plot.figures_runs.draw_run_figures`). A step whose files hold no
    logprobs (only validation files) is skipped and listed under ``skipped_steps``. One
    output transaction (:class:`~trm_bounds.evaluate.output.OutputFolder`): a failed run
    leaves ``out_dir`` as it was.
    """
    opts = _options(options, changes)
    steps = steps_of_run(run)
    folder = OutputFolder(out_dir, RUN_OUTPUTS, last="run.json", overwrite=opts.overwrite)
    with folder as tmp:
        per_step = opts.replace(overwrite=False)
        rows, skipped = [], []
        for s, files in steps.items():
            try:
                rep = evaluate(files, tmp / f"step_{s}", per_step)
            except LogFormatError as err:
                if "no valid token" in str(err) or "logprob" in str(err):
                    skipped.append({"step": s, "reason": str(err)})
                    continue
                raise
            rows.append({"step": s, "files": [str(f) for f in files], **summary_row(rep)})
        if not rows:
            raise LogFormatError(steps[next(iter(steps))][0], "directory", None,
                                 "no step holds trainer and rollout logprobs")  # fmt: skip
        from trm_bounds import __version__

        result = {"schema": RUN_SCHEMA, "steps": rows, "skipped_steps": skipped,
                  "level": opts.level, "version": __version__,
                  "git_hash": git_hash()}  # fmt: skip
        text = _write_json(tmp / "run.json", result)
        figs = [Path(p) for p in draw_trends(json.loads(text), tmp)] if draw_trends else []
        saved = json.loads(text)  # the page, like the figures, is drawn from the saved file
        atomic_write_text(tmp / "run.md", run_markdown(saved, figs))
        if opts.html:
            from trm_bounds.evaluate.html import run_html

            atomic_write_text(tmp / "run.html", run_html(saved, figs))
        folder.commit()
    return result


def _step_claim(row: dict[str, Any]) -> str:
    b = row.get("certified:bound")
    return "none (no generation limit)" if b is None else f"{b:.4g} ({row.get('verdict')})"


def run_markdown(run: dict[str, Any], figures: Sequence[Path] = ()) -> str:
    """``run.md``: the certified bound per step first, then the mismatch and mask rates."""
    rows = run["steps"]
    certs = [r["certified:bound"] for r in rows if r.get("certified:bound") is not None]
    head = (f"certified |Error| from {min(certs):.3g} to {max(certs):.3g} over "
            f"{len(rows)} steps" if certs else
            "no certified bound at any step: pass --max-response-length N (the generation "
            "limit)")  # fmt: skip
    crit = sorted({k.split(":", 1)[1] for r in rows for k in r if k.startswith("acceptance:")})
    metr = sorted({k.split(":", 1)[1] for r in rows for k in r if k.startswith("metric:")})
    lines = ["# trm-bounds run report", "", f"**{head} (level {run.get('level', 0.95):g}).**", "",
             "| step | certified bound on abs(Error) | " + " | ".join(f"`{m}`" for m in metr)
             + " | " + " | ".join(f"kept by `{c}`" for c in crit) + " |",
             "|---|---|" + "---|" * (len(metr) + len(crit))]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['step']} | {_step_claim(r)} | "
                     + " | ".join(_f(r.get(f"metric:{m}")) for m in metr) + " | "
                     + " | ".join(percent(r[f"acceptance:{c}"]) if f"acceptance:{c}" in r
                                  else "-" for c in crit) + " |")  # fmt: skip
    lines += ["", "Metrics:"] + [f"- `{m}`: {meaning(m)}" for m in metr]
    lines += ["", "Criteria:"] + [f"- `{c}`: {meaning(c)}" for c in crit]
    if run.get("skipped_steps"):
        lines += ["", "Skipped steps:"]
        lines += [f"- step {s['step']}: {s['reason']}" for s in run["skipped_steps"]]
    if figures:
        lines += ["", "## Trends", ""] + [f"![{p.stem}]({p.name})" for p in figures
                                          if p.suffix == ".png"]  # fmt: skip
    lines += ["", "---", version_line(str(run.get("version", "?")), run.get("git_hash"))]
    return "\n".join(lines) + "\n"


def compare(
    a: str | os.PathLike | Sequence[str | os.PathLike],
    b: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: EvaluateOptions | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Evaluate two dumps (two steps, or two runs pooled) side by side: ``out/a``, ``out/b``,
    ``compare.json`` (every number of :func:`summary_row` as ``{a, b, b_minus_a}``, the
    certified ones first) and ``compare.md`` (:func:`compare_markdown`); one output
    transaction like :func:`evaluate_run`."""
    opts = _options(options, changes)
    folder = OutputFolder(out_dir, COMPARE_OUTPUTS, last="compare.json", overwrite=opts.overwrite)
    with folder as tmp:
        each = opts.replace(overwrite=False)
        ra = summary_row(evaluate(a, tmp / "a", each))
        rb = summary_row(evaluate(b, tmp / "b", each))
        rows = {}
        for k in [*ra, *(k for k in rb if k not in ra)]:  # summary_row's order: certified first
            va, vb = ra.get(k), rb.get(k)
            num = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
            rows[k] = {"a": va, "b": vb, "b_minus_a": vb - va if num else None}
        from trm_bounds import __version__

        result = {"schema": COMPARE_SCHEMA, "a": _names(a), "b": _names(b), "rows": rows,
                  "level": opts.level, "version": __version__,
                  "git_hash": git_hash()}  # fmt: skip
        text = _write_json(tmp / "compare.json", result)
        atomic_write_text(tmp / "compare.md", compare_markdown(json.loads(text)))
        folder.commit()
    return result


#: The rows of ``compare.md`` after the certificate: what the masks keep and the mismatch.
_COMPARE_PREFIXES = ("acceptance:", "metric:")


def compare_markdown(result: dict[str, Any]) -> str:
    """``compare.md``: the certified bounds and verdicts, then the mask rates and mismatch
    metrics (each with its meaning), then the counts; every other number is in the JSON."""
    rows = result["rows"]
    ba, bb = rows["certified:bound"]["a"], rows["certified:bound"]["b"]
    va, vb = rows["verdict"]["a"], rows["verdict"]["b"]

    def claim(bound: Any, verdict: Any) -> str:
        return "no certified bound (no generation limit)" if bound is None else \
            f"|Error| <= {bound:.4g} ({verdict})"

    lines = ["# trm-bounds comparison", "",
             f"**Certified at level {result.get('level', 0.95):g}: a {claim(ba, va)}; "
             f"b {claim(bb, vb)}.**", "",
             f"a: {', '.join(result['a'])}  ", f"b: {', '.join(result['b'])}", "",
             "| quantity | a | b | b - a | meaning (unit) |", "|---|---|---|---|---|"]  # fmt: skip
    for key in ("certified:bound", "certified:dbar_sum_estimate"):
        v = rows[key]
        lines.append(f"| {key} | {_f(v['a'])} | {_f(v['b'])} | {_f(v['b_minus_a'])} | "
                     f"{'bound on abs(Error)' if key == 'certified:bound' else 'sum_t Dbar_t'} |")
    for prefix in _COMPARE_PREFIXES:
        for k, v in rows.items():
            if k.startswith(prefix):
                name = k.split(":", 1)[1]
                if prefix == "acceptance:":
                    fa, fb = percent(v["a"]), percent(v["b"])
                    d = "-" if v["b_minus_a"] is None else f"{100 * v['b_minus_a']:+.1f} pts"
                    lines.append(f"| kept by `{name}` | {fa} | {fb} | {d} | {meaning(name)} |")
                else:
                    lines.append(f"| `{name}` | {_f(v['a'])} | {_f(v['b'])} | "
                                 f"{_f(v['b_minus_a'])} | {meaning(name)} |")  # fmt: skip
    for k in ("n_sequences", "n_tokens"):
        v = rows[k]
        lines.append(f"| {k} | {v['a']} | {v['b']} | {_f(v['b_minus_a'])} | count |")
    lines += ["", "Every other number (plug-in values and bounds) is in compare.json.", "",
              "---", version_line(str(result.get("version", "?")), result.get("git_hash"))]
    return "\n".join(lines) + "\n"


def evaluate_runs(
    dumps: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: EvaluateOptions | None = None,
    *,
    by_step: bool = False,
    pair: bool = False,
    draw_trends: TrendDrawer | None = None,
) -> tuple[str, list[str]]:
    """What ``trm-bounds evaluate`` runs: one dataset (:func:`~trm_bounds.evaluate.evaluate`),
    a run step by step (``by_step``: :func:`evaluate_run`, trends drawn by ``draw_trends``)
    or two dumps side by side (``pair``: :func:`compare`). Returns the line that says what
    was written where, and the warnings of the reports (each once, for stderr). ``ValueError``
    for both modes at once, or ``pair`` without exactly two dumps."""
    if by_step and pair:
        raise ValueError("by_step and pair (compare) exclude each other")
    if pair and len(dumps) != 2:
        raise ValueError(f"compare takes exactly two dumps (A B), got {len(dumps)}")
    out = Path(out_dir)
    if pair:
        a, b = dumps
        compare(a, b, out, options)
        reports = [out / "a" / "report.json", out / "b" / "report.json"]
        line = f"a: {a}, b: {b} -> {out / 'compare.json'}"
    elif by_step:
        res = evaluate_run(dumps, out, options, draw_trends=draw_trends)
        reports = [out / f"step_{r['step']}" / "report.json" for r in res["steps"]]
        n, skipped = len(res["steps"]), len(res["skipped_steps"])
        line = f"{n} steps ({skipped} skipped) -> {out / 'run.json'}"
    else:
        rep = evaluate(dumps, out, options)
        reports = [out / "report.json"]
        line = f"{rep['n_sequences']} sequences, {rep['n_tokens']} tokens -> {out / 'report.json'}"
    warnings: dict[str, None] = {}
    for p in reports:
        for w in json.loads(p.read_text()).get("warnings", []):
            warnings[f"{p.parent.name}: {w}" if len(reports) > 1 else w] = None
    return line, list(warnings)


def _names(x: Any) -> list[str]:
    return [str(x)] if isinstance(x, (str, os.PathLike)) else [str(p) for p in x]


def _f(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
