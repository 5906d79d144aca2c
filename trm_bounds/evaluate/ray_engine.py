"""The Ray engine of :func:`~trm_bounds.evaluate.evaluate`: shards become Ray tasks that return
chunk statistics; the driver merges them (docs/theory.md §6).

Map-reduce over the associative :class:`~trm_bounds.evaluate.Stats`. A *shard* is one dump
file, or one row group of a parquet file (pyarrow's row-group fragments: one large file
spreads over the workers). Which files make up the dataset, which of them may be skipped
(files found in a directory without a logprob pair) and the end-of-dataset checks are the
local engine's own (:mod:`trm_bounds.logs.run_folder`, :func:`trm_bounds.logs.read_file`):
each Ray task reads its shard in chunks of ``chunk_size`` sequences with the local readers,
calls the evaluator's per-chunk step ``chunk_fn(batch, opts)`` (``evaluate_chunk``, passed in
by the evaluator: this module never imports it) per chunk, merges them, and returns the
merged statistics plus the per-sequence columns of ``sequences.csv`` (about 100 bytes per
sequence, never the token arrays) and the files it skipped. The driver consumes the shards in input order with at most
``max_in_flight`` tasks outstanding, so its peak memory is bounded by the shards in flight and
does not grow with the number of shards.

Equality with the local engine: counts, maxima, histograms and every decision are identical;
the double-double sums are merged in a different grouping (per shard, then across shards), so
float sums agree to about ``2^-106`` relative and the float64 metrics to one rounding.

Paths: local paths, directories and globs as in :func:`~trm_bounds.logs.resolve_paths`, or
URIs that pyarrow's filesystem layer opens (``s3://``, ``gs://``, ``hdfs://``, ``file://``):
a URI shard is copied by the task into a private temporary file on the worker and read there;
errors and ``sequences.csv`` name the URI. A task that raises surfaces on the driver as the
same one-line error the local engine gives (it names the shard). A worker that dies is
retried by Ray (``max_retries``); the result does not change because a shard is a pure
function of its bytes.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.evaluate.stats import Stats
from trm_bounds.logs import (
    DATA_SUFFIXES,
    FILE_KINDS,
    Batch,
    DataFile,
    DatasetTally,
    LogFormatError,
    data_files,
    read_file,
    read_options,
    reader_for,
)

__all__ = ["Shard", "ray_shards", "ray_chunks", "ray_map"]

#: The evaluator's per-chunk step: ``(batch, options) -> (Stats, per-sequence columns)``.
ChunkFn = Callable[[Batch, Mapping[str, Any]], tuple[Stats, dict[str, Any]]]

#: Test-only fault injection: when this environment variable names a path that does not yet
#: exist, the first task to see it creates the path and kills its own worker process.
_FAULT_ENV = "TRM_BOUNDS_RAY_KILL_ONCE"


def _is_uri(spec: str | os.PathLike) -> bool:
    return "://" in str(spec)


@dataclass(frozen=True)
class Shard:
    """One Ray task's input: a local file or a pyarrow URI (``name``), whether it may be
    skipped without a logprob pair (``optional``: found by scanning a directory) and the part
    of it to read (``part``: parquet row groups; None: the whole file)."""

    name: str
    optional: bool = False
    part: Any = None


def ray_shards(paths: Sequence[str | os.PathLike], *, fmt: str = "auto") -> list[Shard]:
    """The shards of a dataset, in the local engine's reading order: the files of
    :func:`~trm_bounds.logs.data_files` (a parquet file split into its row groups) and files
    under pyarrow URIs (whole).

    >>> [s.name.endswith("ray_engine.py") for s in ray_shards([str(Path(__file__))])]
    [True]
    """
    kind = fmt if fmt in FILE_KINDS else None
    out: list[Shard] = []
    for spec in paths:
        if not _is_uri(spec):
            for f in data_files([spec]):
                out += _local_shards(f, kind)
            continue
        from pyarrow import fs as pafs

        try:
            filesystem, root = pafs.FileSystem.from_uri(str(spec))
            info = filesystem.get_file_info(root)
        except (OSError, ValueError) as err:
            raise LogFormatError(spec, "path", None, f"cannot open ({err})") from None
        scheme = str(spec).split("://", 1)[0]
        if info.type == pafs.FileType.File:
            out.append(Shard(str(spec)))
        elif info.type == pafs.FileType.Directory:
            sel = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
            files = sorted(
                f.path for f in sel if f.is_file and f.path.lower().endswith(DATA_SUFFIXES)
            )
            if not files:
                raise LogFormatError(
                    spec, "directory", None, f"holds no {'/'.join(DATA_SUFFIXES)} file"
                )
            out += [Shard(f"{scheme}://{f}", optional=True) for f in files]
        else:
            raise LogFormatError(spec, "path", None, "no such file or directory")
    return out


def _local_shards(f: DataFile, kind: str | None) -> list[Shard]:
    """One shard per part of a file that can be read in parts (parquet row groups)."""
    try:
        reader = reader_for(f.path, kind)
    except LogFormatError:
        return [Shard(str(f.path), f.optional)]  # the task reports it, as the local engine
    if reader.parts is None or f.path.stat().st_size == 0:
        return [Shard(str(f.path), f.optional)]
    return [Shard(str(f.path), f.optional, p) for p in reader.parts(f.path)]


def _rows_only(b: Batch) -> Batch:
    """``b`` without its token arrays: what ``sequences.csv`` and the driver's checks read."""
    B = len(b)
    return Batch(
        log_probs=np.empty((B, 0)),
        rollout_log_probs=np.empty((B, 0)),
        response_mask=np.empty((B, 0), dtype=bool),
        source=b.source,
        first_record=b.first_record,
        reward=b.reward,
        prompt_id=b.prompt_id,
        logits=None if b.logits is None else np.empty((B, 0, 0)),
        topk=None if b.topk is None else {},
        group_field=b.group_field,  # the certificate's unit and generation limit (evaluate)
        max_response_length=b.max_response_length,
        max_response_length_source=b.max_response_length_source,
        n_nan_tokens=b.n_nan_tokens,
    )


