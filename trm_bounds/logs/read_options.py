"""How a file is read: the options every reader of the registry takes (:class:`ReadOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReadOptions"]


@dataclass(frozen=True)
class ReadOptions:
    """``framework``: a framework name (its fields, masks, alignment) or ``"auto"``;
    ``chunk_size``: at most this many rows per chunk; ``trust_pickle``: allow arbitrary
    unpickling (never the default)."""

    framework: str = "auto"
    chunk_size: int = 1024
    trust_pickle: bool = False
