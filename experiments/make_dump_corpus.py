"""Generate a corpus of dumps laid out as each framework writes them, with a float64 reference.

One random *truth* per case: sequences of a prompt and a response made of generated segments
(trained) and, in multi-turn cases, tool/observation segments between them (not trained);
every position carries a trainer and a rollout logprob, and positions outside the trained
tokens carry junk values far from the truth, so a reader that takes the wrong mask, the
wrong alignment or the wrong policy field gets visibly different statistics. Each writer
below lays the truth out the way its framework's own writer does (learnt from the
framework's source; see :mod:`trm_bounds.logs.frameworks` for the files), without the
framework installed: pickled framework classes are imitated by throw-away classes carrying
the framework's module and class names, removed from ``sys.modules`` after writing.

The reference (``reference.json``, per case: per-sequence trained-token counts ``T_i`` and
float64 ``sum (lp - lr)``, ``sum (lp - lr)^2 / 2``, ``max |lp - lr|``) is computed with numpy
on the generating arrays only, independently of the readers.

Usage: ``python experiments/make_dump_corpus.py --out DIR [--seed 0] [--B 6]``.
Tests call :func:`make_corpus` into a temporary directory.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import pickle
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

JUNK_THETA, JUNK_ROLL = -7.0, -0.05  # values outside the trained tokens (never read)


@dataclass
class Seq:
    """One sequence: prompt length, response segments (kind, length), per-position values."""

    prompt: int
    segments: list[tuple[str, int]]  # ("gen" | "tool", n)
    lp: np.ndarray  # (P + R,) trainer logprob of the token at each position
    lr: np.ndarray  # (P + R,) rollout logprob
    trained: np.ndarray  # (P + R,) bool: generated response tokens
    keep: bool = True  # NeMo-RL sample_loss_mask
    tokens: np.ndarray | None = None  # (P + R,) token ids; the prompt's are the row's own

    @property
    def length(self) -> int:
        return self.lp.shape[0]

    @property
    def response(self) -> slice:
        return slice(self.prompt, self.length)


def make_truth(B: int, seed: int, *, multi_turn: bool, dtype: Any = np.float32) -> list[Seq]:
    """B random sequences; multi-turn ones alternate generated and tool segments."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(B):
        P = int(rng.integers(2, 6))
        n_turns = int(rng.integers(2, 4)) if multi_turn else 1
        segs: list[tuple[str, int]] = []
        for k in range(n_turns):
            segs.append(("gen", int(rng.integers(1, 8))))
            if k < n_turns - 1:
                segs.append(("tool", int(rng.integers(1, 5))))
        R = sum(n for _, n in segs)
        trained = np.zeros(P + R, bool)
        pos = P
        for kind, n in segs:
            trained[pos : pos + n] = kind == "gen"
            pos += n
        lr = -rng.exponential(1.0, P + R) - 1e-3
        lp = np.minimum(lr + rng.normal(0.0, 0.2, P + R), 0.0)
        lp = np.where(trained, lp, JUNK_THETA).astype(dtype)
        lr = np.where(trained, lr, JUNK_ROLL).astype(dtype)
        # token ids from a generator of their own (the values above stay as they were): every
        # row its own prompt, so token-derived group keys give one response per prompt
        tok = np.random.default_rng([seed, i]).integers(3, 32000, P + R)
        out.append(Seq(P, segs, lp, lr, trained, tokens=tok))
    return out


def reference(seqs: list[Seq]) -> dict[str, list]:
    """Per-sequence float64 reference from the generating arrays (numpy only)."""
    T, s1, s2, mx = [], [], [], []
    for s in seqs:
        m = s.trained & s.keep
        d = s.lp[m].astype(np.float64) - s.lr[m].astype(np.float64)
        T.append(int(m.sum()))
        s1.append(float(d.sum()))
        s2.append(float((0.5 * d * d).sum()))
        mx.append(float(np.abs(d).max()) if d.size else 0.0)
    return {"T": T, "sum_k1": s1, "sum_k2": s2, "max_abs_log_ratio": mx}


