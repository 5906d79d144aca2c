"""The error-estimate coverage study (trm_bounds.studies.error_estimate_coverage): its table
has every instance, N and quantity, counts that add up, and its pooled and worst cells are the
ones of the table (the coverage claim itself is tested in tests/certify/test_error_estimate.py
and measured in experiments/results/error_estimate_coverage.json)."""

from __future__ import annotations

import json
from pathlib import Path

from trm_bounds.certify.error_estimate import QUANTITIES
from trm_bounds.studies.error_estimate_coverage import KINDS, Args, run


def test_small_run_table_is_consistent():
    res = run(Args(reps=8, N=(256,), seeds=1))
    assert set(res["instances"]) == {f"{k}:0:{n}" for k in KINDS for n in (1, 2)}
    shown = covered = 0
    for rows in res["instances"].values():
        for q in QUANTITIES:
            c = rows["256"][q]
            assert 0 <= c["covered"] <= c["shown"] <= 8
            shown, covered = shown + c["shown"], covered + c["covered"]
    assert res["pooled"]["shown"] == shown and res["pooled"]["covered"] == covered
    w = res["worst_cell"]
    assert w is None or res["instances"][w["cell"][0]][str(w["cell"][1])][w["cell"][2]]["shown"]


def test_committed_result_records_the_measured_coverage():
    """The committed full run (>= 200 batches, N >= 256): pooled coverage of the shown
    intervals >= 0.95 at nominal 0.95, and no judged cell (>= 10 shown) more than three
    standard errors of its shown count below 0.9.  Not met in full: two of 117 judged cells lie
    2.1 and 2.4 standard errors below 0.9 (docs/theory.md §9 says which and why)."""
    path = Path(__file__).resolve().parents[2] / "experiments/results/error_estimate_coverage.json"
    res = json.loads(path.read_text())
    assert res["args"]["reps"] >= 200 and min(res["args"]["N"]) >= 256
    assert res["pooled"]["coverage"] >= 0.95
    assert res["worst_cell"]["z"] >= -3.0
