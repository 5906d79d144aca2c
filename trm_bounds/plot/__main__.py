"""``python -m trm_bounds.plot``: redraw every figure from the result files (issue 6).

Default: read ``experiments/results/*`` and write ``figures/<name>.png`` and ``.pdf``
(seconds).  ``--recompute`` first reruns the experiments at their small embedded default
(each ``experiments/*.py`` script as a subprocess with this Python); ``--full`` passes
``--full`` to them (and ``--device cuda`` when a GPU is present).  A figure whose result
file is missing is skipped with a message; the exit status is 1 if any figure was skipped
or failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Repository root (this file is trm_bounds/plot/__main__.py in the repository).
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Experiment:
    """One producer of a result file, rerun by ``--recompute`` as a subprocess."""

    label: str
    argv: tuple[str, ...]  # after the Python executable: a script (repo-relative) or -m module
    result: str  # result file, relative to the results folder
    small: tuple[str, ...] = ()  # flags of the small embedded default (left out with --full)
    out_is_dir: bool = False  # --out takes the result's folder (the log evaluator)
    extra: tuple[tuple[str, str], ...] = ()  # (flag, path relative to the results folder)
    device: bool = True  # the script takes --device (it uses torch)

    @property
    def script(self) -> Path | None:
        """The script path in the repository, or None for a ``-m`` module."""
        return None if self.argv[0] == "-m" else REPO / self.argv[0]


#: The experiments behind the figures, in the order ``--recompute`` reruns them.  Each runs
#: at its own default size, the size of the committed result files (so paper_repro.md,
#: which quotes some of them, stays in sync after a recompute); about 2 minutes in all.
EXPERIMENTS: tuple[Experiment, ...] = (
    Experiment("bound scaling (F1, F2, F4-F6)", ("experiments/bound_scaling.py",),
               "bound_scaling.json"),
    Experiment("tabular exact scaling (F3)", ("experiments/tabular_scaling.py",),
               "tabular_scaling.json", device=False),
    Experiment("transformer mismatch (F7)", ("experiments/transformer_mismatch.py",),
               "transformer_mismatch.json",
               extra=(("--instances-out", "transformer_instances.json"),)),
    Experiment("log evaluator demo (F8)", ("-m", "trm_bounds.evaluate", "--demo", "--no-figures"),
               "demo_eval/report.json", out_is_dir=True),
)  # fmt: skip


def _cuda_available() -> bool:
    """Whether torch sees a GPU (imports torch only when ``--full`` asks)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def recompute(
    results_dir: Path, *, full: bool, seed: int | None = None, only: list[str] | None = None
) -> list[str]:
    """Rerun the experiments as subprocesses (this Python); returns the labels that failed.

    ``only``: figure keys; then just the experiments whose result files those figures read.
    """
    from tqdm import tqdm

    experiments = EXPERIMENTS
    if only:
        from .figures import FIGURES

        needed = {FIGURES[k].source for k in only}
        experiments = tuple(e for e in EXPERIMENTS if e.result in needed)
    scripts = [e.script for e in experiments if e.script is not None]
    missing = [p for p in scripts if not p.is_file()]
    if scripts and len(missing) == len(scripts):
        raise SystemExit(
            f"trm_bounds.plot: --recompute needs the experiment scripts of the repository "
            f"(looked for {missing[0]}); run it from a source checkout with an editable "
            "install (pip install -e .), not from an installed wheel"
        )
    device = ["--device", "cuda"] if full and _cuda_available() else []
    failed = []
    bar = tqdm(experiments, desc="experiments", unit="exp", file=sys.stderr)
    for exp in bar:
        bar.set_postfix_str(exp.label)
        out = results_dir / exp.result
        if exp.script is not None and not exp.script.is_file():
            tqdm.write(f"skip {exp.label}: {exp.script} not found", file=sys.stderr)
            failed.append(exp.label)
            continue
        if exp.script is None:
            argv = [sys.executable, *exp.argv]
        else:
            argv = [sys.executable, str(exp.script), *exp.argv[1:]]
        argv += ["--out", str(out.parent if exp.out_is_dir else out)]
        for flag, rel in exp.extra:
            argv += [flag, str(results_dir / rel)]
        if exp.script is not None:  # experiment scripts share --full/--device/--seed
            argv += ["--full", *(device if exp.device else [])] if full else list(exp.small)
            argv += ["--seed", str(seed)] if seed is not None else []
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        dt = time.perf_counter() - t0
        if proc.returncode != 0:
            tqdm.write(f"FAILED {exp.label} (exit {proc.returncode}): {' '.join(argv)}",
                       file=sys.stderr)  # fmt: skip
            failed.append(exp.label)
        else:
            tqdm.write(f"done {exp.label} in {dt:.1f} s -> {out}", file=sys.stderr)
    return failed


