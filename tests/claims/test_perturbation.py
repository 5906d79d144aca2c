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

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trm_bounds.claims import render, stale_rows
from trm_bounds.margins import REL_NOISE

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "trm_bounds" / "data" / "results"
SEEDS = (0, 1, 2)


def perturb_floats(obj: Any, rng: np.random.Generator, rel: float = REL_NOISE) -> Any:
    """``obj`` (parsed JSON) with every float ``x`` replaced by ``x (1 + u)``,
    ``u ~ U[-rel, rel]``; ints, bools, strings and the structure unchanged."""
    if isinstance(obj, float):
        return obj * (1.0 + rng.uniform(-rel, rel))
    if isinstance(obj, list):
        return [perturb_floats(x, rng, rel) for x in obj]
    if isinstance(obj, dict):
        return {k: perturb_floats(v, rng, rel) for k, v in obj.items()}
    return obj


def perturbed_copy(src: Path, dst: Path, seed: int, rel: float = REL_NOISE,
                   pattern: str = "*.json") -> int:  # fmt: skip
    """Copy the result folder ``src`` to ``dst`` with every float of every file matching
    ``pattern`` (all JSON files by default) perturbed by :func:`perturb_floats` (seed
    ``seed``); other files verbatim.  Returns the number of floats perturbed."""
    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    n = 0
    for path in sorted(dst.rglob(pattern)):
        data = json.loads(path.read_text())
        n += _count_floats(data)
        data = perturb_floats(data, rng, rel)
        if isinstance(data, dict) and isinstance(data.get("instances"), list):
            data["instances"] = [_still_an_instance(i) if isinstance(i, dict) and "pi_roll" in i
                                 else i for i in data["instances"]]  # fmt: skip
        path.write_text(json.dumps(data))
    return n


def _still_an_instance(inst: dict[str, Any]) -> dict[str, Any]:
    """An exact instance after :func:`perturb_floats` put back into its domain, so that it is
    still accepted (trm_bounds.instances.tree.validate_instance): every distribution divided by
    its sum, rewards clipped to [0, 1]; both change values by about ``rel`` at most.  The
    ``expected`` report it carries is dropped: it records the engine's output on the
    unperturbed instance (exact errors are differences, so they move by far more than ``rel``
    relative when the inputs move by ``rel``), and it is compared, unperturbed, by the
    staleness test of ``tests/test_paper_repro.py``."""
    out = {k: v for k, v in inst.items() if k != "expected"}
    for key in ("p_x", "pi_roll", "pi_theta"):
        a = np.asarray(inst[key], dtype=np.float64)
        out[key] = (a / a.sum(axis=-1, keepdims=True)).tolist()
    out["reward"] = np.clip(np.asarray(inst["reward"], dtype=np.float64), 0.0, 1.0).tolist()
    return out


def _count_floats(obj: Any) -> int:
    if isinstance(obj, float):
        return 1
    if isinstance(obj, list):
        return sum(_count_floats(x) for x in obj)
    if isinstance(obj, dict):
        return sum(_count_floats(v) for v in obj.values())
    return 0


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