def _resp(seqs: list[Seq], *, pad_to: int = 0, left: bool = False) -> dict[str, np.ndarray]:
    """Response-region arrays (B, R): right-padded, or right-aligned (SkyRL) with ``left``."""
    R = max(max(s.length - s.prompt for s in seqs), pad_to)
    B = len(seqs)
    lp, lr = np.zeros((B, R), seqs[0].lp.dtype), np.zeros((B, R), seqs[0].lr.dtype)
    tr, resp = np.zeros((B, R), bool), np.zeros((B, R), bool)
    for i, s in enumerate(seqs):
        n = s.length - s.prompt
        sl = slice(R - n, R) if left else slice(0, n)
        lp[i, sl], lr[i, sl], tr[i, sl] = s.lp[s.response], s.lr[s.response], s.trained[s.response]
        resp[i, sl] = True
    return {"lp": lp, "lr": lr, "trained": tr, "resp": resp}


def _full(seqs: list[Seq], *, pad_to: int = 0) -> dict[str, np.ndarray]:
    """Prompt + response arrays (B, L), right-padded (NeMo-RL, ROLL, AReaL layouts)."""
    L = max(max(s.length for s in seqs), pad_to)
    B = len(seqs)
    out = {k: np.zeros((B, L), seqs[0].lp.dtype) for k in ("lp", "lr")}
    out["trained"], out["attn"], out["resp"] = (np.zeros((B, L), bool) for _ in range(3))
    out["tok"] = np.zeros((B, L), np.int64)  # pad id 0
    for i, s in enumerate(seqs):
        n = s.length
        out["lp"][i, :n], out["lr"][i, :n], out["trained"][i, :n] = s.lp, s.lr, s.trained
        out["tok"][i, :n] = s.tokens
        out["attn"][i, :n] = True
        out["resp"][i, s.prompt : n] = True
    return out


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a))


# ------------------------------------------------------------------ imitated framework classes


def _fake_module(name: str, attrs: dict[str, Any]) -> types.ModuleType:
    mod = types.ModuleType(name)
    for k, v in attrs.items():
        if isinstance(v, type) or callable(v):
            v.__module__ = name
            v.__qualname__ = k
        setattr(mod, k, v)
    return mod


class _Imitation:
    """Put imitation modules into ``sys.modules`` for pickling only; remove them after."""

    def __init__(self, modules: dict[str, dict[str, Any]]):
        self.mods = {n: _fake_module(n, a) for n, a in modules.items()}
        for n in list(self.mods):  # parent packages, so that ``import a.b.c`` resolves
            parts = n.split(".")
            for k in range(1, len(parts)):
                self.mods.setdefault(".".join(parts[:k]), types.ModuleType(".".join(parts[:k])))

    def __enter__(self) -> dict[str, types.ModuleType]:
        self.saved = {n: sys.modules.get(n) for n in self.mods}
        sys.modules.update(self.mods)
        return self.mods

    def __exit__(self, *exc: Any) -> None:
        for n, m in self.saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:  # pragma: no cover - the real framework is installed
                sys.modules[n] = m


def _skyrl_classes() -> dict[str, Any]:
    """SkyRL's TensorBatch pickling (NovaSky-AI/SkyRL ``training_batch.py``): ``__reduce__`` =
    ``_rebuild_tensor_batch(cls, state)`` with numpy-format tensors in ``state['batch_dict']``."""

    def _rebuild_tensor_batch(cls, state):  # pragma: no cover - never called by the reader
        raise RuntimeError("the reader must not call SkyRL code")

    class TensorBatch(dict):
        metadata = None

        def __reduce__(self):
            bd = {}
            for k, v in self.items():
                arr = v.numpy()
                bd[k] = {"format": "numpy", "data": arr.tobytes(), "shape": arr.shape,
                         "dtype": str(arr.dtype)}  # fmt: skip
            state = {"batch_dict": bd, "batch_size": len(next(iter(self.values()))),
                     "device": torch.device("cpu"), "metadata": self.metadata}  # fmt: skip
            return (_rebuild_tensor_batch, (type(self), state))

    class TrainingInputBatch(TensorBatch):
        pass

    return {"_rebuild_tensor_batch": _rebuild_tensor_batch, "TensorBatch": TensorBatch,
            "TrainingInputBatch": TrainingInputBatch}  # fmt: skip


