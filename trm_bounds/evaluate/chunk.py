"""One chunk's work, the same in every engine (docs/theory.md §6, §9).

:func:`evaluate_chunk` is the per-chunk step of the local engine
(:mod:`trm_bounds.evaluate.run`) and of the Ray engine's tasks
(:mod:`trm_bounds.evaluate.ray_engine`); it imports neither, so neither imports the other
through it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from trm_bounds.evaluate.certified import sequence_columns
from trm_bounds.evaluate.stats import Stats, chunk_stats
from trm_bounds.logs import Batch

__all__ = ["evaluate_chunk"]


def evaluate_chunk(batch: Batch, opts: Mapping[str, Any]) -> tuple[Stats, dict[str, np.ndarray]]:
    """One chunk's mergeable statistics and per-sequence columns: :func:`chunk_stats`'s
    (``opts`` are its keyword arguments,
    :meth:`~trm_bounds.evaluate.options.EvaluateOptions.chunk_options`), plus the
    certificate's terms (:func:`~trm_bounds.evaluate.certified.sequence_columns`)."""
    st, cols = chunk_stats(batch, **opts)
    cols.update(sequence_columns(batch))
    return st, cols
