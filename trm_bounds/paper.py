"""The paper's printed numbers (``docs/theory.md §7``) beside what the toolkit computes.

The reference values below are typed from the paper's table "error bounds" (T = 4096)
and its length-bias table, as restated in ``docs/theory.md §7``; they are the *expected*
values, never inputs to a computation.  Everything in the "ours" columns is computed by
:mod:`trm_bounds.bounds`.

Rounding: the paper prints 3-4 significant digits.  A value printed as ``x`` with ``d``
decimals is reproduced when ``|ours - x| <= 0.5 * 10^-d`` ("rounded"), or, for the entries
``docs/theory.md §7`` lists as truncated, when ``x <= ours < x + 10^-d`` ("truncated").  An entry
printed as ``<= x`` is reproduced when ``ours <= x + 0.5 * 10^-d``.  Each yes/no is decided
only when ``ours`` lies at least a relative ``1e-8`` from the edges of its interval
(:data:`trm_bounds.margins.TEXT_GUARD`), so it reads the same on every CPU; else
:class:`~trm_bounds.margins.MarginError`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from trm_bounds.bounds import compute_bounds, kl_only, pm_kl_closed_form, pm_tv_closed_form
from trm_bounds.bounds.table import format_value
from trm_bounds.margins import TEXT_GUARD, MarginError

__all__ = [
    "T_PAPER",
    "PaperValue",
    "paper_table_rows",
    "length_bias",
    "LENGTH_BIAS_T",
    "LENGTH_BIAS_PAPER",
    "reproduced",
    "length_bias_rows",
    "paper_table",
    "format_paper_table",
]

#: The horizon of the paper's table.
T_PAPER = 4096
DELTA = 1e-4
DKL_SEQ = 0.01
#: The KL+TV column's extra measurements.
EPS_KLTV = 5e-3
DTV_SEQ_KLTV = 0.05


@dataclass(frozen=True)
class PaperValue:
    """One printed number: the row, the column, the paper's text and our two values."""

    row: str
    column: str
    bound: str  # key of compute_bounds, or a descriptive key for closed forms
    paper: float
    decimals: int
    relation: str  # "rounded", "truncated" or "upper" (printed as "<= x")
    ours: float
    ours_sharp: float
    note: str = ""

    @property
    def ok(self) -> bool:
        """Whether the published value reproduces the printed one (the paper's constants)."""
        return reproduced(self.ours, self.paper, self.decimals, self.relation)

    def value(self, *, sharp: bool = False) -> float:
        """Our value with the published constant, or the sharp one (``docs/theory.md §5``)."""
        return self.ours_sharp if sharp else self.ours


def reproduced(ours: float, paper: float, decimals: int, relation: str) -> bool:
    """Whether ``ours`` reproduces the printed ``paper`` value under the paper's rounding."""
    unit = 10.0 ** (-decimals)
    edges = {"rounded": (paper - 0.5 * unit, paper + 0.5 * unit), "truncated": (paper, paper + unit),
             "upper": (paper + 0.5 * unit,), "below": (paper,)}  # fmt: skip
    if relation not in edges:
        raise ValueError(f"unknown relation {relation!r}")
    for e in edges[relation]:
        if abs(ours - e) <= TEXT_GUARD * abs(e):
            raise MarginError(f"{ours!r} lies within a relative {TEXT_GUARD:g} of {e!r}, an edge "
                              f"of the paper's {paper:g} ({relation})")  # fmt: skip
    if relation == "rounded":
        return abs(ours - paper) <= 0.5 * unit
    if relation == "truncated":
        return paper <= ours < paper + unit
    if relation == "upper":
        return ours <= paper + 0.5 * unit
    return ours < paper


def _columns() -> dict[str, dict[str, float]]:
    eps_kl, dtv_kl = kl_only(DELTA, DKL_SEQ)
    return {
        "KL-only": dict(eps=eps_kl, delta=DELTA, dkl_seq=DKL_SEQ, dtv_seq=dtv_kl),
        "KL+TV": dict(eps=EPS_KLTV, delta=DELTA, dkl_seq=DKL_SEQ, dtv_seq=DTV_SEQ_KLTV),
    }


# (row label, bound key per column, printed value per column, decimals, relation)
_TABLE = (
    ("Classical", ("classical_kl", "classical_tv"), (1677.0, 839.0), 0, "rounded"),
    ("Coupling", ("coupling", "coupling"), (113.8, 79.9), 1, "rounded"),
    ("PM-KL", ("pm_kl", "pm_kl"), (35.0, 35.0), 1, "closed form"),
    ("PM-TV", ("pm_tv", "pm_tv"), (35.0, 24.7), 1, "closed form"),
    ("Mix-KL", ("mix_kl", "mix_kl"), (8.2, 8.2), 1, "rounded"),
    ("Mix-TV", ("mix_tv", "mix_tv"), (8.2, 4.1), 1, "rounded"),
    ("Adaptive hybrid (Dbar_t = eps)", ("adaptive_hybrid",) * 2, (35.0, 24.7), 1, "upper"),
    ("Unified B*", ("unified", "unified"), (8.2, 4.1), 1, "upper"),
)


