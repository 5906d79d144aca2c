"""Shared pytest configuration: hypothesis profiles.

Profiles: ``ci`` (default, fast), ``slow`` (select with ``HYPOTHESIS_PROFILE=slow``,
used together with ``-m slow``).
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "slow", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
