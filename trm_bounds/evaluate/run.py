"""The ``evaluate()`` pipeline: read a dump in chunks, merge their statistics, write the
report files atomically (docs/theory.md §6)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar

from trm_bounds.evaluate.certified import SequenceTerms, sequence_columns
from trm_bounds.evaluate.report import _CsvSink, build_report, report_markdown
from trm_bounds.evaluate.stats import Stats, chunk_stats
from trm_bounds.logs import FORMATS, Batch, LogFormatError, count_sequences, iter_batches
from trm_bounds.results import atomic_write_text, to_jsonable

__all__ = ["OutputDirError", "FigureDrawer", "check_options", "evaluate", "demo_dump_path"]

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


#: The files a run writes, and its figures (removed before a run with ``overwrite``).
_OUTPUTS = ("report.json", "report.md", "report.html", "sequences.csv")
_FIGURE_PATTERNS = ("acceptance_*.png", "acceptance_*.pdf", "dbar_estimate.*", "hist_*.*")


def _local_chunks(
    batches: Iterator[Batch], opts: Mapping[str, Any]
) -> Iterator[tuple[Batch, Stats, dict[str, Any]]]:
    """``(batch, *evaluate_chunk(batch))`` per chunk; closing this closes ``batches``."""
    with closing(batches):
        for b in batches:
            yield (b, *evaluate_chunk(b, opts))


def evaluate_chunk(batch: Batch, opts: Mapping[str, Any]) -> tuple[Stats, dict[str, Any]]:
    """One chunk's mergeable statistics and per-sequence columns: :func:`chunk_stats`'s, plus
    the certificate's terms (:func:`~trm_bounds.evaluate.certified.sequence_columns`); the
    one per-chunk step of every engine."""
    st, cols = chunk_stats(batch, **opts)
    cols.update(sequence_columns(batch))
    return st, cols


def demo_dump_path() -> Path:
    """The shipped demo dump (``trm_bounds/data/demo_dump.npz``, verl field names)."""
    return Path(__file__).resolve().parent.parent / "data" / "demo_dump.npz"


class OutputDirError(ValueError):
    """The output directory cannot be used; ``str(err)`` is one line naming the path."""

    def __init__(self, path: str | os.PathLike, message: str):
        self.path = str(path)
        super().__init__(f"output directory {self.path}: {message}")


def _prepare_out_dir(out: Path) -> tuple[Path, list[Path]]:
    """Create ``out`` (and missing parents) and a private temporary directory inside it.

    Returns the temporary directory and the directories created here (deepest last), so a
    failed run can remove them again. Raises :class:`OutputDirError` when ``out`` is an
    existing file, lies under a file, or cannot be created or written.
    """
    if out.exists() and not out.is_dir():
        raise OutputDirError(out, "exists and is not a directory")
    created: list[Path] = []
    p = out
    while not p.exists():
        created.append(p)
        if p.parent == p:
            break
        p = p.parent
    created.reverse()
    if not p.is_dir():
        raise OutputDirError(out, f"{p} is not a directory")
    try:
        for d in created:
            d.mkdir()
        tmp = Path(tempfile.mkdtemp(dir=out, prefix=".evaluate."))
    except OSError as err:
        _remove_created(created)
        raise OutputDirError(out, f"cannot be created or written ({err.strerror or err})") from None
    return tmp, created


def _remove_created(created: list[Path]) -> None:
    """Remove the directories a failed run created, deepest first, if they are empty."""
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            return


def check_options(
    *,
    fmt: str = "auto",
    paths: Sequence[str | os.PathLike] | None = None,
    thresholds: Mapping[str, float] | None = None,
    criteria: Sequence[str] | None = None,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    rollout_rs: str | None = None,
    rollout_rs_threshold: str | float | None = None,
    clamp_log_ratio: float | None = None,
    level: float = 0.95,
    chunk_size: int = 4096,
    n_buckets: int = 4,
    flags: bool = False,
) -> None:
    """Validate the options of :func:`evaluate` up front; one-line ``ValueError`` naming the
    first bad option and its value. ``paths``: the dumps, if known (one at least).
    ``flags``: name the options by their flags of ``trm-bounds evaluate`` (its messages)."""

    def bad(api: str, cli: str) -> ValueError:
        return ValueError(cli if flags else api)

    from trm_bounds.masking import (
        STAT_OF_CRITERION,
        check_ln_params,
        check_threshold,
        criterion_parts,
    )

    if fmt not in FORMATS:
        raise bad(f"fmt must be one of {', '.join(FORMATS)}, got {fmt!r}",
                  f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")  # fmt: skip
    if paths is not None and not paths:
        raise bad("path: no dump given", "give a DUMP or --demo")
    try:
        check_ln_params(ln_delta, ln_eps)
    except ValueError as err:
        name = str(err).split()[0]  # ln_delta or ln_eps
        value = ln_delta if name == "ln_delta" else ln_eps
        raise bad(str(err), f"--{name.replace('_', '-')}: must be a finite positive number, "
                            f"got {value}") from None  # fmt: skip
    if isinstance(criteria, str):
        raise ValueError(f"criteria must be a list of names, got the string {criteria!r}")
    for c in criteria or ():
        if flags and not all(p in STAT_OF_CRITERION for p in c.split(",")):  # no blanks
            raise ValueError(f"--criterion: unknown criterion {c!r} "
                             f"(known: {', '.join(STAT_OF_CRITERION)})")  # fmt: skip
        criterion_parts(c)
    for k, v in (thresholds or {}).items():
        criterion_parts(k)
        check_threshold(k, v)
    if (rollout_rs is None) != (rollout_rs_threshold is None):
        both = ("rollout_rs", "rollout_rs_threshold")
        needed, given = both if rollout_rs is None else both[::-1]
        raise bad(f"{needed}: required with {given} (verl's rule)",
                  "--rollout-rs and --rollout-rs-threshold go together (verl's rule)")  # fmt: skip
    if clamp_log_ratio is not None and not (
        isinstance(clamp_log_ratio, (int, float)) and clamp_log_ratio > 0
    ):
        raise bad(f"clamp_log_ratio must be > 0, got {clamp_log_ratio!r}",
                  f"--clamp-log-ratio: must be > 0, got {clamp_log_ratio}")  # fmt: skip
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise bad(f"level must lie in (0, 1), got {level!r}",
                  f"--level: must lie in (0, 1), got {level}")  # fmt: skip
    for name, v in (("chunk_size", chunk_size), ("n_buckets", n_buckets)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise bad(f"{name} must be a positive integer, got {v!r}",
                      "--chunk-size and --buckets must be positive")  # fmt: skip


#: ``draw_figures(report, directory) -> paths``: draws figures from a loaded ``report.json``
#: into ``directory`` (e.g. :func:`trm_bounds.plot.evaluate.draw_report_figures`).
FigureDrawer = Callable[[dict[str, Any], Path], Sequence[Path]]


def evaluate(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fmt: str = "auto",
    thresholds: Mapping[str, float] | None = None,
    criteria: Sequence[str] | None = None,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    chunk_size: int = 4096,
    trust_pickle: bool = False,
    n_buckets: int = 4,
    draw_figures: FigureDrawer | None = None,
    progress: bool | None = None,
    prefetch: bool = True,
    float64: bool = False,
    level: float = 0.95,
    engine: str = "local",
    address: str | None = None,
    html: bool = True,
    rollout_rs: str | None = None,
    rollout_rs_threshold: str | float | None = None,
    clamp_log_ratio: float | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Evaluate a dump end to end and write the report files into ``out_dir``; return the report.

    Writes ``report.json`` (schema ``trm-bounds-report/v1``), ``report.md`` and
    ``sequences.csv``, plus the figures that ``draw_figures`` draws, if given (this module
    never imports a plotting library; the command line passes
    :func:`trm_bounds.plot.evaluate.draw_report_figures`).

    ``path``: a file, directory or glob, or a list of them (one dataset). Every option is
    validated before any work (:func:`check_options`, one-line ``ValueError``); an unusable
    ``out_dir`` (an existing file, a path under a file, not creatable or not writable) raises
    :class:`OutputDirError`. Bad input raises :class:`~trm_bounds.logs.LogFormatError`.
    Outputs are written into a temporary directory inside ``out_dir`` and moved into place
    only when everything succeeded, ``report.json`` last; an older ``report.json`` is removed
    first, and a failed run leaves nothing behind (directories it created are removed).
    ``prefetch``: load the next chunk in a background thread while the current one is
    evaluated (same results; peak memory three chunks instead of one: at most about 0.2 GB
    for float32 dumps and 0.4 GB for float64 at the chunk bound of
    :data:`~trm_bounds.logs.MAX_CELLS` cells). ``float64``: evaluate float32 dumps in float64
    arithmetic (see :func:`~trm_bounds.evaluate.chunk_stats`; slower). ``level``: confidence
    level of the ``certified`` section (docs/theory.md §9; per-sequence terms are kept, six
    float64 numbers a sequence, :mod:`trm_bounds.evaluate.certified`).
    ``engine``: ``"local"`` (this process) or ``"ray"`` (one Ray task per shard, merged here;
    :mod:`trm_bounds.evaluate.ray_engine`; ``address`` as for ``ray.init``: None starts a local
    cluster, ``"auto"`` or ``"ray://host:port"`` joins one). Same report, same decisions and
    counts; float sums agree to about ``2^-106`` relative. ``html``: also write the
    self-contained ``report.html`` (:mod:`trm_bounds.evaluate.html`).
    ``rollout_rs``/``rollout_rs_threshold``: verl's grammar (``"seq_max_k2,seq_mean_k3"``,
    ``"0.002,0.001"``; :func:`~trm_bounds.masking.parse_rollout_rs`), evaluated as one more
    criterion beside ``criteria``. ``clamp_log_ratio``: clip ``r`` to ``[-c, c]`` (20: verl's
    decisions exactly; default: a trainer ``-inf`` is an infinite divergence).
    ``overwrite``: an ``out_dir`` holding files is refused (:class:`OutputDirError`) unless
    set; then the earlier report files are replaced, and removed first, so a failed run
    leaves none of them behind. A dataset with no valid token is an error.
    """

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    check_options(
        fmt=fmt, paths=paths, thresholds=thresholds, criteria=criteria, ln_delta=ln_delta,
        ln_eps=ln_eps, rollout_rs=rollout_rs, rollout_rs_threshold=rollout_rs_threshold,
        clamp_log_ratio=clamp_log_ratio, level=level, chunk_size=chunk_size,
        n_buckets=n_buckets,
    )  # fmt: skip
    from trm_bounds.evaluate.ray_engine import ENGINES

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if rollout_rs is not None:
        from trm_bounds.masking import CRITERIA, parse_rollout_rs

        name, rs_th = parse_rollout_rs(rollout_rs, rollout_rs_threshold)
        base = criteria if criteria is not None else [c for c in CRITERIA if c != "seq_max_kl"]
        criteria = [*base, name]
        thresholds = {**(thresholds or {}), **rs_th}
    from trm_bounds.masking._tensors import cpu_threads

    with cpu_threads():  # one torch thread: a busy core costs little (CPU_THREADS)
        return _evaluate(
            paths, Path(out_dir), fmt=fmt, thresholds=thresholds, criteria=criteria,
            ln_delta=ln_delta, ln_eps=ln_eps, chunk_size=chunk_size, trust_pickle=trust_pickle,
            n_buckets=n_buckets, draw_figures=draw_figures, progress=progress,
            prefetch=prefetch, float64=float64, clamp_log_ratio=clamp_log_ratio,
            overwrite=overwrite, level=level, engine=engine, address=address, html=html,
        )  # fmt: skip


