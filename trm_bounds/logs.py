r"""Loaders for logged per-token logprob dumps (THEORY.md section 6; issue 5 "Inputs").

Every input kind is turned into the same canonical chunk, a :class:`Batch` of right-padded
floating arrays ``(B, T)`` (float32 where both logprob fields are logged as float32, e.g. a
parquet dump of ``list<float>``, so no conversion pass is paid; float64 otherwise):

- ``log_probs``          -- ``log pi_theta(y_t | c_t)`` (trainer), nats;
- ``rollout_log_probs``  -- ``log pi_roll(y_t | c_t)`` (inference engine), nats;
- ``response_mask``      -- bool, valid response tokens, always a *prefix* of each row.

Masks with holes (a NeMo-RL prompt prefix, masked tool output in multi-turn logs) are
compacted: the valid tokens of a row are moved to the front in order, so position ``t`` is
the index of the token among the sequence's valid tokens and ``T_i`` its number of valid
tokens (THEORY.md section 1: positions after the end carry zero divergence).

Supported inputs (``--format`` names in brackets; ``auto`` picks from the suffix and content):

- batch dictionaries of ``(B, T)`` arrays [``pt`` via ``torch.save``, ``npz``, ``parquet``],
  with the field aliases of verl, NeMo-RL, SkyRL and TRL (:data:`ALIASES`); parquet may hold
  one row per sequence with list-valued columns (ragged) or padded rows;
- NeMo-RL ``train_data_step*.jsonl`` (``prev_logprobs``, ``generation_logprobs``,
  ``token_loss_mask`` per line, over prompt and response) [``jsonl``];
- slime ``--dump-details`` train dumps ``{"rollout_data": {"log_probs": [...],
  "rollout_log_probs": [...], "loss_masks": [...]}}`` with one entry per sample, or
  ``{"samples": [{...}, ...]}`` [``slime``];
- a generic JSONL, one sequence per line, ``{"logprobs": [...], "rollout_logprobs": [...],
  "reward"?: float, "prompt_id"?: any}`` [``jsonl``];
- optionally, next-token distributions for exact divergences (batch formats ``pt``/``npz``):
  ``logits``/``rollout_logits`` ``(B, T, V)`` (logits or full logprobs), or top-k
  ``topk_indices``/``topk_log_probs`` and ``rollout_topk_indices``/``rollout_topk_log_probs``
  ``(B, T, K)``, with an optional scalar ``vocab_size`` (without it, the KL upper bound is
  finite only where the known sets cover the vocabulary, which cannot be recognised).

A directory or glob of shards is one dataset (files in sorted order). ``.pt`` files are
loaded with ``torch.load(weights_only=True)``; anything that needs arbitrary unpickling is
refused unless ``trust_pickle=True``.

Bad input raises :class:`LogFormatError`, whose message is one line naming the file, the
record (sequence index within the file, or JSONL line number) and the field.
"""

from __future__ import annotations

import glob
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ALIASES",
    "FORMATS",
    "MAX_LOGPROB",
    "MAX_CELLS",
    "Batch",
    "LogFormatError",
    "resolve_paths",
    "detect_format",
    "validate",
    "iter_batches",
    "count_sequences",
    "load_dataset",
]

#: Formats accepted by ``--format``.
FORMATS = ("auto", "pt", "npz", "parquet", "jsonl", "slime")

#: Largest accepted logprob (nats); anything above is a logging bug (issue 5, "Bad input").
MAX_LOGPROB = 1e-6

#: A chunk holds at most this many padded (sequence, position) cells (32 MiB per float32
#: array, 64 MiB per float64 array), whatever ``chunk_size`` says: peak memory stays bounded
#: for long sequences.
MAX_CELLS = 1 << 23

