"""The reader registry (trm_bounds.logs.readers) and reading in parts (parquet row groups)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.logs.test_dataset import random_source, write_parquet
from trm_bounds.logs import (
    DATA_SUFFIXES,
    FILE_KINDS,
    READERS,
    DataFile,
    LogFormatError,
    load_dataset,
    read_file,
    read_options,
    reader_for,
)


def test_one_registry_line_per_kind():
    """Every file kind is one registry entry; the directory suffixes come from it."""
    assert tuple(READERS) == FILE_KINDS == ("pt", "pkl", "npz", "parquet", "jsonl")
    for kind, r in READERS.items():
        assert r.kind == kind and callable(r.read)
        for suf in r.in_directories or r.suffixes:
            assert suf in DATA_SUFFIXES
    assert reader_for("a/b.JSONL.GZ").kind == "jsonl"
    assert reader_for("x.pth").kind == "pt" and reader_for("x.pt", "npz").kind == "npz"
    with pytest.raises(LogFormatError, match="unknown suffix '.txt'"):
        reader_for("notes.txt")


def _parquet_groups(path, B=23, T=11, group=5):
    import pyarrow.parquet as pq

    src = random_source(B=B, T=T, seed=9)
    write_parquet(path, src)
    table = pq.read_table(path)
    pq.write_table(table, path, row_group_size=group)
    return src


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_parquet_parts_are_the_whole_file(tmp_path, chunk):
    """Reading each row group on its own gives the whole file's chunks, with record numbers
    counted from the file's first row (what the Ray engine's shards rely on)."""
    path = tmp_path / "g.parquet"
    _parquet_groups(path)
    parts = READERS["parquet"].parts(path)
    assert parts == [(g,) for g in range(5)]
    opts = read_options(chunk_size=chunk)
    whole = list(read_file(DataFile(path), "auto", opts))
    pieces = [b for p in parts for b in read_file(DataFile(path), "auto", opts, p)]
    assert [b.first_record for b in whole] == [b.first_record for b in pieces]
    for a, b in zip(whole, pieces, strict=True):
        np.testing.assert_array_equal(a.log_probs, b.log_probs)
        np.testing.assert_array_equal(a.response_mask, b.response_mask)


def test_record_batches_are_sized_by_bytes_not_rows(tmp_path, monkeypatch):
    """With a byte budget of about three rows of input, no chunk holds more than three rows
    whatever ``chunk_size`` says, and the data read is the same."""
    import pyarrow.parquet as pq

    from trm_bounds.logs import _parquet

    path = tmp_path / "g.parquet"
    _parquet_groups(path, B=23, T=11, group=23)
    rg = pq.ParquetFile(path).metadata.row_group(0)
    per_row = sum(rg.column(i).total_uncompressed_size for i in range(rg.num_columns)) / 23
    monkeypatch.setattr(_parquet, "MAX_CHUNK_BYTES", int(3.5 * per_row))
    small = list(read_file(DataFile(path), "auto", read_options(chunk_size=4096)))
    assert max(len(b) for b in small) <= 3 and sum(len(b) for b in small) == 23
    monkeypatch.undo()
    ref = load_dataset([path], chunk_size=4096)
    got = np.concatenate([np.pad(b.log_probs, ((0, 0), (0, ref.log_probs.shape[1] -
                                                         b.log_probs.shape[1]))) for b in small])
    np.testing.assert_array_equal(got, ref.log_probs)
