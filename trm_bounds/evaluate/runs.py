"""Per-step runs and side-by-side comparisons of the evaluator (docs/theory.md §6).

A directory of step files (NeMo-RL ``train_data_step{N}.jsonl``, slime
``train_data/{rollout_id}.pt``, SkyRL ``global_step_{N}_training_input.pkl``) is a *run*:
:func:`evaluate_run` evaluates every step on its own (``out/step_{N}/``) and writes
``run.json`` (schema ``trm-bounds-run/v1``): one row per step with the mismatch metrics, the
acceptance of every criterion and the bounds, the input of the trend figures.
:func:`compare` evaluates two dumps (two runs' steps, or two runs) into ``out/a``, ``out/b``
and writes ``compare.json``/``compare.md``: each number side by side with ``b - a``.
The step of a file is parsed from its framework's naming (:func:`trm_bounds.logs.step_of`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trm_bounds.evaluate.run import OutputDirError, evaluate
from trm_bounds.logs import LogFormatError, steps_of
from trm_bounds.results import atomic_write_text, git_hash, to_jsonable

__all__ = [
    "RUN_SCHEMA", "COMPARE_SCHEMA", "steps_of_run", "summary_row", "evaluate_run", "compare",
    "evaluate_runs",
]  # fmt: skip

RUN_SCHEMA = "trm-bounds-run/v1"
COMPARE_SCHEMA = "trm-bounds-compare/v1"


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
    """The numbers of one report that a trend or a comparison shows (plain floats)."""
    b = report["bounds"]
    o = report["observed"]
    return {
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


def _fresh_out(out: Path, overwrite: bool) -> Path:
    """A temporary directory beside ``out`` (swapped in whole by :func:`_swap_in`)."""
    if out.exists() and not out.is_dir():
        raise OutputDirError(out, "exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputDirError(out, "is not empty; pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` whole (the old directory is removed only after the rename)."""
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp creates 0700
    if out.exists():
        old = out.with_name(f".{out.name}.old.{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=1) + "\n")
    umask = os.umask(0o022)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def evaluate_run(
    run: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    draw_trends: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate every step of a run on its own; write ``out/step_{N}/`` and ``run.json``.

    ``options`` are those of :func:`~trm_bounds.evaluate.evaluate` (``draw_figures``
    included, per step). ``draw_trends(run_json, directory) -> paths`` draws the trend
    figures (:func:`trm_bounds.plot.figures_runs.draw_run_figures`). A step whose files hold
    no logprobs (only validation files) is skipped and listed under ``skipped_steps``. The
    whole output is written into a temporary directory and swapped in at the end, so a failed
    run leaves ``out_dir`` as it was.
    """
    out = Path(out_dir)
    steps = steps_of_run(run)
    tmp = _fresh_out(out, overwrite)
    try:
        rows, skipped = [], []
        for s, files in steps.items():
            try:
                rep = evaluate(files, tmp / f"step_{s}", **options)
            except LogFormatError as err:
                if "no valid token" in str(err) or "logprob" in str(err):
                    skipped.append({"step": s, "reason": str(err)})
                    continue
                raise
            rows.append({"step": s, "files": [str(f) for f in files], **summary_row(rep)})
        if not rows:
            raise LogFormatError(steps[next(iter(steps))][0], "directory", None,
                                 "no step holds trainer and rollout logprobs")  # fmt: skip
        result = {"schema": RUN_SCHEMA, "steps": rows, "skipped_steps": skipped,
                  "git_hash": git_hash()}  # fmt: skip
        _write_json(tmp / "run.json", result)
        if draw_trends is not None:
            draw_trends(json.loads((tmp / "run.json").read_text()), tmp)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def compare(
    a: str | os.PathLike | Sequence[str | os.PathLike],
    b: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    overwrite: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate two dumps (two steps, or two runs pooled) side by side: ``out/a``, ``out/b``,
    ``compare.json`` (every number of :func:`summary_row` as ``{a, b, b_minus_a}``) and
    ``compare.md``; swapped in whole like :func:`evaluate_run`."""
    out = Path(out_dir)
    tmp = _fresh_out(out, overwrite)
    try:
        ra = summary_row(evaluate(a, tmp / "a", **options))
        rb = summary_row(evaluate(b, tmp / "b", **options))
        rows = {}
        for k in ra.keys() | rb.keys():
            va, vb = ra.get(k), rb.get(k)
            diff = vb - va if isinstance(va, (int, float)) and isinstance(vb, (int, float)) else None
            rows[k] = {"a": va, "b": vb, "b_minus_a": diff}
        rows = dict(sorted(rows.items()))
        result = {"schema": COMPARE_SCHEMA, "a": _names(a), "b": _names(b), "rows": rows,
                  "git_hash": git_hash()}  # fmt: skip
        _write_json(tmp / "compare.json", result)
        lines = ["# trm-bounds comparison", "", f"a: {', '.join(result['a'])}  ",
                 f"b: {', '.join(result['b'])}", "", "| quantity | a | b | b - a |",
                 "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {k} | {_f(v['a'])} | {_f(v['b'])} | {_f(v['b_minus_a'])} |"
                  for k, v in rows.items()]  # fmt: skip
        atomic_write_text(tmp / "compare.md", "\n".join(lines) + "\n")
        os.chmod(tmp / "compare.md", (tmp / "compare.json").stat().st_mode & 0o777)
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def evaluate_runs(
    dumps: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    by_step: bool = False,
    pair: bool = False,
    draw_trends: Any = None,
    **options: Any,
) -> str:
    """What ``trm-bounds evaluate`` runs: one dataset (:func:`~trm_bounds.evaluate.evaluate`),
    a run step by step (``--by-step``: :func:`evaluate_run`, trends drawn by ``draw_trends``)
    or two dumps side by side (``--compare A B``: :func:`compare`); return the line that says
    what was written where. ``ValueError`` (in the command line's words) for both modes at
    once, or ``pair`` without exactly two dumps."""
    if by_step and pair:
        raise ValueError("--by-step and --compare exclude each other")
    if pair and len(dumps) != 2:
        raise ValueError(f"--compare takes exactly two dumps (A B), got {len(dumps)}")
    out = Path(out_dir)
    if pair:
        a, b = dumps
        compare(a, b, out, **options)
        return f"a: {a}, b: {b} -> {out / 'compare.json'}"
    if by_step:
        res = evaluate_run(dumps, out, draw_trends=draw_trends, **options)
        return f"{len(res['steps'])} steps ({len(res['skipped_steps'])} skipped) -> {out / 'run.json'}"
    rep = evaluate(dumps, out, **options)
    return f"{rep['n_sequences']} sequences, {rep['n_tokens']} tokens -> {out / 'report.json'}"


def _names(x: Any) -> list[str]:
    return [str(x)] if isinstance(x, (str, os.PathLike)) else [str(p) for p in x]


def _f(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else "-" if v is None else str(v)