#: Canonical field -> accepted names, in priority order (verl, NeMo-RL, SkyRL, TRL, slime,
#: generic JSONL).
ALIASES: dict[str, tuple[str, ...]] = {
    "log_probs": (
        "old_log_probs",  # verl
        "prev_logprobs",  # NeMo-RL
        "action_log_probs",  # SkyRL
        "old_per_token_logps",  # TRL
        "log_probs",  # slime
        "logprobs",  # generic JSONL
    ),
    "rollout_log_probs": (
        "rollout_log_probs",  # verl, slime
        "generation_logprobs",  # NeMo-RL
        "rollout_logprobs",  # SkyRL, generic JSONL
        "sampling_per_token_logps",  # TRL
    ),
    "response_mask": (
        "response_mask",  # verl
        "token_loss_mask",  # NeMo-RL
        "loss_mask",  # SkyRL
        "completion_mask",  # TRL
        "loss_masks",  # slime
        "mask",
    ),
    "reward": ("reward", "rewards", "score", "scores"),
    "prompt_id": ("prompt_id", "prompt_ids", "uid", "index"),
    "logits": ("logits", "logits_theta", "full_log_probs"),
    "rollout_logits": ("rollout_logits", "logits_roll", "rollout_full_log_probs"),
    "topk_indices": ("topk_indices", "topk_ids"),
    "topk_log_probs": ("topk_log_probs", "topk_logprobs"),
    "rollout_topk_indices": ("rollout_topk_indices", "rollout_topk_ids"),
    "rollout_topk_log_probs": ("rollout_topk_log_probs", "rollout_topk_logprobs"),
    "vocab_size": ("vocab_size",),
}

_DIST_FIELDS = ("logits", "rollout_logits")
_TOPK_FIELDS = (
    "topk_indices",
    "topk_log_probs",
    "rollout_topk_indices",
    "rollout_topk_log_probs",
)


class LogFormatError(ValueError):
    """Bad input; ``str(err)`` is one line: ``FILE: WHERE: field FIELD: MESSAGE``.

    >>> print(LogFormatError("d.jsonl", "line 3", "logprobs", "NaN at token index 0"))
    d.jsonl: line 3: field 'logprobs': NaN at token index 0
    """

    def __init__(self, file: str | os.PathLike, where: str, field: str | None, message: str):
        self.file, self.where, self.field, self.message = str(file), where, field, message
        fld = f"field '{field}'" if field else "field -"
        text = f"{self.file}: {where}: {fld}: {message}"
        super().__init__(" ".join(text.split()))


