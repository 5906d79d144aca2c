"""A dataset of dump files: paths, format detection and iteration in canonical chunks."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs.batch import Batch
from trm_bounds.logs.batch_dict import _iter_npz, _iter_pt
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.jsonl import _iter_jsonl
from trm_bounds.logs.parquet import _iter_parquet

__all__ = [
    "FORMATS",
    "resolve_paths",
    "detect_format",
    "iter_batches",
    "count_sequences",
    "load_dataset",
]

#: Formats accepted by ``--format``.
FORMATS = ("auto", "pt", "npz", "parquet", "jsonl", "slime")


def resolve_paths(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files, directories (their data files, sorted) and globs into one file list.

    Raises :class:`LogFormatError` when a spec matches nothing.
    """
    out: list[Path] = []
    suffixes = {".pt", ".pth", ".npz", ".parquet", ".jsonl", ".json"}
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes)
            if not files:
                raise LogFormatError(p, "directory", None, "holds no .pt/.npz/.parquet/.jsonl")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(spec), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise LogFormatError(spec, "path", None, "no such file, directory or glob match")
            out.extend(matches)
    return out


def detect_format(path: str | os.PathLike) -> str:
    """Format name from the suffix (``.pt`` dumps are told apart later by their content)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".pt", ".pth"):
        return "pt"
    if suffix == ".npz":
        return "npz"
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    raise LogFormatError(path, "file", None, f"unknown suffix '{suffix}'; pass --format")


def iter_batches(
    paths: Sequence[str | os.PathLike],
    *,
    fmt: str = "auto",
    chunk_size: int = 1024,
    trust_pickle: bool = False,
) -> Iterator[Batch]:
    """Iterate a dataset (files, directories, globs) as canonical chunks of <= chunk_size rows.

    Peak memory: one parquet row group / JSONL chunk; for ``.pt``/``.npz`` one shard (these
    formats cannot be read partially).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    for file in resolve_paths(paths):
        if file.stat().st_size == 0:
            raise LogFormatError(file, "file", None, "empty file")
        kind = detect_format(file) if fmt == "auto" else fmt
        if kind in ("pt", "slime"):
            yield from _iter_pt(file, chunk_size, trust_pickle, kind)
        elif kind == "npz":
            yield from _iter_npz(file, chunk_size, trust_pickle)
        elif kind == "parquet":
            yield from _iter_parquet(file, chunk_size)
        else:
            yield from _iter_jsonl(file, chunk_size)


def count_sequences(paths: Sequence[str | os.PathLike], *, fmt: str = "auto") -> int | None:
    """Number of sequences when cheap to know (parquet metadata), else None (progress bars)."""
    try:
        files = resolve_paths(paths)
    except LogFormatError:
        return None
    total = 0
    for f in files:
        kind = detect_format(f) if fmt == "auto" and f.suffix else fmt
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
