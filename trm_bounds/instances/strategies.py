r"""Hypothesis strategies for random exact tree instances (shared by tests and users).

Every strategy draws small instances (``V^T`` at most a few hundred responses) so that the
exact engine :mod:`trm_bounds.engines.tree` runs in milliseconds.  Needs hypothesis, a test
extra: ``pip install trm-bounds[test]``.  Nothing else in the package imports this module.

>>> from hypothesis import given
>>> @given(tree_instances(kinds=("dense",)))
... def check(inst):
...     assert inst.pi_roll.shape == (inst.n_prompts, inst.n_contexts, inst.V)
>>> check()
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

try:
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "trm_bounds.instances.strategies needs hypothesis: pip install 'trm-bounds[test]'"
    ) from None

from trm_bounds.instances.generators import GENERATORS
from trm_bounds.instances.named import tight_instance
from trm_bounds.instances.tree import TreeInstance, n_contexts

__all__ = [
    "KINDS",
    "shapes",
    "tree_instances",
    "raw_tree_instances",
    "tight_instances",
    "probability_vectors",
]

#: Every generator kind of :data:`trm_bounds.instances.generators.GENERATORS`.
KINDS: tuple[str, ...] = tuple(GENERATORS)


@st.composite
def shapes(draw: st.DrawFn, max_V: int = 3, max_T: int = 4, max_prompts: int = 2,
           max_sequences: int = 256) -> tuple[int, int, int]:  # fmt: skip
    """``(V, T, n_prompts)`` with ``V^T <= max_sequences``."""
    V = draw(st.integers(2, max_V))
    T_cap = max(1, min(max_T, int(np.floor(np.log(max_sequences) / np.log(V) + 1e-9))))
    T = draw(st.integers(1, T_cap))
    n = draw(st.integers(1, max_prompts))
    return V, T, n


@st.composite
def tree_instances(
    draw: st.DrawFn,
    kinds: Sequence[str] = KINDS,
    max_V: int = 3,
    max_T: int = 4,
    max_prompts: int = 2,
    max_sequences: int = 256,
) -> TreeInstance:
    """A generator instance of a drawn kind, shape and seed (:data:`GENERATORS`).

    ``sparse`` needs ``T >= 2`` and is drawn with ``T`` raised to 2 when needed.
    """
    kind = draw(st.sampled_from(list(kinds)))
    V, T, n = draw(shapes(max_V, max_T, max_prompts, max_sequences))
    seed = draw(st.integers(0, 2**32 - 1))
    return GENERATORS[kind](seed, V, T, n)


def probability_vectors(V: int, min_prob: float = 0.0) -> st.SearchStrategy[np.ndarray]:
    """Probability vectors of length ``V`` drawn from hypothesis floats (normalised weights),
    every entry at least ``min_prob`` (``min_prob = 0`` allows exact zeros)."""
    weights = st.lists(st.floats(0.0, 1.0), min_size=V, max_size=V).filter(lambda w: sum(w) > 0)

    def to_prob(w: list[float]) -> np.ndarray:
        p = np.asarray(w, dtype=np.float64)
        p = p / p.sum()
        return (1.0 - V * min_prob) * p + min_prob

    return weights.map(to_prob)


@st.composite
def raw_tree_instances(
    draw: st.DrawFn, max_V: int = 3, max_T: int = 3, max_prompts: int = 2
) -> TreeInstance:
    """Instances whose every probability is drawn by hypothesis itself (not by a generator):
    rollout rows with entries ``>= 1e-3``; theta rows either equal to the rollout row, or
    arbitrary (zeros allowed; theta << roll holds as the rollout has full support)."""
    V, T, n = draw(shapes(max_V, max_T, max_prompts, 64))
    C = n_contexts(V, T)
    p_x = draw(probability_vectors(n, 1e-3))
    pr = np.array([[draw(probability_vectors(V, 1e-3)) for _ in range(C)] for _ in range(n)])
    pt = pr.copy()
    for i in range(n):
        for c in range(C):
            if draw(st.booleans()):
                pt[i, c] = draw(probability_vectors(V, 1e-6))
    reward = np.array(
        [draw(st.lists(st.floats(0.0, 1.0), min_size=V**T, max_size=V**T)) for _ in range(n)]
    )
    return TreeInstance.from_arrays(p_x, pr, pt, reward, id="raw", meta={"kind": "raw"})


def tight_instances() -> st.SearchStrategy[TreeInstance]:
    """The tight instance of docs/theory.md §5 with ``eps`` drawn in ``[0, 1/2)``."""
    return st.floats(0.0, 0.5, exclude_max=True).map(tight_instance)
