"""Readers for batch dictionaries of padded ``(B, T)`` arrays: ``.pt`` (``torch.save``),
``.pkl`` (SkyRL ``TrainingInputBatch``, verl ``DataProto.save_to_disk``) and ``.npz``, with the
field names and masks of each framework (:mod:`~trm_bounds.logs.frameworks`).

``.pt`` files are loaded with ``torch.load(weights_only=True)``; a ``.pt`` holding framework
objects (verl ``DataProto``, a ``TensorDict``) and every ``.pkl`` go through the restricted
unpickler of :mod:`~trm_bounds.logs.unpickle` (no code runs, no framework needed); ``.npz``
without pickle. Arbitrary unpickling only with ``trust_pickle=True``.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs._canonical import finish
from trm_bounds.logs._groups import group_key
from trm_bounds.logs._padding import to_numpy
from trm_bounds.logs._slime import from_samples, unwrap_slime
from trm_bounds.logs.aliases import ALIASES, DIST_FIELDS, TOPK_FIELDS, pick
from trm_bounds.logs.batch import MAX_CELLS, Batch
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import apply_masks, resolve_fields
from trm_bounds.logs.read_options import ReadOptions
from trm_bounds.logs.unpickle import LEGACY_TORCH_MAGIC, harvest, load_pickled

__all__: list[str] = []


def from_mapping(
    d: dict[str, Any],
    file: Path,
    chunk_size: int,
    *,
    ragged_ok: bool = True,
    framework: str = "auto",
) -> Iterator[Batch]:
    """A batch dictionary (padded ``(B, T)`` arrays, or per-sample lists) -> chunks."""
    keys = list(d.keys())
    fields = resolve_fields(keys, framework, file)
    names = fields.names
    lp_raw = d[fields.log_probs]
    if isinstance(lp_raw, (list, tuple)) and ragged_ok:  # per-sample lists (slime)
        yield from from_samples(d, file, chunk_size, fields)
        return
    lp = to_numpy(lp_raw)
    lr = to_numpy(d[fields.rollout_log_probs])
    if not fields.masks and lp.ndim == 2:
        raise LogFormatError(
            file,
            "file",
            "response_mask",
            f"missing for padded (B, T) arrays (looked for {', '.join(ALIASES['response_mask'])})",
        )
    masks = [to_numpy(d[m]) for m in fields.masks]
    smask = to_numpy(d[fields.sample_mask]) if fields.sample_mask else None
    if lp.ndim == 2 and lr.ndim == 2:
        lp, lr, mask = apply_masks(lp, lr, masks, smask, fields, file)
    else:
        mask = masks[0] if masks else None
    if mask is None:
        mask = np.ones(lp.shape, bool)
    nan_per_row = None
    if fields.framework == "trl" and lr.ndim == 2:
        lr, mask, nan_per_row = _drop_nan_rollout(lr, mask)
    kr = pick(keys, "reward")
    reward = to_numpy(d[kr]) if kr is not None else None
    prompt_id, kp = group_key(d, fields, keys, lp.shape[0] if lp.ndim else 0, file)
    max_len, max_len_src = _generation_limit(d, fields.framework, lp)
    extra: dict[str, np.ndarray] = {}
    for canon in DIST_FIELDS + TOPK_FIELDS:
        k = pick(keys, canon)
        if k is not None:
            extra[canon] = to_numpy(d[k])
    kv = pick(keys, "vocab_size")
    vocab_size = int(np.asarray(to_numpy(d[kv])).reshape(-1)[0]) if kv is not None else None
    B = lp.shape[0] if lp.ndim else 0
    if B == 0 or lp.size == 0:
        raise LogFormatError(file, "file", fields.log_probs, "holds no sequences")
    # the file's longest valid sequence: the canonical width, whatever the file's padding
    width = int((np.asarray(mask) != 0).sum(axis=1).max()) if lp.ndim == 2 else lp.shape[-1]
    step = max(1, min(chunk_size, MAX_CELLS // max(lp.shape[-1], 1)))
    for s in range(0, B, step):
        sl = slice(s, s + step)
        b = finish(
            file,
            s,
            lp[sl],
            lr[sl],
            mask[sl],
            names,
            reward=None if reward is None or reward.ndim == 0 else reward[sl],
            prompt_id=None if prompt_id is None else np.asarray(prompt_id, dtype=object)[sl],
            extra={k: v[sl] for k, v in extra.items()},
            trim=width,
            vocab_size=vocab_size,
            group_field=kp,
            max_response_length=max_len,
            max_response_length_source=max_len_src,
        )
        if nan_per_row is not None:
            b.n_nan_tokens = int(nan_per_row[sl].sum())
        yield b


def _drop_nan_rollout(
    lr: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """TRL: vLLM returns NaN for the logprob of some sampled tokens (TRL's
    ``extract_logprobs`` turns NaN into None: no value). Such a token has no rollout
    probability to compare with, so it leaves the trained-token mask, and is counted (per
    row) rather than refused; NaN outside the mask is padding and becomes 0. The trainer
    field is never altered (a NaN there stays an error)."""
    nan = np.isnan(lr)
    if not nan.any():
        return lr, mask, None
    m = np.asarray(mask) != 0
    per_row = (nan & m).sum(axis=1)
    return np.where(nan, lr.dtype.type(0), lr), m & ~nan, per_row


def records_to_mapping(records: list[dict[str, Any]], file: Path) -> dict[str, Any]:
    """A list of batch dictionaries (AReaL's trajectory list, ``list[dict[str, Tensor]]``:
    inclusionAI/AReaL ``areal/api/engine_api.py``, ``areal/trainer/ppo/actor.py``) -> one
    batch dictionary: ``(b_i, T_i)`` arrays right-padded with zeros to the widest and stacked,
    ``(b_i,)`` arrays concatenated, other values collected in record order. Every record must
    hold the first record's fields."""
    keys = list(records[0])
    out: dict[str, Any] = {}
    for k in keys:
        vals = []
        for i, r in enumerate(records):
            if k not in r:
                raise LogFormatError(file, f"record {i}", k, "missing (present in record 0)")
            vals.append(r[k])
        if not all(hasattr(v, "shape") for v in vals):
            out[k] = [x for v in vals for x in (v if isinstance(v, (list, tuple)) else [v])]
            continue
        arrs = [to_numpy(v) for v in vals]
        nd = {a.ndim for a in arrs}
        if nd == {2}:
            width = max(a.shape[1] for a in arrs)
            arrs = [np.pad(a, ((0, 0), (0, width - a.shape[1]))) for a in arrs]
            out[k] = np.concatenate(arrs)
        elif nd == {1}:
            out[k] = np.concatenate(arrs)
        elif nd == {0}:
            out[k] = np.stack(arrs)
        else:
            raise LogFormatError(
                file, "file", k, f"records disagree on the number of dimensions ({sorted(nd)})"
            )
    return out


