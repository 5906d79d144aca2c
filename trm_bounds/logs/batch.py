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
from pathlib import Path

import numpy as np

from trm_bounds.logs.aliases import _TOPK_FIELDS
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.padding import _float_dtype

__all__ = ["MAX_LOGPROB", "MAX_CELLS", "Batch", "validate"]

#: Largest accepted logprob (nats); anything above is a logging bug.
MAX_LOGPROB = 1e-6

#: A chunk holds at most this many padded (sequence, position) cells (32 MiB per float32
#: array, 64 MiB per float64 array), whatever ``chunk_size`` says: peak memory stays bounded
#: for long sequences.
MAX_CELLS = 1 << 23


@dataclass
class Batch:
    """One chunk of sequences in canonical form (right-padded, prefix masks, float32/64).

    Shapes: ``log_probs``, ``rollout_log_probs``, ``response_mask``: ``(B, T)``;
    ``reward``: ``(B,)`` or None; ``logits``/``rollout_logits``: ``(B, T, V)`` or None;
    ``topk``: dict of ``(B, T, K)`` arrays (keys of :data:`_TOPK_FIELDS`) or None.
    ``source`` is the file, ``first_record`` the index of row 0 within it.
    ``zero_padding``: both logprob arrays are known to hold 0 at every cell outside the mask
    (lets the statistics skip their masking pass).

    Rows with no trained token (``response_mask`` all False: SkyRL data-parallel pad rows,
    NeMo-RL ``sample_loss_mask = 0``, slime ``remove_sample``, TRL truncated completions
    under ``mask_truncated_completions``, ROLL's sample mask) *stay* in the batch, so row
    ``i`` is record ``first_record + i`` of the file; they are not sequences, and the
    statistics count them apart (``Stats.n_untrained_rows``), never in acceptance rates.

    Group and generation limit (what the artifact itself says, else None):

    - ``prompt_id``: ``(B,)`` object array, the key that groups the samples of one prompt
      (the framework's own group key: verl ``uid``, ...; the prompt's token ids, as a
      string, only where the artifact holds the prompt tokens and no key);
    - ``group_field``: the field ``prompt_id`` was read from (``"uid"``; ``"prompt_ids
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


def _compact(batch: Batch) -> Batch:
    """Move each row's valid tokens to the front (stable), so masks become prefixes."""
    m = batch.response_mask
    if m.shape[1] < 2 or not np.any(m[:, 1:] > m[:, :-1]):  # a valid cell after an invalid one
        return batch
    order = np.argsort(~m, axis=1, kind="stable")  # (B, T) valid positions first

    def take(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        idx = order if a.ndim == 2 else order[..., None]
        return np.take_along_axis(a, idx, axis=1)

    batch.log_probs = take(batch.log_probs)
    batch.rollout_log_probs = take(batch.rollout_log_probs)
    batch.response_mask = take(m)
    batch.logits = take(batch.logits)
    batch.rollout_logits = take(batch.rollout_logits)
    if batch.topk is not None:
        batch.topk = {k: take(v) for k, v in batch.topk.items()}
    # zero the padding so that padded positions never carry a value
    batch.log_probs = np.where(batch.response_mask, batch.log_probs, 0.0)
    batch.rollout_log_probs = np.where(batch.response_mask, batch.rollout_log_probs, 0.0)
    batch.zero_padding = True
    return batch


def _where(row: int, first_record: int, lines: np.ndarray | None) -> str:
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
                    _where(i, r0, lines),
                    fld,
                    f"{what} at token index {t} (value {float(arr[i, t])!r})",
                )
    for name in ("logits", "rollout_logits"):
        a = getattr(batch, name)
        if a is not None:
            bad = np.isnan(a).any(axis=(1, 2))
            if bad.any():
                raise LogFormatError(src, _where(int(np.argmax(bad)), r0, lines), name, "NaN")
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
                    raise LogFormatError(src, _where(int(np.argmax(bad)), r0, lines), name, "NaN")


def _mask_array(a: np.ndarray, file: Path, fld: str, r0: int, lines=None) -> np.ndarray:
    """0/1 (bool, int or float) mask -> bool; anything else is an error."""
    if a.dtype == bool:
        return a
    ok = (a == 0) | (a == 1)
    if not ok.all():
        bad = np.argwhere(~ok)[0]
        raise LogFormatError(
            file,
            _where(int(bad[0]), r0, lines),
            fld,
            f"mask value {a[tuple(bad)].item()!r} at token index {int(bad[1])} is not 0/1",
        )
    return a.astype(bool)


