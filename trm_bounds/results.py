"""Result files: every experiment writes one JSON file, every figure is drawn from one.

A result file is a JSON object with the experiment's data plus provenance:
``{"experiment", "created", "git_hash", "args", "seed", ...data}``.
Files are written atomically (temporary file, then rename), so an interrupted run
never leaves a partial result behind.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "write_results",
    "read_results",
    "git_hash",
    "to_jsonable",
    "atomic_write_text",
    "portable_path",
    "checkout_root",
    "SHIPPED_RESULTS",
    "SHIPPED_RESULT_FILES",
    "results_dir",
    "default_result_path",
    "out_dir_error",
]


def git_hash(cwd: str | os.PathLike | None = None) -> str | None:
    """The current commit of the repository holding ``cwd`` (or this package), or None."""
    cwd = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def to_jsonable(obj: Any) -> Any:
    """Convert numpy scalars/arrays (recursively) to plain Python; non-finite floats to strings."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, Path):
        return str(obj)
    return obj


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; result files are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_ROOT = Path(__file__).resolve().parents[1]  # the source checkout holding the package

#: The one home of the result files the figures read (and of the instances file the F10
#: study reads): ``trm_bounds/data/results``, tracked in the checkout and shipped in the
#: wheel as package data.
SHIPPED_RESULTS = Path(__file__).resolve().parent / "data" / "results"

#: The files under :data:`SHIPPED_RESULTS`: the result files of the figures F1-F10
#: (``trm_bounds.plot.FIGURES``) and ``transformer_instances.json``, which the F7 study writes
#: and the F10 study reads (tests/test_packaging.py checks this list against both).
SHIPPED_RESULT_FILES = (
    "bound_scaling.json",
    "tabular_scaling.json",
    "transformer_mismatch.json",
    "transformer_instances.json",
    "demo_eval/report.json",
    "worst_case.json",
    "certify_figure.json",
)


def checkout_root() -> Path | None:
    """The source checkout holding this package (editable install or a run from the checkout),
    or None for an installed wheel."""
    if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "experiments").is_dir():
        return _ROOT
    return None


def results_dir() -> Path:
    """Where the result files the figures read are found by default:
    :data:`SHIPPED_RESULTS` (in a checkout, the tracked folder the studies rewrite; in a
    wheel, the installed copies)."""
    return SHIPPED_RESULTS


def default_result_path(result: str) -> Path:
    """Where a study writes ``result`` (a path relative to a results folder) by default.

    In a source checkout: :data:`SHIPPED_RESULTS` for the files the figures read
    (:data:`SHIPPED_RESULT_FILES`), else ``experiments/results``; outside a checkout
    ``./results`` (never inside the installed package).

    >>> default_result_path("worst_case.json") == SHIPPED_RESULTS / "worst_case.json"
    True
    """
    root = checkout_root()
    if root is None:
        return Path.cwd() / "results" / result
    if result in SHIPPED_RESULT_FILES:
        return SHIPPED_RESULTS / result
    return root / "experiments" / "results" / result


def out_dir_error(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be (or become) a folder to write into, or None; creates nothing.

    An existing ``path`` must be a writable directory; otherwise its nearest existing
    ancestor must be.

    >>> out_dir_error(__file__)
    'exists and is not a directory'
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            return "exists and is not a directory"
        probe = path
    else:
        probe = path.absolute().parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            return f"{probe} is a file, not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def portable_path(value: Any) -> Any:
    """Paths inside the source checkout as checkout-relative strings (result files are
    committed, so they should not carry one machine's absolute paths)."""
    if isinstance(value, (str, Path)) and os.path.isabs(value):
        try:
            return Path(value).resolve().relative_to(_ROOT).as_posix()
        except ValueError:
            return str(value)
    return value


def write_results(
    path: str | os.PathLike,
    data: dict[str, Any],
    *,
    experiment: str,
    args: dict[str, Any] | None = None,
    seed: int | None = None,
) -> Path:
    """Write one experiment's results with provenance (experiment, created, git hash, args, seed)."""
    record = {
        "experiment": experiment,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_hash": git_hash(),
        "args": {k: portable_path(v) for k, v in (args or {}).items()},
        "seed": seed,
    }
    record.update(data)
    return atomic_write_text(path, json.dumps(to_jsonable(record), indent=1) + "\n")


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read a result file written by :func:`write_results`."""
    with open(path) as fh:
        return json.load(fh)
