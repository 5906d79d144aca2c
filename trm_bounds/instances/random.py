r"""Random building blocks of instances.

Tree instances (docs/theory.md §1): prompt distributions and rollout logits drawn from
seeded generators, random rewards, contexts on one random path, and a mass-moving
perturbation with an exact total variation.  Finite-state instances: random state
machines, random half-of-the-states rewards, and a logit tilt of a given forward KL.

The registry of random tree instances built from these and the named families is
:data:`trm_bounds.instances.generators.GENERATORS`.
"""

from __future__ import annotations

import numpy as np

from trm_bounds.divergences import softmax
from trm_bounds.instances.tree import n_contexts

__all__ = [
    "Seed",
    "rng_from",
    "random_rollout",
    "random_reward",
    "path_contexts",
    "move_mass",
    "random_machine",
    "half_reward",
    "perturb",
    "reach_sets",
]

Seed = int | np.random.Generator | None


def rng_from(seed: Seed) -> np.random.Generator:
    """``seed`` itself if it is a ``numpy.random.Generator``, else ``default_rng(seed)``."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def random_rollout(
    rng: np.random.Generator, V: int, T: int, n_prompts: int = 1, temperature: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Random full-support prompt distribution and rollout logits ``(n_prompts, C, V)``."""
    p_x = rng.dirichlet(np.ones(n_prompts))
    logits = rng.normal(size=(n_prompts, n_contexts(V, T), V)) / temperature
    return p_x, logits


def random_reward(
    rng: np.random.Generator, V: int, T: int, n_prompts: int = 1, kind: str = "uniform"
) -> np.ndarray:
    """Reward ``(n_prompts, V^T)``: ``uniform`` in [0, 1] or ``binary`` in {0, 1}."""
    u = rng.random(size=(n_prompts, V**T))
    if kind == "uniform":
        return u
    if kind == "binary":
        return (u < 0.5).astype(np.float64)
    raise ValueError(f"reward: kind must be 'uniform' or 'binary', got {kind!r}")


def path_contexts(rng: np.random.Generator, V: int, T: int, k: int) -> np.ndarray:
    """Context indices of ``k`` distinct positions on one random path (sorted by position).

    Uses the context order ``ctx(t, y_<t)`` of
    :func:`trm_bounds.instances.tree.context_index`.
    """
    if not 1 <= k <= T:
        raise ValueError(f"path_contexts: need 1 <= k <= T, got k = {k}, T = {T}")
    y = rng.integers(V, size=T)
    t = np.sort(rng.choice(T, size=k, replace=False)) + 1  # positions 1..T
    offsets = (V ** (t - 1) - 1) // (V - 1)
    prefix_value = np.array([sum(int(y[s]) * V ** (tt - 2 - s) for s in range(tt - 1)) for tt in t])
    return offsets + prefix_value


def move_mass(p: np.ndarray, size: float, u: np.ndarray) -> np.ndarray:
    r"""Move total mass ``size`` from the other tokens (proportionally) to token ``u``.

    ``q = p + size (e_u - p_{-u} / (1 - p_u))``, so ``TV(p, q) = size`` exactly when
    ``size <= 1 - p_u`` (docs/theory.md §3). ``p``: ``(..., V)``, ``u``: ``(...)`` indices.
    """
    p = np.asarray(p, dtype=np.float64)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, np.asarray(u)[..., None], 1.0, axis=-1)
    pu = np.take_along_axis(p, np.asarray(u)[..., None], axis=-1)  # (..., 1)
    if np.any(size > 1.0 - pu + 1e-15):
        raise ValueError(f"move_mass: size = {float(size)!r} exceeds 1 - p_u")
    rest = p * (1.0 - onehot)
    return p + size * (onehot - rest / (1.0 - pu))


def random_machine(rng: np.random.Generator, S: int, V: int) -> np.ndarray:
    """A random deterministic update ``f (S, V)``."""
    return rng.integers(0, S, size=(S, V))


def half_reward(rng: np.random.Generator, S: int) -> np.ndarray:
    """Indicator reward of a random half of the states (at least one state rewarded)."""
    r = np.zeros(S)
    r[rng.permutation(S)[: max(1, S // 2)]] = 1.0
    return r


def perturb(pr: np.ndarray, z: np.ndarray, kl_size: float) -> np.ndarray:
    r"""``softmax(log pr + c z)`` with ``c = sqrt(2 kl / Var_pr(z))`` per row, so that the
    forward ``KL(pr || result) = kl_size + O(kl_size^{3/2})`` (second-order expansion)."""
    zc = z - (pr * z).sum(-1, keepdims=True)
    var = (pr * zc * zc).sum(-1, keepdims=True)
    c = np.sqrt(2.0 * kl_size / np.maximum(var, 1e-300))
    return softmax(np.log(pr) + c * zc)


def reach_sets(f: np.ndarray, s0: int, upto: int) -> list[np.ndarray]:
    """States reachable at positions ``t = 1..upto`` from ``s0`` under full support."""
    S = f.shape[0]
    cur = np.zeros(S, dtype=bool)
    cur[s0] = True
    out = [cur]
    for _ in range(upto - 1):
        nxt = np.zeros(S, dtype=bool)
        nxt[f[cur].ravel()] = True
        out.append(nxt)
        cur = nxt
    return out
