r"""Tree instances: two tabular policies on a depth-``T`` tree, prompts and a reward.

A *tree instance* lists, for every prompt ``x`` and every context ``c_t = (x, y_<t)``, the
next-token distributions of both policies, and a reward for every full response
(docs/theory.md §1).  Layout (the exchange format ``trm-oracle-instances/v1``,
:mod:`trm_bounds.instances.format`):

- ``p_x``: ``(n_prompts,)``, a distribution over prompts;
- ``pi_roll``, ``pi_theta``: ``(n_prompts, C, V)`` with ``C = (V^T - 1)/(V - 1)`` contexts,
  ordered by position, then by the prefix read in base ``V`` (``y_1`` most significant):
  ``ctx(t, y_<t) = (V^(t-1) - 1)/(V - 1) + sum_{s<t} y_s V^(t-1-s)``;
- ``reward``: ``(n_prompts, V^T)`` in ``[0, 1]``, indexed by ``seq(y) = sum_t y_t V^(T-t)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike


class InstanceFormatError(ValueError):
    """A tree instance (or an instances file) is malformed; the message names the field."""


__all__ = [
    "ROW_SUM_TOL",
    "TreeInstance",
    "validate_instance",
    "n_contexts",
    "context_index",
    "sequence_index",
]

#: Largest allowed ``|sum_v pi(v|c) - 1|`` and ``|sum_x P(x) - 1|`` in an instance.
ROW_SUM_TOL = 1e-9

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

    Fields (shapes, docs/theory.md §1):

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
            shown = value.item() if isinstance(value, np.generic) else value
            fail(name, f"must be an integer, got {shown!r}")
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
