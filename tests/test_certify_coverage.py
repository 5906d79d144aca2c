"""Coverage of the certified bound on exact instances (docs/theory.md §9, the study
trm_bounds.studies.certify_coverage): fixed seed, 400 repetitions, asserted at
1 - alpha - 3 se (binomial), including a pair without absolute continuity, an adversarial
reward and a finite-state pair at T = 64."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from trm_bounds.certify.confidence import METHODS
from trm_bounds.studies.certify_coverage import Args, coverage_table, settings

LEVEL, REPS = 0.95, 400
MIN_COVERAGE = LEVEL - 3 * math.sqrt(LEVEL * (1 - LEVEL) / REPS)  # 0.917


@pytest.fixture(scope="module")
def study_settings():
    return {s.name: s for s in settings(Args(T_long=(64,)))}


@pytest.mark.parametrize("name", ["tree_sparse", "tree_non_ac", "finite_uniform_T64",
                                  "finite_sparse_T64"])
@pytest.mark.parametrize("N", [16, 256])
def test_ucb_covers_exact_dbar_sum_and_bound_covers_adversarial_error(study_settings, name, N):
    """P(U >= sum_t Dbar_t) >= 1 - alpha - 3 se for every method, and 1 * U >= max_R |Error|
    (adversarial reward, Theorem 9.3's constant) at least as often."""
    st = study_settings[name]
    row = coverage_table(st, N=N, reps=REPS, level=LEVEL, rng=np.random.default_rng([0, N]))
    for method in METHODS:
        assert row[method]["coverage"] >= MIN_COVERAGE, (method, row[method])
        assert row[method]["bound_coverage"] >= row[method]["coverage"], method
        assert row[method]["rel_width"] > 0


def test_samplers_have_the_exact_mean(study_settings):
    """The samplers are right: the mean of 200,000 draws of X is within 5 se of the exact
    sum_t Dbar_t (enumeration for trees, DP for finite-state), for every setting."""
    rng = np.random.default_rng(1)
    for st in study_settings.values():
        x = st.sample_x(rng, 200_000)
        se = x.std() / math.sqrt(x.size)
        assert abs(x.mean() - st.dbar_sum) <= 5 * se + 1e-12, st.name


def test_non_ac_setting_is_not_absolutely_continuous(study_settings):
    """The top-k setting really has theta mass where the rollout has none."""
    inst = study_settings["tree_non_ac"].tree
    assert np.any((inst.pi_roll == 0) & (inst.pi_theta > 0))


def test_tiny_run_writes_the_table(tmp_path):
    """``--tiny`` writes settings x N x method with coverage, se, bound_coverage, rel_width."""
    out = tmp_path / "cc.json"
    proc = subprocess.run([sys.executable, "-m", "trm_bounds.studies.certify_coverage", "--tiny",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["seed"] == 0 and data["level"] == LEVEL
    for sec in data["settings"].values():
        for row in sec["N"].values():
            for m in METHODS:
                assert {"coverage", "se", "bound_coverage", "rel_width"} <= set(row[m])
