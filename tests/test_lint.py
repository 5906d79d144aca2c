"""The code base is ruff-clean (ruff comes with the test extra)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    """`ruff check` finds nothing in the package, the experiments and the tests."""
    ruff = shutil.which("ruff")
    cmd = [ruff] if ruff else [sys.executable, "-m", "ruff"]
    try:
        r = subprocess.run([*cmd, "check", "trm_bounds", "experiments", "tests"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        pytest.fail("ruff is not installed: install the test extra (pip install -e '.[test]')")
    assert r.returncode == 0, r.stdout + r.stderr
