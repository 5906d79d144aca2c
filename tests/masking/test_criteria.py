"""Tests of trm_bounds.masking (docs/theory.md §6; exact divergences, section 3).

References are plain float64 numpy loops written here (loops in the tests only), the
closed forms of docs/theory.md §6, and ``trm_bounds.divergences``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL, leq
from trm_bounds.divergences import kl as np_kl
from trm_bounds.divergences import tv as np_tv
from trm_bounds.masking import (
    CRITERIA,
    DEFAULT_THRESHOLDS,
    decide,
    exact_token_divergences,
    exact_token_kl,
    exact_token_tv,
    ln_trm_weights,
    masked_loss,
    parse_threshold,
    sequence_mask,
    sequence_stats,
    topk_divergence_bounds,
)

STAT_KEYS = ("k2_max", "k3_mean", "k3_sum", "ser", "ln_trm", "log_ppl_diff")


def reference_stats(lp, rlp, mask, ln_delta=0.05, ln_eps=None):
    """Plain float64 loop over sequences and tokens, straight from docs/theory.md §6."""
    out = {k: [] for k in ("length", *STAT_KEYS)}
    for i in range(lp.shape[0]):
        r = [float(lp[i, j]) - float(rlp[i, j]) for j in range(lp.shape[1]) if mask[i, j]]
        n = len(r)
        out["length"].append(n)
        if n == 0:
            for k in STAT_KEYS:
                out[k].append(0.0)
            continue
        k3 = [math.expm1(x) - x for x in r]
        e = [abs(math.expm1(x)) for x in r]
        W = Z = 0.0
        for t in range(1, n + 1):  # t = 1..T_i, w_t = min(1, sqrt((T_i - t) delta / 2)[, ..])
            w = min(1.0, math.sqrt((n - t) * ln_delta / 2))
            if ln_eps is not None:
                w = min(w, (n - t) * ln_eps)
            W += e[t - 1] * w
            Z += w
        out["k2_max"].append(max(x * x / 2 for x in r))
        out["k3_mean"].append(sum(k3) / n)
        out["k3_sum"].append(sum(k3))
        out["ser"].append(sum(e) / n)
        out["ln_trm"].append(W / Z if Z > 0 else 0.0)
        out["log_ppl_diff"].append(sum(r) / n)
    return {k: np.array(v) for k, v in out.items()}


def random_batch(rng, B, T, *, prefix=True, scale=0.1, garbage=True):
    """Random float64 logprob pair with right padding (or a scattered mask) and garbage pads."""
    rlp = np.log(rng.uniform(0.05, 1.0, size=(B, T)))
    lp = rlp + scale * rng.standard_normal((B, T))
    lp = np.minimum(lp, 0.0)
    if prefix:
        lengths = rng.integers(0, T + 1, size=B)
        mask = np.arange(T)[None, :] < lengths[:, None]
    else:
        mask = rng.random((B, T)) < 0.6
    if garbage:
        pad = ~mask
        junk = rng.choice([np.nan, -np.inf, np.inf, 1e30, -1e30], size=(B, T))
        lp = np.where(pad, junk, lp)
        rlp = np.where(pad, rng.choice([np.nan, -np.inf, 7.0], size=(B, T)), rlp)
    return lp, rlp, mask


def assert_stats_match(got, ref):
    np.testing.assert_array_equal(got["length"].numpy(), ref["length"])
    for k in STAT_KEYS:
        np.testing.assert_allclose(got[k].numpy(), ref[k], rtol=RTOL, atol=ATOL, err_msg=k)


@pytest.mark.parametrize("prefix", [True, False])
@pytest.mark.parametrize("ln_eps", [None, 0.02])
def test_stats_match_float64_loop(prefix, ln_eps):
    """Vectorised statistics equal the plain loop (identity, float64), garbage padding included;
    T = 97 > the LN window 40 = 2/delta (delta = 0.05, DEFAULT) and 1/eps = 50 so the
    head/window split of LN-TRM is exercised, and lengths 0 and 1 occur."""
    rng = np.random.default_rng(5)
    lp, rlp, mask = random_batch(rng, 24, 97, prefix=prefix)
    mask[0] = False  # an empty sequence
    mask[1] = False
    mask[1, 0] = True  # a one-token sequence (Z = 0)
    got = sequence_stats(
        torch.from_numpy(lp), torch.from_numpy(rlp), torch.from_numpy(mask), ln_eps=ln_eps
    )
    ref = reference_stats(lp, rlp, mask, ln_eps=ln_eps)
    assert_stats_match(got, ref)
    for k in STAT_KEYS:
        assert torch.isfinite(got[k]).all(), k


def test_row_blocks_and_numpy_inputs_agree():
    """Row-blocked processing (tiny blocks) equals one block; numpy inputs equal torch inputs;
    the numpy and torch routes for the mask agree exactly."""
    rng = np.random.default_rng(6)
    lp, rlp, mask = random_batch(rng, 13, 50)
    one = sequence_stats(torch.from_numpy(lp), torch.from_numpy(rlp), torch.from_numpy(mask))
    blocked = sequence_stats(lp, rlp, mask.astype(np.int64), block_elements=100)
    for k in ("length", *STAT_KEYS):
        np.testing.assert_allclose(blocked[k].numpy(), one[k].numpy(), rtol=RTOL, atol=ATOL)
    # a bfloat16 mask (no numpy view) takes the torch route for the mask: same statistics
    bf = torch.from_numpy(mask).to(torch.bfloat16)
    via_torch = sequence_stats(torch.from_numpy(lp), torch.from_numpy(rlp), bf)
    for k in ("length", *STAT_KEYS):
        np.testing.assert_array_equal(via_torch[k].numpy(), one[k].numpy(), err_msg=k)


@pytest.mark.parametrize("prefix", [True, False])
def test_position_sums_and_padding_flags(prefix):
    """``pos_abs_dev_sum`` equals the loop ``sum_i |rho_it - 1|`` over the valid cells of each
    column (identity, float64), in one block and in tiny row blocks. With zero padding,
    ``padding_is_zero=True`` (no masking pass) gives bit-identical statistics, and an all-ones
    mask (the no-padding fast path) matches the loop reference."""
    rng = np.random.default_rng(8)
    lp, rlp, mask = random_batch(rng, 11, 45, prefix=prefix)
    ref = np.zeros(45)
    for i in range(11):
        for t in range(45):
            if mask[i, t]:
                ref[t] += abs(math.expm1(float(lp[i, t]) - float(rlp[i, t])))
    for block in (None, 100):
        s = sequence_stats(lp, rlp, mask, position_sums=True, block_elements=block)
        assert s["pos_abs_dev_sum"].dtype == torch.float64
        np.testing.assert_allclose(s["pos_abs_dev_sum"].numpy(), ref, rtol=RTOL, atol=ATOL)
    lp0, rlp0 = np.where(mask, lp, 0.0), np.where(mask, rlp, 0.0)
    masked = sequence_stats(lp0, rlp0, mask)
    flagged = sequence_stats(lp0, rlp0, mask, padding_is_zero=True)
    for k in ("length", *STAT_KEYS):
        np.testing.assert_array_equal(flagged[k].numpy(), masked[k].numpy(), err_msg=k)
    full = np.ones_like(mask)
    assert_stats_match(sequence_stats(lp0, rlp0, full), reference_stats(lp0, rlp0, full))


def test_float32_position_sums_accumulate_in_float64():
    """float32 inputs: the column sums are accumulated in float64 from float32 terms, so they
    agree with the float64 ones to float32 rounding of the terms (rtol 1e-5: each positive
    term carries a relative error of a few 6e-8 ulps; here |r| ~ 0.1, 300 rows)."""
    rng = np.random.default_rng(9)
    lp, rlp, mask = random_batch(rng, 300, 20, garbage=False)
    s64 = sequence_stats(lp, rlp, mask, position_sums=True)
    s32 = sequence_stats(lp.astype(np.float32), rlp.astype(np.float32), mask, position_sums=True)
    assert s32["pos_abs_dev_sum"].dtype == torch.float64
    np.testing.assert_allclose(
        s32["pos_abs_dev_sum"].numpy(), s64["pos_abs_dev_sum"].numpy(), rtol=1e-5, atol=1e-6
    )


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**32 - 1),
    B=st.integers(1, 6),
    T=st.integers(1, 60),
    prefix=st.booleans(),
    ln_delta=st.sampled_from([0.05, 0.3, 2.0]),
)
def test_stats_match_loop_random(seed, B, T, prefix, ln_delta):
    """Property: vectorised == loop for random shapes, masks and LN tolerances."""
    rng = np.random.default_rng(seed)
    lp, rlp, mask = random_batch(rng, B, T, prefix=prefix, scale=0.5)
    got = sequence_stats(lp, rlp, mask, ln_delta=ln_delta)
    assert_stats_match(got, reference_stats(lp, rlp, mask, ln_delta=ln_delta))


def test_float32_inputs_close_to_float64():
    """float32 inputs give float32 statistics within float32 rounding of the float64 ones
    (rtol 1e-4: k3 = expm1(r) - r loses about 1.2e-7/|r| relative; here |r| ~ 0.1)."""
    rng = np.random.default_rng(7)
    lp, rlp, mask = random_batch(rng, 8, 300, garbage=False)
    s64 = sequence_stats(lp, rlp, mask)
    s32 = sequence_stats(lp.astype(np.float32), rlp.astype(np.float32), mask)
    assert s32["k3_mean"].dtype == torch.float32
    for k in STAT_KEYS:
        np.testing.assert_allclose(
            s32[k].double().numpy(), s64[k].numpy(), rtol=1e-4, atol=1e-6, err_msg=k
        )


def test_trainer_neg_inf_is_valid_and_rejected():
    """log pi_theta = -inf on a valid token: rho = 0, |rho - 1| = 1, k2 = k3 = +inf
    (docs/theory.md §6); max and mean criteria reject, nothing is NaN."""
    lp = torch.tensor([[-1.0, -math.inf, -2.0, float("nan")], [-1.0, -1.0, -1.0, 0.0]])
    rlp = torch.tensor([[-1.0, -0.5, -2.0, 3.0], [-1.0, -1.0, -1.0, float("nan")]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0]])
    s = sequence_stats(lp, rlp, mask)
    assert s["k2_max"][0] == math.inf and s["k3_mean"][0] == math.inf
    assert s["ser"][0] == pytest.approx(1.0 / 3.0, rel=1e-6)  # |0 - 1| on 1 token of 3
    assert s["log_ppl_diff"][0] == -math.inf
    for k in STAT_KEYS:
        assert not torch.isnan(s[k]).any(), k
        assert torch.isfinite(s[k][1]), k
    d = decide(s)
    assert d["seq_max_k2"].tolist() == [False, True]
    assert d["seq_mean_k3"].tolist() == [False, True]
    assert d["seq_max_k2,seq_mean_k3"].tolist() == [False, True]


def test_empty_sequences_have_zero_stats_and_are_accepted():
    """A sequence with no valid token gets statistics 0 and is accepted (module convention)."""
    lp = torch.full((2, 3), float("nan"))
    s = sequence_stats(lp, lp.clone(), torch.zeros(2, 3, dtype=torch.bool))
    for k in STAT_KEYS:
        assert s[k].tolist() == [0.0, 0.0], k
    assert all(v.all() for v in decide(s).values())


def test_ln_trm_weights_closed_form():
    """w(k) = min(1, sqrt(k delta / 2)) [min k eps] (docs/theory.md §6), k = T_i - t."""
    w = ln_trm_weights(50, 0.05)
    assert w[0] == 0.0
    np.testing.assert_allclose(w[:41], np.sqrt(np.arange(41) * 0.025), rtol=RTOL, atol=ATOL)
    assert (w[40:] == 1.0).all()  # sqrt(40 * 0.05 / 2) = 1: cap reached at k = 2/delta = 40
    we = ln_trm_weights(50, 0.05, 0.01)
    np.testing.assert_allclose(we, np.minimum(w, np.arange(50) * 0.01), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("T", [2, 7, 40, 41, 300])
def test_ln_trm_of_constant_deviation(T):
    """If |rho_t - 1| = c for every t then W/Z = c exactly, whatever the weights (identity)."""
    c = 0.3
    r = math.log1p(c)
    lp = torch.full((1, T), r, dtype=torch.float64)
    s = sequence_stats(lp, torch.zeros_like(lp), torch.ones(1, T), ln_eps=0.1)
    np.testing.assert_allclose(float(s["ln_trm"][0]), c, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(float(s["ser"][0]), c, rtol=RTOL, atol=ATOL)


def test_ln_trm_downweights_the_tail():
    """A deviation on the last token has weight w(0) = 0; on the first it has weight 1, and
    the score is |rho - 1| / Z(T) with Z(T) = sum_k w(k) (section 6)."""
    T = 10
    d = 0.5
    base = torch.zeros(2, T, dtype=torch.float64)
    base[0, -1] = math.log1p(d)
    base[1, 0] = math.log1p(d)
    s = sequence_stats(base, torch.zeros_like(base), torch.ones(2, T))
    Z = ln_trm_weights(T, 0.05).sum()
    assert float(s["ln_trm"][0]) == 0.0
    np.testing.assert_allclose(float(s["ln_trm"][1]), d * ln_trm_weights(T, 0.05)[-1] / Z)


def test_decide_hand_built_cases():
    """Thresholds compare with <= (equal is accepted); combined names need every part."""
    f64 = torch.float64
    stats = {
        "k2_max": torch.tensor([0.05, 0.0500001, 0.0, 0.0], dtype=f64),
        "k3_mean": torch.tensor([0.0, 0.0, 0.002, 0.0], dtype=f64),
        "ser": torch.tensor([0.0, 0.0, 0.0, 0.06], dtype=f64),
        "ln_trm": torch.tensor([0.0, 0.0, 0.0, 0.04], dtype=f64),
        "length": torch.tensor([3, 3, 3, 3]),
    }
    d = decide(stats)
    assert set(d) == set(CRITERIA) - {"seq_max_kl"}
    assert d["seq_max_k2"].tolist() == [True, False, True, True]
    assert d["seq_mean_k3"].tolist() == [True, True, False, True]  # 0.002 > 0.001 default
    assert d["seq_max_k2,seq_mean_k3"].tolist() == [True, False, False, True]
    assert d["ser"].tolist() == [True, True, True, False]  # 0.06 > 0.05
    assert d["ln_trm"].tolist() == [True] * 4
    d2 = decide(stats, {"seq_mean_k3": 0.003, "ln_trm": 0.01}, ["seq_max_k2,seq_mean_k3", "ln_trm"])
    assert d2["seq_max_k2,seq_mean_k3"].tolist() == [True, False, True, True]
    assert d2["ln_trm"].tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="kl_max"):
        decide(stats, criteria=["seq_max_kl"])
    with pytest.raises(ValueError, match="unknown criterion"):
        decide(stats, criteria=["seq_max_k9"])
    assert DEFAULT_THRESHOLDS["seq_mean_k3"] == 0.001  # paper default


def test_seq_max_kl_from_token_kl():
    """kl_max = max over valid tokens of the supplied exact KL; garbage pads ignored."""
    kl = torch.tensor([[0.01, 0.2, float("nan")], [0.01, 0.02, 0.03]], dtype=torch.float64)
    z = torch.zeros(2, 3, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    s = sequence_stats(z, z, mask, token_kl=kl)
    assert s["kl_max"].tolist() == [0.2, 0.03]
    assert decide(s, criteria=["seq_max_kl"])["seq_max_kl"].tolist() == [False, True]


def test_sequence_mask_metrics():
    """Mask = AND of criteria; metrics follow the report.json contract."""
    rng = np.random.default_rng(8)
    lp, rlp, mask = random_batch(rng, 30, 40, scale=0.2)
    mask[3] = False
    crit = ["seq_max_k2", "ser"]
    m, met = sequence_mask(lp, rlp, mask, crit)
    ref = reference_stats(lp, rlp, mask)
    expect = (ref["k2_max"] <= 0.05) & (ref["ser"] <= 0.05)
    assert m.numpy().tolist() == expect.tolist()
    ne = ref["length"] > 0
    with np.errstate(invalid="ignore"):  # garbage padding (inf - inf), dropped by the mask
        r = np.where(mask, lp - rlp, 0.0)
    np.testing.assert_allclose(met["log_ppl_abs_diff"], np.abs(ref["log_ppl_diff"][ne]).mean())
    np.testing.assert_allclose(met["k3_mean"], (np.expm1(r) - r).sum() / mask.sum())
    np.testing.assert_allclose(met["k2_max"], (r * r / 2).max())
    np.testing.assert_allclose(met["ser_mean"], ref["ser"][ne].mean())
    assert met["n_tokens"] == int(mask.sum()) and met["n_sequences"] == 30
    assert met["acceptance_rate"] == pytest.approx(expect.mean())
    assert met["acceptance_rate/ser"] == pytest.approx((ref["ser"] <= 0.05).mean())


def test_masked_loss_normalisation_and_nan_free_gradients():
    """L = (1/N) sum_i M_i mean_t l_it with N = B (section 6): not the accepted count;
    NaN/inf losses on padded or rejected tokens never reach value or gradient."""
    B, T = 4, 5
    vals = torch.arange(B * T, dtype=torch.float64).reshape(B, T) / 10
    resp = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    vals[0, 3] = float("nan")
    vals[2, 1:] = float("inf")
    vals[3] = float("nan")
    seq = torch.tensor([True, False, True, True])
    x = vals.clone().requires_grad_(True)
    loss = masked_loss(x, seq, resp)
    expect = (vals[0, :3].mean() + vals[2, 0]) / B  # row 1 rejected, row 3 empty
    np.testing.assert_allclose(float(loss.detach()), float(expect), rtol=RTOL, atol=ATOL)
    loss.backward()
    g = x.grad
    assert torch.isfinite(g).all()
    assert torch.all(g[0, :3] == 1 / (3 * B)) and g[2, 0] == 1 / B
    assert g[1].abs().sum() == 0 and g[0, 3:].abs().sum() == 0
    np.testing.assert_allclose(
        float(masked_loss(vals, seq, resp, total=8)), float(expect) * B / 8, rtol=RTOL
    )


def test_masked_loss_through_logprobs_with_garbage_padding():
    """End to end: garbage (NaN, -inf) logprobs in padding; gradient of the masked
    policy loss wrt finite logits is finite."""
    logits = torch.randn(3, 6, 11, dtype=torch.float64, requires_grad=True)
    logp = torch.log_softmax(logits, -1).gather(-1, torch.zeros(3, 6, 1, dtype=torch.long))[..., 0]
    resp = torch.tensor([[1, 1, 1, 1, 0, 0]] * 3)
    roll = logp.detach() + 0.01
    roll[:, 4:] = float("nan")
    garbage_lp = torch.where(resp.bool(), logp, torch.tensor(-math.inf, dtype=torch.float64))
    m, _ = sequence_mask(garbage_lp.detach(), roll, resp)
    ratio = torch.exp(garbage_lp - roll)  # NaN at pads
    loss = masked_loss(-ratio, m, resp)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert m.all()  # r = -0.01 on every valid token: k2 = 5e-5 <= 0.05


def direct_kl_tv(lt, lr):
    """Unchunked float64 reference through trm_bounds.divergences (numpy)."""
    lt = np.asarray(lt, np.float64)
    lr = np.asarray(lr, np.float64)
    q = np.exp(lt - np.logaddexp.reduce(lt, axis=-1, keepdims=True))
    p = np.exp(lr - np.logaddexp.reduce(lr, axis=-1, keepdims=True))
    return np_kl(p, q), np_tv(p, q)


def test_exact_kl_tv_chunked_vs_direct():
    """Chunked two-pass log-softmax (tiny chunks and row blocks) equals the unchunked torch
    computation and the numpy reference of divergences.kl/tv (float64 identity)."""
    g = torch.Generator().manual_seed(9)
    lt = 3 * torch.randn(3, 5, 37, dtype=torch.float64, generator=g)
    lr = lt + 0.3 * torch.randn(3, 5, 37, dtype=torch.float64, generator=g)
    ref_kl, ref_tv = direct_kl_tv(lt, lr)
    full = exact_token_divergences(lt, lr, chunk_size=10**6)
    chunked = exact_token_divergences(lt, lr, chunk_size=5, max_block_elements=7)
    for out in (full, chunked):
        np.testing.assert_allclose(out["kl"].numpy(), ref_kl, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(out["tv"].numpy(), ref_tv, rtol=RTOL, atol=ATOL)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1, 2:] = False
    k = exact_token_kl(lt, lr, mask, chunk_size=4)
    t = exact_token_tv(lt, lr, mask, chunk_size=4)
    assert (k[1, 2:] == 0).all() and (t[1, 2:] == 0).all()
    np.testing.assert_allclose(k[0].numpy(), ref_kl[0], rtol=RTOL, atol=ATOL)
    assert leq(2 * t.numpy() ** 2, k.numpy() + 1e-14)  # Pinsker, squared form (section 3)


def test_exact_kl_float32_inputs():
    """float32 logits are promoted to float64 per chunk on CPU: same values as float64 input
    of the same (float32-rounded) numbers."""
    g = torch.Generator().manual_seed(10)
    lt = torch.randn(4, 1000, generator=g)
    lr = lt + 0.05 * torch.randn(4, 1000, generator=g)
    ref_kl, ref_tv = direct_kl_tv(lt.double(), lr.double())
    out = exact_token_divergences(lt, lr, chunk_size=128)
    np.testing.assert_allclose(out["kl"].numpy(), ref_kl, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out["tv"].numpy(), ref_tv, rtol=RTOL, atol=ATOL)


def test_exact_kl_infinite_logits():
    """-inf logits: q = 0 < p gives KL = +inf; p = 0 contributes q (limit), no NaN."""
    lt = torch.tensor([[0.0, -math.inf, 0.0]], dtype=torch.float64)
    lr = torch.tensor([[0.0, 0.0, -math.inf]], dtype=torch.float64)
    out = exact_token_divergences(lt, lr, chunk_size=2)
    assert out["kl"][0] == math.inf
    np.testing.assert_allclose(float(out["tv"][0]), 0.5, rtol=RTOL)  # |1/2-1/2| + 1/2 + 1/2
    out2 = exact_token_divergences(lr, lt, chunk_size=2)
    assert out2["kl"][0] == math.inf and not torch.isnan(out2["kl"]).any()


def _topk_case(rng, V, k_t, k_r, mode):
    lq = rng.standard_normal(V) * rng.uniform(0.1, 4)
    lp = lq + rng.standard_normal(V) * rng.uniform(0, 2)
    lq = lq - np.logaddexp.reduce(lq)
    lp = lp - np.logaddexp.reduce(lp)
    if mode == "topk":
        it = np.argsort(-lq, kind="stable")[:k_t]
        ir = np.argsort(-lp, kind="stable")[:k_r]
    else:
        it = rng.permutation(V)[:k_t]
        ir = rng.permutation(V)[:k_r]
    return lq, lp, it, ir


@settings(max_examples=60)
@given(
    seed=st.integers(0, 2**32 - 1),
    V=st.integers(1, 12),
    data=st.data(),
    mode=st.sampled_from(["topk", "subset"]),
)
def test_topk_bounds_contain_exact(seed, V, data, mode):
    """lower <= exact <= upper for TV and KL(roll||theta) on random full distributions
    truncated to top-k (assume_topk=True) or to arbitrary subsets (assume_topk=False)."""
    rng = np.random.default_rng(seed)
    k_t = data.draw(st.integers(0, V))
    k_r = data.draw(st.integers(0, V))
    lq, lp, it, ir = _topk_case(rng, V, k_t, k_r, mode)
    b = topk_divergence_bounds(
        it[None], lq[it][None], ir[None], lp[ir][None], vocab_size=V, assume_topk=mode == "topk"
    )
    p, q = np.exp(lp), np.exp(lq)
    ex_kl, ex_tv = float(np_kl(p, q)), float(np_tv(p, q))
    assert leq(float(b["tv_lower"][0]), ex_tv) and leq(ex_tv, float(b["tv_upper"][0]))
    assert leq(float(b["kl_lower"][0]), ex_kl) and leq(ex_kl, float(b["kl_upper"][0]))


@pytest.mark.parametrize("assume_topk", [False, True])
def test_topk_bounds_meet_at_full_vocabulary(assume_topk):
    """k = V: both bounds equal the exact TV and KL (identity), batched over positions,
    with -1 padding tolerated (one row pads its last index; bounds then stay valid)."""
    rng = np.random.default_rng(11)
    V, n = 9, 6
    lq = rng.standard_normal((n, V))
    lp = lq + 0.4 * rng.standard_normal((n, V))
    lq -= np.logaddexp.reduce(lq, axis=-1, keepdims=True)
    lp -= np.logaddexp.reduce(lp, axis=-1, keepdims=True)
    idx_t = np.stack([rng.permutation(V) for _ in range(n)])
    idx_r = np.stack([rng.permutation(V) for _ in range(n)])
    b = topk_divergence_bounds(
        idx_t,
        np.take_along_axis(lq, idx_t, -1),
        idx_r,
        np.take_along_axis(lp, idx_r, -1),
        vocab_size=V,
        assume_topk=assume_topk,
    )
    ex_kl = np_kl(np.exp(lp), np.exp(lq))
    ex_tv = np_tv(np.exp(lp), np.exp(lq))
    # the tail masses 1 - sum p are ~1e-16 here, so the bounds meet to ~1e-15 (atol 1e-12)
    for key, ex in (("tv_lower", ex_tv), ("tv_upper", ex_tv), ("kl_lower", ex_kl)):
        np.testing.assert_allclose(b[key].numpy(), ex, rtol=1e-9, atol=ATOL, err_msg=key)
    np.testing.assert_allclose(b["kl_upper"].numpy(), ex_kl, rtol=1e-9, atol=1e-9)


def test_topk_kl_upper_infinite_when_theta_unknown():
    """A roll token whose theta probability is unknown can have q -> 0: KL upper = +inf."""
    it = np.array([[0]])
    ir = np.array([[0, 1]])
    b = topk_divergence_bounds(it, np.log([[0.6]]), ir, np.log([[0.5, 0.3]]), vocab_size=3)
    assert float(b["kl_upper"][0]) == math.inf
    assert 0.0 <= float(b["tv_lower"][0]) <= float(b["tv_upper"][0]) <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize("prefix", [True, False])
def test_fused_equals_eager(prefix):
    """fused=True (torch.compile, one loop) equals the eager path up to summation order
    (float64 inputs: identity at the suite's tolerance). Slow: the first call compiles."""
    rng = np.random.default_rng(12)
    lp, rlp, mask = random_batch(rng, 9, 70, prefix=prefix)
    eager = sequence_stats(lp, rlp, mask, ln_eps=0.03)
    fused = sequence_stats(lp, rlp, mask, ln_eps=0.03, fused=True)
    assert_stats_match(fused, {k: v.numpy() for k, v in eager.items()})


def test_degenerate_shapes():
    """T = 0 and B = 0 give empty/zero statistics without error; a tiny ln_eps (window
    1/eps = 10^6 much longer than T) is handled as the whole sequence (loop reference)."""
    s = sequence_stats(torch.zeros(3, 0), torch.zeros(3, 0), torch.zeros(3, 0, dtype=torch.bool))
    assert s["length"].tolist() == [0, 0, 0] and s["ln_trm"].tolist() == [0.0] * 3
    s0 = sequence_stats(torch.zeros(0, 5), torch.zeros(0, 5), torch.zeros(0, 5))
    assert s0["k2_max"].shape == (0,)
    rng = np.random.default_rng(13)
    lp, rlp, mask = random_batch(rng, 4, 30)
    got = sequence_stats(lp, rlp, mask, ln_eps=1e-6)
    assert_stats_match(got, reference_stats(lp, rlp, mask, ln_eps=1e-6))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    """On CUDA: statistics equal the CPU ones (float64 identity) and the float32 exact KL
    agrees with the float64 CPU value to the documented ~1e-6 relative error."""
    rng = np.random.default_rng(14)
    lp, rlp, mask = random_batch(rng, 16, 120)
    cpu = sequence_stats(lp, rlp, mask)
    dev = sequence_stats(*(torch.from_numpy(a).cuda() for a in (lp, rlp, mask)))
    assert_stats_match({k: v.cpu() for k, v in dev.items()}, {k: v.numpy() for k, v in cpu.items()})
    g = torch.Generator().manual_seed(15)
    lt = torch.randn(4, 3, 5000, generator=g)
    lr = lt + 0.1 * torch.randn(4, 3, 5000, generator=g)
    ref = exact_token_kl(lt, lr)
    got = exact_token_kl(lt.cuda(), lr.cuda(), chunk_size=1024).cpu().double()
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-5, atol=1e-9)


