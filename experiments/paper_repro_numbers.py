r"""Render ``paper_repro.md`` from the claims of :mod:`trm_bounds.claims`.

Usage::

    python experiments/paper_repro_numbers.py --claim theorems   # one group; exit 1 if it fails
    python experiments/paper_repro_numbers.py --write            # regenerate paper_repro.md
    python experiments/paper_repro_numbers.py --check            # exit 1 if paper_repro.md is stale

``--results DIR`` reads the result files from ``DIR`` instead of ``trm_bounds/data/results``.
Staleness (:func:`trm_bounds.claims.stale_rows`): every row must match paper_repro.md digit
for digit, except the rows marked † (trained transformers), whose numbers may move between
machines within :data:`trm_bounds.claims.rows.TRAINED_FACTOR`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trm_bounds.claims import CLAIMS, render, stale_rows
from trm_bounds.claims.rows import SELF

ROOT = Path(__file__).resolve().parents[1]
REPRO_MD = ROOT / "paper_repro.md"
RESULTS = ROOT / "trm_bounds" / "data" / "results"


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--claim NAME`` (check one group), ``--write`` or ``--check``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--claim", choices=sorted(CLAIMS), help="check one claim group, print rows")
    g.add_argument("--write", action="store_true", help="regenerate paper_repro.md")
    g.add_argument("--check", action="store_true", help="exit 1 if paper_repro.md is stale")
    ap.add_argument("--results", type=Path, default=RESULTS,
                    help="folder of the result files (default: trm_bounds/data/results)")  # fmt: skip
    args = ap.parse_args(argv)
    if not args.results.is_dir():
        ap.error(f"--results: {args.results} is not a folder")
    if args.claim:
        rows, ok = CLAIMS[args.claim](args.results)
        for r in rows:
            print(f"{r.claim}\n    ours:   {r.ours}\n    paper:  {r.paper}\n    status: {r.status}")
        print("all checks passed" if ok else "CHECK FAILED")
        return 0 if ok else 1
    text, oks = render(args.results)
    failed = [k for k, v in oks.items() if not v]
    if args.write:
        from trm_bounds.results import atomic_write_text

        if failed:  # never write a table whose checks fail
            print(f"claim groups failing: {', '.join(failed)}; {REPRO_MD} not written",
                  file=sys.stderr)  # fmt: skip
            return 1
        atomic_write_text(REPRO_MD, text)
        print(f"wrote {REPRO_MD} ({text.count(chr(10) + '| ') - 1} claims)")
    elif not REPRO_MD.is_file() or stale_rows(REPRO_MD.read_text(), text):
        print(f"{REPRO_MD}: stale; run {SELF} --write", file=sys.stderr)
        return 1
    if failed:
        print(f"claim groups failing: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