def _generation_limit(
    d: dict[str, Any], framework: str, lp: np.ndarray
) -> tuple[int | None, str | None]:
    """The generation limit the artifact fixes, with where it was read, else ``(None, None)``.

    verl pads ``responses`` (and every response-aligned tensor) to the configured
    ``rollout.response_length`` (verl ``agent_loop``/vLLM rollout postprocessing), so its
    width *is* the limit; the other frameworks pad to the batch's longest response.
    """
    if framework == "verl" and "responses" in d:
        w = np.shape(d["responses"])
        if len(w) == 2 and lp.ndim == 2 and w[1] == lp.shape[1]:
            return int(w[1]), "width of verl 'responses' (padded to rollout.response_length)"
    return None, None


def _load_pt(file: Path, trust_pickle: bool) -> Any:
    import pickle

    import torch

    if trust_pickle:  # arbitrary code on request; any failure (a missing framework) is one line
        return load_pickled(file, trust_pickle=True)
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
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


def _unwrap(obj: Any, file: Path) -> Any:
    """Framework objects -> their batch dictionary (verl ``DataProto`` loaded with
    ``--trust-pickle`` exposes ``batch`` and ``non_tensor_batch``)."""
    obj = harvest(obj, file)
    if hasattr(obj, "batch") and hasattr(obj, "non_tensor_batch") and not isinstance(obj, dict):
        d = dict(obj.batch.items()) if hasattr(obj.batch, "items") else {}
        d.update(getattr(obj, "non_tensor_batch", {}) or {})
        obj = d
    elif hasattr(obj, "items") and not isinstance(obj, dict):  # a TensorDict, SkyRL batch
        obj = dict(obj.items())
    return obj


