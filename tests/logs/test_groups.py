"""Group keys of the rows of a dump (trm_bounds/logs/_groups.py; docs/theory.md §9).

NeMo-RL, slime and AReaL write no key of a prompt's responses, but each writes the prompt's
token ids: the dumps are built here exactly as those writers produce them today (field names,
dtypes, nesting, file format), with several prompts of ``G`` responses each, and the reader
must group the rows by prompt (never by a row index: NeMo-RL's ``idx``, slime's
``sample_index``), in every chunking; ``evaluate`` then certifies over the groups. A dump
without the prompt tokens keeps saying that one response per prompt is assumed.

- NeMo-RL (NVIDIA-NeMo/RL ``nemo_rl/algorithms/grpo.py``, the ``log_data`` of the training
  step; ``nemo_rl/utils/logger.py`` ``log_batched_dict_as_jsonl``): one JSON line per row,
  every value a 1-row slice, plus ``"idx": i``; ``token_ids`` = ``input_ids`` (prompt +
  response, right-padded with the pad token), ``token_loss_mask`` 0 on the prompt;
- slime (THUDM/slime ``slime/observability/train_data_utils.py``, ``_build_dump_payload``,
  format 2; before 681b3adc ``slime/utils/train_dump_utils.py``: ``rollout_data``): per sample
  ``tokens`` (prompt + response, int64), ``response_lengths``, ``loss_masks`` (int32) ...;
- AReaL (inclusionAI/AReaL ``areal/workflow/rlvr.py`` ``arun_episode``, ``prepare_batch(...,
  group_size)``, ``areal/trainer/ppo/actor.py`` ``_compute_advantages``): a list of
  trajectories, each ``(group_size, L)``: ``input_ids`` (int32), ``loss_mask`` (int32, 0 on the
  prompt), ``logprobs``, ``versions``, ``attention_mask``, ``rewards``, ``prox_logp``; after
  ``compute_advantages`` the mask and ``logprobs`` are rolled by -1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from trm_bounds.evaluate import evaluate
from trm_bounds.logs import LogFormatError, iter_batches
from trm_bounds.logs._groups import prompt_keys

P, G = 3, 4  # prompts x responses per prompt
PAD = 0  # the tokenizer's pad token id


def grpo_rows(seed: int, *, multi_turn: bool = False) -> list[dict]:
    """``P`` prompts x ``G`` responses. Prompts 0 and 1 have one length and differ only in
    their last token (the key must see every prompt token); responses of random lengths;
    ``multi_turn``: a tool turn (untrained tokens) inside some responses."""
    rng = np.random.default_rng(seed)
    prompts = [rng.integers(10, 1000, 6), None, rng.integers(10, 1000, 4)]
    prompts[1] = prompts[0].copy()
    prompts[1][-1] += 1
    rows = []
    for p, prompt in enumerate(prompts):
        for _ in range(G):
            n = int(rng.integers(2, 9))
            trained = np.ones(n, bool)
            if multi_turn and n > 4:
                trained[2:4] = False  # tool output: in the response, not trained
            lr = -rng.exponential(1.0, n) - 1e-3
            lp = np.minimum(lr + rng.normal(0.0, 0.05, n), 0.0)
            rows.append({"prompt": prompt, "response": rng.integers(10, 1000, n), "lp": lp,
                         "lr": lr, "trained": trained, "reward": float(rng.integers(0, 2)),
                         "group": p})  # fmt: skip
    return rows


def write_nemo_rl(path: Path, rows: list[dict]) -> Path:
    """``train_data_step{N}.jsonl`` as ``log_batched_dict_as_jsonl`` writes GRPO's log_data."""
    W = max(len(r["prompt"]) + len(r["response"]) for r in rows)
    rng = np.random.default_rng(1)
    with open(path, "w") as fh:
        for i, r in enumerate(rows):
            k, n = len(r["prompt"]), len(r["response"])
            pad = W - k - n
            rec = {
                "content": [["the question", "the answer"]],
                "rewards": [r["reward"]],
                "input_lengths": [k + n],
                "token_ids": [[*r["prompt"].tolist(), *r["response"].tolist(), *[PAD] * pad]],
                "token_loss_mask": [[0] * k + r["trained"].astype(int).tolist() + [0] * pad],
                "sample_loss_mask": [1.0],
                "advantages": [[0.0] * W],
                "generation_logprobs": [[0.0] * k + r["lr"].tolist() + [0.0] * pad],
                "prev_logprobs": [(-rng.exponential(1.0, k)).tolist() + r["lp"].tolist()
                                  + [0.0] * pad],  # fmt: skip
            }
            fh.write(json.dumps({**rec, "idx": i}) + "\n")
    return path


