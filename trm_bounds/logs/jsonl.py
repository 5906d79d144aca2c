"""Reader for JSONL dumps, one sequence per line: NeMo-RL ``train_data_step*.jsonl``
(``prev_logprobs``, ``generation_logprobs``, ``token_loss_mask`` over prompt and response)
and the generic ``{"logprobs": [...], "rollout_logprobs": [...], "reward"?: float,
"prompt_id"?: any}``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs.aliases import _pick, _require
from trm_bounds.logs.batch import Batch, _check_ragged, _finish, _mask_array
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.padding import _pad_flat

__all__: list[str] = []


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
