"""A dataset of dump files read as canonical chunks: the one reading loop of every engine.

Which files make up the dataset (and which may be skipped) is decided by
:mod:`~trm_bounds.logs.run_folder`; how each file is read, by the registry of
:mod:`~trm_bounds.logs.readers`. :func:`read_file` reads one file (or one part of it: a
parquet row group) as the local engine and every Ray task do; :func:`iter_batches` reads a
whole dataset and makes the end-of-dataset checks (:class:`~trm_bounds.logs.run_folder.DatasetTally`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from trm_bounds.logs.batch import Batch
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import FRAMEWORK_NAMES, MissingLogprobs
from trm_bounds.logs.read_options import ReadOptions
from trm_bounds.logs.readers import FILE_KINDS, reader_for
from trm_bounds.logs.run_folder import DataFile, DatasetTally, data_files, resolve_paths

__all__ = ["FORMATS", "detect_format", "read_options", "read_file", "iter_batches",
           "count_sequences", "load_dataset"]  # fmt: skip

#: Formats accepted by ``--format``: ``auto``, a file kind, or a framework (whose field names,
#: masks and alignment then apply; :mod:`~trm_bounds.logs.frameworks`).
FORMATS = ("auto", *FILE_KINDS, *FRAMEWORK_NAMES)


def detect_format(path: str | os.PathLike) -> str:
    """File kind from the suffix (``.pt`` dumps are told apart later by their content)."""
    return reader_for(path).kind


def read_options(fmt: str = "auto", chunk_size: int = 1024, trust_pickle: bool = False
                 ) -> ReadOptions:  # fmt: skip
    """Check ``fmt`` and ``chunk_size``; the options of every reader."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    framework = fmt if fmt in FRAMEWORK_NAMES else "auto"
    return ReadOptions(framework=framework, chunk_size=chunk_size, trust_pickle=trust_pickle)


def read_file(
    file: DataFile,
    fmt: str,
    opts: ReadOptions,
    part: Any = None,
    skipped: list[tuple[str, str]] | None = None,
) -> Iterator[Batch]:
    """The chunks of one file (``part``: one part of it, :attr:`Reader.parts`). An optional
    file without a logprob pair yields nothing and is appended to ``skipped`` with what it
    lacks; any other bad input raises :class:`LogFormatError`."""
    path = file.path
    if path.stat().st_size == 0:
        raise LogFormatError(path, "file", None, "empty file")
    reader = reader_for(path, fmt if fmt in FILE_KINDS else None)
    it = reader.read(path, opts, part)
    try:
        first = next(it, None)
    except MissingLogprobs as err:
        if not file.optional:
            raise
        if skipped is not None:
            skipped.append((str(path), f"no {err.field or 'logprob field'}"))
        return
    if first is None:
        return
    yield first
    yield from it


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
    (every mask 0). Peak memory: one parquet record batch (at most
    :data:`~trm_bounds.logs.MAX_CHUNK_BYTES` of input) / JSONL chunk; for
    ``.pt``/``.pkl``/``.npz`` one shard (these formats cannot be read partially).
    """
    opts = read_options(fmt, chunk_size, trust_pickle)
    files = data_files(paths)
    tally = DatasetTally(paths, len(files))
    for f in files:
        for b in read_file(f, fmt, opts, skipped=tally.skipped):
            tally.add(b)
            yield b
    tally.finish(notice)


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
    pid = [c.prompt_id for c in chunks]
    has_pid = all(p is not None for p in pid)
    fields = {c.group_field for c in chunks}
    limits = {(c.max_response_length, c.max_response_length_source) for c in chunks}
    limit, limit_src = limits.pop() if len(limits) == 1 else (None, None)
    return Batch(
        log_probs=cat("log_probs", 0.0),
        rollout_log_probs=cat("rollout_log_probs", 0.0),
        response_mask=cat("response_mask", False),
        source=chunks[0].source,
        reward=np.concatenate(rew) if all(r is not None for r in rew) else None,
        prompt_id=np.concatenate(pid) if has_pid else None,
        group_field=fields.pop() if len(fields) == 1 and has_pid else None,
        max_response_length=limit,
        max_response_length_source=limit_src,
        n_nan_tokens=sum(c.n_nan_tokens for c in chunks),
    )