def _skyrl_legacy_classes() -> dict[str, Any]:
    """Older SkyRL (``skyrl_train/training_batch.py``): a dict subclass pickled by default
    (its items as tensors) plus ``__getstate__`` = each tensor as ``torch.save`` bytes."""

    class TensorBatch(dict):
        metadata = None

        def __getstate__(self):
            bd = {}
            for k, v in self.items():
                buf = io.BytesIO()
                torch.save(v, buf)
                bd[k] = buf.getvalue()
            return {"batch_dict": bd, "batch_size": len(next(iter(self.values()))),
                    "device": torch.device("cpu"), "metadata": self.metadata}  # fmt: skip

    class TrainingInputBatch(TensorBatch):
        pass

    return {"TensorBatch": TensorBatch, "TrainingInputBatch": TrainingInputBatch}


def _verl_classes() -> tuple[dict[str, Any], dict[str, Any]]:
    """verl ``DataProto`` (``__getstate__`` = torch.save bytes of the TensorDict, the
    non-tensor batch and meta_info) and a tensordict ``TensorDict`` (state in ``__dict__``)."""

    class TensorDict:
        def __init__(self, tensors: dict, batch_size: int):
            self._tensordict = dict(tensors)
            self._batch_size = torch.Size([batch_size])
            self._device = None

    class DataProto:
        def __init__(self, batch, non_tensor_batch, meta_info):
            self.batch, self.non_tensor_batch, self.meta_info = batch, non_tensor_batch, meta_info

        def __getstate__(self):
            buf = io.BytesIO()
            torch.save(self.batch, buf)
            return buf.getvalue(), self.non_tensor_batch, self.meta_info

        def __setstate__(self, state):  # pragma: no cover - never called by the reader
            raise RuntimeError("the reader must not call verl code")

    return {"DataProto": DataProto}, {"TensorDict": TensorDict}


# ------------------------------------------------------------------------------------ writers


def write_nemo_rl(d: Path, seqs: list[Seq], step: int = 3, *, gz: bool = False) -> list[Path]:
    """NeMo-RL log dir: ``train_data_step{N}.jsonl`` (1-row slices over prompt + response,
    ``token_loss_mask``, ``sample_loss_mask``), ``val_data_step{N}.jsonl``, wandb/, tensorboard/."""
    f = _full(seqs)
    d.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, s in enumerate(seqs):
        rec = {
            "token_ids": [f["tok"][i].tolist()],
            "prev_logprobs": [f["lp"][i].astype(np.float64).tolist()],
            "generation_logprobs": [f["lr"][i].astype(np.float64).tolist()],
            "token_loss_mask": [f["trained"][i].astype(int).tolist()],
            "sample_loss_mask": [1.0 if s.keep else 0.0],
            "input_lengths": [s.length],
            "rewards": [float(i % 2)],
        }
        lines.append(json.dumps(rec))
    name = f"train_data_step{step}.jsonl"
    path = d / (name + ".gz" if gz else name)
    text = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    (d / f"val_data_step{step}.jsonl").write_text(
        "\n".join(json.dumps({"prompt": "q", "response": "a", "reward": 1.0}) for _ in seqs) + "\n"
    )
    (d / "wandb" / "run-1" / "files").mkdir(parents=True, exist_ok=True)
    (d / "wandb" / "run-1" / "files" / "wandb-metadata.json").write_text('{\n  "os": "Linux"\n}\n')
    (d / "wandb" / "run-1" / "files" / "output.jsonl").write_text('{"step": 1}\n')
    (d / "tensorboard").mkdir(exist_ok=True)
    (d / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"\x00\x01")
    return [path]