def _slime_sample(i: int, r: dict) -> dict:
    n = len(r["response"])
    return {
        "tokens": torch.tensor([*r["prompt"].tolist(), *r["response"].tolist()], dtype=torch.long),
        "response_lengths": n,
        "total_lengths": len(r["prompt"]) + n,
        "rewards": r["reward"],
        "truncated": 0,
        "loss_masks": torch.tensor(r["trained"].astype(int), dtype=torch.int),
        "rollout_ids": i,
        "rollout_log_probs": torch.tensor(r["lr"], dtype=torch.float32),
        "log_probs": torch.tensor(r["lp"], dtype=torch.float32),
        "advantages": torch.zeros(n),
    }


def write_slime(path: Path, rows: list[dict], *, legacy: bool = False) -> Path:
    """``--dump-details DIR``'s ``train_data/{rollout_id}.pt`` (format 2: one dict per sample,
    with ``sample_index`` = ``Sample.index``, unique per sample); ``legacy``: the
    ``{id}_{rank}.pt`` of ``{"rollout_id", "rank", "rollout_data": per-sample lists}``."""
    samples = [_slime_sample(i, r) for i, r in enumerate(rows)]
    if legacy:
        data = {k: [s[k] for s in samples] for k in samples[0]}
        data.update(sample_indices=list(range(len(rows))), partition=list(range(len(rows))))
        torch.save({"rollout_id": 2, "rank": 0, "rollout_data": data}, path)
        return path
    for i, s in enumerate(samples):
        s.update(data_parallel_rank=0, sample_index=i, rollout_position=i)
    layout = [{"rank": 0, "data_parallel_rank": 0, "sample_indices": list(range(len(rows))),
               "partition": list(range(len(rows))), "micro_batch_indices": [list(range(len(rows)))],
               "num_microbatches": [1], "global_batch_sizes": [len(rows)]}]  # fmt: skip
    torch.save({"format_version": 2, "rollout_id": 2, "rank": 0, "samples": samples,
                "dp_shards": layout, "raw_reward": [r["reward"] for r in rows]}, path)  # fmt: skip
    return path


