"""Readers for batch dictionaries of padded ``(B, T)`` arrays: ``.pt`` (``torch.save``,
including verl ``DataProto``) and ``.npz``, with the field names of :data:`~trm_bounds.logs.ALIASES`.

``.pt`` files are loaded with ``torch.load(weights_only=True)`` and ``.npz`` without pickle;
anything that needs arbitrary unpickling is refused unless ``trust_pickle=True``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs.aliases import _DIST_FIELDS, _TOPK_FIELDS, ALIASES, _pick, _require
from trm_bounds.logs.batch import MAX_CELLS, Batch, _finish
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.padding import _to_numpy
from trm_bounds.logs.slime import _from_samples, _unwrap_slime

__all__: list[str] = []


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
    yield from _from_mapping(_unwrap_slime(obj, file, fmt), file, chunk_size)


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