def write_slime(d: Path, seqs: list[Seq], rollout_id: int = 2) -> list[Path]:
    """slime ``--dump-details DIR``: ``train_data/{id}_{rank}.pt`` (per-sample response lists)
    and ``rollout_data/{id}.pt`` (rollout side only)."""
    per: dict[str, list] = {"tokens": [], "log_probs": [], "rollout_log_probs": [],
                            "loss_masks": [], "response_lengths": [], "total_lengths": [],
                            "rewards": []}  # fmt: skip
    for s in seqs:
        r = s.response
        per["tokens"].append(s.tokens.tolist())
        per["log_probs"].append(torch.from_numpy(s.lp[r].copy()))
        per["rollout_log_probs"].append(s.lr[r].astype(np.float64).tolist())
        per["loss_masks"].append(s.trained[r].astype(int).tolist())
        per["response_lengths"].append(s.length - s.prompt)
        per["total_lengths"].append(s.length)
        per["rewards"].append(1.0)
    (d / "train_data").mkdir(parents=True, exist_ok=True)
    (d / "rollout_data").mkdir(parents=True, exist_ok=True)
    path = d / "train_data" / f"{rollout_id}_0.pt"
    torch.save({"rollout_id": rollout_id, "rank": 0, "rollout_data": per}, path)
    samples = [{"tokens": per["tokens"][i], "rollout_log_probs": per["rollout_log_probs"][i],
                "loss_mask": per["loss_masks"][i], "response_length": per["response_lengths"][i],
                "reward": 1.0} for i in range(len(seqs))]  # fmt: skip
    torch.save(
        {"rollout_id": rollout_id, "samples": samples}, d / "rollout_data" / f"{rollout_id}.pt"
    )
    return [path]


def write_skyrl(d: Path, seqs: list[Seq], step: int = 5, *, legacy: bool = False) -> list[Path]:
    """SkyRL ``dumped_data/global_step_{N}_training_input.pkl``: a plain pickle of a
    ``TrainingInputBatch``; response tensors right-aligned (left-padded), ``loss_mask`` 0 on
    observation tokens, ``response_mask`` 1 on every response token."""
    r = _resp(seqs, left=True)
    mod = "skyrl_train.training_batch" if legacy else "skyrl.backends.skyrl_train.training_batch"
    classes = _skyrl_legacy_classes() if legacy else _skyrl_classes()
    with _Imitation({mod: classes}) as mods:
        batch = mods[mod].TrainingInputBatch(
            {
                "action_log_probs": _t(r["lp"]),
                "rollout_logprobs": _t(r["lr"]),
                "loss_mask": _t(r["trained"].astype(np.int64)),
                "response_mask": _t(r["resp"].astype(np.int64)),
                "advantages": _t(np.zeros(r["lp"].shape, np.float32)),
            }
        )
        batch.metadata = {"response_length": r["lp"].shape[1], "avg_response_length": 3.0}
        out = d / "dumped_data" / f"global_step_{step}_training_input.pkl"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(pickle.dumps(batch))
    return [out]


def _verl_tensors(seqs: list[Seq], pad_to: int) -> dict[str, torch.Tensor]:
    r = _resp(seqs, pad_to=pad_to)
    # verl multi-turn: response_mask is 0 on tool-response tokens (and on padding)
    return {
        "responses": _t(np.zeros(r["lp"].shape, np.int64)),
        "old_log_probs": _t(r["lp"]),
        "rollout_log_probs": _t(r["lr"]),
        "response_mask": _t(r["trained"].astype(np.int64)),
    }


