"""The log evaluator (trm_bounds.evaluate; docs/theory.md §3, §5, §6).

Reference values are computed here by a plain per-sequence loop in numpy, independent of
the vectorised torch path (``trm_bounds.masking``) and of the streaming merge.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.logs.test_dataset import random_source, write_jsonl, write_npz, write_parquet, write_pt
from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.cli import evaluate_main as main
from trm_bounds.divergences import kl_from_logprobs
from trm_bounds.evaluate import HIST_EDGES, SCHEMA, chunk_stats, evaluate
from trm_bounds.evaluate.stats import _dd_sum
from trm_bounds.logs import iter_batches

CONTRACT_KEYS = {
    "schema",
    "n_sequences",
    "n_tokens",
    "metrics",
    "criteria",
    "length_buckets",
    "dbar_estimate",
    "observed",
    "bounds",
}
#: Relative tolerance between chunkings for the per-position sums (the Dbar_t estimate and
#: what is derived from it: ``observed``, ``bounds``). Each chunk sums ``|rho_t - 1|/2`` over
#: its sequences in plain float64 (one pass with the other statistics; the former exact
#: double-double tree cost a third of the evaluation time), so a different chunking rounds
#: differently: n non-negative terms carry a relative error <= (n - 1) 2^-53 ~ 2.4e-15 for the
#: n <= 23 sequences used here. Every other sum stays double-double and compares exactly.
CHUNK_RTOL = 1e-12
#: Report keys that depend on the per-position sums.
POSITION_KEYS = ("dbar_estimate", "observed", "bounds")
#: The paper's defaults: 0.05 max criteria, 0.001 seq_mean_k3, 0.05 ser and ln_trm.
DEFAULTS = {"seq_max_k2": 0.05, "seq_mean_k3": 0.001, "ser": 0.05, "ln_trm": 0.05}


def reference(src: dict, ln_delta: float = 0.05, ln_eps: float | None = None) -> dict:
    """Per-sequence loop over the docs/theory.md §6 definitions; LN-TRM weights
    ``w_t = min(1, sqrt((T_i - t) delta/2))``, with ``(T_i - t) eps`` added by ``ln_eps``."""
    rows = []
    for i, n in enumerate(src["L"]):
        r = src["lp"][i, :n] - src["lr"][i, :n]
        rho = np.exp(r)
        t = np.arange(1, n + 1)
        w = np.minimum(1.0, np.sqrt((n - t) * ln_delta / 2.0))
        if ln_eps is not None:
            w = np.minimum(w, (n - t) * ln_eps)
        rows.append(
            {
                "k2_max": np.max(r**2 / 2),
                "k3_sum": np.sum(rho - 1 - r),
                "k3_mean": np.mean(rho - 1 - r),
                "ser": np.mean(np.abs(rho - 1)),
                "ln_trm": np.sum(np.abs(rho - 1) * w) / np.sum(w) if w.sum() > 0 else 0.0,
                "lppl": np.mean(r),
            }
        )
    Tm = int(src["L"].max())
    dbar = [
        np.mean(
            [
                abs(math.expm1(src["lp"][i, t] - src["lr"][i, t])) / 2
                for i in np.flatnonzero(src["L"] > t)
            ]
        )
        for t in range(Tm)
    ]
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return {"col": col, "dbar": np.array(dbar), "n_tokens": int(src["L"].sum())}


def assert_csv_close(a: str, b: str, rtol: float = CHUNK_RTOL) -> None:
    """Two ``sequences.csv`` texts: same header, rows and non-numeric cells (ids, decisions,
    lengths); float cells within ``rtol`` (no absolute slack)."""
    ra, rb = list(csv.reader(io.StringIO(a))), list(csv.reader(io.StringIO(b)))
    assert ra[0] == rb[0] and len(ra) == len(rb)
    for row_a, row_b in zip(ra[1:], rb[1:], strict=True):
        for name, x, y in zip(ra[0], row_a, row_b, strict=True):
            if x == y:
                continue
            fx, fy = float(x), float(y)  # a differing cell must be a float
            assert abs(fx - fy) <= rtol * max(abs(fx), abs(fy)), (name, x, y)


def assert_close_tree(a, b, rtol: float = CHUNK_RTOL) -> None:
    """Nested report values: floats within ``rtol`` (no absolute slack), the rest equal."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_close_tree(a[k], b[k], rtol)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_close_tree(x, y, rtol)
    elif isinstance(a, float) and not isinstance(b, bool):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=0.0)
    else:
        assert a == b


def run(tmp_path: Path, path, name: str = "out", **kw) -> dict:
    kw.setdefault("progress", False)
    return evaluate(path, tmp_path / name, **kw)


