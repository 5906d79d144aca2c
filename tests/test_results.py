"""Result files (trm_bounds.results): provenance, atomic writes, portable paths."""

import json
import math
import stat
from pathlib import Path

import numpy as np
import pytest

from trm_bounds import results


def test_write_results_provenance_and_types(tmp_path):
    """Provenance keys, numpy values as plain JSON, non-finite floats as strings, mode 0644."""
    root = Path(results.__file__).resolve().parents[1]
    out = tmp_path / "sub" / "r.json"
    results.write_results(
        out,
        {"x": np.arange(3), "y": np.float64(0.5), "z": [math.inf, -math.inf, math.nan]},
        experiment="demo",
        args={"out": str(root / "experiments" / "results" / "r.json"), "elsewhere": "/tmp/q",
              "n": 3},
        seed=7,
    )
    rec = json.loads(out.read_text())
    assert rec["experiment"] == "demo" and rec["seed"] == 7 and "created" in rec
    assert rec["x"] == [0, 1, 2] and rec["y"] == 0.5 and rec["z"] == ["inf", "-inf", "nan"]
    assert rec["args"] == {"out": "experiments/results/r.json", "elsewhere": "/tmp/q", "n": 3}
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert results.read_results(out) == rec


def test_atomic_write_leaves_nothing_on_failure(tmp_path, monkeypatch):
    """A failure at the final rename leaves neither the target nor the temporary file, and a
    failure while serialising writes nothing at all."""
    out = tmp_path / "r.json"
    with pytest.raises(TypeError):
        results.write_results(out, {"bad": object()}, experiment="demo")
    assert list(tmp_path.iterdir()) == []

    def broken_replace(src, dst):
        assert Path(src).is_file()  # the temporary file was written completely
        raise OSError("disk gone")

    monkeypatch.setattr(results.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk gone"):
        results.write_results(out, {"x": 1}, experiment="demo")
    assert list(tmp_path.iterdir()) == []