def _finish(
    file: Path,
    r0: int,
    lp: np.ndarray,
    lr: np.ndarray,
    mask: np.ndarray,
    names: dict[str, str],
    *,
    reward=None,
    prompt_id=None,
    extra: dict[str, np.ndarray] | None = None,
    lines=None,
    trim: bool | int = True,
    vocab_size: int | None = None,
    validated: bool = False,
    zero_padding: bool = False,
    group_field: str | None = None,
    max_response_length: int | None = None,
    max_response_length_source: str | None = None,
) -> Batch:
    """Build, compact and validate one canonical chunk from padded arrays.

    ``trim=True`` trims to the chunk's longest valid sequence; an integer (batch dictionaries:
    the file's longest valid sequence) trims every chunk to that width, so the canonical arrays
    do not depend on how wide the file was padded and per-sequence reductions see the same row
    layout whatever the chunk size; ``trim=False`` keeps the file's padded width for every chunk, so
    per-sequence reductions see the same row layout whatever the chunk size. ``validated``:
    the caller has already checked every value (and the padding is zeros), skip
    :func:`validate`. ``zero_padding``: every cell outside the mask holds 0 (padding made
    by :func:`_pad_flat` with no mask field). ``group_field`` names the field of
    ``prompt_id``; ``max_response_length`` (with its ``_source``) is the artifact's generation
    limit (:class:`Batch`).
    """
    extra = extra or {}
    for canon, a in (("log_probs", lp), ("rollout_log_probs", lr)):
        if a.ndim != 2 or a.dtype.kind not in "fiu":
            raise LogFormatError(
                file,
                "file",
                names.get(canon, canon),
                f"expected a numeric (B, T) array, got shape {a.shape} dtype {a.dtype}",
            )
    for fld, a in (("rollout_log_probs", lr), ("response_mask", mask)):
        if a.shape != lp.shape:
            bad = 0 if a.shape[0] != lp.shape[0] else None
            raise LogFormatError(
                file,
                "file" if bad is None else _where(0, r0, lines),
                names.get(fld, fld),
                f"shape {a.shape} differs from {names.get('log_probs')} {lp.shape}",
            )
    mask = _mask_array(mask, file, names.get("response_mask", "response_mask"), r0, lines)
    rew = None
    if reward is not None:
        rew = np.asarray(reward, dtype=np.float64)
        if rew.ndim == 2 and rew.shape == mask.shape:  # token-level scores: per-sequence sum
            rew = np.where(mask, rew, 0.0).sum(axis=1)
        rew = rew.reshape(-1) if rew.size == lp.shape[0] else None
    pid = None
    if prompt_id is not None:
        pid = np.asarray(prompt_id, dtype=object).reshape(-1)
        pid = pid if pid.shape[0] == lp.shape[0] else None
    if max_response_length is not None and max_response_length_source is None:
        raise ValueError("max_response_length needs its source")
    fdt = _float_dtype(lp, lr)
    batch = Batch(
        log_probs=np.asarray(lp, dtype=fdt),
        rollout_log_probs=np.asarray(lr, dtype=fdt),
        response_mask=mask,
        source=str(file),
        first_record=r0,
        reward=rew,
        prompt_id=pid,
        logits=extra.get("logits"),
        rollout_logits=extra.get("rollout_logits"),
        topk={k: extra[k] for k in _TOPK_FIELDS} if all(k in extra for k in _TOPK_FIELDS) else None,
        vocab_size=vocab_size,
        zero_padding=zero_padding,
        group_field=group_field if pid is not None else None,
        max_response_length=max_response_length,
        max_response_length_source=(
            max_response_length_source if max_response_length is not None else None
        ),
    )
    # NaN / +inf checks must see the raw arrays before compaction moves values around
    if not validated:
        validate(batch, names=names, lines=lines)
    batch = _compact(batch)
    # ragged input: drop columns past the longest sequence
    if trim is True:
        Tm = int(batch.lengths.max())
    elif trim is False:
        Tm = batch.response_mask.shape[1]
    else:
        Tm = max(int(trim), 1)
    if Tm < batch.response_mask.shape[1]:
        for name in ("log_probs", "rollout_log_probs", "response_mask", "logits", "rollout_logits"):
            a = getattr(batch, name)
            if a is not None:
                setattr(batch, name, a[:, :Tm])
        if batch.topk is not None:
            batch.topk = {k: v[:, :Tm] for k, v in batch.topk.items()}
    return batch


def _check_ragged(file: Path, lens: dict[str, np.ndarray], r0: int, lines=None) -> None:
    """Per-sequence lengths of the logprob and mask fields must agree."""
    items = list(lens.items())
    base_name, base = items[0]
    for name, ln in items[1:]:
        diff = np.flatnonzero(ln != base)
        if diff.size:
            i = int(diff[0])
            raise LogFormatError(
                file,
                _where(i, r0, lines),
                name,
                f"length {int(ln[i])} differs from '{base_name}' length {int(base[i])}",
            )
