r"""Loaders for logged per-token logprob dumps (docs/theory.md §6).

Every input kind is turned into the same canonical chunk, a :class:`Batch` of right-padded
``(B, T)`` arrays with prefix masks (:mod:`trm_bounds.logs.batch`). Supported inputs
(``fmt`` names in brackets; ``auto`` picks from the suffix and content):

- batch dictionaries of ``(B, T)`` arrays [``pt`` via ``torch.save``, ``npz``]
  (:mod:`~trm_bounds.logs.batch_dict`) and parquet, one row per sequence with list-valued
  columns or padded rows [``parquet``] (:mod:`~trm_bounds.logs.parquet`), with the field
  aliases of verl, NeMo-RL, SkyRL and TRL (:data:`ALIASES`, :func:`dump_schema`);
- NeMo-RL ``train_data_step*.jsonl`` and a generic JSONL, one sequence per line [``jsonl``]
  (:mod:`~trm_bounds.logs.jsonl`);
- slime ``--dump-details`` train dumps [``slime``] (:mod:`~trm_bounds.logs.slime`);
- optionally, next-token distributions for exact divergences (batch formats ``pt``/``npz``):
  ``logits``/``rollout_logits`` ``(B, T, V)`` (logits or full logprobs), or top-k
  ``topk_indices``/``topk_log_probs`` and ``rollout_topk_indices``/``rollout_topk_log_probs``
  ``(B, T, K)``, with an optional scalar ``vocab_size`` (without it, the KL upper bound is
  finite only where the known sets cover the vocabulary, which cannot be recognised).

A directory or glob of shards is one dataset (files in sorted order). Bad input raises
:class:`LogFormatError`, whose message is one line naming the file, the record (sequence
index within the file, or JSONL line number) and the field.
"""

from trm_bounds.logs.aliases import ALIASES, REQUIRED_FIELDS, dump_schema
from trm_bounds.logs.batch import MAX_CELLS, MAX_LOGPROB, Batch, validate
from trm_bounds.logs.dataset import (
    FORMATS,
    count_sequences,
    detect_format,
    iter_batches,
    load_dataset,
    resolve_paths,
)
from trm_bounds.logs.errors import LogFormatError

__all__ = [
    "ALIASES",
    "REQUIRED_FIELDS",
    "FORMATS",
    "MAX_LOGPROB",
    "MAX_CELLS",
    "Batch",
    "LogFormatError",
    "dump_schema",
    "resolve_paths",
    "detect_format",
    "validate",
    "iter_batches",
    "count_sequences",
    "load_dataset",
]
