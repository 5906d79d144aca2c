"""Command line: ``python -m trm_bounds {bounds,exact} ...``.

* ``bounds`` -- every bound of THEORY.md section 4, published and sharp side by side;
  ``--paper-table`` prints the paper's table (THEORY.md section 7) beside ours.
* ``exact`` -- the exact tree engine on a ``trm-oracle-instances/v1`` file
  (:func:`trm_bounds.tabular.main`).

The log evaluator and the figures have their own entry points:
``python -m trm_bounds.evaluate`` and ``python -m trm_bounds.plot``.
"""

from __future__ import annotations

import argparse
import json
import sys

from trm_bounds.bounds import BOUND_NAMES, BOUNDS, compute_bounds, kl_only

SYMBOLS = """\
symbols (THEORY.md sections 1-4; KL is forward, KL(pi_roll || pi_theta), in nats):
  T         horizon: the response length (maximum length with an absorbing end token)
  eps       D_TV^{tok,max}: the largest per-context total variation
            TV(c) = 1/2 sum_v |pi_theta(v|c) - pi_roll(v|c)| over reachable contexts
  delta     D_KL^{tok,max}: the largest per-context KL(pi_roll(.|c) || pi_theta(.|c))
  dkl-seq   D_KL^seq = sum_t E_{c_t ~ d_t^roll} KL(c_t): the sequence-level KL
  dtv-seq   D_TV^seq = E_x TV(P^roll(.|x), P^theta(.|x)): the sequence-level TV
  Dbar_t    E_{c_t ~ d_t^roll} TV(c_t); the Adaptive and Linear bounds use the worst
            case Dbar_t = min(1, eps) here
  published the paper's constants (leading 4; classical 2T(T-1)eps^2 and T(T-1)delta)
  sharp     THEORY.md section 5 (leading 2; classical T(T-1)eps^2 and T(T-1)delta/2)
KL-only setting: omit --eps and --dtv-seq to use eps = min(1, sqrt(delta/2)) and
dtv-seq = min(1, sqrt(dkl-seq/2)) (Pinsker), as the paper's first column does.
"""


def _fmt(x: float) -> str:
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.4f}" if abs(x) < 1e3 else f"{x:.1f}"
    return f"{x:.4e}"


def _bounds_table(pub: dict[str, float], sharp: dict[str, float], sharp_first: bool) -> str:
    cols = ("sharp", "published") if sharp_first else ("published", "sharp")
    vals = {"published": pub, "sharp": sharp}
    head = f"{'bound':<22} {'route':<20} {'scaling':<22} {cols[0]:>13} {cols[1]:>13}"
    lines = [head, "-" * len(head)]
    for name in BOUND_NAMES:
        s = BOUNDS[name]
        lines.append(
            f"{s.label:<22} {s.route:<20} {s.scaling:<22} "
            f"{_fmt(vals[cols[0]][name]):>13} {_fmt(vals[cols[1]][name]):>13}"
        )
    return "\n".join(lines)


