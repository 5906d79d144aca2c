"""A real TRL GRPO run on CPU with TRM masking and the monitor (trm_bounds.integrations.trl).

A tiny randomly initialised Llama (2 layers, hidden 32) and a character-level tokenizer are
built offline; the sampler of every other GRPO group is a perturbed copy of the trainer's
weights (lm_head + N(0, 3^2) noise), the known injected mismatch, the other groups are sampled
by the trainer's own weights. The margins: a perturbed row's max token ``k2 = r^2/2`` is far
above the 0.05 threshold (its logits move by O(10)), an unperturbed row's is ~1e-14 (the
KV-cache vs full-forward float32 difference), so the mask's decisions are the same on every CPU.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("trl")
pytest.importorskip("tensorboard")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from trm_bounds.integrations.trl import TRMGRPOTrainer, generation_rollout  # noqa: E402
from trm_bounds.monitor import Monitor  # noqa: E402

G = 4  # num_generations
STEPS = 3
MAX_LEN = 8


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("abcdefgh")}}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")


def _model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=10, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64,
                      pad_token_id=0, eos_token_id=1, bos_token_id=None)  # fmt: skip
    return LlamaForCausalLM(cfg)


def _reward(completions, **kw):
    return [c.count("a") / max(len(c), 1) for c in completions]


def _mismatched_rollout(model):
    """Even groups sampled by a perturbed copy of ``model``, odd groups by ``model`` itself."""
    noisy = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        noisy.lm_head.weight.add_(3.0 * torch.randn(noisy.lm_head.weight.shape, generator=gen))
    exact, perturbed = generation_rollout(), generation_rollout(noisy)

    def rollout(prompts, trainer):
        idx = [[i for i in range(len(prompts)) if (i // G) % 2 == odd] for odd in (0, 1)]
        parts = [f([prompts[i] for i in ix], trainer) for f, ix in zip((perturbed, exact), idx, strict=True)]
        out = {k: [None] * len(prompts) for k in ("prompt_ids", "completion_ids", "logprobs")}
        for part, ix in zip(parts, idx, strict=True):
            for k in out:
                for j, i in enumerate(ix):
                    out[k][i] = part[k][j]
        return out

    return rollout


def _trainer(tmp: Path, run_dir: Path, *, max_steps: int = STEPS):
    from datasets import Dataset
    from trl import GRPOConfig

    model = _model()
    args = GRPOConfig(output_dir=str(tmp / "out"), per_device_train_batch_size=2 * G,
                      num_generations=G, max_completion_length=MAX_LEN, max_steps=max_steps,
                      logging_steps=1, report_to=["tensorboard"], use_cpu=True,
                      save_strategy="no", learning_rate=1e-3, seed=0)  # fmt: skip
    mon = Monitor(run_dir, max_response_length=MAX_LEN, tensorboard=True, dump_batches=True)
    ds = Dataset.from_dict({"prompt": ["ab", "cd", "ef", "gh"] * 8})
    return TRMGRPOTrainer(model=model, reward_funcs=_reward, args=args, train_dataset=ds,
                          processing_class=_tokenizer(), monitor=mon,
                          rollout_func=_mismatched_rollout(model))  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One short GRPO run: (trainer, monitor folder, TRL's output folder)."""
    tmp = tmp_path_factory.mktemp("trl")
    tr = _trainer(tmp, tmp / "monitor")
    tr.train()
    return tr, tmp / "monitor", tmp / "out"


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1).clone() for p in model.parameters() if p.grad is not None])


