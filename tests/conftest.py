"""Shared pytest configuration: hypothesis profiles; the session's Ray cluster.

Profiles: ``ci`` (default, fast and derandomized: the same examples on every run and every
machine, so the suite cannot flake), ``slow`` (select with ``HYPOTHESIS_PROFILE=slow``, used
together with ``-m slow``; random, for searching).
"""

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "slow", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# ----------------------------------------------------------------------------- Ray cluster
# One local Ray cluster for the whole session (starting one costs seconds): started by the
# first test that asks for ``ray_cluster`` and shut down after the last test of a contiguous
# run of such tests, so a module that starts its own cluster later still can.
# ``TRM_BOUNDS_RAY_KILL_ONCE`` (the Ray engine's fault injection) names a marker that exists,
# i.e. is disarmed, until a test removes it; workers inherit it at ``ray.init``.
_RAY_FAULT_ENV = "TRM_BOUNDS_RAY_KILL_ONCE"
_ray_state: dict = {}


def _ray_users(item) -> bool:
    return "ray_cluster" in getattr(item, "fixturenames", ())


@pytest.fixture
def ray_cluster(tmp_path_factory):
    """The session's two-CPU local Ray cluster; yields the fault marker path."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    if not _ray_state:
        marker = tmp_path_factory.mktemp("fault") / "killed"
        marker.touch()
        _ray_state["old_env"] = os.environ.get(_RAY_FAULT_ENV)
        os.environ[_RAY_FAULT_ENV] = str(marker)
        root = str(Path(__file__).resolve().parents[1])  # the checkout: tests.* import
        ray.init(
            num_cpus=2, include_dashboard=False, log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([os.getcwd(), root])}},
        )  # fmt: skip
        _ray_state["marker"] = marker
    _ray_state["marker"].touch()  # disarmed unless the test removes it
    return _ray_state["marker"]


def _ray_shutdown() -> None:
    if not _ray_state:
        return
    import ray

    ray.shutdown()
    old = _ray_state.pop("old_env")
    if old is None:
        os.environ.pop(_RAY_FAULT_ENV, None)
    else:
        os.environ[_RAY_FAULT_ENV] = old
    _ray_state.clear()


def pytest_runtest_teardown(item, nextitem):
    if _ray_state and (nextitem is None or not _ray_users(nextitem)):
        _ray_shutdown()
