r"""Every claim of the paper, checked: the numbers of ``paper_repro.md``.

Each claim group is a function returning table rows ``(claim, command, ours, paper, status)``
and whether every check of the group passed.  ``ours`` is always computed here (from
:mod:`trm_bounds.bounds`, the exact engine :mod:`trm_bounds.engines.tree`,
:mod:`trm_bounds.masking` or a committed result file), never typed from the paper; ``paper`` comes from
:mod:`trm_bounds.paper` (the printed numbers, typed there once) or states the paper's claim.

Usage::

    python experiments/paper_repro_numbers.py --claim theorems   # one group; exit 1 if it fails
    python experiments/paper_repro_numbers.py --write            # regenerate paper_repro.md
    python experiments/paper_repro_numbers.py --check            # exit 1 if paper_repro.md is stale

Staleness (:func:`stale_rows`): every row must match paper_repro.md digit for digit, except
the rows marked as coming from trained transformers (:attr:`Row.trained`, marked † in the
file), whose numbers may move between machines (:data:`TRAINED_FACTOR`).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trm_bounds.bounds import BOUND_NAMES, compute_bounds, kl_only
from trm_bounds.divergences import kl, tv
from trm_bounds.paper import LENGTH_BIAS_PAPER, LENGTH_BIAS_T, length_bias, paper_table_rows
from trm_bounds.studies import bound_scaling
from trm_bounds.studies._fit import fit_slope

ROOT = Path(__file__).resolve().parents[1]
REPRO_MD = ROOT / "paper_repro.md"
SELF = "python experiments/paper_repro_numbers.py"

#: Section-4 names of the bounds as the paper's theorems state them.
THEOREM_OF = {
    "classical_tv": "Classical (TRPO) bound, TV form: |Error| <= 2T(T-1) eps^2",
    "classical_kl": "Classical bound, KL form: |Error| <= T(T-1) delta",
    "coupling": "Coupling bound: |Error| <= 4 e sum_t min(1, (t-1) eps)",
    "pm_kl": "Pinsker-Marginal, KL: |Error| <= 4 a sum_t min(1, sqrt((t-1) delta/2))",
    "pm_tv": "Pinsker-Marginal, TV: |Error| <= 4 e sum_t min(1, sqrt((t-1) delta/2))",
    "mix_kl": "Mixed, KL: |Error| <= 4 T a min(1, sqrt(D_KL^seq/2))",
    "mix_tv": "Mixed, TV: |Error| <= 4 T e min(1, D_TV^seq)",
    "adaptive_kl": "Adaptive, KL route: |Error| <= 4 sum_t Dbar_t min(1, sqrt((T-t) delta/2))",
    "adaptive_tv": "Adaptive, TV route: |Error| <= 4 sum_t Dbar_t min(1, (T-t) eps)",
    "adaptive_hybrid": "Adaptive, hybrid: |Error| <= 4 sum_t Dbar_t min(1, (T-t)eps, ...)",
    "linear": "Linear: |Error| <= 4 sum_t Dbar_t",
    "unified": "Unified bound B* = min of the six: |Error| <= B*",
}


@dataclass(frozen=True)
class Row:
    """One line of the table in paper_repro.md."""

    claim: str
    command: str
    ours: str
    paper: str
    status: str
    trained: bool = False  # "ours" comes from trained transformers (see TRAINED_FACTOR)


def _g(x: float, digits: int = 4) -> str:
    """``x`` with ``digits`` significant digits (stable text for the markdown table)."""
    return f"{x:.{digits}g}"


def _tiny(x: float, tol: float = 1e-12) -> str:
    """``'< 1e-12'`` for a rounding-level residual (machine-independent text), else its value."""
    return f"< {tol:g}" if x < tol else f"= {x:.1e}"


# ----------------------------------------------------------------------------- theorems


def _instances(n_seeds: int = 12):
    """Exact tree instances of every generator kind (V in {2, 3}, T in {2, 3, 4})."""
    from trm_bounds.instances.random import GENERATORS

    for kind, make in GENERATORS.items():
        for seed in range(n_seeds):
            V, T, n = 2 + seed % 2, 2 + seed % 3, 1 + seed % 2
            yield kind, make(seed, V, T, n)


def theorems() -> tuple[list[Row], bool]:
    """Every bound of docs/theory.md §4 (and s.5 sharp) against the exact error on tree instances.

    Checks ``|Error| <= B`` and ``max_R |Error| <= B`` for the published and the sharp
    constants, the exact-error identity (definition against telescoping), and monotonic
    improvement (``L' > B*`` implies ``J(theta) > J(roll)``).
    """
    from trm_bounds.engines.tree import exact_report

    cmd = f"{SELF} --claim theorems"
    reps = [exact_report(inst) for _, inst in _instances()]
    n = len(reps)
    err_max = np.array([r["error_max_over_rewards"] for r in reps])
    rows, ok = [], True
    for b in BOUND_NAMES:
        pub = np.array([r["bounds_published"][b] for r in reps])
        shp = np.array([r["bounds_sharp"][b] for r in reps])
        viol_pub = int(np.sum(err_max > pub * (1 + 1e-10) + 1e-12))
        viol_shp = int(np.sum(err_max > shp * (1 + 1e-10) + 1e-12))
        ok &= viol_pub == 0 and viol_shp == 0
        ratio = float(np.max(np.where(shp > 0, err_max / np.where(shp > 0, shp, 1), 0)))
        rows.append(
            Row(
                THEOREM_OF[b],
                cmd,
                f"{viol_pub} / {viol_shp} violations (published / sharp) in {n} exact "
                f"instances; max max_R|Error| / sharp B = {ratio:.3f}",
                "holds (constant 4)",
                "reproduced; also holds with constant 2 (corrected, docs/theory.md §5)",
            )
        )
    gap = max(abs(r["error"] - r["error_identity"]) for r in reps)
    ok &= gap <= 1e-10
    rows.append(
        Row(
            "Exact identity Error = -E_roll[R sum_t (rho_t-1)(1 - prod_{j>t} rho_j)]",
            cmd,
            f"max |definition - identity| {_tiny(gap)} over {n} instances",
            "identity",
            "reproduced",
        )
    )
    improved = [
        (r["L_prime"] > r[key]["unified"], r["J_theta"] > r["J_roll"])
        for r in reps
        for key in ("bounds_published", "bounds_sharp")
    ]
    n_pub = sum(a for a, _ in improved[0::2])
    n_shp = sum(a for a, _ in improved[1::2])
    bad = sum(a and not b for a, b in improved)
    ok &= bad == 0
    rows.append(
        Row(
            "Monotonic improvement: L'(theta) > B* implies J(theta) > J(roll)",
            cmd,
            f"{n_pub} (published B*) and {n_shp} (sharp B*) instances with L' > B*; "
            f"{bad} without improvement",
            "theorem",
            "reproduced (holds also with the sharp B*)",
        )
    )
    t_rows, t_ok = _transformer_rows()
    return rows + t_rows, ok and t_ok


def _transformer_rows() -> tuple[list[Row], bool]:
    """Bounds on the enumerated transformer pairs (committed transformer_mismatch.json)."""
    res = ROOT / "experiments" / "results"
    path, inst = res / "transformer_mismatch.json", res / "transformer_instances.json"
    if not (path.is_file() and inst.is_file()):
        return [], True
    rows = json.loads(path.read_text()).get("exact", [])
    if not rows:
        return [], True
    viol = 0
    for r in rows:
        for key in ("bounds_published", "bounds_sharp"):
            viol += sum(
                float(r["error_max_over_rewards"]) > float(b) * (1 + 1e-10) + 1e-12
                for b in r[key].values()
            )
    best = {}
    for r in rows:
        best[r["source"]] = min(best.get(r["source"], np.inf), float(r["ratio_worst_case_sharp"]))
    text = (
        f"{viol} violations over {len(rows)} enumerated pairs ({len(best)} sources); sharp B* / "
        "max_R|Error| (smallest over T): " + ", ".join(f"{k} {v:.3g}" for k, v in best.items())
    )
    return [
        Row("The bounds hold on real policy pairs from the three mismatch sources (transformers)",
            f"python -m trm_bounds exact {inst.relative_to(ROOT)}", text,
            "(no exact error in the paper)", "new evidence (figure F7)", trained=True)
    ], viol == 0  # fmt: skip


def tight() -> tuple[list[Row], bool]:
    """docs/theory.md §5: the tight instance reaches the sharp bounds; the published are twice."""
    from trm_bounds.engines.tree import exact_report
    from trm_bounds.instances.named import tight_instance

    eps = 0.1
    r = exact_report(tight_instance(eps))
    names = ("classical_tv", "coupling", "adaptive_hybrid")
    sharp = [r["bounds_sharp"][b] for b in names]
    pub = [r["bounds_published"][b] for b in names]
    ok = all(abs(r["error"] - s) <= 1e-12 for s in sharp) and abs(r["error"] - 2 * eps**2) < 1e-12
    ok &= all(abs(p - 2 * s) <= 1e-12 for p, s in zip(pub, sharp, strict=True))
    return [
        Row(
            "Constant 4 in every bound (|A_t| <= 1, |E_P f - E_Q f| <= 2 ||f|| TV)",
            f"{SELF} --claim tight",
            f"tight instance (V = T = 2, eps = {eps}): Error = {_g(r['error'])} = sharp "
            f"Classical-TV, Coupling, Adaptive-hybrid = {_g(sharp[0])}; published = "
            f"{_g(pub[0])}",
            "constant 4",
            "corrected: the constant is 2 and cannot be lowered (docs/theory.md §5)",
        )
    ], ok


def baseline() -> tuple[list[Row], bool]:
    """docs/theory.md §2: a baseline leaves L' unchanged but shifts L by T (J(roll) - b)."""
    from trm_bounds.engines.tree import exact_report, surrogate_with_baseline
    from trm_bounds.instances.named import dense_noise

    inst = dense_noise(3, 4, scale=0.5, seed=0)

    rep = exact_report(inst)
    devs, shifts = [], []
    for b in (0.0, 0.25, 0.5, 1.0):
        l_b, lp_b = surrogate_with_baseline(inst, b)
        devs.append(abs(lp_b - rep["L_prime"]))
        shifts.append(l_b - rep["L_prime"] - inst.T * (rep["J_roll"] - b))
    ok = max(devs) <= 1e-12 and max(abs(s) for s in shifts) <= 1e-12
    return [
        Row(
            "A fixed baseline b does not change the surrogate's error",
            f"{SELF} --claim baseline",
            f"|L'_b - L'| {_tiny(max(devs))} for b in {{0, .25, .5, 1}}, but L_b - L' = "
            f"T (J_roll - b) (residual {_tiny(max(abs(s) for s in shifts))}; "
            f"{_g(inst.T * rep['J_roll'])} at b = 0)",
            "L = E[(R - b) sum_t rho_t] unaffected by b",
            "corrected: true for the centred L' only (docs/theory.md §2)",
        )
    ], ok


# ----------------------------------------------------------------------------- paper table


def table() -> tuple[list[Row], bool]:
    """docs/theory.md §7: every printed number of the paper's table (via trm_bounds.paper)."""
    cmd = "python -m trm_bounds bounds --paper-table"
    rows, ok = [], True
    for r in paper_table_rows():
        ok &= r.ok
        printed = ("<= " if r.relation == "upper" else "") + _g(r.paper)
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
        ours = f"{_g(r.ours, 6)} (sharp {_g(r.ours_sharp, 6)})"
        rows.append(Row(label, cmd, ours, printed, why if r.ok else "differs"))
    return rows, ok


# ----------------------------------------------------------------------------- scaling


def scaling() -> tuple[list[Row], bool]:
    """docs/theory.md §4 scaling column: fitted log-log slopes of the bounds in both regimes."""
    bs = bound_scaling
    a = bs.Args()
    uni, spa = bs.uniform_regime(a), bs.sparse_regime(a)
    cmd = f"{SELF} --claim scaling"
    T = uni["T"]
    eps = uni["eps"]
    pub = uni["published"]
    s_uni, s_spa = uni["slopes"], spa["slopes"]
    # T eps <= 1: Coupling equals the quadratic closed form 2T(T-1)eps^2 (docs/theory.md §4).
    Tq = np.arange(2, int(1.0 / eps) + 1)
    dkl_q = Tq * a.delta
    cq = compute_bounds(
        Tq, eps=eps, delta=a.delta, dkl_seq=dkl_q, dtv_seq=kl_only(a.delta, dkl_q)[1]
    )
    quad_dev = float(np.max(np.abs(cq["coupling"] / (2 * Tq * (Tq - 1) * eps**2) - 1)))
    c_lin = fit_slope(T, pub["coupling"], 10 / eps, a.T_max)
    win = f"T in [{a.fit_lo}, {a.T_max}], delta = {a.delta:g}"
    checks = {
        "classical": abs(s_uni["classical_kl"] - 2) < 0.01,
        "coupling": quad_dev < 1e-12 and abs(c_lin - 1) < 0.05,
        "pm": abs(s_uni["pm_kl"] - 1.5) < 0.01 and abs(s_uni["pm_tv"] - 1.5) < 0.01,
        "mix_sparse": abs(s_spa["mix_kl"] - 1) < 0.01 and abs(s_spa["mix_tv"] - 1) < 0.01,
        "mix_uniform": abs(s_uni["mix_kl"] - 1.5) < 0.01,
        "linear": abs(s_uni["linear"] - 1) < 0.01,
    }
    rows = [
        Row("Classical bound grows as T^2", cmd, f"slope {s_uni['classical_kl']:.3f} ({win})",
            "T^2", "reproduced"),
        Row("Coupling: T^2 while T eps <= 1, then T", cmd,
            f"= 2T(T-1)eps^2 for T <= 1/eps (max rel. deviation {_tiny(quad_dev)}); slope "
            f"{c_lin:.3f} for T >= 10/eps (eps = {eps:.4g})", "T^2, then T", "reproduced"),
        Row("Pinsker-Marginal bounds grow as T^{3/2}", cmd,
            f"PM-KL slope {s_uni['pm_kl']:.3f}, PM-TV {s_uni['pm_tv']:.3f} ({win})",
            "T^{3/2}", "reproduced"),
        Row("Mixed bounds grow as T (D_KL^seq fixed: sparse divergence)", cmd,
            f"Mix-KL slope {s_spa['mix_kl']:.3f}, Mix-TV {s_spa['mix_tv']:.3f} "
            f"(D_KL^seq = {spa['dkl_seq']:g})", "T", "reproduced"),
        Row("Mixed bounds are O(T) (as stated, for any divergence)", cmd,
            f"uniform divergence (D_KL^seq = T delta): Mix-KL slope {s_uni['mix_kl']:.3f}",
            "T", "corrected: O(T) only under sparse divergence; T^{3/2} under uniform "
            "(docs/theory.md §4)"),
        Row("Linear bound 4 sum_t Dbar_t grows as T", cmd,
            f"slope {s_uni['linear']:.3f} (worst case Dbar_t = eps)", "T", "reproduced"),
    ]  # fmt: skip
    cf_rows, cf_ok = _closed_form_rows(uni, cmd)
    rows += cf_rows + _exact_scaling_rows()
    return rows, all(checks.values()) and cf_ok


def _closed_form_rows(uni: dict, cmd: str) -> tuple[list[Row], bool]:
    """docs/theory.md §4 closed forms and identities, on the uniform grid (delta <= 2/T there)."""
    from trm_bounds.bounds import adaptive_crossover, mix_kl_closed_form, pm_kl_closed_form

    T, eps, delta = uni["T"], uni["eps"], uni["delta"]
    pub = uni["published"]
    dkl = T * delta
    pm_ratio = float(np.max(pub["pm_kl"] / pm_kl_closed_form(T, delta=delta)))
    mix_dev = float(
        np.max(np.abs(pub["mix_kl"] / mix_kl_closed_form(T, delta=delta, dkl_seq=dkl) - 1))
    )
    lin = T * eps > 1
    coup_gap = float(np.max(pub["coupling"][lin] - (4 * T[lin] * eps - 2)))
    # Worst case Dbar_t = eps = a (KL-only): Adaptive-KL is PM-KL and Adaptive-TV is Coupling.
    ad_kl = float(np.max(np.abs(pub["adaptive_kl"] / pub["pm_kl"] - 1)))
    ad_tv = float(np.max(np.abs(pub["adaptive_tv"] / pub["coupling"] - 1)))
    kc = adaptive_crossover(eps=5e-3, delta=delta)
    k = np.arange(1, 11, dtype=np.float64)
    tv_smaller = k * 5e-3 <= np.sqrt(k * delta / 2)
    cross_ok = bool(np.all(tv_smaller == (k <= kc)))
    ok = (
        pm_ratio <= 1 + 1e-12 and mix_dev < 1e-12 and coup_gap <= 1e-9 and ad_kl < 1e-12
        and ad_tv < 1e-12 and cross_ok
    )  # fmt: skip
    rows = [
        Row("Closed forms: PM-KL <= (4/3) T^{3/2} delta (delta <= 2/T); Mix-KL = "
            "2T sqrt(delta D_KL^seq)", cmd,
            f"max PM-KL / closed form = {pm_ratio:.6f}; Mix-KL rel. deviation {_tiny(mix_dev)} "
            f"(T = {T[0]}..{T[-1]})", "as stated", "reproduced"),
        Row("Coupling <= 4 T eps + 2 once T eps > 1", cmd,
            f"max Coupling - (4 T eps - 2) = {coup_gap:.3g} (<= 0: even 4 T eps - 2 holds)",
            "4 T eps + 2", "reproduced (tighter: 4 T eps - 2, docs/theory.md §4)"),
        Row("Adaptive with Dbar_t = a equals PM-KL; TV route with Dbar_t = eps equals Coupling",
            cmd, f"rel. deviations {_tiny(ad_kl)} and {_tiny(ad_tv)} on every T of the grid",
            "identities", "reproduced"),
        Row("Adaptive route crossover at T - t = delta / (2 eps^2)", cmd,
            f"{kc:g} at eps = 5e-3, delta = {delta:g}: TV route smaller exactly for "
            f"T - t <= {kc:g} ({'yes' if cross_ok else 'no'}; figure F5)", "delta/(2 eps^2)",
            "reproduced"),
    ]  # fmt: skip
    return rows, ok


def _exact_scaling_rows() -> list[Row]:
    """Slopes of the exact error from the committed tabular_scaling.json, when present."""
    path = ROOT / "experiments" / "results" / "tabular_scaling.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    regimes = data.get("regimes", {})
    parts = []
    for name, sec in regimes.items():
        s = sec.get("slopes", {})
        if "error_max_over_rewards" in s:
            parts.append(
                f"{name}: max_R|Error| slope {round(s['error_max_over_rewards'], 2) + 0.0:.2f}"
            )
    if not parts:
        return []
    return [
        Row("Exact error against T (finite-state DP engine, T up to 10^4)",
            f"{SELF} --claim scaling", "; ".join(parts),
            "(no exact error in the paper)", "new evidence (figure F3)")
    ]  # fmt: skip


# ----------------------------------------------------------------------------- TRM


def trm() -> tuple[list[Row], bool]:
    """docs/theory.md §6: the estimator identities behind TRM, and the LN-TRM guarantee."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=200)  # (200, 5) rollout distributions
    q = rng.dirichlet(np.ones(5), size=200)  # (200, 5) trainer distributions
    rho = q / p
    e_k3 = np.sum(p * (rho - 1 - np.log(rho)), axis=-1)  # E_roll[k3] exactly
    k3_gap = float(np.max(np.abs(e_k3 - kl(p, q))))
    e_abs = np.sum(p * np.abs(rho - 1), axis=-1)  # E_roll |rho - 1|
    tv_gap = float(np.max(np.abs(e_abs - 2 * tv(p, q))))
    rows = [
        Row("k3 = rho - 1 - log rho is unbiased for KL(roll || theta) under rollout sampling",
            f"{SELF} --claim trm", f"max |E_roll[k3] - KL| {_tiny(k3_gap)} (200 random pairs)",
            "unbiased", "reproduced"),
        Row("E_roll |rho_t - 1| = 2 TV(c_t): |rho - 1|/2 estimates Dbar_t from logs",
            f"{SELF} --claim trm", f"max |E|rho-1| - 2 TV| {_tiny(tv_gap)} (200 random pairs)",
            "identity", "reproduced"),
    ]  # fmt: skip
    # LN-TRM guarantee |Error| <= 2 E_roll[W]: E_roll[W] = sum_t 2 Dbar_t w_t, so 2 E[W] is
    # the Adaptive-hybrid bound (published constant) and the theorem rows check it.
    rows.append(
        Row("LN-TRM guarantee |Error| <= 2 E_roll[W], W = sum_t |rho_t - 1| w_t",
            f"{SELF} --claim theorems",
            "2 E_roll[W] = 4 sum_t Dbar_t w_t = Adaptive hybrid (row above): 0 violations",
            "|Error| <= 2 E[W]", "reproduced; holds with E[W] (sharp, docs/theory.md §5)")
    )  # fmt: skip
    loss_ok, loss_text = _masked_loss_check(rng)
    rows.append(
        Row("Masked loss is normalised by the total batch size N, not the accepted count",
            f"{SELF} --claim trm", loss_text, "1/N", "reproduced")
    )  # fmt: skip
    return rows, k3_gap < 1e-12 and tv_gap < 1e-12 and loss_ok


def _masked_loss_check(rng: np.random.Generator) -> tuple[bool, str]:
    """:func:`trm_bounds.masking.masked_loss` against ``(1/N) sum_accepted mean_t loss``."""
    import torch

    from trm_bounds.masking import masked_loss

    B, T = 8, 6
    loss = rng.normal(size=(B, T))  # (B, T) per-token losses
    lengths = rng.integers(1, T + 1, size=B)  # (B,) valid tokens per sequence
    valid = np.arange(T)[None, :] < lengths[:, None]  # (B, T)
    accept = np.arange(B) % 2 == 0  # (B,) half the sequences accepted
    per_seq = np.where(valid, loss, 0.0).sum(axis=1) / lengths  # (B,)
    want = per_seq[accept].sum() / B
    got = float(
        masked_loss(torch.from_numpy(loss), torch.from_numpy(accept), torch.from_numpy(valid))
    )
    other = per_seq[accept].sum() / accept.sum()
    text = (
        f"masked_loss = (1/N) sum_accepted mean_t loss: |diff| {_tiny(abs(got - want))} "
        f"(N = {B}, {int(accept.sum())} accepted; dividing by the accepted count would give "
        f"{other / want:.1f}x)"
    )
    return abs(got - want) <= 1e-12, text


# ----------------------------------------------------------------------------- length bias


def length_bias_rows() -> tuple[list[Row], bool]:
    """docs/theory.md §6-§7: TRM-Max acceptance (1-p)^T, the paper's table, and the simulation."""
    cmd = f"{SELF} --claim length-bias"
    rows, ok = [], True
    for p, printed in LENGTH_BIAS_PAPER.items():
        ours = [length_bias(p, T) for T in LENGTH_BIAS_T]
        paper = [("< " if rel == "below" else "") + f"{v:g}" for v, _, rel in printed]
        trunc = [f"{v:g}" for (v, _, rel) in printed if rel == "truncated"]
        for o, (v, d, rel) in zip(ours, printed, strict=True):
            unit = 10.0**-d
            ok &= {
                "rounded": abs(o - v) <= 0.5 * unit * (1 + 1e-9),
                "truncated": v <= o < v + unit,
                "below": o < v,
            }[rel]
        status = "reproduced" + (f" (the paper truncates {', '.join(trunc)})" if trunc else "")
        rows.append(
            Row(f"Length bias (1-p)^T, p = {p:g}, T = {', '.join(map(str, LENGTH_BIAS_T))}",
                cmd, ", ".join(_g(o, 4) for o in ours), ", ".join(paper), status)
        )  # fmt: skip
    sim = _simulation_row(cmd)
    if sim is not None:
        rows.append(sim[0])
        ok &= sim[1]
    return rows, ok


def _simulation_row(cmd: str) -> tuple[Row, bool] | None:
    """TRM-Max / SER / LN-TRM acceptance against T from the committed bound_scaling.json."""
    path = ROOT / "experiments" / "results" / "bound_scaling.json"
    if not path.is_file():
        return None
    sim = json.loads(path.read_text()).get("length_bias", {}).get("simulation")
    if not sim:
        return None
    T = sim["T"]
    acc = sim["acceptance"]
    lo, hi = sim["ci_low"]["seq_max_k2"], sim["ci_high"]["seq_max_k2"]
    exp = sim["expected_trm_max"]
    inside = all(a - 1e-12 <= e <= b + 1e-12 for a, e, b in zip(lo, exp, hi, strict=True))
    text = (
        f"T = {T[0]} -> {T[-1]}: TRM-Max {acc['seq_max_k2'][0]:.2f} -> {acc['seq_max_k2'][-1]:.2f} "
        f"((1-p)^T inside its 95% interval at {'every' if inside else 'not every'} T), "
        f"SER {acc['ser'][0]:.2f} -> {acc['ser'][-1]:.2f}, "
        f"LN-TRM {acc['ln_trm'][0]:.2f} -> {acc['ln_trm'][-1]:.2f} "
        f"({sim['n_sequences']} sequences per T, p = {sim['p']:g}; figure F6)"
    )
    return (
        Row("TRM-Max is length-biased; SER and LN-TRM are length-neutral", cmd, text,
            "(1-p)^T; SER, LN-TRM neutral", "reproduced"),
        inside,
    )  # fmt: skip


#: Claim groups in the order of paper_repro.md.
CLAIMS: dict[str, Callable[[], tuple[list[Row], bool]]] = {
    "theorems": theorems,
    "tight": tight,
    "baseline": baseline,
    "table": table,
    "scaling": scaling,
    "trm": trm,
    "length-bias": length_bias_rows,
}

HEADER = """# Reproducing the paper's claims

*Trust Region Masking for Long-Horizon LLM Reinforcement Learning* (Li et al., arXiv
2512.23075), claim by claim. Every "ours" number below is computed by this repository:
the table is generated by `python experiments/paper_repro_numbers.py --write`, and
`tests/test_paper_repro.py` fails when it no longer matches what the code computes, or when
a command of the table does not run. Each command runs in seconds from the repository root.
Definitions and the corrections are in `docs/theory.md` (sections cited as §N).

Status: **reproduced** (our number matches the paper's, under its rounding),
**corrected** (the claim needs a change, given in the row), **differs** (with the reason).

Rows marked † come from small transformers trained on the CPU (`experiments/results/
transformer_mismatch.json`, rewritten by `python -m trm_bounds.plot --recompute`). Training is
not bit-reproducible across CPUs and BLAS builds, so their numbers may move between machines
(for example 6.25 -> 6.21 and 5.33 -> 5.65 on two x86 CPUs); the staleness test compares them
within a factor 1.5 (counts exactly) and every other row digit for digit.

Figures (`python -m trm_bounds.plot`): F1/F2 bound scaling under uniform and sparse
divergence, F3 exact error against the bounds, F4 this table as a figure (published beside
sharp), F5 the Adaptive crossover, F6 length bias, F7 transformer mismatch sources, F8 the
log evaluator on the demo dump.

| # | claim | command | ours | paper | status |
|---|---|---|---|---|---|
"""


def all_rows() -> tuple[list[Row], dict[str, bool]]:
    """Every row of paper_repro.md and the pass/fail of each claim group."""
    rows, oks = [], {}
    for name, fn in CLAIMS.items():
        r, ok = fn()
        rows += r
        oks[name] = ok
    return rows, oks


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(rows: list[Row]) -> str:
    """The whole of paper_repro.md."""
    lines = [
        f"| {i} | {_cell(r.claim)} | `{r.command}` | {_cell(r.ours)}{' †' if r.trained else ''} "
        f"| {_cell(r.paper)} | {_cell(r.status)} |"
        for i, r in enumerate(rows, 1)
    ]
    return HEADER + "\n".join(lines) + "\n"


#: Rows marked † (numbers from trained transformers) match when every number is within this
#: factor of the printed one (zeros exactly).  Justification: the models train for a few
#: hundred float32 Adam steps whose rounding depends on the CPU's BLAS kernels, so the trained
#: weights, and with them the ratios bound / exact error of the row, differ between machines;
#: 6% was measured between two x86 CPUs (5.33 -> 5.65).  A factor 1.5 leaves a wide margin
#: over that and still catches a pipeline error of a factor 2 (published against sharp
#: constants).  The theorem the row supports, 0 violations, is compared exactly.
TRAINED_FACTOR = 1.5

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e[+-]?\d+)?")


