"""Reader for slime ``--dump-details DIR`` dumps (``.pt`` files read by ``torch.load``).

slime (THUDM/slime, ``slime/utils/train_dump_utils.py``, ``save_debug_train_data``) writes
``DIR/train_data/{rollout_id}_{rank}.pt`` = ``{"rollout_id", "rank", "rollout_data": {...}}``
with per-sample lists over the response tokens: ``log_probs`` (trainer), ``rollout_log_probs``
(SGLang), ``loss_masks``, and ``tokens`` (prompt + response) with ``response_lengths``: the
group of a sample is its prompt's token ids (identical prompts, one key: ``group_index`` is
not in the train dump, and ``sample_indices`` is one per sample). Since THUDM/slime 681b3adc
(``slime/observability/train_data_utils.py``, ``_build_dump_payload``) the file is
``DIR/train_data/{rollout_id}.pt`` = ``{"format_version": 2, ..., "samples": [one dict per
sample: the same fields, and "sample_index", "rollout_position"], "dp_shards": [...]}``.
``DIR/rollout_data/{rollout_id}.pt`` = ``{"rollout_id", "samples": [sample dicts]}`` holds the
rollout side only (no trainer logprob): inside a directory it is skipped
(:class:`~trm_bounds.logs.frameworks.MissingLogprobs`). Per-sample 1-D values of any length
are padded here without a Python loop over tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs._canonical import check_ragged, finish, mask_array
from trm_bounds.logs._groups import sample_group_key
from trm_bounds.logs._padding import pad_flat, to_numpy
from trm_bounds.logs.aliases import pick
from trm_bounds.logs.batch import Batch
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import Fields

__all__: list[str] = []


def unwrap_slime(obj: dict[str, Any], file: Path, framework: str) -> dict[str, Any]:
    """The batch dictionary inside a slime dump (``obj`` itself when it is not one)."""
    if "rollout_data" in obj and isinstance(obj["rollout_data"], dict):  # slime train dump
        return obj["rollout_data"]
    if "samples" in obj and isinstance(obj["samples"], list):  # slime per-sample dicts
        samples = obj["samples"]
        if not samples:
            raise LogFormatError(file, "file", "samples", "holds no sequences")
        keys = list(samples[0].keys())
        return {k: [s.get(k) for s in samples] for k in keys}
    if framework == "slime":
        raise LogFormatError(file, "file", "rollout_data", "missing (not a slime dump)")
    return obj


def from_samples(
    d: dict[str, Any], file: Path, chunk_size: int, fields: Fields
) -> Iterator[Batch]:
    """Per-sample lists (slime ``rollout_data``): ``d[field][i]`` is sequence i's 1-D values."""
    names = fields.names
    lp_list, lr_list = d[names["log_probs"]], d[names["rollout_log_probs"]]
    kmask = fields.masks[0] if fields.masks else None
    m_list = d[kmask] if kmask is not None else None
    n = len(lp_list)
    if n == 0:
        raise LogFormatError(file, "file", names["log_probs"], "holds no sequences")
    for fld, lst in ((names["rollout_log_probs"], lr_list), (kmask, m_list)):
        if lst is not None and len(lst) != n:
            raise LogFormatError(
                file, "file", fld, f"{len(lst)} samples but '{names['log_probs']}' has {n}"
            )
    keys = list(d.keys())
    kr = pick(keys, "reward")
    rewards = d[kr] if kr is not None else None
    for s in range(0, n, chunk_size):
        idx = range(s, min(n, s + chunk_size))
        lps = [np.asarray(to_numpy(lp_list[i]), dtype=np.float64).reshape(-1) for i in idx]
        lrs = [np.asarray(to_numpy(lr_list[i]), dtype=np.float64).reshape(-1) for i in idx]
        lens = {names["log_probs"]: np.array([a.shape[0] for a in lps])}
        lens[names["rollout_log_probs"]] = np.array([a.shape[0] for a in lrs])
        if m_list is not None:
            ms = [np.asarray(to_numpy(m_list[i])).reshape(-1) for i in idx]
            lens[kmask] = np.array([a.shape[0] for a in ms])
        check_ragged(file, lens, s)
        L = lens[names["log_probs"]]
        lp = pad_flat(np.concatenate(lps), L)
        lr = pad_flat(np.concatenate(lrs), L)
        valid = np.arange(lp.shape[1])[None, :] < L[:, None]
        if m_list is not None:
            mv = mask_array(np.concatenate(ms), file, kmask, s)
            mask = pad_flat(mv, L, fill=False).astype(bool) & valid
        else:
            mask = valid
        rew = None
        if rewards is not None and len(rewards) == n:
            rew = np.array([float(to_numpy(rewards[i]).reshape(-1).sum()) for i in idx])
        pid, kp = sample_group_key(d, fields, keys, idx, file, n)
        yield finish(file, s, lp, lr, mask, names, reward=rew, zero_padding=m_list is None,
                     prompt_id=pid, group_field=kp)
