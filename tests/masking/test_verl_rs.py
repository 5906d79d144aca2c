"""verl's rejection grammar (``--rollout-rs``): every criterion of verl 0.9.1, decided row by row
as verl decides it.

Two references: a float64 numpy transcription of verl's documented semantics
(``rollout_corr_helper.compute_rollout_rejection_mask`` and ``torch_functional.masked_mean``:
``r`` clipped to ``[-20, 20]``, ``k1 = -r``, ``k2 = r^2/2``, ``k3 = exp(r) - 1 - r``; sums over
valid tokens, means over ``count + 1e-8``; ``k1`` ranges in log space; a single ``k1`` value
``u`` means ``(1/u, u)``), written here independently of the package; and verl itself
(skipped when ``verl`` is not importable). Thresholds are placed in the widest gap between
neighbouring reference statistics, so no decision is a rounding tie.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from trm_bounds.masking import (  # noqa: E402
    VERL_CRITERIA,
    parse_rollout_rs,
    rollout_rs_mask,
    sequence_mask,
)

SAFETY = 20.0


def make(seed: int, B: int = 96, T: int = 40, *, extreme: bool = True):
    """Right-padded float64 logprobs; NaN padding; rows of length 0..T; per-row mismatch
    scales from 1e-3 to 1; with ``extreme``, a few |r| > 20 tokens and trainer ``-inf``."""
    rng = np.random.default_rng(seed)
    L = rng.integers(0, T + 1, B)
    L[:3] = (0, 1, T)
    mask = np.arange(T)[None, :] < L[:, None]
    rlp = np.log(rng.uniform(0.05, 1.0, (B, T)))
    scale = 10.0 ** rng.uniform(-3, 0, (B, 1))
    r = rng.normal(0.0, 1.0, (B, T)) * scale
    if extreme:
        r[5, 0], r[6, 0] = 25.0, -30.0
    lp = rlp + r
    if extreme:
        lp[7, 0] = -np.inf
    lp[~mask] = np.nan
    rlp[~mask] = np.nan
    return lp, rlp, mask


def ref_stats(lp, rlp, mask, clamp: float | None = SAFETY) -> dict[str, np.ndarray]:
    """verl's per-token (``token_*``) and per-sequence statistics, float64 numpy."""
    with np.errstate(invalid="ignore", over="ignore"):
        r = lp - rlp
        if clamp is not None:
            r = np.clip(r, -clamp, clamp)
        tok = {"k1": -r, "k2": 0.5 * r * r, "k3": np.exp(r) - 1.0 - r}
        out = {f"token_{k}": v for k, v in tok.items()}
        cnt = mask.sum(-1) + 1e-8
        for k, v in tok.items():
            s = np.where(mask, v, 0.0).sum(-1)
            out[f"seq_sum_{k}"] = s
            out[f"seq_mean_{k}"] = s / cnt
            if k != "k1":
                mx = np.where(mask, v, -np.inf).max(-1)
                out[f"seq_max_{k}"] = np.where(np.isneginf(mx), 0.0, mx)
    return out


def ref_mask(stats, mask, thresholds: dict) -> np.ndarray:
    """verl's modified response mask (bool) from :func:`ref_stats`."""
    keep = mask.copy()
    for opt, t in thresholds.items():
        s = stats[opt]
        if opt.endswith("k1"):
            lo, hi = t
            ok = (s >= math.log(lo)) & (s <= math.log(hi))
        else:
            ok = s <= t
        keep &= ok if opt.startswith("token_") else ok[:, None]
    return keep


def gap_threshold(values: np.ndarray, q: float) -> float:
    """A value in the widest gap between neighbouring finite values near quantile ``q``."""
    v = np.unique(values[np.isfinite(values)])
    i = int(q * (len(v) - 1))
    lo, hi = max(0, i - 6), min(len(v) - 1, i + 6)
    j = lo + int(np.argmax(np.diff(v[lo : hi + 1])))
    return float(0.5 * (v[j] + v[j + 1]))