def write_areal(path: Path, rows: list[dict], *, after_advantages: bool = False,
                tokens: bool = True) -> Path:  # fmt: skip
    """AReaL's trajectory list (``prepare_batch(..., group_size=G)``: one ``(G, L)`` dict per
    prompt, each run right-padded to the group's longest), with ``prox_logp`` (next-token
    aligned) from ``compute_logp``; ``after_advantages``: ``compute_advantages`` has rolled
    ``loss_mask`` and ``logprobs`` by -1 (decoupled loss); ``tokens=False``: no ``input_ids``."""
    trajs = []
    for p in range(P):
        grp = [r for r in rows if r["group"] == p]
        W = max(len(r["prompt"]) + len(r["response"]) for r in grp)
        cols: dict[str, list] = {k: [] for k in ("input_ids", "loss_mask", "logprobs", "versions",
                                                 "attention_mask", "prox_logp")}  # fmt: skip
        for r in grp:
            k, n = len(r["prompt"]), len(r["response"])
            pad = W - k - n
            cols["input_ids"].append([*r["prompt"].tolist(), *r["response"].tolist()] + [0] * pad)
            cols["loss_mask"].append([0] * k + r["trained"].astype(int).tolist() + [0] * pad)
            cols["logprobs"].append([0.0] * k + r["lr"].tolist() + [0.0] * pad)
            cols["versions"].append([-1] * k + [3] * n + [0] * pad)
            cols["attention_mask"].append([True] * (k + n) + [False] * pad)
            full = [-0.5] * k + r["lp"].tolist() + [0.0] * pad
            cols["prox_logp"].append(full[1:] + [0.0])  # prox_logp[t] scores token t+1
        t = {"input_ids": torch.tensor(cols["input_ids"], dtype=torch.int32),
             "loss_mask": torch.tensor(cols["loss_mask"], dtype=torch.int32),
             "logprobs": torch.tensor(cols["logprobs"], dtype=torch.float32),
             "versions": torch.tensor(cols["versions"], dtype=torch.int32),
             "attention_mask": torch.tensor(cols["attention_mask"], dtype=torch.bool),
             "rewards": torch.tensor([r["reward"] for r in grp], dtype=torch.float32),
             "prox_logp": torch.tensor(cols["prox_logp"], dtype=torch.float32)}  # fmt: skip
        if after_advantages:
            t["loss_mask"] = torch.roll(t["loss_mask"].float(), shifts=-1, dims=-1)
            t["logprobs"] = torch.roll(t["logprobs"], shifts=-1, dims=-1) * t["loss_mask"]
            t["advantages"] = torch.zeros(t["logprobs"].shape)
            t["returns"] = torch.zeros(t["logprobs"].shape)
        if not tokens:
            del t["input_ids"]
        trajs.append(t)
    torch.save(trajs, path)
    return path


WRITERS = {
    "nemo-rl": (lambda d, rows: write_nemo_rl(d / "train_data_step3.jsonl", rows), "token_ids"),
    "slime": (lambda d, rows: write_slime(d / "2.pt", rows), "tokens"),
    "slime-legacy": (lambda d, rows: write_slime(d / "2_0.pt", rows, legacy=True), "tokens"),
    "areal": (lambda d, rows: write_areal(d / "trajs.pt", rows), "input_ids"),
    "areal-after-advantages": (
        lambda d, rows: write_areal(d / "trajs.pt", rows, after_advantages=True), "input_ids"),
}  # fmt: skip


@pytest.mark.parametrize("multi_turn", [False, True], ids=["single", "multi"])
@pytest.mark.parametrize("case", sorted(WRITERS))
@pytest.mark.parametrize("chunk_size", [5, 1000])
def test_responses_to_one_prompt_share_a_key(tmp_path, case, multi_turn, chunk_size):
    """Rows share ``prompt_id`` iff they answer the same prompt (prompts 0 and 1 differ in
    their last token only), across chunks; ``group_field`` names the token field."""
    rows = grpo_rows(seed=len(case) + 7 * multi_turn, multi_turn=multi_turn)
    write, field = WRITERS[case]
    path = write(tmp_path, rows)
    chunks = list(iter_batches([path], chunk_size=chunk_size))
    assert {c.group_field for c in chunks} == {f"{field} (identical prompt tokens)"}
    ids = np.concatenate([c.prompt_id for c in chunks])
    truth = np.array([r["group"] for r in rows])  # file order: AReaL's list is by prompt too
    same = ids[:, None] == ids[None, :]
    np.testing.assert_array_equal(same, truth[:, None] == truth[None, :])
    assert len(set(ids.tolist())) == P  # never a row index (idx, sample_index)


def test_untrained_rows_keep_their_prompt(tmp_path):
    """NeMo-RL ``sample_loss_mask`` 0 (an overlong or filtered response): the row trains no
    token, yet its key is its prompt's (read from ``token_loss_mask`` before the sample mask)."""
    rows = grpo_rows(seed=3)
    path = write_nemo_rl(tmp_path / "train_data_step1.jsonl", rows)
    lines = path.read_text().splitlines()
    rec = json.loads(lines[1])
    rec["sample_loss_mask"] = [0.0]
    lines[1] = json.dumps(rec)
    path.write_text("\n".join(lines) + "\n")
    (b,) = iter_batches([path])
    assert b.lengths[1] == 0 and b.prompt_id[1] == b.prompt_id[0]


