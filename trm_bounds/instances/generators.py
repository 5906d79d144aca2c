"""The registry of random tree instances: kind -> ``(seed, V, T, n_prompts) -> instance``.

Each kind draws one of the named families (:mod:`trm_bounds.instances.named`, docs/theory.md
§1) at parameters drawn from the seed; the tabular verification and the certificate
coverage studies, and the hypothesis strategies, run over every kind.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from trm_bounds.instances import named
from trm_bounds.instances.tree import TreeInstance

__all__ = ["GENERATORS"]


def _draw(seed: int) -> np.random.Generator:
    """Generator for the registry's size draws (independent of the instance's own stream)."""
    return np.random.default_rng([seed, 1])


# Registry: kind -> (seed, V, T, n_prompts) -> instance; sizes drawn from the seed.
GENERATORS: dict[str, Callable[[int, int, int, int], TreeInstance]] = {
    "dense": lambda seed, V, T, n: named.dense_noise(
        V, T, n_prompts=n, scale=float(_draw(seed).choice([0.01, 0.1, 0.5, 2.0])), seed=seed,
        reward=str(_draw(seed).choice(["uniform", "binary"])),
    ),
    "sparse": lambda seed, V, T, n: named.sparse_perturbation(
        V, max(T, 2), n_prompts=n, k=int(_draw(seed).integers(2, max(T, 2) + 1)),
        scale=float(_draw(seed).choice([0.1, 1.0, 3.0])), seed=seed,
    ),
    "moe_flip": lambda seed, V, T, n: named.moe_flip(
        V, T, n_prompts=n, k=int(_draw(seed).integers(1, T + 1)), seed=seed
    ),
    "staleness": lambda seed, V, T, n: named.staleness(
        V, T, n_prompts=n, step=float(_draw(seed).choice([0.1, 1.0, 5.0])), seed=seed
    ),
    "adversarial": lambda seed, V, T, n: named.adversarial(
        V, T, n_prompts=n, scale=float(_draw(seed).choice([0.05, 0.5, 2.0])), seed=seed
    ),
    "tight": lambda seed, V, T, n: named.tight_instance(float(_draw(seed).uniform(0.0, 0.5))),
    "single_perturbation": lambda seed, V, T, n: named.single_perturbation(
        V, T, n_prompts=n, scale=float(_draw(seed).choice([0.1, 1.0, 3.0])), seed=seed
    ),
    "uniform": lambda seed, V, T, n: named.uniform_divergence(
        V, T, n_prompts=n, size=float(_draw(seed).uniform(0.0, 0.5)), seed=seed
    ),
    "sparse_divergence": lambda seed, V, T, n: named.sparse_divergence(
        V, T, n_prompts=n, k=int(_draw(seed).integers(1, T + 1)),
        size=float(_draw(seed).uniform(0.0, 0.5)), seed=seed,
    ),
}  # fmt: skip
