r"""Finite-state instances: autoregressive policy pairs whose context is a finite state.

A *finite-state instance* is an autoregressive model whose next-token distribution depends
on the context only through ``(t, s_t)``, a state with deterministic update
``s_{t+1} = f(s_t, y_t)``, and whose reward is a function of the final state ``s_{T+1}``
(docs/theory.md §1 with the context summarised by a state).  Symbols (shapes):

- ``p0 (S,)``: distribution of the initial state ``s_1`` (each initial state plays the role
  of one prompt ``x``);
- ``f (S, V)``: integer next state ``f(s, v)``;
- ``pi_roll, pi_theta (T, S, V)``: next-token distributions ``pi(v | t, s)``, ``t = 1..T``;
- ``reward (S,)``: ``R = r(s_{T+1})`` in ``[0, 1]``.

The exact engine is :mod:`trm_bounds.engines.dp`; :func:`to_tree_instance` expands a small
instance into its full context tree for the tree engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trm_bounds.instances.tree import InstanceFormatError, TreeInstance

__all__ = ["FiniteStateInstance", "to_tree_instance", "MAX_TREE_SEQUENCES"]

#: Tolerance for rows of probabilities summing to one (entries must be >= 0 exactly).
_PROB_ATOL = 1e-9
#: Policy entries per chunk of rows validated at once (temporaries stay cache-resident).
_CHUNK_ENTRIES = 2**15
#: Largest number of sequences (summed over initial states) :func:`to_tree_instance` expands.
MAX_TREE_SEQUENCES = 10**7


@dataclass(frozen=True, eq=False)
class FiniteStateInstance:
    """A finite-state autoregressive policy pair with a final-state reward (module docstring, docs/theory.md §1).

    Arrays may be read-only broadcast views (``np.broadcast_to(pi, (T, S, V))`` for
    time-homogeneous policies); the engine detects zero time-stride and works once per
    distinct matrix.  Construction validates every field and raises ``ValueError`` with a
    one-line message naming the instance, the field and the position.
    """

    p0: np.ndarray  # (S,)
    f: np.ndarray  # (S, V) int
    pi_roll: np.ndarray  # (T, S, V)
    pi_theta: np.ndarray  # (T, S, V)
    reward: np.ndarray  # (S,)
    name: str = "finite-state"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def fail(fld: str, msg: str) -> None:
            raise InstanceFormatError(f"FiniteStateInstance {self.name!r}: field {fld}: {msg}")

        p0 = np.asarray(self.p0, dtype=np.float64)
        f = np.asarray(self.f)
        if p0.ndim != 1 or p0.size == 0:
            fail("p0", f"expected shape (S,), got {p0.shape}")
        S = p0.size
        if f.ndim != 2 or f.shape[0] != S or f.shape[1] < 1:
            fail("f", f"expected shape ({S}, V), got {f.shape}")
        if not np.issubdtype(f.dtype, np.integer):
            fail("f", f"expected integers, got dtype {f.dtype}")
        V = f.shape[1]
        bad = np.argwhere((f < 0) | (f >= S))
        if bad.size:
            s, v = bad[0]
            fail("f", f"entry (s={s}, v={v}) = {f[s, v]} is not a state in [0, {S})")
        _check_distribution(p0[None], "p0", fail, ("",))
        object.__setattr__(self, "p0", p0)
        object.__setattr__(self, "f", f.astype(np.intp, copy=False))
        for fld in ("pi_roll", "pi_theta"):
            pi = np.asarray(getattr(self, fld), dtype=np.float64)
            if pi.ndim != 3 or pi.shape[1:] != (S, V) or pi.shape[0] < 1:
                fail(fld, f"expected shape (T, {S}, {V}), got {pi.shape}")
            _check_distribution(_distinct_times(pi), fld, fail, ("t", "s"))
            object.__setattr__(self, fld, pi)
        if self.pi_roll.shape != self.pi_theta.shape:
            fail("pi_theta", f"shape {self.pi_theta.shape} != pi_roll {self.pi_roll.shape}")
        r = np.asarray(self.reward, dtype=np.float64)
        if r.shape != (S,):
            fail("reward", f"expected shape ({S},), got {r.shape}")
        bad = np.flatnonzero(~(np.isfinite(r) & (r >= 0) & (r <= 1)))
        if bad.size:
            fail("reward", f"entry s={bad[0]} = {float(r[bad[0]])!r} is outside [0, 1]")
        object.__setattr__(self, "reward", r)

    @property
    def T(self) -> int:
        """Horizon ``T``."""
        return int(self.pi_roll.shape[0])

    @property
    def S(self) -> int:
        """Number of states ``S``."""
        return int(self.p0.size)

    @property
    def V(self) -> int:
        """Vocabulary size ``V``."""
        return int(self.f.shape[1])

    def with_reward(self, reward: np.ndarray) -> FiniteStateInstance:
        """The same policy pair with another final-state reward."""
        return FiniteStateInstance(
            self.p0, self.f, self.pi_roll, self.pi_theta, reward, self.name, dict(self.meta)
        )


def _distinct_times(pi: np.ndarray) -> np.ndarray:
    """The distinct time slices of a possibly time-broadcast array (stride 0 -> one slice)."""
    return pi[:1] if pi.strides[0] == 0 else pi


def _check_distribution(a: np.ndarray, fld: str, fail: Any, names: tuple[str, ...]) -> None:
    """Rows along the last axis must be finite, non-negative and sum to 1 (within 1e-9).

    Fast path: one pass over cache-sized chunks, no temporaries of the input's size (a NaN
    fails ``min >= 0``, an infinity the sum test); the position of the first offending
    entry is searched only on failure.
    """
    rows = a.reshape(-1, a.shape[-1])  # a view for contiguous input
    step = max(1, _CHUNK_ENTRIES // a.shape[-1])
    for i in range(0, rows.shape[0], step):
        c = rows[i : i + step]
        if not (c.min() >= 0 and np.abs(_row_sums(c) - 1.0).max() <= _PROB_ATOL):
            break
    else:
        return
    ok = np.isfinite(a) & (a >= 0)
    if not ok.all():
        pos = np.argwhere(~ok)[0]
        fail(fld, f"entry {_pos(pos, names + ('v',))} = {float(a[tuple(pos)])!r} is negative or not finite")
    sums = a.sum(axis=-1)
    bad = np.abs(sums - 1.0) > _PROB_ATOL
    if bad.any():
        pos = np.argwhere(bad)[0]
        fail(fld, f"row {_pos(pos, names)} sums to {float(sums[tuple(pos)])!r}, expected 1")


def _pos(pos: np.ndarray, names: tuple[str, ...]) -> str:
    parts = [
        f"{n}={int(i) + (1 if n == 't' else 0)}" for n, i in zip(names, pos, strict=False) if n
    ]
    return "(" + ", ".join(parts) + ")" if parts else "(all)"


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Sums along the (short) last axis: einsum's contiguous inner loop, single-threaded
    (faster here than ``a.sum(-1)``, and than a BLAS product, which may spawn threads)."""
    return np.einsum("...v->...", a)


