r"""Seeded generators of tree instances (THEORY.md sections 2 and 5; issue 3, item 3).

Every generator takes ``V``, ``T`` and a ``seed`` (an int or a ``numpy.random.Generator``)
and returns a :class:`trm_bounds.tabular.TreeInstance` whose ``meta`` records the kind
and the arguments. Rollout policies are drawn as softmax of standard normal logits (full
support), so every context is reachable and the forward KL is finite.

Kinds (the registry :data:`GENERATORS` maps each name to a function
``(rng, V, T, n_prompts) -> TreeInstance`` with randomly drawn sizes):

- ``dense``: Gaussian noise of scale ``scale`` on the logits of every context;
- ``sparse``: noise on ``k >= 2`` contexts of one path (one context alone gives Error = 0);
- ``moe_flip``: on ``k`` contexts of one path, one token has probability 0.9 under the
  rollout and 0.001 under theta (the rest rescaled), an MoE routing flip;
- ``staleness``: theta is the rollout after one exact policy-gradient step on ``L'``;
- ``adversarial``: a dense pair with the reward ``R = 1[c(x,y) > 0]`` maximising ``|Error|``;
- ``tight``: the tight instance of THEORY.md section 5;
- ``single_perturbation``: one perturbed context (Error = 0 exactly);
- ``uniform``: every context perturbed at the same total variation ``size``;
- ``sparse_divergence``: ``k`` contexts of one path perturbed at total variation ``size``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from trm_bounds.tabular import TreeInstance, error_coefficients, n_contexts

__all__ = [
    "GENERATORS",
    "policy_gradient",
    "softmax",
    "random_rollout",
    "random_reward",
    "path_contexts",
    "dense_noise",
    "sparse_perturbation",
    "moe_flip",
    "staleness",
    "adversarial_reward",
    "adversarial",
    "tight_instance",
    "single_perturbation",
    "uniform_divergence",
    "sparse_divergence",
    "move_mass",
]

Seed = int | np.random.Generator | None


def _rng(seed: Seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis (float64, max-shifted)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


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
    raise ValueError(f"reward kind must be 'uniform' or 'binary', got {kind!r}")


def path_contexts(rng: np.random.Generator, V: int, T: int, k: int) -> np.ndarray:
    """Context indices of ``k`` distinct positions on one random path (sorted by position).

    Uses the context order ``ctx(t, y_<t)`` of :func:`trm_bounds.tabular.context_index`.
    """
    if not 1 <= k <= T:
        raise ValueError(f"need 1 <= k <= T, got k = {k}, T = {T}")
    y = rng.integers(V, size=T)
    t = np.sort(rng.choice(T, size=k, replace=False)) + 1  # positions 1..T
    offsets = (V ** (t - 1) - 1) // (V - 1)
    prefix_value = np.array([sum(int(y[s]) * V ** (tt - 2 - s) for s in range(tt - 1)) for tt in t])
    return offsets + prefix_value


def _instance(
    kind: str,
    p_x: np.ndarray,
    pi_roll: np.ndarray,
    pi_theta: np.ndarray,
    reward: np.ndarray,
    **meta: Any,
) -> TreeInstance:
    seed = meta.get("seed")
    ident = f"{kind}-{seed}" if isinstance(seed, int) else kind
    return TreeInstance.from_arrays(
        p_x, pi_roll, pi_theta, reward, id=ident, meta={"kind": kind, **meta}
    )


def dense_noise(
    V: int,
    T: int,
    *,
    n_prompts: int = 1,
    scale: float = 0.3,
    reward: str = "uniform",
    seed: Seed = 0,
) -> TreeInstance:
    """Theta logits = rollout logits + ``scale * N(0, 1)`` at every context."""
    rng = _rng(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    zt = z + scale * rng.normal(size=z.shape)
    R = random_reward(rng, V, T, n_prompts, reward)
    return _instance("dense", p_x, softmax(z), softmax(zt), R, scale=scale, seed=_seed_meta(seed))


def sparse_perturbation(
    V: int,
    T: int,
    *,
    n_prompts: int = 1,
    k: int = 2,
    scale: float = 1.0,
    reward: str = "uniform",
    seed: Seed = 0,
) -> TreeInstance:
    """Logit noise ``scale * N(0,1)`` on ``k`` contexts of one path of prompt 0 (``k >= 2``)."""
    if k < 2 or T < 2:
        raise ValueError(f"sparse perturbation needs k >= 2 and T >= 2, got k = {k}, T = {T}")
    rng = _rng(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    ctx = path_contexts(rng, V, T, min(k, T))
    zt = z.copy()
    zt[0, ctx] += scale * rng.normal(size=(len(ctx), V))
    R = random_reward(rng, V, T, n_prompts, reward)
    return _instance(
        "sparse", p_x, softmax(z), softmax(zt), R, k=k, scale=scale, seed=_seed_meta(seed)
    )


def moe_flip(
    V: int,
    T: int,
    *,
    n_prompts: int = 1,
    k: int = 2,
    p_high: float = 0.9,
    p_low: float = 0.001,
    reward: str = "uniform",
    seed: Seed = 0,
) -> TreeInstance:
    """MoE-like flip: on ``k`` contexts of one path, token ``u`` has ``p_high`` under the
    rollout and ``p_low`` under theta; the other tokens keep their relative weights."""
    rng = _rng(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    pr = softmax(z)
    ctx = path_contexts(rng, V, T, min(k, T))
    u = rng.integers(V, size=len(ctx))
    rows = pr[0, ctx]  # (k, V)
    rest = rows.copy()
    rest[np.arange(len(ctx)), u] = 0.0
    rest /= rest.sum(axis=-1, keepdims=True)
    high, low = rest * (1.0 - p_high), rest * (1.0 - p_low)
    high[np.arange(len(ctx)), u] = p_high
    low[np.arange(len(ctx)), u] = p_low
    pt = pr.copy()
    pr[0, ctx] = high
    pt[0, ctx] = low
    R = random_reward(rng, V, T, n_prompts, reward)
    return _instance(
        "moe_flip", p_x, pr, pt, R, k=k, p_high=p_high, p_low=p_low, seed=_seed_meta(seed)
    )


def policy_gradient(inst: TreeInstance) -> np.ndarray:
    r"""Exact gradient of ``L'`` (= of ``J``) w.r.t. theta's logits at ``theta = roll``.

    .. math:: \partial L' / \partial z_{c,u} = d^{roll}(c)\, \pi_{roll}(u|c)\, A^{roll}(c, u)

    (THEORY.md section 2). Shape ``(n_prompts, C, V)``. Computed from
    ``G(c, u) = sum_{y extends (c,u)} P(x) P^roll(y|x) R(y)`` as
    ``G(c, u) - pi_roll(u|c) sum_v G(c, v)``.
    """
    n, V, T = inst.n_prompts, inst.V, inst.T
    lp = np.zeros((n, 1))
    for t in range(1, T + 1):
        off, size = (V ** (t - 1) - 1) // (V - 1), V ** (t - 1)
        with np.errstate(divide="ignore"):
            log_pr = np.log(inst.pi_roll[:, off : off + size])  # (n, V^(t-1), V)
        lp = (lp[:, :, None] + log_pr).reshape(n, -1)
    wR = inst.p_x[:, None] * np.exp(lp) * inst.reward  # (n, V^T)
    grad = np.empty_like(inst.pi_roll)
    for t in range(1, T + 1):
        off, size = (V ** (t - 1) - 1) // (V - 1), V ** (t - 1)
        G = wR.reshape(n, size, V, V ** (T - t)).sum(axis=-1)  # (n, V^(t-1), V)
        pr = inst.pi_roll[:, off : off + size]
        grad[:, off : off + size] = G - pr * G.sum(axis=-1, keepdims=True)
    return grad


def staleness(
    V: int,
    T: int,
    *,
    n_prompts: int = 1,
    step: float = 1.0,
    reward: str = "uniform",
    seed: Seed = 0,
) -> TreeInstance:
    """Theta = rollout after one exact policy-gradient step on the surrogate ``L'``.

    Logits ``z_theta = z_roll + step * g / max|g|`` with ``g`` from :func:`policy_gradient`
    (so the largest logit moves by ``step``); the rollout is the stale policy.
    """
    rng = _rng(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    R = random_reward(rng, V, T, n_prompts, reward)
    pr = softmax(z)
    base = TreeInstance.from_arrays(p_x, pr, pr, R)
    g = policy_gradient(base)
    gmax = np.abs(g).max()
    zt = z + (step * g / gmax if gmax > 0 else 0.0)
    return _instance("staleness", p_x, pr, softmax(zt), R, step=step, seed=_seed_meta(seed))


def adversarial_reward(inst: TreeInstance) -> TreeInstance:
    r"""The same pair with the reward maximising ``Error``: ``R = 1[c(x, y) > 0]``.

    Then ``Error = sum c^+ = 1/2 sum |c| = max_R |Error|`` (THEORY.md section 2).
    """
    c = error_coefficients(inst)
    meta = {**inst.meta, "reward": "adversarial"}
    return inst.replace(reward=(c > 0.0).astype(np.float64), meta=meta, id=inst.id + "-adv")


def adversarial(
    V: int, T: int, *, n_prompts: int = 1, scale: float = 0.5, seed: Seed = 0
) -> TreeInstance:
    """A dense-noise pair with its adversarial reward (:func:`adversarial_reward`)."""
    inst = adversarial_reward(dense_noise(V, T, n_prompts=n_prompts, scale=scale, seed=seed))
    ident = f"adversarial-{_seed_meta(seed)}"
    return inst.replace(id=ident, meta={**inst.meta, "kind": "adversarial"})


def tight_instance(eps: float = 0.1) -> TreeInstance:
    r"""The tight instance of THEORY.md section 5 (``V = T = 2``, one prompt).

    ``pi_roll = (1/2, 1/2)``, ``pi_theta = (1/2 + eps, 1/2 - eps)`` at every context,
    ``R = 1[y_1 = y_2]``. Then ``Error = 2 eps^2`` = sharp Classical-TV = sharp Coupling
    = sharp Adaptive-hybrid (published: twice that).
    """
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"eps must lie in [0, 1/2) (finite KL), got {eps!r}")
    pr = np.full((1, 3, 2), 0.5)
    pt = np.tile(np.array([0.5 + eps, 0.5 - eps]), (1, 3, 1))
    R = np.array([[1.0, 0.0, 0.0, 1.0]])  # seq(y) = 2 y_1 + y_2
    return _instance("tight", np.array([1.0]), pr, pt, R, eps=eps)


def single_perturbation(
    V: int, T: int, *, n_prompts: int = 1, scale: float = 1.0, seed: Seed = 0
) -> TreeInstance:
    """Theta differs from the rollout at exactly one context: Error = 0 (THEORY.md section 2)."""
    rng = _rng(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    pr = softmax(z)
    pt = pr.copy()
    i, c = rng.integers(n_prompts), rng.integers(n_contexts(V, T))
    pt[i, c] = softmax(z[i, c] + scale * rng.normal(size=V))
    R = random_reward(rng, V, T, n_prompts)
    return _instance(
        "single_perturbation", p_x, pr, pt, R, scale=scale, context=[int(i), int(c)],
        seed=_seed_meta(seed),
    )  # fmt: skip


def move_mass(p: np.ndarray, size: float, u: np.ndarray) -> np.ndarray:
    r"""Move total mass ``size`` from the other tokens (proportionally) to token ``u``.

    ``q = p + size (e_u - p_{-u} / (1 - p_u))``, so ``TV(p, q) = size`` exactly when
    ``size <= 1 - p_u``. ``p``: ``(..., V)``, ``u``: ``(...)`` integer indices.
    """
    p = np.asarray(p, dtype=np.float64)
    onehot = np.zeros_like(p)
    np.put_along_axis(onehot, np.asarray(u)[..., None], 1.0, axis=-1)
    pu = np.take_along_axis(p, np.asarray(u)[..., None], axis=-1)  # (..., 1)
    if np.any(size > 1.0 - pu + 1e-15):
        raise ValueError("size must not exceed 1 - p_u")
    rest = p * (1.0 - onehot)
    return p + size * (onehot - rest / (1.0 - pu))


def uniform_divergence(
    V: int, T: int, *, n_prompts: int = 1, size: float = 0.05, seed: Seed = 0
) -> TreeInstance:
    """Every context perturbed with ``TV(c) = size`` exactly (``size <= 1/2``):
    mass ``size`` moves to the token the rollout finds least likely."""
    if not 0.0 <= size <= 0.5:
        raise ValueError(f"size must lie in [0, 1/2], got {size!r}")
    rng = _rng(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    pr = softmax(z)
    pt = move_mass(pr, size, np.argmin(pr, axis=-1))
    R = random_reward(rng, V, T, n_prompts)
    return _instance("uniform", p_x, pr, pt, R, size=size, seed=_seed_meta(seed))


def sparse_divergence(
    V: int, T: int, *, n_prompts: int = 1, k: int = 2, size: float = 0.2, seed: Seed = 0
) -> TreeInstance:
    """``k`` contexts on one path of prompt 0 perturbed with ``TV(c) = size`` (``<= 1/2``)."""
    if not 0.0 <= size <= 0.5:
        raise ValueError(f"size must lie in [0, 1/2], got {size!r}")
    rng = _rng(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    pr = softmax(z)
    pt = pr.copy()
    ctx = path_contexts(rng, V, T, min(k, T))
    pt[0, ctx] = move_mass(pr[0, ctx], size, np.argmin(pr[0, ctx], axis=-1))
    R = random_reward(rng, V, T, n_prompts)
    return _instance("sparse_divergence", p_x, pr, pt, R, k=k, size=size, seed=_seed_meta(seed))


def _seed_meta(seed: Seed) -> int | None:
    return seed if isinstance(seed, int) else None


def _draw(seed: int) -> np.random.Generator:
    """Generator for the registry's size draws (independent of the instance's own stream)."""
    return np.random.default_rng([seed, 1])


# Registry: kind -> (seed, V, T, n_prompts) -> instance; sizes drawn from the seed.
GENERATORS: dict[str, Callable[[int, int, int, int], TreeInstance]] = {
    "dense": lambda seed, V, T, n: dense_noise(
        V, T, n_prompts=n, scale=float(_draw(seed).choice([0.01, 0.1, 0.5, 2.0])), seed=seed,
        reward=str(_draw(seed).choice(["uniform", "binary"])),
    ),
    "sparse": lambda seed, V, T, n: sparse_perturbation(
        V, max(T, 2), n_prompts=n, k=int(_draw(seed).integers(2, max(T, 2) + 1)),
        scale=float(_draw(seed).choice([0.1, 1.0, 3.0])), seed=seed,
    ),
    "moe_flip": lambda seed, V, T, n: moe_flip(
        V, T, n_prompts=n, k=int(_draw(seed).integers(1, T + 1)), seed=seed
    ),
    "staleness": lambda seed, V, T, n: staleness(
        V, T, n_prompts=n, step=float(_draw(seed).choice([0.1, 1.0, 5.0])), seed=seed
    ),
    "adversarial": lambda seed, V, T, n: adversarial(
        V, T, n_prompts=n, scale=float(_draw(seed).choice([0.05, 0.5, 2.0])), seed=seed
    ),
    "tight": lambda seed, V, T, n: tight_instance(float(_draw(seed).uniform(0.0, 0.5))),
    "single_perturbation": lambda seed, V, T, n: single_perturbation(
        V, T, n_prompts=n, scale=float(_draw(seed).choice([0.1, 1.0, 3.0])), seed=seed
    ),
    "uniform": lambda seed, V, T, n: uniform_divergence(
        V, T, n_prompts=n, size=float(_draw(seed).uniform(0.0, 0.5)), seed=seed
    ),
    "sparse_divergence": lambda seed, V, T, n: sparse_divergence(
        V, T, n_prompts=n, k=int(_draw(seed).integers(1, T + 1)),
        size=float(_draw(seed).uniform(0.0, 0.5)), seed=seed,
    ),
}  # fmt: skip
