"""The monitor's run folder: ``metrics.jsonl``, TensorBoard events and per-step dumps.

Layout under ``run_dir``:

- ``monitor.json``: the marker (schema :data:`SCHEMA` and the monitor's settings); a folder
  holding files without it was written by something else and is refused;
- ``metrics.jsonl``: one JSON object per step (``{"step": N, <metric>: value, ...}``),
  appended, flushed and fsynced after each step, so a crash loses at most the step in flight;
- ``tensorboard/``: event files through the tensorboard package's own writer
  (``tensorboard.summary.Writer``), when asked;
- ``dumps/step_{N}.npz``: the step's batch when asked (``old_log_probs``,
  ``rollout_log_probs``, ``response_mask`` and, when given, ``reward`` and ``prompt_id``),
  which ``trm-bounds evaluate --by-step RUN_DIR/dumps`` reads back into the same numbers.

A folder written by the monitor before is resumed (appended to) when its settings are the
same; its last step is read back so that steps keep increasing across restarts.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SCHEMA", "RunFolder", "RunFolderError"]

SCHEMA = "trm-bounds-monitor/v1"
_MARKER = "monitor.json"
_METRICS = "metrics.jsonl"


class RunFolderError(ValueError):
    """The run folder cannot be used (one line, naming the folder or file)."""


class RunFolder:
    """Owns ``run_dir``: checks it on open, appends one step at a time, closes its files."""

    def __init__(self, run_dir: str | os.PathLike, settings: dict[str, Any], *,
                 tensorboard: bool, dump_batches: bool) -> None:  # fmt: skip
        self.path = Path(run_dir)
        self.last_step = _open_checked(self.path, settings)
        self._metrics = open(self.path / _METRICS, "a", encoding="utf-8")  # noqa: SIM115
        self._tb = None
        if tensorboard:
            try:
                from tensorboard.summary import Writer
            except ImportError as err:
                self._metrics.close()
                raise ImportError(
                    "tensorboard=True needs the tensorboard package: pip install 'trm-bounds[trl]'"
                ) from err
            self._tb = Writer(str(self.path / "tensorboard"))
        self._dumps = self.path / "dumps" if dump_batches else None
        if self._dumps is not None:
            self._dumps.mkdir(exist_ok=True)

    def write(self, step: int, metrics: dict[str, float], batch: dict[str, np.ndarray] | None
              ) -> None:  # fmt: skip
        """Append step ``step``: the dump first (so a metrics line always has its dump), then
        the ``metrics.jsonl`` line (flushed, fsynced), then the TensorBoard scalars."""
        if self._dumps is not None and batch is not None:
            final = self._dumps / f"step_{step}.npz"
            tmp = self._dumps / f".step_{step}.tmp.npz"
            np.savez(tmp, **batch)
            os.replace(tmp, final)
        line = {"step": int(step), **{k: _json_float(v) for k, v in metrics.items()}}
        self._metrics.write(json.dumps(line, allow_nan=False) + "\n")
        self._metrics.flush()
        os.fsync(self._metrics.fileno())
        if self._tb is not None:
            for k, v in metrics.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        self.last_step = int(step)

    def close(self) -> None:
        """Close the files (idempotent)."""
        if not self._metrics.closed:
            self._metrics.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _json_float(v: float) -> float | str | None:
    """A JSON-safe value: NaN as null, infinities as the strings ``"inf"``/``"-inf"``."""
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _open_checked(path: Path, settings: dict[str, Any]) -> int | None:
    """Create or resume ``path``; return the last step written there (None when new)."""
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"run folder {path}: exists and is not a directory")
    marker = path / _MARKER
    if path.is_dir() and any(path.iterdir()):
        if not marker.is_file():
            raise RunFolderError(f"run folder {path}: holds files not written by trm-bounds' "
                                 f"monitor (no {_MARKER}); give an empty or new folder")
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError) as err:
            raise RunFolderError(f"{marker}: unreadable ({err})") from None
        if not isinstance(old, dict) or old.get("schema") != SCHEMA:
            raise RunFolderError(f"{marker}: not a {SCHEMA} marker; the folder was written by "
                                 "something else")
        if old.get("settings") != json.loads(json.dumps(settings)):
            diff = sorted(k for k in settings if old.get("settings", {}).get(k) != settings[k])
            raise RunFolderError(f"run folder {path}: written with other settings ({', '.join(diff)}); "
                                 "use a new folder")
        return _last_step(path / _METRICS)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{_MARKER}.tmp"
    tmp.write_text(json.dumps({"schema": SCHEMA, "settings": settings}, indent=1) + "\n")
    os.replace(tmp, marker)
    return None


def _last_step(metrics: Path) -> int | None:
    """The step of the last line of ``metrics.jsonl`` (None when empty); an incomplete last
    line (a crash mid-write) is an error naming the line."""
    if not metrics.is_file():
        return None
    last, n = None, 0
    with open(metrics, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):  # noqa: B007
            if line.strip():
                last = (n, line)
    if last is None:
        return None
    n, line = last
    try:
        step = json.loads(line)["step"]
        if not line.endswith("\n"):
            raise ValueError("no line end")
        return int(step)
    except (ValueError, KeyError, TypeError) as err:
        raise RunFolderError(f"{metrics} line {n}: incomplete or not a metrics line ({err}); "
                             "the run folder needs repair by hand") from None
