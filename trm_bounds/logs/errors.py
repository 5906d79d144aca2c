"""The one error of the log readers: bad input, named in one line."""

from __future__ import annotations

import os

__all__ = ["LogFormatError"]


class LogFormatError(ValueError):
    """Bad input; ``str(err)`` is one line: ``FILE: WHERE: field FIELD: MESSAGE``.

    >>> print(LogFormatError("d.jsonl", "line 3", "logprobs", "NaN at token index 0"))
    d.jsonl: line 3: field 'logprobs': NaN at token index 0
    """

    def __init__(self, file: str | os.PathLike, where: str, field: str | None, message: str):
        self.file, self.where, self.field, self.message = str(file), where, field, message
        fld = f"field '{field}'" if field else "field -"
        text = f"{self.file}: {where}: {fld}: {message}"
        super().__init__(" ".join(text.split()))
