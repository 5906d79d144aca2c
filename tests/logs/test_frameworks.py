"""Every framework's dump, laid out as the framework writes it, read right (issue 10).

The corpus comes from ``experiments/make_dump_corpus.py`` (one writer per framework, single
and multi-turn); its reference (trained-token counts and float64 per-sequence statistics) is
computed with numpy on the generating arrays, independently of the readers. Positions
outside the trained tokens hold junk (trainer -7, rollout -0.05), so a wrong mask, a wrong
alignment or the wrong policy field changes every statistic.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL
from trm_bounds.logs import (
    FORMATS,
    FRAMEWORK_NAMES,
    LogFormatError,
    MissingLogprobs,
    iter_batches,
    load_dataset,
    resolve_fields,
    step_of,
)

ROOT = Path(__file__).resolve().parents[2]


def experiment_module(name: str):
    """``experiments/{name}.py`` imported once (registered under its name: its dataclasses
    look their module up)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


CORPUS = experiment_module("make_dump_corpus")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    return out, CORPUS.make_corpus(out, seed=0, B=6)


def stats(batch) -> dict[str, np.ndarray]:
    """Per-sequence float64 statistics of a loaded batch (numpy on the canonical arrays)."""
    m = batch.response_mask
    d = np.where(m, batch.log_probs.astype(np.float64) - batch.rollout_log_probs, 0.0)
    return {
        "T": batch.lengths,
        "sum_k1": d.sum(axis=1),
        "sum_k2": (0.5 * d * d).sum(axis=1),
        "max_abs_log_ratio": np.abs(d).max(axis=1, initial=0.0),
    }


@pytest.mark.parametrize("case", list(CORPUS.CASES))
@pytest.mark.parametrize("named", [False, True], ids=["detected", "format"])
def test_corpus_lengths_and_statistics_match_the_reference(corpus, case, named):
    """Each file of each case, read with the framework detected from its keys or named by
    ``--format``: trained-token counts T_i exactly, per-sequence sum k1, sum k2 and
    max |log r| equal to the float64 reference."""
    out, ref = corpus
    r = ref[case]
    for rel in r["files"]:
        b = load_dataset([out / rel], fmt=r["format"] if named else "auto")
        got = stats(b)
        np.testing.assert_array_equal(got["T"], r["T"])
        for k in ("sum_k1", "sum_k2", "max_abs_log_ratio"):
            np.testing.assert_allclose(got[k], r[k], rtol=RTOL, atol=ATOL, err_msg=f"{rel} {k}")


@pytest.mark.parametrize("case", list(CORPUS.CASES))
def test_log_directory_is_one_dataset_with_a_counting_notice(corpus, case):
    """The case directory (val files, wandb/, tensorboard/, slime rollout_data/ beside the
    data) reads as the concatenation of its data files; files without logprobs are skipped
    and counted in exactly one notice; nothing fails."""
    out, ref = corpus
    r = ref[case]
    notes: list[str] = []
    b = load_dataset([out / case], notice=notes.append)
    np.testing.assert_array_equal(b.lengths, np.tile(r["T"], len(r["files"])))
    expect_skips = case.startswith(("nemo-rl", "slime"))
    assert len(notes) == (1 if expect_skips else 0)
    if expect_skips:
        assert notes[0].startswith("skipped 1 file without trainer and rollout logprobs")


def test_wrong_masks_would_change_the_answer(corpus):
    """Negative control: SkyRL's response_mask (every response token) instead of its
    loss_mask, or TRL's completion_mask without tool_mask, gives other lengths T_i than the
    reference; so the corpus test above detects a reader that takes the wrong mask."""
    import torch

    from trm_bounds.logs.unpickle import harvest, restricted_loads

    out, ref = corpus
    trl = torch.load(out / ref["trl-multi"]["files"][0], weights_only=True)
    assert (trl["completion_mask"].sum(1).numpy() != ref["trl-multi"]["T"]).any()
    sky = out / ref["skyrl-multi"]["files"][0]
    assert sky.read_bytes()[:1] == b"\x80"  # a plain pickle, as TensorBatch.save writes it
    obj = harvest(restricted_loads(sky.read_bytes()), sky)
    assert (np.asarray(obj["response_mask"]).sum(1) != ref["skyrl-multi"]["T"]).any()
    assert (np.asarray(obj["loss_mask"]).sum(1) == ref["skyrl-multi"]["T"]).all()


