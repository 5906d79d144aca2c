"""Loaders of logged logprob dumps (trm_bounds.logs; docs/theory.md §6).

Every format is written here from one random source batch and must load back to exactly
the same canonical float64 arrays (identity, no tolerance: the loaders only move values).
The writers are imported by ``tests/evaluate/test_run.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from trm_bounds.logs import ALIASES, LogFormatError, dump_schema, iter_batches, load_dataset

#: (trainer, rollout, mask) field names per framework (the frameworks' own names).
FRAMEWORKS = {
    "verl": ("old_log_probs", "rollout_log_probs", "response_mask"),
    "nemo_rl": ("prev_logprobs", "generation_logprobs", "token_loss_mask"),
    "skyrl": ("action_log_probs", "rollout_logprobs", "loss_mask"),
    "trl": ("old_per_token_logps", "sampling_per_token_logps", "completion_mask"),
}


def random_source(B: int = 13, T: int = 17, seed: int = 0, sigma: float = 0.1) -> dict:
    """Right-padded (B, T) logprobs with variable lengths 1..T; padding holds zeros."""
    rng = np.random.default_rng(seed)
    L = rng.integers(1, T + 1, B)
    L[0] = T  # one full-length row, so the padded width is T in every format
    mask = np.arange(T)[None, :] < L[:, None]
    lr = -rng.exponential(1.0, (B, T)) - 1e-3
    lp = np.minimum(lr + rng.normal(0.0, sigma, (B, T)), 0.0)
    lp, lr = np.where(mask, lp, 0.0), np.where(mask, lr, 0.0)
    return {"lp": lp, "lr": lr, "mask": mask, "L": L, "reward": rng.random(B)}


def write_npz(path: Path, src: dict, fw: str = "verl", **extra) -> Path:
    a, b, m = FRAMEWORKS[fw]
    np.savez(path, **{a: src["lp"], b: src["lr"], m: src["mask"]}, **extra)
    return path


def write_pt(path: Path, src: dict, fw: str = "verl", **extra) -> Path:
    a, b, m = FRAMEWORKS[fw]
    d = {a: torch.from_numpy(src["lp"]), b: torch.from_numpy(src["lr"])}
    d[m] = torch.from_numpy(src["mask"].astype(np.int64))
    d.update(extra)
    torch.save(d, path)
    return path


def write_parquet(path: Path, src: dict, *, padded: bool = False) -> Path:
    """One row per sequence: list columns (ragged), or padded rows plus the mask."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if padded:
        cols = {
            "old_log_probs": list(src["lp"]),
            "rollout_log_probs": list(src["lr"]),
            "response_mask": list(src["mask"]),
        }
    else:
        cols = {
            "old_log_probs": [r[:n] for r, n in zip(src["lp"], src["L"], strict=True)],
            "rollout_log_probs": [r[:n] for r, n in zip(src["lr"], src["L"], strict=True)],
        }
    cols["reward"] = list(src["reward"])
    pq.write_table(pa.table(cols), path, row_group_size=4)
    return path


def write_jsonl(path: Path, src: dict, *, nemo: bool = False, prompt_len: int = 3) -> Path:
    """Generic JSONL, or NeMo-RL's layout (prompt tokens first, with token_loss_mask 0)."""
    with open(path, "w") as fh:
        for i, n in enumerate(src["L"]):
            lp, lr = src["lp"][i, :n].tolist(), src["lr"][i, :n].tolist()
            if nemo:
                rec = {
                    "token_ids": list(range(prompt_len + n)),
                    "prev_logprobs": [0.0] * prompt_len + lp,
                    "generation_logprobs": [0.0] * prompt_len + lr,
                    "token_loss_mask": [0] * prompt_len + [1] * int(n),
                    "rewards": float(src["reward"][i]),
                }
            else:
                rec = {
                    "logprobs": lp,
                    "rollout_logprobs": lr,
                    "reward": float(src["reward"][i]),
                    "prompt_id": f"p{i // 2}",
                }
            fh.write(json.dumps(rec) + "\n")
    return path


