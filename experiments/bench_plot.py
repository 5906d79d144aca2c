"""Benchmark: CPU time of ``trm-bounds plot`` redrawing every figure, PNG and PDF together
(target: under 15 s of CPU).

Each run is a fresh process (imports included) that draws every figure of the registry from
the committed result files into a temporary folder and reports the CPU time of each figure;
the parent measures the whole process's CPU time (user + system, ``getrusage``).  Modes, run
side by side in one invocation, interleaved, ``--repeat`` times each:

- ``current``: this checkout (:func:`trm_bounds.plot.style.save`: one layout, PNG from the
  layout's own draw);
- ``savefig``: the same figures written the plain way, ``Figure.savefig`` once per format
  (what ``save`` did before: two draws and two constrained-layout passes per format);
- ``baseline``: another checkout of the package (``--baseline PATH``, e.g. a ``git worktree``
  of an older commit) drawing the same result files.

Writes ``experiments/results/bench_plot.json``: per mode the best and median process CPU
seconds, per figure the best CPU seconds, the machine's CPU count and model and the load
average when the benchmark started (CPU times grow on a busy machine: compare modes within
one file only).

Usage::

    python experiments/bench_plot.py                       # current and savefig, 3 runs each
    git worktree add /tmp/old c77b683
    python experiments/bench_plot.py --baseline /tmp/old   # adds the older checkout
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trm_bounds.results import results_dir, write_results

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_plot.json"
TARGET_CPU_SECONDS = 15.0  # ten figures from saved numbers, PNG and PDF together
FORMATS = ("png", "pdf")


def _child(mode: str, results: str, out: str) -> None:
    """Draw every figure (in this process) and print ``{figure: CPU seconds}`` as JSON."""
    from trm_bounds.plot.figures import FIGURES, render

    if mode == "savefig":  # the reference: one savefig per format
        import matplotlib

        from trm_bounds.plot import evaluate, style

        def plain_save(fig, out_dir, name, formats, *, dpi=None):
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            paths = []
            with matplotlib.rc_context(style.RC):
                for fmt in formats:
                    path = Path(out_dir) / f"{name}.{fmt}"
                    fig.savefig(path, format=fmt, dpi=dpi or style.RC["savefig.dpi"])
                    paths.append(path)
            return paths

        style.save = evaluate.save = plain_save
    times = {}
    for key, spec in FIGURES.items():
        t0 = time.process_time()
        render(spec, results, out, list(FORMATS))
        times[key] = time.process_time() - t0
    print(json.dumps(times))


def _run(mode: str, results: Path, pythonpath: str) -> tuple[float, dict]:
    """One fresh process of ``mode``: (process CPU seconds, per-figure CPU seconds)."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", "savefig" if mode == "savefig" else "current",
             str(results), tmp],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3, help="runs per mode (interleaved)")
    p.add_argument("--baseline", type=Path, default=None,
                   help="another checkout to time on the same result files")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--child", nargs=3, metavar=("MODE", "RESULTS", "OUT"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child(*a.child)
        return 0
    here = str(Path(__file__).resolve().parents[1])
    results = results_dir()
    modes = {"current": here, "savefig": here}
    if a.baseline is not None:
        modes["baseline"] = str(a.baseline.resolve())
    load = os.getloadavg()
    runs: dict[str, list] = {m: [] for m in modes}
    for _ in range(a.repeat):
        for mode, path in modes.items():
            runs[mode].append(_run(mode, results, path))
            print(f"{mode}: {runs[mode][-1][0]:.2f} s CPU", file=sys.stderr)
    summary = {}
    for mode, rs in runs.items():
        cpus = [c for c, _ in rs]
        summary[mode] = {
            "cpu_seconds_best": min(cpus),
            "cpu_seconds_median": statistics.median(cpus),
            "cpu_seconds_all": cpus,
            "per_figure_cpu_seconds_best": {k: min(f[k] for _, f in rs) for k in rs[0][1]},
        }
    cur = summary["current"]["cpu_seconds_best"]
    record = {
        "formats": list(FORMATS),
        "target_cpu_seconds": TARGET_CPU_SECONDS,
        "meets_target": cur < TARGET_CPU_SECONDS,
        "modes": summary,
        "speedup_vs_savefig": summary["savefig"]["cpu_seconds_best"] / cur,
        **({"baseline": str(a.baseline), "speedup_vs_baseline":
            summary["baseline"]["cpu_seconds_best"] / cur} if a.baseline else {}),
        "machine": {"cpu_count": os.cpu_count(), "processor": platform.processor() or
                    platform.machine(), "loadavg_at_start": list(load)},
    }  # fmt: skip
    write_results(a.out, record, experiment="bench_plot",
                  args={"repeat": a.repeat, "baseline": str(a.baseline) if a.baseline else None})
    print(json.dumps({m: round(s["cpu_seconds_best"], 2) for m, s in summary.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