def test_huge_ratio_overflows_to_inf_quietly():
    """r = 200 (rho overflows float32 and float64 exp): k3, SER are +inf, the sequence is
    rejected by every criterion, and no warning is raised (pyproject turns RuntimeWarnings
    from trm_bounds into errors)."""
    for dt in (torch.float32, torch.float64):
        lp = torch.tensor([[0.0, -1.0]], dtype=dt)
        rlp = torch.tensor([[-800.0, -1.0]], dtype=dt)
        s = sequence_stats(lp, rlp, torch.ones(1, 2))
        assert s["k3_mean"][0] == math.inf and s["ser"][0] == math.inf
        assert not any(v[0] for v in decide(s).values())


@pytest.mark.parametrize("T", [50, 40_000])
@pytest.mark.parametrize("prefix", [True, False])
def test_row_statistics_do_not_depend_on_the_rows_beside_them(T, prefix):
    """A sequence's statistics do not depend on whether it is evaluated alone, with other
    rows, or in row blocks of any size: every per-row value reduces that row alone (no
    matrix-vector product whose rounding depends on the block shape, and a one-row block of
    >= 32768 cells is not split across threads). On one CPU and torch build that makes them
    bit-identical; the test allows 4 float32 ulps (rtol 5e-7) so that it does not rest on
    the reduction order of a particular CPU's vector kernels."""
    rng = np.random.default_rng(40)
    lp, rlp, mask = random_batch(rng, 5, T, prefix=prefix, scale=0.3)
    lp, rlp = lp.astype(np.float32), rlp.astype(np.float32)
    together = sequence_stats(lp, rlp, mask)
    blocked = sequence_stats(lp, rlp, mask, block_elements=2 * T)  # blocks of 2, 2, 1 rows
    for i in range(5):
        alone = sequence_stats(lp[i : i + 1], rlp[i : i + 1], mask[i : i + 1])
        for k in STAT_KEYS:
            ref = together[k][i].item()
            for got in (alone[k][0].item(), blocked[k][i].item()):
                assert got == ref or abs(got - ref) <= 5e-7 * abs(ref), (k, i, got, ref)


