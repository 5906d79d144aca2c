"""A dataset of dump files: paths, format detection and iteration in canonical chunks.

A framework's log directory is one dataset: data files are found recursively (``.pt``,
``.pth``, ``.pkl``, ``.npz``, ``.parquet``, ``.jsonl``, ``.jsonl.gz``; ``.json`` only when
named explicitly), ``wandb/``, ``tensorboard/`` and hidden directories are not entered, and a
file without both logprob fields (NeMo-RL ``val_data_step{N}.jsonl``, slime
``rollout_data/{id}.pt``) is skipped with one notice that counts the skipped files.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs.batch import Batch
from trm_bounds.logs.batch_dict import _iter_npz, _iter_pkl, _iter_pt
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import FRAMEWORK_NAMES, MissingLogprobs
from trm_bounds.logs.jsonl import _iter_jsonl
from trm_bounds.logs.parquet import _iter_parquet

__all__ = [
    "FORMATS",
    "FILE_KINDS",
    "resolve_paths",
    "detect_format",
    "iter_batches",
    "count_sequences",
    "load_dataset",
    "step_of",
]

#: File kinds (told from the suffix under ``auto``).
FILE_KINDS = ("pt", "pkl", "npz", "parquet", "jsonl")

#: Formats accepted by ``--format``: ``auto``, a file kind, or a framework (whose field names,
#: masks and alignment then apply; :mod:`~trm_bounds.logs.frameworks`).
FORMATS = ("auto", *FILE_KINDS, *FRAMEWORK_NAMES)

_DIR_SUFFIXES = (".pt", ".pth", ".pkl", ".npz", ".parquet", ".jsonl", ".jsonl.gz")
_SKIP_DIRS = {"wandb", "tensorboard", "tb", "tb_logs", "__pycache__"}

#: The step in each framework's file naming: NeMo-RL ``train_data_step{N}``, SkyRL
#: ``global_step_{N}_training_input``, slime ``train_data/{rollout_id}[_{rank}]``.
_STEP_PATTERNS = (
    re.compile(r"(?:^|_)step_?(\d+)"),
    re.compile(r"^(\d+)(?:_\d+)?$"),
)


def step_of(path: str | os.PathLike) -> int | None:
    """The training step of a dump file, parsed from its framework's naming, else None.

    >>> [step_of(p) for p in ("logs/train_data_step12.jsonl",
    ...     "dumped_data/global_step_7_training_input.pkl", "dump/train_data/3_0.pt", "x.pt")]
    [12, 7, 3, None]
    """
    name = Path(path).name
    for suf in (".gz", ".jsonl", ".pt", ".pth", ".pkl", ".npz", ".parquet", ".json"):
        if name.endswith(suf):
            name = name[: -len(suf)]
    for pat in _STEP_PATTERNS:
        m = pat.search(name)
        if m:
            return int(m.group(1))
    return None


def _data_files(d: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(d):
        dirs[:] = sorted(x for x in dirs if x not in _SKIP_DIRS and not x.startswith("."))
        out.extend(Path(root) / f for f in files if f.endswith(_DIR_SUFFIXES))
    return sorted(out)


def _expand(specs: Sequence[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """(file, found inside a directory) for every spec."""
    out: list[tuple[Path, bool]] = []
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            files = _data_files(p)
            if not files:
                raise LogFormatError(
                    p, "directory", None, "holds no .pt/.pkl/.npz/.parquet/.jsonl[.gz]"
                )
            out.extend((f, True) for f in files)
        elif p.is_file():
            out.append((p, False))
        else:
            matches = sorted(Path(m) for m in glob.glob(str(spec), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise LogFormatError(spec, "path", None, "no such file, directory or glob match")
            out.extend((m, False) for m in matches)
    return out


def resolve_paths(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files, directories (their data files, sorted) and globs into one file list.

    Raises :class:`LogFormatError` when a spec matches nothing.
    """
    return [f for f, _ in _expand(specs)]


def detect_format(path: str | os.PathLike) -> str:
    """File kind from the suffix (``.pt`` dumps are told apart later by their content)."""
    name = Path(path).name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = Path(name).suffix
    kinds = {".pt": "pt", ".pth": "pt", ".pkl": "pkl", ".pickle": "pkl", ".npz": "npz",
             ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}  # fmt: skip
    if suffix in kinds:
        return kinds[suffix]
    raise LogFormatError(path, "file", None, f"unknown suffix '{suffix}'; pass --format")


def _notice_stderr(text: str) -> None:
    sys.stderr.write(f"trm-bounds: note: {text}\n")


