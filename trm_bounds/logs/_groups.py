"""The group key of a dump's rows: which responses share a prompt (docs/theory.md §9).

The one owner of the rule every reader follows: the framework's own key first
(:attr:`~trm_bounds.logs.frameworks.Framework.group`: verl ``uid``, ...), else a generic
``prompt_id`` of the alias table, else, only where the artifact holds the prompt's token ids
(:class:`~trm_bounds.logs.frameworks.PromptTokens`), one key per distinct prompt token
sequence (:func:`prompt_keys`): identical prompts, one group. Nothing else is a key: a row
index (NeMo-RL's ``idx``, slime's ``sample_index``) is unique per response, not per prompt.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from trm_bounds.logs._padding import pad_flat, to_numpy
from trm_bounds.logs.aliases import pick
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import Fields, PromptTokens

__all__: list[str] = []


def prompt_keys(tokens: np.ndarray, prompt: np.ndarray) -> np.ndarray:
    """``(B, W)`` token ids and ``(B, W)`` bool (the cells that are the row's prompt) ->
    ``(B,)`` object array of hex digests: two rows share a key iff their prompt token
    sequences (in order) are identical, whatever their padding or the array's width (so a
    prompt keeps its key across chunks and files). One hash per row, never per token."""
    tok = np.asarray(tokens).astype(np.int64, copy=False)
    cells = np.asarray(prompt, dtype=bool)
    order = np.argsort(~cells, axis=1, kind="stable")  # each row's prompt cells first, in order
    packed = np.ascontiguousarray(np.take_along_axis(tok, order, axis=1))
    n = cells.sum(axis=1)
    return np.array([hashlib.blake2b(r[:k].tobytes(), digest_size=8).hexdigest()
                     for r, k in zip(packed, n.tolist(), strict=True)], dtype=object)  # fmt: skip


def prompt_cells(spec: PromptTokens, tokens: np.ndarray, by: np.ndarray | None,
                 n_tokens: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """The ``(B, W)`` cells of ``tokens`` that are each row's prompt, by ``spec.rule``:

    - ``"prompt_mask"``: ``by`` is 1 on the prompt's tokens (TRL's left-padded
      ``prompt_mask``); without it every cell is the prompt;
    - ``"before_trained"``: ``by`` is the trainable-token mask, 0 on the prompt and 1 from the
      first generated token (NeMo-RL ``token_loss_mask``, AReaL ``loss_mask``): the prompt is
      every cell before the row's first 1. A row without a trained token is no sequence (the
      certificate never counts it), whatever its key;
    - ``"response_length"``: ``by`` ``(B,)`` is the response's length and ``n_tokens`` ``(B,)``
      the row's token count (slime ``tokens`` = prompt + response, ``response_lengths``): the
      prompt is the first ``n_tokens - by`` cells.
    """
    B, W = tokens.shape
    if spec.rule == "prompt_mask":
        return np.ones((B, W), bool) if by is None else np.asarray(by) != 0
    if spec.rule == "before_trained":
        return np.cumsum(np.asarray(by) != 0, axis=1) == 0
    if spec.rule == "response_length":
        n_prompt = np.asarray(n_tokens, dtype=np.int64) - np.asarray(by, dtype=np.int64)
        return np.arange(W)[None, :] < n_prompt[:, None]
    raise ValueError(f"unknown prompt-token rule {spec.rule!r}")


def group_key(d: dict[str, Any], fields: Fields, keys: list[str], B: int, file: Any
              ) -> tuple[np.ndarray | None, str | None]:  # fmt: skip
    """``(prompt_id, the field it came from)`` of a batch dictionary of ``B`` padded rows:
    the framework's own key, else a generic one of the alias table, else the prompt's token
    ids where the artifact holds them (:func:`prompt_cells`); ``(None, None)`` otherwise. A
    key whose length is not one per row is no key."""
    k = fields.group or pick(keys, "prompt_id")
    if k is not None:
        v = d[k]
        v = to_numpy(v) if hasattr(v, "detach") else np.asarray(v, dtype=object)
        if v.ndim == 1 and v.shape[0] == B:
            return v, k
    spec = fields.group_tokens
    if spec is None:
        return None, None
    tok = to_numpy(d[spec.tokens])
    if tok.ndim != 2 or tok.shape[0] != B or tok.dtype.kind not in "iub":
        return None, None
    by = to_numpy(d[spec.by]) if spec.by in d else None
    if by is not None and by.shape != tok.shape:
        if spec.rule != "prompt_mask":  # the rule needs it cell by cell
            raise LogFormatError(file, "file", spec.by,
                                 f"shape {by.shape} differs from '{spec.tokens}' {tok.shape}")
        by = None  # fmt: skip
    if spec.rule == "before_trained" and fields.framework == "areal" and fields.align == "same":
        by = np.roll(by, 1, axis=1)  # compute_advantages rolled loss_mask by -1: its inverse
    return prompt_keys(tok, prompt_cells(spec, tok, by)), label(spec)


def sample_group_key(d: dict[str, Any], fields: Fields, keys: list[str], idx: range, file: Any,
                     n: int) -> tuple[np.ndarray | None, str | None]:  # fmt: skip
    """The same rule for per-sample lists (slime ``rollout_data`` / ``samples``): samples
    ``idx`` of ``n``; token ids per sample are 1-D of any length."""
    k = fields.group or pick(keys, "prompt_id")
    if k is not None and len(d[k]) == n:
        return np.asarray([to_numpy(d[k][i]).reshape(-1)[0] if hasattr(d[k][i], "shape")
                           else d[k][i] for i in idx], dtype=object), k  # fmt: skip
    spec = fields.group_tokens
    if spec is None or len(d[spec.tokens]) != n or len(d[spec.by]) != n:
        return None, None
    toks = [np.asarray(to_numpy(d[spec.tokens][i])).reshape(-1) for i in idx]
    by = np.array([int(np.asarray(to_numpy(d[spec.by][i])).reshape(-1)[0]) for i in idx])
    L = np.array([t.shape[0] for t in toks], dtype=np.int64)
    bad = np.flatnonzero((by < 0) | (by > L))
    if bad.size:
        i = int(bad[0])
        raise LogFormatError(file, f"record {idx[i]}", spec.by,
                             f"{by[i]} response tokens in a sample of {L[i]} '{spec.tokens}'")
    tok = pad_flat(np.concatenate(toks).astype(np.int64), L, fill=-1, dtype=np.int64)  # fmt: skip
    return prompt_keys(tok, prompt_cells(spec, tok, by, L)), label(spec)


def label(spec: PromptTokens) -> str:
    """``group_field`` of a token-derived key: the field and what it means."""
    return f"{spec.tokens} (identical prompt tokens)"
