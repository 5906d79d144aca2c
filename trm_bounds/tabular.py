r"""Exact surrogate error on tabular autoregressive trees (THEORY.md sections 1-3).

A *tree instance* lists, for every prompt ``x`` and every context ``c_t = (x, y_<t)``,
the next-token distributions of both policies, and a reward for every full response.
Everything of THEORY.md sections 1-3 is then computed exactly, by enumerating all
``V^T`` responses per prompt (vectorised: sequence log-probabilities are built level by
level by broadcasting; the only Python loop is over the position ``t``).

Layout (the exchange schema ``trm-oracle-instances/v1``):

- ``p_x``: ``(n_prompts,)``, a distribution over prompts;
- ``pi_roll``, ``pi_theta``: ``(n_prompts, C, V)`` with ``C = (V^T - 1)/(V - 1)`` contexts,
  ordered by position, then by the prefix read in base ``V`` (``y_1`` most significant):
  ``ctx(t, y_<t) = (V^(t-1) - 1)/(V - 1) + sum_{s<t} y_s V^(t-1-s)``;
- ``reward``: ``(n_prompts, V^T)`` in ``[0, 1]``, indexed by ``seq(y) = sum_t y_t V^(T-t)``.

The centred surrogate ``L'`` (THEORY.md section 2) needs ``rho_t`` on every sequence the
rollout policy samples, so the engine requires ``pi_theta(v|c) = 0`` wherever
``pi_roll(v|c) = 0`` at contexts the rollout policy reaches (``theta << roll``).
All KL divergences are forward, rollout first, in nats.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from trm_bounds.divergences import kl, kl_from_logprobs, tv
from trm_bounds.results import atomic_write_text, to_jsonable

__all__ = [
    "SCHEMA",
    "REPORT_KEYS",
    "ROW_SUM_TOL",
    "InstanceFormatError",
    "TreeInstance",
    "validate_instance",
    "n_contexts",
    "context_index",
    "sequence_index",
    "error_coefficients",
    "surrogate_with_baseline",
    "exact_report",
    "load_instances",
    "write_instances",
    "compare_reports",
    "format_report",
    "main",
]

#: Schema string of the exchange format (THEORY.md sections 1-3 quantities).
SCHEMA = "trm-oracle-instances/v1"

#: The keys :func:`exact_report` always returns (issue 3, item 4).
REPORT_KEYS = (
    "J_roll",
    "J_theta",
    "L_prime",
    "error",
    "error_identity",
    "error_max_over_rewards",
    "eps",
    "delta",
    "Dbar",
    "D_KL_seq",
    "D_TV_seq",
    "bounds_published",
    "bounds_sharp",
)

#: Largest allowed ``|sum_v pi(v|c) - 1|`` and ``|sum_x P(x) - 1|`` in an instance.
ROW_SUM_TOL = 1e-9

#: Relative tolerance (with absolute floor :data:`EXPECTED_ATOL`) for ``expected`` values.
EXPECTED_RTOL = 1e-9
EXPECTED_ATOL = 1e-12


class InstanceFormatError(ValueError):
    """A tree instance (or an instances file) is malformed; the message names the field."""


def n_contexts(V: int, T: int) -> int:
    """Number of contexts per prompt, ``C = sum_{t=1..T} V^(t-1) = (V^T - 1)/(V - 1)``."""
    return (V**T - 1) // (V - 1)


def context_index(prefix: ArrayLike, V: int) -> int:
    r"""Index of the context ``c_t = (x, y_<t)`` inside one prompt's context table.

    .. math:: \mathrm{ctx}(t, y_{<t}) = \frac{V^{t-1}-1}{V-1} + \sum_{s<t} y_s V^{t-1-s}

    with ``t = len(prefix) + 1``.

    >>> context_index([], 2), context_index([0], 2), context_index([1, 0], 2)
    (0, 1, 5)
    """
    prefix = [int(v) for v in prefix]
    t = len(prefix) + 1
    offset = (V ** (t - 1) - 1) // (V - 1)
    return offset + sum(y * V ** (t - 2 - s) for s, y in enumerate(prefix))


def sequence_index(y: ArrayLike, V: int) -> int:
    r"""Index of the response ``y = (y_1..y_T)``: ``seq(y) = sum_t y_t V^(T-t)``.

    >>> sequence_index([1, 0, 1], 2)
    5
    """
    y = [int(v) for v in y]
    T = len(y)
    return sum(v * V ** (T - 1 - s) for s, v in enumerate(y))


@dataclass(eq=False)
class TreeInstance:
    r"""A pair of tabular policies on a depth-``T`` tree, with prompts and a reward.

    Build one from numpy arrays with :meth:`from_arrays` (``V``, ``T``, ``n_prompts`` are
    inferred from the shapes), or pass every field; the constructor converts to float64
    and validates (raising :class:`InstanceFormatError` naming the field and position).

    Fields (shapes, THEORY.md section 1):

    - ``id``: a name;
    - ``V``: vocabulary size (``>= 2``); ``T``: horizon (``>= 1``);
    - ``n_prompts``: number of prompts;
    - ``p_x``: ``(n_prompts,)`` prompt distribution ``P(x)``;
    - ``pi_roll``, ``pi_theta``: ``(n_prompts, C, V)`` next-token distributions,
      ``C = (V^T-1)/(V-1)``, context order of :func:`context_index`;
    - ``reward``: ``(n_prompts, V^T)`` in ``[0, 1]``, order of :func:`sequence_index`;
    - ``meta``: free metadata (generator kind, seed, ...), written as extra keys.

    >>> inst = TreeInstance.from_arrays(
    ...     p_x=[1.0], pi_roll=np.full((1, 3, 2), 0.5), pi_theta=np.full((1, 3, 2), 0.5),
    ...     reward=[[1.0, 0.0, 0.0, 1.0]], id="equal")
    >>> inst.V, inst.T, inst.n_prompts
    (2, 2, 1)
    """

    id: str
    V: int
    T: int
    n_prompts: int
    p_x: np.ndarray
    pi_roll: np.ndarray
    pi_theta: np.ndarray
    reward: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.id = str(self.id)
        self.p_x = np.asarray(self.p_x, dtype=np.float64)
        self.pi_roll = np.asarray(self.pi_roll, dtype=np.float64)
        self.pi_theta = np.asarray(self.pi_theta, dtype=np.float64)
        self.reward = np.asarray(self.reward, dtype=np.float64)
        validate_instance(self)

    @classmethod
    def from_arrays(
        cls,
        p_x: ArrayLike,
        pi_roll: ArrayLike,
        pi_theta: ArrayLike,
        reward: ArrayLike,
        *,
        id: str = "instance",
        meta: dict[str, Any] | None = None,
    ) -> TreeInstance:
        """Build an instance from arrays; ``V``, ``T`` and ``n_prompts`` come from the shapes.

        ``V = pi_roll.shape[-1]``, ``T`` such that ``reward.shape[-1] == V^T``.
        """
        pi_roll = np.asarray(pi_roll, dtype=np.float64)
        reward = np.asarray(reward, dtype=np.float64)
        p_x = np.asarray(p_x, dtype=np.float64)
        if pi_roll.ndim != 3 or reward.ndim != 2 or p_x.ndim != 1:
            raise InstanceFormatError(
                f"instance {id!r}: expected p_x (n,), pi_roll (n, C, V), reward (n, V^T); "
                f"got shapes {p_x.shape}, {pi_roll.shape}, {reward.shape}"
            )
        V = int(pi_roll.shape[-1])
        if V < 2:
            raise InstanceFormatError(f"instance {id!r}: field 'pi_roll': V = {V} < 2")
        T = 1
        while V**T < reward.shape[-1]:
            T += 1
        return cls(
            id=id,
            V=V,
            T=T,
            n_prompts=int(p_x.shape[0]),
            p_x=p_x,
            pi_roll=pi_roll,
            pi_theta=pi_theta,
            reward=reward,
            meta=dict(meta or {}),
        )

    @property
    def n_contexts(self) -> int:
        """Contexts per prompt, ``C = (V^T - 1)/(V - 1)``."""
        return n_contexts(self.V, self.T)

    @property
    def n_sequences(self) -> int:
        """Responses per prompt, ``V^T``."""
        return self.V**self.T

    def replace(self, **changes: Any) -> TreeInstance:
        """A copy with some fields replaced (validated again)."""
        fields = dict(
            id=self.id,
            V=self.V,
            T=self.T,
            n_prompts=self.n_prompts,
            p_x=self.p_x,
            pi_roll=self.pi_roll,
            pi_theta=self.pi_theta,
            reward=self.reward,
            meta=dict(self.meta),
        )
        fields.update(changes)
        return TreeInstance(**fields)


def _first_bad(mask: np.ndarray) -> str:
    """Position ``[i, j, ...]`` of the first True entry of ``mask``."""
    idx = np.argwhere(mask)[0]
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def validate_instance(inst: TreeInstance, where: str = "") -> None:
    """Check shapes, distributions and reward range; raise :class:`InstanceFormatError`.

    ``where`` prefixes the message (e.g. ``"file.json: instance 3 (id 'a')"``).
    """
    where = where or f"instance {inst.id!r}"

    def fail(name: str, msg: str) -> None:
        raise InstanceFormatError(f"{where}: field {name!r}: {msg}")

    for name in ("V", "T", "n_prompts"):
        value = getattr(inst, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            fail(name, f"must be an integer, got {value!r}")
    if inst.V < 2:
        fail("V", f"must be >= 2, got {inst.V}")
    if inst.T < 1:
        fail("T", f"must be >= 1, got {inst.T}")
    if inst.n_prompts < 1:
        fail("n_prompts", f"must be >= 1, got {inst.n_prompts}")
    n, C, V, S = inst.n_prompts, n_contexts(inst.V, inst.T), inst.V, inst.V**inst.T
    expected = {
        "p_x": (n,),
        "pi_roll": (n, C, V),
        "pi_theta": (n, C, V),
        "reward": (n, S),
    }
    for name, shape in expected.items():
        arr = getattr(inst, name)
        if arr.shape != shape:
            fail(name, f"shape {arr.shape}, expected {shape} (n_prompts, C=(V^T-1)/(V-1), V)")
        bad = ~np.isfinite(arr)
        if bad.any():
            fail(name, f"non-finite entry at {_first_bad(bad)}")
        bad = arr < 0
        if bad.any() and name == "reward":
            fail(name, f"entry {float(arr[tuple(np.argwhere(bad)[0])])!r} at {_first_bad(bad)} "
                 "outside [0, 1]")  # fmt: skip
        if bad.any():
            fail(
                name,
                f"negative entry {float(arr[tuple(np.argwhere(bad)[0])])!r} at {_first_bad(bad)}",
            )
    if abs(inst.p_x.sum() - 1.0) > ROW_SUM_TOL:
        fail(
            "p_x",
            f"sums to {float(inst.p_x.sum())!r}, not a distribution (tolerance {ROW_SUM_TOL})",
        )
    for name in ("pi_roll", "pi_theta"):
        sums = getattr(inst, name).sum(axis=-1)
        bad = np.abs(sums - 1.0) > ROW_SUM_TOL
        if bad.any():
            pos = tuple(np.argwhere(bad)[0])
            fail(
                name,
                f"row {_first_bad(bad)} sums to {float(sums[pos])!r}, not 1 (tol {ROW_SUM_TOL})",
            )
    bad = inst.reward > 1.0
    if bad.any():
        fail("reward", f"entry {float(inst.reward[tuple(np.argwhere(bad)[0])])!r} at "
             f"{_first_bad(bad)} outside [0, 1]")  # fmt: skip


# --------------------------------------------------------------------------------------
# Exact computation
# --------------------------------------------------------------------------------------


@dataclass
class _Exact:
    """Per-sequence and per-context arrays of one instance (internal)."""

    w_roll: np.ndarray  # (n, V^T)  P(x) P^roll(y|x)
    w_theta: np.ndarray  # (n, V^T) P(x) P^theta(y|x)
    lp_roll: np.ndarray  # (n, V^T) log P^roll(y|x)
    lp_theta: np.ndarray  # (n, V^T) log P^theta(y|x)
    sum_rho_m1: np.ndarray  # (n, V^T) sum_t (rho_t - 1)
    telescoped: np.ndarray  # (n, V^T) sum_t (rho_t - 1)(1 - prod_{j>t} rho_j)
    log_rho_total: np.ndarray  # (n, V^T) sum_t log rho_t
    tv_c: np.ndarray  # (n, C) TV(c)
    kl_c: np.ndarray  # (n, C) KL(c)
    reach: np.ndarray  # (n, C) bool, reached by either policy
    dbar: np.ndarray  # (T,) Dbar_t
    dkl_t: np.ndarray  # (T,) E_{d_t^roll} KL(c_t)


def _exact(inst: TreeInstance) -> _Exact:
    """Enumerate all ``V^T`` responses per prompt (THEORY.md sections 1-3), level by level."""
    n, V, T = inst.n_prompts, inst.V, inst.T
    p_x = inst.p_x
    pr, pt = inst.pi_roll, inst.pi_theta
    tv_c = tv(pr, pt)  # (n, C)
    kl_c = kl(pr, pt)  # (n, C), forward, rollout first
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pr = np.log(pr)  # (n, C, V)
        log_pt = np.log(pt)  # (n, C, V)
        # rho = 1 where roll puts no mass (then theta puts none either, checked below)
        log_rho = np.where(pr > 0.0, log_pt - log_pr, 0.0)  # (n, C, V)
    reach = np.zeros((n, inst.n_contexts), dtype=bool)
    dbar = np.empty(T)
    dkl_t = np.empty(T)
    lp_r = np.zeros((n, 1))  # log P^roll(prefix | x), (n, V^(t-1))
    lp_t = np.zeros((n, 1))
    levels = []  # log rho of (prefix, y_t), (n, V^t) per t
    for t in range(1, T + 1):
        off, size = (V ** (t - 1) - 1) // (V - 1), V ** (t - 1)
        sl = slice(off, off + size)
        d_roll = p_x[:, None] * np.exp(lp_r)  # (n, V^(t-1)) = d_t^roll(c_t)
        d_theta = p_x[:, None] * np.exp(lp_t)
        reach[:, sl] = (d_roll > 0.0) | (d_theta > 0.0)
        leak = (d_roll[:, :, None] > 0.0) & (pr[:, sl] == 0.0) & (pt[:, sl] > 0.0)
        if leak.any():
            i, j, v = np.argwhere(leak)[0]
            raise InstanceFormatError(
                f"instance {inst.id!r}: field 'pi_theta': entry [{i}, {off + j}, {v}] is "
                "positive where pi_roll is 0 at a context the rollout reaches; "
                "the surrogate L' needs theta << roll (THEORY.md section 2)"
            )
        dbar[t - 1] = np.sum(d_roll * tv_c[:, sl])
        dkl_t[t - 1] = np.sum(np.where(d_roll > 0.0, d_roll * kl_c[:, sl], 0.0))
        lp_r = (lp_r[:, :, None] + log_pr[:, sl, :]).reshape(n, -1)  # (n, V^t)
        lp_t = (lp_t[:, :, None] + log_pt[:, sl, :]).reshape(n, -1)
        levels.append(log_rho[:, sl, :].reshape(n, -1))
    S = V**T
    suffix = np.zeros((n, S))  # sum_{j>t} log rho_j, then the total
    telescoped = np.zeros((n, S))
    sum_rho_m1 = np.zeros((n, S))
    for t in range(T, 0, -1):
        shape = (n, V**t, V ** (T - t))
        r_m1 = np.expm1(levels[t - 1])[:, :, None]  # (n, V^t, 1) rho_t - 1
        suf = suffix.reshape(shape)
        # (rho_t - 1)(1 - prod_{j>t} rho_j), the product in log space
        telescoped.reshape(shape)[...] -= r_m1 * np.expm1(suf)
        sum_rho_m1.reshape(shape)[...] += r_m1
        suf += levels[t - 1][:, :, None]
    w_roll = p_x[:, None] * np.exp(lp_r)
    w_theta = p_x[:, None] * np.exp(lp_t)
    return _Exact(
        w_roll=w_roll,
        w_theta=w_theta,
        lp_roll=lp_r,
        lp_theta=lp_t,
        sum_rho_m1=sum_rho_m1,
        telescoped=telescoped,
        log_rho_total=suffix,
        tv_c=tv_c,
        kl_c=kl_c,
        reach=reach,
        dbar=dbar,
        dkl_t=dkl_t,
    )


def error_coefficients(inst: TreeInstance) -> np.ndarray:
    r"""The reward coefficients of the error, ``Error = sum_{x,y} c(x,y) R(x,y)`` (section 2).

    .. math:: c(x,y) = P(x)\,[P^\theta(y|x) - P^{roll}(y|x)(1 + \textstyle\sum_t(\rho_t-1))]
              = -P(x)\,P^{roll}(y|x) \sum_t (\rho_t - 1)(1 - \prod_{j>t}\rho_j)

    computed in the second (telescoped, cancellation-free) form. Shape ``(n_prompts, V^T)``;
    the entries sum to 0, and ``max_R |Error| = 1/2 sum |c|``.
    """
    ex = _exact(inst)
    return -ex.w_roll * ex.telescoped


def surrogate_with_baseline(inst: TreeInstance, b: float) -> tuple[float, float]:
    r"""The paper's surrogate with a baseline, and the centred one with the same baseline.

    Returns ``(L_b, Lprime_b)`` with (THEORY.md section 2)

    .. math:: L_b = E_{roll}[(R - b) \textstyle\sum_t \rho_t], \qquad
              L'_b = E_{roll}[(R - b) \textstyle\sum_t (\rho_t - 1)].

    ``L'_b = L'`` for every constant ``b``, while ``L_b = L' + T (J(roll) - b)``.
    """
    ex = _exact(inst)
    rb = inst.reward - b
    lprime_b = float(np.sum(ex.w_roll * rb * ex.sum_rho_m1))
    l_b = float(np.sum(ex.w_roll * rb * (ex.sum_rho_m1 + inst.T)))
    return l_b, lprime_b


def exact_report(inst: TreeInstance, *, baseline: float = 0.0) -> dict[str, Any]:
    r"""Every exact quantity of THEORY.md sections 1-3 and every bound of sections 4-5.

    Keys (all floats in nats where divergences; ``Dbar`` a list over ``t = 1..T``):

    - ``J_roll``, ``J_theta``: ``J(pi) = E_x E_{y~pi}[R]``;
    - ``L_prime``: centred surrogate ``E_roll[R sum_t (rho_t - 1)]``;
    - ``error``: ``J(theta) - J(roll) - L'`` (the definition);
    - ``error_identity``: ``-E_roll[R sum_t (rho_t - 1)(1 - prod_{j>t} rho_j)]``
      (telescoping identity, suffix products in log space);
    - ``error_max_over_rewards``: ``max_R |Error| = 1/2 sum_{x,y} |c(x,y)|``;
    - ``eps``, ``delta``: max of ``TV(c)`` and forward ``KL(c)`` over contexts reached with
      positive probability by either policy;
    - ``Dbar``: ``Dbar_t = E_{d_t^roll} TV(c_t)``;
    - ``D_KL_seq``: chain rule ``sum_t E_{d_t^roll} KL(c_t)``;
    - ``D_TV_seq``: ``E_x TV(P^roll(.|x), P^theta(.|x))``;
    - ``bounds_published``, ``bounds_sharp``: ``trm_bounds.bounds.compute_bounds`` with the
      exact ``Dbar_t`` (section 4 constants, and the sharp ones of section 5).

    Extras: ``D_KL_seq_direct`` (``E_x KL(P^roll(.|x) || P^theta(.|x))`` over sequences),
    ``error_max_over_rewards_direct`` (the untelescoped coefficients), ``baseline_b`` and
    ``L_baseline`` = ``E_roll[(R - b) sum_t rho_t]`` (the paper's surrogate, *not* ``L'``),
    ``V``, ``T``, ``n_prompts``, ``n_sequences``.

    >>> from trm_bounds.generators import tight_instance
    >>> r = exact_report(tight_instance(0.1))
    >>> round(r["error"], 15), round(r["bounds_sharp"]["coupling"], 15)
    (0.02, 0.02)
    """
    from trm_bounds.bounds import compute_bounds

    ex = _exact(inst)
    R = inst.reward
    J_roll = float(np.sum(ex.w_roll * R))
    J_theta = float(np.sum(ex.w_theta * R))
    L_prime = float(np.sum(ex.w_roll * R * ex.sum_rho_m1))
    c = -ex.w_roll * ex.telescoped  # (n, V^T)
    c_direct = ex.w_theta - ex.w_roll * (1.0 + ex.sum_rho_m1)
    eps = float(np.max(ex.tv_c, where=ex.reach, initial=0.0))
    delta = float(np.max(ex.kl_c, where=ex.reach, initial=0.0))
    pos = inst.p_x > 0.0
    kl_direct = kl_from_logprobs(ex.lp_roll[pos], ex.lp_theta[pos])  # (n_pos,)
    dkl_seq = float(np.sum(ex.dkl_t))
    dtv_seq = float(0.5 * np.sum(ex.w_roll * np.abs(np.expm1(ex.log_rho_total))))
    rep: dict[str, Any] = {
        "J_roll": J_roll,
        "J_theta": J_theta,
        "L_prime": L_prime,
        "error": J_theta - J_roll - L_prime,
        "error_identity": float(np.sum(c * R)),
        "error_max_over_rewards": float(0.5 * np.sum(np.abs(c))),
        "eps": eps,
        "delta": delta,
        "Dbar": [float(v) for v in ex.dbar],
        "D_KL_seq": dkl_seq,
        "D_TV_seq": dtv_seq,
    }
    if not math.isfinite(delta):
        raise ValueError(
            f"instance {inst.id!r}: delta = inf (pi_theta is 0 where pi_roll > 0 at a reached "
            "context); the forward KL and the KL bounds are infinite"
        )
    kw = dict(eps=eps, delta=delta, dkl_seq=dkl_seq, dtv_seq=dtv_seq, dbar=ex.dbar)
    for key, sharp in (("bounds_published", False), ("bounds_sharp", True)):
        bounds = compute_bounds(inst.T, sharp=sharp, **kw)
        rep[key] = {name: float(np.asarray(value)) for name, value in bounds.items()}
    rep.update(
        {
            "D_KL_seq_direct": float(np.sum(inst.p_x[pos] * kl_direct)),
            "error_max_over_rewards_direct": float(0.5 * np.sum(np.abs(c_direct))),
            "baseline_b": float(baseline),
            "L_baseline": float(np.sum(ex.w_roll * (R - baseline) * (ex.sum_rho_m1 + inst.T))),
            "V": inst.V,
            "T": inst.T,
            "n_prompts": inst.n_prompts,
            "n_sequences": inst.n_prompts * inst.n_sequences,
        }
    )
    return rep


# --------------------------------------------------------------------------------------
# Exchange format
# --------------------------------------------------------------------------------------

_FIELDS = ("id", "V", "T", "n_prompts", "p_x", "pi_roll", "pi_theta", "reward")


def _instance_from_record(rec: Any, where: str) -> TreeInstance:
    """One instance from its JSON record; errors name ``where`` and the field."""
    if not isinstance(rec, dict):
        raise InstanceFormatError(f"{where}: must be a JSON object, got {type(rec).__name__}")
    for name in _FIELDS:
        if name not in rec:
            raise InstanceFormatError(f"{where}: missing field {name!r}")
    for name in ("V", "T", "n_prompts"):
        if isinstance(rec[name], bool) or not isinstance(rec[name], int):
            raise InstanceFormatError(
                f"{where}: field {name!r}: must be an integer, got {rec[name]!r}"
            )
    arrays = {}
    for name in ("p_x", "pi_roll", "pi_theta", "reward"):
        try:
            arrays[name] = np.asarray(rec[name], dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InstanceFormatError(
                f"{where}: field {name!r}: not a rectangular array of numbers ({exc})"
            ) from None
    if rec["V"] >= 2 and rec["T"] >= 1 and rec["V"] ** rec["T"] > 10**8:
        raise InstanceFormatError(f"{where}: field 'T': V^T = {rec['V']}^{rec['T']} too large")
    meta = {k: v for k, v in rec.items() if k not in _FIELDS and k != "expected"}
    if "expected" in rec:
        meta["expected"] = rec["expected"]
    inst = TreeInstance.__new__(TreeInstance)
    inst.id, inst.V, inst.T, inst.n_prompts = str(rec["id"]), rec["V"], rec["T"], rec["n_prompts"]
    inst.p_x, inst.pi_roll = arrays["p_x"], arrays["pi_roll"]
    inst.pi_theta, inst.reward = arrays["pi_theta"], arrays["reward"]
    inst.meta = meta
    validate_instance(inst, where=where)
    return inst


def load_instances(path: str | os.PathLike) -> list[TreeInstance]:
    """Read a ``trm-oracle-instances/v1`` file; raise :class:`InstanceFormatError` if malformed.

    Each message names the file, the instance (index and id) and the field. Extra keys of an
    instance are kept in ``meta`` (an ``expected`` report under ``meta["expected"]``).
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise InstanceFormatError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise InstanceFormatError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InstanceFormatError(f"{path}: top level must be a JSON object")
    if doc.get("schema") != SCHEMA:
        raise InstanceFormatError(
            f"{path}: field 'schema': got {doc.get('schema')!r}, expected {SCHEMA!r}"
        )
    records = doc.get("instances")
    if not isinstance(records, list):
        raise InstanceFormatError(f"{path}: field 'instances': must be a list")
    out = []
    for i, rec in enumerate(records):
        rid = rec.get("id") if isinstance(rec, dict) else None
        out.append(_instance_from_record(rec, f"{path}: instance {i} (id {rid!r})"))
    return out


