"""The streamed per-sequence ``sequences.csv`` of the evaluator (docs/theory.md §6): one row
per row of the dump (rows that train no token included, flagged by ``trained``), written into
a temporary file beside the final one and moved into place only when the run succeeds."""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

import numpy as np

from trm_bounds.logs import Batch

__all__ = ["CsvSink"]


_CSV_FIRST = ("length", "k2_max", "k3_mean", "ser", "ln_trm", "log_ppl_diff")


class CsvSink:
    """Streams per-sequence rows into a temporary file beside the final ``sequences.csv``."""

    def __init__(self, out_dir: Path):
        fd, self.tmp = tempfile.mkstemp(dir=out_dir, prefix=".sequences.csv.", suffix=".tmp")
        self.fh = os.fdopen(fd, "w", newline="")
        self.writer = csv.writer(self.fh)
        self.header: list[str] | None = None
        self.n = 0

    def write(self, batch: Batch, cols: dict[str, np.ndarray]) -> None:
        keys = [k for k in _CSV_FIRST] + [k for k in ("kl_max",) if k in cols]
        keys += [k for k in ("trained",) if k in cols]
        keys += [k for k in cols if k.startswith("accept:")]
        extra = {}
        if batch.reward is not None:
            extra["reward"] = batch.reward.tolist()
        if batch.prompt_id is not None:
            extra["prompt_id"] = [str(p) for p in batch.prompt_id.tolist()]
        header = ["sequence", "source", "record"] + keys + list(extra)
        if self.header is None:
            self.header = header
            self.writer.writerow(header)
        B = len(batch)
        columns = [
            list(range(self.n, self.n + B)),
            [batch.source] * B,
            list(range(batch.first_record, batch.first_record + B)),
        ]
        for k in keys:
            v = cols[k]
            columns.append(v.astype(int).tolist() if v.dtype == bool else v.tolist())
        columns += list(extra.values())
        if len(header) != len(self.header):  # shards with different optional fields
            columns = columns[: len(self.header)]
        self.writer.writerows(zip(*columns, strict=False))
        self.n += B

    def commit(self, path: Path) -> None:
        self.fh.close()
        os.replace(self.tmp, path)

    def discard(self) -> None:
        self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)