def paper_table_rows() -> list[PaperValue]:
    """Every number of ``docs/theory.md §7`` with our published and sharp values.

    >>> rows = paper_table_rows()
    >>> all(r.ok for r in rows)
    True
    """
    cols = _columns()
    res = {c: compute_bounds(T_PAPER, **kw) for c, kw in cols.items()}
    res_sharp = {c: compute_bounds(T_PAPER, **kw, sharp=True) for c, kw in cols.items()}
    rows: list[PaperValue] = []
    for label, keys, printed, dec, rel in _TABLE:
        for col, key, val in zip(cols, keys, printed, strict=False):
            ours, ours_s, note, how = res[col][key], res_sharp[col][key], "", rel
            if rel == "closed form":
                # The paper prints the PM closed form (docs/theory.md §7), not the exact sum.
                kw = cols[col]
                cf = (pm_kl_closed_form(T_PAPER, delta=kw["delta"], sharp=s)
                      if key == "pm_kl" else
                      pm_tv_closed_form(T_PAPER, eps=kw["eps"], delta=kw["delta"], sharp=s)
                      for s in (False, True))
                ours, ours_s = (float(v) for v in cf)
                note = f"closed form; the exact sum is {res[col][key]:.3f}"
                how = "rounded"
            rows.append(PaperValue(label, col, key, val, dec, how, ours, ours_s, note))
    # The PM-KL closed form the paper quotes (34.95) beside the exact sum.
    rows.append(
        PaperValue("PM-KL closed form (4/3) T^{3/2} delta", "KL-only", "pm_kl_closed_form",
                   34.95, 2, "rounded", float(pm_kl_closed_form(T_PAPER, delta=DELTA)),
                   float(pm_kl_closed_form(T_PAPER, delta=DELTA, sharp=True)))
    )
    # Large divergence: delta = 1, D_KL^seq = 1 (KL-only measurements).
    eps1, dtv1 = kl_only(1.0, 1.0)
    big = compute_bounds(T_PAPER, eps=eps1, delta=1.0, dkl_seq=1.0, dtv_seq=dtv1)
    big_s = compute_bounds(T_PAPER, eps=eps1, delta=1.0, dkl_seq=1.0, dtv_seq=dtv1, sharp=True)
    col = "delta = 1, D_KL^seq = 1"
    rows += [
        PaperValue("Classical", col, "classical_kl", 1.68e7, -5, "rounded",
                   big["classical_kl"], big_s["classical_kl"]),
        PaperValue("Linear 4 T sqrt(delta/2)", col, "linear", 11585.0, 0, "rounded",
                   big["linear"], big_s["linear"]),
        PaperValue("PM without caps", col, "pm_kl_closed_form", 3.49e5, -3, "truncated",
                   float(pm_kl_closed_form(T_PAPER, delta=1.0)),
                   float(pm_kl_closed_form(T_PAPER, delta=1.0, sharp=True))),
        PaperValue("PM with caps", col, "pm_kl", 11582.0, 0, "rounded",
                   big["pm_kl"], big_s["pm_kl"]),
        PaperValue("Mixed", col, "mix_kl", 8192.0, 0, "rounded", big["mix_kl"], big_s["mix_kl"]),
    ]
    # Adaptive worst case at delta = 0.01 against the PM closed form.
    eps2, dtv2 = kl_only(0.01, 0.01)
    ad = compute_bounds(T_PAPER, eps=eps2, delta=0.01, dkl_seq=0.01, dtv_seq=dtv2)
    ad_s = compute_bounds(T_PAPER, eps=eps2, delta=0.01, dkl_seq=0.01, dtv_seq=dtv2, sharp=True)
    col = "delta = 0.01"
    rows += [
        PaperValue("Adaptive worst case (about)", col, "adaptive_kl", 1139.0, 0, "truncated",
                   ad["adaptive_kl"], ad_s["adaptive_kl"]),
        PaperValue("PM closed form (about)", col, "pm_kl_closed_form", 3495.0, 0, "rounded",
                   float(pm_kl_closed_form(T_PAPER, delta=0.01)),
                   float(pm_kl_closed_form(T_PAPER, delta=0.01, sharp=True))),
    ]
    # Headline: classical (KL-only) over unified (KL+TV), "about 409 times".
    head = res["KL-only"]["classical_kl"] / res["KL+TV"]["unified"]
    head_s = res_sharp["KL-only"]["classical_kl"] / res_sharp["KL+TV"]["unified"]
    rows.append(PaperValue("Headline classical / B*", "KL-only / KL+TV", "ratio", 409.0, 0,
                           "truncated", head, head_s))
    return rows


