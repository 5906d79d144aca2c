r"""TRM criteria, their thresholds and the accept/reject decision (docs/theory.md §6).

A basic criterion compares one per-sequence statistic of
:func:`~trm_bounds.masking.sequence_stats` with a threshold; verl's grammar joins basic
criteria with a comma (``"seq_max_k2,seq_mean_k3"``: every part must accept).

Every rejection criterion of verl 0.9.1 (``rollout_corr_helper.compute_rollout_rejection_mask``)
is a basic criterion here, decided at the sequence level (a sequence is accepted iff verl keeps
every one of its valid tokens), with verl's statistics on the token log-ratio
``r_t = log pi_theta - log pi_roll``: ``k1 = -r``, ``k2 = r^2/2``, ``k3 = e^r - 1 - r``;
``seq_sum_*`` the sum over valid tokens, ``seq_mean_*`` that sum over ``T_i + 1e-8`` (verl's
``masked_mean``), ``seq_max_*`` the maximum, ``token_*`` every token. ``k2``/``k3`` criteria
take an upper threshold (accept iff ``stat <= u``); ``k1`` criteria a ratio range
``(lower, upper)`` (accept iff ``log lower <= stat <= log upper``; a single value ``u`` means
``(1/u, u)``, verl's rule). The one deliberate difference: verl clips ``r`` to ``[-20, 20]``
first, we do not unless asked (``clamp_log_ratio=20`` in
:func:`~trm_bounds.masking.sequence_stats`), so a trainer logprob of ``-inf`` is an infinite
divergence here, a finite one (``k2 = 200``) in verl.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CRITERIA",
    "VERL_CRITERIA",
    "STAT_OF_CRITERION",
    "criterion_parts",
    "check_threshold",
    "parse_threshold",
    "parse_rollout_rs",
    "needs_k2_sum",
    "decide",
]

#: A threshold: an upper bound, or for ``*_k1`` criteria a ratio range ``(lower, upper)``.
Threshold = float | tuple[float, float]

#: The paper's default thresholds (docs/theory.md §6): 0.05 for the max criteria, 0.001 for
#: ``seq_mean_k3``, 0.05 for SER and LN-TRM.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "seq_max_k2": 0.05,
    "seq_mean_k3": 0.001,
    "ser": 0.05,
    "ln_trm": 0.05,
    "seq_max_kl": 0.05,
}

#: Criterion names, verl's grammar; a comma joins criteria that must all accept.
CRITERIA: tuple[str, ...] = (
    "seq_max_k2",
    "seq_mean_k3",
    "seq_max_k2,seq_mean_k3",
    "ser",
    "ln_trm",
    "seq_max_kl",
)

#: verl 0.9.1's rejection criteria (``SUPPORTED_ROLLOUT_RS_OPTIONS``).
VERL_CRITERIA: tuple[str, ...] = (
    "token_k1", "token_k2", "token_k3",
    "seq_sum_k1", "seq_sum_k2", "seq_sum_k3",
    "seq_mean_k1", "seq_mean_k2", "seq_mean_k3",
    "seq_max_k2", "seq_max_k3",
)  # fmt: skip

#: The statistic of :func:`~trm_bounds.masking.sequence_stats` each basic criterion compares
#: with its threshold (the one with a histogram in the report; ``k1`` criteria and the sums
#: are decided from ``r_sum``/``r_max``/``r_min``/``k2_sum``/``k3_sum``).
STAT_OF_CRITERION: dict[str, str] = {
    "seq_max_k2": "k2_max",
    "seq_mean_k3": "k3_mean",
    "ser": "ser",
    "ln_trm": "ln_trm",
    "seq_max_kl": "kl_max",
    "seq_max_k3": "k3_max",
    "token_k2": "k2_max",
    "token_k3": "k3_max",
    "token_k1": "r_max",
    "seq_sum_k1": "r_sum",
    "seq_sum_k2": "k2_sum",
    "seq_sum_k3": "k3_sum",
    "seq_mean_k1": "r_sum",
    "seq_mean_k2": "k2_sum",
}


def needs_k2_sum(criteria: Iterable[str]) -> bool:
    """Whether any criterion needs ``k2_sum`` (pass ``k2_sum=True`` to ``sequence_stats``)."""
    return any(p in ("seq_sum_k2", "seq_mean_k2") for c in criteria for p in criterion_parts(c))


def criterion_parts(name: str) -> list[str]:
    """The basic criteria of a (comma-joined) criterion name; ``ValueError`` if unknown.

    >>> criterion_parts("seq_max_k2,seq_mean_k3")
    ['seq_max_k2', 'seq_mean_k3']
    """
    parts = [p.strip() for p in str(name).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty criterion name {name!r}")
    for p in parts:
        if p not in STAT_OF_CRITERION:
            raise ValueError(
                f"unknown criterion {p!r} in {name!r}; known: {', '.join(STAT_OF_CRITERION)}"
            )
    return parts


def check_threshold(name: str, value: object) -> Threshold:
    """A validated threshold of criterion ``name``; one-line ``ValueError`` otherwise.

    Upper thresholds: a finite number ``>= 0``. ``*_k1`` criteria: a ratio range
    ``(lower, upper)`` with ``0 < lower <= upper`` finite, given as a pair, verl's string
    ``"lower_upper"``, or one number ``u`` meaning ``(1/u, u)``.

    >>> check_threshold("ser", 0.1), check_threshold("token_k1", "0.5_2"), check_threshold("seq_sum_k1", 2)
    (0.1, (0.5, 2.0), (0.5, 2.0))
    """
    parts = [p.strip() for p in str(name).split(",")]
    if any(p.endswith("_k1") for p in parts):
        if isinstance(value, str) and "_" in value:
            value = tuple(value.split("_", 1))
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(f"threshold {name}: expects (lower, upper), got {value!r}")
            lo, hi = (_number(name, v) for v in value)
        else:
            hi = _number(name, value)
            lo = 1.0 / hi if hi > 0 else -1.0
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(f"threshold {name}: needs finite 0 < lower <= upper, got {lo}, {hi}")
        return (lo, hi)
    if isinstance(value, str) and "_" in value:
        raise ValueError(f"threshold {name}: a single upper bound without '_', got {value!r}")
    v = _number(name, value)
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"threshold {name}: must be finite and >= 0, got {v}")
    return v


def _number(name: str, value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"threshold {name}: {value!r} is not a number") from None


def parse_threshold(text: str) -> tuple[str, Threshold]:
    """Parse a ``NAME=VALUE`` threshold override (``NAME`` may be comma-joined; ``*_k1``
    criteria also take verl's ``lower_upper``).

    >>> parse_threshold("seq_max_k2=1e-3"), parse_threshold("token_k1=0.5_2")
    (('seq_max_k2', 0.001), ('token_k1', (0.5, 2.0)))
    """
    name, sep, value = str(text).partition("=")
    if not sep:
        raise ValueError(f"threshold expects NAME=VALUE, got {text!r}")
    criterion_parts(name)
    return name, check_threshold(name, value.strip())


def parse_rollout_rs(
    rollout_rs: str, rollout_rs_threshold: str | float
) -> tuple[str, dict[str, Threshold]]:
    """verl's ``rollout_rs`` / ``rollout_rs_threshold`` pair -> ``(criterion, thresholds)``.

    ``rollout_rs`` is a comma-separated list of :data:`VERL_CRITERIA` (duplicates dropped,
    order kept); ``rollout_rs_threshold`` one comma-separated entry per option, or one entry
    shared by all (verl's rules, :func:`check_threshold` per entry).

    >>> parse_rollout_rs("seq_max_k2,seq_mean_k3", "0.002,0.001")
    ('seq_max_k2,seq_mean_k3', {'seq_max_k2': 0.002, 'seq_mean_k3': 0.001})
    """
    opts: list[str] = []
    for o in (p.strip() for p in str(rollout_rs).split(",")):
        if o and o not in VERL_CRITERIA:
            raise ValueError(
                f"rollout_rs: unknown option {o!r}; verl's: {', '.join(VERL_CRITERIA)}"
            )
        if o and o not in opts:
            opts.append(o)
    if not opts:
        raise ValueError(f"rollout_rs: no option in {rollout_rs!r}")
    specs = [p.strip() for p in str(rollout_rs_threshold).split(",") if p.strip()]
    if len(specs) == 1:
        specs = specs * len(opts)
    if len(specs) != len(opts):
        raise ValueError(
            f"rollout_rs_threshold: {len(specs)} entries for {len(opts)} options "
            f"({rollout_rs!r}); give one shared or one per option"
        )
    th = {}
    for o, v in zip(opts, specs, strict=True):
        t = check_threshold(o, v)
        if not o.endswith("_k1") and not t > 0:
            raise ValueError(f"rollout_rs_threshold {o}: must be > 0 (verl), got {t}")
        th[o] = t
    return ",".join(opts), th


def _accept(p: str, stats: Mapping[str, torch.Tensor], t: Threshold) -> torch.Tensor:
    """Sequence-level acceptance of basic criterion ``p`` at threshold ``t`` (True = kept)."""

    def need(key: str) -> torch.Tensor:
        if key not in stats:
            raise ValueError(f"criterion {p!r} needs statistic {key!r}, not in stats")
        return stats[key]

    if p.endswith("_k1"):
        lo, hi = math.log(t[0]), math.log(t[1])  # type: ignore[index]
        if p == "token_k1":  # every valid token: log lo <= -r_t <= log hi
            if not lo <= 0.0 <= hi:
                raise ValueError(
                    f"criterion token_k1: the ratio range {t} must contain 1 "
                    "(padding counts as r = 0 in r_max/r_min)"
                )
            return (need("r_max").neg() >= lo) & (need("r_min").neg() <= hi)
        stat = need("r_sum").neg()
        if p == "seq_mean_k1":
            stat = stat / (need("length").to(stat.dtype) + 1e-8)
        return (stat >= lo) & (stat <= hi)
    u = t
    if p == "seq_mean_k3" and not ("k3_sum" in stats and "length" in stats):
        return need("k3_mean") <= u  # hand-built stats: the mean itself
    if p in ("seq_mean_k2", "seq_mean_k3"):
        key = "k2_sum" if p.endswith("k2") else "k3_sum"
        stat = need(key)
        return stat / (need("length").to(stat.dtype) + 1e-8) <= u
    return need(STAT_OF_CRITERION[p]) <= u


def decide(
    stats: Mapping[str, torch.Tensor],
    thresholds: Mapping[str, object] | None = None,
    criteria: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    r"""Accept/reject decisions per criterion (docs/theory.md §6); True = accepted.

    A basic criterion accepts sequence ``i`` iff its statistic is at most the threshold:
    ``seq_max_k2``: ``max_t r_t^2/2 <= delta``; ``seq_mean_k3``:
    ``sum_t k3 / (T_i + 1e-8) <= delta_avg`` (verl's mean); ``ser``:
    ``mean_t |rho_t - 1| <= delta_SER``; ``ln_trm``: ``W/Z <= delta_W``; ``seq_max_kl``:
    ``max_t KL(c_t) <= delta``; every other name of :data:`VERL_CRITERIA` as verl decides it
    (module docstring; ``k1`` criteria accept iff the statistic lies in the log ratio range).
    A comma-joined name (verl's grammar, e.g. ``"seq_max_k2,seq_mean_k3"``) accepts iff every
    part accepts, each with its own threshold. A NaN statistic is rejected.

    Args:
        stats: output of :func:`~trm_bounds.masking.sequence_stats` (``k2_sum=True`` for
            ``seq_sum_k2``/``seq_mean_k2``).
        thresholds: overrides of :data:`DEFAULT_THRESHOLDS` by (comma-joined) criterion name
            (:func:`check_threshold`); verl's criteria outside the defaults need one.
        criteria: names to decide; default every name of :data:`CRITERIA` whose statistics
            are present (``seq_max_kl`` needs ``kl_max``).

    Returns:
        ``{name: (B,) bool tensor}``.

    >>> import torch
    >>> d = decide({"k2_max": torch.tensor([0.01, 0.2]), "k3_mean": torch.tensor([0.0, 0.0]),
    ...             "k3_sum": torch.tensor([0.0, 0.0]), "length": torch.tensor([3, 3])},
    ...            criteria=["seq_max_k2", "seq_max_k2,seq_mean_k3"])
    >>> d["seq_max_k2"].tolist(), d["seq_max_k2,seq_mean_k3"].tolist()
    ([True, False], [True, False])
    """
    th: dict[str, Threshold] = dict(DEFAULT_THRESHOLDS)
    if thresholds:
        for k, v in thresholds.items():
            for p in criterion_parts(k):
                th[p] = check_threshold(p, v)
    if criteria is None:
        criteria = [c for c in CRITERIA if all(STAT_OF_CRITERION[p] in stats for p in c.split(","))]
    out: dict[str, torch.Tensor] = {}
    cache: dict[str, torch.Tensor] = {}
    for name in criteria:
        acc = None
        for p in criterion_parts(name):
            if p not in cache:
                if p not in th:
                    raise ValueError(f"criterion {p!r} has no default threshold: give one")
                cache[p] = _accept(p, stats, th[p])
            acc = cache[p] if acc is None else acc & cache[p]
        out[name] = acc
    return out