@dataclass
class Batch:
    """One chunk of sequences in canonical form (right-padded, prefix masks, float32/64).

    Shapes: ``log_probs``, ``rollout_log_probs``, ``response_mask``: ``(B, T)``;
    ``reward``: ``(B,)`` or None; ``prompt_id``: ``(B,)`` object array or None;
    ``logits``/``rollout_logits``: ``(B, T, V)`` or None; ``topk``: dict of ``(B, T, K)``
    arrays (keys of :data:`_TOPK_FIELDS`) or None. ``source`` is the file, ``first_record``
    the index of row 0 within it. ``zero_padding``: both logprob arrays are known to hold 0
    at every cell outside the mask (lets the statistics skip their masking pass).
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

    @property
    def lengths(self) -> np.ndarray:
        """Per-sequence number of valid tokens ``T_i``, shape ``(B,)``, int64."""
        return self.response_mask.sum(axis=1, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.log_probs.shape[0])


# ----------------------------------------------------------------------------- paths


def resolve_paths(specs: Sequence[str | os.PathLike]) -> list[Path]:
    """Expand files, directories (their data files, sorted) and globs into one file list.

    Raises :class:`LogFormatError` when a spec matches nothing.
    """
    out: list[Path] = []
    suffixes = {".pt", ".pth", ".npz", ".parquet", ".jsonl", ".json"}
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in suffixes)
            if not files:
                raise LogFormatError(p, "directory", None, "holds no .pt/.npz/.parquet/.jsonl")
            out.extend(files)
        elif p.is_file():
            out.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(spec), recursive=True))
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise LogFormatError(spec, "path", None, "no such file, directory or glob match")
            out.extend(matches)
    return out


def detect_format(path: str | os.PathLike) -> str:
    """Format name from the suffix (``.pt`` dumps are told apart later by their content)."""
    suffix = Path(path).suffix.lower()
    if suffix in (".pt", ".pth"):
        return "pt"
    if suffix == ".npz":
        return "npz"
    if suffix == ".parquet":
        return "parquet"
    if suffix in (".jsonl", ".json"):
        return "jsonl"
    raise LogFormatError(path, "file", None, f"unknown suffix '{suffix}'; pass --format")


# ----------------------------------------------------------------------------- helpers


def _pick(keys: Sequence[str], name: str) -> str | None:
    for alias in ALIASES[name]:
        if alias in keys:
            return alias
    return None


def _require(keys: Sequence[str], name: str, file: Path, where: str) -> str:
    key = _pick(keys, name)
    if key is None:
        raise LogFormatError(file, where, name, f"missing (looked for {', '.join(ALIASES[name])})")
    return key


def _to_numpy(x: Any) -> np.ndarray:
    """Tensor/list/array -> numpy without copying where possible (bf16 goes via float32)."""
    if hasattr(x, "detach"):  # a torch tensor; torch is imported only by the .pt loader
        x = x.detach().cpu()
        if x.dtype.is_floating_point and x.dtype.itemsize < 4:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _float_dtype(*arrays: np.ndarray) -> np.dtype:
    """float32 if every array is float32, else float64 (the canonical logprob dtypes)."""
    f32 = all(a.dtype == np.float32 for a in arrays)
    return np.dtype(np.float32 if f32 else np.float64)


def _pad_flat(
    values: np.ndarray,
    lengths: np.ndarray,
    fill: float = 0.0,
    dtype: Any = None,
    valid: np.ndarray | None = None,
) -> np.ndarray:
    """Flattened ragged values + lengths -> right-padded ``(B, max(lengths))`` (vectorised).

    A boolean-mask assignment fills the valid cells in row-major order, which is exactly
    the order of the concatenated rows. ``valid`` is that ``(B, max(lengths))`` prefix mask,
    when the caller already has it.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    B = lengths.shape[0]
    Tm = int(lengths.max()) if B else 0
    dtype = dtype or (values.dtype if values.size else np.float64)
    out = np.zeros((B, Tm), dtype=dtype) if fill == 0 else np.full((B, Tm), fill, dtype=dtype)
    if values.size:
        if valid is None:
            valid = np.arange(Tm)[None, :] < lengths[:, None]
        out[valid] = values
    return out


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

    Rules (issue 5, "Bad input"): no NaN anywhere; no ``+inf``; no rollout logprob of
    ``-inf`` on a valid token (a sampled token has positive probability under its sampler);
    no logprob above :data:`MAX_LOGPROB`. A trainer logprob of ``-inf`` is valid (``rho = 0``).
    A sequence without valid tokens is valid (it counts, with every statistic 0).
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
    trim: bool = True,
    vocab_size: int | None = None,
    validated: bool = False,
    zero_padding: bool = False,
) -> Batch:
    """Build, compact and validate one canonical chunk from padded arrays.

    ``trim=False`` (batch dictionaries) keeps the file's padded width for every chunk, so
    per-sequence reductions see the same row layout whatever the chunk size. ``validated``:
    the caller has already checked every value (and the padding is zeros), skip
    :func:`validate`. ``zero_padding``: every cell outside the mask holds 0 (padding made
    by :func:`_pad_flat` with no mask field).
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
    )
    # NaN / +inf checks must see the raw arrays before compaction moves values around
    if not validated:
        validate(batch, names=names, lines=lines)
    batch = _compact(batch)
    # ragged input: drop columns past the longest sequence
    Tm = int(batch.lengths.max()) if trim else batch.response_mask.shape[1]
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


# ----------------------------------------------------------------------------- batch dicts


def _from_mapping(
    d: dict[str, Any], file: Path, chunk_size: int, *, ragged_ok: bool = True
) -> Iterator[Batch]:
    """A batch dictionary (padded ``(B, T)`` arrays, or per-sample lists) -> chunks."""
    keys = list(d.keys())
    klp = _require(keys, "log_probs", file, "file")
    klr = _require(keys, "rollout_log_probs", file, "file")
    kmask = _pick(keys, "response_mask")
    names = {"log_probs": klp, "rollout_log_probs": klr, "response_mask": kmask or "mask"}
    lp_raw = d[klp]
    if isinstance(lp_raw, (list, tuple)) and ragged_ok:  # per-sample lists (slime)
        yield from _from_samples(d, file, chunk_size, names)
        return
    lp = _to_numpy(lp_raw)
    lr = _to_numpy(d[klr])
    if kmask is None:
        if lp.ndim == 2:
            raise LogFormatError(
                file,
                "file",
                "response_mask",
                "missing for padded (B, T) arrays "
                f"(looked for {', '.join(ALIASES['response_mask'])})",
            )
    mask = _to_numpy(d[kmask]) if kmask is not None else np.ones(lp.shape, bool)
    kr, kp = _pick(keys, "reward"), _pick(keys, "prompt_id")
    reward = _to_numpy(d[kr]) if kr is not None else None
    prompt_id = d[kp] if kp is not None else None
    if prompt_id is not None and hasattr(prompt_id, "detach"):
        prompt_id = _to_numpy(prompt_id)
    extra: dict[str, np.ndarray] = {}
    for canon in _DIST_FIELDS + _TOPK_FIELDS:
        k = _pick(keys, canon)
        if k is not None:
            extra[canon] = _to_numpy(d[k])
    kv = _pick(keys, "vocab_size")
    vocab_size = int(np.asarray(_to_numpy(d[kv])).reshape(-1)[0]) if kv is not None else None
    B = lp.shape[0] if lp.ndim else 0
    if B == 0 or lp.size == 0:
        raise LogFormatError(file, "file", klp, "holds no sequences")
    step = max(1, min(chunk_size, MAX_CELLS // max(lp.shape[-1], 1)))
    for s in range(0, B, step):
        sl = slice(s, s + step)
        yield _finish(
            file,
            s,
            lp[sl],
            lr[sl],
            mask[sl],
            names,
            reward=None if reward is None or reward.ndim == 0 else reward[sl],
            prompt_id=None if prompt_id is None else np.asarray(prompt_id, dtype=object)[sl],
            extra={k: v[sl] for k, v in extra.items()},
            trim=False,
            vocab_size=vocab_size,
        )


def _from_samples(
    d: dict[str, Any], file: Path, chunk_size: int, names: dict[str, str]
) -> Iterator[Batch]:
    """Per-sample lists (slime ``rollout_data``): ``d[field][i]`` is sequence i's 1-D values."""
    lp_list, lr_list = d[names["log_probs"]], d[names["rollout_log_probs"]]
    kmask = _pick(list(d.keys()), "response_mask")
    m_list = d[kmask] if kmask is not None else None
    n = len(lp_list)
    if n == 0:
        raise LogFormatError(file, "file", names["log_probs"], "holds no sequences")
    for fld, lst in ((names["rollout_log_probs"], lr_list), (kmask, m_list)):
        if lst is not None and len(lst) != n:
            raise LogFormatError(
                file, "file", fld, f"{len(lst)} samples but '{names['log_probs']}' has {n}"
            )
    kr = _pick(list(d.keys()), "reward")
    rewards = d[kr] if kr is not None else None
    for s in range(0, n, chunk_size):
        idx = range(s, min(n, s + chunk_size))
        lps = [np.asarray(_to_numpy(lp_list[i]), dtype=np.float64).reshape(-1) for i in idx]
        lrs = [np.asarray(_to_numpy(lr_list[i]), dtype=np.float64).reshape(-1) for i in idx]
        lens = {names["log_probs"]: np.array([a.shape[0] for a in lps])}
        lens[names["rollout_log_probs"]] = np.array([a.shape[0] for a in lrs])
        if m_list is not None:
            ms = [np.asarray(_to_numpy(m_list[i])).reshape(-1) for i in idx]
            lens[kmask] = np.array([a.shape[0] for a in ms])
        _check_ragged(file, lens, s)
        L = lens[names["log_probs"]]
        lp = _pad_flat(np.concatenate(lps), L)
        lr = _pad_flat(np.concatenate(lrs), L)
        valid = np.arange(lp.shape[1])[None, :] < L[:, None]
        if m_list is not None:
            mv = _mask_array(np.concatenate(ms), file, kmask, s)
            mask = _pad_flat(mv, L, fill=False).astype(bool) & valid
        else:
            mask = valid
        rew = None
        if rewards is not None and len(rewards) == n:
            rew = np.array([float(_to_numpy(rewards[i]).reshape(-1).sum()) for i in idx])
        yield _finish(file, s, lp, lr, mask, names, reward=rew, zero_padding=m_list is None)


