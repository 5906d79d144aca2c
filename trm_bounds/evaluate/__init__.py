r"""Evaluate logged logprob dumps: streaming statistics and the report (docs/theory.md §6).

:func:`evaluate` reads a dump (:mod:`trm_bounds.logs`) in chunks, computes mergeable
statistics per chunk (:mod:`trm_bounds.evaluate.stats`) and writes ``report.json``,
``report.md`` and ``sequences.csv`` (:mod:`trm_bounds.evaluate.report`); every option is a field of one
validated :class:`~trm_bounds.evaluate.options.EvaluateOptions`. The command line is
``trm-bounds evaluate`` (or ``python -m trm_bounds.evaluate``). :func:`evaluate_run` evaluates a run step by step
(``--by-step``) and :func:`compare` two dumps side by side (``--compare A B``)
(:mod:`trm_bounds.evaluate.runs`).

(The doctest of :mod:`trm_bounds.evaluate.stats` shows one chunk's statistics.)
"""

from trm_bounds.evaluate.options import EvaluateOptions, FigureDrawer, OptionError
from trm_bounds.evaluate.output import OutputDirError
from trm_bounds.evaluate.report import SCHEMA, build_report, report_markdown
from trm_bounds.evaluate.run import demo_dump_path, evaluate
from trm_bounds.evaluate.runs import compare, evaluate_run, steps_of_run, summary_row
from trm_bounds.evaluate.stats import HIST_EDGES, SCORES, Stats, chunk_stats

__all__ = [
    "SCHEMA",
    "SCORES",
    "HIST_EDGES",
    "Stats",
    "chunk_stats",
    "evaluate",
    "EvaluateOptions",
    "OptionError",
    "OutputDirError",
    "FigureDrawer",
    "build_report",
    "report_markdown",
    "demo_dump_path",
    "evaluate_run",
    "compare",
    "steps_of_run",
    "summary_row",
]
