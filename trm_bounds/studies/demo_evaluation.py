"""The log evaluator on the shipped demo dump: the data of figure F8.

Runs :func:`trm_bounds.evaluate.evaluate` on ``trm_bounds/data/demo_dump.npz`` (verl field
names; made by ``experiments/make_demo_dump.py``) and writes ``report.json``, ``report.md``
and ``sequences.csv`` into the output folder, without figures (``python -m trm_bounds.plot``
draws F8 from ``report.json``).  The report's layout is the evaluator's
(schema ``trm-bounds-report/v1``, docs/theory.md §6).

Usage::

    python experiments/demo_evaluation.py            # into trm_bounds/data/results/demo_eval
    python -m trm_bounds.studies.demo_evaluation --out DIR
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from trm_bounds.studies._cli import default_out, study_main

RESULT = "demo_eval/report.json"


@dataclass
class Args:
    """Arguments of the study (seconds).

    ``out`` None: ``trm_bounds/data/results/demo_eval`` in a source checkout, else
    ``./results/demo_eval`` (a folder: the evaluator writes several files).
    """

    out: str | None = None  # output folder
    seed: int = 0  # unused (the demo dump is fixed); kept for a uniform interface
    size: str = "default"  # the only size


SIZES: dict[str, dict] = {}


def run(args: Args) -> dict:
    """Evaluate the demo dump into the output folder; return the report."""
    from trm_bounds.evaluate import demo_dump_path, evaluate
    from trm_bounds.evaluate.run import DEMO_LIMIT_SOURCE, DEMO_MAX_RESPONSE_LENGTH

    out = Path(args.out) if args.out is not None else default_out(RESULT).parent
    demo = demo_dump_path()
    rel = os.path.relpath(demo)  # machine-independent in the report when run from the checkout
    # the study owns its folder: a rerun replaces the earlier report
    return evaluate([demo.as_posix() if rel.startswith("..") else rel], out, progress=False,
                    overwrite=True, max_response_length=DEMO_MAX_RESPONSE_LENGTH,
                    max_response_length_source=DEMO_LIMIT_SOURCE)


def produce(args: Args) -> Path:
    """Run the study; return the path of its ``report.json``."""
    out = Path(args.out) if args.out is not None else default_out(RESULT).parent
    run(args)
    return out / "report.json"


def main(argv: list[str] | None = None) -> int:
    """Command line: evaluate the demo dump."""
    return study_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
