"""``trm-bounds bounds`` (every bound of docs/theory.md §4) and ``trm-bounds plan`` (thresholds
and sample sizes, :mod:`trm_bounds.planner`)."""

from __future__ import annotations

import argparse
import json

from trm_bounds.cli._common import (
    CliError,
)

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


