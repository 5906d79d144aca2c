"""``trm-bounds evaluate``: the log evaluator (:mod:`trm_bounds.evaluate`); paths and options
are checked before torch is imported."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trm_bounds.cli._common import (
    PROG,
    CliError,
    _check_out,
    _require,
)

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