def _paper_table() -> tuple[str, bool]:
    """The paper's table and length-bias table beside ours, and whether all entries reproduce."""
    from trm_bounds.paper import (
        LENGTH_BIAS_PAPER,
        LENGTH_BIAS_T,
        length_bias,
        paper_table_rows,
        reproduced,
    )

    rows = paper_table_rows()
    head = (f"{'row':<40} {'column':<24} {'paper':>10} {'ours (pub.)':>12} "
            f"{'ours (sharp)':>12}  status")
    out = ["Paper's table 'error bounds', T = 4096 (THEORY.md section 7)", head, "-" * len(head)]
    for r in rows:
        printed = f"{'<= ' if r.relation == 'upper' else ''}{r.paper:g}"
        status = ("reproduced" if r.ok else "DIFFERS") + (
            f" ({r.relation})" if r.relation != "rounded" else "")
        if r.note:
            status += f"; {r.note}"
        out.append(f"{r.row:<40} {r.column:<24} {printed:>10} {_fmt(r.ours):>12} "
                   f"{_fmt(r.ours_sharp):>12}  {status}")
    out += ["", "Length bias (1-p)^T (THEORY.md sections 6, 7)",
            f"{'p':<8}" + "".join(f"{'T=' + str(T):>25}" for T in LENGTH_BIAS_T)]
    for p, printed in LENGTH_BIAS_PAPER.items():
        cells = []
        for T, (val, dec, rel) in zip(LENGTH_BIAS_T, printed, strict=False):
            ours = length_bias(p, T)
            paper = f"<{val:g}" if rel == "below" else f"{val:g}"
            mark = "ok" if reproduced(ours, val, dec, rel) else "DIFFERS"
            cells.append(f"{paper:>8} vs {ours:<9.4g}{mark:>3}")
        out.append(f"{p:<8g}" + "".join(f"{c:>25}" for c in cells))
    n_ok = sum(r.ok for r in rows)
    out += ["", f"{n_ok}/{len(rows)} table entries reproduced under the paper's rounding."]
    return "\n".join(out), n_ok == len(rows)


def _bounds_main(args: argparse.Namespace) -> int:
    if args.paper_table:
        text, all_ok = _paper_table()
        print(text)
        return 0 if all_ok else 1
    missing = [f for f in ("T", "delta", "dkl_seq") if getattr(args, f) is None]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        print(f"error: bounds needs {flags} (or --paper-table)", file=sys.stderr)
        return 2
    eps_k, dtv_k = kl_only(args.delta, args.dkl_seq)
    eps = eps_k if args.eps is None else args.eps
    dtv = dtv_k if args.dtv_seq is None else args.dtv_seq
    kw = dict(eps=eps, delta=args.delta, dkl_seq=args.dkl_seq, dtv_seq=dtv)
    try:
        pub = compute_bounds(args.T, **kw)
        sharp = compute_bounds(args.T, **kw, sharp=True)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        rec = {"inputs": {"T": args.T, **kw}, "primary": "sharp" if args.sharp else "published",
               "published": pub, "sharp": sharp}
        print(json.dumps(rec, indent=1))
        return 0
    print(f"T = {args.T}, eps = {eps:g}, delta = {args.delta:g}, "
          f"D_KL^seq = {args.dkl_seq:g}, D_TV^seq = {dtv:g} (Dbar_t = min(1, eps))")
    print(_bounds_table(pub, sharp, args.sharp))
    best = "sharp" if args.sharp else "published"
    vals = sharp if args.sharp else pub
    tight = min((n for n in BOUND_NAMES if n != "unified"), key=lambda n: vals[n])
    print(f"tightest ({best}): {BOUNDS[tight].label} = {_fmt(vals[tight])}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m trm_bounds", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bounds", help="every bound, published and sharp",
                       description="Every bound of THEORY.md section 4, published and sharp.",
                       epilog=SYMBOLS, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--T", type=int, help="horizon T (positive integer)")
    b.add_argument("--eps", type=float, help="eps = D_TV^{tok,max} (default: KL-only)")
    b.add_argument("--delta", type=float, help="delta = D_KL^{tok,max}, nats")
    b.add_argument("--dkl-seq", type=float, help="D_KL^seq, nats")
    b.add_argument("--dtv-seq", type=float, help="D_TV^seq (default: KL-only)")
    b.add_argument("--sharp", action="store_true",
                   help="lead with the sharp constants (THEORY.md section 5)")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--paper-table", action="store_true",
                   help="the paper's table beside ours (THEORY.md section 7)")
    sub.add_parser("exact", help="exact error and every bound on tabular instances",
                   add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "exact":
        from trm_bounds.tabular import main as exact_main

        return exact_main(argv[1:])
    args = build_parser().parse_args(argv)
    return _bounds_main(args)


if __name__ == "__main__":
    sys.exit(main())
