"""The coverage study of the worst-case-error certificate (docs/theory.md §10, Theorem 10.6)."""

from __future__ import annotations

import json

import pytest

from trm_bounds.studies import worst_case_certificate


@pytest.mark.e2e
def test_tiny_run_writes_the_documented_layout(tmp_path):
    """``--tiny``: every instance and N has a row with the documented keys; every mean bound is
    above the exact truth, and the estimate is within the bound."""
    out = tmp_path / "wcc.json"
    assert worst_case_certificate.main(["--tiny", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["experiment"] == "worst_case_certificate"
    rows = data["settings"]
    assert len(rows) == len(worst_case_certificate.instances(0))
    for r in rows:
        assert {"truth", "coverage", "mean_bound", "mean_linear_bound", "N", "reps"} <= set(r)
        assert r["mean_bound"] >= r["truth"] and r["mean_estimate"] <= r["mean_bound"]
