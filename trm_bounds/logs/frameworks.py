r"""Each framework's dump convention: field names, trainable-token mask, alignment; detection.

One :class:`Framework` per training framework says which field holds the trainer logprob
``log pi_theta(y_t|c_t)``, which the rollout (behaviour) logprob ``log pi_roll(y_t|c_t)``, which
masks select the *trained* tokens (multiplied; the trainable-token mask wins over the response
mask) and how the arrays are aligned. Learnt from each framework's source:

- ``verl``: ``old_log_probs`` / ``rollout_log_probs``; ``response_mask`` (0 on tool tokens
  in multi-turn; a ``loss_mask`` wins); group key ``uid`` (``non_tensor_batch``).
  volcengine/verl ``verl/protocol.py`` (``DataProto``), ``verl/trainer/ppo/ray_trainer.py``.
- ``nemo-rl``: ``prev_logprobs`` / ``generation_logprobs`` over prompt + response;
  ``token_loss_mask`` (holes at tool turns) times ``sample_loss_mask``; no group key (``idx``
  is the row's index): the prompt is ``token_ids`` before the first ``token_loss_mask`` 1 (0 on
  the prompt, 1 from the first generated token), identical prompts are one group. NVIDIA-NeMo/RL
  ``nemo_rl/utils/logger.py`` (``log_batched_dict_as_jsonl``), ``nemo_rl/algorithms/grpo.py``
  (``log_data["token_ids"] = train_data["input_ids"]``; ``token_loss_mask`` from
  ``add_grpo_token_loss_masks_and_generation_logprobs``).
- ``skyrl``: ``action_log_probs`` / ``rollout_logprobs``; ``loss_mask`` (0 on observation
  tokens) wins over ``response_mask`` (every response token); response tensors right-aligned
  (left-padded); data-parallel pad rows have ``loss_mask`` 0 (``pad_training_input_batch``);
  ``metadata["uids"]`` is popped before ``dump_data``, so a dump has no group key.
  NovaSky-AI/SkyRL ``skyrl/train/dataset/preprocess.py``
  (``convert_prompts_responses_to_batch_tensors``), ``skyrl/train/trainer.py``.
- ``trl``: ``old_per_token_logps`` / ``sampling_per_token_logps``; ``completion_mask`` times
  ``tool_mask`` (what GRPO trains on; ``mask_truncated_completions`` zeroes a truncated
  row); no group key: identical left-padded ``prompt_ids`` rows (``prompt_mask``) are one
  prompt; a NaN ``sampling_per_token_logps`` (vLLM) leaves the mask, counted.
  huggingface/trl ``trl/trainer/grpo_trainer.py``.
- ``slime``: ``log_probs`` / ``rollout_log_probs`` per sample; ``loss_masks``; no group key
  (``Sample.group_index`` stays in the rollout dump; ``sample_index`` is one per sample): the
  prompt is ``tokens`` (prompt + response) less its last ``response_lengths``, identical
  prompts are one group. THUDM/slime ``slime/observability/train_data_utils.py`` (earlier
  ``slime/utils/train_dump_utils.py``), ``slime/ray/rollout.py``
  (``_convert_samples_to_train_data``), ``slime/backends/megatron_utils/actor.py``.
- ``roll``: ``old_log_probs`` / ``infer_logprobs`` of shape ``(B, L-1)`` beside
  ``response_mask`` ``(B, L)``: logprob ``t`` scores token ``t+1``, masked by
  ``response_mask[:, 1:]``; ``final_response_mask`` (the response mask times the sample
  mask) wins; group key ``traj_group_id`` (agentic) or ``prompt_id``.
  alibaba/ROLL ``log_probs_post_func``, ``roll/pipeline/agentic/utils.py``.
- ``areal``: ``prox_logp`` (recomputed by the trainer) / ``logprobs`` (the ROLLOUT,
  behaviour policy); ``loss_mask``. Before ``compute_advantages`` ``prox_logp[:, t]`` scores
  token ``t+1`` while ``logprobs`` and ``loss_mask`` are token-aligned; afterwards (the batch
  holds ``advantages``) all three are aligned; no group key: the prompt is ``input_ids``
  before the first ``loss_mask`` 1 (the mask un-rolled after ``compute_advantages``), identical
  prompts are one group. inclusionAI/AReaL ``areal/trainer/ppo/actor.py``,
  ``areal/workflow/rlvr.py`` (``loss_mask = [0] * input_len + [1] * output_len``).
- ``openrlhf``: ``action_log_probs`` / ``rollout_log_probs``; ``action_mask``; group key
  ``index`` (the prompt's index).
  OpenRLHF/OpenRLHF ``openrlhf/trainer/ppo_utils/experience_maker.py`` (``Experience``).
- ``generic``: the alias table (:data:`~trm_bounds.logs.ALIASES`), trainable-token masks
  before ``response_mask``; our JSONL ``logprobs`` / ``rollout_logprobs``.

The group of a row (responses sharing a prompt) is the framework's own key (``group``), else
a generic ``prompt_id``, else, where the dump holds the prompt's token ids and no key
(:class:`PromptTokens`: TRL, NeMo-RL, slime, AReaL), identical prompt tokens
(``trm_bounds/logs/_groups.py``); a row index is never a key.

Detection (:func:`resolve_fields`) uses the whole key set: the frameworks whose trainer *and*
rollout fields are both present are candidates; a tie is broken by the mask fields present;
a remaining tie is an error that asks for ``--format NAME``. AReaL's ``logprobs`` is never
read as the trainer field (it is the rollout policy), and a file holding only one of the two
logprob fields has no mismatch to measure (:class:`MissingLogprobs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from trm_bounds.logs.aliases import ALIASES, pick
from trm_bounds.logs.errors import LogFormatError

__all__ = ["Framework", "FRAMEWORKS", "FRAMEWORK_NAMES", "Fields", "MissingLogprobs",
           "PromptTokens", "resolve_fields", "apply_masks"]  # fmt: skip


class MissingLogprobs(LogFormatError):
    """A file without the trainer or the rollout logprob field (a validation file, a
    rollout-only dump, a metrics file): skipped inside a log directory, an error otherwise."""


class PromptTokens(NamedTuple):
    """Where a dump holds its prompts' token ids: the group of a row where the framework
    writes no key (``trm_bounds/logs/_groups.py``, ``prompt_cells``, reads them)."""

    tokens: str  # token ids, (B, W) or one 1-D array per sample
    by: str  # the field that says which of them are the prompt's
    rule: str  # "prompt_mask" | "before_trained" | "response_length"


@dataclass(frozen=True)
class Framework:
    """One framework's dump convention (names in priority order)."""

    name: str
    trainer: tuple[str, ...]
    rollout: tuple[str, ...]
    masks: tuple[tuple[str, ...], ...]  # each entry: alternatives; present entries multiply
    sample_mask: tuple[str, ...] = ()
    align: str = "same"  # "same" | "areal" (prox_logp next-token aligned before advantages)
    shift: bool = False  # logprobs (B, L-1) beside masks (B, L): drop the mask's first column
    group: tuple[str, ...] = ()  # the framework's own key of a prompt's samples
    group_tokens: PromptTokens | None = None  # the fallback where no key is written


