"""The one registry of readers: file kind -> how its files are read (docs/theory.md §6).

Each kind is one private module with a public ``read_*`` function
``read(file, opts: ReadOptions, part=None) -> Iterator[Batch]``; a kind that can be read in
parts (parquet row groups) also names a ``parts(file)`` function, whose items are the
``part`` arguments (the Ray engine's shards). A new file kind is one new module and one line
in :data:`READERS`. Which kind a file is: the ``--format`` given, else its suffix
(:func:`reader_for`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trm_bounds.logs._batch_dict import read_npz, read_pkl, read_pt
from trm_bounds.logs._jsonl import read_jsonl
from trm_bounds.logs._parquet import parquet_parts, read_parquet
from trm_bounds.logs.batch import Batch
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.read_options import ReadOptions

__all__ = ["Reader", "READERS", "FILE_KINDS", "DATA_SUFFIXES", "reader_for"]


@dataclass(frozen=True)
class Reader:
    """How one file kind is read; ``suffixes`` (lower case) pick it under ``auto``;
    ``in_directories``: files of this kind are found when a directory is scanned."""

    kind: str
    suffixes: tuple[str, ...]
    read: Callable[[Path, ReadOptions, Any], Iterator[Batch]]
    parts: Callable[[Path], list[Any]] | None = None
    in_directories: tuple[str, ...] | None = None  # default: every suffix


READERS: dict[str, Reader] = {
    r.kind: r
    for r in (
        Reader("pt", (".pt", ".pth"), read_pt),
        Reader("pkl", (".pkl", ".pickle"), read_pkl, in_directories=(".pkl",)),
        Reader("npz", (".npz",), read_npz),
        Reader("parquet", (".parquet",), read_parquet, parts=parquet_parts),
        Reader("jsonl", (".jsonl", ".json"), read_jsonl,
               in_directories=(".jsonl", ".jsonl.gz")),
    )
}  # fmt: skip

#: File kinds (told from the suffix under ``auto``).
FILE_KINDS: tuple[str, ...] = tuple(READERS)

#: Suffixes of the data files found inside a directory (``.json`` only when named).
DATA_SUFFIXES: tuple[str, ...] = tuple(
    s for r in READERS.values() for s in (r.in_directories or r.suffixes)
)


def reader_for(path: str | Path, kind: str | None = None) -> Reader:
    """The reader of ``path``: ``kind`` when given (a file kind), else from the suffix
    (``.gz`` looked through). Raises :class:`LogFormatError` for an unknown suffix."""
    if kind is not None:
        return READERS[kind]
    name = Path(path).name.lower()
    base = name[:-3] if name.endswith(".gz") else name
    for r in READERS.values():
        if base.endswith(r.suffixes):
            return r
    raise LogFormatError(path, "file", None, f"unknown suffix '{Path(base).suffix}'; pass --format")