def _evaluate(paths: list, out: Path, **kw: Any) -> dict[str, Any]:
    """The body of :func:`evaluate` (options validated)."""
    from tqdm.auto import tqdm

    fmt, thresholds, criteria = kw["fmt"], kw["thresholds"], kw["criteria"]
    ln_delta, ln_eps, chunk_size = kw["ln_delta"], kw["ln_eps"], kw["chunk_size"]
    trust_pickle, n_buckets, draw_figures = kw["trust_pickle"], kw["n_buckets"], kw["draw_figures"]
    progress, prefetch, float64 = kw["progress"], kw["prefetch"], kw["float64"]
    clamp_log_ratio, overwrite = kw["clamp_log_ratio"], kw["overwrite"]
    level, engine, address, html = kw["level"], kw["engine"], kw["address"], kw["html"]
    if out.is_dir() and not overwrite:
        found = sorted(p.name for p in out.iterdir() if not p.name.startswith(".evaluate."))
        if found:
            raise OutputDirError(
                out, f"is not empty ({len(found)} entries, e.g. {found[0]}); pass --overwrite"
            )
    tmp, created = _prepare_out_dir(out)
    ok = False
    try:
        # no report file of an earlier run may survive a failed one
        for old in _OUTPUTS:
            (out / old).unlink(missing_ok=True)
        for pattern in _FIGURE_PATTERNS:
            for old in out.glob(pattern):
                old.unlink(missing_ok=True)
        total = count_sequences(paths, fmt=fmt)
        sink = _CsvSink(tmp)
        stats = Stats()
        terms = SequenceTerms()  # per-sequence X_i etc. for the certified section (O(N))
        try:
            quiet = progress is False or (progress is None and not sys.stderr.isatty())
            opts = dict(
                thresholds=thresholds, criteria=criteria, ln_delta=ln_delta, ln_eps=ln_eps,
                float64=float64, clamp_log_ratio=clamp_log_ratio,
            )  # fmt: skip
            if engine == "ray":
                from trm_bounds.evaluate.ray_engine import ray_chunks

                chunks = ray_chunks(
                    paths, fmt=fmt, chunk_size=chunk_size, trust_pickle=trust_pickle,
                    address=address, **opts,
                )  # fmt: skip
            else:
                batches = iter_batches(
                    paths, fmt=fmt, chunk_size=chunk_size, trust_pickle=trust_pickle
                )
                chunks = _local_chunks(_prefetch(batches) if prefetch else batches, opts)
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
                    stats = stats.merge(st)
                    terms.add(batch, cols)
                    sink.write(batch, cols)
                    bar.update(len(batch))
            if stats.n_sequences == 0:
                raise LogFormatError(paths[0], "file", None, "no sequences")
            if stats.n_tokens == 0:
                raise LogFormatError(
                    paths[0], "file", "response_mask",
                    f"{stats.n_sequences} sequences but zero valid response tokens",
                )  # fmt: skip
            sink.commit(tmp / "sequences.csv")
        except BaseException:
            sink.discard()
            raise
        report = build_report(
            stats,
            thresholds=thresholds,
            n_buckets=n_buckets,
            ln_delta=ln_delta,
            ln_eps=ln_eps,
            inputs=[str(p) for p in paths],
            terms=terms.arrays(),
            level=level,
        )
        text = json.dumps(to_jsonable(report), indent=1) + "\n"
        figs: list[Path] = []
        if draw_figures is not None:
            fig_dir = tmp / "figures"
            fig_dir.mkdir()
            figs = [Path(p) for p in draw_figures(json.loads(text), fig_dir)]
        atomic_write_text(tmp / "report.md", report_markdown(report, figs))
        if html:
            from trm_bounds.evaluate.html import report_html

            atomic_write_text(tmp / "report.html", report_html(report, figs))
        atomic_write_text(tmp / "report.json", text)
        # every output exists: give them the user's umask, move them into place, report.json last
        umask = os.umask(0o022)
        os.umask(umask)
        outputs = [*figs, tmp / "report.md", tmp / "sequences.csv"]
        outputs += [tmp / "report.html"] if html else []
        outputs += [tmp / "report.json"]
        for p in outputs:
            os.chmod(p, 0o666 & ~umask)  # mkstemp creates 0600
        for p in outputs:
            os.replace(p, out / p.name)
        ok = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            _remove_created(created)
    return report