#: Horizons and the printed values of the length-bias table ``(1-p)^T`` (``docs/theory.md §7``).
LENGTH_BIAS_T = (256, 1024, 4096, 8192, 16384)
LENGTH_BIAS_PAPER: dict[float, tuple[tuple[float, int, str], ...]] = {
    1e-3: ((0.774, 3, "rounded"), (0.358, 3, "truncated"), (0.017, 3, "rounded"),
           (0.0003, 4, "rounded"), (1e-7, 7, "below")),
    1e-4: ((0.975, 3, "rounded"), (0.903, 3, "rounded"), (0.663, 3, "truncated"),
           (0.440, 3, "truncated"), (0.194, 3, "rounded")),
}


def length_bias(p: float, T: int) -> float:
    """TRM-Max acceptance ``(1-p)^T`` under i.i.d. violations (``docs/theory.md §6``), as
    ``exp(T log1p(-p))``.

    >>> round(length_bias(1e-4, 4096), 4)
    0.6639
    """
    return math.exp(T * math.log1p(-p))


def length_bias_rows() -> list[dict[str, Any]]:
    """Each printed entry of the length-bias table beside ``length_bias(p, T)``.

    Keys: ``p, T, paper, decimals, relation, ours, ok``.

    >>> all(r["ok"] for r in length_bias_rows())
    True
    """
    rows = []
    for p, printed in LENGTH_BIAS_PAPER.items():
        for T, (val, dec, rel) in zip(LENGTH_BIAS_T, printed, strict=True):
            ours = length_bias(p, T)
            rows.append({"p": p, "T": T, "paper": val, "decimals": dec, "relation": rel,
                         "ours": ours, "ok": reproduced(ours, val, dec, rel)})
    return rows


def paper_table(*, sharp: bool = False) -> dict[str, Any]:
    """Both tables of ``docs/theory.md §7`` as one JSON-able record.

    ``primary`` names the constant of each row's ``value`` (``"sharp"`` if ``sharp``, else
    ``"published"``); ``ok`` always judges the published value, the one the paper prints.
    Keys: ``primary``, ``table`` (each :class:`PaperValue` as a dict plus ``ok`` and
    ``value``), ``length_bias`` (:func:`length_bias_rows`), ``n_reproduced``, ``n_rows``,
    ``all_reproduced``.

    >>> rec = paper_table(sharp=True)
    >>> rec["primary"], rec["all_reproduced"], rec["n_reproduced"] == rec["n_rows"]
    ('sharp', True, True)
    """
    rows = paper_table_rows()
    bias = length_bias_rows()
    n_ok = sum(r.ok for r in rows)
    return {
        "primary": "sharp" if sharp else "published",
        "table": [{**asdict(r), "ok": r.ok, "value": r.value(sharp=sharp)} for r in rows],
        "length_bias": bias,
        "n_reproduced": n_ok,
        "n_rows": len(rows),
        "all_reproduced": n_ok == len(rows) and all(b["ok"] for b in bias),
    }


def format_paper_table(record: dict[str, Any]) -> str:
    """Both tables of ``docs/theory.md §7`` as text, from the record of :func:`paper_table`:
    the paper's number, ours (the record's ``primary`` constant first, then the other) and
    whether it is reproduced; then the length-bias table and the count reproduced.

    >>> format_paper_table(paper_table()).splitlines()[-1]
    "25/25 table entries reproduced under the paper's rounding."
    """
    sharp_first = record["primary"] == "sharp"
    first, second = ("sharp", "pub.") if sharp_first else ("pub.", "sharp")
    head = (f"{'row':<40} {'column':<24} {'paper':>10} {'ours (' + first + ')':>13} "
            f"{'ours (' + second + ')':>13}  status")
    out = [f"Paper's table 'error bounds', T = {T_PAPER} (docs/theory.md §7)", head,
           "-" * len(head)]
    for r in record["table"]:
        printed = f"{'<= ' if r['relation'] == 'upper' else ''}{r['paper']:g}"
        status = ("reproduced" if r["ok"] else "DIFFERS") + (
            f" ({r['relation']})" if r["relation"] != "rounded" else "")
        if r["note"]:
            status += f"; {r['note']}"
        a, b = (r["ours_sharp"], r["ours"]) if sharp_first else (r["ours"], r["ours_sharp"])
        out.append(f"{r['row']:<40} {r['column']:<24} {printed:>10} {format_value(a):>13} "
                   f"{format_value(b):>13}  {status}")
    out += ["", "Length bias (1-p)^T (docs/theory.md §6, §7)",
            f"{'p':<8}" + "".join(f"{'T=' + str(T):>25}" for T in LENGTH_BIAS_T)]
    for p in LENGTH_BIAS_PAPER:
        cells = []
        for b in (b for b in record["length_bias"] if b["p"] == p):
            paper = f"<{b['paper']:g}" if b["relation"] == "below" else f"{b['paper']:g}"
            cells.append(f"{paper:>8} vs {b['ours']:<9.4g}{'ok' if b['ok'] else 'DIFFERS':>3}")
        out.append(f"{p:<8g}" + "".join(f"{c:>25}" for c in cells))
    out += ["", f"{record['n_reproduced']}/{record['n_rows']} table entries reproduced under "
                "the paper's rounding."]
    return "\n".join(out)
