"""Benchmark: how long a mistyped dump path takes to be reported (issue 16: under 1 s).

Runs ``python -m trm_bounds evaluate /no/such/dump.parquet --out DIR`` in a fresh
interpreter, interleaved with the same command against another checkout of the package
(``--baseline PATH``, e.g. a worktree of the commit before the change), and records per
side the median wall time and child CPU time (user + system) over ``--repeats`` runs, the
exit status, the one stderr line and whether torch was imported (``-X importtime``).
Writes ``experiments/results/bench_cli.json``.

Usage: ``python experiments/bench_cli.py [--baseline /path/to/old/checkout] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trm_bounds.results import git_hash, write_results

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "bench_cli.json"
ARGV = ["-m", "trm_bounds", "evaluate", "/no/such/dump.parquet", "--out"]


def _run(checkout: Path, out: str, importtime: bool = False) -> tuple[float, float, object]:
    """(wall s, child CPU s, completed process) of one run against ``checkout`` (run from the
    folder of ``out``: ``-m`` puts the working directory first on the path)."""
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *(["-X", "importtime"] if importtime else []),
                           *ARGV, out], capture_output=True, text=True, env=env, cwd=Path(out).parent,
                          timeout=300)  # fmt: skip
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def measure(sides: dict[str, Path], repeats: int) -> dict:
    """Interleaved runs of every side; medians, the error line and the torch import."""
    times: dict[str, list] = {k: [] for k in sides}
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "report")
        for _ in range(repeats):
            for name, checkout in sides.items():
                wall, cpu, _ = _run(checkout, out)
                times[name].append((wall, cpu))
        res = {}
        for name, checkout in sides.items():
            _, _, proc = _run(checkout, out, importtime=True)
            lines = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
            imported = {ln.rsplit("|", 1)[-1].strip() for ln in proc.stderr.splitlines()
                        if ln.startswith("import time:")}  # fmt: skip
            res[name] = {"git_hash": git_hash(checkout),  # not the path: one machine's
                         "wall_median_s": statistics.median(w for w, _ in times[name]),
                         "cpu_median_s": statistics.median(c for _, c in times[name]),
                         "exit_status": proc.returncode, "stderr": lines,
                         "imports_torch": "torch" in imported,
                         "imports_matplotlib": "matplotlib" in imported,
                         "left_behind": os.path.exists(out)}  # fmt: skip
            print(f"{name}: wall {res[name]['wall_median_s']:.2f} s, CPU "
                  f"{res[name]['cpu_median_s']:.2f} s, torch imported: "
                  f"{res[name]['imports_torch']}, stderr: {lines[-1] if lines else ''}")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout to run side by side (e.g. the previous commit)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    sides = {"this_checkout": ROOT}
    if args.baseline is not None:
        sides["baseline"] = args.baseline.resolve()
    res = measure(sides, args.repeats)
    write_results(args.out, {"command": " ".join(["python", *ARGV, "DIR"]), "sides": res,
                             "repeats": args.repeats,
                             "machine": {"cpus": os.cpu_count(),
                                         "python": platform.python_version(),
                                         "load_avg_1min": os.getloadavg()[0]}},
                  experiment="bench_cli",
                  args={**vars(args), "baseline": args.baseline and git_hash(args.baseline)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
