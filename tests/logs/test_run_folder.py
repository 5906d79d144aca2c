"""Which files make up a run and its steps (trm_bounds.logs.run_folder; issue 18).

Run folders come from ``experiments/make_run_corpus.py``: a NeMo-RL log directory of three
steps with validation files beside two of them, slime's ``--dump-details`` directory, and
``global_step_{N}/`` step directories. Every step is found, read whole and equal to the
float64 reference of its generating arrays; files without logprobs are skipped with a
notice that names them, never the step.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.logs.test_frameworks import experiment_module, stats
from tests.tolerances import ATOL, RTOL
from trm_bounds.evaluate.runs import steps_of_run
from trm_bounds.logs import (
    DataFile,
    LogFormatError,
    data_files,
    iter_batches,
    load_dataset,
    step_of,
    steps_of,
)

RUNS = experiment_module("make_run_corpus")


@pytest.fixture(scope="module")
def run_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return out, RUNS.make_run_corpus(out, seed=0, B=6)


def assert_reference(batch, r: dict) -> None:
    got = stats(batch)
    np.testing.assert_array_equal(got["T"], r["T"])
    for k in ("sum_k1", "sum_k2", "max_abs_log_ratio"):
        np.testing.assert_allclose(got[k], r[k], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("case", ["nemo-rl-run", "slime-run", "step-dirs-run"])
def test_every_step_of_a_run_folder_is_found_and_read_whole(run_corpus, case):
    """Each step of the run, with the files the local engine reads (validation and
    rollout-only files optional and skipped with one notice each), equals its reference."""
    out, ref = run_corpus
    steps = steps_of_run(out / case)
    assert [str(s) for s in steps] == list(ref[case]["steps"])
    for s, files in steps.items():
        assert all(isinstance(f, DataFile) and f.optional for f in files)
        notes: list[str] = []
        b = load_dataset(files, notice=notes.append)
        assert_reference(b, ref[case]["steps"][str(s)])
        skipped = [f for f in files if "val_data" in f.path.name or "rollout_data" in str(f)]
        assert len(notes) == (1 if skipped else 0)
        if skipped:
            assert notes[0].startswith("skipped 1 file without trainer and rollout logprobs")
            assert str(skipped[0].path) in notes[0]


def test_validation_files_never_take_their_step(run_corpus):
    """NeMo-RL: steps 1 and 3 have a validation file beside the training file; all three
    steps are there (the bug: 2 of 3 steps silently dropped)."""
    out, _ = run_corpus
    steps = steps_of(out / "nemo-rl-run")
    assert sorted(steps) == [1, 2, 3]
    assert [len(v) for v in steps.values()] == [2, 1, 2]


def test_a_file_named_explicitly_must_hold_logprobs(run_corpus):
    """Named on the command line, a validation file is an error (one line), not a skip."""
    out, _ = run_corpus
    val = out / "nemo-rl-run" / "val_data_step1.jsonl"
    with pytest.raises(LogFormatError, match="val_data_step1.jsonl"):
        list(iter_batches([val]))
    assert data_files([val]) == [DataFile(val, False, 1)]


def test_step_directories_below_the_run_folder_only():
    """A step directory counts below the run folder, never the run folder itself or above;
    a step in the file name wins over its directory."""
    assert step_of("r/global_step_12/actor/batch.pt", "r") == 12
    assert step_of("r/step_3/batch.pt", "r") == 3
    assert step_of("global_step_12/batch.pt", "global_step_12") is None
    assert step_of("exp_step5/a/batch.pt", "exp_step5/a") is None
    assert step_of("r/global_step_2/train_data_step7.jsonl", "r") == 7
    assert step_of("r/checkpoints/batch.pt", "r") is None


def test_a_folder_without_steps_is_one_dataset_not_a_run(tmp_path):
    from tests.logs.test_dataset import random_source, write_npz

    write_npz(tmp_path / "a.npz", random_source(seed=3))
    with pytest.raises(LogFormatError, match="no file names a training step"):
        steps_of([tmp_path])
    assert len(load_dataset([tmp_path])) == 13
