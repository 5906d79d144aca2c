"""Pickled dumps are read without executing code (trm_bounds.logs.unpickle; issue 10).

Proof by side effect: every pickle below would create a marker file if anything in it were
called; each is refused with one line naming the global, and the marker never exists.
``--trust-pickle`` stays the only way to run arbitrary pickles, and its failures are one line.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from trm_bounds.logs import LogFormatError, load_dataset
from trm_bounds.logs.unpickle import PickleRefused, restricted_loads

ROOT = Path(__file__).resolve().parents[2]


class Evil:
    """Unpickling this calls ``open(marker, "w")``: a file appears if anything executes."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


class EvilSystem:
    """Unpickling this runs a shell command creating the marker."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _batch(extra) -> dict:
    lp = -np.ones((2, 3), np.float32)
    return {"old_log_probs": torch.from_numpy(lp), "rollout_log_probs": torch.from_numpy(lp - 0.1),
            "response_mask": torch.ones(2, 3, dtype=torch.int64), "meta": extra}  # fmt: skip


def _writers(tmp: Path, evil) -> dict[str, Path]:
    """The same malicious object hidden in every container the readers open."""
    out = {}
    out["plain.pkl"] = tmp / "plain.pkl"
    out["plain.pkl"].write_bytes(pickle.dumps(_batch(evil)))
    out["zip.pt"] = tmp / "zip.pt"
    torch.save(_batch(evil), out["zip.pt"])
    out["pickle_named.pt"] = tmp / "pickle_named.pt"
    out["pickle_named.pt"].write_bytes(pickle.dumps(_batch(evil), protocol=2))
    # nested: verl DataProto state whose batch bytes hide the object (a stand-in outside)
    buf = io.BytesIO()
    torch.save({"old_log_probs": torch.zeros(1, 1), "x": evil}, buf)
    nested = _reduce_as("verl.protocol", "DataProto", (buf.getvalue(), {}, {}))
    out["nested_verl.pkl"] = tmp / "nested_verl.pkl"
    out["nested_verl.pkl"].write_bytes(nested)
    # nested: SkyRL batch_dict entry in torch format hiding the object
    buf = io.BytesIO()
    torch.save(evil, buf)
    state = {"batch_dict": {"action_log_probs": {"format": "torch", "data": buf.getvalue()}},
             "batch_size": 1, "device": None, "metadata": None}  # fmt: skip
    out["nested_skyrl.pkl"] = tmp / "nested_skyrl.pkl"
    out["nested_skyrl.pkl"].write_bytes(
        _reduce_call("skyrl.backends.skyrl_train.training_batch", "_rebuild_tensor_batch",
                     ("skyrl.backends.skyrl_train.training_batch", "TrainingInputBatch"), state)
    )  # fmt: skip
    return out


def _reduce_as(module: str, name: str, state) -> bytes:
    """Hand-assembled pickle: NEWOBJ of module.name, then BUILD with ``state``."""
    body = pickle.dumps(state, protocol=4)[2:-1]  # strip PROTO and STOP (with FRAME at start)
    if body[:1] == pickle.FRAME:
        body = body[9:]
    head = (b"\x80\x04" + pickle.SHORT_BINUNICODE + bytes([len(module)]) + module.encode()
            + pickle.SHORT_BINUNICODE + bytes([len(name)]) + name.encode() + pickle.STACK_GLOBAL
            + pickle.EMPTY_TUPLE + pickle.NEWOBJ)  # fmt: skip
    return head + body + pickle.BUILD + pickle.STOP


def _reduce_call(module: str, func: str, cls: tuple[str, str], state) -> bytes:
    """Hand-assembled pickle: module.func(module2.cls, state)."""

    def glob(m: str, n: str) -> bytes:
        return (pickle.SHORT_BINUNICODE + bytes([len(m)]) + m.encode() + pickle.SHORT_BINUNICODE
                + bytes([len(n)]) + n.encode() + pickle.STACK_GLOBAL)  # fmt: skip

    body = pickle.dumps(state, protocol=4)[2:-1]
    if body[:1] == pickle.FRAME:
        body = body[9:]
    return (b"\x80\x04" + glob(module, func) + glob(*cls) + body + pickle.TUPLE2
            + pickle.REDUCE + pickle.STOP)  # fmt: skip


@pytest.mark.parametrize("kind", [Evil, EvilSystem], ids=["open", "os.system"])
@pytest.mark.parametrize(
    "container", ["plain.pkl", "zip.pt", "pickle_named.pt", "nested_verl.pkl", "nested_skyrl.pkl"]
)
def test_nothing_executes_without_trust_pickle(tmp_path, kind, container):
    """Refused with one line naming the global; the side-effect file does not exist."""
    marker = tmp_path / "EXECUTED"
    path = _writers(tmp_path, kind(marker))[container]
    assert not marker.exists()
    with pytest.raises(LogFormatError) as err:
        load_dataset([path])
    msg = str(err.value)
    assert "\n" not in msg and "refused global" in msg and "--trust-pickle" in msg, msg
    assert ("builtins" in msg or "io.open" in msg) if kind is Evil else ("system" in msg)
    assert not marker.exists()


def test_nothing_executes_through_the_command_line(tmp_path):
    """``python -m trm_bounds.evaluate evil.pkl``: exit 2, one stderr line, no marker, no
    report."""
    marker = tmp_path / "EXECUTED"
    path = _writers(tmp_path, EvilSystem(marker))["plain.pkl"]
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "trm_bounds.evaluate", str(path), "--out", str(out), "--quiet"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "refused global" in proc.stderr
    assert not marker.exists() and not (out / "report.json").exists()


def test_trust_pickle_runs_it_and_fails_in_one_line(tmp_path):
    """With trust_pickle the pickle does run (the marker appears: the flag is the only way),
    and a pickle whose framework is not installed fails with one line, no traceback."""
    marker = tmp_path / "EXECUTED"
    path = _writers(tmp_path, Evil(marker))["plain.pkl"]
    load_dataset([path], trust_pickle=True)
    assert marker.exists()
    missing = tmp_path / "fw.pkl"
    missing.write_bytes(_reduce_as("verl_not_installed.protocol", "DataProto", ({}, {}, {})))
    with pytest.raises(LogFormatError, match="--trust-pickle load failed: ModuleNotFoundError"):
        load_dataset([missing], trust_pickle=True)
    # the same inside a torch zip file (torch.save of a framework object)
    zipped = tmp_path / "fw.pt"
    with zipfile.ZipFile(zipped, "w") as z:  # a torch archive whose data.pkl names the class
        z.writestr(
            "fw/data.pkl", _reduce_as("verl_not_installed.protocol", "DataProto", ({}, {}, {}))
        )
        z.writestr("fw/version", "3\n")
        z.writestr("fw/byteorder", "little")
    with pytest.raises(LogFormatError) as err:
        load_dataset([zipped], trust_pickle=True)
    assert "\n" not in str(err.value) and "--trust-pickle load failed" in str(err.value)


def test_codecs_encode_is_latin1_only():
    """Protocol-2 bytes use _codecs.encode(text, 'latin1'); any other codec is refused."""
    assert restricted_loads(pickle.dumps(b"\x00\xff", protocol=2)) == b"\x00\xff"
    evil = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x06\x00\x00\x00base64\x86R."
    with pytest.raises(PickleRefused, match="encoding"):
        restricted_loads(evil)


def test_arrays_and_tensors_round_trip_exactly():
    """The allow-list rebuilds numpy arrays (every protocol) and torch tensors bit for bit."""
    rng = np.random.default_rng(0)
    a = rng.normal(size=(3, 5)).astype(np.float32)
    for proto in (2, 3, 4, 5):
        d = restricted_loads(pickle.dumps({"a": a, "t": torch.from_numpy(a)}, protocol=proto))
        np.testing.assert_array_equal(d["a"], a)
        np.testing.assert_array_equal(d["t"].numpy(), a)


@pytest.mark.parametrize(
    "name", ["tensordict_0.15.3_pickle.pkl", "tensordict_0.15.3_consolidated.pt"]
)
def test_real_tensordict_pickles_read_without_tensordict(name):
    """Pickles written by the real tensordict (committed fixtures) load exactly through the
    stand-ins; the tensordict package is never imported."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_dump_corpus_td", ROOT / "experiments" / "make_dump_corpus.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_dump_corpus_td"] = mod
    spec.loader.exec_module(mod)
    arr = mod.tensordict_fixture_arrays()
    had = "tensordict" in sys.modules
    b = load_dataset([ROOT / "tests" / "fixtures" / "dumps" / name])
    assert had or "tensordict" not in sys.modules
    m = arr["response_mask"].astype(bool)
    np.testing.assert_array_equal(b.lengths, m.sum(1))
    for i in range(m.shape[0]):
        n = int(m[i].sum())
        np.testing.assert_array_equal(b.log_probs[i, :n], arr["old_log_probs"][i, m[i]])
        np.testing.assert_array_equal(b.rollout_log_probs[i, :n], arr["rollout_log_probs"][i, m[i]])