def _numbers_close(want: str, got: str, factor: float) -> bool:
    """Same text once numbers are masked, and each number of ``got`` within ``factor`` of
    ``want``'s (a zero only equal to zero)."""
    if _NUMBER.sub("#", want) != _NUMBER.sub("#", got):
        return False
    for a, b in zip(_NUMBER.findall(want), _NUMBER.findall(got), strict=True):
        x, y = float(a), float(b)
        if x == y:
            continue
        if x == 0 or y == 0 or (x < 0) != (y < 0) or max(x / y, y / x) > factor:
            return False
    return True


def stale_rows(want: str, got: str) -> list[str]:
    """Lines of paper_repro.md text ``want`` that the regenerated text ``got`` contradicts:
    every line equal, except rows marked † whose numbers may move by :data:`TRAINED_FACTOR`."""
    a, b = want.splitlines(), got.splitlines()
    if len(a) != len(b):
        return [f"{len(a)} lines in the file, {len(b)} regenerated"]
    bad = []
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if " †" in x and " †" in y and _numbers_close(x, y, TRAINED_FACTOR):
            continue
        bad.append(f"file:  {x}\nnow:   {y}")
    return bad


def main(argv: list[str] | None = None) -> int:
    """Command line: ``--claim NAME`` (check one group), ``--write`` or ``--check``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--claim", choices=sorted(CLAIMS), help="check one claim group, print rows")
    g.add_argument("--write", action="store_true", help="regenerate paper_repro.md")
    g.add_argument("--check", action="store_true", help="exit 1 if paper_repro.md is stale")
    args = ap.parse_args(argv)
    if args.claim:
        rows, ok = CLAIMS[args.claim]()
        for r in rows:
            print(f"{r.claim}\n    ours:   {r.ours}\n    paper:  {r.paper}\n    status: {r.status}")
        print("all checks passed" if ok else "CHECK FAILED")
        return 0 if ok else 1
    rows, oks = all_rows()
    failed = [k for k, v in oks.items() if not v]
    text = render_markdown(rows)
    if args.write:
        from trm_bounds.results import atomic_write_text

        atomic_write_text(REPRO_MD, text)
        print(f"wrote {REPRO_MD} ({len(rows)} claims)")
    elif not REPRO_MD.is_file() or stale_rows(REPRO_MD.read_text(), text):
        print(f"{REPRO_MD}: stale; run {SELF} --write", file=sys.stderr)
        return 1
    if failed:
        print(f"claim groups failing: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