FRAMEWORKS: dict[str, Framework] = {
    f.name: f
    for f in (
        Framework("verl", ("old_log_probs",), ("rollout_log_probs",),
                  (("loss_mask", "response_mask"),), group=("uid",)),
        Framework("nemo-rl", ("prev_logprobs",), ("generation_logprobs",),
                  (("token_loss_mask",),), sample_mask=("sample_loss_mask",),
                  group_tokens=PromptTokens("token_ids", "token_loss_mask", "before_trained")),
        Framework("skyrl", ("action_log_probs",), ("rollout_logprobs",),
                  (("loss_mask", "response_mask"),), group=("uids",)),
        Framework("trl", ("old_per_token_logps",), ("sampling_per_token_logps",),
                  (("completion_mask",), ("tool_mask",)),
                  group_tokens=PromptTokens("prompt_ids", "prompt_mask", "prompt_mask")),
        Framework("slime", ("log_probs",), ("rollout_log_probs",),
                  (("loss_masks", "loss_mask"),),
                  group_tokens=PromptTokens("tokens", "response_lengths", "response_length")),
        Framework("roll", ("old_log_probs",), ("infer_logprobs",),
                  (("final_response_mask", "response_mask"),), shift=True,
                  group=("traj_group_id", "prompt_id")),
        Framework("areal", ("prox_logp",), ("logprobs",), (("loss_mask",),), align="areal",
                  group_tokens=PromptTokens("input_ids", "loss_mask", "before_trained")),
        Framework("openrlhf", ("action_log_probs",), ("rollout_log_probs",),
                  (("action_mask",),), group=("index",)),
    )
}  # fmt: skip

