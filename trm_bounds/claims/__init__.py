"""The paper's claims, checked: every row of ``paper_repro.md``, computed by the package.

One module per claim group, each a function ``group(results) -> (rows, ok)`` that returns
its table rows (:class:`~trm_bounds.claims.rows.Row`) and whether every check of the group
passed.  ``results`` is the folder of committed result files (``trm_bounds/data/results`` in a
source checkout) that some rows read; every other number is computed here from
:mod:`trm_bounds.bounds`, the exact engines, :mod:`trm_bounds.masking`,
:mod:`trm_bounds.planner` and :mod:`trm_bounds.paper` (the paper's printed numbers, typed
there once).  Every number and decision is drawn at the margins of :mod:`trm_bounds.margins`,
so the rendered text is the same on every CPU.

>>> sorted(CLAIMS)[:3]
['abstract', 'baseline', 'length-bias']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from trm_bounds.claims.abstract import abstract
from trm_bounds.claims.paper_table import length_bias_claims, table
from trm_bounds.claims.rows import Row, render_markdown, stale_rows
from trm_bounds.claims.scaling import scaling
from trm_bounds.claims.theorems import baseline, theorems, tight
from trm_bounds.claims.trm import trm

__all__ = ["CLAIMS", "Row", "all_rows", "render", "render_markdown", "stale_rows"]

#: Claim groups in the order of paper_repro.md.
CLAIMS: dict[str, Callable[[Path], tuple[list[Row], bool]]] = {
    "theorems": theorems,
    "tight": tight,
    "baseline": baseline,
    "table": table,
    "scaling": scaling,
    "trm": trm,
    "length-bias": length_bias_claims,
    "abstract": abstract,
}


def all_rows(results: Path | str) -> tuple[list[Row], dict[str, bool]]:
    """Every row of paper_repro.md from the result folder ``results``, and the pass/fail of
    each claim group."""
    rows, oks = [], {}
    for name, fn in CLAIMS.items():
        r, ok = fn(Path(results))
        rows += r
        oks[name] = ok
    return rows, oks


def render(results: Path | str) -> tuple[str, dict[str, bool]]:
    """The whole text of paper_repro.md from the result folder ``results``, and the
    pass/fail of each claim group."""
    rows, oks = all_rows(results)
    return render_markdown(rows), oks