@pytest.mark.parametrize(
    "kw, name",
    [
        ({"ln_delta": 0.0}, "ln_delta"),
        ({"ln_delta": -1.0}, "ln_delta"),
        ({"ln_delta": float("nan")}, "ln_delta"),
        ({"ln_delta": float("inf")}, "ln_delta"),
        ({"ln_eps": 0.0}, "ln_eps"),
        ({"ln_eps": float("nan")}, "ln_eps"),
    ],
)
def test_ln_parameters_are_validated(kw, name):
    """ln_delta = 0 raised ZeroDivisionError and NaN a conversion error: now every bad LN-TRM
    parameter gives a one-line ValueError naming it, printing a plain float."""
    lp = np.full((2, 3), -1.0)
    with pytest.raises(ValueError, match=name) as err:
        sequence_stats(lp, lp, np.ones((2, 3), bool), **kw)
    assert "\n" not in str(err.value) and "np.float64" not in str(err.value)
    with pytest.raises(ValueError, match=name):
        ln_trm_weights(4, kw.get("ln_delta", 0.05), kw.get("ln_eps"))


def test_a_tiny_ln_delta_allocates_only_the_sequence_length():
    """ln_delta = 1e-300 puts every token of a short sequence in the window (w < 1 for all):
    the weights are those of the closed form, without allocating 2/delta of them."""
    lp = np.array([[-1.0, -2.0, -0.5]])
    rlp = np.array([[-1.1, -1.9, -0.7]])
    s = sequence_stats(lp, rlp, np.ones((1, 3), bool), ln_delta=1e-300)
    w = ln_trm_weights(3, 1e-300)[::-1]  # w(T - t) for t = 1..3
    want = float(np.sum(np.abs(np.expm1(lp - rlp)) * w) / np.sum(w))
    np.testing.assert_allclose(float(s["ln_trm"][0]), want, RTOL, ATOL)


