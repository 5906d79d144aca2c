"""What the evaluator's reports say in words (docs/theory.md §6, §9): the one-line headline,
a one-line meaning and unit for every raw id, and one way of printing rates.

Shared by ``report.md`` (:mod:`trm_bounds.evaluate.report`), ``report.html``
(:mod:`trm_bounds.evaluate.html`) and the run and comparison pages
(:mod:`trm_bounds.evaluate.runs`), so a number reads the same in each.

>>> percent(0.8125)
'81.2%'
>>> for part in meaning("seq_max_k2,seq_mean_k3").split(" AND "):
...     print(part)
largest r^2/2 over the tokens of a sequence (nats)
mean over the tokens of a sequence of k3 = e^r - 1 - r (nats per token)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["METRICS", "STATISTICS", "meaning", "percent", "headline", "version_line"]

#: ``metric id -> (meaning, unit)`` of ``report.json``'s ``metrics`` (r = log pi_theta/pi_roll
#: on a sampled token, rho = e^r).
METRICS: dict[str, tuple[str, str]] = {
    "log_ppl_abs_diff": ("mean over sequences of |log-perplexity under theta - under roll|, "
                         "i.e. |mean over the sequence's tokens of r|", "nats per token"),
    "k3_mean": ("mean over trained tokens of k3 = e^r - 1 - r, the unbiased estimate of the "
                "per-token KL(roll || theta)", "nats per token"),
    "k2_max": ("largest r^2/2 over all trained tokens (a plug-in value, not a bound)", "nats"),
    "ser_mean": ("mean over sequences of the mean |rho - 1| over its tokens (SER)",
                 "dimensionless"),
}  # fmt: skip

#: ``statistic or criterion part -> (meaning, unit)``; a criterion accepts a sequence when its
#: statistic is at most the threshold (``k1``: within the ratio range).
STATISTICS: dict[str, tuple[str, str]] = {
    "seq_max_k2": ("largest r^2/2 over the tokens of a sequence", "nats"),
    "seq_max_k3": ("largest k3 = e^r - 1 - r over the tokens of a sequence", "nats"),
    "seq_mean_k3": ("mean over the tokens of a sequence of k3 = e^r - 1 - r",
                    "nats per token"),
    "seq_mean_k2": ("mean over the tokens of a sequence of r^2/2", "nats per token"),
    "seq_mean_k1": ("mean over the tokens of a sequence of -r (ratio range)", "nats per token"),
    "seq_sum_k1": ("sum over the tokens of a sequence of -r (ratio range)", "nats"),
    "seq_sum_k2": ("sum over the tokens of a sequence of r^2/2", "nats"),
    "seq_sum_k3": ("sum over the tokens of a sequence of k3 = e^r - 1 - r", "nats"),
    "token_k1": ("every token's -r within the ratio range", "nats"),
    "token_k2": ("every token's r^2/2", "nats"),
    "token_k3": ("every token's k3 = e^r - 1 - r", "nats"),
    "ser": ("SER: mean over the tokens of a sequence of |rho - 1|", "dimensionless"),
    "ln_trm": ("LN-TRM score: length-normalised divergence of the sequence", "dimensionless"),
    "seq_max_kl": ("largest exact per-context KL(roll || theta) over the sequence (needs "
                   "logits or top-k)", "nats"),
    "k2_max": ("largest r^2/2 over the tokens of a sequence", "nats"),
    "k3_mean": ("mean over the tokens of a sequence of k3 = e^r - 1 - r", "nats per token"),
    "kl_max": ("largest exact per-context KL over the sequence", "nats"),
    "abs_log_ppl_diff": ("|log-perplexity difference| of a sequence", "nats per token"),
}  # fmt: skip


def meaning(name: str) -> str:
    """One line: what a metric, statistic or (comma-joined) criterion id means, with its unit."""
    if name in METRICS:
        text, unit = METRICS[name]
        return f"{text} ({unit})"
    parts = []
    for p in name.split(","):
        text, unit = STATISTICS.get(p, (p, "?"))
        parts.append(f"{text} ({unit})")
    return " AND ".join(parts)


def percent(rate: float) -> str:
    """A rate in [0, 1] as a percent with one decimal: the one way rates are printed."""
    return f"{100 * rate:.1f}%" if math.isfinite(rate) else "-"


def version_line(version: str, git_hash: str | None) -> str:
    """``trm-bounds VERSION`` and the commit only when known (never ``git None``)."""
    return f"trm-bounds {version}" + (f", git {git_hash[:12]}" if git_hash else "")


def headline(report: Mapping[str, Any]) -> str:
    """The one line a team lead reads: the mismatch, what the masks keep, the certified bound
    and whether it says anything (or that there is none, and what to pass)."""
    m = report["metrics"]
    mismatch = (f"mismatch: mean per-token KL estimate {m['k3_mean']:.2g} nats, "
                f"|log-ppl gap| {m['log_ppl_abs_diff']:.2g} nats/token")  # fmt: skip
    rates = [d["acceptance_rate"] for d in report["criteria"].values()]
    if rates:
        lo, hi = min(rates), max(rates)
        keep = (f"masks keep {percent(lo)}" if lo == hi
                else f"masks keep {percent(lo)} to {percent(hi)}") + " of sequences"
    else:
        keep = "no mask evaluated"
    cert = report.get("certified")
    if cert is None:
        claim = "no certified bound computed"
    elif not cert.get("computed", True):
        claim = "no certified bound: the generation limit is unknown (pass --max-response-length)"
    else:
        b = cert["proved_here"]["bound"]
        v = report.get("verdict", {}).get("status", "vacuous" if cert["vacuous"] else
                                          "informative")  # fmt: skip
        claim = f"certified |Error| <= {b:.3g} at level {cert['level']:g} ({v})"
    return f"{mismatch}; {keep}; {claim}."