def skip_notice(skipped: Sequence[Path]) -> str:
    """One line counting the skipped files (with up to three names)."""
    shown = ", ".join(str(p) for p in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
    n = len(skipped)
    return f"skipped {n} file{'s' if n != 1 else ''} without trainer and rollout logprobs ({shown})"


def _iter_file(
    file: Path, kind: str, framework: str, chunk_size: int, trust_pickle: bool
) -> Iterator[Batch]:
    if kind in ("pt", "slime"):
        return _iter_pt(file, chunk_size, trust_pickle, kind, framework)
    if kind == "pkl":
        return _iter_pkl(file, chunk_size, trust_pickle, framework)
    if kind == "npz":
        return _iter_npz(file, chunk_size, trust_pickle, framework)
    if kind == "parquet":
        return _iter_parquet(file, chunk_size, framework)
    return _iter_jsonl(file, chunk_size, framework)


def iter_batches(
    paths: Sequence[str | os.PathLike],
    *,
    fmt: str = "auto",
    chunk_size: int = 1024,
    trust_pickle: bool = False,
    notice: Callable[[str], None] | None = None,
) -> Iterator[Batch]:
    """Iterate a dataset (files, directories, globs) as canonical chunks of <= chunk_size rows.

    ``fmt``: ``auto`` (file kind from the suffix, framework from the key set), a file kind of
    :data:`FILE_KINDS`, or a framework name (its field names, masks and alignment; the file
    kind from the suffix). Files found inside a directory without both logprob fields are
    skipped and counted in one line passed to ``notice`` (default: stderr). Raises
    :class:`LogFormatError` when nothing is left, or when the dataset holds no valid token
    (every mask 0). Peak memory: one parquet row group / JSONL chunk; for ``.pt``/``.pkl``/
    ``.npz`` one shard (these formats cannot be read partially).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    framework = fmt if fmt in FRAMEWORK_NAMES else "auto"
    skipped: list[Path] = []
    n_valid = 0
    files = _expand(paths)
    for file, in_dir in files:
        if file.stat().st_size == 0:
            raise LogFormatError(file, "file", None, "empty file")
        kind = fmt if fmt in FILE_KINDS else detect_format(file)
        if fmt == "slime" and kind == "pt":
            kind = "slime"
        it = _iter_file(file, kind, framework, chunk_size, trust_pickle)
        try:
            first = next(it, None)
        except MissingLogprobs:
            if not in_dir:
                raise
            skipped.append(file)
            continue
        if first is None:
            continue
        n_valid += int(first.response_mask.sum())
        yield first
        for b in it:
            n_valid += int(b.response_mask.sum())
            yield b
    if skipped:
        (notice or _notice_stderr)(skip_notice(skipped))
        if len(skipped) == len(files):
            raise LogFormatError(
                paths[0], "directory", None,
                f"no file holds trainer and rollout logprobs ({skip_notice(skipped)})",
            )  # fmt: skip
    if n_valid == 0:
        raise LogFormatError(
            paths[0] if len(paths) == 1 else f"{len(files)} files", "dataset", None,
            "no valid token (every trained-token mask is 0): nothing to evaluate",
        )  # fmt: skip


def count_sequences(paths: Sequence[str | os.PathLike], *, fmt: str = "auto") -> int | None:
    """Number of sequences when cheap to know (parquet metadata), else None (progress bars)."""
    try:
        files = resolve_paths(paths)
    except LogFormatError:
        return None
    total = 0
    for f in files:
        try:
            kind = fmt if fmt in FILE_KINDS else detect_format(f)
        except LogFormatError:
            return None
        if kind != "parquet":
            return None
        try:
            import pyarrow.parquet as pq

            total += pq.ParquetFile(f).metadata.num_rows
        except Exception:  # noqa: BLE001 -- a count is only a hint; the loader reports errors
            return None
    return total


def load_dataset(paths: Sequence[str | os.PathLike], **kwargs: Any) -> Batch:
    """The whole dataset as one canonical :class:`Batch` (small inputs and tests only)."""
    chunks = list(iter_batches(paths, **kwargs))
    Tm = max(c.response_mask.shape[1] for c in chunks)

    def cat(name: str, fill: Any) -> np.ndarray:
        parts = []
        for c in chunks:
            a = getattr(c, name)
            pad = Tm - a.shape[1]
            parts.append(np.pad(a, ((0, 0), (0, pad)), constant_values=fill) if pad else a)
        return np.concatenate(parts)

    rew = [c.reward for c in chunks]
    return Batch(
        log_probs=cat("log_probs", 0.0),
        rollout_log_probs=cat("rollout_log_probs", 0.0),
        response_mask=cat("response_mask", False),
        source=chunks[0].source,
        reward=np.concatenate(rew) if all(r is not None for r in rew) else None,
    )