def to_tree_instance(inst: FiniteStateInstance) -> TreeInstance:
    """Expand into the full context tree, a :class:`~trm_bounds.instances.tree.TreeInstance`.

    Each initial state with ``p0 > 0`` becomes one prompt (``p_x = p0`` on those states).
    Contexts follow the exchange order (position, then prefix in base ``V``, ``y_1`` most
    significant): the children of context ``i`` at position ``t`` are ``i V + v`` at
    ``t + 1``, so the states of level ``t + 1`` are ``f[states_t].ravel()``; the reward of
    sequence ``seq(y)`` is ``r(s_{T+1})``.  Size ``O(n V^T)``: at most
    :data:`MAX_TREE_SEQUENCES` sequences, else ``ValueError``.
    """
    T = inst.T
    starts = np.flatnonzero(inst.p0 > 0)
    if T * np.log2(inst.V) > 64 or starts.size * inst.V**T > MAX_TREE_SEQUENCES:
        raise ValueError(
            f"to_tree_instance: FiniteStateInstance {inst.name!r}: {starts.size} x "
            f"{inst.V}^{T} sequences exceed MAX_TREE_SEQUENCES = {MAX_TREE_SEQUENCES}"
        )
    pr_rows, pt_rows, rewards = [], [], []
    for s0 in starts:
        states = np.array([s0])
        rows_r, rows_t = [], []
        for t in range(T):
            rows_r.append(inst.pi_roll[t, states])  # (V^t, V)
            rows_t.append(inst.pi_theta[t, states])
            states = inst.f[states].ravel()  # (V^(t+1),) children in prefix order
        pr_rows.append(np.concatenate(rows_r))
        pt_rows.append(np.concatenate(rows_t))
        rewards.append(inst.reward[states])
    return TreeInstance.from_arrays(
        p_x=inst.p0[starts],
        pi_roll=np.stack(pr_rows),
        pi_theta=np.stack(pt_rows),
        reward=np.stack(rewards),
        id=inst.name,
        meta={"kind": "finite_state", **inst.meta},
    )