#: Framework names accepted by ``--format`` (besides the file kinds).
FRAMEWORK_NAMES: tuple[str, ...] = tuple(FRAMEWORKS)

_GENERIC_MASKS = ("token_loss_mask", "loss_mask", "loss_masks", "completion_mask",
                  "action_mask", "response_mask", "mask")  # fmt: skip


@dataclass(frozen=True)
class Fields:
    """The resolved field names of one file."""

    framework: str
    log_probs: str
    rollout_log_probs: str
    masks: tuple[str, ...]
    sample_mask: str | None = None
    align: str = "same"
    shift: bool = False
    group: str | None = None
    group_tokens: PromptTokens | None = None

    @property
    def names(self) -> dict[str, str]:
        """Canonical -> file field names (for messages)."""
        return {
            "log_probs": self.log_probs,
            "rollout_log_probs": self.rollout_log_probs,
            "response_mask": " * ".join(self.masks) if self.masks else "mask",
        }


def _fields_of(fw: Framework, keys: Sequence[str]) -> Fields | None:
    lp, lr = _pick_from(keys, fw.trainer), _pick_from(keys, fw.rollout)
    if lp is None or lr is None:
        return None
    masks = tuple(m for alts in fw.masks if (m := _pick_from(keys, alts)) is not None)
    align = fw.align
    if align == "areal" and "advantages" in keys:  # compute_advantages has rolled them already
        align = "same"
    gt = fw.group_tokens  # the prompt tokens, and (except an optional prompt_mask) their rule
    tokens = gt if gt and gt.tokens in keys and (gt.by in keys or gt.rule == "prompt_mask") else None
    return Fields(fw.name, lp, lr, masks, _pick_from(keys, fw.sample_mask), align, fw.shift,
                  _pick_from(keys, fw.group), tokens)  # fmt: skip


def _pick_from(keys: Sequence[str], names: Sequence[str]) -> str | None:
    for n in names:
        if n in keys:
            return n
    return None