@pytest.mark.parametrize("ln_eps", [None, 0.002])
def test_report_matches_the_reference_loop(tmp_path, ln_eps):
    """Metrics, Dbar_t estimate and decisions equal the per-sequence definitions."""
    src = random_source(B=40, T=30, seed=11, sigma=0.15)
    rep = run(tmp_path, write_npz(tmp_path / "d.npz", src), ln_eps=ln_eps)
    ref = reference(src, ln_eps=ln_eps)
    c = ref["col"]
    assert set(rep) >= CONTRACT_KEYS and rep["schema"] == SCHEMA
    assert rep["n_sequences"] == 40 and rep["n_tokens"] == ref["n_tokens"]
    m = rep["metrics"]
    np.testing.assert_allclose(m["log_ppl_abs_diff"], np.mean(np.abs(c["lppl"])), RTOL, ATOL)
    np.testing.assert_allclose(m["k3_mean"], c["k3_sum"].sum() / ref["n_tokens"], RTOL, ATOL)
    np.testing.assert_allclose(m["k2_max"], c["k2_max"].max(), RTOL, ATOL)
    np.testing.assert_allclose(m["ser_mean"], c["ser"].mean(), RTOL, ATOL)
    np.testing.assert_allclose(rep["dbar_estimate"], ref["dbar"], RTOL, ATOL)
    reach = np.array([(src["L"] > t).sum() for t in range(len(ref["dbar"]))])
    absorbing = rep["observed"]["dbar_estimate_absorbing"]
    np.testing.assert_allclose(absorbing, ref["dbar"] * reach / 40, RTOL, ATOL)
    acc = {
        "seq_max_k2": c["k2_max"] <= DEFAULTS["seq_max_k2"],
        "seq_mean_k3": c["k3_mean"] <= DEFAULTS["seq_mean_k3"],
        "ser": c["ser"] <= DEFAULTS["ser"],
        "ln_trm": c["ln_trm"] <= DEFAULTS["ln_trm"],
    }
    acc["seq_max_k2,seq_mean_k3"] = acc["seq_max_k2"] & acc["seq_mean_k3"]
    assert set(rep["criteria"]) == set(acc)  # no seq_max_kl without distributions
    for name, a in acc.items():
        assert rep["criteria"][name]["accepted"] == int(a.sum()), name
        assert rep["criteria"][name]["acceptance_rate"] == a.sum() / 40
    assert rep["criteria"]["seq_max_k2,seq_mean_k3"]["threshold"] == {
        "seq_max_k2": 0.05,
        "seq_mean_k3": 0.001,
    }
    # sequences.csv: one row per sequence, in input order, with the same scores
    with open(tmp_path / "out" / "sequences.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40
    np.testing.assert_allclose([float(r["ln_trm"]) for r in rows], c["ln_trm"], RTOL, ATOL)
    assert [int(r["length"]) for r in rows] == src["L"].tolist()
    assert [int(r["accept:ser"]) for r in rows] == acc["ser"].astype(int).tolist()


@pytest.mark.parametrize(
    "writer", [write_npz, write_pt, lambda p, s: write_parquet(p, s, padded=True)]
)
def test_results_do_not_depend_on_chunk_size(tmp_path, writer):
    """Streaming: chunk sizes 1, 3 and all-at-once give identical metrics, criteria, buckets,
    curves and per-sequence decisions; the per-position sums (Dbar_t estimate, and the observed
    values and bounds computed from it) and the per-sequence floats of sequences.csv agree to
    CHUNK_RTOL. Each row is reduced on its own (bit-identical on one CPU and torch build), but
    the suite does not promise the same rounding on every CPU's vector kernels, so floats are
    compared to float64 rounding, not bit for bit."""
    src = random_source(B=23, T=19, seed=12, sigma=0.2)
    suffix = {write_npz: ".npz", write_pt: ".pt"}.get(writer, ".parquet")
    path = writer(tmp_path / f"d{suffix}", src)
    reps = [run(tmp_path, path, f"o{k}", chunk_size=k) for k in (1, 3, 1000)]
    skip = ("git_hash", *POSITION_KEYS)
    ref = {k: v for k, v in reps[-1].items() if k not in skip}
    for rep in reps[:-1]:
        assert {k: v for k, v in rep.items() if k not in skip} == ref
        for k in POSITION_KEYS:
            assert_close_tree(rep[k], reps[-1][k])
    csvs = [(tmp_path / f"o{k}" / "sequences.csv").read_text() for k in (1, 3, 1000)]
    assert_csv_close(csvs[0], csvs[2])
    assert_csv_close(csvs[1], csvs[2])


def test_prefetch_gives_the_same_report(tmp_path):
    """Loading chunks in a background thread changes nothing: identical reports and CSVs."""
    src = random_source(B=23, T=19, seed=29, sigma=0.2)
    path = write_parquet(tmp_path / "d.parquet", src)
    a = run(tmp_path, path, "a", chunk_size=4, prefetch=True)
    b = run(tmp_path, path, "b", chunk_size=4, prefetch=False)
    assert {k: v for k, v in a.items() if k != "git_hash"} == {
        k: v for k, v in b.items() if k != "git_hash"
    }
    csv_a, csv_b = ((tmp_path / d / "sequences.csv").read_text() for d in "ab")
    assert csv_a == csv_b


def test_float32_dump_agrees_with_float64(tmp_path):
    """A float32 parquet dump is evaluated in float32 arithmetic (float64 accumulation of
    sums): metrics and the Dbar_t estimate agree with the float64 evaluation of the same
    (float32-rounded) values to rtol 1e-5 (a few float32 ulps per term; the k3 mean loses
    about 1.2e-7/|r| relative per token, |r| ~ 0.1 here), and every decision is the same;
    ``float64=True`` reproduces the float64 evaluation exactly."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = random_source(B=40, T=30, seed=30, sigma=0.1)
    cols = {
        name: [r[:n].astype(np.float32) for r, n in zip(src[key], src["L"], strict=True)]
        for name, key in (("old_log_probs", "lp"), ("rollout_log_probs", "lr"))
    }
    p32 = tmp_path / "f32.parquet"
    pq.write_table(pa.table(cols), p32)
    p64 = tmp_path / "f64.parquet"
    pq.write_table(pa.table({k: [r.astype(np.float64) for r in v] for k, v in cols.items()}), p64)
    a, b = run(tmp_path, p32, "a"), run(tmp_path, p64, "b")
    for k in a["metrics"]:
        np.testing.assert_allclose(a["metrics"][k], b["metrics"][k], rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(a["dbar_estimate"], b["dbar_estimate"], rtol=1e-5, atol=1e-9)
    assert a["criteria"] == b["criteria"] and a["n_tokens"] == b["n_tokens"]
    with open(tmp_path / "a" / "sequences.csv") as fa, open(tmp_path / "b" / "sequences.csv") as fb:
        ra, rb = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    acc = [k for k in ra[0] if k.startswith("accept:")]
    assert [[r[k] for k in acc] for r in ra] == [[r[k] for k in acc] for r in rb]
    # float64=True converts the float32 values exactly: the float64 evaluation, bit for bit
    c = run(tmp_path, p32, "c", float64=True)
    for k in ("metrics", "criteria", "dbar_estimate", "bounds", "length_buckets"):
        assert c[k] == b[k], k


def test_ragged_chunks_agree_to_rounding(tmp_path):
    """JSONL chunks are padded to their own width; results agree up to float rounding."""
    src = random_source(B=23, T=19, seed=13)
    path = write_jsonl(tmp_path / "d.jsonl", src)
    a, b = run(tmp_path, path, "a", chunk_size=2), run(tmp_path, path, "b", chunk_size=100)
    for k in a["metrics"]:
        np.testing.assert_allclose(a["metrics"][k], b["metrics"][k], RTOL, ATOL)
    np.testing.assert_allclose(a["dbar_estimate"], b["dbar_estimate"], RTOL, ATOL)
    assert a["criteria"] == b["criteria"]


def test_stats_merge_is_associative_and_equals_one_pass(tmp_path):
    """(a+b)+c == a+(b+c) == one pass, exactly, for counts, sums, maxima, arrays; the Dbar_t
    estimate (plain float64 per-chunk position sums) to CHUNK_RTOL."""
    src = random_source(B=30, T=25, seed=14, sigma=0.3)
    path = write_npz(tmp_path / "d.npz", src)
    a, b, c = (chunk_stats(x)[0] for x in iter_batches([path], chunk_size=10))
    (one,) = (chunk_stats(x)[0] for x in iter_batches([path], chunk_size=100))
    for s in (a.merge(b).merge(c), a.merge(b.merge(c)), c.merge(a).merge(b)):
        assert (s.n_sequences, s.n_tokens, s.k2_max) == (one.n_sequences, one.n_tokens, one.k2_max)
        assert s.accepted == one.accepted
        for k in one.sums:
            assert s.sum(k) == one.sum(k), k
        np.testing.assert_allclose(s.dbar_estimate, one.dbar_estimate, rtol=CHUNK_RTOL, atol=0)
        np.testing.assert_array_equal(s.pos_count, one.pos_count)
        np.testing.assert_array_equal(s.len_count, one.len_count)
        for k in one.hists:
            np.testing.assert_array_equal(s.hists[k], one.hists[k])


@settings(max_examples=20)
@given(
    seed=st.integers(0, 2**32 - 1),
    cuts=st.lists(st.integers(1, 29), min_size=1, max_size=5, unique=True),
)
def test_merge_over_random_partitions_equals_one_pass(seed, cuts):
    """Any split of the sequences into consecutive chunks merges to the one-pass Stats
    (exactly; the Dbar_t estimate to CHUNK_RTOL)."""
    from trm_bounds.logs import Batch

    src = random_source(B=30, T=12, seed=seed % 1000, sigma=0.3)

    def stats(lo: int, hi: int):
        b = Batch(src["lp"][lo:hi], src["lr"][lo:hi], src["mask"][lo:hi])
        return chunk_stats(b)[0]

    edges = [0, *sorted(cuts), 30]
    merged = stats(edges[0], edges[1])
    for lo, hi in zip(edges[1:-1], edges[2:], strict=True):
        merged = merged.merge(stats(lo, hi))
    one = stats(0, 30)
    assert merged.accepted == one.accepted and merged.n_tokens == one.n_tokens
    assert all(merged.sum(k) == one.sum(k) for k in one.sums)
    np.testing.assert_allclose(merged.dbar_estimate, one.dbar_estimate, rtol=CHUNK_RTOL, atol=0)


def test_double_double_sum_is_correctly_rounded():
    """The pairwise TwoSum tree rounds to math.fsum (exact sum, one rounding) on
    non-negative data spanning 6 decades, where plain float64 summation is off by an ulp
    in some columns (so the check can fail)."""
    rng = np.random.default_rng(15)
    x = rng.random((3999, 8)) * 10.0 ** rng.uniform(-3, 3, (3999, 8))  # odd: leftover rows
    hi, lo = _dd_sum(x)
    exact = [math.fsum(x[:, j]) for j in range(8)]
    assert [float(h + e) for h, e in zip(hi, lo, strict=True)] == exact
    assert any(float(np.sum(x[:, j])) != exact[j] for j in range(8))


def test_length_buckets_and_acceptance_curves(tmp_path):
    """Buckets partition the sequences; curves equal P(score <= edge) at every edge."""
    src = random_source(B=50, T=40, seed=16, sigma=0.2)
    rep = run(tmp_path, write_npz(tmp_path / "d.npz", src))
    ref = reference(src)["col"]
    L = src["L"]
    bks = rep["length_buckets"]
    assert sum(b["n_sequences"] for b in bks) == 50
    for b in bks:
        sel = (L >= b["min_length"]) & (L <= b["max_length"])
        assert sel.sum() == b["n_sequences"]
        want = np.mean(ref["k2_max"][sel] <= 0.05)
        np.testing.assert_allclose(b["acceptance_rate"]["seq_max_k2"], want, RTOL, ATOL)
    assert all(bks[i]["max_length"] < bks[i + 1]["min_length"] for i in range(len(bks) - 1))
    cur = rep["acceptance_curves"]["ser"]
    want = [np.mean(ref["ser"] <= e) for e in HIST_EDGES]
    np.testing.assert_allclose(cur["acceptance"], want, RTOL, ATOL)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def distribution_source(B=6, T=7, V=5, seed=17):
    """Sampled tokens from roll with both full distributions (logits) logged."""
    rng = np.random.default_rng(seed)
    src = random_source(B, T, seed)
    zr = rng.normal(size=(B, T, V))
    zt = zr + rng.normal(0.0, 0.3, (B, T, V))
    lpr, lpt = _log_softmax(zr), _log_softmax(zt)
    y = rng.integers(0, V, (B, T))
    take = lambda a: np.take_along_axis(a, y[..., None], axis=2)[..., 0]  # noqa: E731
    src["lr"] = np.where(src["mask"], take(lpr), 0.0)
    src["lp"] = np.where(src["mask"], take(lpt), 0.0)
    return src, zt, zr, lpt, lpr


def test_exact_distributions_give_seq_max_kl_and_observed_maxima(tmp_path):
    """Full logits: observed delta/eps are the exact maxima of KL(roll||theta) and TV over
    valid positions (docs/theory.md §3), and Pinsker eps <= sqrt(delta/2) holds."""
    src, zt, zr, lpt, lpr = distribution_source()
    path = write_npz(tmp_path / "d.npz", src, logits=zt, rollout_logits=zr)
    rep = run(tmp_path, path)
    kl = kl_from_logprobs(lpr, lpt)  # (B, T) forward KL, rollout first
    tv = 0.5 * np.abs(np.exp(lpr) - np.exp(lpt)).sum(-1)
    m = src["mask"]
    o = rep["observed"]
    np.testing.assert_allclose(o["max_token_kl"], kl[m].max(), RTOL, ATOL)
    np.testing.assert_allclose(o["max_token_tv"], tv[m].max(), RTOL, ATOL)
    assert o["delta_plugin"] == o["max_token_kl"]
    assert leq(2 * o["eps_plugin"] ** 2, o["delta_plugin"])
    klmax = np.where(m, kl, 0).max(axis=1)
    assert rep["criteria"]["seq_max_kl"]["accepted"] == int((klmax <= 0.05).sum())
    assert rep["bounds"]["computed"]


def test_topk_with_the_whole_vocabulary_is_exact(tmp_path):
    """Top-k with k = V: the guaranteed lower and upper bounds both equal the exact maxima."""
    src, zt, zr, lpt, lpr = distribution_source(seed=18)
    B, T, V = lpt.shape
    idx = np.broadcast_to(np.arange(V), (B, T, V)).copy()
    path = write_npz(
        tmp_path / "d.npz", src, topk_indices=idx, topk_log_probs=lpt,
        rollout_topk_indices=idx, rollout_topk_log_probs=lpr, vocab_size=V,
    )  # fmt: skip
    rep = run(tmp_path, path)
    kl = kl_from_logprobs(lpr, lpt)[src["mask"]].max()
    tk = rep["observed"]["topk_max"]
    np.testing.assert_allclose([tk["kl_lower"], tk["kl_upper"]], [kl, kl], RTOL, ATOL)
    assert "seq_max_kl" in rep["criteria"]


def test_partial_topk_brackets_the_exact_divergences(tmp_path):
    """Top-3 of V = 5 (the true top sets): guaranteed kl_lower <= exact KL <= kl_upper and
    tv_lower <= exact TV <= tv_upper for the maxima over valid positions."""
    src, zt, zr, lpt, lpr = distribution_source(seed=27)
    it, ir = np.argsort(-lpt, axis=-1)[..., :3], np.argsort(-lpr, axis=-1)[..., :3]
    tk = lambda a, i: np.take_along_axis(a, i, axis=-1)  # noqa: E731
    path = write_npz(
        tmp_path / "d.npz", src, topk_indices=it, topk_log_probs=tk(lpt, it),
        rollout_topk_indices=ir, rollout_topk_log_probs=tk(lpr, ir), vocab_size=5,
    )  # fmt: skip
    o = run(tmp_path, path)["observed"]["topk_max"]
    m = src["mask"]
    kl = kl_from_logprobs(lpr, lpt)[m].max()
    tv = (0.5 * np.abs(np.exp(lpr) - np.exp(lpt)).sum(-1))[m].max()
    assert leq(o["kl_lower"], kl) and leq(kl, o["kl_upper"])
    assert leq(o["tv_lower"], tv) and leq(tv, o["tv_upper"])


def test_seq_max_kl_without_distributions_exits_2(tmp_path, capsys):
    """Asking for the exact criterion on a dump without distributions is a usage error."""
    p = str(write_npz(tmp_path / "d.npz", random_source(seed=28)))
    assert main([p, "--out", str(tmp_path / "o"), "--criterion", "seq_max_kl"]) == 2
    assert main([p, "--out", str(tmp_path / "o"), "--criterion", "bogus"]) == 2
    assert "seq_max_kl" in capsys.readouterr().err


def test_bounds_are_compute_bounds_of_the_reported_inputs(tmp_path):
    """Identity with trm_bounds.bounds at the reported inputs (the plug-in rule's, which
    only raises), and sharp = published / 2 (docs/theory.md §5)."""
    from trm_bounds.bounds import compute_bounds

    src = random_source(B=30, T=20, seed=19, sigma=0.05)
    rep = run(tmp_path, write_npz(tmp_path / "d.npz", src))
    b = rep["bounds"]
    assert b["computed"] and "conditional" in b["label"]
    assert "plug-in" in rep["observed"]["label"] and "NEITHER" in rep["observed"]["delta_label"]
    inp = b["inputs"]
    dbar = np.array(b["dbar_used"])
    assert np.all(dbar >= np.array(rep["dbar_estimate"])) and np.all(dbar <= inp["eps"])
    want = compute_bounds(
        inp["T"], eps=inp["eps"], delta=inp["delta"], dkl_seq=inp["dkl_seq"],
        dtv_seq=inp["dtv_seq"], dbar=dbar,
    )  # fmt: skip
    for k, v in want.items():
        np.testing.assert_allclose(b["published"][k], v, RTOL, ATOL)
        np.testing.assert_allclose(b["sharp"][k], v / 2, RTOL, ATOL)
    assert inp["T"] == int(src["L"].max())
    np.testing.assert_allclose(inp["eps"], min(1, math.sqrt(inp["delta"] / 2)), RTOL, ATOL)
    # D_TV^seq is not observed: the Pinsker value of the D_KL^seq estimate, raised to Dbar_1
    # where that is larger (data processing); consistent with the D_KL^seq used (Pinsker)
    pinsker = min(1, math.sqrt(rep["observed"]["dkl_seq_estimate"] / 2))
    np.testing.assert_allclose(inp["dtv_seq"], max(pinsker, dbar[0]), RTOL, ATOL)
    assert leq(2 * inp["dtv_seq"] ** 2, inp["dkl_seq"])


def test_relation_violation_is_reported_and_adjusted(tmp_path):
    """One token with r = 1: k2 = 1/2, k3 = e - 2, Dbar_1 = (e - 1)/2. The observed values
    violate docs/theory.md §3 (D_KL^seq = e - 2 > T delta = 1/2, Dbar_1 > eps = sqrt(delta/2)),
    and trm_bounds.bounds.plugin_bounds only raises: eps and D_TV^seq to Dbar_1, then delta
    and D_KL^seq to 2 Dbar_1^2 = (e - 1)^2 / 2 (Pinsker), which also exceeds D_KL^seq / T."""
    lp, lr = np.array([[-0.5]]), np.array([[-1.5]])
    np.savez(tmp_path / "d.npz", old_log_probs=lp, rollout_log_probs=lr, response_mask=[[1]])
    rep = run(tmp_path, tmp_path / "d.npz")
    b = rep["bounds"]
    assert any("D_KL^seq" in a for a in b["adjustments"])
    np.testing.assert_allclose(b["inputs"]["delta"], (math.e - 1) ** 2 / 2, RTOL, ATOL)
    assert b["inputs"]["delta"] >= b["inputs"]["dkl_seq"] >= math.e - 2  # D_KL^seq <= T delta
    assert rep["observed"]["delta_plugin"] == 0.5


def test_trainer_minus_inf_is_valid_and_fails_the_max_criteria(tmp_path):
    """rho = 0 at one token: the sequence fails seq_max_k2 (k2 = inf), the run succeeds."""
    src = random_source(B=8, T=10, seed=20, sigma=0.01)
    src["lp"][3, 0] = -np.inf
    out = tmp_path / "o"
    assert main([str(write_npz(tmp_path / "d.npz", src)), "--out", str(out), "--no-figures"]) == 0
    rep = json.loads((out / "report.json").read_text())
    with open(out / "sequences.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows[3]["accept:seq_max_k2"] == "0" and rows[3]["accept:seq_max_k2,seq_mean_k3"] == "0"
    assert rep["metrics"]["k2_max"] == "inf" and rep["bounds"]["computed"] is False


def test_threshold_flags(tmp_path, capsys):
    """--threshold NAME=VALUE overrides; a huge threshold accepts everything; bad names exit 2."""
    src = random_source(B=20, T=15, seed=21, sigma=0.3)
    p = str(write_npz(tmp_path / "d.npz", src))
    out = tmp_path / "o"
    argv = [p, "--out", str(out), "--no-figures", "--threshold", "seq_max_k2=1e9"]
    assert main(argv + ["--threshold", "ser=0"]) == 0
    crit = json.loads((out / "report.json").read_text())["criteria"]
    assert crit["seq_max_k2"]["acceptance_rate"] == 1.0
    assert crit["seq_max_k2"]["threshold"] == 1e9 and crit["ser"]["accepted"] == 0
    assert main([p, "--out", str(tmp_path / "x"), "--threshold", "nope=1"]) == 2
    assert main([p, "--out", str(tmp_path / "x"), "--threshold", "ser"]) == 2
    assert not (tmp_path / "x" / "report.json").exists()
    capsys.readouterr()


def test_demo_and_figures(tmp_path, capsys):
    """--demo evaluates the shipped dump; every figure is drawn from report.json alone."""
    from trm_bounds.evaluate import demo_dump_path
    from trm_bounds.plot.evaluate import draw_report_figures

    assert demo_dump_path().stat().st_size < 1_000_000  # small demo data
    out = tmp_path / "demo"
    assert main(["--demo", "--out", str(out), "--quiet"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"report.json", "report.md", "sequences.csv"} <= names
    assert not [n for n in names if n.startswith(".")]  # no temporary leftovers
    rep = json.loads((out / "report.json").read_text())
    assert rep["n_sequences"] > 100 and rep["bounds"]["computed"]
    figs = {p.name for p in out.glob("*.png")}
    assert len(figs) == 5
    md = (out / "report.md").read_text()
    assert all(f"]({f})" in md for f in figs)
    # F8 entry point: draws from a loaded report.json alone (one figure, to keep CI short)
    tiny = {**rep, "acceptance_curves": {}, "histograms": {}}
    (f,) = draw_report_figures(tiny, tmp_path / "again", formats=("svg",))[:1]
    assert f.suffix == ".svg" and f.stat().st_size > 0
    capsys.readouterr()


# ----------------------------------------------------------------------------- bad input


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


GOOD = '{"logprobs": [-0.5, -1.0], "rollout_logprobs": [-0.6, -1.1]}'


def _bad_npz(tmp_path: Path, **changes) -> Path:
    src = random_source(B=6, T=5, seed=22)
    d = {"old_log_probs": src["lp"], "rollout_log_probs": src["lr"], "response_mask": src["mask"]}
    for k, (i, t, v) in changes.items():
        d[k] = d[k].copy()
        d[k][i, t] = v
    np.savez(tmp_path / "bad.npz", **d)
    return tmp_path / "bad.npz"


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


BAD = {
    # name: (make(tmp_path) -> path, expected where, expected field)
    "nan": (lambda p: _jsonl(p / "b.jsonl", [GOOD, GOOD.replace("-0.6", "NaN")]), "line 2",
            "rollout_logprobs"),
    "plus_inf": (lambda p: _bad_npz(p, old_log_probs=(3, 0, np.inf)), "record 3",
                 "old_log_probs"),
    "rollout_minus_inf": (lambda p: _jsonl(p / "b.jsonl", [GOOD.replace("-1.1", "-Infinity")]),
                          "line 1", "rollout_logprobs"),
    "logprob_above_zero": (lambda p: _bad_npz(p, rollout_log_probs=(2, 0, 0.01)), "record 2",
                           "rollout_log_probs"),
    "nan_in_padding": (lambda p: _bad_npz(p, old_log_probs=(1, 4, np.nan)), "record 1",
                       "old_log_probs"),
    "length_mismatch": (lambda p: _jsonl(p / "b.jsonl", [GOOD, GOOD.replace("-1.1]", "-1.1, -2]")]),
                        "line 2", "rollout_logprobs"),
    "mask_shape": (lambda p: (np.savez(p / "b.npz", old_log_probs=np.zeros((2, 3)) - 1,
                                       rollout_log_probs=np.zeros((2, 3)) - 1,
                                       response_mask=np.ones((2, 6))), p / "b.npz")[1],
                   "file", "response_mask"),
    "missing_field": (lambda p: _jsonl(p / "b.jsonl", ['{"logprobs": [-1.0]}']), "line 1",
                      "rollout_log_probs"),
    "missing_mask": (lambda p: (np.savez(p / "b.npz", old_log_probs=-np.ones((2, 3)),
                                         rollout_log_probs=-np.ones((2, 3))), p / "b.npz")[1],
                     "file", "response_mask"),
    "empty_file": (lambda p: (p / "e.jsonl").write_text("") or p / "e.jsonl", "file", "-"),
    "malformed_json": (lambda p: _jsonl(p / "b.jsonl", [GOOD, '{"logprobs": [-1.0,']), "line 2",
                       "-"),
    "truncated_npz": (lambda p: _truncate(_bad_npz(p)), "file", "-"),
    "truncated_pt": (lambda p: _truncate(write_pt(p / "b.pt", random_source(seed=23))), "file",
                     "-"),
    "truncated_parquet": (lambda p: _truncate(write_parquet(p / "b.parquet",
                                                            random_source(seed=24))),
                          "file", "-"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_line_and_no_report(tmp_path, capsys, case):
    """Each bad input: status 2, one stderr line naming file, record/line and field;
    no report.json and no temporary file left in the output directory."""
    make, where, fld = BAD[case]
    path = make(tmp_path)
    out = tmp_path / "out"
    assert main([str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert path.name in err and f": {where}:" in err, err
    assert (f"field '{fld}'" if fld != "-" else "field") in err, err
    assert not out.exists() or list(out.iterdir()) == []


def test_failure_in_a_later_shard_leaves_nothing(tmp_path, capsys):
    """Atomic outputs: a good shard then a bad one -> no report.json, no CSV, no temp files."""
    write_npz(tmp_path / "a.npz", random_source(seed=25))
    _jsonl(tmp_path / "b.jsonl", [GOOD, "{"])
    out = tmp_path / "out"
    assert main([str(tmp_path / "a.npz"), str(tmp_path / "b.jsonl"), "--out", str(out)]) == 2
    assert not out.exists() or list(out.iterdir()) == []
    capsys.readouterr()


def test_subprocess_bad_input_and_pickle_refusal(tmp_path):
    """``python -m trm_bounds.evaluate``: a refused pickle exits 2 with one line; no report."""
    src = random_source(seed=26)
    path = write_pt(tmp_path / "p.pt", src, meta=argparse.Namespace(a=1))  # not allow-listed
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "trm_bounds.evaluate", str(path), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "--trust-pickle" in proc.stderr
    assert not (out / "report.json").exists()
    assert main([str(path), "--out", str(out), "--quiet", "--trust-pickle", "--no-figures"]) == 0


# ----------------------------------------------------------------------------- options, --out


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"ln_delta": 0.0}, "ln_delta"),
        ({"ln_delta": float("nan")}, "ln_delta"),
        ({"ln_eps": -1.0}, "ln_eps"),
        ({"thresholds": {"ser": float("nan")}}, "ser"),
        ({"thresholds": {"bogus": 0.1}}, "bogus"),
        ({"criteria": ["seq_max_k2", "bogus"]}, "bogus"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"n_buckets": 0}, "n_buckets"),
        ({"fmt": "csv"}, "fmt"),
    ],
)
def test_bad_options_fail_up_front_and_write_nothing(tmp_path, kw, name):
    """ln_delta = 0 raised ZeroDivisionError (NaN a conversion error) after the output folder
    was made: every option is now checked first, with a one-line ValueError naming it."""
    path = write_npz(tmp_path / "d.npz", random_source(seed=31))
    out = tmp_path / "new" / "out"
    with pytest.raises(ValueError, match=name) as err:
        run(tmp_path, path, "new/out", **kw)
    assert "\n" not in str(err.value) and "np.float64" not in str(err.value)
    assert not out.exists() and not (tmp_path / "new").exists()


def _read_only_dir(tmp_path: Path) -> Path:
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d


OUT_CASES = {
    "existing_file": lambda p: (p / "f.txt").write_text("x") and p / "f.txt",
    "under_a_file": lambda p: (p / "f.txt").write_text("x") and p / "f.txt" / "sub" / "out",
    "read_only": lambda p: _read_only_dir(p) / "out",
    "read_only_itself": lambda p: _read_only_dir(p),
}


@pytest.mark.parametrize("case", list(OUT_CASES))
def test_unusable_out_dir_is_one_line_error_and_leaves_nothing(tmp_path, case):
    """``out_dir`` naming an existing file, a path under a file, or a folder that cannot be
    created or written: OutputDirError (a ValueError), one line with the path, raised before
    any work; nothing is created."""
    import os

    from trm_bounds.evaluate import OutputDirError

    if case.startswith("read_only") and os.geteuid() == 0:
        pytest.skip("root ignores directory permissions")
    path = write_npz(tmp_path / "d.npz", random_source(seed=32))
    out = OUT_CASES[case](tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    with pytest.raises(OutputDirError) as err:
        evaluate(path, out, progress=False)
    msg = str(err.value)
    assert "\n" not in msg and str(out) in msg
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_cli_ln_delta_nan_is_one_line(tmp_path, capsys):
    """``evaluate --ln-delta nan`` traced back; now one stderr line and status 2."""
    p = str(write_npz(tmp_path / "d.npz", random_source(seed=33)))
    assert main([p, "--out", str(tmp_path / "o"), "--ln-delta", "nan", "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ln-delta" in err.replace("_", "-"), err
    assert not (tmp_path / "o").exists()


def test_evaluate_never_imports_plotting(tmp_path):
    """Computation never imports matplotlib: figures are a callback (``draw_figures``)."""
    path = write_npz(tmp_path / "d.npz", random_source(seed=34))
    code = (
        "import sys; from trm_bounds.evaluate import evaluate; "
        f"evaluate({str(path)!r}, {str(tmp_path / 'o')!r}, progress=False); "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


def test_figures_callback_outputs_are_moved_into_place(tmp_path):
    """A ``draw_figures`` callback draws into a temporary folder from the loaded report; its
    files land beside report.json and report.md links the PNGs."""
    path = write_npz(tmp_path / "d.npz", random_source(seed=35))
    seen = {}

    def draw(report: dict, folder: Path) -> list[Path]:
        seen["n"] = report["n_sequences"]
        (folder / "a.png").write_bytes(b"png")
        return [folder / "a.png"]

    rep = run(tmp_path, path, draw_figures=draw)
    out = tmp_path / "out"
    assert seen["n"] == rep["n_sequences"] and (out / "a.png").read_bytes() == b"png"
    assert "](a.png)" in (out / "report.md").read_text()
    assert not [n for n in (p.name for p in out.iterdir()) if n.startswith(".")]


# ----------------------------------------------------------------------------- bad command lines

BAD_LINES = {
    # name: (argv after the dump/--demo part, words the one stderr line must hold)
    "demo_with_a_dump": (["--demo", "DUMP"], "--demo evaluates the shipped demo dump alone"),
    "huge_buckets": (["--demo", "--buckets", "1000000000"], "--buckets: must be at most 1000"),
    "address_without_ray": (["--demo", "--address", "auto"], "--address: only with engine 'ray'"),
    "zero_limit": (["--demo", "--max-response-length", "0"],
                   "--max-response-length: must be a positive integer"),
    "empty_reward_range": (["--demo", "--reward-range", "1", "0"], "--reward-range: needs LO < HI"),
    "nan_reward_range": (["--demo", "--reward-range", "0", "nan"], "--reward-range: two finite"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_bad_command_lines_are_one_line_and_leave_nothing(tmp_path, capsys, case):
    """Issue 16's command lines: ``--demo my_dump.jsonl`` (it merged the demo into the user's
    data), ``--buckets 1000000000`` (it hung), ``--address`` without ``--engine ray`` (ignored),
    and the certificate's a-priori inputs: exit 2, one line naming the flag, no folder."""
    argv, words = BAD_LINES[case]
    dump = str(write_npz(tmp_path / "my_dump.npz", random_source(seed=41)))
    argv = [dump if a == "DUMP" else a for a in argv]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out), "--quiet", "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert not out.exists()