def _is_plain_pickle(file: Path) -> bool:
    """A pickle stream (not a torch zip archive): opcode PROTO, or a legacy torch file."""
    with open(file, "rb") as fh:
        head = fh.read(len(LEGACY_TORCH_MAGIC))
    return head[:1] == b"\x80" and not head.startswith(LEGACY_TORCH_MAGIC)


def read_pt(file: Path, opts: ReadOptions, part: Any = None) -> Iterator[Batch]:
    """A ``torch.save`` dump (``.pt``): a batch dictionary, a verl ``DataProto``, a
    ``TensorDict``, a slime dump, or AReaL's trajectory list (``list[dict]``)."""
    chunk_size, trust_pickle, framework = opts.chunk_size, opts.trust_pickle, opts.framework
    if _is_plain_pickle(file):  # e.g. DataProto.save_to_disk under a .pt name
        obj = load_pickled(file, trust_pickle=trust_pickle)
    else:
        try:
            obj = _load_pt(file, trust_pickle)
        except LogFormatError as err:
            if trust_pickle or "refused for safety" not in err.message:
                raise
            obj = load_pickled(file, trust_pickle=False)  # framework objects: stand-ins
    obj = _unwrap(obj, file)
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        obj = records_to_mapping(obj, file)  # AReaL's trajectory list
    if not isinstance(obj, dict):
        raise LogFormatError(file, "file", None, f"expected a dict, got {type(obj).__name__}")
    yield from from_mapping(
        unwrap_slime(obj, file, framework), file, chunk_size, framework=framework
    )


def read_pkl(file: Path, opts: ReadOptions, part: Any = None) -> Iterator[Batch]:
    """A plain pickle (SkyRL ``global_step_{N}_training_input.pkl``, verl
    ``DataProto.save_to_disk``), read with the restricted unpickler unless trusted."""
    chunk_size, framework = opts.chunk_size, opts.framework
    obj = _unwrap(load_pickled(file, trust_pickle=opts.trust_pickle), file)
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        obj = records_to_mapping(obj, file)  # AReaL's trajectory list
    if not isinstance(obj, dict):
        raise LogFormatError(file, "file", None, f"expected a batch, got {type(obj).__name__}")
    yield from from_mapping(unwrap_slime(obj, file, framework), file, chunk_size, framework=framework)


def read_npz(file: Path, opts: ReadOptions, part: Any = None) -> Iterator[Batch]:
    """A ``numpy.savez`` dump (``.npz``), read without unpickling unless trusted."""
    chunk_size, trust_pickle, framework = opts.chunk_size, opts.trust_pickle, opts.framework
    with open(file, "rb") as fh:
        head = fh.read(6)
    if head.startswith(b"\x93NUMPY"):
        raise LogFormatError(
            file, "file", None, "a single .npy array, not an .npz of named fields"
        )
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        # never invite unpickling of a file that is not even a zip
        raise LogFormatError(file, "file", None, "not a zip/npz file")
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
    yield from from_mapping(d, file, chunk_size, ragged_ok=False, framework=framework)
