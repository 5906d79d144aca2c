"""Trust Region Masking as a drop-in torch API (docs/theory.md §6).

:func:`sequence_stats` computes the per-sequence statistics, :func:`decide` turns them into
accept/reject decisions with verl's criterion names, :func:`sequence_mask` does both and
returns batch metrics, and :func:`masked_loss` applies the mask with the normalisation by the
total batch size. :func:`exact_token_kl` / :func:`exact_token_tv` compute exact per-position
divergences from full logits; :func:`topk_divergence_bounds` gives guaranteed bounds from
top-k logprobs. :func:`rollout_rs_mask` is verl's token-level rejection mask for every verl
criterion (``--rollout-rs`` grammar). Importing this package does not import torch; the functions do.
"""

from trm_bounds.masking.criteria import (
    CRITERIA,
    DEFAULT_THRESHOLDS,
    STAT_OF_CRITERION,
    VERL_CRITERIA,
    check_threshold,
    criterion_parts,
    decide,
    needs_k2_sum,
    parse_rollout_rs,
    parse_threshold,
)
from trm_bounds.masking.ln_trm import check_ln_params, ln_trm_weights
from trm_bounds.masking.logits import (
    exact_token_divergences,
    exact_token_kl,
    exact_token_tv,
    topk_divergence_bounds,
)
from trm_bounds.masking.stats import sequence_stats
from trm_bounds.masking.trainer import batch_metrics, masked_loss, sequence_mask
from trm_bounds.masking.verl_rs import rollout_rs_mask

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CRITERIA",
    "STAT_OF_CRITERION",
    "sequence_stats",
    "decide",
    "sequence_mask",
    "batch_metrics",
    "masked_loss",
    "ln_trm_weights",
    "check_ln_params",
    "criterion_parts",
    "check_threshold",
    "parse_threshold",
    "VERL_CRITERIA",
    "parse_rollout_rs",
    "needs_k2_sum",
    "rollout_rs_mask",
    "exact_token_kl",
    "exact_token_tv",
    "exact_token_divergences",
    "topk_divergence_bounds",
]