def write_slime(path: Path, src: dict, *, samples: bool = False) -> Path:
    """slime --dump-details train dump: per-sample lists (or a list of per-sample dicts)."""
    n = src["L"]
    per = {
        "log_probs": [torch.from_numpy(src["lp"][i, : n[i]].copy()) for i in range(len(n))],
        "rollout_log_probs": [src["lr"][i, : n[i]].tolist() for i in range(len(n))],
        "loss_masks": [torch.ones(int(k), dtype=torch.int64) for k in n],
        "rewards": [float(r) for r in src["reward"]],
    }
    if samples:
        obj = {
            "rollout_id": 0,
            "samples": [{k: v[i] for k, v in per.items()} for i in range(len(n))],
        }
    else:
        obj = {"rollout_id": 0, "rank": 0, "rollout_data": per}
    torch.save(obj, path)
    return path


def assert_same(batch, src: dict) -> None:
    """The loaded canonical batch equals the source exactly (values and masks)."""
    T = batch.response_mask.shape[1]
    assert T == src["mask"].shape[1]
    np.testing.assert_array_equal(batch.response_mask, src["mask"])
    np.testing.assert_array_equal(batch.log_probs, src["lp"])
    np.testing.assert_array_equal(batch.rollout_log_probs, src["lr"])
    np.testing.assert_array_equal(batch.lengths, src["L"])


WRITERS = {
    "npz": lambda p, s: write_npz(p / "d.npz", s),
    "pt": lambda p, s: write_pt(p / "d.pt", s),
    "parquet_lists": lambda p, s: write_parquet(p / "d.parquet", s),
    "parquet_padded": lambda p, s: write_parquet(p / "d.parquet", s, padded=True),
    "jsonl": lambda p, s: write_jsonl(p / "d.jsonl", s),
    "nemo_rl_jsonl": lambda p, s: write_jsonl(p / "train_data_step3.jsonl", s, nemo=True),
    "slime": lambda p, s: write_slime(p / "d.pt", s),
    "slime_samples": lambda p, s: write_slime(p / "d.pt", s, samples=True),
}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_format_loads_to_the_same_canonical_arrays(tmp_path, kind):
    """Identity: write the source in each format, load it, compare exactly (and the reward)."""
    src = random_source()
    path = WRITERS[kind](tmp_path, src)
    batch = load_dataset([path])
    assert_same(batch, src)
    if kind not in ("npz", "pt"):  # these writers store no reward
        np.testing.assert_array_equal(batch.reward, src["reward"])


@pytest.mark.parametrize("fw", list(FRAMEWORKS))
def test_framework_aliases(tmp_path, fw):
    """verl, NeMo-RL, SkyRL and TRL field names are all recognised."""
    src = random_source(seed=1)
    assert_same(load_dataset([write_pt(tmp_path / "d.pt", src, fw)]), src)
    assert_same(load_dataset([write_npz(tmp_path / "d.npz", src, fw)]), src)
    for canon, name in zip(
        ("log_probs", "rollout_log_probs", "response_mask"), FRAMEWORKS[fw], strict=True
    ):
        assert name in ALIASES[canon]


def test_masks_with_holes_are_compacted(tmp_path):
    """Valid tokens move to the front in order; T_i counts only the valid tokens."""
    src = random_source(B=5, T=9, seed=2)
    holes = src["mask"].copy()
    holes[:, 0] = False  # a masked first token (prompt / tool output)
    holes[0, 4] = False
    lp, lr = src["lp"].copy(), src["lr"].copy()
    np.savez(tmp_path / "h.npz", old_log_probs=lp, rollout_log_probs=lr, response_mask=holes)
    b = load_dataset([tmp_path / "h.npz"])
    for i in range(5):
        keep = np.flatnonzero(holes[i])
        n = keep.size
        assert b.lengths[i] == n
        np.testing.assert_array_equal(b.log_probs[i, :n], lp[i, keep])
        np.testing.assert_array_equal(b.rollout_log_probs[i, :n], lr[i, keep])
        assert not b.response_mask[i, n:].any()
        assert (b.log_probs[i, n:] == 0).all()