def thresholds_for(opt: str, stats, mask, q_hi: float = 0.7) -> float | tuple[float, float]:
    s = stats[opt]
    vals = s[mask] if opt.startswith("token_") else s[mask.any(-1)]
    if opt.endswith("k1"):
        lo, hi = gap_threshold(vals, 1 - q_hi), gap_threshold(vals, q_hi)
        lo, hi = min(lo, -1e-6), max(hi, 1e-6)  # a range containing ratio 1
        return (math.exp(lo), math.exp(hi))
    return gap_threshold(vals, q_hi)


def spec(t) -> str:
    return f"{t[0]!r}_{t[1]!r}" if isinstance(t, tuple) else repr(t)


@pytest.mark.parametrize("opt", VERL_CRITERIA)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_criterion_matches_float64_reference(opt, seed):
    """Token mask and sequence decisions of ``rollout_rs_mask`` (clamp 20) = the reference's,
    on every row, with NaN padding, empty rows and |r| > 20 tokens."""
    lp, rlp, mask = make(seed)
    st = ref_stats(lp, rlp, mask)
    for q in (0.3, 0.7, 0.95):
        t = thresholds_for(opt, st, mask, q)
        want = ref_mask(st, mask, {opt: t})
        got, acc = rollout_rs_mask(lp, rlp, mask, opt, spec(t), clamp_log_ratio=SAFETY)
        np.testing.assert_array_equal(got.numpy(), want)
        np.testing.assert_array_equal(acc.numpy(), ~(mask & ~want).any(-1))
        assert want.sum() < mask.sum() if q < 0.9 else want.any()  # the threshold bites
        if opt != "token_k1" or (t[0] <= 1 <= t[1]):
            keep, _ = sequence_mask(lp, rlp, mask, [opt], {opt: t}, clamp_log_ratio=SAFETY)
            np.testing.assert_array_equal(keep.numpy(), ~(mask & ~want).any(-1))


@pytest.mark.parametrize("seed", [3, 4])
def test_chained_options_and_shared_threshold(seed):
    """``"seq_max_k2,seq_mean_k3"`` with one entry per option = AND of both; one entry is
    shared by every option (verl's rule); duplicates are dropped."""
    lp, rlp, mask = make(seed)
    st = ref_stats(lp, rlp, mask)
    t2 = thresholds_for("seq_max_k2", st, mask, 0.6)
    t3 = thresholds_for("seq_mean_k3", st, mask, 0.6)
    want = ref_mask(st, mask, {"seq_max_k2": t2, "seq_mean_k3": t3})
    got, _ = rollout_rs_mask(
        lp, rlp, mask, "seq_max_k2,seq_mean_k3,seq_max_k2", f"{t2!r},{t3!r}", clamp_log_ratio=20
    )
    np.testing.assert_array_equal(got.numpy(), want)
    shared = ref_mask(st, mask, {"token_k2": t2, "seq_sum_k2": t2})
    got, _ = rollout_rs_mask(lp, rlp, mask, "token_k2,seq_sum_k2", repr(t2), clamp_log_ratio=20)
    np.testing.assert_array_equal(got.numpy(), shared)


def test_k1_single_value_means_reciprocal_range():
    assert parse_rollout_rs("token_k1", "2")[1] == {"token_k1": (0.5, 2.0)}
    assert parse_rollout_rs("seq_sum_k1", "0.25_3")[1] == {"seq_sum_k1": (0.25, 3.0)}


@pytest.mark.parametrize(
    "rs, th",
    [
        ("seq_max_k1", "1"),  # not a verl option
        ("token_k2,seq_mean_k3", "1,2,3"),  # neither one nor one per option
        ("token_k2", "0.1_0.2"),  # '_' only for k1 options
        ("seq_sum_k3", "0"),  # verl: positive
        ("token_k1", "2_0.5"),  # lower > upper
        ("token_k1", "-1"),
        ("", "1"),
    ],
)
def test_bad_grammar_is_one_line_value_error(rs, th):
    with pytest.raises(ValueError) as e:
        parse_rollout_rs(rs, th)
    assert "\n" not in str(e.value)


