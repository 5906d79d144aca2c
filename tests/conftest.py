"""Shared pytest configuration: hypothesis profiles.

Profiles: ``ci`` (default, fast and derandomized: the same examples on every run and every
machine, so the suite cannot flake), ``slow`` (select with ``HYPOTHESIS_PROFILE=slow``, used
together with ``-m slow``; random, for searching).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "slow", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