@pytest.mark.parametrize("chunk", [1, 4, 100])
def test_chunking_and_shards_are_one_dataset(tmp_path, chunk):
    """A directory (or glob) of shards, read in any chunk size, is the concatenated dataset."""
    a, b = random_source(B=6, T=11, seed=3), random_source(B=5, T=11, seed=4)
    write_npz(tmp_path / "s0.npz", a)
    write_npz(tmp_path / "s1.npz", b)
    chunks = list(iter_batches([tmp_path], chunk_size=chunk))
    assert all(len(c) <= chunk for c in chunks)
    got = np.concatenate([c.log_probs for c in chunks])
    np.testing.assert_array_equal(got, np.concatenate([a["lp"], b["lp"]]))
    globbed = list(iter_batches([str(tmp_path / "s*.npz")], chunk_size=chunk))
    np.testing.assert_array_equal(np.concatenate([c.log_probs for c in globbed]), got)
    # records are numbered within each file, for error messages
    assert [c.first_record for c in chunks if c.source.endswith("s1.npz")][0] == 0


def test_jsonl_chunks_pad_to_their_own_width(tmp_path):
    """Ragged input: each chunk is padded to its longest sequence, values preserved."""
    src = random_source(B=9, T=12, seed=5)
    path = write_jsonl(tmp_path / "g.jsonl", src)
    for c in iter_batches([path], chunk_size=2):
        r = c.first_record
        n = c.lengths
        assert c.response_mask.shape[1] == n.max()
        np.testing.assert_array_equal(n, src["L"][r : r + len(c)])


class Marker:
    """A plain user class: not on any allow-list."""


def test_pickle_refused_unless_trusted(tmp_path):
    """A .pt naming a global outside the allow-list is refused by default (one line naming
    the global), loaded with trust_pickle; numpy arrays are on the allow-list."""
    src = random_source(seed=6)
    ok = write_pt(tmp_path / "a.pt", src, meta=np.array([1, 2, 3]))
    assert_same(load_dataset([ok]), src)
    path = write_pt(tmp_path / "p.pt", src, meta=Marker())
    with pytest.raises(LogFormatError, match="Marker.*trust-pickle"):
        load_dataset([path])
    assert_same(load_dataset([path], trust_pickle=True), src)


def test_distribution_fields_are_carried(tmp_path):
    """(B, T, V) logits ride along with the logprobs, compacted with the same order."""
    src = random_source(B=4, T=6, seed=7)
    rng = np.random.default_rng(7)
    lg = rng.normal(size=(4, 6, 5))
    write_npz(tmp_path / "d.npz", src, logits=lg, rollout_logits=lg + 0.1)
    (c,) = list(iter_batches([tmp_path / "d.npz"]))
    np.testing.assert_array_equal(c.logits, lg)
    np.testing.assert_array_equal(c.rollout_logits, lg + 0.1)


def test_trainer_minus_inf_is_valid(tmp_path):
    """log pi_theta = -inf (rho = 0) is valid input; the rollout logprob must be finite."""
    src = random_source(seed=8)
    src["lp"][2, 0] = -np.inf
    b = load_dataset([write_npz(tmp_path / "d.npz", src)])
    assert b.log_probs[2, 0] == -np.inf


@pytest.mark.parametrize("kind", list(WRITERS))
def test_zero_padding_flag_is_true_when_set(tmp_path, kind):
    """Batch.zero_padding promises 0 in both logprob arrays outside the mask (the statistics
    then skip their masking pass): wherever a loader sets it, it holds; formats built from
    lists without a mask field set it."""
    src = random_source(B=9, T=12, seed=9)
    for c in iter_batches([WRITERS[kind](tmp_path, src)], chunk_size=4):
        if c.zero_padding:
            off = ~c.response_mask
            assert (c.log_probs[off] == 0).all() and (c.rollout_log_probs[off] == 0).all()
        assert c.zero_padding or kind not in ("parquet_lists", "jsonl", "nemo_rl_jsonl")


