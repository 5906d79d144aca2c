"""Padded arrays -> canonical :class:`~trm_bounds.logs.Batch` chunks: the one builder every
reader calls (:func:`finish`), the compaction of masks with holes (:func:`compact`) and the
per-row checks of ragged inputs (:func:`check_ragged`, :func:`mask_array`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trm_bounds.logs._padding import float_dtype
from trm_bounds.logs.aliases import TOPK_FIELDS
from trm_bounds.logs.batch import Batch, record_label, validate
from trm_bounds.logs.errors import LogFormatError

__all__ = ["compact", "finish", "check_ragged", "mask_array"]


def compact(batch: Batch) -> Batch:
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


def mask_array(a: np.ndarray, file: Path, fld: str, r0: int, lines=None) -> np.ndarray:
    """0/1 (bool, int or float) mask -> bool; anything else is an error."""
    if a.dtype == bool:
        return a
    ok = (a == 0) | (a == 1)
    if not ok.all():
        bad = np.argwhere(~ok)[0]
        raise LogFormatError(
            file,
            record_label(int(bad[0]), r0, lines),
            fld,
            f"mask value {a[tuple(bad)].item()!r} at token index {int(bad[1])} is not 0/1",
        )
    return a.astype(bool)


def finish(
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
    by :func:`pad_flat` with no mask field). ``group_field`` names the field of
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
                "file" if bad is None else record_label(0, r0, lines),
                names.get(fld, fld),
                f"shape {a.shape} differs from {names.get('log_probs')} {lp.shape}",
            )
    mask = mask_array(mask, file, names.get("response_mask", "response_mask"), r0, lines)
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
    fdt = float_dtype(lp, lr)
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
        topk={k: extra[k] for k in TOPK_FIELDS} if all(k in extra for k in TOPK_FIELDS) else None,
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
    batch = compact(batch)
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


def check_ragged(file: Path, lens: dict[str, np.ndarray], r0: int, lines=None) -> None:
    """Per-sequence lengths of the logprob and mask fields must agree."""
    items = list(lens.items())
    base_name, base = items[0]
    for name, ln in items[1:]:
        diff = np.flatnonzero(ln != base)
        if diff.size:
            i = int(diff[0])
            raise LogFormatError(
                file,
                record_label(i, r0, lines),
                name,
                f"length {int(ln[i])} differs from '{base_name}' length {int(base[i])}",
            )