def test_library_refuses_the_same_options_by_field_name():
    """The library's words are field names (the CLI maps them to flags)."""
    from trm_bounds.evaluate import EvaluateOptions, OptionError
    from trm_bounds.evaluate.options import MAX_BUCKETS

    for kw, field in (({"n_buckets": MAX_BUCKETS + 1}, "n_buckets"),
                      ({"address": "auto"}, "address"), ({"engine": "spark"}, "engine"),
                      ({"rollout_rs": "seq_max_k2"}, "rollout_rs_threshold"),
                      ({"criteria": "seq_max_k2"}, "criteria")):  # fmt: skip
        with pytest.raises(OptionError) as err:
            EvaluateOptions(**kw)
        assert err.value.field == field and str(err.value).startswith(f"{field}: ")
    assert EvaluateOptions(n_buckets=MAX_BUCKETS, engine="ray", address="auto").address == "auto"
    with pytest.raises(TypeError):
        EvaluateOptions(bogus=1)  # type: ignore[call-arg]


@pytest.mark.e2e
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_killed_run_leaves_no_hidden_folder(tmp_path, signame):
    """A run killed while it works (SIGTERM as a batch system sends, SIGINT as Ctrl-C): the
    output transaction removes its staging folder ``.evaluate.*`` and the folder it made."""
    import os
    import signal
    import time

    rng = np.random.default_rng(42)
    n, T = 200_000, 16
    lr = -rng.uniform(0.1, 2.0, (n, T))
    np.savez(tmp_path / "big.npz", old_log_probs=lr - 0.01, rollout_log_probs=lr,
             response_mask=np.ones((n, T), bool))  # fmt: skip
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "trm_bounds", "evaluate",
                             str(tmp_path / "big.npz"), "--out", str(out), "--quiet",
                             "--no-figures", "--chunk-size", "256"],
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not list(out.glob(".evaluate.*")) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        assert list(out.glob(".evaluate.*")), "the run never started writing"
        time.sleep(0.3)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, getattr(signal, signame))
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert "interrupted" in proc.stderr.read()
    assert not out.exists(), sorted(p.name for p in out.iterdir())


@pytest.mark.e2e
def test_mistyped_path_is_said_before_heavy_imports(tmp_path):
    """A dump path that matches nothing: one line, exit 2, and neither torch nor the readers'
    heavy libraries were imported to say so (the time goes to the answer, not the imports)."""
    code = ("import sys; from trm_bounds.cli import main; "
            f"rc = main(['evaluate', {str(tmp_path / 'nope.npz')!r}, '--out', "
            f"{str(tmp_path / 'o')!r}]); "
            "assert rc == 2, rc; assert 'torch' not in sys.modules, 'torch imported'")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.npz" in proc.stderr
    assert not (tmp_path / "o").exists()
