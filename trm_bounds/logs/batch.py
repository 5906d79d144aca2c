r"""The canonical chunk (:class:`Batch`), its validation and the one-line input error.

Every reader turns its input into :class:`Batch` chunks of right-padded floating arrays
``(B, T)`` (float32 where both logprob fields are logged as float32, float64 otherwise):

- ``log_probs``          -- ``log pi_theta(y_t | c_t)`` (trainer), nats;
- ``rollout_log_probs``  -- ``log pi_roll(y_t | c_t)`` (inference engine), nats;
- ``response_mask``      -- bool, valid response tokens, always a *prefix* of each row.

Masks with holes (a NeMo-RL prompt prefix, masked tool output in multi-turn logs) are
compacted: the valid tokens of a row are moved to the front in order, so position ``t`` is
the index of the token among the sequence's valid tokens and ``T_i`` its number of valid
tokens (docs/theory.md §1: positions after the end carry zero divergence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trm_bounds.certify.samples import MAX_LOGPROB  # the one owner of the rule
from trm_bounds.logs.errors import LogFormatError

__all__ = ["MAX_LOGPROB", "MAX_CELLS", "MAX_CHUNK_BYTES", "Batch", "validate", "record_label"]


#: A chunk holds at most this many padded (sequence, position) cells (32 MiB per float32
#: array, 64 MiB per float64 array), whatever ``chunk_size`` says: peak memory stays bounded
#: for long sequences.
MAX_CELLS = 1 << 23

#: A reader that can read part of a file (parquet record batches) takes at most this many
#: bytes of uncompressed input columns at once, whatever ``chunk_size`` says: peak memory is
#: set by bytes, not by a row count (rows of 8,192 float32 tokens: about 128 rows per batch).
#: Peak RSS of ``evaluate`` on parquet of rows up to 8,192 tokens in row groups of 8,192 rows
#: (experiments/results/bench_evaluate.json, ``memory_byte_budget``): 0.58 GB at 1e8 tokens,
#: as at 2e7 (1.54 GB at 1e8 with record batches of 4,096 rows).
MAX_CHUNK_BYTES = 1 << 23


@dataclass
class Batch:
    """One chunk of sequences in canonical form (right-padded, prefix masks, float32/64).

    Shapes: ``log_probs``, ``rollout_log_probs``, ``response_mask``: ``(B, T)``;
    ``reward``: ``(B,)`` or None; ``logits``/``rollout_logits``: ``(B, T, V)`` or None;
    ``topk``: dict of ``(B, T, K)`` arrays (keys of :data:`TOPK_FIELDS`) or None.
    ``source`` is the file, ``first_record`` the index of row 0 within it.
    ``zero_padding``: both logprob arrays are known to hold 0 at every cell outside the mask
    (lets the statistics skip their masking pass).

    Rows with no trained token (``response_mask`` all False: SkyRL data-parallel pad rows,
    NeMo-RL ``sample_loss_mask = 0``, slime ``remove_sample``, TRL truncated completions
    under ``mask_truncated_completions``, ROLL's sample mask) *stay* in the batch, so row
    ``i`` is record ``first_record + i`` of the file; they are not sequences, and the
    statistics count them apart (``Stats.n_untrained_rows``), never in acceptance rates.

    Group and generation limit (what the artifact itself says, else None):

    - ``prompt_id``: ``(B,)`` array, the key that groups the samples of one prompt: the
      framework's own group key (verl ``uid``, SkyRL ``uids``, ROLL ``traj_group_id`` or
      ``prompt_id``, OpenRLHF ``index``, a generic ``prompt_id``); only where the artifact
      holds the prompt tokens and no key, a hash of the prompt's token ids: identical
      prompts, one key (TRL ``prompt_ids`` under ``prompt_mask``; NeMo-RL ``token_ids``
      before the first ``token_loss_mask`` 1; slime ``tokens`` less the last
      ``response_lengths``; AReaL ``input_ids`` before the first ``loss_mask`` 1). None where
      the artifact holds neither (SkyRL after ``uids`` is popped, an AReaL batch saved
      without ``input_ids``, a slime dump without ``tokens``);
    - ``group_field``: the field ``prompt_id`` was read from (``"uid"``; ``"token_ids
      (identical prompt tokens)"`` for the token fallback), None without ``prompt_id``;
    - ``max_response_length``: the generation limit (max new tokens) fixed by the
      artifact: a response tensor padded to the configured maximum (verl pads
      ``responses`` to ``rollout.response_length``) or a recorded config; never the
      observed maximum length. None where the artifact does not fix it;
    - ``max_response_length_source``: where it was read (e.g. ``"width of verl
      'responses' (padded to rollout.response_length)"``), None with it.

    ``n_nan_tokens``: trained tokens whose rollout logprob was NaN in the file (vLLM
    returns NaN for some tokens) and that the reader took out of the mask as the framework
    does (TRL 1.16); counted, never silently.
    """

    log_probs: np.ndarray
    rollout_log_probs: np.ndarray
    response_mask: np.ndarray
    source: str = ""
    first_record: int = 0
    reward: np.ndarray | None = None
    prompt_id: np.ndarray | None = None
    logits: np.ndarray | None = None
    rollout_logits: np.ndarray | None = None
    topk: dict[str, np.ndarray] | None = field(default=None)
    vocab_size: int | None = None
    zero_padding: bool = False
    group_field: str | None = None
    max_response_length: int | None = None
    max_response_length_source: str | None = None
    n_nan_tokens: int = 0

    @property
    def lengths(self) -> np.ndarray:
        """Per-sequence number of valid tokens ``T_i``, shape ``(B,)``, int64."""
        return self.response_mask.sum(axis=1, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.log_probs.shape[0])


def record_label(row: int, first_record: int, lines: np.ndarray | None) -> str:
    """Where row ``row`` is in its file: ``line N`` (JSONL) or ``record N``."""
    if lines is not None:
        return f"line {int(lines[row])}"
    return f"record {first_record + row}"


def validate(
    batch: Batch, *, names: dict[str, str] | None = None, lines: np.ndarray | None = None
) -> None:
    """Check a canonical chunk; raise :class:`LogFormatError` at the first bad value.

    Rules: no NaN anywhere; no ``+inf``; no rollout logprob of
    ``-inf`` on a valid token (a sampled token has positive probability under its sampler);
    no logprob above :data:`MAX_LOGPROB`. A trainer logprob of ``-inf`` is valid (``rho = 0``).
    A row without valid tokens is valid (it trains no token: kept in the batch and counted
    apart by the statistics, never as a sequence).
    ``names`` maps canonical names to the names found in the file (for messages); ``lines``
    gives JSONL line numbers per row.
    """
    names = names or {}
    src, r0 = batch.source, batch.first_record
    m = batch.response_mask
    for canon, arr, is_roll in (
        ("log_probs", batch.log_probs, False),
        ("rollout_log_probs", batch.rollout_log_probs, True),
    ):
        fld = names.get(canon, canon)
        ok = arr <= MAX_LOGPROB  # fast path: False at NaN, +inf and too-large values
        if is_roll:
            ok &= arr > -np.inf
        if ok.all():
            continue
        checks = (
            (np.isnan(arr), "NaN"),
            (np.isposinf(arr), "+inf"),
            ((arr == -np.inf) & m if is_roll else None, "-inf rollout logprob (p = 0 sampled)"),
            ((arr > MAX_LOGPROB) & np.isfinite(arr) & m, f"logprob above {MAX_LOGPROB:g}"),
        )
        for bad, what in checks:
            if bad is None:
                continue
            rows = np.flatnonzero(bad.any(axis=1))
            if rows.size:
                i = int(rows[0])
                t = int(np.flatnonzero(bad[i])[0])
                raise LogFormatError(
                    src,
                    record_label(i, r0, lines),
                    fld,
                    f"{what} at token index {t} (value {float(arr[i, t])!r})",
                )
    for name in ("logits", "rollout_logits"):
        a = getattr(batch, name)
        if a is not None:
            bad = np.isnan(a).any(axis=(1, 2))
            if bad.any():
                raise LogFormatError(src, record_label(int(np.argmax(bad)), r0, lines), name, "NaN")
            if a.shape[:2] != m.shape:
                raise LogFormatError(
                    src, "file", name, f"shape {a.shape} does not match the logprobs {m.shape}"
                )
    if batch.topk is not None:
        for name, a in batch.topk.items():
            if a.shape[:2] != m.shape:
                raise LogFormatError(
                    src, "file", name, f"shape {a.shape} does not match the logprobs {m.shape}"
                )
            if "log_probs" in name and a.dtype.kind == "f":
                bad = np.isnan(a).any(axis=(1, 2))
                if bad.any():
                    raise LogFormatError(src, record_label(int(np.argmax(bad)), r0, lines), name, "NaN")