def write_instances(
    path: str | os.PathLike,
    instances: list[TreeInstance],
    *,
    with_expected: bool = True,
) -> Path:
    """Write instances as ``trm-oracle-instances/v1`` JSON, atomically.

    ``meta`` entries become extra keys; with ``with_expected`` each instance carries its
    :func:`exact_report` under ``expected`` (floats written with full round-trip precision).
    """
    records = []
    for inst in instances:
        rec: dict[str, Any] = {k: v for k, v in inst.meta.items() if k != "expected"}
        rec.update(
            id=inst.id,
            V=inst.V,
            T=inst.T,
            n_prompts=inst.n_prompts,
            p_x=inst.p_x,
            pi_roll=inst.pi_roll,
            pi_theta=inst.pi_theta,
            reward=inst.reward,
        )
        if with_expected:
            rec["expected"] = exact_report(inst)
        records.append(rec)
    doc = {"schema": SCHEMA, "instances": records}
    return atomic_write_text(path, json.dumps(to_jsonable(doc)) + "\n")


def _as_float(value: Any) -> float | None:
    """A JSON number or the strings "inf"/"-inf"/"nan" as float; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return None


def compare_reports(expected: Any, actual: Any, prefix: str = "") -> list[str]:
    """Mismatches between an ``expected`` report and a computed one, as ``key: exp vs got``.

    Numbers agree when ``|a - e| <= 1e-9 max(|a|, |e|) + 1e-12`` (``EXPECTED_RTOL``,
    ``EXPECTED_ATOL``) or both are the same non-finite value. Only keys in ``expected``
    are compared.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{prefix or 'report'}: expected an object"]
        out = []
        for key, value in expected.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in actual:
                out.append(f"{name}: not computed")
            else:
                out.extend(compare_reports(value, actual[key], name))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return [f"{prefix}: expected a list of length {len(expected)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(compare_reports(e, a, f"{prefix}[{i}]"))
        return out
    e, a = _as_float(expected), _as_float(actual)
    if e is None or a is None:
        return [] if expected == actual else [f"{prefix}: expected {expected!r}, got {actual!r}"]
    if math.isfinite(e) and math.isfinite(a):
        ok = abs(a - e) <= EXPECTED_RTOL * max(abs(a), abs(e)) + EXPECTED_ATOL
    else:
        ok = (math.isnan(e) and math.isnan(a)) or e == a
    return [] if ok else [f"{prefix}: expected {e!r}, got {a!r}"]


def format_report(inst: TreeInstance, rep: dict[str, Any]) -> str:
    """A readable table: exact quantities, then each bound with ``|Error|/B`` and ``max_R/B``."""
    lines = [
        f"instance {inst.id!r}: V={inst.V} T={inst.T} prompts={inst.n_prompts} "
        f"sequences={inst.n_prompts * inst.n_sequences}"
    ]
    scalars = [k for k in REPORT_KEYS if not isinstance(rep[k], (list, dict))]
    scalars.insert(scalars.index("D_KL_seq") + 1, "D_KL_seq_direct")
    for key in scalars:
        lines.append(f"  {key:<24s} {rep[key]: .10g}")
    lines.append(f"  {'L_baseline (b=' + format(rep['baseline_b'], 'g') + ')':<24s} "
                 f"{rep['L_baseline']: .10g}   (paper's L, not L')")  # fmt: skip
    dbar = ", ".join(f"{v:.4g}" for v in rep["Dbar"][:8])
    lines.append(f"  {'Dbar_t':<24s} [{dbar}{', ...' if inst.T > 8 else ''}]")
    err, emax = abs(rep["error"]), rep["error_max_over_rewards"]
    lines.append(
        f"  {'bound':<16s} {'published':>12s} {'|err|/B':>9s} {'maxR/B':>9s}"
        f" {'sharp':>12s} {'|err|/B':>9s} {'maxR/B':>9s}"
    )

    def ratio(x: float, b: float) -> str:
        return f"{x / b:9.4f}" if b > 0 else f"{'-' if x == 0 else 'inf':>9s}"

    for name, pub in rep["bounds_published"].items():
        sh = rep["bounds_sharp"][name]
        lines.append(
            f"  {name:<16s} {pub:12.5g} {ratio(err, pub)} {ratio(emax, pub)}"
            f" {sh:12.5g} {ratio(err, sh)} {ratio(emax, sh)}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The ``exact`` subcommand: ``python -m trm_bounds exact INSTANCES.json [--json OUT]``.

    Prints one table per instance; with ``--json OUT`` writes every report atomically.
    Instances carrying ``expected`` values are compared (relative 1e-9); a mismatch exits 1.
    A malformed file prints one line to stderr and exits 2 without writing anything.
    """
    parser = argparse.ArgumentParser(
        prog="python -m trm_bounds exact",
        description="Exact surrogate error, divergences and bounds of tree instances.",
    )
    parser.add_argument("instances", help="trm-oracle-instances/v1 JSON file")
    parser.add_argument("--json", dest="out", default=None, help="write all reports here")
    parser.add_argument("--baseline", type=float, default=0.0, help="b for the reported L")
    args = parser.parse_args(argv)
    try:
        instances = load_instances(args.instances)
        reports = []
        for i, inst in enumerate(instances):
            try:
                reports.append(exact_report(inst, baseline=args.baseline))
            except ValueError as exc:
                raise ValueError(
                    f"{args.instances}: instance {i} (id {inst.id!r}): {exc}"
                ) from None
    except ValueError as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    n_bad = 0
    for inst, rep in zip(instances, reports, strict=True):
        print(format_report(inst, rep))
        if "expected" in inst.meta:
            bad = compare_reports(inst.meta["expected"], rep)
            n_bad += bool(bad)
            status = "MISMATCH: " + "; ".join(bad[:5]) if bad else "matches expected"
            print(f"  expected values: {status}")
        print()
    if args.out is not None:
        doc = {
            "schema": SCHEMA + "/reports",
            "source": str(args.instances),
            "reports": [
                {"id": inst.id, **rep} for inst, rep in zip(instances, reports, strict=True)
            ],
        }
        atomic_write_text(args.out, json.dumps(to_jsonable(doc), indent=1) + "\n")
    if n_bad:
        print(f"{n_bad} instance(s) do not match their expected values", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
