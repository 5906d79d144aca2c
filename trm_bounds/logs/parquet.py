"""Reader for parquet dumps (verl, NeMo-RL): one row per sequence with list-valued columns
(ragged) or padded rows, read one record batch at a time (needs ``pyarrow``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs.aliases import _pick, _require
from trm_bounds.logs.batch import MAX_CELLS, MAX_LOGPROB, Batch, _check_ragged, _finish, _mask_array
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.padding import _float_dtype, _pad_flat

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


def _iter_parquet(file: Path, chunk_size: int) -> Iterator[Batch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(file, pre_buffer=True)  # one read per column chunk (~15% faster)
    except (pa.ArrowException, OSError) as err:
        raise LogFormatError(file, "file", None, f"truncated or corrupt parquet ({err})") from None
    keys = pf.schema_arrow.names
    klp = _require(keys, "log_probs", file, "file")
    klr = _require(keys, "rollout_log_probs", file, "file")
    kmask, kr, kp = (_pick(keys, n) for n in ("response_mask", "reward", "prompt_id"))
    names = {"log_probs": klp, "rollout_log_probs": klr, "response_mask": kmask or "mask"}
    cols = [k for k in (klp, klr, kmask, kr, kp) if k is not None]
    if pf.metadata.num_rows == 0:
        raise LogFormatError(file, "file", klp, "holds no sequences")

    def chunk(rb: Any, r0: int) -> Batch:
        lpv, L = _list_column(rb.column(klp), file, klp, r0)
        lrv, Lr = _list_column(rb.column(klr), file, klr, r0)
        lens = {klp: L, klr: Lr}
        if kmask is not None:
            mv, Lm = _list_column(rb.column(kmask), file, kmask, r0)
            lens[kmask] = Lm
        _check_ragged(file, lens, r0)
        valid = np.arange(int(L.max()) if L.size else 0)[None, :] < L[:, None]
        fdt = _float_dtype(lpv, lrv)
        lp = _pad_flat(lpv, L, dtype=fdt, valid=valid)
        lr = _pad_flat(lrv, L, dtype=fdt, valid=valid)
        if kmask is not None:
            mv = _mask_array(mv, file, kmask, r0)
            mask = _pad_flat(mv, L, fill=False, valid=valid).astype(bool) & valid
        else:
            mask = valid
        # padding is our zeros, so three reductions over the flat values replace validate()'s
        # checks over the padded cells (all values pass => every check passes); on failure
        # validate() runs and names the first bad value
        ok = _flat_values_ok(lpv, lrv)
        rew = rb.column(kr).to_numpy(zero_copy_only=False) if kr is not None else None
        if rew is not None and rew.dtype == object:
            rew = None  # list-valued rewards are not summarised
        pid = rb.column(kp).to_numpy(zero_copy_only=False) if kp is not None else None
        return _finish(
            file, r0, lp, lr, mask, names, reward=rew, prompt_id=pid, trim=False,
            validated=ok, zero_padding=kmask is None,
        )  # fmt: skip

    r0 = 0
    try:
        for rb in pf.iter_batches(batch_size=chunk_size, columns=cols):
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