@pytest.mark.parametrize("case", sorted(WRITERS))
def test_evaluate_certifies_over_the_prompts(tmp_path, case):
    """``evaluate`` certifies over ``P`` groups of ``G`` and the report names the key."""
    rows = grpo_rows(seed=11)
    write, field = WRITERS[case]
    (tmp_path / "in").mkdir()
    path = write(tmp_path / "in", rows)
    c = evaluate(path, tmp_path / "out", progress=False, max_response_length=16)["certified"]
    assert c["computed"] and c["unit"] == "group" and c["n_groups"] == c["n_units"] == P
    assert c["n_sequences"] == P * G and c["group_field"] == f"{field} (identical prompt tokens)"
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"{P} groups of responses sharing a prompt (key: {field}" in md


def test_without_prompt_tokens_one_response_per_prompt_is_assumed(tmp_path):
    """An AReaL list saved without ``input_ids``, a slime dump without ``tokens`` (a custom
    ``convert_samples_to_train_data``): no key, and the report says what it assumes."""
    rows = grpo_rows(seed=5)
    path = write_areal(tmp_path / "a.pt", rows, tokens=False)
    samples = [_slime_sample(i, r) for i, r in enumerate(rows)]
    for s in samples:
        del s["tokens"]
    torch.save({"format_version": 2, "rollout_id": 1, "rank": 0, "samples": samples},
               tmp_path / "s.pt")  # fmt: skip
    for i, p in enumerate((path, tmp_path / "s.pt")):
        b = next(iter_batches([p]))
        assert b.prompt_id is None and b.group_field is None
        rep = evaluate(p, tmp_path / f"o{i}", progress=False, max_response_length=16)
        assert rep["certified"]["unit"] == "sequence"
        assert "assumes one response per prompt" in (tmp_path / f"o{i}" / "report.md").read_text()


def test_slime_response_longer_than_its_tokens_names_the_sample(tmp_path):
    """A ``response_lengths`` above the sample's token count: one line naming the file, the
    sample and the field, no key guessed."""
    rows = grpo_rows(seed=2)
    samples = [_slime_sample(i, r) for i, r in enumerate(rows)]
    samples[4]["response_lengths"] = len(samples[4]["tokens"]) + 1
    torch.save({"format_version": 2, "rollout_id": 1, "rank": 0, "samples": samples},
               tmp_path / "s.pt")  # fmt: skip
    with pytest.raises(LogFormatError, match=r"s\.pt: record 4: field 'response_lengths'") as e:
        list(iter_batches([tmp_path / "s.pt"]))
    assert "\n" not in str(e.value)


@settings(max_examples=60, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(0, 5), min_size=0, max_size=6), min_size=1,
                     max_size=8), data=st.data())  # fmt: skip
def test_prompt_keys_equal_iff_the_prompt_tokens_are(seqs, data):
    """Keys are equal exactly when the prompt token sequences are, wherever each prompt sits
    in its row (left or right padding, any width): two independent routes, the digest and a
    comparison of the sequences."""
    W = max(len(s) for s in seqs) + data.draw(st.integers(0, 3))
    tok = np.full((len(seqs), W), 7, np.int64)  # padding holds a token id too
    cells = np.zeros((len(seqs), W), bool)
    for i, s in enumerate(seqs):
        off = data.draw(st.integers(0, W - len(s)))
        tok[i, off:off + len(s)] = s
        cells[i, off:off + len(s)] = True
    keys = prompt_keys(tok, cells)
    wide = prompt_keys(np.pad(tok, ((0, 0), (0, 2)), constant_values=9),
                       np.pad(cells, ((0, 0), (0, 2))))  # fmt: skip
    assert keys.tolist() == wide.tolist()
    for i, a in enumerate(seqs):
        for j, b in enumerate(seqs):
            assert (keys[i] == keys[j]) == (a == b)