@pytest.mark.parametrize(
    "keys, framework, trainer, rollout, masks",
    [
        (["old_log_probs", "rollout_log_probs", "response_mask"], "verl", "old_log_probs",
         "rollout_log_probs", ("response_mask",)),
        (["action_log_probs", "rollout_logprobs", "loss_mask", "response_mask"], "skyrl",
         "action_log_probs", "rollout_logprobs", ("loss_mask",)),
        (["old_per_token_logps", "sampling_per_token_logps", "completion_mask", "tool_mask"],
         "trl", "old_per_token_logps", "sampling_per_token_logps",
         ("completion_mask", "tool_mask")),
        (["old_log_probs", "infer_logprobs", "response_mask"], "roll", "old_log_probs",
         "infer_logprobs", ("response_mask",)),
        (["logprobs", "prox_logp", "loss_mask"], "areal", "prox_logp", "logprobs",
         ("loss_mask",)),
        (["action_log_probs", "rollout_log_probs", "action_mask"], "openrlhf",
         "action_log_probs", "rollout_log_probs", ("action_mask",)),
        (["prev_logprobs", "generation_logprobs", "token_loss_mask", "sample_loss_mask"],
         "nemo-rl", "prev_logprobs", "generation_logprobs", ("token_loss_mask",)),
        (["log_probs", "rollout_log_probs", "loss_masks"], "slime", "log_probs",
         "rollout_log_probs", ("loss_masks",)),
        (["logprobs", "rollout_logprobs"], "generic", "logprobs", "rollout_logprobs", ()),
    ],
)  # fmt: skip
def test_detection_uses_the_whole_key_set(keys, framework, trainer, rollout, masks):
    """The key set alone picks the framework, its policy fields and its trained-token masks;
    AReaL's ``logprobs`` is read as the rollout, never as the trainer."""
    f = resolve_fields(keys, "auto", "d.pt")
    assert (f.framework, f.log_probs, f.rollout_log_probs, f.masks) == (
        framework, trainer, rollout, masks,
    )  # fmt: skip
    if framework != "generic":
        assert resolve_fields(keys, framework, "d.pt") == f


def test_ambiguous_keys_need_format():
    """Keys that fit two frameworks reading them differently: a one-line error asking for
    --format; naming the format settles it."""
    keys = ["action_log_probs", "rollout_logprobs", "rollout_log_probs"]
    with pytest.raises(LogFormatError, match="several frameworks.*--format"):
        resolve_fields(keys, "auto", "d.pt")
    assert resolve_fields(keys, "skyrl", "d.pt").rollout_log_probs == "rollout_logprobs"
    assert resolve_fields(keys, "openrlhf", "d.pt").rollout_log_probs == "rollout_log_probs"


def test_areal_without_trainer_field_is_never_read_as_trainer():
    """An AReaL batch without ``prox_logp`` holds only the rollout policy: no mismatch to
    measure (MissingLogprobs), never ``logprobs`` read as the trainer field."""
    with pytest.raises(MissingLogprobs):
        resolve_fields(["logprobs", "loss_mask", "prox_logp_missing"], "areal", "d.pt")
    f = resolve_fields(["logprobs", "prox_logp", "loss_mask"], "auto", "d.pt")
    assert f.log_probs != "logprobs"


def test_formats_list_frameworks():
    """--format accepts every framework name beside the file kinds."""
    for name in ("verl", "nemo-rl", "skyrl", "trl", "slime", "roll", "areal", "openrlhf"):
        assert name in FRAMEWORK_NAMES and name in FORMATS
    for kind in ("auto", "pt", "pkl", "npz", "parquet", "jsonl"):
        assert kind in FORMATS


def test_zero_valid_tokens_is_an_error(tmp_path):
    """A dataset whose every trained-token mask is 0 is an error, not 100 % acceptance."""
    np.savez(tmp_path / "z.npz", old_log_probs=-np.ones((3, 4)),
             rollout_log_probs=-np.ones((3, 4)), response_mask=np.zeros((3, 4)))  # fmt: skip
    with pytest.raises(LogFormatError, match="no valid token"):
        list(iter_batches([tmp_path / "z.npz"]))


def test_directory_of_files_without_logprobs_is_an_error(tmp_path):
    """A directory whose every file lacks logprobs: one error that counts the skips."""
    (tmp_path / "val_data_step1.jsonl").write_text('{"reward": 1.0}\n')
    with pytest.raises(LogFormatError, match="no file holds trainer and rollout logprobs"):
        load_dataset([tmp_path], notice=lambda s: None)


