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
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from trm_bounds.results import out_dir_error

__all__ = ["main", "evaluate_main", "plot_main", "build_parser", "CliError"]

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

_DATA = Path(__file__).resolve().parent / "data"
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


# ----------------------------------------------------------------------------- bounds


def _bounds(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.bounds import compute_bounds, format_bounds_table, kl_only
    from trm_bounds.paper import format_paper_table, paper_table
    from trm_bounds.results import to_jsonable

    if args.paper_table:
        given = [f for f in ("T", "eps", "delta", "dkl_seq", "dtv_seq", "dbar")
                 if getattr(args, f) is not None]  # fmt: skip
        if given:
            parser.error(f"--paper-table takes no --{given[0].replace('_', '-')} (the table "
                         "has its own inputs)")
        record = paper_table(sharp=args.sharp)
        print(json.dumps(to_jsonable(record), indent=1) if args.json else format_paper_table(record))
        return 0 if record["all_reproduced"] else 1
    missing = [f for f in ("T", "delta", "dkl_seq") if getattr(args, f) is None]
    if missing:
        parser.error("needs " + ", ".join("--" + m.replace("_", "-") for m in missing)
                     + " (or --paper-table)")
    dbar = None
    if args.dbar is not None:  # a Dbar_t profile; shorter than T: zeros after (absorbing end)
        from trm_bounds.profiles import read_dbar_profile

        try:
            dbar = read_dbar_profile(args.dbar, T=args.T)
        except ValueError as exc:
            raise CliError(str(exc), status=2) from None
    try:  # kl_only checks delta and dkl_seq, compute_bounds every input and relation
        eps_k, dtv_k = kl_only(args.delta, args.dkl_seq)
        eps = eps_k if args.eps is None else args.eps
        if args.dtv_seq is None and dbar is not None:  # the largest value the profile allows
            dtv_k = min(dtv_k, float(dbar.sum()))
        dtv = dtv_k if args.dtv_seq is None else args.dtv_seq
        kw = dict(eps=eps, delta=args.delta, dkl_seq=args.dkl_seq, dtv_seq=dtv)
        pub = compute_bounds(args.T, **kw, dbar=dbar)
        sharp = compute_bounds(args.T, **kw, dbar=dbar, sharp=True)
    except (ValueError, OverflowError) as exc:
        parser.error(str(exc) + (f" (--dbar {args.dbar})" if dbar is not None else ""))
    if args.json:
        rec = {"inputs": {"T": args.T, **kw, "dbar": dbar},
               "primary": "sharp" if args.sharp else "published", "published": pub, "sharp": sharp}
        print(json.dumps(to_jsonable(rec), indent=1))
        return 0
    how = "min(1, eps)" if dbar is None else f"from {args.dbar}, sum = {float(dbar.sum()):g}"
    print(f"T = {args.T}, eps = {float(eps):g}, delta = {float(args.delta):g}, "
          f"D_KL^seq = {float(args.dkl_seq):g}, D_TV^seq = {float(dtv):g} (Dbar_t {how})")
    print(format_bounds_table(pub, sharp, sharp_first=args.sharp))
    return 0


def _add_bounds(sub) -> None:
    from trm_bounds.bounds.table import SYMBOLS

    kl_only = ("KL-only setting: omit --eps and --dtv-seq to use eps = min(1, sqrt(delta/2)) and\n"
               "dtv-seq = min(1, sqrt(dkl-seq/2)) (Pinsker), as the paper's first column does.\n")
    b = sub.add_parser("bounds", help="every bound, published and sharp",
                       description="Every bound of docs/theory.md §4, published and sharp.",
                       epilog=SYMBOLS + kl_only,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--T", type=int, help="horizon T (positive integer)")
    b.add_argument("--eps", type=float, help="eps = D_TV^{tok,max} (default: KL-only)")
    b.add_argument("--delta", type=float, help="delta = D_KL^{tok,max}, nats")
    b.add_argument("--dkl-seq", type=float, help="D_KL^seq, nats")
    b.add_argument("--dtv-seq", type=float, help="D_TV^seq (default: KL-only)")
    b.add_argument("--dbar", metavar="FILE",
                   help="Dbar_t profile for Adaptive and Linear: JSON list, .npy, text (one per "
                        "line) or the evaluator's report.json (its dbar_estimate); zeros after "
                        "its end (default: the worst case Dbar_t = min(1, eps))")
    b.add_argument("--sharp", action="store_true",
                   help="lead with the sharp constants (docs/theory.md §5)")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--paper-table", action="store_true",
                   help="the paper's table beside ours (docs/theory.md §7); with --json as "
                        "JSON, with --sharp the sharp column first")
    b.set_defaults(run=_bounds)


# ----------------------------------------------------------------------------- plan


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.planner import format_plan, plan, required_sample_size, sequences_for_width
    from trm_bounds.profiles import read_lengths
    from trm_bounds.results import to_jsonable

    if args.target is None and args.certified_bound is None:
        parser.error("needs --target (B*) or --certified-bound (a certified bound)")
    if args.T is None and args.lengths is None:
        parser.error("needs --T or --lengths (--T: the generation limit, max response length)")
    try:
        lengths = None if args.lengths is None else read_lengths(args.lengths)
    except ValueError as exc:
        raise CliError(str(exc), status=2) from None
    constants = (("published", 4), ("sharp", 2), ("proved_here", 1))
    try:
        if args.target is not None:
            p = plan(args.T, args.target, dkl_seq=args.dkl_seq, lengths=lengths)
        else:
            p = {"T": args.T if args.T is not None else int(max(lengths))}
        if args.width is not None:  # constants 4 (published), 2 (sharp), 1 (docs §9)
            p["certified"] = {v: sequences_for_width(args.width, T_max=p["T"], level=args.level,
                                                     method=args.method or "hoeffding",
                                                     variance=args.variance, constant=c)
                              for v, c in constants}
        if args.certified_bound is not None:
            p["sample_size"] = {v: required_sample_size(
                args.certified_bound, T_max=p["T"], level=args.level,
                method=args.method or "betting", constant=c,
                reward_range=args.reward_range or (0.0, 1.0)) for v, c in constants}
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(to_jsonable(p), indent=1) if args.json else format_plan(p))
    return 0


