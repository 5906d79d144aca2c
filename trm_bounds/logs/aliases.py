r"""Field names of every supported framework (the alias table) and the dump schema.

:data:`ALIASES` maps each canonical field of a :class:`~trm_bounds.logs.Batch` to the names
that verl, NeMo-RL, SkyRL, TRL, slime and the generic JSONL use for it, in priority order
(the first name present in a file is taken). :func:`dump_schema` renders the table for
``--help`` texts and the README, so the schema is written once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from trm_bounds.logs.errors import LogFormatError

__all__ = ["FIELDS", "ALIASES", "REQUIRED_FIELDS", "dump_schema"]

#: The one alias table: canonical field -> (what it holds, accepted names in priority order,
#: each with the frameworks that write it; "" where the name is a generic fallback).
FIELDS: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "log_probs": (
        "trainer logprob log pi_theta(y_t|c_t) of each sampled token, nats",
        (
            ("old_log_probs", "verl, ROLL"),
            ("prev_logprobs", "NeMo-RL"),
            ("action_log_probs", "SkyRL, OpenRLHF"),
            ("old_per_token_logps", "TRL"),
            ("log_probs", "slime"),
            ("prox_logp", "AReaL"),
            ("logprobs", "generic JSONL; AReaL's logprobs is the rollout field"),
        ),
    ),
    "rollout_log_probs": (
        "inference-engine logprob log pi_roll(y_t|c_t) of the same token, nats",
        (
            ("rollout_log_probs", "verl, slime, OpenRLHF"),
            ("generation_logprobs", "NeMo-RL"),
            ("rollout_logprobs", "SkyRL, generic JSONL"),
            ("sampling_per_token_logps", "TRL"),
            ("infer_logprobs", "ROLL"),
        ),
    ),
    "response_mask": (
        "1 on trained tokens; the trainable-token mask wins over the response mask; "
        "required for padded (B,T) arrays, optional for ragged inputs (every logged "
        "token is then valid)",
        (
            ("token_loss_mask", "NeMo-RL, times sample_loss_mask"),
            ("loss_mask", "SkyRL, AReaL"),
            ("loss_masks", "slime"),
            ("completion_mask", "TRL, times tool_mask"),
            ("action_mask", "OpenRLHF"),
            ("response_mask", "verl, ROLL"),
            ("mask", ""),
        ),
    ),
    "reward": (
        "optional per-sequence reward (token-level scores are summed)",
        (("reward", ""), ("rewards", ""), ("score", ""), ("scores", "")),
    ),
    "prompt_id": (
        "optional key of a prompt's samples (the framework's group key), copied into "
        "sequences.csv; without a key (TRL, NeMo-RL, slime, AReaL): identical prompt tokens",
        (("prompt_id", ""), ("uid", "verl"), ("uids", "SkyRL"), ("traj_group_id", "ROLL"),
         ("index", "OpenRLHF")),
    ),
    "logits": (
        "optional (B,T,V) theta logits or full logprobs, for exact KL/TV (pt, npz)",
        (("logits", ""), ("logits_theta", ""), ("full_log_probs", "")),
    ),
    "rollout_logits": (
        "optional (B,T,V) rollout logits or full logprobs (with logits)",
        (("rollout_logits", ""), ("logits_roll", ""), ("rollout_full_log_probs", "")),
    ),
    "topk_indices": (
        "optional (B,T,K) theta top-k token ids, for guaranteed KL/TV bounds (pt, npz)",
        (("topk_indices", ""), ("topk_ids", "")),
    ),
    "topk_log_probs": (
        "optional (B,T,K) theta top-k logprobs",
        (("topk_log_probs", ""), ("topk_logprobs", "")),
    ),
    "rollout_topk_indices": (
        "optional (B,T,K) rollout top-k token ids",
        (("rollout_topk_indices", ""), ("rollout_topk_ids", "")),
    ),
    "rollout_topk_log_probs": (
        "optional (B,T,K) rollout top-k logprobs",
        (("rollout_topk_log_probs", ""), ("rollout_topk_logprobs", "")),
    ),
    "vocab_size": (
        "optional scalar V (lets the top-k KL upper bound be finite)",
        (("vocab_size", ""),),
    ),
}

#: Canonical field -> accepted names, in priority order (from :data:`FIELDS`).
ALIASES: dict[str, tuple[str, ...]] = {
    canon: tuple(name for name, _ in names) for canon, (_, names) in FIELDS.items()
}

#: Canonical fields a dump must hold (the mask only for padded arrays).
REQUIRED_FIELDS: tuple[str, ...] = ("log_probs", "rollout_log_probs", "response_mask")

DIST_FIELDS = ("logits", "rollout_logits")

TOPK_FIELDS = (
    "topk_indices",
    "topk_log_probs",
    "rollout_topk_indices",
    "rollout_topk_log_probs",
)


def pick(keys: Sequence[str], name: str) -> str | None:
    for alias in ALIASES[name]:
        if alias in keys:
            return alias
    return None


def require(keys: Sequence[str], name: str, file: Path, where: str) -> str:
    key = pick(keys, name)
    if key is None:
        raise LogFormatError(file, where, name, f"missing (looked for {', '.join(ALIASES[name])})")
    return key


def dump_schema(*, markdown: bool = False, width: int = 79) -> str:
    """The dump schema: every canonical field, what it holds and its accepted names.

    Rendered from :data:`FIELDS` (names in priority order, each with the frameworks that
    write it): plain text wrapped at ``width`` for ``--help``, or a markdown table for the
    README.

    >>> print(dump_schema().splitlines()[1])
      log_probs (required): trainer logprob log pi_theta(y_t|c_t) of each sampled
    """
    import textwrap

    def named(name: str, fw: str, code: str = "") -> str:
        return f"{code}{name}{code}" + (f" ({fw})" if fw else "")

    if markdown:
        out = ["| field | holds | accepted names (framework) |", "|---|---|---|"]
        for canon, (desc, names) in FIELDS.items():
            tag = " (required)" if canon in REQUIRED_FIELDS else ""
            shown = ", ".join(named(n, fw, "`") for n, fw in names)
            out.append(f"| `{canon}`{tag} | {desc.replace('|', chr(92) + '|')} | {shown} |")
        return "\n".join(out) + "\n"
    out = ["Dump fields (the first accepted name present in a file is used):"]
    for canon, (desc, names) in FIELDS.items():
        tag = " (required)" if canon in REQUIRED_FIELDS else ""
        out += textwrap.wrap(
            f"{canon}{tag}: {desc}", width, initial_indent="  ", subsequent_indent="      "
        )
        shown = ", ".join(named(n, fw) for n, fw in names)
        out += textwrap.wrap(
            f"names: {shown}", width, initial_indent="      ", subsequent_indent="        "
        )
    return "\n".join(out) + "\n"
