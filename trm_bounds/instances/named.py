r"""The named instances: one family, each built as a tree or as a finite-state instance.

Every named instance is one function with one signature style: the sizes ``V, T``
positional, everything else keyword-only, ``seed`` an int or a ``numpy.random.Generator``,
and ``form`` choosing what is built:

- ``form="tree"`` (default): a :class:`~trm_bounds.instances.tree.TreeInstance` (every
  context of a depth-``T`` tree; ``n_prompts`` prompts; exact engine
  :mod:`trm_bounds.engines.tree`);
- ``form="finite_state"``: a :class:`~trm_bounds.instances.finite.FiniteStateInstance`
  (``S`` states; exact for ``T = 10^5`` with :mod:`trm_bounds.engines.dp`).

The two forms of one name describe the same situation (docs/theory.md §2, §4, §5); their
random draws differ, and each keeps the numbers it has always generated for a seed.
Parameters marked *tree* or *finite-state* are used by that form only.

=======================  ==================================================  =============
name                     situation                                           forms
=======================  ==================================================  =============
``tight_instance``       the tight instance of §5, ``Error = 2 eps^2``       both
``single_perturbation``  one perturbed context, ``Error = 0`` (§2)           tree
``dense_noise``          logit noise at every context                        both
``sparse_perturbation``  logit noise on ``k >= 2`` contexts of one path      tree
``moe_flip``             one token 0.9 -> 0.001 on ``k`` contexts            both
``uniform_divergence``   every context perturbed at one size (§4)            both
``sparse_divergence``    ``k`` contexts of one path perturbed (§4)           both
``staleness``            theta = roll after one policy-gradient step         both
``adversarial``          dense noise with the reward maximising ``Error``    tree
``random_walk``          slowly mixing walk, uniform or sparse tilt          both
=======================  ==================================================  =============
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_bounds.divergences import softmax
from trm_bounds.engines.dp import dp_exact
from trm_bounds.engines.tree import adversarial_reward, policy_gradient
from trm_bounds.instances.finite import FiniteStateInstance, to_tree_instance
from trm_bounds.instances.random import (
    Seed,
    half_reward,
    move_mass,
    path_contexts,
    perturb,
    random_machine,
    random_reward,
    random_rollout,
    reach_sets,
    rng_from,
)
from trm_bounds.instances.tree import TreeInstance, n_contexts

__all__ = [
    "FORMS",
    "tight_instance",
    "single_perturbation",
    "dense_noise",
    "sparse_perturbation",
    "moe_flip",
    "uniform_divergence",
    "sparse_divergence",
    "staleness",
    "adversarial",
    "random_walk",
]

#: The forms a named instance can be built in.
FORMS = ("tree", "finite_state")

Instance = TreeInstance | FiniteStateInstance


def _check_form(name: str, form: str, allowed: tuple[str, ...] = FORMS) -> None:
    if form not in allowed:
        raise ValueError(f"{name}: form must be one of {allowed}, got {form!r}")


def _seed_meta(seed: Seed) -> int | None:
    return seed if isinstance(seed, int) else None


def _tree(kind: str, p_x: np.ndarray, pr: np.ndarray, pt: np.ndarray, R: np.ndarray,
          **meta: Any) -> TreeInstance:  # fmt: skip
    seed = meta.get("seed")
    ident = f"{kind}-{seed}" if isinstance(seed, int) else kind
    return TreeInstance.from_arrays(p_x, pr, pt, R, id=ident, meta={"kind": kind, **meta})


def tight_instance(eps: float = 0.1, *, form: str = "tree") -> Instance:
    r"""The tight instance of docs/theory.md §5: ``Error = 2 eps^2`` exactly.

    ``V = T = 2``, one prompt, ``pi_roll = (1/2, 1/2)``, ``pi_theta = (1/2 + eps, 1/2 - eps)``
    at every context, ``R = 1[y_1 = y_2]``.  ``Error`` = sharp Classical-TV = sharp Coupling
    = sharp Adaptive-hybrid (published: twice that).  Tree: ``eps`` in ``[0, 1/2)`` (finite
    KL).  Finite-state: states 0 start, ``1 + y_1`` after one token, 3 (equal) or 4
    (different) after two; ``eps`` in ``[0, 1/2]``.
    """
    _check_form("tight_instance", form)
    if form == "finite_state":
        if not 0 <= eps <= 0.5:
            raise ValueError(f"tight_instance: eps = {float(eps)!r} is outside [0, 1/2]")
        f = np.array([[1, 2], [3, 4], [4, 3], [3, 3], [4, 4]])
        pr = np.full((2, 5, 2), 0.5)
        pt = np.broadcast_to(np.array([0.5 + eps, 0.5 - eps]), (2, 5, 2)).copy()
        r = np.array([0.0, 0.0, 0.0, 1.0, 0.0])
        return FiniteStateInstance(
            np.eye(5)[0], f, pr, pt, r, name=f"tight(eps={eps})", meta={"kind": "tight"}
        )
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"tight_instance: eps = {float(eps)!r} is outside [0, 1/2) (finite KL)")
    pr = np.full((1, 3, 2), 0.5)
    pt = np.tile(np.array([0.5 + eps, 0.5 - eps]), (1, 3, 1))
    R = np.array([[1.0, 0.0, 0.0, 1.0]])  # seq(y) = 2 y_1 + y_2
    return _tree("tight", np.array([1.0]), pr, pt, R, eps=eps)


def single_perturbation(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, scale: float = 1.0, seed: Seed = 0
) -> TreeInstance:
    """Theta differs from the rollout at exactly one context: ``Error = 0`` (§2). Tree only."""
    _check_form("single_perturbation", form, ("tree",))
    rng = rng_from(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    pr = softmax(z)
    pt = pr.copy()
    i, c = rng.integers(n_prompts), rng.integers(n_contexts(V, T))
    pt[i, c] = softmax(z[i, c] + scale * rng.normal(size=V))
    R = random_reward(rng, V, T, n_prompts)
    return _tree(
        "single_perturbation", p_x, pr, pt, R, scale=scale, context=[int(i), int(c)],
        seed=_seed_meta(seed),
    )  # fmt: skip


def dense_noise(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, scale: float = 0.3,
    reward: str = "uniform", S: int = 4, p_zero: float = 0.0, seed: Seed = 0,
) -> Instance:  # fmt: skip
    """Theta logits = rollout logits + ``scale * N(0, 1)`` at every context.

    Tree: ``n_prompts`` prompts, ``reward`` ``"uniform"`` or ``"binary"``.  Finite-state:
    a random machine of ``S`` states, random initial distribution and reward in ``[0, 1]``;
    with ``p_zero > 0`` each token is removed from both policies with that probability
    (never a whole row), exercising zero-probability tokens while keeping ``theta << roll``.
    """
    _check_form("dense_noise", form)
    rng = rng_from(seed)
    if form == "finite_state":
        f = random_machine(rng, S, V)
        z = rng.normal(size=(T, S, V))
        zt = z + scale * rng.normal(size=(T, S, V))
        drop = rng.random((T, S, V)) < p_zero
        drop[..., 0] &= ~drop.all(-1)  # keep at least one token per row
        z, zt = np.where(drop, -np.inf, z), np.where(drop, -np.inf, zt)
        p0 = rng.dirichlet(np.ones(S))
        return FiniteStateInstance(
            p0, f, softmax(z), softmax(zt), rng.random(S), name=f"dense_noise(T={T},seed={seed})",
            meta={"kind": "dense_noise", "sigma": scale, "p_zero": p_zero, "seed": seed},
        )  # fmt: skip
    p_x, z = random_rollout(rng, V, T, n_prompts)
    zt = z + scale * rng.normal(size=z.shape)
    R = random_reward(rng, V, T, n_prompts, reward)
    return _tree("dense", p_x, softmax(z), softmax(zt), R, scale=scale, seed=_seed_meta(seed))


def sparse_perturbation(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, k: int = 2, scale: float = 1.0,
    reward: str = "uniform", seed: Seed = 0,
) -> TreeInstance:  # fmt: skip
    """Logit noise ``scale * N(0,1)`` on ``k >= 2`` contexts of one path of prompt 0. Tree only.

    (One perturbed context alone gives ``Error = 0``.)
    """
    _check_form("sparse_perturbation", form, ("tree",))
    if k < 2 or T < 2:
        raise ValueError(f"sparse_perturbation: needs k >= 2 and T >= 2, got k = {k}, T = {T}")
    rng = rng_from(seed)
    p_x, z = random_rollout(rng, V, T, n_prompts)
    ctx = path_contexts(rng, V, T, min(k, T))
    zt = z.copy()
    zt[0, ctx] += scale * rng.normal(size=(len(ctx), V))
    R = random_reward(rng, V, T, n_prompts, reward)
    return _tree(
        "sparse", p_x, softmax(z), softmax(zt), R, k=k, scale=scale, seed=_seed_meta(seed)
    )


def moe_flip(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, k: int = 2, p_high: float = 0.9,
    p_low: float = 0.001, reward: str = "uniform", S: int = 6, seed: Seed = 0,
) -> Instance:  # fmt: skip
    """MoE-like routing flip: on ``k`` contexts one token has ``p_high`` under the rollout and
    ``p_low`` under theta, the other tokens keeping their relative weights.

    Tree: the ``k`` contexts lie on one random path of prompt 0.  Finite-state: elsewhere
    both policies are equal (random); the first two flips lie on one path (positions 1 and 2,
    needs ``T >= 2``), further flips at random reachable ``(t, s)``; the rest of a flipped
    row is a Dirichlet draw.
    """
    _check_form("moe_flip", form)
    rng = rng_from(seed)
    if form == "finite_state":
        f = random_machine(rng, S, V)
        pr = softmax(rng.normal(size=(T, S, V)))
        pt = pr.copy()
        sets = reach_sets(f, 0, T)
        chosen = [(1, 0)]
        if T >= 2 and k >= 2:
            chosen.append((2, int(f[0, rng.integers(V)])))
        cand = [(t + 1, int(s)) for t in range(T) for s in np.flatnonzero(sets[t])]
        cand = [c for c in cand if c not in chosen]
        for i in rng.permutation(len(cand))[: max(0, k - len(chosen))]:
            chosen.append(cand[i])
        for t, s in chosen:
            top = rng.integers(V)
            rest = rng.dirichlet(np.ones(V - 1))
            row_r, row_t = np.empty(V), np.empty(V)
            row_r[top], row_t[top] = p_high, p_low
            row_r[np.arange(V) != top] = (1.0 - p_high) * rest
            row_t[np.arange(V) != top] = (1.0 - p_low) * rest
            pr[t - 1, s], pt[t - 1, s] = row_r, row_t
        return FiniteStateInstance(
            np.eye(S)[0], f, pr, pt, half_reward(rng, S), name=f"moe_flip(T={T},seed={seed})",
            meta={"kind": "moe_flip", "flips": chosen, "seed": seed},
        )  # fmt: skip
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
    return _tree(
        "moe_flip", p_x, pr, pt, R, k=k, p_high=p_high, p_low=p_low, seed=_seed_meta(seed)
    )


def uniform_divergence(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, size: float = 0.05,
    S: int = 8, delta: float = 1e-4, time_homogeneous: bool = True, seed: Seed = 0,
) -> Instance:  # fmt: skip
    """Every context perturbed at one size (the regime ``D_KL^seq ~ T delta`` of §4).

    Tree: ``TV(c) = size`` exactly (``size <= 1/2``): mass ``size`` moves to the token the
    rollout finds least likely.  Finite-state: rollout logits standard normal, theta tilted
    along a random direction so that each forward ``KL(t, s) = delta`` to second order; one
    initial state, reward a random half of the states; ``time_homogeneous`` stores one
    ``(S, V)`` table broadcast over ``t`` (memory ``O(S V)`` for any ``T``).
    """
    _check_form("uniform_divergence", form)
    rng = rng_from(seed)
    if form == "finite_state":
        f = random_machine(rng, S, V)
        reward = half_reward(rng, S)  # drawn first: the same for every T at a given seed
        shape = (1 if time_homogeneous else T, S, V)
        pr = softmax(rng.normal(size=shape))
        pt = perturb(pr, rng.normal(size=shape), delta)
        if time_homogeneous:
            pr, pt = np.broadcast_to(pr, (T, S, V)), np.broadcast_to(pt, (T, S, V))
        return FiniteStateInstance(
            np.eye(S)[0], f, pr, pt, reward, name=f"uniform(T={T},seed={seed})",
            meta={"kind": "uniform", "delta_target": delta, "seed": seed},
        )  # fmt: skip
    if not 0.0 <= size <= 0.5:
        raise ValueError(f"uniform_divergence: size = {float(size)!r} is outside [0, 1/2]")
    p_x, z = random_rollout(rng, V, T, n_prompts)
    pr = softmax(z)
    pt = move_mass(pr, size, np.argmin(pr, axis=-1))
    R = random_reward(rng, V, T, n_prompts)
    return _tree("uniform", p_x, pr, pt, R, size=size, seed=_seed_meta(seed))


def sparse_divergence(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, k: int = 2, size: float = 0.2,
    S: int = 8, kl_size: float = 0.05, at: str = "end", seed: Seed = 0,
) -> Instance:  # fmt: skip
    """``k`` contexts perturbed, the rest identical: ``D_KL^seq`` stays bounded as ``T`` grows
    (the regime of the O(T) Mixed bounds, §4).

    Tree: ``k`` contexts on one path of prompt 0 with ``TV(c) = size`` (``<= 1/2``).
    Finite-state: the contexts sit on reachable paths at the last (``at="end"``) or first
    (``at="start"``) two positions, the first two on one path; each has forward KL
    ``kl_size`` to second order; needs ``T >= 2`` when ``k >= 2``.
    """
    _check_form("sparse_divergence", form)
    rng = rng_from(seed)
    if form == "finite_state":
        f = random_machine(rng, S, V)
        reward = half_reward(rng, S)  # drawn first: the same for every T at a given seed
        pr1 = softmax(rng.normal(size=(S, V)))
        pr = np.broadcast_to(pr1, (T, S, V))
        pt = np.array(pr)
        times = [T - 1, T] if at == "end" else [1, 2]
        times = [t for t in times if t >= 1][: max(1, min(2, k))]
        sets = reach_sets(f, 0, max(times))
        first = int(rng.choice(np.flatnonzero(sets[times[0] - 1])))
        chosen = [(times[0], first)]
        if len(times) > 1:
            chosen.append((times[1], int(f[first, rng.integers(V)])))
        cand = [(t, int(s)) for t in times for s in np.flatnonzero(sets[t - 1])]
        cand = [c for c in cand if c not in chosen]
        for i in rng.permutation(len(cand))[: max(0, k - len(chosen))]:
            chosen.append(cand[i])
        for t, s in chosen:
            pt[t - 1, s] = perturb(pr1[s], rng.normal(size=V), kl_size)
        return FiniteStateInstance(
            np.eye(S)[0], f, pr, pt, reward, name=f"sparse(T={T},seed={seed})",
            meta={"kind": "sparse", "contexts": chosen, "kl_size": kl_size, "seed": seed},
        )  # fmt: skip
    if not 0.0 <= size <= 0.5:
        raise ValueError(f"sparse_divergence: size = {float(size)!r} is outside [0, 1/2]")
    p_x, z = random_rollout(rng, V, T, n_prompts)
    pr = softmax(z)
    pt = pr.copy()
    ctx = path_contexts(rng, V, T, min(k, T))
    pt[0, ctx] = move_mass(pr[0, ctx], size, np.argmin(pr[0, ctx], axis=-1))
    R = random_reward(rng, V, T, n_prompts)
    return _tree("sparse_divergence", p_x, pr, pt, R, k=k, size=size, seed=_seed_meta(seed))


def staleness(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, step: float = 1.0,
    reward: str = "uniform", S: int = 6, lr: float = 1.0, seed: Seed = 0,
) -> Instance:  # fmt: skip
    r"""Theta = the stale rollout after one exact policy-gradient step on the logits (§2).

    Tree: ``z_theta = z_roll + step g / max|g|`` with ``g`` the exact gradient of ``L'``
    (:func:`trm_bounds.engines.tree.policy_gradient`), so the largest logit moves by ``step``.
    Finite-state: ``z_theta(t,s,v) = z + lr d_t^roll(s) pi_roll(v|t,s) A_t^roll(s,v)`` from
    the DP (:func:`trm_bounds.engines.dp.dp_exact`); uniform initial states, reward a random
    half of the states.
    """
    _check_form("staleness", form)
    rng = rng_from(seed)
    if form == "finite_state":
        f = random_machine(rng, S, V)
        z = rng.normal(size=(T, S, V))
        pr = softmax(z)
        p0 = np.full(S, 1.0 / S)
        r = half_reward(rng, S)
        base = dp_exact(FiniteStateInstance(p0, f, pr, pr, r, name="staleness-base"))
        Q = base.value[1:][:, f]  # (T, S, V)
        adv = Q - base.value[:-1][:, :, None]
        grad = base.d_roll[:T, :, None] * pr * adv
        return FiniteStateInstance(
            p0, f, pr, softmax(z + lr * grad), r, name=f"staleness(T={T},lr={lr},seed={seed})",
            meta={"kind": "staleness", "lr": lr, "seed": seed},
        )  # fmt: skip
    p_x, z = random_rollout(rng, V, T, n_prompts)
    R = random_reward(rng, V, T, n_prompts, reward)
    pr = softmax(z)
    g = policy_gradient(TreeInstance.from_arrays(p_x, pr, pr, R))
    gmax = np.abs(g).max()
    zt = z + (step * g / gmax if gmax > 0 else 0.0)
    return _tree("staleness", p_x, pr, softmax(zt), R, step=step, seed=_seed_meta(seed))


def adversarial(
    V: int, T: int, *, form: str = "tree", n_prompts: int = 1, scale: float = 0.5, seed: Seed = 0
) -> TreeInstance:
    """A dense-noise pair with the reward ``R = 1[c(x, y) > 0]`` maximising ``Error`` (§2).

    Tree only (for a finite-state instance see :func:`trm_bounds.engines.dp.adversarial_reward`).
    """
    _check_form("adversarial", form, ("tree",))
    inst = adversarial_reward(dense_noise(V, T, n_prompts=n_prompts, scale=scale, seed=seed))
    ident = f"adversarial-{_seed_meta(seed)}"
    return inst.replace(id=ident, meta={**inst.meta, "kind": "adversarial"})


def random_walk(
    T: int, *, form: str = "tree", S: int = 128, delta: float = 1e-4, k: int | None = None,
    offset: int = 4,
) -> Instance:  # fmt: skip
    r"""A slowly mixing machine: reflecting random walk on ``0..S-1`` with a drift tilt.

    ``V = 2`` (token 0 steps down, token 1 up, clipped at the ends), start ``S // 2``,
    ``pi_roll = (1/2, 1/2)``; at perturbed contexts ``pi_theta = (1/2 - e, 1/2 + e)`` with
    ``e = sqrt(-expm1(-2 delta)) / 2``, so that the forward ``KL = -1/2 log(1 - 4 e^2)``
    equals ``delta`` exactly.  ``k = None`` perturbs every ``(t, s)`` (uniform divergence); an
    integer perturbs ``(t, S//2 + t - 1)``, ``t = 1..k``, which lie on one path (sparse
    divergence, ``D_KL^seq`` fixed once ``T >= k``).  Reward ``1[s_{T+1} >= S//2 + offset]``.
    The walk forgets its start only after about ``S^2`` steps, so the perturbations' effects
    accumulate over ``T``.  Built as a finite-state instance; ``form="tree"`` expands it
    (:func:`~trm_bounds.instances.finite.to_tree_instance`, small ``T`` only).
    """
    _check_form("random_walk", form)
    f = np.stack([np.maximum(np.arange(S) - 1, 0), np.minimum(np.arange(S) + 1, S - 1)], axis=1)
    e = np.sqrt(-np.expm1(-2.0 * delta)) / 2.0
    tilt = np.array([0.5 - e, 0.5 + e])
    pr = np.broadcast_to(np.array([0.5, 0.5]), (T, S, 2))
    if k is None:
        pt = np.broadcast_to(tilt, (T, S, 2))
    else:
        pt = np.array(pr)
        for t in range(1, min(T, k) + 1):
            pt[t - 1, min(S - 1, S // 2 + t - 1)] = tilt
    r = (np.arange(S) >= S // 2 + offset).astype(np.float64)
    kind = "walk_uniform" if k is None else "walk_sparse"
    inst = FiniteStateInstance(
        np.eye(S)[S // 2], f, pr, pt, r, name=f"{kind}(T={T},S={S})",
        meta={"kind": kind, "delta": delta, "n_contexts": k, "offset": offset},
    )  # fmt: skip
    return to_tree_instance(inst) if form == "tree" else inst
