r"""One training step's metrics: ours, and verl's names where the quantity is the same
(docs/theory.md §6).

With ``r_t = log pi_theta - log pi_roll`` on the ``T_i`` valid tokens of row ``i``, ``n`` the
valid tokens of the batch and ``B`` its rows:

- ``trm/k1_mean = sum_it (-r_t) / n``, ``trm/k2_mean = sum_it r_t^2/2 / n``,
  ``trm/k3_mean = sum_it (e^r - 1 - r) / n`` (token means of the three estimators of
  KL(roll || theta)), ``trm/k2_max = max_it r^2/2``, ``trm/k3_max = max_it (e^r - 1 - r)``,
  ``trm/k3_seq_mean_max = max_i k3_mean_i`` (the TRM-Avg statistic's batch maximum),
  ``trm/log_ppl_abs_diff``, ``trm/ser_mean`` (:func:`~trm_bounds.masking.batch_metrics`);
- ``trm/acceptance_rate/<criterion>`` (kept rows / ``B``) and ``trm/mask_rate/<criterion>``
  (``1 -`` that) per configured criterion, each part and the joined name.

verl's names (verl 0.9.1, ``rollout_corr_helper.compute_offpolicy_metrics`` and
``compute_rollout_rejection_mask``; ``utils/debug/metrics.calculate_debug_metrics``), each with
verl's own definition, denominators ``+ 1e-8`` included (:data:`VERL_NAMES` says which):

- ``rollout_corr/kl = sum(-r)/(n + 1e-8)``, ``rollout_corr/k3_kl`` = the token mean of k3;
- ``d_i = -sum_t r_t / (T_i + 1e-8)`` (verl's ``log_ppl_diff`` of a row, rollout minus
  training mean logprob): ``rollout_corr/log_ppl_diff = mean_i d_i``, ``..._abs_diff =
  mean_i |d_i|``, ``..._diff_max``/``..._diff_min``, ``rollout_corr/ppl_ratio = mean_i e^{d_i}``
  (means over all ``B`` rows, empty rows giving ``d_i = 0``, as in verl);
- ``rollout_corr/chi2_seq = mean_i exp(2 clip(sum_t r_t, -20, 20)) - 1``;
- ``rollout_corr/training_log_ppl = mean_i (-sum_t log pi_theta / (T_i + 1e-8))``,
  ``training_ppl = mean_i exp(that row term)``, and the same for ``rollout_*``;
- for verl's sequence-level rejection options: ``rollout_corr/rollout_rs_<opt>_seq_masked_fraction``
  (rejected rows among rows with a valid token), ``..._<opt>_masked_fraction`` (valid tokens in
  rejected rows ``/ (n + 1e-8)``), and for the joined mask ``rollout_corr/rollout_rs_masked_fraction``
  and ``rollout_rs_seq_masked_fraction`` (rejected rows ``/ B``);
- ``training/rollout_probs_diff_{max,mean,std}``: ``|e^{log pi_theta} - e^{log pi_roll}|``
  over the valid tokens (``std`` with Bessel's correction, as ``torch.std``), and
  ``training/rollout_probs_diff_valid = 1``.

The rejection fractions use our decisions, which are verl's except that verl clips ``r`` to
``[-20, 20]`` first (:mod:`trm_bounds.masking.criteria`): they can differ only on a sequence
with a token of ``|r| > 20``. verl's ``chi2_token`` (needs ``e^{2r}`` per token) and
``rollout_actor_probs_pearson_corr`` are not computed. Token sums are accumulated in float64.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from trm_bounds.masking import VERL_CRITERIA, criterion_parts

if TYPE_CHECKING:
    import torch

__all__ = ["trm_metrics", "verl_metrics", "VERL_NAMES"]

#: verl's metric names this module fills (``<opt>`` a sequence-level rejection option).
VERL_NAMES: tuple[str, ...] = (
    "rollout_corr/kl", "rollout_corr/k3_kl", "rollout_corr/log_ppl_diff",
    "rollout_corr/log_ppl_abs_diff", "rollout_corr/log_ppl_diff_max",
    "rollout_corr/log_ppl_diff_min", "rollout_corr/ppl_ratio", "rollout_corr/chi2_seq",
    "rollout_corr/training_log_ppl", "rollout_corr/training_ppl",
    "rollout_corr/rollout_log_ppl", "rollout_corr/rollout_ppl",
    "rollout_corr/rollout_rs_<opt>_seq_masked_fraction",
    "rollout_corr/rollout_rs_<opt>_masked_fraction", "rollout_corr/rollout_rs_masked_fraction",
    "rollout_corr/rollout_rs_seq_masked_fraction", "training/rollout_probs_diff_max",
    "training/rollout_probs_diff_mean", "training/rollout_probs_diff_std",
    "training/rollout_probs_diff_valid",
)  # fmt: skip

#: verl's ``SAFETY_BOUND``: the clip of the summed log-ratio in ``chi2_seq``.
_SAFETY_BOUND = 20.0


def trm_metrics(
    stats: Mapping[str, torch.Tensor],
    decisions: Mapping[str, torch.Tensor],
    keep: torch.Tensor,
    base: Mapping[str, float],
) -> dict[str, float]:
    """Our names (module docstring) from :func:`~trm_bounds.masking.sequence_stats` output
    (with ``k2_sum``), the per-criterion ``decisions``, the joined ``keep`` and the
    :func:`~trm_bounds.masking.batch_metrics` ``base``."""
    length = stats["length"]
    n_tok = int(length.sum())
    B = int(length.numel())
    out = {f"trm/{k}": float(v) for k, v in base.items()}

    def tok_mean(x: torch.Tensor) -> float:
        return float(x.double().sum()) / n_tok if n_tok else 0.0

    out["trm/k1_mean"] = -tok_mean(stats["r_sum"])
    out["trm/k2_mean"] = tok_mean(stats["k2_sum"])
    out["trm/k3_max"] = float(stats["k3_max"].max()) if B else 0.0
    out["trm/k3_seq_mean_max"] = float(stats["k3_mean"].max()) if B else 0.0
    for name, acc in decisions.items():
        rate = float(acc.double().mean()) if B else 1.0
        out[f"trm/acceptance_rate/{name}"] = rate
        out[f"trm/mask_rate/{name}"] = 1.0 - rate
    rate = float(keep.double().mean()) if B else 1.0
    out["trm/acceptance_rate"] = rate
    out["trm/mask_rate"] = 1.0 - rate
    return out


def verl_metrics(
    lp: torch.Tensor,
    rlp: torch.Tensor,
    valid: torch.Tensor,
    stats: Mapping[str, torch.Tensor],
    decisions: Mapping[str, torch.Tensor],
    criteria: Sequence[str],
) -> dict[str, float]:
    """verl's names with verl's definitions (module docstring); ``lp``, ``rlp`` ``(B, L)`` in
    the statistics' dtype, ``valid`` the bool mask (garbage at invalid cells never read)."""

    length = stats["length"].double()  # (B,)
    B = int(length.numel())
    n = float(length.sum())
    den = length + 1e-8
    lp_sum = _row_sums64(lp, valid)  # (B,) float64
    rlp_sum = _row_sums64(rlp, valid)
    r_sum = stats["r_sum"].double()
    d = -r_sum / den  # (B,) verl's per-row log_ppl_diff
    train_lppl, roll_lppl = -lp_sum / den, -rlp_sum / den
    out = {
        "rollout_corr/kl": float(-r_sum.sum()) / (n + 1e-8),
        "rollout_corr/k3_kl": float(stats["k3_sum"].double().sum()) / (n + 1e-8),
        "rollout_corr/log_ppl_diff": float(d.mean()),
        "rollout_corr/log_ppl_abs_diff": float(d.abs().mean()),
        "rollout_corr/log_ppl_diff_max": float(d.max()),
        "rollout_corr/log_ppl_diff_min": float(d.min()),
        "rollout_corr/ppl_ratio": float(d.exp().mean()),
        "rollout_corr/chi2_seq": float(
            (2.0 * r_sum.clamp(-_SAFETY_BOUND, _SAFETY_BOUND)).exp().mean() - 1.0
        ),
        "rollout_corr/training_log_ppl": float(train_lppl.mean()),
        "rollout_corr/training_ppl": float(train_lppl.exp().mean()),
        "rollout_corr/rollout_log_ppl": float(roll_lppl.mean()),
        "rollout_corr/rollout_ppl": float(roll_lppl.exp().mean()),
    }
    diff = lp.exp()
    diff.sub_(rlp.exp()).abs_()  # (B, L) |p_theta - p_roll|, in place; padding never read
    mean = _total64(diff, valid) / n if n else math.nan
    out["training/rollout_probs_diff_valid"] = 1.0
    out["training/rollout_probs_diff_max"] = _max_nonneg(diff, valid)
    out["training/rollout_probs_diff_mean"] = mean
    out["training/rollout_probs_diff_std"] = (
        math.sqrt(_total64(diff.sub_(mean).square_(), valid) / (n - 1)) if n > 1 else math.nan
    )
    out.update(_rs_fractions(length, decisions, criteria, B, n))
    return out