def _add_plan(sub) -> None:
    p = sub.add_parser("plan", help="threshold delta for a target B*; sequences a certified "
                       "bound needs", description="Largest per-token KL threshold delta (nats) "
                       "with B* <= --target, published and sharp, at the uniform worst case "
                       "(trm_bounds.planner); --width / --certified-bound: sequences (or prompt "
                       "groups) for a certified bound of that width / size at the limit --T.")
    p.add_argument("--T", "--max-response-length", dest="T", type=int, help="horizon T = the "
                   "generation limit, max response length (default with --lengths: the longest)")
    p.add_argument("--target", type=float, help="target for B* (> 0)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dkl-seq", type=float, help="fixed D_KL^seq, nats (default: T delta)")
    g.add_argument("--lengths", metavar="FILE",
                   help="response lengths (one per line, JSON list or .npy): horizon = longest, "
                        "D_KL^seq = delta * mean length, Dbar_t = eps Pr(T_i >= t), and one "
                        "threshold per length quantile")
    p.add_argument("--width", type=float, help="target width of the certified Linear bound")
    p.add_argument("--certified-bound", type=float, metavar="X", help="units for a certified "
                   "|Error| bound <= X: exact for --method in the best case (every X_i = 0), "
                   "and the lower limit of any valid bound")
    p.add_argument("--reward-range", type=float, nargs=2, metavar=("LO", "HI"),
                   help="with --certified-bound: the a-priori reward range (default 0 1)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--method", choices=("betting", "bernstein", "hoeffding"), default=None,
                   help="confidence bound (default: hoeffding for --width, a guarantee; "
                        "betting for --certified-bound, the certificate's default)")
    p.add_argument("--variance", type=float, default=None,
                   help="with --method bernstein: assumed Var(X_i) (default T^2/4, the largest)")
    p.add_argument("--json", action="store_true", help="JSON (delta_published, delta_sharp, ...)")
    p.set_defaults(run=_plan)


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


# ----------------------------------------------------------------------------- evaluate


