"""Claims about scaling (:mod:`trm_bounds.claims.scaling`): the worst-case row follows its
result file, and slopes print only away from rounding boundaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from trm_bounds.claims.scaling import _worst_case_row, slope_text
from trm_bounds.margins import MarginError


def _best(uniform: float, sparse: float) -> dict:
    return {"uniform": {"family": "a", "slope": uniform, "window": [8.0, 5000.0]},
            "sparse": {"family": "b", "slope": sparse, "window": [4.0, 1e5]}}  # fmt: skip


def test_worst_case_status_is_read_from_the_file():
    """The exponents and the growth the status states come from worst_case.json's
    best_exponent (a new result file changes the row, no number is typed)."""
    row = _worst_case_row(_best(0.9992, -4e-17), Path("worst_case.json"), "cmd")
    assert "uniform: 1.00 (a, T in [8, 5000])" in row.ours
    assert "grows like T, not T^{3/2}" in row.status
    assert "is constant in T under sparse divergence" in row.status
    row = _worst_case_row(_best(1.4991, 0.5), Path("worst_case.json"), "cmd")
    assert "uniform: 1.50" in row.ours and "grows like T^{3/2}" in row.status
    assert "grows like T^0.5 under sparse divergence" in row.status
    assert _worst_case_row({}, Path("worst_case.json"), "cmd") is None


def test_slopes_print_only_away_from_rounding_boundaries():
    """A slope on a two-decimal tie is refused; -0.00 prints as 0.00."""
    assert slope_text(-3e-9) == "0.00"
    with pytest.raises(MarginError):
        slope_text(0.125)