def _maybe_die() -> None:
    marker = os.environ.get(_FAULT_ENV)
    if marker and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)  # a crashed worker, not an exception: Ray must retry the task


def _shard_task(shard: Shard, chunk_fn: ChunkFn, options: Mapping[str, Any]) -> tuple[Any, ...]:
    """Read one shard: ``("ok", merged Stats, [(rows-only batch, per-sequence columns)],
    skipped files)``, or ``("log_format_error", (file, where, field, message))``
    (LogFormatError does not survive pickling, so its parts travel and the driver raises it
    again)."""
    _maybe_die()
    opts = dict(options)
    fmt = opts.pop("fmt")
    read = read_options(fmt, opts.pop("chunk_size"), opts.pop("trust_pickle"))
    tmpdir = None
    name = local = shard.name
    try:
        if _is_uri(name):
            from pyarrow import fs as pafs

            filesystem, path = pafs.FileSystem.from_uri(name)
            tmpdir = tempfile.mkdtemp(prefix="trm-bounds-shard.")
            local = os.path.join(tmpdir, os.path.basename(path))
            with filesystem.open_input_stream(path) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        stats, rows, skipped = Stats(), [], []
        file = DataFile(Path(local), shard.optional)
        for b in read_file(file, fmt, read, shard.part, skipped):
            st, cols = chunk_fn(b, opts)
            stats = stats.merge(st)
            if local != name:
                b.source = name
            rows.append((_rows_only(b), cols))
        skipped = [(name, why) for _, why in skipped]
        return "ok", stats, rows, skipped
    except LogFormatError as err:
        return "log_format_error", (name if local != name else err.file, err.where,
                                    err.field, err.message)  # fmt: skip
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)


def _connect(address: str | None) -> bool:
    """Connect to Ray (``address``: None starts a local cluster; ``auto``; ``ray://...``).
    Returns whether this call started the connection (and so must shut it down)."""
    try:
        import ray
    except ImportError:
        raise ValueError("engine 'ray' needs Ray: pip install 'trm-bounds[ray]'") from None
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except ConnectionError as err:
        msg = " ".join(str(err).split())
        raise ValueError(f"address {address!r}: cannot connect to a Ray cluster ({msg})") from None
    return True


