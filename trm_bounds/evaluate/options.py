"""The evaluator's options: one frozen object, validated once (docs/theory.md §6, §9).

:class:`EvaluateOptions` holds every option of :func:`~trm_bounds.evaluate.evaluate`,
:func:`~trm_bounds.evaluate.evaluate_run` and :func:`~trm_bounds.evaluate.compare`; it is
checked in ``__post_init__``, so an object that exists is valid. A bad option raises
:class:`OptionError`: one line naming the *field* (``n_buckets: must be ...``); the command
line translates the field into its flag (``--buckets: must be ...``) with ``err.field`` and
``err.detail``, so the library never speaks in flags and the CLI never re-validates.

>>> EvaluateOptions(n_buckets=8).n_buckets
8
>>> try:
...     EvaluateOptions(address="auto")
... except OptionError as err:
...     print(err.field, "|", err.detail)
address | only with engine 'ray' (the local engine joins no cluster)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trm_bounds.logs import FORMATS
from trm_bounds.masking import (
    CRITERIA,
    check_ln_params,
    check_threshold,
    criterion_parts,
    parse_rollout_rs,
)
from trm_bounds.masking.verl_rs import VERL_SAFETY_BOUND

__all__ = ["EvaluateOptions", "OptionError", "FigureDrawer", "MAX_BUCKETS", "ENGINES"]

#: Largest ``n_buckets``: length quantile buckets beyond this are below one sequence in ten
#: thousand at 10^7 sequences and only slow the report down (10^9 buckets never finished).
MAX_BUCKETS = 1000

#: Engines accepted by ``engine``: this process, or one Ray task per shard.
ENGINES = ("local", "ray")

#: ``draw_figures(report, directory) -> paths``: draws figures from a loaded ``report.json``
#: into ``directory`` (e.g. :func:`trm_bounds.plot.evaluate.draw_report_figures`).
FigureDrawer = Callable[[dict[str, Any], Path], Sequence[Path]]


class OptionError(ValueError):
    """A bad evaluator option: ``str(err)`` is ``"FIELD: DETAIL"``, one line."""

    def __init__(self, field_name: str, detail: str) -> None:
        self.field = field_name
        self.detail = detail
        super().__init__(f"{field_name}: {detail}")


def _positive_int(name: str, v: Any, *, upper: int | None = None) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise OptionError(name, f"must be a positive integer, got {v!r}")
    if upper is not None and v > upper:
        raise OptionError(name, f"must be at most {upper}, got {v}")


@dataclass(frozen=True)
class EvaluateOptions:
    """Every option of the evaluator; validated on construction (:class:`OptionError`).

    Reading: ``fmt`` (a key of :data:`~trm_bounds.logs.FORMATS`), ``chunk_size`` (sequences
    per chunk), ``trust_pickle``, ``prefetch`` (read the next chunk in a thread), ``engine``
    (:data:`ENGINES`) and ``address`` (Ray cluster, only with ``engine='ray'``).
    Criteria: ``thresholds`` (name -> value), ``criteria`` (names; None: all applicable),
    ``ln_delta``/``ln_eps`` (LN-TRM), ``rollout_rs``/``rollout_rs_threshold`` (verl's grammar,
    together or not at all), ``clamp_log_ratio`` (> 0), ``float64``.
    Certificate (docs/theory.md §9): ``level`` in (0, 1); ``max_response_length``: the
    generation limit, a positive integer known before the data (None: taken from the
    artifact where it fixes it, else no certified claim), ``max_response_length_source``
    saying where it came from (the report quotes it); ``reward_range``: ``(lo, hi)``,
    finite, ``lo < hi``, every logged reward must lie in it.
    Report: ``n_buckets`` (1 to :data:`MAX_BUCKETS`), ``html``, ``draw_figures``
    (:data:`FigureDrawer`), ``progress`` (None: when stderr is a terminal), ``overwrite``.
    """

    fmt: str = "auto"
    thresholds: Mapping[str, Any] | None = None
    criteria: Sequence[str] | None = None
    ln_delta: float = 0.05
    ln_eps: float | None = None
    rollout_rs: str | None = None
    rollout_rs_threshold: str | float | None = None
    clamp_log_ratio: float | None = None
    float64: bool = False
    level: float = 0.95
    max_response_length: int | None = None
    max_response_length_source: str = "the max_response_length option"
    reward_range: tuple[float, float] = (0.0, 1.0)
    chunk_size: int = 4096
    n_buckets: int = 4
    trust_pickle: bool = False
    prefetch: bool = True
    engine: str = "local"
    address: str | None = None
    html: bool = True
    draw_figures: FigureDrawer | None = field(default=None, compare=False)
    progress: bool | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise OptionError("fmt", f"{self.fmt!r} is not one of {', '.join(FORMATS)}")
        for name in ("ln_delta", "ln_eps"):
            v = getattr(self, name)
            try:
                check_ln_params(v if name == "ln_delta" else self.ln_delta,
                                v if name == "ln_eps" else None)  # fmt: skip
            except (ValueError, TypeError):
                raise OptionError(name, f"must be a finite positive number, got {v!r}") from None
        if isinstance(self.criteria, str):
            raise OptionError("criteria", f"a list of names, got the string {self.criteria!r}")
        for c in self.criteria or ():
            try:
                criterion_parts(c)
            except ValueError as err:
                raise OptionError("criteria", str(err)) from None
        for k, v in (self.thresholds or {}).items():
            try:
                criterion_parts(k)
                check_threshold(k, v)
            except ValueError as err:
                raise OptionError("thresholds", str(err)) from None
        if (self.rollout_rs is None) != (self.rollout_rs_threshold is None):
            needed = "rollout_rs" if self.rollout_rs is None else "rollout_rs_threshold"
            other = "rollout_rs_threshold" if self.rollout_rs is None else "rollout_rs"
            raise OptionError(needed, f"required with {other} (verl's rule)")
        if self.rollout_rs is not None:
            try:
                parse_rollout_rs(self.rollout_rs, self.rollout_rs_threshold)
            except ValueError as err:
                raise OptionError("rollout_rs", str(err)) from None
        c = self.clamp_log_ratio
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float))
                              or math.isnan(c) or c <= 0):  # fmt: skip
            raise OptionError("clamp_log_ratio", f"must be a number > 0 (inf: no clip), got {c!r}")
        lv = self.level
        if isinstance(lv, bool) or not isinstance(lv, (int, float)) or not 0 < lv < 1:
            raise OptionError("level", f"must lie in (0, 1), got {lv!r}")
        if self.max_response_length is not None:
            _positive_int("max_response_length", self.max_response_length)
        self._check_reward_range()
        _positive_int("chunk_size", self.chunk_size)
        _positive_int("n_buckets", self.n_buckets, upper=MAX_BUCKETS)
        if self.engine not in ENGINES:
            raise OptionError("engine", f"{self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.address is not None and self.engine != "ray":
            raise OptionError("address", "only with engine 'ray' (the local engine joins no "
                                         "cluster)")  # fmt: skip

    def _check_reward_range(self) -> None:
        rr = self.reward_range
        try:
            lo, hi = (float(v) for v in rr)
        except (TypeError, ValueError):
            raise OptionError("reward_range", f"two numbers LO HI, got {rr!r}") from None
        if any(isinstance(v, bool) for v in rr) or not (math.isfinite(lo) and math.isfinite(hi)):
            raise OptionError("reward_range", f"two finite numbers LO HI, got {rr!r}")
        if not lo < hi:
            raise OptionError("reward_range", f"needs LO < HI, got {lo:g} {hi:g}")
        object.__setattr__(self, "reward_range", (lo, hi))  # a tuple of floats, same values

    def replace(self, **changes: Any) -> EvaluateOptions:
        """A copy with ``changes`` (validated again)."""
        return dataclasses.replace(self, **changes)

    def chunk_options(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~trm_bounds.evaluate.stats.chunk_stats` (the ``opts``
        of :func:`~trm_bounds.evaluate.chunk.evaluate_chunk`): ``rollout_rs`` becomes one more
        criterion beside ``criteria`` (all applicable but ``seq_max_kl`` when not given)."""
        criteria = None if self.criteria is None else list(self.criteria)
        thresholds = dict(self.thresholds or {})
        if self.rollout_rs is not None:
            name, rs_th = parse_rollout_rs(self.rollout_rs, self.rollout_rs_threshold)
            base = criteria if criteria is not None else [c for c in CRITERIA if c != "seq_max_kl"]
            criteria = [*base, name]
            thresholds.update(rs_th)
        return {"thresholds": thresholds or None, "criteria": criteria,
                "ln_delta": self.ln_delta, "ln_eps": self.ln_eps, "float64": self.float64,
                "clamp_log_ratio": self.clip()}  # fmt: skip

    def clip(self) -> float | None:
        """The clip of ``r = log(pi_theta/pi_roll)`` the statistics use: ``clamp_log_ratio`` when
        given (``inf``: none); else verl's 20 (:data:`VERL_SAFETY_BOUND`) when verl's grammar is
        asked for (``rollout_rs``), so its decisions are verl's; else none (a trainer logprob of
        ``-inf`` is infinite divergence).

        >>> EvaluateOptions(rollout_rs="token_k1", rollout_rs_threshold="0.5_2.0").clip()
        20.0
        >>> EvaluateOptions(rollout_rs="token_k1", rollout_rs_threshold="0.5_2.0",
        ...                 clamp_log_ratio=float("inf")).clip() is None
        True
        """
        c = self.clamp_log_ratio
        if c is None:
            return VERL_SAFETY_BOUND if self.rollout_rs is not None else None
        return None if math.isinf(c) else float(c)

