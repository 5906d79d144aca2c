"""Build step: ship the result files the figures read inside the wheel.

Everything else about the package is in ``pyproject.toml``.  ``trm-bounds plot`` run from an
installed wheel (away from a source checkout) draws from ``trm_bounds/data/results``; those
files are copied here from ``experiments/results`` when the wheel is built, so the checkout
keeps one copy of each.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: Result files the figures F1-F8 read (trm_bounds.plot.FIGURES; tests/test_packaging.py
#: checks the two lists agree).
FIGURE_RESULTS = (
    "bound_scaling.json",
    "tabular_scaling.json",
    "transformer_mismatch.json",
    "demo_eval/report.json",
    "worst_case.json",
    "certify_figure.json",
)


class BuildPyWithResults(build_py):
    """``build_py`` plus the figure result files under ``trm_bounds/data/results``."""

    def run(self) -> None:
        super().run()
        src = Path(__file__).resolve().parent / "experiments" / "results"
        dst = Path(self.build_lib) / "trm_bounds" / "data" / "results"
        for rel in FIGURE_RESULTS:
            if (src / rel).is_file():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / rel, dst / rel)


setup(cmdclass={"build_py": BuildPyWithResults})
