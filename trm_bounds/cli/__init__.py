"""Every command line of trm-bounds: ``trm-bounds bounds|plan|exact|evaluate|plot|theory``.

* ``bounds`` -- every bound of docs/theory.md §4, published and sharp side by side;
  ``--paper-table`` prints the paper's table (docs/theory.md §7) beside ours; ``--dbar``
  reads a ``Dbar_t`` profile (:mod:`trm_bounds.profiles`).
* ``plan`` -- the largest TRM threshold for a target ``B*``, and the sequences a certified
  bound needs (:mod:`trm_bounds.planner`).
* ``exact`` -- the exact tree engine on a ``trm-oracle-instances/v1`` file (no file, or
  ``--demo``: the shipped demo instances).
* ``evaluate`` -- the log evaluator on logprob dumps (``--demo``: the shipped demo dump).
* ``plot`` -- redraw the figures F1-F10 from the result files (``--recompute``: rerun the
  studies first).
* ``theory`` -- where the installed ``docs/theory.md`` is (``--text``: print it), the
  specification every ``§N`` cites.

``python -m trm_bounds``, ``python -m trm_bounds.evaluate`` and ``python -m trm_bounds.plot``
run the same code.  Heavy libraries (torch, matplotlib, pyarrow, ray) are imported only by
the subcommand that needs them, and only after its paths and options are checked (a mistyped
path is reported before torch is imported), so ``bounds`` and ``exact`` work with the core
install; a command whose extras are missing names all of them in one line.  A user error
ends with one line ``trm-bounds <command>: error: ...`` on stderr and exit status 2 (bad
arguments) or 1 (bad input file, failed run); nothing partial is left behind.  Output cut
short by a closed pipe (``trm-bounds exact | head -1``) ends quietly with exit status 141
(128 + SIGPIPE, what a shell reports for a program killed by the signal), as the Python
documentation recommends (``signal`` module, note on SIGPIPE).

One module per command (``bounds`` also holds ``plan``; ``exact`` also ``theory``), the
shared pieces in ``_common``; this module builds the parser and runs the entry points.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from trm_bounds.cli._common import (
    _EXTRA_OF,
    ABOUT,
    EXACT_DEMO,
    EXAMPLES,
    PROG,
    THEORY,
    CliError,
    _Parser,
)
from trm_bounds.cli.bounds import _add_bounds, _add_plan
from trm_bounds.cli.evaluate import _evaluate_parser
from trm_bounds.cli.exact import _add_exact, _add_theory
from trm_bounds.cli.plot import _add_plot, _plot_epilog

__all__ = ["main", "evaluate_main", "plot_main", "build_parser", "CliError", "EXACT_DEMO",
           "THEORY", "PROG"]

# ----------------------------------------------------------------------------- entry points


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trm-bounds")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser(*, with_schema: bool = False,
                 with_figures: bool = False) -> argparse.ArgumentParser:
    """The ``trm-bounds`` parser; ``with_schema``: put the dump schema in ``evaluate --help``
    (imports the log readers' alias table); ``with_figures``: the figure list in
    ``plot --help`` (imports the figure registry, hence matplotlib)."""
    p = _Parser(prog=PROG, description=ABOUT, epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = p.add_subparsers(dest="command", title="commands", metavar="COMMAND",
                           parser_class=_Parser)
    _add_bounds(sub)
    _add_plan(sub)
    _add_exact(sub)
    _evaluate_parser(sub)
    _add_plot(sub)
    _add_theory(sub)
    if with_schema:  # the dump schema (required and aliased fields per framework)
        from trm_bounds.logs import dump_schema

        sub.choices["evaluate"].epilog = dump_schema()
    if with_figures:
        sub.choices["plot"].epilog = _plot_epilog()
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``trm-bounds ...``: parse, run the subcommand, return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    wants_help = "-h" in argv or "--help" in argv
    parser = build_parser(with_schema=wants_help and argv[:1] == ["evaluate"],
                          with_figures=wants_help and argv[:1] == ["plot"])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if args.command is None:  # the usage, and where to look next
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required; try '{PROG} --help' (what the tool does "
              f"and every command) or '{PROG} exact' (a demo)", file=sys.stderr)
        return 2
    sub = parser._subparsers._group_actions[0].choices[args.command]  # type: ignore[union-attr]
    try:
        status = args.run(args, sub)
        sys.stdout.flush()  # a closed pipe surfaces here, inside the handler below
        return status
    except BrokenPipeError:
        # The reader went away (``| head -1``): Python's documented recipe (signal module,
        # "Note on SIGPIPE") -- point stdout at devnull so the interpreter's final flush
        # cannot raise again, and exit like a process killed by SIGPIPE (128 + 13).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except SystemExit as exc:  # a usage error found after parsing (parser.error)
        return int(exc.code or 0)
    except CliError as exc:
        print(f"{PROG} {args.command}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # a lazily imported extra that _require did not list
        extra = _EXTRA_OF.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(f"{PROG} {args.command}: error: needs {exc.name}, which the [{extra}] extra "
              f"installs: pip install 'trm-bounds[{extra}]'", file=sys.stderr)
        return 1


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    """``python -m trm_bounds.evaluate ...`` = ``trm-bounds evaluate ...``."""
    return main(["evaluate", *(sys.argv[1:] if argv is None else argv)])


def plot_main(argv: Sequence[str] | None = None) -> int:
    """``python -m trm_bounds.plot ...`` = ``trm-bounds plot ...``."""
    return main(["plot", *(sys.argv[1:] if argv is None else argv)])