def _load_pt(file: Path, trust_pickle: bool) -> Any:
    import pickle

    import torch

    try:
        return torch.load(file, map_location="cpu", weights_only=not trust_pickle)
    except pickle.UnpicklingError as err:
        if not trust_pickle and "weights_only" in str(err).lower().replace(" ", "_"):
            raise LogFormatError(
                file,
                "file",
                None,
                "needs arbitrary unpickling, refused for safety (torch.load weights_only=True); "
                "pass --trust-pickle only if you trust this file",
            ) from None
        raise LogFormatError(file, "file", None, f"truncated or corrupt .pt file ({err})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as err:
        msg = str(err).splitlines()[0].split(". ")[0] if str(err) else type(err).__name__
        raise LogFormatError(file, "file", None, f"truncated or corrupt .pt file ({msg})") from None


def _iter_pt(file: Path, chunk_size: int, trust_pickle: bool, fmt: str) -> Iterator[Batch]:
    obj = _load_pt(file, trust_pickle)
    if hasattr(obj, "batch") and not isinstance(obj, dict):  # verl DataProto (trusted pickle)
        d = dict(obj.batch.items()) if hasattr(obj.batch, "items") else {}
        d.update(getattr(obj, "non_tensor_batch", {}) or {})
        obj = d
    if not isinstance(obj, dict):
        raise LogFormatError(file, "file", None, f"expected a dict, got {type(obj).__name__}")
    if "rollout_data" in obj and isinstance(obj["rollout_data"], dict):  # slime train dump
        obj = obj["rollout_data"]
    elif "samples" in obj and isinstance(obj["samples"], list):  # slime per-sample dicts
        samples = obj["samples"]
        if not samples:
            raise LogFormatError(file, "file", "samples", "holds no sequences")
        keys = list(samples[0].keys())
        obj = {k: [s.get(k) for s in samples] for k in keys}
    elif fmt == "slime":
        raise LogFormatError(file, "file", "rollout_data", "missing (not a slime dump)")
    yield from _from_mapping(obj, file, chunk_size)


def _iter_npz(file: Path, chunk_size: int, trust_pickle: bool) -> Iterator[Batch]:
    try:
        with np.load(file, allow_pickle=trust_pickle) as z:
            d = {k: z[k] for k in z.files}
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise LogFormatError(
                file,
                "file",
                None,
                "holds object arrays that need unpickling, refused; pass --trust-pickle "
                "only if you trust this file",
            ) from None
        raise LogFormatError(
            file, "file", None, f"truncated or corrupt .npz file ({err})"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise LogFormatError(
            file, "file", None, f"truncated or corrupt .npz file ({err})"
        ) from None
    yield from _from_mapping(d, file, chunk_size, ragged_ok=False)


# ----------------------------------------------------------------------------- parquet


def _list_column(col: Any, file: Path, fld: str, r0: int) -> tuple[np.ndarray, np.ndarray]:
    """A pyarrow list column -> (flat values, per-row lengths), no per-row Python (zero-copy
    for a float column without nulls)."""
    import pyarrow as pa

    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if col.null_count:
        i = int(np.flatnonzero(np.asarray(col.is_null()))[0])
        raise LogFormatError(file, f"record {r0 + i}", fld, "null value")
    if pa.types.is_fixed_size_list(col.type):
        n = col.type.list_size
        lengths = np.full(len(col), n, dtype=np.int64)
        values = col.flatten()
    elif pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        offsets = np.asarray(col.offsets)
        lengths = np.diff(offsets).astype(np.int64)
        values = col.flatten()
    else:
        raise LogFormatError(
            file, "file", fld, f"expected a list column (one row per sequence), got {col.type}"
        )
    if values.null_count:
        flat_i = int(np.flatnonzero(np.asarray(values.is_null()))[0])
        row = int(np.searchsorted(np.cumsum(lengths), flat_i, side="right"))
        raise LogFormatError(file, f"record {r0 + row}", fld, "null token value")
    if pa.types.is_boolean(values.type):
        return np.asarray(values.to_numpy(zero_copy_only=False)), lengths
    return values.to_numpy(zero_copy_only=False), lengths


def _flat_values_ok(lpv: np.ndarray, lrv: np.ndarray) -> bool:
    """Every value passes :func:`validate`: ``max <= MAX_LOGPROB`` (False at NaN and ``+inf``)
    for both fields and ``min > -inf`` for the rollout field (all values are valid tokens)."""
    if lpv.size == 0:
        return True
    with np.errstate(invalid="ignore"):
        return bool(lpv.max() <= MAX_LOGPROB and lrv.max() <= MAX_LOGPROB and lrv.min() > -np.inf)


def _iter_parquet(file: Path, chunk_size: int) -> Iterator[Batch]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(file, pre_buffer=True)  # one read per column chunk (~15% faster)
    except (pa.ArrowException, OSError) as err:
        raise LogFormatError(file, "file", None, f"truncated or corrupt parquet ({err})") from None
    keys = pf.schema_arrow.names
    klp = _require(keys, "log_probs", file, "file")
    klr = _require(keys, "rollout_log_probs", file, "file")
    kmask, kr, kp = (_pick(keys, n) for n in ("response_mask", "reward", "prompt_id"))
    names = {"log_probs": klp, "rollout_log_probs": klr, "response_mask": kmask or "mask"}
    cols = [k for k in (klp, klr, kmask, kr, kp) if k is not None]
    if pf.metadata.num_rows == 0:
        raise LogFormatError(file, "file", klp, "holds no sequences")

    def chunk(rb: Any, r0: int) -> Batch:
        lpv, L = _list_column(rb.column(klp), file, klp, r0)
        lrv, Lr = _list_column(rb.column(klr), file, klr, r0)
        lens = {klp: L, klr: Lr}
        if kmask is not None:
            mv, Lm = _list_column(rb.column(kmask), file, kmask, r0)
            lens[kmask] = Lm
        _check_ragged(file, lens, r0)
        valid = np.arange(int(L.max()) if L.size else 0)[None, :] < L[:, None]
        fdt = _float_dtype(lpv, lrv)
        lp = _pad_flat(lpv, L, dtype=fdt, valid=valid)
        lr = _pad_flat(lrv, L, dtype=fdt, valid=valid)
        if kmask is not None:
            mv = _mask_array(mv, file, kmask, r0)
            mask = _pad_flat(mv, L, fill=False, valid=valid).astype(bool) & valid
        else:
            mask = valid
        # padding is our zeros, so three reductions over the flat values replace validate()'s
        # checks over the padded cells (all values pass => every check passes); on failure
        # validate() runs and names the first bad value
        ok = _flat_values_ok(lpv, lrv)
        rew = rb.column(kr).to_numpy(zero_copy_only=False) if kr is not None else None
        if rew is not None and rew.dtype == object:
            rew = None  # list-valued rewards are not summarised
        pid = rb.column(kp).to_numpy(zero_copy_only=False) if kp is not None else None
        return _finish(
            file, r0, lp, lr, mask, names, reward=rew, prompt_id=pid, trim=False,
            validated=ok, zero_padding=kmask is None,
        )  # fmt: skip

    r0 = 0
    try:
        for rb in pf.iter_batches(batch_size=chunk_size, columns=cols):
            # bounded memory: split a record batch whose padded size exceeds MAX_CELLS
            col = rb.column(klp)
            if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                L = np.diff(np.asarray(col.offsets))  # lengths only, no value copy
            else:
                L = _list_column(col, file, klp, r0)[1]
            rows = max(1, MAX_CELLS // max(int(L.max()), 1))
            for s in range(0, rb.num_rows, rows):
                yield chunk(rb.slice(s, rows), r0 + s)
            r0 += rb.num_rows
    except (pa.ArrowException, OSError) as err:
        raise LogFormatError(
            file, f"record {r0}", None, f"truncated or corrupt parquet ({err})"
        ) from None


# ----------------------------------------------------------------------------- JSONL


def _flat1(v: Any) -> Any:
    """NeMo-RL may nest one level (``[[...]]``); unwrap a single inner list."""
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], list):
        return v[0]
    return v


def _iter_jsonl(file: Path, chunk_size: int) -> Iterator[Batch]:
    """Generic and NeMo-RL JSONL, one sequence per line (``json`` reads NaN/Infinity)."""
    names: dict[str, str] | None = None
    buf: dict[str, list] = {}
    line_no: list[int] = []
    r0 = 0
    n_records = 0

    def flush() -> Batch:
        nonlocal r0
        assert names is not None
        lines = np.asarray(line_no)
        lens = {k: np.asarray(buf["len_" + k]) for k in ("log_probs", "rollout_log_probs")}
        if "mask" in buf:
            lens["response_mask"] = np.asarray(buf["len_response_mask"])
        _check_ragged(file, {names.get(k, k): v for k, v in lens.items()}, r0, lines)
        L = lens["log_probs"]
        lp = _pad_flat(np.concatenate(buf["log_probs"]), L)
        lr = _pad_flat(np.concatenate(buf["rollout_log_probs"]), L)
        valid = np.arange(lp.shape[1])[None, :] < L[:, None]
        if "mask" in buf:
            mv = _mask_array(np.concatenate(buf["mask"]), file, names["response_mask"], r0, lines)
            mask = _pad_flat(mv, L, fill=False).astype(bool) & valid
        else:
            mask = valid
        rew = np.asarray(buf["reward"], dtype=np.float64) if "reward" in buf else None
        pid = np.asarray(buf["prompt_id"], dtype=object) if "prompt_id" in buf else None
        out = _finish(
            file, r0, lp, lr, mask, names, reward=rew, prompt_id=pid, lines=lines,
            zero_padding="mask" not in buf,
        )  # fmt: skip
        r0 += len(line_no)
        buf.clear()
        line_no.clear()
        return out

    with open(file, "rb") as fh:
        for k, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            where = f"line {k}"
            try:
                rec = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise LogFormatError(
                    file, where, None, f"malformed JSON ({err.msg if hasattr(err, 'msg') else err})"
                ) from None
            if not isinstance(rec, dict):
                raise LogFormatError(file, where, None, "a line must be a JSON object")
            if names is None:
                keys = list(rec.keys())
                names = {
                    "log_probs": _require(keys, "log_probs", file, where),
                    "rollout_log_probs": _require(keys, "rollout_log_probs", file, where),
                }
                km = _pick(keys, "response_mask")
                if km is not None:
                    names["response_mask"] = km
                for opt in ("reward", "prompt_id"):
                    ko = _pick(keys, opt)
                    if ko is not None:
                        names[opt] = ko
            for canon in ("log_probs", "rollout_log_probs", "response_mask"):
                if canon not in names:
                    continue
                key = names[canon]
                if key not in rec:
                    raise LogFormatError(file, where, key, "missing")
                v = _flat1(rec[key])
                if not isinstance(v, list):
                    raise LogFormatError(file, where, key, "expected a list of numbers")
                try:  # C-speed conversion; a null becomes NaN and is reported as such
                    vals = np.asarray(v, dtype=np.float64)
                except (TypeError, ValueError):
                    raise LogFormatError(file, where, key, "non-numeric token value") from None
                if vals.ndim != 1:
                    raise LogFormatError(file, where, key, "expected a flat list of numbers")
                tgt = "mask" if canon == "response_mask" else canon
                buf.setdefault(tgt, []).append(vals)
                buf.setdefault("len_" + canon, []).append(vals.shape[0])
            if "reward" in names:
                rv = _flat1(rec.get(names["reward"], np.nan))
                rv = rv[0] if isinstance(rv, list) and rv else rv
                try:
                    buf.setdefault("reward", []).append(float(rv))
                except (TypeError, ValueError):
                    raise LogFormatError(file, where, names["reward"], "not a number") from None
            if "prompt_id" in names:
                buf.setdefault("prompt_id", []).append(rec.get(names["prompt_id"]))
            line_no.append(k)
            n_records += 1
            if len(line_no) >= chunk_size:
                yield flush()
    if line_no:
        yield flush()
    if n_records == 0:
        raise LogFormatError(file, "file", None, "empty file (no JSON lines)")


# ----------------------------------------------------------------------------- dataset


def iter_batches(
    paths: Sequence[str | os.PathLike],
    *,
    fmt: str = "auto",
    chunk_size: int = 1024,
    trust_pickle: bool = False,
) -> Iterator[Batch]:
    """Iterate a dataset (files, directories, globs) as canonical chunks of <= chunk_size rows.

    Peak memory: one parquet row group / JSONL chunk; for ``.pt``/``.npz`` one shard (these
    formats cannot be read partially).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be positive")
    for file in resolve_paths(paths):
        if file.stat().st_size == 0:
            raise LogFormatError(file, "file", None, "empty file")
        kind = detect_format(file) if fmt == "auto" else fmt
        if kind in ("pt", "slime"):
            yield from _iter_pt(file, chunk_size, trust_pickle, kind)
        elif kind == "npz":
            yield from _iter_npz(file, chunk_size, trust_pickle)
        elif kind == "parquet":
            yield from _iter_parquet(file, chunk_size)
        else:
            yield from _iter_jsonl(file, chunk_size)


def count_sequences(paths: Sequence[str | os.PathLike], *, fmt: str = "auto") -> int | None:
    """Number of sequences when cheap to know (parquet metadata), else None (progress bars)."""
    try:
        files = resolve_paths(paths)
    except LogFormatError:
        return None
    total = 0
    for f in files:
        kind = detect_format(f) if fmt == "auto" and f.suffix else fmt
        if kind != "parquet":
            return None
        try:
            import pyarrow.parquet as pq

            total += pq.ParquetFile(f).metadata.num_rows
        except Exception:  # noqa: BLE001 -- a count is only a hint; the loader reports errors
            return None
    return total


def load_dataset(paths: Sequence[str | os.PathLike], **kwargs: Any) -> Batch:
    """The whole dataset as one canonical :class:`Batch` (small inputs and tests only)."""
    chunks = list(iter_batches(paths, **kwargs))
    Tm = max(c.response_mask.shape[1] for c in chunks)

    def cat(name: str, fill: Any) -> np.ndarray:
        parts = []
        for c in chunks:
            a = getattr(c, name)
            pad = Tm - a.shape[1]
            parts.append(np.pad(a, ((0, 0), (0, pad)), constant_values=fill) if pad else a)
        return np.concatenate(parts)

    rew = [c.reward for c in chunks]
    return Batch(
        log_probs=cat("log_probs", 0.0),
        rollout_log_probs=cat("rollout_log_probs", 0.0),
        response_mask=cat("response_mask", False),
        source=chunks[0].source,
        reward=np.concatenate(rew) if all(r is not None for r in rew) else None,
    )
