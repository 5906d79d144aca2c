r"""Small causal transformers whose policy pairs carry the paper's mismatch sources.

- :mod:`~trm_bounds.transformer.model`: a nanoGPT-style decoder (dense or Mixture-of-Experts)
  with logits at every position, float64 log-probabilities and KV-cache sampling;
- :mod:`~trm_bounds.transformer.source`: the synthetic Markov source it is trained on and the
  bounded grammar reward;
- :mod:`~trm_bounds.transformer.mismatch`: the four ``(roll, theta)`` pair constructors
  (precision, staleness, MoE routing, weight noise), routing flips and rollouts.

Exact enumeration of a pair lives in :mod:`trm_bounds.engines.neural`; Monte Carlo
estimators in :mod:`trm_bounds.estimators`.  Setting and notation: docs/theory.md §1.
Importing this package imports torch (the package root does not).
"""

from trm_bounds.transformer.mismatch import (
    count_route_flips,
    moe_routing_pair,
    precision_pair,
    rollout_logratios,
    staleness_pair,
    weight_noise_pair,
)
from trm_bounds.transformer.model import (
    GPT,
    GPTConfig,
    model_inputs,
    no_tf32,
    policy_logprobs,
    sample,
    sinusoidal_positions,
    token_logprobs,
)
from trm_bounds.transformer.source import MarkovSource, grammar_reward, train_on_source

__all__ = [
    "GPTConfig",
    "GPT",
    "MarkovSource",
    "grammar_reward",
    "policy_logprobs",
    "token_logprobs",
    "model_inputs",
    "sinusoidal_positions",
    "train_on_source",
    "sample",
    "rollout_logratios",
    "precision_pair",
    "staleness_pair",
    "moe_routing_pair",
    "weight_noise_pair",
    "count_route_flips",
    "no_tf32",
]