def main(argv: list[str] | None = None) -> int:
    """Command line of ``python -m trm_bounds.plot``."""
    from .figures import FIGURES, ResultFileError, render

    ap = argparse.ArgumentParser(
        prog="python -m trm_bounds.plot",
        description="Redraw every figure (F1-F8) from the result files.",
        epilog="Figures: " + "; ".join(f"{k} {s.what}" for k, s in FIGURES.items()),
    )
    ap.add_argument(
        "--recompute",
        action="store_true",
        help="rerun the experiments (small default, about 3 minutes) first",
    )
    ap.add_argument(
        "--full",
        action="store_true",
        help="with --recompute: larger runs (--full, and --device cuda on a GPU)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "figures", help="figure folder")
    ap.add_argument(
        "--results",
        type=Path,
        default=REPO / "experiments" / "results",
        help="folder of the result files (default: experiments/results)",
    )
    ap.add_argument(
        "--only",
        action="append",
        metavar="FN",
        type=str.upper,
        choices=sorted(FIGURES),
        help="draw only this figure (repeatable), e.g. --only F3",
    )
    ap.add_argument("--formats", default="png,pdf", help="comma-separated formats (png,pdf)")
    ap.add_argument("--dpi", type=float, default=None, help="PNG resolution (default 150)")
    ap.add_argument("--seed", type=int, default=None, help="with --recompute: seed passed on")
    args = ap.parse_args(argv)
    if args.full and not args.recompute:
        ap.error("--full only makes sense with --recompute")
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    bad = sorted(set(formats) - {"png", "pdf", "svg"})
    if bad or not formats:
        ap.error(
            f"--formats: unsupported format {bad[0] if bad else '(none)'!r}; use png, pdf, svg"
        )

    if args.recompute:
        failed = recompute(args.results, full=args.full, seed=args.seed, only=args.only)
        if failed:
            print(f"trm_bounds.plot: experiments failed: {', '.join(failed)}", file=sys.stderr)

    keys = args.only or list(FIGURES)
    n_bad = 0
    for key in keys:
        spec = FIGURES[key]
        try:
            paths = render(spec, args.results, args.out, formats, dpi=args.dpi)
        except FileNotFoundError as exc:
            print(f"skip {key} ({spec.what}): {exc}; rerun with --recompute", file=sys.stderr)
            n_bad += 1
            continue
        except (ResultFileError, ImportError) as exc:
            print(f"FAILED {key} ({spec.what}): {exc}", file=sys.stderr)
            n_bad += 1
            continue
        shown = ", ".join(_rel(p) for p in paths)
        print(f"{key} {spec.what}: {shown}")
    print(f"{len(keys) - n_bad} of {len(keys)} figures written to {_rel(args.out)}")
    return 1 if n_bad else 0


def _rel(p: Path) -> str:
    """``p`` relative to the working directory when below it (shorter messages)."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


if __name__ == "__main__":
    sys.exit(main())
