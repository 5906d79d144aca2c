"""Coverage of the certified bound on exact instances (docs/theory.md §9, the study
trm_bounds.studies.certify_coverage): fixed seed, 400 repetitions, asserted at
1 - alpha - 3 se (binomial), including a pair without absolute continuity, an adversarial
reward and a finite-state pair at T = 64; the study on Ray (``engine='ray'``) gives the local
table to the bit."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from trm_bounds.certify.confidence import METHODS
from trm_bounds.studies import certify_coverage
from trm_bounds.studies.certify_coverage import Args, coverage_table, run, settings

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


@pytest.fixture(scope="module")
def cluster():
    """A two-CPU local Ray cluster for this module (skipped without the [ray] extra)."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.getcwd()}})  # fmt: skip
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_engine_equals_local_engine(cluster, monkeypatch):
    """``engine='ray'`` (settings rebuilt in the tasks from their seeds, one generator per
    block of repetitions) gives the local engine's table to the bit: every setting, N, method.
    Tasks are kept small so the blocks are spread over several tasks and both workers."""
    monkeypatch.setattr(certify_coverage, "_RAY_STEPS", 2_000)
    small = dict(seed=3, reps=30, N=(8, 16), T_long=(8,), block_reps=7)
    local, on_ray = run(Args(**small)), run(Args(**small, engine="ray"))
    assert on_ray == local
    row = local["settings"]["finite_sparse_T8"]["N"]["16"]
    assert 0 < row["estimate_rel_sd"] and all(row[m]["rel_width"] > 0 for m in METHODS)


def test_cli_engine_ray_under_python_m(cluster, tmp_path):
    """``python -m ... --engine ray`` (the module runs as ``__main__``; its task must still be
    sent by reference), joining this module's cluster: the local table, to the bit."""
    flags = ["--seed", "2", "--reps", "12", "--N", "8", "--T-long", "8", "--block-reps", "5"]
    address = cluster.get_runtime_context().gcs_address
    tables = []
    for extra in ([], ["--engine", "ray", "--address", address]):
        out = tmp_path / f"cc{len(tables)}.json"
        proc = subprocess.run([sys.executable, "-m", "trm_bounds.studies.certify_coverage",
                               *flags, *extra, "--out", str(out)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
        tables.append(json.loads(out.read_text())["settings"])
    assert tables[1] == tables[0]
