"""The Ray engine of :func:`~trm_bounds.evaluate.evaluate`: shards become Ray tasks that return
chunk statistics; the driver merges them (docs/theory.md §6).

Map-reduce over the associative :class:`~trm_bounds.evaluate.Stats`. A *shard* is one dump
file; each Ray task reads its shard in chunks of ``chunk_size`` sequences with the local
readers, computes :func:`~trm_bounds.evaluate.chunk.evaluate_chunk` per chunk, merges them, and returns
the merged statistics plus the per-sequence columns of ``sequences.csv`` (about 100 bytes per
sequence, never the token arrays). The driver consumes the shards in input order with at most
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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.evaluate.chunk import evaluate_chunk
from trm_bounds.evaluate.stats import Stats
from trm_bounds.logs import Batch, LogFormatError, iter_batches, resolve_paths

__all__ = ["ENGINES", "ray_shards", "ray_chunks", "ray_map"]

#: Engines accepted by ``evaluate(engine=...)`` and ``--engine``.
ENGINES = ("local", "ray")

#: Test-only fault injection: when this environment variable names a path that does not yet
#: exist, the first task to see it creates the path and kills its own worker process.
_FAULT_ENV = "TRM_BOUNDS_RAY_KILL_ONCE"


def _is_uri(spec: str | os.PathLike) -> bool:
    return "://" in str(spec)


def ray_shards(paths: Sequence[str | os.PathLike]) -> list[str]:
    """The shards of a dataset, in input order: local files (directories and globs expanded
    as by :func:`~trm_bounds.logs.resolve_paths`) and files under pyarrow URIs.

    >>> ray_shards([str(Path(__file__))])[0].endswith("ray_engine.py")
    True
    """
    out: list[str] = []
    for spec in paths:
        if not _is_uri(spec):
            out += [str(p) for p in resolve_paths([spec])]
            continue
        from pyarrow import fs as pafs

        try:
            filesystem, root = pafs.FileSystem.from_uri(str(spec))
            info = filesystem.get_file_info(root)
        except (OSError, ValueError) as err:
            raise LogFormatError(spec, "path", None, f"cannot open ({err})") from None
        scheme = str(spec).split("://", 1)[0]
        if info.type == pafs.FileType.File:
            out.append(str(spec))
        elif info.type == pafs.FileType.Directory:
            sel = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
            suffixes = (".pt", ".pth", ".npz", ".parquet", ".jsonl", ".json")
            files = sorted(f.path for f in sel if f.is_file and f.path.endswith(suffixes))
            if not files:
                raise LogFormatError(spec, "directory", None, "holds no .pt/.npz/.parquet/.jsonl")
            out += [f"{scheme}://{f}" for f in files]
        else:
            raise LogFormatError(spec, "path", None, "no such file or directory")
    return out


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
    )


def _maybe_die() -> None:
    marker = os.environ.get(_FAULT_ENV)
    if marker and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)  # a crashed worker, not an exception: Ray must retry the task


def _shard_task(shard: str, options: Mapping[str, Any]) -> tuple[Any, ...]:
    """Read one shard: ``("ok", merged Stats, [(rows-only batch, per-sequence columns)])``,
    or ``("log_format_error", (file, where, field, message))`` (LogFormatError does not
    survive pickling, so its parts travel and the driver raises it again)."""
    _maybe_die()
    opts = dict(options)
    read = {k: opts.pop(k) for k in ("fmt", "chunk_size", "trust_pickle")}
    tmpdir = None
    local = shard
    try:
        if _is_uri(shard):
            from pyarrow import fs as pafs

            filesystem, path = pafs.FileSystem.from_uri(shard)
            tmpdir = tempfile.mkdtemp(prefix="trm-bounds-shard.")
            local = os.path.join(tmpdir, os.path.basename(path))
            with filesystem.open_input_stream(path) as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
        stats, rows = Stats(), []
        for b in iter_batches([local], **read):
            st, cols = evaluate_chunk(b, opts)
            stats = stats.merge(st)
            if local != shard:
                b.source = shard
            rows.append((_rows_only(b), cols))
        return "ok", stats, rows
    except LogFormatError as err:
        return "log_format_error", (shard if local != shard else err.file, err.where,
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
    fmt: str = "auto",
    chunk_size: int = 4096,
    trust_pickle: bool = False,
    address: str | None = None,
    max_in_flight: int | None = None,
    max_retries: int = 3,
    **stats_options: Any,
) -> Iterator[tuple[Batch, Stats, dict[str, np.ndarray]]]:
    """Yield ``(rows-only batch, stats, columns)`` per chunk, in input order, computed on Ray.

    The rows-only batch has zero-width token arrays and the chunk's per-sequence fields;
    ``columns`` are the chunk's per-sequence columns of
    :func:`~trm_bounds.evaluate.chunk_stats`; a shard's merged statistics come with its
    first chunk (empty :class:`Stats` with the others), so merging everything yielded gives
    the dataset's statistics.
    ``stats_options`` are passed to :func:`~trm_bounds.evaluate.chunk_stats`.
    ``max_in_flight``: tasks outstanding at once (default: twice the cluster's CPUs).
    """
    shards = ray_shards(paths)
    started = _connect(address)
    import ray

    pending: deque = deque()
    try:
        task = ray.remote(num_cpus=1, max_retries=max_retries, retry_exceptions=False)(
            _shard_task
        )
        options = {"fmt": fmt, "chunk_size": chunk_size, "trust_pickle": trust_pickle}
        options.update(stats_options)
        opts_ref = ray.put(options)
        limit = max_in_flight or max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        todo = deque(shards)
        while todo or pending:
            while todo and len(pending) < limit:
                pending.append(task.remote(todo.popleft(), opts_ref))
            try:
                result = ray.get(pending.popleft())
                if result[0] == "log_format_error":
                    raise LogFormatError(*result[1])
            except ray.exceptions.RayTaskError as err:
                raise _unwrap(err) from None
            _, stats, rows = result
            for b, cols in rows:
                yield b, stats, cols
                stats = Stats()  # the shard's statistics are counted once, with its first chunk
    finally:
        for ref in pending:  # an error, or the consumer stopped early: drop the rest
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


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
