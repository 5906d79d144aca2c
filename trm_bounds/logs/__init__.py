r"""Loaders for logged per-token logprob dumps (docs/theory.md §6).

Every input kind is turned into the same canonical chunk, a :class:`Batch` of right-padded
``(B, T)`` arrays with prefix masks (:mod:`trm_bounds.logs.batch`). Supported inputs
(``fmt`` names in brackets; ``auto`` picks from the suffix and content):

- batch dictionaries of ``(B, T)`` arrays [``pt`` via ``torch.save``, ``npz``]
  (:mod:`~trm_bounds.logs._batch_dict`) and parquet, one row per sequence with list-valued
  columns or padded rows [``parquet``] (:mod:`~trm_bounds.logs._parquet`), with the field
  aliases of verl, NeMo-RL, SkyRL and TRL (:data:`ALIASES`, :func:`dump_schema`);
- NeMo-RL ``train_data_step*.jsonl`` and a generic JSONL, one sequence per line [``jsonl``]
  (:mod:`~trm_bounds.logs._jsonl`);
- slime ``--dump-details`` train dumps [``slime``] (:mod:`~trm_bounds.logs._slime`);
- pickled framework objects (SkyRL ``TrainingInputBatch`` ``.pkl``, verl ``DataProto``,
  ``TensorDict``) read by a restricted unpickler, no code executed [``pkl``, ``pt``]
  (:mod:`~trm_bounds.logs.unpickle`);
- every framework's field names, trained-token masks and alignment, detected from the whole
  key set or named by ``fmt`` (``verl``, ``nemo-rl``, ``skyrl``, ``trl``, ``slime``, ``roll``,
  ``areal``, ``openrlhf``; :mod:`~trm_bounds.logs.frameworks`);
- optionally, next-token distributions for exact divergences (batch formats ``pt``/``npz``):
  ``logits``/``rollout_logits`` ``(B, T, V)`` (logits or full logprobs), or top-k
  ``topk_indices``/``topk_log_probs`` and ``rollout_topk_indices``/``rollout_topk_log_probs``
  ``(B, T, K)``, with an optional scalar ``vocab_size`` (without it, the KL upper bound is
  finite only where the known sets cover the vocabulary, which cannot be recognised).

A directory or glob of shards is one dataset (files in sorted order); which files make up a
dataset or a run and the step of each is decided in one place
(:mod:`~trm_bounds.logs.run_folder`): inside a directory, files without both logprob fields
are skipped with one counting notice; a dataset without a valid token is an error. Each
file kind is one entry of the reader registry (:mod:`~trm_bounds.logs.readers`). Bad input raises
:class:`LogFormatError`, whose message is one line naming the file, the record (sequence
index within the file, or JSONL line number) and the field.
"""

from trm_bounds.logs.aliases import ALIASES, REQUIRED_FIELDS, dump_schema
from trm_bounds.logs.batch import MAX_CELLS, MAX_CHUNK_BYTES, MAX_LOGPROB, Batch, validate
from trm_bounds.logs.dataset import (
    FORMATS,
    count_sequences,
    detect_format,
    iter_batches,
    load_dataset,
    read_file,
    read_options,
)
from trm_bounds.logs.errors import LogFormatError
from trm_bounds.logs.frameworks import FRAMEWORK_NAMES, FRAMEWORKS, MissingLogprobs, resolve_fields
from trm_bounds.logs.read_options import ReadOptions
from trm_bounds.logs.readers import DATA_SUFFIXES, FILE_KINDS, READERS, Reader, reader_for
from trm_bounds.logs.run_folder import (
    DataFile,
    DatasetTally,
    data_files,
    resolve_paths,
    skip_notice,
    step_of,
    steps_of,
)
from trm_bounds.logs.unpickle import PickleRefused

__all__ = [
    "ALIASES",
    "REQUIRED_FIELDS",
    "FORMATS",
    "FILE_KINDS",
    "DATA_SUFFIXES",
    "READERS",
    "Reader",
    "ReadOptions",
    "reader_for",
    "FRAMEWORKS",
    "FRAMEWORK_NAMES",
    "MissingLogprobs",
    "PickleRefused",
    "resolve_fields",
    "DataFile",
    "DatasetTally",
    "data_files",
    "steps_of",
    "skip_notice",
    "step_of",
    "MAX_LOGPROB",
    "MAX_CELLS",
    "MAX_CHUNK_BYTES",
    "Batch",
    "LogFormatError",
    "dump_schema",
    "resolve_paths",
    "detect_format",
    "validate",
    "read_options",
    "read_file",
    "iter_batches",
    "count_sequences",
    "load_dataset",
]
