"""The studies: the experiments that write the result files the figures are drawn from.

Each study is a module with a documented ``Args`` dataclass (every field a flag of its
command line), ``SIZES`` (presets such as ``tiny`` and ``full``), ``run(args) -> dict`` (the
data, without provenance), ``produce(args) -> Path`` (run and write the result file with
provenance, :func:`trm_bounds.results.write_results`) and ``main(argv)``.  Run one with
``python -m trm_bounds.studies.<name> [flags]`` (or ``python experiments/<name>.py``).

:data:`STUDIES` is the registry ``python -m trm_bounds.plot --recompute`` runs; a study's
module is imported only when it runs (the transformer study imports torch).

==========================  ============================  ==================================
study                       result file                   figures
==========================  ============================  ==================================
``bound_scaling``           ``bound_scaling.json``        F1, F2, F4, F5, F6
``tabular_scaling``         ``tabular_scaling.json``      F3
``transformer_mismatch``    ``transformer_mismatch.json``  F7 (and the exported instances)
``demo_evaluation``         ``demo_eval/report.json``     F8
``worst_case``              ``worst_case.json``           F9
``tabular_verification``    ``tabular_verification.json``  (none: the bound check at scale)
``certify_figure``          ``certify_figure.json``       F10 (reads transformer_instances.json)
``certify_coverage``        ``certify_coverage.json``     (none: coverage of the certificates)
``worst_case_certificate``  ``worst_case_certificate.json``  (none: the certificate of §10)
==========================  ============================  ==================================
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

__all__ = ["Study", "STUDIES", "FIGURE_STUDIES", "recompute", "recompute_files"]


@dataclass(frozen=True)
class Study:
    """One study: its module name, what it computes and the result file it writes."""

    name: str  # module trm_bounds.studies.<name>
    label: str  # one line for progress messages
    result: str  # result file, relative to the results folder
    torch: bool = False  # runs torch (takes a device)
    outputs_folder: bool = False  # its ``out`` is the result's folder (the log evaluator)

    def module(self) -> ModuleType:
        """The study's module (imported now)."""
        return importlib.import_module(f"trm_bounds.studies.{self.name}")

    def args(self, results_dir: str | Path, *, size: str = "default", seed: int | None = None,
             device: str | None = None):
        """The study's ``Args`` at ``size``, writing into ``results_dir``."""
        from trm_bounds.studies._cli import apply_size

        mod = self.module()
        out = Path(results_dir) / self.result
        kw: dict = {"out": str(out.parent if self.outputs_folder else out)}
        if self.name == "transformer_mismatch":
            kw["instances_out"] = str(Path(results_dir) / mod.INSTANCES)
        if seed is not None:
            kw["seed"] = seed
        if device is not None and self.torch:
            kw["device"] = device
        sizes = mod.SIZES
        return apply_size(mod.Args, sizes, size if size in sizes else "default", **kw)


#: Every study, in the order ``plot --recompute`` runs them.
STUDIES: dict[str, Study] = {
    s.name: s
    for s in (
        Study("bound_scaling", "bound scaling (F1, F2, F4-F6)", "bound_scaling.json",
              torch=True),
        Study("tabular_scaling", "tabular exact scaling (F3)", "tabular_scaling.json"),
        Study("transformer_mismatch", "transformer mismatch (F7)", "transformer_mismatch.json",
              torch=True),
        Study("demo_evaluation", "log evaluator demo (F8)", "demo_eval/report.json",
              outputs_folder=True),
        Study("worst_case", "worst-case exact error against T (F9)", "worst_case.json"),
        Study("tabular_verification", "bound check on random tree instances",
              "tabular_verification.json"),
        Study("certify_figure", "certified bounds against the exact error (F10)",
              "certify_figure.json"),
        Study("certify_coverage", "coverage of the certified bounds", "certify_coverage.json"),
        Study("worst_case_certificate", "coverage of the worst-case-error certificate",
              "worst_case_certificate.json"),
    )
}  # fmt: skip

#: The studies whose result files the figures read (what ``plot --recompute`` reruns).
FIGURE_STUDIES: tuple[str, ...] = (
    "bound_scaling", "tabular_scaling", "transformer_mismatch", "demo_evaluation",
    "worst_case", "certify_figure",
)  # fmt: skip


def recompute(
    results_dir: str | Path,
    *,
    names: Sequence[str] = FIGURE_STUDIES,
    size: str = "default",
    seed: int | None = None,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> list[str]:
    """Run the studies ``names`` in this process, writing into ``results_dir``; return the
    labels of those that failed (each failure is reported through ``log``, one line)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    failed = []
    for name in names:
        study = STUDIES[name]
        t0 = time.perf_counter()
        try:
            path = study.module().produce(study.args(results_dir, size=size, seed=seed,
                                                     device=device))
        except (Exception, SystemExit) as exc:  # one study failing must not stop the others
            log(f"FAILED {study.label}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            failed.append(study.label)
            continue
        log(f"done {study.label} in {time.perf_counter() - t0:.1f} s -> {path}")
    return failed


def recompute_files(
    results_dir: str | Path, files: Sequence[str] | None = None, *, full: bool = False,
    seed: int | None = None,
) -> list[str]:  # fmt: skip
    """Rerun, in registry order, the studies that write the result files ``files`` (relative
    to ``results_dir``; default: every figure's), into ``results_dir``: what ``trm-bounds plot
    --recompute`` runs before it draws.  ``full``: the larger size, on the GPU when torch sees
    one.  Returns the labels of the studies that failed (:func:`recompute`)."""
    wanted = set(files) if files is not None else {STUDIES[n].result for n in FIGURE_STUDIES}
    names = [name for name, s in STUDIES.items() if s.result in wanted]
    device = "cuda" if full and _cuda_available() else None
    return recompute(results_dir, names=names, size="full" if full else "default", seed=seed,
                     device=device)  # fmt: skip


def _cuda_available() -> bool:
    """Whether torch sees a GPU (imports torch only when ``full`` asks)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
