r"""TRM criteria, their thresholds and the accept/reject decision (docs/theory.md §6).

A basic criterion compares one per-sequence statistic of
:func:`~trm_bounds.masking.sequence_stats` with a threshold; verl's grammar joins basic
criteria with a comma (``"seq_max_k2,seq_mean_k3"``: every part must accept).
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
    "STAT_OF_CRITERION",
    "criterion_parts",
    "check_threshold",
    "parse_threshold",
    "decide",
]

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

#: The statistic of :func:`~trm_bounds.masking.sequence_stats` each basic criterion compares
#: with its threshold.
STAT_OF_CRITERION: dict[str, str] = {
    "seq_max_k2": "k2_max",
    "seq_mean_k3": "k3_mean",
    "ser": "ser",
    "ln_trm": "ln_trm",
    "seq_max_kl": "kl_max",
}


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


def check_threshold(name: str, value: float) -> float:
    """``float(value)`` if it is a finite number ``>= 0``, else a one-line ``ValueError``.

    >>> check_threshold("ser", 0.1)
    0.1
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"threshold {name}: {value!r} is not a number") from None
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"threshold {name}: must be finite and >= 0, got {v}")
    return v


def parse_threshold(text: str) -> tuple[str, float]:
    """Parse a ``NAME=VALUE`` threshold override (``NAME`` may be comma-joined).

    >>> parse_threshold("seq_max_k2=1e-3")
    ('seq_max_k2', 0.001)
    """
    name, sep, value = str(text).partition("=")
    if not sep:
        raise ValueError(f"threshold expects NAME=VALUE, got {text!r}")
    criterion_parts(name)
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"threshold {name}: {value!r} is not a number") from None
    return name, check_threshold(name, v)


def decide(
    stats: Mapping[str, torch.Tensor],
    thresholds: Mapping[str, float] | None = None,
    criteria: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    r"""Accept/reject decisions per criterion (docs/theory.md §6); True = accepted.

    A basic criterion accepts sequence ``i`` iff its statistic is at most the threshold:
    ``seq_max_k2``: ``max_t r_t^2/2 <= delta``; ``seq_mean_k3``: ``mean_t k3 <= delta_avg``;
    ``ser``: ``mean_t |rho_t - 1| <= delta_SER``; ``ln_trm``: ``W/Z <= delta_W``;
    ``seq_max_kl``: ``max_t KL(c_t) <= delta``. A comma-joined name (verl's grammar, e.g.
    ``"seq_max_k2,seq_mean_k3"``) accepts iff every part accepts, each with its own threshold.
    A NaN statistic is rejected.

    Args:
        stats: output of :func:`~trm_bounds.masking.sequence_stats`.
        thresholds: overrides of :data:`DEFAULT_THRESHOLDS` by (comma-joined) criterion name;
            each value must be finite and ``>= 0``.
        criteria: names to decide; default every name of :data:`CRITERIA` whose statistics
            are present (``seq_max_kl`` needs ``kl_max``).

    Returns:
        ``{name: (B,) bool tensor}``.

    >>> import torch
    >>> d = decide({"k2_max": torch.tensor([0.01, 0.2]), "k3_mean": torch.tensor([0.0, 0.0])},
    ...            criteria=["seq_max_k2", "seq_max_k2,seq_mean_k3"])
    >>> d["seq_max_k2"].tolist(), d["seq_max_k2,seq_mean_k3"].tolist()
    ([True, False], [True, False])
    """
    th = dict(DEFAULT_THRESHOLDS)
    if thresholds:
        for k, v in thresholds.items():
            for p in criterion_parts(k):
                th[p] = check_threshold(k, v)
    if criteria is None:
        criteria = [c for c in CRITERIA if all(STAT_OF_CRITERION[p] in stats for p in c.split(","))]
    out: dict[str, torch.Tensor] = {}
    cache: dict[str, torch.Tensor] = {}
    for name in criteria:
        acc = None
        for p in criterion_parts(name):
            if p not in cache:
                key = STAT_OF_CRITERION[p]
                if key not in stats:
                    raise ValueError(f"criterion {p!r} needs statistic {key!r}, not in stats")
                cache[p] = stats[key] <= th[p]
            acc = cache[p] if acc is None else acc & cache[p]
        out[name] = acc
    return out