def test_float32_parquet_loads_as_float32(tmp_path):
    """list<float> parquet columns stay float32 (no float64 conversion pass), values exact."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = random_source(B=7, T=10, seed=10)
    lp32, lr32 = src["lp"].astype(np.float32), src["lr"].astype(np.float32)
    cols = {
        "old_log_probs": [r[:n] for r, n in zip(lp32, src["L"], strict=True)],
        "rollout_log_probs": [r[:n] for r, n in zip(lr32, src["L"], strict=True)],
    }
    path = tmp_path / "f32.parquet"
    pq.write_table(pa.table(cols), path, row_group_size=3)
    b = load_dataset([path])
    assert b.log_probs.dtype == np.float32 and b.rollout_log_probs.dtype == np.float32
    np.testing.assert_array_equal(b.log_probs, lp32)
    np.testing.assert_array_equal(b.rollout_log_probs, lr32)
    np.testing.assert_array_equal(b.lengths, src["L"])


@pytest.mark.parametrize(
    "field, value, what",
    [
        ("old_log_probs", np.nan, "NaN"),
        ("rollout_log_probs", -np.inf, "-inf rollout"),
        ("old_log_probs", 0.5, "logprob above"),
    ],
)
def test_parquet_bad_value_is_located(tmp_path, field, value, what):
    """The fast flat-value check of parquet chunks still reports the record and the field of
    the first bad value."""
    src = random_source(B=8, T=6, seed=11)
    key = {"old_log_probs": "lp", "rollout_log_probs": "lr"}[field]
    src[key][5, 0] = value
    path = write_parquet(tmp_path / "b.parquet", src)
    with pytest.raises(LogFormatError, match=f"record 5: field '{field}': {what}"):
        load_dataset([path])


def test_dump_schema_is_rendered_from_the_alias_table():
    """Every canonical field and every accepted name appears in both renderings, and each
    framework's names are attributed to it."""
    text, md = dump_schema(), dump_schema(markdown=True)
    for canon, names in ALIASES.items():
        assert canon in text and f"`{canon}`" in md
        for n in names:
            assert n in text and f"`{n}`" in md
    for fw, names in FRAMEWORKS.items():
        label = {"verl": "verl", "nemo_rl": "NeMo-RL", "skyrl": "SkyRL", "trl": "TRL"}[fw]
        for n in names:
            assert f"`{n}` ({label}" in md or f"`{n}` (verl, {label}" in md, (fw, n)
    assert all(len(line) <= 79 for line in text.splitlines())
    assert len(md.splitlines()) == len(ALIASES) + 2


@pytest.mark.parametrize("writer", [write_npz, write_pt])
@pytest.mark.parametrize("chunk", [3, 1024])
def test_padded_width_does_not_reach_the_canonical_arrays(tmp_path, writer, chunk):
    """The same sequences padded to 17 or to 4,096 columns load to identical canonical arrays
    (width = the file's longest valid sequence), whatever the chunk size."""
    src = random_source(B=7, T=17, seed=12)
    wide = {k: (np.pad(v, ((0, 0), (0, 4096 - 17))) if k in ("lp", "lr", "mask") else v)
            for k, v in src.items()}  # fmt: skip
    a = list(
        iter_batches(
            [writer(tmp_path / ("a." + writer.__name__[-3:].strip("_")), src)], chunk_size=chunk
        )
    )
    b = list(
        iter_batches(
            [writer(tmp_path / ("b." + writer.__name__[-3:].strip("_")), wide)], chunk_size=chunk
        )
    )
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.response_mask.shape == y.response_mask.shape == (len(x), int(src["L"].max()))
        np.testing.assert_array_equal(x.log_probs, y.log_probs)
        np.testing.assert_array_equal(x.rollout_log_probs, y.rollout_log_probs)
        np.testing.assert_array_equal(x.response_mask, y.response_mask)


def test_group_key_and_generation_limit_are_read_from_the_artifact(tmp_path):
    """verl: ``uid`` is the group key; ``responses`` padded to the configured limit gives
    ``max_response_length`` (never the observed maximum); without it, None."""
    src = random_source(B=6, T=9)
    uid = np.array([f"u{i // 3}" for i in range(6)], dtype=object)
    width = src["lp"].shape[1]
    resp = np.zeros((6, width), np.int64)
    path = write_pt(tmp_path / "a.pt", src, uid=list(uid), responses=torch.from_numpy(resp))
    b = load_dataset([path], fmt="verl")
    it = next(iter_batches([path], fmt="verl"))
    assert it.group_field == "uid" and it.prompt_id.tolist() == uid.tolist()
    assert it.max_response_length == width and "responses" in it.max_response_length_source
    assert b.response_mask.shape[0] == 6
    it = next(iter_batches([write_npz(tmp_path / "b.npz", src)]))
    assert it.max_response_length is None and it.max_response_length_source is None
    assert it.group_field is None and it.prompt_id is None
