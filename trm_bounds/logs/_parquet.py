"""Reader for parquet dumps (verl, NeMo-RL): one row per sequence with list-valued columns
(ragged) or padded rows, read one record batch at a time (needs ``pyarrow``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs._canonical import check_ragged, finish, mask_array
from trm_bounds.logs._padding import float_dtype, pad_flat
from trm_bounds.logs.aliases import pick
from trm_bounds.logs.batch import MAX_CELLS, MAX_CHUNK_BYTES, MAX_LOGPROB, Batch
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import resolve_fields
from trm_bounds.logs.read_options import ReadOptions

__all__: list[str] = []


def _list_column(col: Any, file: Path, fld: str, r0: int) -> tuple[np.ndarray, np.ndarray]:
    """A pyarrow list column -> (flat values, per-row lengths), no per-row Python (zero-copy
    for a float column without nulls)."""
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count:
        i = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise LogFormatError(file, f"record {r0 + i}", fld, "null value")
    if pa.types.is_fixed_size_list(col.type):
        n = col.type.list_size
        lengths = np.full(len(col), n, dtype=np.int64)
        values = col.flatten()
    elif pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        offsets = np.asarray(col.offsets)
        lengths = np.diff(offsets).astype(np.int64)
        values = col.flatten()
    else:
        raise LogFormatError(
            file, "file", fld, f"expected a list column (one row per sequence), got {col.type}"
        )
    if values.null_count:
        flat_i = int(np.flatnonzero(np.asarray(values.is_null()))[0])
        row = int(np.searchsorted(np.cumsum(lengths), flat_i, side="right"))
        raise LogFormatError(file, f"record {r0 + row}", fld, "null token value")
    if pa.types.is_boolean(values.type):
        return np.asarray(values.to_numpy(zero_copy_only=False)), lengths
    return values.to_numpy(zero_copy_only=False), lengths


def _flat_values_ok(lpv: np.ndarray, lrv: np.ndarray) -> bool:
    """Every value passes :func:`validate`: ``max <= MAX_LOGPROB`` (False at NaN and ``+inf``)
    for both fields and ``min > -inf`` for the rollout field (all values are valid tokens)."""
    if lpv.size == 0:
        return True
    with np.errstate(invalid="ignore"):
        return bool(lpv.max() <= MAX_LOGPROB and lrv.max() <= MAX_LOGPROB and lrv.min() > -np.inf)


def read_parquet(file: Path, opts: ReadOptions, part: Any = None) -> Iterator[Batch]:
    """A parquet dump, one record batch at a time; ``part``: the row groups to read (a
    sequence of indices; None: all), record numbers counted from the file's first row."""
    chunk_size, framework = opts.chunk_size, opts.framework
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        # streamed, buffered reads: pre_buffer=True keeps every pre-buffered column-chunk read
        # alive while a row group is walked (peak RSS grew with the file: 1.14 / 2.08 / 3.79 GB
        # at 2e7 / 1e8 / 3e8 tokens); a 4 MiB stream buffer bounds it
        pf = pq.ParquetFile(file, pre_buffer=False, buffer_size=1 << 22)
    except (pa.ArrowException, OSError) as err:
        raise LogFormatError(file, "file", None, f"truncated or corrupt parquet ({err})") from None
    keys = pf.schema_arrow.names
    fields = resolve_fields(keys, framework, file)
    klp, klr = fields.log_probs, fields.rollout_log_probs
    if fields.align != "same" or fields.shift:  # shifted layouts: only the batch readers
        raise LogFormatError(
            file, "file", klp,
            f"{fields.framework} dumps have shifted columns; save the batch with torch.save",
        )  # fmt: skip
    kmask = fields.masks[0] if fields.masks else None
    more, ksample = fields.masks[1:], fields.sample_mask  # e.g. TRL tool_mask, sample masks
    kr, kp = (pick(keys, n) for n in ("reward", "prompt_id"))
    names = {"log_probs": klp, "rollout_log_probs": klr, "response_mask": kmask or "mask"}
    cols = [k for k in (klp, klr, kmask, *more, ksample, kr, kp) if k is not None]
    if pf.metadata.num_rows == 0:
        raise LogFormatError(file, "file", klp, "holds no sequences")

    def chunk(rb: Any, r0: int) -> Batch:
        lpv, L = _list_column(rb.column(klp), file, klp, r0)
        lrv, Lr = _list_column(rb.column(klr), file, klr, r0)
        lens = {klp: L, klr: Lr}
        if kmask is not None:
            mv, Lm = _list_column(rb.column(kmask), file, kmask, r0)
            lens[kmask] = Lm
        check_ragged(file, lens, r0)
        valid = np.arange(int(L.max()) if L.size else 0)[None, :] < L[:, None]
        fdt = float_dtype(lpv, lrv)
        lp = pad_flat(lpv, L, dtype=fdt, valid=valid)
        lr = pad_flat(lrv, L, dtype=fdt, valid=valid)
        if kmask is not None:
            mv = mask_array(mv, file, kmask, r0)
            mask = pad_flat(mv, L, fill=False, valid=valid).astype(bool) & valid
        else:
            mask = valid
        for k in more:  # further trained-token masks multiply (completion_mask * tool_mask)
            xv, Lx = _list_column(rb.column(k), file, k, r0)
            check_ragged(file, {klp: L, k: Lx}, r0)
            xv = mask_array(xv, file, k, r0)
            mask = mask & pad_flat(xv, L, fill=False, valid=valid).astype(bool)
        if ksample is not None:  # per-sequence 0/1 (NeMo-RL sample_loss_mask)
            sm = np.asarray(rb.column(ksample).to_numpy(zero_copy_only=False))
            if sm.dtype == object:
                sm = np.array([np.asarray(v).reshape(-1)[0] for v in sm])
            mask = mask & (sm.reshape(-1)[:, None] != 0)
        # padding is our zeros, so three reductions over the flat values replace validate()'s
        # checks over the padded cells (all values pass => every check passes); on failure
        # validate() runs and names the first bad value
        ok = _flat_values_ok(lpv, lrv)
        rew = rb.column(kr).to_numpy(zero_copy_only=False) if kr is not None else None
        if rew is not None and rew.dtype == object:
            rew = None  # list-valued rewards are not summarised
        pid = rb.column(kp).to_numpy(zero_copy_only=False) if kp is not None else None
        return finish(
            file, r0, lp, lr, mask, names, reward=rew, prompt_id=pid, trim=False,
            validated=ok, zero_padding=kmask is None and not more and ksample is None,
            group_field=kp,
        )  # fmt: skip

    meta = pf.metadata
    groups = list(range(meta.num_row_groups)) if part is None else [int(g) for g in part]
    # record numbers count from the file's first row, whichever row groups are read
    r0 = sum(meta.row_group(g).num_rows for g in range(groups[0])) if groups else 0
    col_idx = [pf.schema_arrow.get_field_index(c) for c in cols]
    try:
        # one row group at a time: a whole-file iter_batches reads row groups ahead and keeps
        # their buffers, so peak memory would grow with the file
        for g in groups:
            for rb in pf.iter_batches(
                batch_size=_rows_in_budget(meta.row_group(g), col_idx, chunk_size),
                columns=cols, row_groups=[g],
            ):  # fmt: skip
                # bounded memory: split a record batch whose padded size exceeds MAX_CELLS
                col = rb.column(klp)
                if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                    L = np.diff(np.asarray(col.offsets))  # lengths only, no value copy
                else:
                    L = _list_column(col, file, klp, r0)[1]
                rows = max(1, MAX_CELLS // max(int(L.max()), 1))
                for s in range(0, rb.num_rows, rows):
                    yield chunk(rb.slice(s, rows), r0 + s)
                r0 += rb.num_rows
    except (pa.ArrowException, OSError) as err:
        raise LogFormatError(
            file, f"record {r0}", None, f"truncated or corrupt parquet ({err})"
        ) from None


def _rows_in_budget(rg: Any, col_idx: list[int], chunk_size: int) -> int:
    """Rows per record batch: ``chunk_size``, fewer where the row group's rows are long, so
    that one record batch holds at most :data:`MAX_CHUNK_BYTES` of uncompressed column data
    (the row group's own metadata: no read). Peak memory is set by bytes, not rows."""
    n = max(rg.num_rows, 1)
    size = sum(rg.column(i).total_uncompressed_size for i in col_idx if i >= 0)
    per_row = max(size / n, 1.0)
    return max(1, min(chunk_size, int(MAX_CHUNK_BYTES // per_row)))


def parquet_parts(file: Path) -> list[tuple[int, ...]]:
    """The row groups of a parquet file, one part each (what :func:`read_parquet` takes as
    ``part``; the Ray engine's shards of one large file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        n = pq.ParquetFile(file).metadata.num_row_groups
    except (pa.ArrowException, OSError) as err:
        raise LogFormatError(file, "file", None, f"truncated or corrupt parquet ({err})") from None
    return [(g,) for g in range(n)] or [()]
