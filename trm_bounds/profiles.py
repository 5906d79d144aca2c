r"""User-supplied per-position and per-sequence arrays read from files: a ``Dbar_t`` profile
(``trm-bounds bounds --dbar``) and a list of response lengths (``trm-bounds plan --lengths``).

Accepted files:

* a JSON list of numbers (``.json``, or any file whose text starts with ``[``);
* a ``.npy`` array (1-D; loaded without pickles);
* plain text, one number per line (blank lines and ``#`` comments skipped);
* for ``Dbar_t`` also the evaluator's ``report.json`` (schema ``trm-bounds-report/v1``):
  its top-level ``dbar_estimate`` is read, the per-position mean of ``|rho_t - 1|/2`` over
  the sequences that reach ``t`` (conservative: never below the unbiased absorbing-end
  estimate ``observed.dbar_estimate_absorbing``, docs/theory.md §6), or with
  ``key="absorbing"`` the unbiased one.

Every error is one ``ValueError`` line naming the file and the offending entry.

>>> import json, tempfile, os
>>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
...     json.dump([0.01, 0.02], f)
>>> read_dbar_profile(f.name).tolist()
[0.01, 0.02]
>>> os.unlink(f.name)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["read_numbers", "read_dbar_profile", "read_lengths"]

#: The evaluator's report schema (``trm_bounds.evaluate.report.SCHEMA``; not imported, so
#: reading a profile needs no torch).
_REPORT_SCHEMA = "trm-bounds-report/v1"


def _from_json(path: Path, doc: Any, key: str) -> Any:
    if isinstance(doc, dict):
        if doc.get("schema") != _REPORT_SCHEMA:
            raise ValueError(f"{path}: a JSON object that is not a trm-bounds report "
                             f"(schema {doc.get('schema')!r}); give a JSON list")  # fmt: skip
        if key == "absorbing":
            obs = doc.get("observed")
            if not isinstance(obs, dict) or "dbar_estimate_absorbing" not in obs:
                raise ValueError(f"{path}: report has no observed.dbar_estimate_absorbing")
            return obs["dbar_estimate_absorbing"]
        if "dbar_estimate" not in doc:
            raise ValueError(f"{path}: report has no dbar_estimate")
        return doc["dbar_estimate"]
    return doc


def read_numbers(path: str | os.PathLike, *, key: str = "conservative") -> np.ndarray:
    """A 1-D float64 array from a JSON list, ``.npy``, text file or evaluator report."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{p}: is a directory")
    try:
        if p.suffix == ".npy":
            try:
                raw: Any = np.load(p, allow_pickle=False)
            except ValueError as exc:
                raise ValueError(f"{p}: not a numeric .npy array ({exc})") from None
        else:
            text = p.read_text()
            if p.suffix == ".json" or text.lstrip().startswith(("[", "{")):
                try:
                    raw = _from_json(p, json.loads(text), key)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{p}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
            else:
                raw = []
                for i, line in enumerate(text.splitlines(), 1):
                    s = line.split("#", 1)[0].strip()
                    if not s:
                        continue
                    try:
                        raw.append(float(s))
                    except ValueError:
                        raise ValueError(f"{p}: line {i}: {s!r} is not a number") from None
    except OSError as exc:
        raise ValueError(f"{p}: {exc.strerror or exc}") from None
    if isinstance(raw, list) and any(isinstance(v, (list, dict)) for v in raw):
        raise ValueError(f"{p}: expected a flat list of numbers")
    try:
        a = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{p}: expected a list of numbers") from None
    if a.ndim != 1:
        raise ValueError(f"{p}: expected a 1-D list of numbers, got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{p}: no numbers")
    if not np.all(np.isfinite(a)):
        i = int(np.argmin(np.isfinite(a)))
        raise ValueError(f"{p}: entry {i} is {float(a[i])!r}, not finite")
    return a


def read_dbar_profile(path: str | os.PathLike, *, T: int | None = None,
                      key: str = "conservative") -> np.ndarray:
    """A ``Dbar_t`` profile (``t = 1..len``): finite, in ``[0, 1]`` (a mean of TVs).

    With ``T``: padded with zeros to length ``T`` (positions after every response ended carry
    no divergence, docs/theory.md §1); a profile longer than ``T`` is an error.
    """
    d = read_numbers(path, key=key)
    bad = (d < 0) | (d > 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{path}: Dbar_t must lie in [0, 1], got entry {i} (t = {i + 1}) = "
                         f"{float(d[i])!r}")  # fmt: skip
    if T is not None:
        if d.shape[0] > T:
            raise ValueError(f"{path}: {d.shape[0]} positions, more than T = {T}")
        d = np.concatenate([d, np.zeros(T - d.shape[0])])
    return d


def read_lengths(path: str | os.PathLike) -> np.ndarray:
    """Response lengths: positive integers (one per line, JSON list or ``.npy``)."""
    a = read_numbers(path)
    bad = (a < 1) | (a != np.round(a))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{path}: entry {i} = {float(a[i])!r} is not a positive integer length")
    return a.astype(np.int64)
