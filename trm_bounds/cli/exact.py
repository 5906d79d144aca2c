"""``trm-bounds exact`` (the exact tree engine; a built-in demo) and ``trm-bounds theory``
(where the shipped docs/theory.md is)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from trm_bounds.cli._common import (
    EXACT_DEMO,
    THEORY,
    CliError,
)
from trm_bounds.results import out_dir_error

# ----------------------------------------------------------------------------- exact


def _exact(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.engines.tree import check_instance
    from trm_bounds.instances.format import SCHEMA, load_instances
    from trm_bounds.report import format_report
    from trm_bounds.results import atomic_write_text, to_jsonable

    if args.demo and args.instances is not None:
        parser.error(f"--demo takes no INSTANCES file (got {args.instances})")
    if args.instances is None:  # the built-in demo
        args.instances = EXACT_DEMO
    if args.baseline is not None and not math.isfinite(args.baseline):
        parser.error(f"--baseline: must be a finite number, got {args.baseline}")
    if args.out is not None:
        if Path(args.out).is_dir():
            parser.error(f"--json {args.out}: is a directory")
        folder = Path(args.out).absolute().parent
        if why := out_dir_error(folder):  # before the engine runs, not after
            parser.error(f"--json {args.out}: {f'{folder} ' if folder.exists() else ''}{why}")
    try:
        instances = load_instances(args.instances)
        if not instances:
            raise ValueError(f"{args.instances}: field 'instances': holds no instance")
        checked = []  # (report, mismatches against the expected values, or None)
        for i, inst in enumerate(instances):
            try:  # at --baseline, else at the baseline of the file's expected values
                checked.append(check_instance(inst, baseline=args.baseline))
            except ValueError as exc:
                raise ValueError(f"{args.instances}: instance {i} (id {inst.id!r}): {exc}") from None
    except (ValueError, OSError) as exc:
        raise CliError(str(exc), status=2) from None
    n_bad = 0
    for inst, (rep, bad) in zip(instances, checked, strict=True):
        print(format_report(rep, name=inst.id))
        if bad is not None:
            n_bad += bool(bad)
            status = "MISMATCH: " + "; ".join(bad[:5]) if bad else "matches expected"
            print(f"  expected values: {status}")
        print()
    if args.out is not None:
        doc = {"schema": SCHEMA + "/reports", "source": str(args.instances),
               "reports": [{"id": inst.id, **dict(rep)}
                           for inst, (rep, _) in zip(instances, checked, strict=True)]}
        try:
            atomic_write_text(args.out, json.dumps(to_jsonable(doc), indent=1) + "\n")
        except OSError as exc:
            raise CliError(f"--json {args.out}: {exc.strerror or exc}") from None
    if n_bad:
        raise CliError(f"{n_bad} instance(s) do not match their expected values")
    return 0


def _add_exact(sub) -> None:
    e = sub.add_parser(
        "exact", help="exact error and every bound on tabular instances",
        description="Exact surrogate error, divergences and bounds of tree instances "
                    "(trm-oracle-instances/v1). Instances that store expected values are "
                    "compared with them (relative 1e-9); a mismatch exits 1. Without a file: "
                    "the shipped demo (four small named instances with their expected values).")
    e.add_argument("instances", nargs="?", default=None,
                   help="trm-oracle-instances/v1 JSON file (default: the shipped demo)")
    e.add_argument("--demo", action="store_true",
                   help="the shipped demo instances (the default without a file)")
    e.add_argument("--json", dest="out", default=None, help="write every report here (JSON)")
    e.add_argument("--baseline", type=float, default=None,
                   help="b for the reported L = E[(R - b) sum_t rho_t] (default: the "
                        "baseline the file's expected values were computed with, else 0)")
    e.set_defaults(run=_exact)



# ----------------------------------------------------------------------------- theory


def _theory(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if not THEORY.is_file():
        raise CliError(f"{THEORY}: not found (a broken install: reinstall trm-bounds)")
    print(THEORY.read_text(encoding="utf-8") if args.text else THEORY.resolve())
    return 0


def _add_theory(sub) -> None:
    t = sub.add_parser(
        "theory", help="where docs/theory.md, the specification every §N cites, is installed",
        description="Print the path of docs/theory.md as installed with the package (every "
                    "help screen, verdict and docstring cites its sections as §N); --text "
                    "prints the text itself.")
    t.add_argument("--text", action="store_true", help="print the text instead of the path")
    t.set_defaults(run=_theory)


