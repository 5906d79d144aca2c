"""What every subcommand of :mod:`trm_bounds.cli` shares: the program name and help texts,
the one-line error (:class:`CliError`), the parser that exits 2 with one line, the output-folder
check and the extras check (names every missing extra in one hint)."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import NoReturn

from trm_bounds.results import out_dir_error

PROG = "trm-bounds"

#: What ``trm-bounds --help`` says the tool does (plain text, no markup).
ABOUT = """\
Error bounds of Trust Region Masking (TRM) for LLM reinforcement learning: every bound of
the paper (published and with sharper constants), checked against the exact error on
enumerable models, and applied to the logprobs a trainer and its rollout engine logged.
The mathematics: docs/theory.md (trm-bounds theory prints where it is installed)."""

EXAMPLES = """\
examples:
  trm-bounds bounds --T 4096 --delta 1e-4 --dkl-seq 0.01   every bound at T = 4096
  trm-bounds exact                                         exact error on demo instances
  trm-bounds evaluate --demo --out report                  evaluate the shipped demo dump
  trm-bounds plot --out figures                            redraw the figures F1-F10
  trm-bounds COMMAND --help                                the options of one command"""

_DATA = Path(__file__).resolve().parents[1] / "data"
#: The built-in demo of ``exact`` (written by experiments/make_exact_demo.py).
EXACT_DEMO = _DATA / "exact_demo.json"
#: docs/theory.md as shipped with the package (in a checkout: a tracked symlink to it).
THEORY = _DATA / "theory.md"

#: Largest --dpi of ``plot``: a one-column figure at 1200 dpi is about 4200 x 3100 pixels.
MAX_DPI = 1200.0


class CliError(Exception):
    """A user error found after parsing: one line for stderr, and the exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``prog: error: message`` (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message.splitlines()[0]}\n")


def _check_out(parser: argparse.ArgumentParser, flag: str, path: Path) -> None:
    """A usage error unless ``path`` can be (or become) a folder to write into."""
    if why := out_dir_error(path):
        parser.error(f"{flag} {path}: {why}")


#: The optional dependencies and the extra that installs each (pyproject.toml).
_EXTRA_OF = {"torch": "torch", "matplotlib": "plot", "tqdm": "plot", "pyarrow": "logs",
             "ray": "ray"}


def _installed(module: str) -> bool:
    """Whether ``module`` can be found, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refusing it, or a half-imported module
        return False


def _require(command: str, needs: dict[str, str]) -> None:
    """A :class:`CliError` naming every missing module of ``needs`` (module -> extra) and one
    ``pip install`` line for all their extras; imports nothing (``importlib.util.find_spec``)."""
    missing = [m for m in needs if not _installed(m)]
    if missing:
        extras = sorted({needs[m] for m in missing})
        raise CliError(f"needs {' and '.join(missing)}, which the "
                       f"{' and '.join(f'[{e}]' for e in extras)} extra"
                       f"{'s' if len(extras) > 1 else ''} install"
                       f"{'' if len(extras) > 1 else 's'}: "
                       f"pip install 'trm-bounds[{','.join(extras)}]'")