def test_eager_pass_agrees_with_the_torch_kernel():
    """The in-place eager pass (one expm1 per token for k3 and |rho - 1|) equals the kernel's
    k2 and k3 (trm_bounds.divergences_torch) summed per row, in float64."""
    from trm_bounds.divergences_torch import k2, k3

    rng = np.random.default_rng(41)
    lp, rlp, mask = random_batch(rng, 7, 33, scale=0.4)
    s = sequence_stats(lp, rlp, mask)
    with np.errstate(invalid="ignore"):  # padding holds -inf - -inf; masked out below
        diff = lp - rlp
    r = torch.where(torch.from_numpy(mask), torch.from_numpy(diff), 0.0)
    np.testing.assert_allclose(s["k3_sum"].numpy(), k3(r).sum(dim=1).numpy(), RTOL, ATOL)
    np.testing.assert_allclose(s["k2_max"].numpy(), k2(r).amax(dim=1).numpy(), RTOL, ATOL)


def test_thresholds_are_validated():
    """Threshold overrides must be known criteria with finite values >= 0 (one-line errors);
    parse_threshold reads the NAME=VALUE form of the command line."""
    st = {"k2_max": torch.tensor([0.01, 0.2])}
    for bad in ({"seq_max_k2": float("nan")}, {"seq_max_k2": -1.0}, {"nope": 0.1}):
        with pytest.raises(ValueError) as err:
            decide(st, bad, ["seq_max_k2"])
        assert "\n" not in str(err.value)
    assert parse_threshold("seq_max_k2,seq_mean_k3=0.5") == ("seq_max_k2,seq_mean_k3", 0.5)
    for bad in ("seq_max_k2", "nope=1", "ser=x", "ser=inf", "ser=-1"):
        with pytest.raises(ValueError):
            parse_threshold(bad)