def resolve_fields(keys: Sequence[str], fmt: str, file: str | Path, where: str = "file") -> Fields:
    """Field names of a file with key set ``keys``, for framework ``fmt`` (or detected).

    ``fmt`` is a framework name (:data:`FRAMEWORK_NAMES`) or anything else for detection from
    the whole key set. Raises :class:`MissingLogprobs` when a logprob field is missing and
    :class:`LogFormatError` when the key set fits several frameworks that read it differently.

    >>> resolve_fields(["prox_logp", "logprobs", "loss_mask"], "auto", "d.pt").log_probs
    'prox_logp'
    >>> resolve_fields(["action_log_probs", "rollout_logprobs", "loss_mask",
    ...                 "response_mask"], "auto", "d.pkl").masks
    ('loss_mask',)
    """
    keys = list(keys)
    if fmt in FRAMEWORKS:
        f = _fields_of(FRAMEWORKS[fmt], keys)
        if f is None:
            fw = FRAMEWORKS[fmt]
            miss = fw.trainer if _pick_from(keys, fw.trainer) is None else fw.rollout
            raise MissingLogprobs(file, where, miss[0], f"missing (--format {fmt})")
        return f
    cands = [f for fw in FRAMEWORKS.values() if (f := _fields_of(fw, keys)) is not None]
    if len(cands) > 1:  # the mask fields decide
        with_mask = [f for f in cands if f.masks]
        cands = with_mask or cands
        # identical readings are not ambiguous
        if len({(f.log_probs, f.rollout_log_probs, f.masks, f.sample_mask, f.align)
                for f in cands}) == 1:  # fmt: skip
            cands = cands[:1]
    if len(cands) > 1:
        names = ", ".join(f.framework for f in cands)
        raise LogFormatError(
            file, where, None, f"fields fit several frameworks ({names}); pass --format NAME"
        )
    if cands:
        return cands[0]
    # generic: the alias table, never AReaL's rollout 'logprobs' as the trainer field
    trainer = tuple(
        a for a in ALIASES["log_probs"] if not (a == "logprobs" and "prox_logp" in keys)
    )
    lp, lr = _pick_from(keys, trainer), pick(keys, "rollout_log_probs")
    if lp is None or lr is None:
        canon = "log_probs" if lp is None else "rollout_log_probs"
        raise MissingLogprobs(
            file, where, canon, f"missing (looked for {', '.join(ALIASES[canon])})"
        )
    m = _pick_from(keys, _GENERIC_MASKS)
    return Fields("generic", lp, lr, (m,) if m else ())


def apply_masks(
    lp: np.ndarray,
    lr: np.ndarray,
    masks: Sequence[np.ndarray],
    sample_mask: np.ndarray | None,
    fields: Fields,
    file: str | Path,
    r0: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Padded ``(B, T)`` logprobs and masks -> aligned ``(lp, lr, mask)``.

    - AReaL before ``compute_advantages``: ``prox_logp[:, t]`` scores token ``t+1``, so the
      trainer column ``t`` pairs with rollout and mask column ``t+1``;
    - ROLL: a mask one column wider than the logprobs (``(B, L-1)`` logprobs beside a
      ``(B, L)`` ``response_mask``) drops its first column (logprob ``t`` scores token ``t+1``;
      ``log_probs_post_func`` masks with ``response_mask[:, 1:]``); other frameworks have no
      shift and a width difference is an error;
    - the masks multiply (``completion_mask * tool_mask``), then the per-sequence
      ``sample_mask`` zeroes whole rows.
    """
    if fields.align == "areal":
        lp, lr = lp[:, :-1], lr[:, 1:]
        masks = [m[:, 1:] for m in masks]
    T = lp.shape[1] if lp.ndim == 2 else None
    out = None
    for name, m in zip(fields.masks, masks, strict=True):
        m = np.asarray(m)
        if fields.shift and T is not None and m.ndim == 2 and m.shape[1] == T + 1:
            m = m[:, 1:]
        if m.shape != lp.shape:
            raise LogFormatError(
                file, f"record {r0}" if m.shape[0] != lp.shape[0] else "file", name,
                f"shape {m.shape} differs from {fields.log_probs} {lp.shape}",
            )  # fmt: skip
        out = m if out is None else (np.asarray(out) != 0) & (m != 0)
    if sample_mask is not None and out is not None:
        s = np.asarray(sample_mask).reshape(-1)
        if s.shape[0] != lp.shape[0]:
            raise LogFormatError(
                file, "file", fields.sample_mask,
                f"{s.shape[0]} values for {lp.shape[0]} sequences",
            )  # fmt: skip
        out = (np.asarray(out) != 0) & (s[:, None] != 0)
    return lp, lr, out
