"""Write ``trm_bounds/data/exact_demo.json``: the built-in demo of ``trm-bounds exact``.

Four small named tree instances (docs/theory.md §1, §2, §5), each with the exact report of
the tree engine stored as its expected values, so ``trm-bounds exact`` (no argument) checks
the engine against them: the tight instance of §5 (``Error = 2 eps^2``), dense logit noise,
an MoE routing flip and a single perturbed context (``Error = 0``).

Usage: ``python experiments/make_exact_demo.py [--out PATH]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trm_bounds.engines.tree import exact_report
from trm_bounds.instances.format import write_instances
from trm_bounds.instances.named import dense_noise, moe_flip, single_perturbation, tight_instance

OUT = Path(__file__).resolve().parents[1] / "trm_bounds" / "data" / "exact_demo.json"


def demo_instances() -> list:
    """The demo's instances, small enough to print in a terminal (V^T <= 27)."""
    return [
        tight_instance(0.1),
        dense_noise(3, 3, scale=0.5, seed=0),
        moe_flip(2, 4, k=2, seed=0),
        single_perturbation(2, 3, scale=1.0, seed=0),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    print(f"wrote {write_instances(args.out, demo_instances(), report=exact_report)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
