"""Which files make up a dataset or a run, and the training step of each: the one place that
decides it, used by the local engine, ``--by-step`` and the Ray engine alike.

A framework's log directory is one dataset: data files are found recursively (the suffixes
of :data:`~trm_bounds.logs.readers.DATA_SUFFIXES`; ``.json`` only when named), ``wandb/``,
``tensorboard/`` and hidden directories are not entered. A file found by scanning a
directory is *optional* (:class:`DataFile`): when it holds no trainer/rollout logprob pair
(NeMo-RL ``val_data_step{N}.jsonl``, slime ``rollout_data/{id}.pt``, verl's generation dumps)
it is skipped and counted in one notice that names what was missing; a file named explicitly
must hold both. Optional files keep their flag when a run is split into steps, so a
validation file never takes its step with it.

The step of a file (:func:`step_of`): its framework's file naming first (NeMo-RL
``train_data_step{N}``, SkyRL ``global_step_{N}_training_input``, slime
``train_data/{rollout_id}[_{rank}]``, verl ``{step}.jsonl``), else the nearest step
directory between the run folder and the file (``global_step_{N}/`` as verl, SkyRL and
others lay out checkpoints and dumps, ``step_{N}/``).
"""

from __future__ import annotations

import glob
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from trm_bounds.logs.batch import Batch
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.readers import DATA_SUFFIXES

__all__ = ["DataFile", "DatasetTally", "data_files", "resolve_paths", "step_of", "steps_of",
           "skip_notice"]  # fmt: skip

_SKIP_DIRS = {"wandb", "tensorboard", "tb", "tb_logs", "__pycache__"}

#: The step in each framework's file naming (suffixes removed first).
_FILE_STEP = (
    re.compile(r"(?:^|_)step_?(\d+)"),  # train_data_step12, global_step_7_training_input
    re.compile(r"^(\d+)(?:_\d+)?$"),  # slime {rollout_id}[_{rank}], verl {step}.jsonl
)
#: A step directory: global_step_12, step_3, step12.
_DIR_STEP = re.compile(r"^(?:global_)?step_?(\d+)$")
_NAME_SUFFIXES = (".gz", ".jsonl", ".json", ".pt", ".pth", ".pkl", ".pickle", ".npz", ".parquet")


@dataclass(frozen=True)
class DataFile(os.PathLike):
    """One file of a dataset (an ``os.PathLike``, so it passes through every API that takes
    paths). ``optional``: found by scanning a directory, skipped (and counted) when it holds
    no trainer/rollout logprob pair. ``step``: :func:`step_of` within its run folder."""

    path: Path
    optional: bool = False
    step: int | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def step_of(path: str | os.PathLike, root: str | os.PathLike | None = None) -> int | None:
    """The training step of a dump file: from its name, else from the nearest step directory
    below ``root`` (directories at or above ``root`` never give a step); None without one.

    >>> [step_of(p) for p in ("logs/train_data_step12.jsonl",
    ...     "dumped_data/global_step_7_training_input.pkl", "dump/train_data/3_0.pt", "x.pt")]
    [12, 7, 3, None]
    >>> step_of("run/global_step_5/batch.pt", "run"), step_of("global_step_5/batch.pt", "global_step_5")
    (5, None)
    """
    p = Path(path)
    name = p.name
    for suf in _NAME_SUFFIXES:
        if name.endswith(suf):
            name = name[: -len(suf)]
    for pat in _FILE_STEP:
        m = pat.search(name)
        if m:
            return int(m.group(1))
    parents = p.parent.parts
    if root is not None:
        try:
            parents = p.parent.relative_to(Path(root)).parts
        except ValueError:
            parents = ()
    for part in reversed(parents):
        m = _DIR_STEP.match(part)
        if m:
            return int(m.group(1))
    return None


def _scan(d: Path) -> list[Path]:
    out = []
    for root, dirs, files in os.walk(d):
        dirs[:] = sorted(x for x in dirs if x not in _SKIP_DIRS and not x.startswith("."))
        out.extend(Path(root) / f for f in files if f.lower().endswith(DATA_SUFFIXES))
    return sorted(out)


def data_files(specs: Sequence[str | os.PathLike]) -> list[DataFile]:
    """Expand files, directories (their data files, sorted, optional) and globs into the
    dataset's files, in input order; a :class:`DataFile` passes through unchanged.

    Raises :class:`LogFormatError` when a spec matches nothing.
    """
    out: list[DataFile] = []
    for spec in specs:
        if isinstance(spec, DataFile):
            out.append(spec)
            continue
        p = Path(spec)
        if p.is_dir():
            files = _scan(p)
            if not files:
                kinds = "/".join(DATA_SUFFIXES)
                raise LogFormatError(p, "directory", None, f"holds no {kinds} file")
            out.extend(DataFile(f, True, step_of(f, p)) for f in files)
        elif p.is_file():
            out.append(DataFile(p, False, step_of(p)))
        else:
            matches = sorted(Path(m) for m in glob.glob(str(spec), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise LogFormatError(spec, "path", None, "no such file, directory or glob match")
            out.extend(DataFile(m, False, step_of(m)) for m in matches)
    return out


def resolve_paths(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """The paths of :func:`data_files`."""
    return [f.path for f in data_files(specs)]


def steps_of(
    specs: str | os.PathLike | Sequence[str | os.PathLike],
) -> dict[int, list[DataFile]]:
    """``{step: files}`` of a run (a folder, or files, folders and globs), steps ascending;
    files keep their ``optional`` flag (a validation file beside a step's training file is
    skipped, never the step). Raises :class:`LogFormatError` when no file names a step (then
    it is one dataset, not a run)."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    steps: dict[int, list[DataFile]] = {}
    for f in data_files(specs):
        if f.step is not None:
            steps.setdefault(f.step, []).append(f)
    if not steps:
        raise LogFormatError(specs[0], "directory", None, "no file names a training step")
    return dict(sorted(steps.items()))


def skip_notice(skipped: Sequence[tuple[str | os.PathLike, str]]) -> str:
    """One line counting the skipped files, with up to three of them and what each lacks."""
    shown = ", ".join(f"{p} ({why})" for p, why in skipped[:3])
    more = ", ..." if len(skipped) > 3 else ""
    n = len(skipped)
    return (
        f"skipped {n} file{'s' if n != 1 else ''} without trainer and rollout logprobs "
        f"({shown}{more})"
    )


def _notice_stderr(text: str) -> None:
    sys.stderr.write(f"trm-bounds: note: {text}\n")


@dataclass
class DatasetTally:
    """What a dataset read came to, for the checks every engine makes at its end: the files
    skipped (with the reason) and the trained tokens seen."""

    specs: Sequence[str | os.PathLike]
    n_files: int
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_valid: int = 0

    def add(self, batch: Batch) -> None:
        self.n_valid += int(batch.response_mask.sum())

    def finish(self, notice: Callable[[str], None] | None = None) -> None:
        """Send the skip notice (default: stderr); raise :class:`LogFormatError` when every
        file was skipped or the dataset holds no trained token."""
        specs = self.specs
        where = specs[0] if len(specs) == 1 else f"{self.n_files} files"
        if self.skipped:
            text = skip_notice(self.skipped)
            (notice or _notice_stderr)(text)
            if len(self.skipped) == self.n_files:
                raise LogFormatError(where, "directory", None, f"no file holds trainer and rollout logprobs ({text})")
        if self.n_valid == 0:
            raise LogFormatError(
                where, "dataset", None,
                "no valid token (every trained-token mask is 0): nothing to evaluate",
            )  # fmt: skip