def test_explicit_file_without_logprobs_is_an_error(tmp_path):
    """Named explicitly, a file without logprobs is an error (only directories skip)."""
    p = tmp_path / "val_data_step1.jsonl"
    p.write_text('{"reward": 1.0}\n')
    with pytest.raises(MissingLogprobs, match="line 1"):
        load_dataset([p])


def test_corrupt_gzip_is_one_line(tmp_path):
    """A truncated .jsonl.gz fails with one LogFormatError line."""
    import gzip

    p = tmp_path / "train_data_step1.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"logprobs": [-1.0], "rollout_logprobs": [-1.0]}\n' * 50)[:40])
    with pytest.raises(LogFormatError, match="gzip") as err:
        load_dataset([p])
    assert "\n" not in str(err.value)


def test_step_of_framework_file_names():
    """The step comes from each framework's own file naming."""
    assert step_of("log/train_data_step12.jsonl") == 12
    assert step_of("log/train_data_step12.jsonl.gz") == 12
    assert step_of("dumped_data/global_step_7_training_input.pkl") == 7
    assert step_of("dump/train_data/3_0.pt") == 3
    assert step_of("dump/train_data/3.pt") == 3
    assert step_of("batch.pt") is None


def test_reference_file_is_written(corpus):
    """The script writes reference.json beside the corpus, one entry per case."""
    out, ref = corpus
    assert json.loads((out / "reference.json").read_text()) == ref
    assert set(ref) == set(CORPUS.CASES)


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**31 - 1),
    B=st.integers(1, 5),
    multi=st.booleans(),
    case=st.sampled_from(["roll", "areal", "areal-after", "skyrl", "trl", "openrlhf", "verl"]),
)
def test_alignment_and_masks_on_random_truths(tmp_path_factory, seed, B, multi, case):
    """Property: for any truth (prompt lengths, turn structure, lengths down to 1), the loaded
    trained tokens equal the generating ones in order, for every alignment convention
    (ROLL's (B, L-1) shift, AReaL's next-token prox_logp before and after advantages,
    SkyRL's right-aligned responses, TRL's completion_mask * tool_mask)."""
    writers = {
        "roll": CORPUS.write_roll, "areal": CORPUS.write_areal,
        "areal-after": lambda d, s: CORPUS.write_areal(d, s, after_advantages=True),
        "skyrl": CORPUS.write_skyrl, "trl": CORPUS.write_trl, "openrlhf": CORPUS.write_openrlhf,
        "verl": CORPUS.write_verl,
    }  # fmt: skip
    seqs = CORPUS.make_truth(B, seed, multi_turn=multi)
    d = tmp_path_factory.mktemp("prop")
    path = writers[case](d, seqs)[0]
    b = load_dataset([path])
    for i, s in enumerate(seqs):
        n = int(s.trained.sum())
        assert b.lengths[i] == n
        np.testing.assert_array_equal(b.log_probs[i, :n], s.lp[s.trained])
        np.testing.assert_array_equal(b.rollout_log_probs[i, :n], s.lr[s.trained])


def test_parquet_multiplies_every_trained_token_mask(tmp_path):
    """A TRL batch saved as parquet (list columns): completion_mask * tool_mask, as in the
    torch file; NeMo-RL's sample_loss_mask zeroes whole rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    seqs = CORPUS.make_truth(5, 3, multi_turn=True)
    r = CORPUS._resp(seqs)
    n = r["resp"].sum(1)
    col = lambda a: [row[:k].tolist() for row, k in zip(a, n, strict=True)]  # noqa: E731
    pq.write_table(pa.table({
        "old_per_token_logps": col(r["lp"]), "sampling_per_token_logps": col(r["lr"]),
        "completion_mask": col(r["resp"].astype(np.int64)),
        "tool_mask": col(r["trained"].astype(np.int64)),
    }), tmp_path / "trl.parquet")  # fmt: skip
    b = load_dataset([tmp_path / "trl.parquet"])
    np.testing.assert_array_equal(b.lengths, [int(s.trained.sum()) for s in seqs])
    keep = np.array([1, 0, 1, 1, 0])
    pq.write_table(pa.table({
        "prev_logprobs": col(r["lp"]), "generation_logprobs": col(r["lr"]),
        "token_loss_mask": col(r["trained"].astype(np.int64)), "sample_loss_mask": keep,
    }), tmp_path / "nemo.parquet")  # fmt: skip
    b = load_dataset([tmp_path / "nemo.parquet"])
    np.testing.assert_array_equal(
        b.lengths, [int(s.trained.sum()) * k for s, k in zip(seqs, keep, strict=True)]
    )


def test_corpus_script_runs(tmp_path):
    """Smoke: the script writes every case and the reference from the command line."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "experiments/make_dump_corpus.py", "--out", str(tmp_path), "--B", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ref = json.loads((tmp_path / "reference.json").read_text())
    assert set(ref) == set(CORPUS.CASES) and all(len(r["T"]) == 2 for r in ref.values())