def _unwrap(err: BaseException) -> BaseException:
    """The exception a task raised, as the local engine would raise it."""
    cause = getattr(err, "cause", None)
    return cause if isinstance(cause, BaseException) else err


def ray_chunks(
    paths: Sequence[str | os.PathLike],
    *,
    chunk_fn: ChunkFn | None = None,
    fmt: str = "auto",
    chunk_size: int = 4096,
    trust_pickle: bool = False,
    address: str | None = None,
    max_in_flight: int | None = None,
    max_retries: int = 3,
    notice: Callable[[str], None] | None = None,
    **stats_options: Any,
) -> Iterator[tuple[Batch, Stats, dict[str, np.ndarray]]]:
    """Yield ``(rows-only batch, stats, columns)`` per chunk, in input order, computed on Ray.

    ``chunk_fn(batch, opts)``: the evaluator's per-chunk step (``evaluate_chunk``); None
    takes it from the already imported evaluator module, so that this module imports nothing
    above it (callers should pass it). The rows-only batch has zero-width token arrays and
    the chunk's per-sequence fields; ``columns`` are the chunk's per-sequence columns; a
    shard's merged statistics come with its first chunk (empty :class:`Stats` with the
    others), so merging everything yielded gives the dataset's statistics. Skipped files
    are counted in one ``notice`` (default: stderr) and the dataset checks are the local
    engine's (:class:`~trm_bounds.logs.DatasetTally`).
    ``stats_options`` are passed to ``chunk_fn``.
    ``max_in_flight``: tasks outstanding at once (default: twice the cluster's CPUs).
    """
    if chunk_fn is None:
        chunk_fn = _evaluator_chunk_fn()
    read_options(fmt, chunk_size, trust_pickle)  # the local engine's option errors
    shards = ray_shards(paths, fmt=fmt)
    tally = DatasetTally(paths, len({s.name for s in shards}))
    started = _connect(address)
    import ray

    pending: deque = deque()
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(
            _shard_task
        )
        options = {"fmt": fmt, "chunk_size": chunk_size, "trust_pickle": trust_pickle}
        options.update(stats_options)
        opts_ref, fn_ref = ray.put(options), ray.put(chunk_fn)
        limit = max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        todo = deque(shards)
        while todo or pending:
            while todo and len(pending) < limit:
                pending.append(task.remote(todo.popleft(), fn_ref, opts_ref))
            try:
                result = ray.get(pending.popleft())
                if result[0] == "log_format_error":
                    raise LogFormatError(*result[1])
            except ray.exceptions.RayTaskError as err:
                raise _unwrap(err) from None
            _, stats, rows, skipped = result
            for s in skipped:  # a file split into parts is skipped by each: counted once
                if s not in tally.skipped:
                    tally.skipped.append(s)
            tally.n_valid += stats.n_tokens
            for b, cols in rows:
                yield b, stats, cols
                stats = Stats()  # the shard's statistics are counted once, with its first chunk
        tally.finish(notice)
    finally:
        for ref in pending:  # an error, or the consumer stopped early: drop the rest
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


def _evaluator_chunk_fn() -> ChunkFn:
    """``evaluate_chunk`` of the evaluator that called us (its module is imported already;
    looked up, never imported here, so no import cycle)."""
    import sys

    mod = sys.modules.get("trm_bounds.evaluate.run")
    if mod is None or not hasattr(mod, "evaluate_chunk"):
        raise ValueError("ray_chunks needs chunk_fn (the evaluator's evaluate_chunk)")
    return mod.evaluate_chunk


def ray_map(fn: Any, items: Sequence[Any], *, address: str | None = None) -> list[Any]:
    """``[fn(x) for x in items]`` as one Ray task per item; results in item order.

    For sweeps: pass seeds (or small tuples of them), never instances, so each instance is
    generated in the task that checks it. ``fn`` must be importable on the workers (a
    module-level function of this package). A task that raises surfaces as its exception.
    """
    started = _connect(address)
    import ray

    try:
        task = ray.remote(num_cpus=1)(fn)
        try:
            return ray.get([task.remote(x) for x in items])
        except ray.exceptions.RayTaskError as err:
            raise _unwrap(err) from None
    finally:
        if started:
            ray.shutdown()