def write_verl(d: Path, seqs: list[Seq], *, pad_to: int = 0) -> list[Path]:
    """verl: ``DataProto.save_to_disk`` (``.pkl``), ``torch.save(DataProto)`` and
    ``torch.save(batch.batch)`` (a TensorDict), each with the same batch."""
    tens = _verl_tensors(seqs, pad_to)
    uid = np.array([f"u{i // 2}" for i in range(len(seqs))], dtype=object)
    dp_attrs, td_attrs = _verl_classes()
    d.mkdir(parents=True, exist_ok=True)
    with _Imitation({"verl.protocol": dp_attrs, "tensordict._td": td_attrs}) as mods:
        td = mods["tensordict._td"].TensorDict(tens, len(seqs))
        dp = mods["verl.protocol"].DataProto(td, {"uid": uid}, {"global_step": 1})
        paths = [d / "batch_step1.pkl", d / "dataproto_step1.pt", d / "tensordict_step1.pt"]
        paths[0].write_bytes(pickle.dumps(dp))
        torch.save(dp, paths[1])
        torch.save(td, paths[2])
    return paths


def write_trl(d: Path, seqs: list[Seq]) -> list[Path]:
    """TRL GRPO batch (``torch.save`` of the inputs dict): ``completion_mask`` 1 on every
    completion token (tool outputs included), ``tool_mask`` 0 on tool outputs."""
    r = _resp(seqs)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "grpo_batch.pt"
    torch.save({
        "completion_ids": _t(np.zeros(r["lp"].shape, np.int64)),
        "completion_mask": _t(r["resp"].astype(np.int64)),
        "tool_mask": _t((r["trained"] | ~r["resp"]).astype(np.int64)),
        "old_per_token_logps": _t(r["lp"]),
        "sampling_per_token_logps": _t(r["lr"]),
        "advantages": _t(np.zeros(len(seqs), np.float32)),
    }, path)  # fmt: skip
    return [path]


def write_roll(d: Path, seqs: list[Seq]) -> list[Path]:
    """ROLL: ``old_log_probs`` / ``infer_logprobs`` (B, L-1), column t scoring token t+1,
    beside ``response_mask`` (B, L) (0 on environment tokens)."""
    f = _full(seqs)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "roll_batch.pt"
    torch.save({
        "input_ids": _t(f["tok"]),
        "response_mask": _t(f["trained"].astype(np.int64)),
        "old_log_probs": _t(f["lp"][:, 1:]),
        "infer_logprobs": _t(f["lr"][:, 1:]),
    }, path)  # fmt: skip
    return [path]


def write_areal(d: Path, seqs: list[Seq], *, after_advantages: bool = False) -> list[Path]:
    """AReaL batch: ``logprobs`` (rollout) and ``loss_mask`` token-aligned, ``prox_logp``
    (trainer) next-token aligned; after ``compute_advantages`` all rolled by -1."""
    f = _full(seqs)
    prox = np.zeros_like(f["lp"])
    prox[:, :-1] = f["lp"][:, 1:]  # prox_logp[t] scores token t+1
    out = {
        "input_ids": _t(f["tok"]),
        "attention_mask": _t(f["attn"].astype(np.int64)),
        "loss_mask": _t(f["trained"].astype(np.int64)),
        "logprobs": _t(f["lr"]),
        "prox_logp": _t(prox),
        "rewards": _t(np.ones(len(seqs), np.float32)),
    }
    if after_advantages:
        out["loss_mask"] = torch.roll(out["loss_mask"], -1, dims=-1)
        out["logprobs"] = torch.roll(out["logprobs"], -1, dims=-1)
        out["advantages"] = _t(np.zeros(f["lp"].shape, np.float32))
    d.mkdir(parents=True, exist_ok=True)
    path = d / ("areal_after_adv.pt" if after_advantages else "areal_batch.pt")
    torch.save(out, path)
    return [path]


def write_openrlhf(d: Path, seqs: list[Seq]) -> list[Path]:
    """OpenRLHF ``Experience`` fields: ``action_log_probs`` / ``rollout_log_probs`` (B, A)
    with ``action_mask``."""
    r = _resp(seqs)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "experience.pt"
    torch.save({
        "sequences": _t(np.zeros(r["lp"].shape, np.int64)),
        "action_mask": _t(r["trained"]),
        "action_log_probs": _t(r["lp"]),
        "rollout_log_probs": _t(r["lr"]),
    }, path)  # fmt: skip
    return [path]