def _parse_threshold(text: str) -> tuple[str, object]:
    from trm_bounds.masking import parse_threshold

    try:
        return parse_threshold(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


#: The flag of ``trm-bounds evaluate`` that sets each field of
#: :class:`~trm_bounds.evaluate.options.EvaluateOptions` (its errors name fields, ours flags).
_EVALUATE_FLAG = {
    "fmt": "--format", "thresholds": "--threshold", "criteria": "--criterion",
    "ln_delta": "--ln-delta", "ln_eps": "--ln-eps", "rollout_rs": "--rollout-rs",
    "rollout_rs_threshold": "--rollout-rs-threshold", "clamp_log_ratio": "--clamp-log-ratio",
    "level": "--level", "max_response_length": "--max-response-length",
    "reward_range": "--reward-range", "chunk_size": "--chunk-size", "n_buckets": "--buckets",
    "engine": "--engine", "address": "--address",
}  # fmt: skip


def _terminate_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread, so a killed run cleans up (its
    output transaction removes the staging folder) like Ctrl-C does."""
    import signal

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding program): leave its handler
        pass


def _evaluate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from trm_bounds.evaluate.options import EvaluateOptions, OptionError

    if args.demo and args.dump:
        parser.error("--demo evaluates the shipped demo dump alone: give either DUMP or --demo, "
                     "not both")
    if not args.demo and not args.dump:
        parser.error("give a DUMP or --demo")
    if args.by_step and args.compare:
        parser.error("--by-step and --compare exclude each other")
    if args.compare and len(args.dump) != 2:
        parser.error(f"--compare takes exactly two dumps (A B), got {len(args.dump)}")
    from trm_bounds.evaluate.run import DEMO_LIMIT_SOURCE, DEMO_MAX_RESPONSE_LENGTH

    limit, source = args.max_response_length, "--max-response-length"
    if args.demo and limit is None:  # the shipped dump's limit is known: ours, not the user's
        limit, source = DEMO_MAX_RESPONSE_LENGTH, DEMO_LIMIT_SOURCE
    try:
        opts = EvaluateOptions(
            fmt=args.fmt, thresholds=dict(args.threshold), criteria=args.criteria,
            ln_delta=args.ln_delta, ln_eps=args.ln_eps, chunk_size=args.chunk_size,
            n_buckets=args.buckets, clamp_log_ratio=args.clamp_log_ratio,
            rollout_rs=args.rollout_rs, rollout_rs_threshold=args.rollout_rs_threshold,
            level=args.level, max_response_length=limit, max_response_length_source=source,
            reward_range=tuple(args.reward_range), trust_pickle=args.trust_pickle,
            float64=args.float64, progress=False if args.quiet else None,
            overwrite=args.overwrite, engine=args.engine, address=args.address,
            html=not args.no_html,
        )  # fmt: skip
    except OptionError as err:
        parser.error(f"{_EVALUATE_FLAG.get(err.field, err.field)}: {err.detail}")
    _check_out(parser, "--out", args.out)
    needs = {"torch": "logs"}
    if not args.no_figures:
        needs["matplotlib"] = "plot"
    if args.engine == "ray":
        needs["ray"] = "ray"
    _require("evaluate", needs)
    from trm_bounds.logs import LogFormatError, data_files

    try:  # a mistyped path is said before torch and the readers are imported
        data_files([d for d in args.dump if "://" not in d])
    except LogFormatError as exc:
        raise CliError(str(exc), status=2) from None
    from trm_bounds.evaluate import demo_dump_path
    from trm_bounds.evaluate.runs import evaluate_runs

    dumps = list(args.dump)
    if args.demo:  # relative when run from the checkout: machine-independent in reports
        rel = os.path.relpath(demo := demo_dump_path())
        dumps = [demo.as_posix() if rel.startswith("..") else rel]
    trends = None  # the figure callbacks: matplotlib only when figures are drawn
    if not args.no_figures:
        from trm_bounds.plot.evaluate import draw_report_figures
        from trm_bounds.plot.figures_runs import draw_run_figures as trends

        opts = opts.replace(draw_figures=draw_report_figures)
    _terminate_as_interrupt()
    try:  # a failed or killed run leaves nothing behind (one output transaction)
        line, warnings = evaluate_runs(dumps, args.out, opts, by_step=args.by_step,
                                       pair=args.compare, draw_trends=trends)  # fmt: skip
    except (LogFormatError, ValueError, OSError) as exc:
        if isinstance(exc, OSError):
            raise CliError(f"{exc.filename or args.out}: {exc.strerror or exc}") from None
        raise CliError(str(exc), status=2) from None
    print(line)
    for w in warnings:
        print(f"{PROG} evaluate: warning: {w}", file=sys.stderr)
    return 0


def _reward_range(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="evaluate logged trainer/rollout logprobs",
        description="Evaluate logged trainer/rollout logprobs: TRM criteria, metrics, bounds "
                    "(docs/theory.md §6). Writes report.json, report.md, report.html, "
                    "sequences.csv and figures into --out.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dump", nargs="*", help="files, directories or globs (one dataset)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--demo", action="store_true", help="evaluate the shipped demo dump")
    p.add_argument("--format", default="auto", dest="fmt",
                   help="dump format (default: detected from the file)")
    p.add_argument("--threshold", action="append", type=_parse_threshold, default=[],
                   metavar="NAME=VALUE", help="override a criterion threshold (repeatable)")
    p.add_argument("--criterion", action="append", default=None, dest="criteria",
                   metavar="NAME",
                   help="evaluate only these criteria (repeatable; default: all applicable)")
    p.add_argument("--ln-delta", type=float, default=0.05,
                   help="LN-TRM per-token KL tolerance (nats, > 0)")
    p.add_argument("--ln-eps", type=float, default=None,
                   help="LN-TRM TV tolerance (coupling, > 0)")
    p.add_argument("--level", type=float, default=0.95,
                   help="confidence level of the certified bounds (default 0.95)")
    p.add_argument("--max-response-length", type=int, default=None, metavar="N",
                   help="the generation limit of the run (verl data.max_response_length, TRL "
                        "max_completion_length, vLLM max_tokens): needed for a certified bound "
                        "unless the dump fixes it (default: read from the dump where it can "
                        "be; never the longest logged response)")
    p.add_argument("--reward-range", nargs=2, type=_reward_range, default=(0.0, 1.0),
                   metavar=("LO", "HI"),
                   help="the range every reward can take (default 0 1); a logged reward outside "
                        "it is an error; the certified bound scales with HI - LO")
    p.add_argument("--chunk-size", type=int, default=4096, help="sequences per chunk")
    p.add_argument("--buckets", type=int, default=4,
                   help="length quantile buckets (1 to 1000, default 4)")
    p.add_argument("--trust-pickle", action="store_true", help="allow arbitrary unpickling")
    p.add_argument("--no-figures", action="store_true", help="write no figures")
    p.add_argument("--float64", action="store_true",
                   help="float64 arithmetic for float32 dumps (default: the dump's precision)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-html", action="store_true", help="write no report.html")
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default), or ray: one Ray task per shard (pip install "
                        "'trm-bounds[ray]')")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join with --engine ray: auto, or ray://HOST:PORT "
                        "(default: start a local one)")
    p.add_argument("--rollout-rs", default=None, metavar="OPTS",
                   help="verl's rejection options, comma-joined (token_k1|k2|k3, "
                        "seq_sum_k1|k2|k3, seq_mean_k1|k2|k3, seq_max_k2|k3)")
    p.add_argument("--rollout-rs-threshold", default=None, metavar="VALUES",
                   help="verl's thresholds: one shared or one per option, comma-joined; "
                        "k1 options take LOWER_UPPER ratio bounds")
    p.add_argument("--clamp-log-ratio", type=float, default=None, metavar="C",
                   help="clip log(pi_theta/pi_roll) to [-C, C] first (default: 20, verl's, with "
                        "--rollout-rs, so its decisions are verl's; none otherwise, a trainer "
                        "logprob of -inf being infinite divergence; inf: never clip)")
    p.add_argument("--by-step", action="store_true",
                   help="DUMP is a run (step files): one report per step in --out/step_N, "
                        "run.json and trend figures")
    p.add_argument("--compare", action="store_true",
                   help="two DUMPs A B side by side: --out/a, --out/b, compare.json/.md")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the report in a non-empty --out (refused otherwise)")
    p.set_defaults(run=_evaluate)


# ----------------------------------------------------------------------------- plot


def _plot(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.full and not args.recompute:
        parser.error("--full only makes sense with --recompute")
    if args.seed is not None and not args.recompute:
        parser.error("--seed only makes sense with --recompute (the figures are redrawn "
                     "from result files, which hold their own seed)")
    if args.dpi is not None and not (math.isfinite(args.dpi) and 0 < args.dpi <= MAX_DPI):
        parser.error(f"--dpi: must be a number in (0, {MAX_DPI:g}], got {args.dpi:g}")
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - {"png", "pdf", "svg"})
    if unknown or not formats:
        parser.error(f"--formats: unsupported format {unknown[0] if unknown else '(none)'!r}; "
                     "use png, pdf, svg")
    _check_out(parser, "--out", args.out)
    if args.recompute and args.results:
        _check_out(parser, "--results", args.results)
    if args.results is not None and not args.recompute and not args.results.is_dir():
        parser.error(f"--results {args.results}: no such directory")
    _require("plot", {"matplotlib": "plot", **({"torch": "torch"} if args.recompute else {})})
    from trm_bounds.plot.figures import FIGURES
    from trm_bounds.plot.redraw import default_results, draw_all, figure_sources

    unknown = [k for k in args.only or () if k not in FIGURES]
    if unknown:
        parser.error(f"--only: unknown figure {unknown[0]!r} (choose from {', '.join(FIGURES)})")
    created = not args.out.exists()
    try:  # the folder first: an --out that cannot be created is not a missing result file
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"--out {args.out}: cannot create ({exc.strerror or exc})") from None
    results = args.results or default_results(args.out, recompute=args.recompute)
    try:
        failed = []
        if args.recompute:  # the studies run outside the figure code (layering)
            from trm_bounds.studies import recompute_files

            failed = recompute_files(results, figure_sources(args.only), full=args.full,
                                     seed=args.seed)  # fmt: skip
        n_bad = draw_all(args.out, formats, results=results, keys=args.only, dpi=args.dpi,
                         failed_studies=failed)  # fmt: skip
    except OSError as exc:
        raise CliError(f"{exc.filename or args.out}: {exc.strerror or exc}") from None
    finally:
        if created and args.out.is_dir() and not any(args.out.iterdir()):
            args.out.rmdir()  # nothing drawn: leave nothing behind
    return 1 if n_bad else 0


def _plot_epilog() -> str:
    """The figures of the registry, one line each (``plot --help``; needs matplotlib)."""
    if not _installed("matplotlib"):
        return "Figures: F1-F10 (pip install 'trm-bounds[plot]' to list them)."
    from trm_bounds.plot.figures import FIGURES

    return "figures:\n" + "\n".join(f"  {k:4s} {spec.what}" for k, spec in FIGURES.items())


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot", help="redraw every figure (F1-F10) from the result files",
        description="Redraw every figure (F1-F10) from the result files. Result files are "
                    "read from --results, else from the package's trm_bounds/data/results (in "
                    "a source checkout the tracked folder, in a wheel the installed copies). "
                    "--recompute reruns the studies first (small default, a few minutes) into "
                    "--results, else into trm_bounds/data/results in a checkout, else into "
                    "OUT/results.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recompute", action="store_true",
                   help="rerun the studies (small default, a few minutes) first")
    p.add_argument("--full", action="store_true",
                   help="with --recompute: larger runs (and --device cuda on a GPU)")
    p.add_argument("--out", type=Path, default=Path("figures"),
                   help="figure folder (default: ./figures)")
    p.add_argument("--results", type=Path, default=None, help="folder of the result files")
    p.add_argument("--only", action="append", metavar="FN", type=str.upper,
                   help="draw only this figure (repeatable), e.g. F3; checked against the "
                        "figure registry (trm_bounds.plot.figures.FIGURES)")
    p.add_argument("--formats", default="png,pdf", help="comma-separated formats (png,pdf,svg)")
    p.add_argument("--dpi", type=float, default=None,
                   help=f"PNG resolution, at most {MAX_DPI:g} (default 300)")
    p.add_argument("--seed", type=int, default=None, help="with --recompute: the studies' seed")
    p.set_defaults(run=_plot)


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
