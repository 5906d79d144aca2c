"""The ``evaluate()`` pipeline: read a dump in chunks, merge their statistics, write the
report files atomically (docs/theory.md §6)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from trm_bounds.evaluate.certified import SequenceTerms
from trm_bounds.evaluate.chunk import evaluate_chunk
from trm_bounds.evaluate.options import EvaluateOptions
from trm_bounds.evaluate.output import OutputFolder
from trm_bounds.evaluate.report import build_report, report_markdown
from trm_bounds.evaluate.sequences_csv import CsvSink
from trm_bounds.evaluate.stats import Stats
from trm_bounds.logs import Batch, LogFormatError, count_sequences, iter_batches
from trm_bounds.results import atomic_write_text, to_jsonable

__all__ = ["evaluate", "demo_dump_path", "REPORT_OUTPUTS", "DEMO_MAX_RESPONSE_LENGTH",
           "DEMO_LIMIT_SOURCE"]

_Item = TypeVar("_Item")


def _prefetch(items: Iterable[_Item], depth: int = 1) -> Iterator[_Item]:
    """Yield ``items`` in order while a background thread produces up to ``depth`` ahead.

    Loading a chunk (parquet decoding, padding, validation) and computing its statistics
    release the GIL for most of their time, so the two overlap on two cores. An exception
    raised by the producer is re-raised here, at its position in the sequence. Peak memory:
    ``depth + 2`` chunks. Closing this generator early stops the producer.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((x, None)):
                    return
            put((done, None))
        except BaseException as err:  # noqa: BLE001 -- handed to the consumer, re-raised there
            put((None, err))

    worker = threading.Thread(target=produce, name="trm-bounds-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            x, err = q.get()
            if err is not None:
                raise err
            if x is done:
                return
            yield x
    finally:
        stop.set()
        worker.join()


#: What :func:`evaluate` writes into its folder (removed first with ``overwrite``).
REPORT_OUTPUTS = ("report.json", "report.md", "report.html", "sequences.csv",
                  "acceptance_*.png", "acceptance_*.pdf", "dbar_estimate.*", "hist_*.*")


def _local_chunks(
    batches: Iterator[Batch], opts: Mapping[str, Any]
) -> Iterator[tuple[Batch, Stats, dict[str, Any]]]:
    """``(batch, *evaluate_chunk(batch))`` per chunk; closing this closes ``batches``."""
    with closing(batches):
        for b in batches:
            yield (b, *evaluate_chunk(b, opts))


def demo_dump_path() -> Path:
    """The shipped demo dump (``trm_bounds/data/demo_dump.npz``, verl field names)."""
    return Path(__file__).resolve().parent.parent / "data" / "demo_dump.npz"


#: The generation limit the demo dump was sampled with (``experiments/make_demo_dump.py
#: --t-max``, its default), and how the report names it.
DEMO_MAX_RESPONSE_LENGTH = 256
DEMO_LIMIT_SOURCE = "the demo dump's generation limit (experiments/make_demo_dump.py --t-max)"


def evaluate(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    options: EvaluateOptions | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """Evaluate a dump end to end and write the report files into ``out_dir``; return the report.

    ``options``: an :class:`~trm_bounds.evaluate.options.EvaluateOptions` (validated when it
    was made); ``changes``: fields to set on it (or on the defaults), e.g.
    ``evaluate(p, out, level=0.99, max_response_length=4096)``; a bad value raises
    :class:`~trm_bounds.evaluate.options.OptionError` naming the field before any work.

    Writes ``report.json`` (schema ``trm-bounds-report/v1``), ``report.md``,
    ``report.html`` (unless ``html=False``) and ``sequences.csv``, plus the figures that
    ``draw_figures`` draws, if given (this module never imports a plotting library).
    ``path``: a file, directory or glob, or a list of them (one dataset). The output folder is
    one transaction (:class:`~trm_bounds.evaluate.output.OutputFolder`): an unusable
    ``out_dir`` raises :class:`~trm_bounds.evaluate.output.OutputDirError`, a failed or
    interrupted run leaves nothing behind. Bad input raises
    :class:`~trm_bounds.logs.LogFormatError` naming file, record and field: among others a
    reward outside ``reward_range`` and a response longer than the generation limit.

    The certificate (docs/theory.md §9) needs the generation limit: ``max_response_length``,
    else the artifact's (``Batch.max_response_length``, its source recorded); without one the
    report makes no certified claim and says what to pass. Groups come from
    ``Batch.prompt_id``; rows with no trained token are never sequences. ``engine='ray'``:
    one Ray task per shard (:mod:`trm_bounds.evaluate.ray_engine`), same report.
    """
    opts = options if options is not None else EvaluateOptions()
    if changes:
        opts = opts.replace(**changes)
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise ValueError("path: no dump given")
    from trm_bounds.masking._tensors import cpu_threads

    with cpu_threads():  # one torch thread: a busy core costs little (CPU_THREADS)
        return _evaluate(paths, Path(out_dir), opts)


def _chunks(paths: list, opts: EvaluateOptions) -> Iterator[tuple[Batch, Stats, dict[str, Any]]]:
    """The chunks of the dataset with their statistics, from the chosen engine."""
    stats_opts = opts.chunk_options()
    if opts.engine == "ray":
        from trm_bounds.evaluate.ray_engine import ray_chunks

        return ray_chunks(paths, chunk_fn=evaluate_chunk, fmt=opts.fmt,
                          chunk_size=opts.chunk_size, trust_pickle=opts.trust_pickle,
                          address=opts.address,
                          **stats_opts)  # fmt: skip
    batches = iter_batches(paths, fmt=opts.fmt, chunk_size=opts.chunk_size,
                           trust_pickle=opts.trust_pickle)  # fmt: skip
    return _local_chunks(_prefetch(batches) if opts.prefetch else batches, stats_opts)


class _Limits:
    """The a-priori ranges a chunk must respect: rewards in ``reward_range``, lengths up to the
    generation limit (the option, else the artifact's; two artifacts that disagree are an
    error). Checked on the driver, where the file and record of each row are known."""

    def __init__(self, opts: EvaluateOptions) -> None:
        self.lo, self.hi = opts.reward_range
        self.T_max = opts.max_response_length
        self.given = self.T_max is not None
        self.source = opts.max_response_length_source if self.given else None

    def check(self, b: Batch, lengths: np.ndarray) -> None:
        art = getattr(b, "max_response_length", None)
        if not self.given and art is not None:
            where = getattr(b, "max_response_length_source", None) or "the artifact"
            if self.T_max is not None and int(art) != self.T_max:
                raise LogFormatError(b.source, "file", "max_response_length",
                                     f"generation limit {int(art)} ({where}) differs from "
                                     f"{self.T_max} ({self.source}); give the generation "
                                     "limit (--max-response-length)")  # fmt: skip
            self.T_max, self.source = int(art), f"{where} ({b.source})"
        if self.T_max is not None and lengths.shape[0] and int(lengths.max()) > self.T_max:
            i = int(np.argmax(lengths > self.T_max))
            raise LogFormatError(b.source, f"record {b.first_record + i}", "response_mask",
                                 f"{int(lengths[i])} trained tokens, more than the generation "
                                 f"limit {self.T_max} ({self.source})")  # fmt: skip
        if b.reward is not None:
            R = np.asarray(b.reward, dtype=np.float64)
            bad = ~((R >= self.lo) & (R <= self.hi))  # NaN is bad too
            if bad.any():
                i = int(np.argmax(bad))
                raise LogFormatError(b.source, f"record {b.first_record + i}", "reward",
                                     f"{R[i]:g} lies outside the reward range [{self.lo:g}, "
                                     f"{self.hi:g}]; pass --reward-range LO HI (the range "
                                     "every reward can take)")  # fmt: skip


def _evaluate(paths: list, out: Path, opts: EvaluateOptions) -> dict[str, Any]:
    """The body of :func:`evaluate` (options validated)."""
    from tqdm.auto import tqdm

    folder = OutputFolder(out, REPORT_OUTPUTS, last="report.json", overwrite=opts.overwrite)
    with folder as tmp:
        total = count_sequences(paths, fmt=opts.fmt)
        sink = CsvSink(tmp)
        stats = Stats()
        terms = SequenceTerms()  # per-sequence X_i etc. for the certified section (O(N))
        limits = _Limits(opts)
        try:
            quiet = opts.progress is False or (opts.progress is None and not sys.stderr.isatty())
            chunks = _chunks(paths, opts)
            with (
                tqdm(total=total, unit="seq", disable=quiet, leave=False, desc="evaluate") as bar,
                closing(chunks),  # stops the prefetch thread / the Ray tasks
            ):
                first: Batch | None = None
                for batch, st, cols in chunks:
                    if first is None:
                        first = batch
                        has_dist = batch.logits is not None or batch.topk is not None
                    elif (batch.logits is not None or batch.topk is not None) != has_dist:
                        raise LogFormatError(
                            batch.source,
                            "file",
                            "logits",
                            "distributions are present in some shards and missing in others",
                        )
                    limits.check(batch, np.asarray(cols["cert:length"]))
                    stats = stats.merge(st)
                    terms.add(batch, cols)
                    sink.write(batch, cols)
                    bar.update(len(batch))
            if stats.n_sequences == 0:
                raise LogFormatError(paths[0], "file", None, "no sequences")
            if stats.n_tokens == 0:
                raise LogFormatError(
                    paths[0], "file", "response_mask",
                    f"{stats.n_sequences} rows but zero trained response tokens",
                )  # fmt: skip
            sink.commit(tmp / "sequences.csv")
        except BaseException:
            sink.discard()
            raise
        report = build_report(
            stats,
            thresholds=opts.chunk_options()["thresholds"],
            n_buckets=opts.n_buckets,
            ln_delta=opts.ln_delta,
            ln_eps=opts.ln_eps,
            inputs=[str(p) for p in paths],
            terms=terms.arrays(),
            level=opts.level,
            T_max=limits.T_max,
            T_max_source=limits.source,
            reward_range=opts.reward_range,
        )
        text = json.dumps(to_jsonable(report), indent=1) + "\n"
        figs: list[Path] = []
        if opts.draw_figures is not None:
            fig_dir = tmp / "figures"
            fig_dir.mkdir()
            figs = [Path(p) for p in opts.draw_figures(json.loads(text), fig_dir)]
            for p in figs:  # the figures sit beside the report
                os.replace(p, tmp / p.name)
            fig_dir.rmdir()
            figs = [tmp / p.name for p in figs]
        atomic_write_text(tmp / "report.md", report_markdown(report, figs))
        if opts.html:
            from trm_bounds.evaluate.html import report_html

            atomic_write_text(tmp / "report.html", report_html(report, figs))
        atomic_write_text(tmp / "report.json", text)
        folder.commit()
    return report
