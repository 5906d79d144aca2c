"""Claims about the paper's printed numbers (``docs/theory.md §7``): every entry of its table
"error bounds" and the 409x headline (:func:`trm_bounds.paper.paper_table_rows`), the
length-bias table ``(1-p)^T`` (§6) and the committed acceptance simulation of F6.
"""

from __future__ import annotations

import json
from pathlib import Path

from trm_bounds.claims.rows import SELF, Row, num
from trm_bounds.margins import MarginError
from trm_bounds.paper import (
    LENGTH_BIAS_PAPER,
    LENGTH_BIAS_T,
    length_bias,
    paper_table_rows,
    reproduced,
)

__all__ = ["table", "length_bias_claims"]


def table(results: Path) -> tuple[list[Row], bool]:
    """docs/theory.md §7: every printed number of the paper's table (via trm_bounds.paper)."""
    cmd = "python -m trm_bounds bounds --paper-table"
    rows, ok = [], True
    for r in paper_table_rows():
        ok &= r.ok
        printed = ("<= " if r.relation == "upper" else "") + f"{r.paper:.4g}"
        why = {
            "rounded": "reproduced",
            "truncated": "reproduced (the paper truncates)",
            "upper": "reproduced (worst case Dbar_t = eps is below the printed bound)",
        }[r.relation]
        if r.note:
            why += f"; {r.note}"
        if r.row == "Classical" and r.column == "KL+TV":
            why += "; TV form 2T(T-1)eps^2 (the KL form stays 1677)"
        label = f"Table: {r.row} ({r.column})"
        if r.bound == "ratio":
            label = "Headline: Classical (KL-only) / B* (KL+TV), 'about 409x'"
        ours = f"{num(r.ours, 6, what=label)} (sharp {num(r.ours_sharp, 6, what=label)})"
        rows.append(Row(label, cmd, ours, printed, why if r.ok else "differs"))
    return rows, ok


def length_bias_claims(results: Path) -> tuple[list[Row], bool]:
    """docs/theory.md §6-§7: TRM-Max acceptance (1-p)^T, the paper's table, and the simulation
    of ``results/bound_scaling.json`` (figure F6) when present."""
    cmd = f"{SELF} --claim length-bias"
    rows, ok = [], True
    for p, printed in LENGTH_BIAS_PAPER.items():
        ours = [length_bias(p, T) for T in LENGTH_BIAS_T]
        paper = [("< " if rel == "below" else "") + f"{v:g}" for v, _, rel in printed]
        trunc = [f"{v:g}" for (v, _, rel) in printed if rel == "truncated"]
        ok &= all(reproduced(o, v, d, rel) for o, (v, d, rel) in zip(ours, printed, strict=True))
        status = "reproduced" + (f" (the paper truncates {', '.join(trunc)})" if trunc else "")
        rows.append(
            Row(f"Length bias (1-p)^T, p = {p:g}, T = {', '.join(map(str, LENGTH_BIAS_T))}",
                cmd, ", ".join(num(o, 4, what=f"(1-{p:g})^T") for o in ours), ", ".join(paper),
                status)
        )  # fmt: skip
    sim = _simulation_row(Path(results) / "bound_scaling.json", cmd)
    if sim is not None:
        rows.append(sim[0])
        ok &= sim[1]
    return rows, ok


def _simulation_row(path: Path, cmd: str) -> tuple[Row, bool] | None:
    """TRM-Max / SER / LN-TRM acceptance against T from a bound_scaling.json.

    "(1-p)^T inside the 95% interval" is decided with a margin: the expected value must lie at
    least a relative 1e-6 (of the interval's width) inside or outside each end."""
    if not path.is_file():
        return None
    sim = json.loads(path.read_text()).get("length_bias", {}).get("simulation")
    if not sim:
        return None
    T = sim["T"]
    acc = sim["acceptance"]
    lo, hi = sim["ci_low"]["seq_max_k2"], sim["ci_high"]["seq_max_k2"]
    exp = sim["expected_trm_max"]
    inside = True
    for a, e, b in zip(lo, exp, hi, strict=True):
        guard = 1e-6 * max(b - a, 1e-12)
        if min(abs(e - a), abs(e - b)) <= guard:
            raise MarginError(f"{path}: (1-p)^T = {e!r} within {guard:.2g} of its interval's end")
        inside &= a < e < b

    n = int(sim["n_sequences"])

    def count(x: float, what: str) -> int:
        """An acceptance rate as the count it is (``k / n`` exactly, so a rounded rate could
        sit on a rounding boundary: 398/400 = 0.995); it must be a relative 1e-6 from an
        integer once multiplied by ``n``."""
        k = round(x * n)
        if abs(x * n - k) > 1e-6 * n:
            raise MarginError(f"{path}: {what} rate {x!r} is not a count out of {n}")
        return k

    def span(key: str, label: str) -> str:
        return f"{label} {count(acc[key][0], label)} -> {count(acc[key][-1], label)}"

    text_ = (
        f"T = {T[0]} -> {T[-1]}, sequences accepted of {n}: {span('seq_max_k2', 'TRM-Max')} "
        f"((1-p)^T inside its 95% interval at {'every' if inside else 'not every'} T), "
        f"{span('ser', 'SER')}, {span('ln_trm', 'LN-TRM')} (p = {sim['p']:g}; figure F6)"
    )
    return (
        Row("TRM-Max is length-biased; SER and LN-TRM are length-neutral", cmd, text_,
            "(1-p)^T; SER, LN-TRM neutral", "reproduced"),
        inside,
    )  # fmt: skip
