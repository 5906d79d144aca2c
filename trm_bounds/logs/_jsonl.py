"""Reader for JSONL dumps (plain or gzip'd ``.jsonl.gz``), one sequence per line.

NeMo-RL (NVIDIA-NeMo/RL, ``nemo_rl/utils/logger.py``, ``Logger.log_batched_dict_as_jsonl``)
writes ``{log_dir}/train_data_step{N}.jsonl`` from ``make_microbatch_iterator(1)``: every
value is a 1-row slice (``[[...]]``, padded to the batch width) with ``prev_logprobs`` and
``generation_logprobs`` over prompt + response, ``token_loss_mask`` 0 on the prompt, the
padding and the tool turns, and ``sample_loss_mask`` ``[0/1]`` per sequence (multiplied in).
``val_data_step{N}.jsonl`` holds no logprobs (skipped inside a directory). The generic line is
``{"logprobs": [...], "rollout_logprobs": [...], "reward"?: float, "prompt_id"?: any}``."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.logs._canonical import check_ragged, finish, mask_array
from trm_bounds.logs._groups import label, prompt_cells, prompt_keys
from trm_bounds.logs._padding import pad_flat
from trm_bounds.logs.aliases import pick
from trm_bounds.logs.batch import Batch
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import PromptTokens, resolve_fields
from trm_bounds.logs.read_options import ReadOptions

__all__: list[str] = []


def _flat1(v: Any) -> Any:
    """NeMo-RL may nest one level (``[[...]]``); unwrap a single inner list."""
    if isinstance(v, list) and len(v) == 1 and isinstance(v[0], list):
        return v[0]
    return v


def _lines(fh: Any, file: Path) -> Iterator[bytes]:
    """Lines of a plain or gzip'd file (gzip told by its magic bytes); a broken gzip stream
    is one :class:`LogFormatError`."""
    if fh.peek(2)[:2] != b"\x1f\x8b":
        yield from fh
        return
    k = 0
    try:
        with gzip.open(fh, "rb") as gz:
            for k, raw in enumerate(gz, start=1):  # noqa: B007 -- k names the failing line
                yield raw
    except (OSError, EOFError, zlib.error) as err:
        raise LogFormatError(
            file, f"line {k + 1}", None, f"truncated or corrupt gzip ({err})"
        ) from None


def read_jsonl(file: Path, opts: ReadOptions, part: Any = None) -> Iterator[Batch]:
    """Generic and NeMo-RL JSONL, one sequence per line (``json`` reads NaN/Infinity)."""
    chunk_size, framework = opts.chunk_size, opts.framework
    names: dict[str, str] | None = None
    spec: PromptTokens | None = None  # where the prompt's token ids are, when no key is
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
        if "tokens" in buf:
            lens["tokens"] = np.asarray(buf["len_tokens"])
        check_ragged(file, {names.get(k, k): v for k, v in lens.items()}, r0, lines)
        L = lens["log_probs"]
        lp = pad_flat(np.concatenate(buf["log_probs"]), L)
        lr = pad_flat(np.concatenate(buf["rollout_log_probs"]), L)
        valid = np.arange(lp.shape[1])[None, :] < L[:, None]
        if "mask" in buf:
            mv = mask_array(np.concatenate(buf["mask"]), file, names["response_mask"], r0, lines)
            mask = pad_flat(mv, L, fill=False).astype(bool) & valid
        else:
            mask = valid
        pid = np.asarray(buf["prompt_id"], dtype=object) if "prompt_id" in buf else None
        kp = names.get("prompt_id")
        if "tokens" in buf:  # no key: the prompt's token ids (before the first trained token)
            assert spec is not None
            tok = pad_flat(np.concatenate(buf["tokens"]), L, fill=-1, dtype=np.int64)
            pid, kp = prompt_keys(tok, prompt_cells(spec, tok, mask)), label(spec)
        if "sample" in buf:  # NeMo-RL sample_loss_mask: whole sequences out of the loss
            mask = mask & (np.asarray(buf["sample"])[:, None] != 0)
        rew = np.asarray(buf["reward"], dtype=np.float64) if "reward" in buf else None
        out = finish(
            file, r0, lp, lr, mask, names, reward=rew, prompt_id=pid, lines=lines,
            zero_padding="mask" not in buf and "sample" not in buf, group_field=kp,
        )  # fmt: skip
        r0 += len(line_no)
        buf.clear()
        line_no.clear()
        return out

    with open(file, "rb") as fh:
        for k, raw in enumerate(_lines(fh, file), start=1):
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
                fields = resolve_fields(keys, framework, file, where)
                names = {
                    "log_probs": fields.log_probs,
                    "rollout_log_probs": fields.rollout_log_probs,
                }
                if fields.masks:
                    names["response_mask"] = fields.masks[0]
                if fields.sample_mask:
                    names["sample_mask"] = fields.sample_mask
                for opt in ("reward", "prompt_id"):
                    ko = pick(keys, opt)
                    if ko is not None:
                        names[opt] = ko
                gt = fields.group_tokens
                if ("prompt_id" not in names and gt is not None and gt.rule == "before_trained"
                        and gt.by == names.get("response_mask")):  # fmt: skip
                    names["tokens"], spec = gt.tokens, gt
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
            if spec is not None:
                if spec.tokens not in rec:
                    raise LogFormatError(file, where, spec.tokens, "missing")
                try:
                    tv = np.asarray(_flat1(rec[spec.tokens]), dtype=np.int64)
                except (TypeError, ValueError, OverflowError):
                    tv = np.zeros((0, 0))
                if tv.ndim != 1:
                    raise LogFormatError(file, where, spec.tokens, "expected a flat list of "
                                         "token ids")  # fmt: skip
                buf.setdefault("tokens", []).append(tv)
                buf.setdefault("len_tokens", []).append(tv.shape[0])
            if "reward" in names:
                rv = _flat1(rec.get(names["reward"], np.nan))
                rv = rv[0] if isinstance(rv, list) and rv else rv
                try:
                    buf.setdefault("reward", []).append(float(rv))
                except (TypeError, ValueError):
                    raise LogFormatError(file, where, names["reward"], "not a number") from None
            if "prompt_id" in names:
                buf.setdefault("prompt_id", []).append(rec.get(names["prompt_id"]))
            if "sample_mask" in names:
                sv = rec.get(names["sample_mask"], 1)
                while isinstance(sv, list) and len(sv) == 1:
                    sv = sv[0]
                if not isinstance(sv, (int, float)) or sv not in (0, 1):
                    raise LogFormatError(file, where, names["sample_mask"], f"not 0/1: {sv!r}")
                buf.setdefault("sample", []).append(sv)
            line_no.append(k)
            n_records += 1
            if len(line_no) >= chunk_size:
                yield flush()
    if line_no:
        yield flush()
    if n_records == 0:
        raise LogFormatError(file, "file", None, "empty file (no JSON lines)")
