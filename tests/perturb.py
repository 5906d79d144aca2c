"""Result files with every float moved by a relative ``rel`` (default ``REL_NOISE = 1e-9``).

A CPU that sums in another order moves results by far less; text drawn from result files
(``paper_repro.md``, figure captions) must read the same from a perturbed copy.  Shared by
``tests/claims/test_perturbation.py`` and ``tests/plot/test_captions.py``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.margins import REL_NOISE


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