def test_verl_decisions_by_default_and_the_switch_that_departs():
    """A trainer logprob of -inf: verl clips r at -20 (k3 = 19 + e^-20, finite), so a long
    sequence passes ``seq_mean_k3 <= 0.05``: the default gives verl's decision;
    ``clamp_log_ratio=None`` treats it as an infinite divergence and rejects it."""
    T = 1000
    lp = np.full((1, T), -1.0)
    rlp = np.full((1, T), -1.0)
    lp[0, 0] = -np.inf
    mask = np.ones((1, T), bool)
    want = ref_mask(ref_stats(lp, rlp, mask), mask, {"seq_mean_k3": 0.05})
    assert want.all()  # verl keeps it: 19 / 1000 < 0.05
    ours, _ = rollout_rs_mask(lp, rlp, mask, "seq_mean_k3", "0.05")
    np.testing.assert_array_equal(ours.numpy(), want)
    unclamped, acc = rollout_rs_mask(lp, rlp, mask, "seq_mean_k3", "0.05", clamp_log_ratio=None)
    assert not unclamped.any() and not acc.any()
    for opt in VERL_CRITERIA:  # unclamped, every criterion rejects the infinite divergence
        t = "1e6" if not opt.endswith("k1") else "1e-6_1e6"
        assert not rollout_rs_mask(lp, rlp, mask, opt, t, clamp_log_ratio=None)[1].any(), opt


@pytest.mark.parametrize("seed", range(3))
def test_finite_log_ratio_above_20_is_clipped_as_verl_does(seed):
    """A finite |r| in (20, 30] on one token of each row: verl's k2 is 200, so
    ``seq_max_k2 <= 250`` keeps every row by default (the reference's decision), while
    ``clamp_log_ratio=None`` (k2 = r^2/2 > 250 where |r| > sqrt(500)) departs."""
    rng = np.random.default_rng(seed)
    lp, rlp, mask = make(seed)
    r = rng.uniform(20.5, 30.0, lp.shape[0]) * rng.choice([-1.0, 1.0], lp.shape[0])
    rlp[:, 0] = -40.0
    lp[:, 0] = np.minimum(rlp[:, 0] + r, 0.0)
    mask[:, 0] = True
    r = lp[:, 0] - rlp[:, 0]
    want = ref_mask(ref_stats(lp, rlp, mask), mask, {"seq_max_k2": 250.0})
    got, acc = rollout_rs_mask(lp, rlp, mask, "seq_max_k2", "250")
    np.testing.assert_array_equal(got.numpy(), want)
    _, acc_raw = rollout_rs_mask(lp, rlp, mask, "seq_max_k2", "250", clamp_log_ratio=None)
    big = np.abs(r) > np.sqrt(500.0) * (1 + 1e-9)  # margin far above float noise
    assert not acc_raw.numpy()[big].any()
    assert big.any()


def _verl():
    try:
        from verl.trainer.ppo import rollout_corr_helper
    except Exception:  # noqa: BLE001 -- any import failure means: no verl here
        return None
    return rollout_corr_helper


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_parity_with_verl_every_criterion(dtype):
    """verl 0.9.1's own ``compute_rollout_rejection_mask`` and ``rollout_rs_mask`` with
    ``clamp_log_ratio=20`` give the same modified mask on every row, for every criterion."""
    helper = _verl()
    if helper is None:
        pytest.skip("verl is not importable")
    n_rows = n_opts = 0
    for seed in range(3):
        lp, rlp, mask = make(seed)
        st = ref_stats(lp, rlp, mask)
        lp_t = torch.from_numpy(lp).to(getattr(torch, dtype))
        rlp_t = torch.from_numpy(rlp).to(getattr(torch, dtype))
        m_t = torch.from_numpy(mask.astype(np.float32)).to(getattr(torch, dtype))
        for opt in VERL_CRITERIA:
            for q in (0.3, 0.7):
                t = spec(thresholds_for(opt, st, mask, q))
                vm, _ = helper.compute_rollout_rejection_mask(lp_t - rlp_t, m_t, opt, t)
                ours, _ = rollout_rs_mask(lp_t, rlp_t, m_t, opt, t, clamp_log_ratio=20)
                np.testing.assert_array_equal(ours.numpy(), vm.numpy() > 0.5, err_msg=opt)
                n_rows += lp.shape[0]
                n_opts += 1
    assert n_opts == 3 * 2 * len(VERL_CRITERIA) and n_rows == n_opts * 96