def test_rejected_sequences_contribute_exactly_zero_gradient(tmp_path):
    tr = _trainer(tmp_path, tmp_path / "monitor")
    tr.model.train()
    tr.current_gradient_accumulation_steps = 1
    prompts = [{"prompt": p} for p in ("ab", "cd") for _ in range(G)]
    batch = tr._generate_and_score_completions(prompts)
    keep = batch["trm_keep"]
    assert keep.dtype == torch.bool and keep.shape == (2 * G,)
    assert not keep.all() and keep.any()  # the injected mismatch: perturbed groups rejected
    group = torch.arange(2 * G) // G
    assert torch.equal(keep, group % 2 == 1)

    def grad_of(b):
        tr.model.zero_grad()
        tr._compute_loss(tr.model, b).backward()
        return _grads(tr.model)

    # non-zero advantages on every row (a group with equal rewards has none)
    batch["advantages"] = torch.randn(2 * G, generator=torch.Generator().manual_seed(3))
    g = grad_of(batch)
    assert g.abs().sum() > 0
    # changing a rejected row's advantage and tokens leaves the gradient bit for bit unchanged
    b2 = dict(batch)
    b2["advantages"] = torch.where(keep, batch["advantages"], torch.full_like(batch["advantages"], 1e3))
    ids = batch["completion_ids"].clone()
    ids[~keep] = torch.randint(2, 10, ids[~keep].shape, generator=torch.Generator().manual_seed(2))
    b2["completion_ids"] = ids
    assert torch.equal(grad_of(b2), g)
    # the same change on a kept row does change it (the check can fail)
    b3 = dict(batch)
    b3["advantages"] = batch["advantages"].clone()
    b3["advantages"][int(torch.nonzero(keep)[0])] += 1.0
    assert not torch.equal(grad_of(b3), g)
    tr.monitor.close()


def test_metrics_reach_trl_logs_and_tensorboard(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tr, mon_dir, out_dir = run
    logged = [h for h in tr.state.log_history if "trm/acceptance_rate" in h]
    assert len(logged) == STEPS
    lines = [json.loads(x) for x in (mon_dir / "metrics.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == list(range(STEPS))
    for h, ln in zip(logged, lines, strict=True):
        assert h["trm/acceptance_rate"] == pytest.approx(0.5, abs=0)  # odd groups kept
        for k in ("trm/acceptance_rate", "rollout_corr/kl", "trm/cert/bound_proved_here"):
            assert h[k] == pytest.approx(ln[k], rel=1e-12, abs=0)

    def tags(d: Path) -> set[str]:
        found = set()
        for f in d.rglob("events.out.tfevents.*"):
            ea = EventAccumulator(str(f.parent))
            ea.Reload()
            found |= set(ea.Tags()["scalars"]) | set(ea.Tags()["tensors"])
        return found

    assert {"train/trm/acceptance_rate", "train/rollout_corr/k3_kl"} <= tags(out_dir)
    assert {"trm/acceptance_rate", "rollout_corr/k3_kl"} <= tags(mon_dir / "tensorboard")


@pytest.mark.e2e
def test_dumps_give_the_same_numbers_through_evaluate_by_step(run, tmp_path):
    _, mon_dir, _ = run
    out = tmp_path / "ev"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-m", "trm_bounds", "evaluate", "--by-step",
                    str(mon_dir / "dumps"), "--out", str(out), "--no-html", "--no-figures", "--quiet"],
                   check=True, env=env, capture_output=True)  # fmt: skip
    rows = json.loads((out / "run.json").read_text())["steps"]
    lines = [json.loads(x) for x in (mon_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [ln["step"] for ln in lines]
    for r, ln in zip(rows, lines, strict=True):
        assert r["n_tokens"] == ln["trm/n_tokens"]
        for c in ("seq_max_k2", "seq_mean_k3", "seq_max_k2,seq_mean_k3"):
            assert r[f"acceptance:{c}"] == ln[f"trm/acceptance_rate/{c}"]  # counts over B: exact
        # float32 statistics summed in another order (padded width differs): float32 rounding
        for k in ("k3_mean", "k2_max", "ser_mean", "log_ppl_abs_diff"):
            np.testing.assert_allclose(r[f"metric:{k}"], ln[f"trm/{k}"], rtol=1e-5, atol=1e-12)
