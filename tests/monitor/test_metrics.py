"""verl's metric names with verl's definitions (trm_bounds.monitor.metrics).

The reference is verl 0.9.1's code transcribed token by token (``masked_mean`` with its
``+ 1e-8``, ``compute_offpolicy_metrics``, the rejection fractions of
``compute_rollout_rejection_mask``, ``calculate_debug_metrics``): a second, per-token route to
the numbers the monitor derives from per-sequence statistics. Batches hold empty rows, where
verl's denominators and ours differ if either is written carelessly.
"""

from __future__ import annotations

import numpy as np
import pytest

from trm_bounds.masking import decide, sequence_stats
from trm_bounds.monitor.metrics import VERL_NAMES, verl_metrics

torch = pytest.importorskip("torch")  # the [torch] extra
# (one import per block: ruff's isort places `tests` differently in a worktree and in a checkout)
from tests.tolerances import ATOL, RTOL  # noqa: E402


def masked_mean(v, m, axis=None):
    s = (v * m).sum() if axis is None else (v * m).sum(axis)
    return s / ((m.sum() if axis is None else m.sum(axis)) + 1e-8)


def verl_reference(lp, rlp, m, thresholds):
    """verl 0.9.1's definitions, per token, float64."""
    r = lp - rlp
    out = {"rollout_corr/kl": masked_mean(rlp - lp, m), "rollout_corr/k3_kl": masked_mean(r.exp() - r - 1, m)}
    mt, mr = masked_mean(lp, m, -1), masked_mean(rlp, m, -1)
    d = mr - mt
    out |= {
        "rollout_corr/training_ppl": (-mt).exp().mean(), "rollout_corr/training_log_ppl": (-mt).mean(),
        "rollout_corr/rollout_ppl": (-mr).exp().mean(), "rollout_corr/rollout_log_ppl": (-mr).mean(),
        "rollout_corr/log_ppl_diff": d.mean(), "rollout_corr/log_ppl_abs_diff": d.abs().mean(),
        "rollout_corr/log_ppl_diff_max": d.max(), "rollout_corr/log_ppl_diff_min": d.min(),
        "rollout_corr/ppl_ratio": d.exp().mean(),
        "rollout_corr/chi2_seq": (2 * (r * m).sum(-1).clamp(-20, 20)).exp().mean() - 1,
    }  # fmt: skip
    seq_valid = m.sum(-1) > 0
    final = torch.ones_like(m)
    stats = {"seq_max_k2": (0.5 * r * r * m).amax(-1),
             "seq_mean_k3": masked_mean(r.exp() - r - 1, m, -1)}  # fmt: skip
    for opt, stat in stats.items():
        keep_seq = (stat <= thresholds[opt]).to(m.dtype)
        token_keep = keep_seq.unsqueeze(-1).expand_as(m)
        final = final * token_keep
        out[f"rollout_corr/rollout_rs_{opt}_masked_fraction"] = masked_mean(1 - token_keep, m)
        out[f"rollout_corr/rollout_rs_{opt}_seq_masked_fraction"] = (
            ((1 - keep_seq) * seq_valid).sum() / seq_valid.sum())
    out["rollout_corr/rollout_rs_masked_fraction"] = masked_mean(1 - final, m)
    out["rollout_corr/rollout_rs_seq_masked_fraction"] = (
        ((final < 0.5) & (m > 0)).any(-1).double().mean())  # fmt: skip
    diff = (lp.exp() - rlp.exp()).abs()[m > 0]
    out |= {"training/rollout_probs_diff_max": diff.max(), "training/rollout_probs_diff_mean": diff.mean(),
            "training/rollout_probs_diff_std": diff.std(), "training/rollout_probs_diff_valid": 1.0}  # fmt: skip
    return {k: float(v) for k, v in out.items()}


@pytest.mark.parametrize("seed", range(5))
def test_verl_names_match_verl_definitions(seed):
    g = torch.Generator().manual_seed(seed)
    B, L = 40, 30
    n = torch.randint(0, L + 1, (B,), generator=g)
    n[:3] = 0
    m = (torch.arange(L)[None] < n[:, None]).double()
    rlp = torch.log(torch.rand(B, L, generator=g, dtype=torch.float64) * 0.9 + 0.1)
    lp = (rlp + 0.15 * torch.randn(B, L, generator=g, dtype=torch.float64)).clamp(max=0.0)
    lp, rlp = lp * m, rlp * m  # verl's tensors hold 0 at padding
    th = {"seq_max_k2": 0.05, "seq_mean_k3": 0.003}
    criteria = ["seq_max_k2", "seq_mean_k3"]
    stats = sequence_stats(lp, rlp, m, k2_sum=True)
    dec = decide(stats, th, criteria)
    ours = verl_metrics(lp, rlp, m > 0, stats, dec, criteria)
    ref = verl_reference(lp, rlp, m, th)
    assert set(ours) == set(ref)
    assert 0 < ref["rollout_corr/rollout_rs_seq_masked_fraction"] < 1  # both decisions occur
    for k in ref:
        np.testing.assert_allclose(ours[k], ref[k], rtol=RTOL, atol=ATOL, err_msg=k)
    patterns = {k.replace("seq_max_k2", "<opt>").replace("seq_mean_k3", "<opt>") for k in ours}
    assert patterns == set(VERL_NAMES)
