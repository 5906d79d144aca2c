"""Run folders and the artifacts frameworks write today, with a float64 reference (issue 18).

Completes ``experiments/make_dump_corpus.py`` (whose truth, reference and writers it reuses)
with what an independent check found read wrong:

- run folders: a NeMo-RL log directory of three steps, two with a ``val_data_step{N}.jsonl``
  (no logprobs); slime's ``--dump-details`` directory of two rollouts (``train_data/`` beside
  the rollout-only ``rollout_data/``); step directories ``global_step_{N}/``;
- verl ``DataProto.save_to_disk`` with ``VERL_DATAPROTO_SERIALIZATION_METHOD=numpy``
  (volcengine/verl ``verl/protocol.py``: ``serialize_tensordict``, each tensor as
  ``(dtype name, shape, uint8 array)``);
- AReaL's trajectory list (``list[dict]``, one ``(1, L_i)`` dict per trajectory; inclusionAI/
  AReaL ``areal/trainer/ppo/actor.py``), before ``compute_advantages`` and after it without
  the decoupled loss (``logprobs`` overwritten by ``prox_logp``: both fields identical);
- TRL GRPO inputs with vLLM NaN logprobs for some sampled tokens, a truncated completion
  masked by ``mask_truncated_completions`` and the left-padded ``prompt_ids``/``prompt_mask``;
- rows that train no token: SkyRL data-parallel pad rows (``pad_training_input_batch``:
  ``loss_mask`` 0), slime ``remove_sample`` (``loss_masks`` all 0);
- hostile inputs: four malformed SkyRL states, random bytes named ``.npz``.

A row that trains no token has ``keep = False`` in the truth (its reference ``T_i`` is 0);
a NaN token is not trained in the truth (it is out of the reference). Every case records
``T``, the per-sequence statistics, ``untrained`` (rows without a trained token) and
``nan_tokens``. Usage: ``python experiments/make_run_corpus.py --out DIR``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _dump_corpus() -> Any:
    if "make_dump_corpus" in sys.modules:
        return sys.modules["make_dump_corpus"]
    path = Path(__file__).resolve().parent / "make_dump_corpus.py"
    spec = importlib.util.spec_from_file_location("make_dump_corpus", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_dump_corpus"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


D = _dump_corpus()


def _ref(seqs: list[Any], files: list[Path], out: Path, fmt: str, **extra: Any) -> dict:
    r = D.reference(seqs)
    return {"format": fmt, "files": [str(p.relative_to(out)) for p in files],
            "untrained": sum(1 for t in r["T"] if t == 0), "nan_tokens": 0, **r, **extra}  # fmt: skip


# ------------------------------------------------------------------------------- run folders


def write_nemo_run(d: Path, seed: int, B: int) -> dict[int, list[Any]]:
    """Three steps; steps 1 and 3 have a validation file beside the training file."""
    truth = {}
    for step in (1, 2, 3):
        truth[step] = D.make_truth(B, seed + step, multi_turn=True)
        D.write_nemo_rl(d, truth[step], step=step)
    (d / "val_data_step2.jsonl").unlink()
    return truth


def write_slime_run(d: Path, seed: int, B: int) -> dict[int, list[Any]]:
    """``--dump-details DIR`` of rollouts 0 and 1 (train_data + rollout_data each)."""
    truth = {}
    for rid in (0, 1):
        truth[rid] = D.make_truth(B, seed + 10 + rid, multi_turn=False)
        D.write_slime(d, truth[rid], rollout_id=rid)
    return truth


def write_step_dirs(d: Path, seed: int, B: int) -> dict[int, list[Any]]:
    """``global_step_{N}/actor_batch.pt`` (verl field names, file names without a step)."""
    truth = {}
    for step in (4, 8):
        seqs = truth[step] = D.make_truth(B, seed + 20 + step, multi_turn=True)
        t = D._verl_tensors(seqs, 0)
        (d / f"global_step_{step}").mkdir(parents=True, exist_ok=True)
        torch.save(t, d / f"global_step_{step}" / "actor_batch.pt")
    return truth


# ------------------------------------------------------------------------------ artifacts


def _verl_numpy_classes() -> dict[str, Any]:
    """verl ``DataProto`` pickled with ``VERL_DATAPROTO_SERIALIZATION_METHOD=numpy``."""

    def encode(t: torch.Tensor) -> tuple[str, tuple[int, ...], np.ndarray]:
        data = t.flatten().contiguous().view(torch.uint8).numpy()
        return str(t.dtype).removeprefix("torch."), tuple(t.shape), data

    class DataProto:
        def __init__(self, batch: dict, non_tensor_batch: dict, meta_info: dict):
            self.batch, self.non_tensor_batch, self.meta_info = batch, non_tensor_batch, meta_info

        def __getstate__(self):
            n = len(next(iter(self.batch.values())))
            items = {k: encode(v) for k, v in self.batch.items()}
            return ((n,), None, items), self.non_tensor_batch, self.meta_info

    return {"DataProto": DataProto}


def write_verl_numpy(d: Path, seqs: list[Any]) -> list[Path]:
    """``DataProto.save_to_disk`` (a plain pickle); ``old_log_probs`` in bfloat16, padded
    to ``rollout.response_length`` = 64."""
    for s in seqs:  # the truth is what bfloat16 holds
        s.lp = torch.from_numpy(s.lp).to(torch.bfloat16).float().numpy()
    t = D._verl_tensors(seqs, 64)
    t["old_log_probs"] = t["old_log_probs"].to(torch.bfloat16)
    uid = np.array([f"u{i // 2}" for i in range(len(seqs))], dtype=object)
    d.mkdir(parents=True, exist_ok=True)
    with D._Imitation({"verl.protocol": _verl_numpy_classes()}) as mods:
        dp = mods["verl.protocol"].DataProto(t, {"uid": uid}, {"global_step": 1})
        path = d / "dataproto_numpy.pkl"
        path.write_bytes(pickle.dumps(dp))
    return [path]


def write_areal_list(d: Path, seqs: list[Any], *, overwritten: bool = False) -> list[Path]:
    """AReaL's trajectory list: one ``(1, L_i)`` dict per trajectory. ``overwritten``: after
    ``compute_advantages`` without the decoupled loss, ``logprobs`` = ``prox_logp``."""
    out = []
    for s in seqs:
        f = D._full([s])
        prox = np.zeros_like(f["lp"])
        prox[:, :-1] = f["lp"][:, 1:]
        rec = {"input_ids": D._t(np.zeros(f["lp"].shape, np.int64)),
               "attention_mask": D._t(f["attn"].astype(np.int64)),
               "loss_mask": D._t(f["trained"].astype(np.int64)), "logprobs": D._t(f["lr"]),
               "prox_logp": D._t(prox), "rewards": D._t(np.ones(1, np.float32))}  # fmt: skip
        if overwritten:  # compute_advantages: old_logp = logprobs = prox_logp, masked
            rec["loss_mask"] = torch.roll(rec["loss_mask"], -1, dims=-1)
            rec["logprobs"] = rec["prox_logp"] * rec["loss_mask"]
            rec["advantages"] = D._t(np.zeros(f["lp"].shape, np.float32))
            s.lr = s.lp.copy()  # the truth the file holds: no mismatch left to measure
        out.append(rec)
    d.mkdir(parents=True, exist_ok=True)
    path = d / ("areal_overwritten.pt" if overwritten else "areal_trajectories.pt")
    torch.save(out, path)
    return [path]


def write_trl_nan(d: Path, seqs: list[Any], rng: np.random.Generator) -> tuple[list[Path], int]:
    """TRL GRPO inputs: NaN ``sampling_per_token_logps`` at 3 trained tokens (out of the
    truth), row 1 truncated and masked (``completion_mask`` 0), groups of two prompts."""
    seqs[1].keep = False
    r = D._resp(seqs)
    lr = r["lr"].copy()
    cand = np.argwhere(r["trained"] & np.array([s.keep for s in seqs])[:, None])
    pick = cand[rng.choice(len(cand), 3, replace=False)]
    for i, t in pick:
        lr[i, t] = np.nan
        seqs[i].trained[seqs[i].prompt + t] = False
    comp = r["resp"].astype(np.int64)
    comp[1] = 0
    P = 4
    prompts = np.array([[0] * (P - 2) + [7 + i // 2] * 2 for i in range(len(seqs))], np.int64)
    d.mkdir(parents=True, exist_ok=True)
    path = d / "grpo_batch.pt"
    torch.save({
        "prompt_ids": D._t(prompts), "prompt_mask": D._t((prompts != 0).astype(np.int64)),
        "completion_ids": D._t(np.zeros(r["lp"].shape, np.int64)), "completion_mask": D._t(comp),
        "tool_mask": D._t((r["trained"] | ~r["resp"] | np.isnan(lr)).astype(np.int64)),
        "old_per_token_logps": D._t(r["lp"]), "sampling_per_token_logps": D._t(lr),
    }, path)  # fmt: skip
    return [path], 3


def write_skyrl_pad(d: Path, seqs: list[Any]) -> list[Path]:
    """SkyRL with two data-parallel pad rows (copies of row 0 with ``loss_mask`` 0)."""
    pad = [D.Seq(s.prompt, s.segments, s.lp, s.lr, s.trained, keep=False, tokens=s.tokens)
           for s in seqs[:2]]
    seqs.extend(pad)
    r = D._resp(seqs, left=True)
    r["trained"][[len(seqs) - 2, len(seqs) - 1]] = False
    mod = "skyrl.backends.skyrl_train.training_batch"
    with D._Imitation({mod: D._skyrl_classes()}) as mods:
        batch = mods[mod].TrainingInputBatch({
            "action_log_probs": D._t(r["lp"]), "rollout_logprobs": D._t(r["lr"]),
            "loss_mask": D._t(r["trained"].astype(np.int64)),
            "response_mask": D._t(r["resp"].astype(np.int64)),
        })  # fmt: skip
        batch.metadata = {"pad_size": 2}
        path = d / "dumped_data" / "global_step_9_training_input.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(batch))
    return [path]


def write_slime_removed(d: Path, seqs: list[Any]) -> list[Path]:
    """slime with ``remove_sample`` on sample 2: its ``loss_masks`` are all 0."""
    seqs[2].keep = False
    saved = seqs[2].trained.copy()
    seqs[2].trained[:] = False
    paths = D.write_slime(d, seqs, rollout_id=5)
    seqs[2].trained[:] = saved
    return paths


# ----------------------------------------------------------------------------- hostile inputs


def write_malformed_skyrl(d: Path) -> list[Path]:
    """Four malformed SkyRL states: unknown tensor format, bytes not matching the shape, an
    unknown dtype, a tensor without its data."""
    good = {"format": "numpy", "data": np.zeros(6, np.float32).tobytes(), "shape": (2, 3),
            "dtype": "float32"}  # fmt: skip
    bad = {"unknown_format": {**good, "format": "arrow"},
           "shape_mismatch": {**good, "shape": (4, 3)},
           "bad_dtype": {**good, "dtype": "float99"},
           "no_data": {k: v for k, v in good.items() if k != "data"}}  # fmt: skip
    mod = "skyrl.backends.skyrl_train.training_batch"
    d.mkdir(parents=True, exist_ok=True)
    out = []
    with D._Imitation({mod: D._skyrl_classes()}) as mods:
        rebuild, cls = mods[mod]._rebuild_tensor_batch, mods[mod].TrainingInputBatch
        for name, entry in bad.items():

            class Broken(cls):  # noqa: B023 -- pickled at once
                def __reduce__(self, entry=entry):
                    bd = {"action_log_probs": entry, "rollout_logprobs": good,
                          "loss_mask": good}  # fmt: skip
                    state = {"batch_dict": bd, "batch_size": 2, "device": None, "metadata": None}
                    return (rebuild, (cls, state))

            path = d / f"skyrl_{name}.pkl"
            path.write_bytes(pickle.dumps(Broken()))
            out.append(path)
    return out


def make_run_corpus(out: Path, *, seed: int = 0, B: int = 6) -> dict[str, Any]:
    """Write every case into ``out/{case}/``; return the reference (also ``reference.json``).
    Run folders have ``steps`` (step -> reference); artifacts the fields of :func:`_ref`."""
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ref: dict[str, Any] = {}
    for case, writer, fmt in (("nemo-rl-run", write_nemo_run, "nemo-rl"),
                              ("slime-run", write_slime_run, "slime"),
                              ("step-dirs-run", write_step_dirs, "verl")):  # fmt: skip
        truth = writer(out / case, seed, B)
        ref[case] = {"format": fmt, "steps": {str(k): D.reference(v) for k, v in truth.items()}}
    s = D.make_truth(B, seed + 31, multi_turn=True)
    ref["verl-numpy"] = _ref(s, write_verl_numpy(out / "verl-numpy", s), out, "verl",
                             max_response_length=64)  # fmt: skip
    s = D.make_truth(B, seed + 32, multi_turn=True)
    ref["areal-list"] = _ref(s, write_areal_list(out / "areal-list", s), out, "areal")
    s = D.make_truth(B, seed + 33, multi_turn=True)
    files = write_areal_list(out / "areal-overwritten", s, overwritten=True)
    ref["areal-overwritten"] = _ref(s, files, out, "areal", identical=True)
    s = D.make_truth(B, seed + 34, multi_turn=True)
    files, n_nan = write_trl_nan(out / "trl-nan", s, rng)
    ref["trl-nan"] = _ref(s, files, out, "trl", nan_tokens=n_nan, groups=(B + 1) // 2)
    s = D.make_truth(B, seed + 35, multi_turn=True)
    ref["skyrl-pad"] = _ref(s, write_skyrl_pad(out / "skyrl-pad", s), out, "skyrl")
    s = D.make_truth(B, seed + 36, multi_turn=False)
    ref["slime-removed"] = _ref(s, write_slime_removed(out / "slime-removed", s), out, "slime")
    hostile = out / "hostile"
    ref["hostile"] = {"files": [str(p.relative_to(out)) for p in write_malformed_skyrl(hostile)]}
    (hostile / "random.npz").write_bytes(rng.bytes(4096))
    ref["hostile"]["random_npz"] = "hostile/random.npz"
    (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    return ref


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--B", type=int, default=6)
    a = ap.parse_args()
    ref = make_run_corpus(a.out, seed=a.seed, B=a.B)
    print(f"{len(ref)} cases written to {a.out}")


if __name__ == "__main__":
    main()