def test_cpu_threads_restored_and_values_independent_of_threads():
    """sequence_stats runs with one torch thread on CPU (a busy core must not stall it) and
    gives the caller's thread setting back; the values do not depend on the thread count."""
    import torch

    from trm_bounds.masking import sequence_stats

    g = torch.Generator().manual_seed(5)
    lp = torch.log(torch.rand(64, 3000, generator=g))
    rlp = lp + 0.01 * torch.randn(64, 3000, generator=g)
    m = torch.arange(3000)[None, :] < torch.randint(0, 3001, (64, 1), generator=g)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        a = sequence_stats(lp, rlp, m)
        assert torch.get_num_threads() == 2
        b = sequence_stats(lp, rlp, m, threads=None)
    finally:
        torch.set_num_threads(before)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_clamp_log_ratio_is_verl_safety_bound():
    """clamp_log_ratio=c: every statistic is that of r clipped to [-c, c] (computed two ways)."""
    import torch

    from trm_bounds.masking import sequence_stats

    lp = torch.tensor([[-float("inf"), -1.0, -30.0], [-1.0, -2.0, -3.0]], dtype=torch.float64)
    rlp = torch.tensor([[-1.0, -1.5, -1.0], [-1.0, -2.5, -3.0]], dtype=torch.float64)
    m = torch.ones(2, 3, dtype=torch.bool)
    got = sequence_stats(lp, rlp, m, clamp_log_ratio=20.0, k2_sum=True)
    r = (lp - rlp).clamp(-20.0, 20.0)
    want = sequence_stats(r, torch.zeros_like(r), m, k2_sum=True)
    for k in ("k2_max", "k3_max", "k3_sum", "r_sum", "r_min", "k2_sum", "ser", "ln_trm"):
        torch.testing.assert_close(got[k], want[k], rtol=1e-12, atol=1e-12)
    assert float(got["k2_max"][0]) == 200.0  # verl's finite k2 of a -inf trainer logprob
    assert sequence_stats(lp, rlp, m)["k2_max"][0] == float("inf")
