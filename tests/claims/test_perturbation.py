"""The text of ``paper_repro.md`` does not depend on float noise in the result files.

Every float of every committed result file (``trm_bounds/data/results/**/*.json``) is multiplied
by ``1 + u``, ``u`` uniform in ``[-REL_NOISE, REL_NOISE]`` (``1e-9``, a thousand times the
differences between CPUs) with a fixed seed; the table rendered from the perturbed folder must
equal the one rendered from the originals, and the committed file (except the rows marked †,
see ``TRAINED_FACTOR``).  The transformer instances are perturbed too, then put back into their
domain (distributions renormalised, rewards clipped to [0, 1]), and their row must match the
unperturbed rendering digit for digit.  This is the CPU-independent
form of "command 1 then command 2 pass on any machine": a decision that lies within float
noise of its threshold either changes the text here or raises MarginError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.perturb import perturb_floats, perturbed_copy
from trm_bounds.claims import render, stale_rows
from trm_bounds.margins import REL_NOISE

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "trm_bounds" / "data" / "results"
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def original() -> str:
    text, oks = render(RESULTS)
    assert all(oks.values()), oks
    return text


def test_perturb_floats_moves_every_float_and_nothing_else():
    """The perturbation changes each float by at most ``rel`` (relative), and some by more
    than ``rel / 10``; ints, strings and booleans are untouched."""
    rng = np.random.default_rng(0)
    data = {"a": [1.0, 2.5, -3.0] * 10, "n": 7, "s": "x", "b": True, "z": 0.0}
    out = perturb_floats(data, rng)
    a, b = np.array(data["a"]), np.array(out["a"])
    assert np.all(np.abs(b / a - 1) <= REL_NOISE) and np.any(np.abs(b / a - 1) > REL_NOISE / 10)
    assert (out["n"], out["s"], out["b"], out["z"]) == (7, "x", True, 0.0)
    assert type(out["n"]) is int and type(out["b"]) is bool


@pytest.mark.parametrize("seed", SEEDS)
def test_rendering_is_the_same_from_perturbed_result_files(seed, tmp_path, original):
    """Rendered from a perturbed copy of trm_bounds/data/results, the table is identical, digit
    for digit, to the one rendered from the originals and to the committed paper_repro.md."""
    n = perturbed_copy(RESULTS, tmp_path / "results", seed)
    assert n > 1000  # every result file holds floats: the perturbation reaches them
    text, oks = render(tmp_path / "results")
    assert all(oks.values()), oks
    diff = [f"orig: {a}\npert: {b}" for a, b in zip(original.splitlines(), text.splitlines(),
                                                     strict=True) if a != b]  # fmt: skip
    assert not diff, "\n".join(diff[:3])
    assert not stale_rows((ROOT / "paper_repro.md").read_text(), text)


def test_a_perturbation_far_above_the_margin_changes_the_text(tmp_path, original):
    """The rendering really reads the perturbed folder: the demo evaluation's report moved by
    a relative 1e-2 (far above every margin) changes the row that reads it, and only that row."""
    perturbed_copy(RESULTS, tmp_path / "results", 0, rel=1e-2, pattern="report.json")
    text, _ = render(tmp_path / "results")
    changed = [b for a, b in zip(original.splitlines(), text.splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and "| The minimum over the three bounds" in changed[0]