#: case name -> (writer, multi_turn, fmt to pass, what to point the reader at: "file" | "dir")
CASES: dict[str, tuple[Callable[..., list[Path]], bool, str, str]] = {}
for _fw, _w in (("nemo-rl", write_nemo_rl), ("slime", write_slime), ("skyrl", write_skyrl),
                ("verl", write_verl), ("trl", write_trl), ("roll", write_roll),
                ("areal", write_areal), ("openrlhf", write_openrlhf)):  # fmt: skip
    for _mt in (False, True):
        CASES[f"{_fw}-{'multi' if _mt else 'single'}"] = (_w, _mt, _fw, "dir")
CASES["skyrl-legacy-multi"] = (lambda d, s: write_skyrl(d, s, legacy=True), True, "skyrl", "dir")
CASES["nemo-rl-gz-multi"] = (lambda d, s: write_nemo_rl(d, s, gz=True), True, "nemo-rl", "dir")
CASES["areal-after-adv-multi"] = (
    lambda d, s: write_areal(d, s, after_advantages=True),
    True,
    "areal",
    "dir",
)
CASES["verl-pad4096-multi"] = (lambda d, s: write_verl(d, s, pad_to=4096), True, "verl", "dir")


def make_corpus(out: Path, *, seed: int = 0, B: int = 6) -> dict[str, Any]:
    """Write every case into ``out/{case}/`` and return the reference (also ``reference.json``)."""
    out.mkdir(parents=True, exist_ok=True)
    ref: dict[str, Any] = {}
    for k, (case, (writer, multi, fw, _)) in enumerate(CASES.items()):
        seqs = make_truth(B, seed + k, multi_turn=multi)
        if case.startswith("nemo-rl"):
            seqs[1].keep = False  # a sample_loss_mask of 0
        files = writer(out / case, seqs)
        ref[case] = {"format": fw, "files": [str(p.relative_to(out)) for p in files],
                     **reference(seqs)}  # fmt: skip
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    return ref


def tensordict_fixture_arrays() -> dict[str, np.ndarray]:
    """The arrays of the committed real-tensordict fixtures (seeded, recomputable)."""
    rng = np.random.default_rng(20261127)
    lr = (-rng.exponential(1.0, (3, 5)) - 1e-3).astype(np.float32)
    lp = np.minimum(lr + rng.normal(0.0, 0.2, (3, 5)), 0.0).astype(np.float32)
    mask = (np.arange(5)[None, :] < np.array([[5], [2], [4]])).astype(np.int64)
    return {"old_log_probs": lp, "rollout_log_probs": lr, "response_mask": mask}


def write_real_tensordict_fixtures(out: Path) -> list[Path]:
    """Pickles made by the real ``tensordict`` (needs it installed; run once, committed under
    ``tests/fixtures/dumps/``): ``pickle.dumps(td)`` and ``torch.save(td.consolidate())``, the
    two forms verl users end up with."""
    import tensordict  # noqa: F401 -- only this writer needs it
    from tensordict import TensorDict

    arr = tensordict_fixture_arrays()
    td = TensorDict({k: _t(v) for k, v in arr.items()}, batch_size=[3])
    ver = tensordict.__version__
    out.mkdir(parents=True, exist_ok=True)
    plain, cons = out / f"tensordict_{ver}_pickle.pkl", out / f"tensordict_{ver}_consolidated.pt"
    plain.write_bytes(pickle.dumps(td))
    torch.save(td.contiguous().consolidate(), cons)
    return [plain, cons]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--B", type=int, default=6)
    ap.add_argument("--tensordict-fixtures", type=Path, default=None,
                    help="also write real-tensordict pickles into this directory")  # fmt: skip
    a = ap.parse_args()
    if a.tensordict_fixtures is not None:
        print(write_real_tensordict_fixtures(a.tensordict_fixtures))
    ref = make_corpus(a.out, seed=a.seed, B=a.B)
    print(f"{len(ref)} cases written to {a.out}")


if __name__ == "__main__":
    main()
