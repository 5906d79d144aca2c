"""Reading result files for the figures: fields by path, JSON arrays, and the one error.

Figures are drawn only from result files (``trm_bounds/data/results``); a file that lacks a field
a figure needs raises :class:`ResultFileError`, whose message names the file and the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ResultFileError", "get_field", "as_array"]


class ResultFileError(ValueError):
    """A result file lacks a field a figure needs (message names the file and the field)."""


def get_field(data: dict, *keys: str, source: str = "result file") -> Any:
    """``data[k1][k2]...`` or a :class:`ResultFileError` naming the missing field.

    >>> get_field({"a": {"b": 1}}, "a", "b")
    1
    """
    cur: Any = data
    for i, k in enumerate(keys):
        if not isinstance(cur, dict) or k not in cur:
            raise ResultFileError(f"{source}: missing field {'.'.join(keys[: i + 1])!r}")
        cur = cur[k]
    return cur


def as_array(x: Any) -> np.ndarray:
    """A float array from a JSON list (``"inf"``/``"nan"`` strings and ``null`` included).

    >>> as_array([1, "inf", None]).tolist()
    [1.0, inf, nan]
    """
    return np.asarray([np.nan if v is None else float(v) for v in x], dtype=np.float64)