# ---------------------------------------------------------------- what frameworks write today


@pytest.fixture(scope="module")
def today(tmp_path_factory):
    from tests.logs.test_run_folder import RUNS

    out = tmp_path_factory.mktemp("today")
    return out, RUNS.make_run_corpus(out, seed=1, B=6)


@pytest.mark.parametrize("case", ["verl-numpy", "areal-list", "areal-overwritten", "trl-nan",
                                  "skyrl-pad", "slime-removed"])  # fmt: skip
@pytest.mark.parametrize("named", [False, True], ids=["detected", "format"])
def test_todays_artifacts_are_read_right(today, case, named):
    """verl's numpy-serialized DataProto, AReaL's trajectory list, TRL with vLLM NaN
    logprobs, SkyRL pad rows, slime remove_sample: T_i and the per-sequence statistics equal
    the reference; rows without a trained token stay (T_i = 0) and are counted apart by the
    statistics; NaN rollout tokens are out of the mask and counted."""
    from trm_bounds.evaluate.stats import chunk_stats

    out, ref = today
    r = ref[case]
    (rel,) = r["files"]
    chunks = list(iter_batches([out / rel], fmt=r["format"] if named else "auto"))
    b = load_dataset([out / rel], fmt=r["format"] if named else "auto")
    got = stats(b)
    np.testing.assert_array_equal(got["T"], r["T"])
    for k in ("sum_k1", "sum_k2", "max_abs_log_ratio"):
        np.testing.assert_allclose(got[k], r[k], rtol=RTOL, atol=ATOL)
    assert sum(c.n_nan_tokens for c in chunks) == r["nan_tokens"]
    st, _ = chunk_stats(chunks[0])
    assert st.n_untrained_rows == r["untrained"] and st.n_sequences == len(r["T"]) - r["untrained"]
    identical = any("identical at every trained token" in w for w in st.warnings)
    assert identical == bool(r.get("identical"))


def test_group_key_and_generation_limit_of_todays_artifacts(today):
    """verl: ``uid`` and the generation limit from ``responses`` padded to
    ``response_length``; TRL: no key, identical prompt tokens group the rows."""
    out, ref = today
    b = next(iter_batches([out / ref["verl-numpy"]["files"][0]]))
    assert b.group_field == "uid" and b.max_response_length == ref["verl-numpy"]["max_response_length"]
    b = next(iter_batches([out / ref["trl-nan"]["files"][0]]))
    assert b.group_field == "prompt_ids (identical prompt tokens)"
    assert len(set(b.prompt_id.tolist())) == ref["trl-nan"]["groups"]
    assert b.max_response_length is None  # TRL pads to the batch, not to a configured limit


def test_hostile_states_are_one_line_naming_the_file(today):
    """Four malformed SkyRL states and random bytes named .npz: one line naming the file,
    never an invitation to unpickle."""
    out, ref = today
    files = [*ref["hostile"]["files"], ref["hostile"]["random_npz"]]
    assert len(files) == 5
    for rel in files:
        with pytest.raises(LogFormatError) as info:
            load_dataset([out / rel])
        msg = str(info.value)
        assert msg.startswith(str(out / rel)) and "\n" not in msg
        assert "trust-pickle" not in msg
    with pytest.raises(LogFormatError, match="not a zip/npz file"):
        load_dataset([out / ref["hostile"]["random_npz"]])


def test_unscored_rollout_tokens_withhold_the_certificate(today, tmp_path):
    """TRL with vLLM NaN rollout logprobs: the divergence at those tokens is unknown, so the
    report makes no certified claim and says why (docs/theory.md §9); the statistics of the
    scored tokens are still reported, and the count of unscored tokens is in the report."""
    from trm_bounds.evaluate import evaluate

    out, ref = today
    r = ref["trl-nan"]
    assert r["nan_tokens"] > 0
    rep = evaluate([out / f for f in r["files"]], tmp_path / "ev", html=False, progress=False,
                   max_response_length=int(max(r["T"])) + 8)  # fmt: skip
    cert = rep["certified"]
    assert cert["computed"] is False and "no rollout log-probability" in cert["reason"]
    assert rep["n_nan_tokens"] == r["nan_tokens"]