def _row_sums64(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Per-row sums over the valid cells, accumulated in float64 (on CPU through numpy's masked
    reduction: no temporary, several times faster than torch's float64 sum)."""
    import torch

    if x.device.type == "cpu":
        v = np.add.reduce(x.numpy(), axis=1, dtype=np.float64, where=valid.numpy(), initial=0.0)
        return torch.from_numpy(v)
    return torch.where(valid, x, 0.0).sum(dim=1, dtype=torch.float64)


def _total64(x: torch.Tensor, valid: torch.Tensor) -> float:
    """The sum over the valid cells, accumulated in float64."""
    import torch

    if x.device.type == "cpu":
        return float(np.add.reduce(x.numpy(), axis=None, dtype=np.float64, where=valid.numpy(),
                                   initial=0.0))  # fmt: skip
    return float(torch.where(valid, x, 0.0).sum(dtype=torch.float64))


def _max_nonneg(x: torch.Tensor, valid: torch.Tensor) -> float:
    """The maximum over the valid cells of a non-negative ``x`` (0 without a valid cell)."""
    import torch

    if x.device.type == "cpu":
        return float(np.maximum.reduce(x.numpy(), axis=None, where=valid.numpy(), initial=0.0))
    return float(torch.where(valid, x, 0.0).max())


def _rs_fractions(
    length: torch.Tensor,
    decisions: Mapping[str, torch.Tensor],
    criteria: Sequence[str],
    B: int,
    n: float,
) -> dict[str, float]:
    """verl's rejection fractions for the sequence-level verl options among ``criteria``;
    the joined ones only when every part of every criterion is such an option."""
    seq_opts = [p for c in criteria for p in criterion_parts(c)
                if p in VERL_CRITERIA and not p.startswith("token_")]  # fmt: skip
    out: dict[str, float] = {}
    nonempty = length > 0
    n_rows = int(nonempty.sum())

    def fractions(rejected: torch.Tensor) -> tuple[float, float]:
        rej = rejected & nonempty
        seq = float(rej.double().sum()) / n_rows if n_rows else 0.0
        tok = float((length * rej.double()).sum()) / (n + 1e-8)
        return seq, tok

    for p in dict.fromkeys(seq_opts):
        seq, tok = fractions(~decisions[p])
        out[f"rollout_corr/rollout_rs_{p}_seq_masked_fraction"] = seq
        out[f"rollout_corr/rollout_rs_{p}_masked_fraction"] = tok
    parts = [p for c in criteria for p in criterion_parts(c)]
    if parts and len(seq_opts) == len(parts):
        rejected = ~decisions[parts[0]]
        for p in parts[1:]:
            rejected = rejected | ~decisions[p]
        _, tok = fractions(rejected)
        out["rollout_corr/rollout_rs_masked_fraction"] = tok
        out["rollout_corr/rollout_rs_seq_masked_fraction"] = (
            float((rejected & nonempty).double().sum()) / B if B else 0.0
        )
    return out
