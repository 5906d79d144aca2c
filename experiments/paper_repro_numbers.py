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
    from trm_bounds.instances.generators import GENERATORS

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
    insts = [inst for _, inst in _instances()]
    reps = [exact_report(inst) for inst in insts]
    n = len(reps)
    size = (f"tree enumeration, V in {{{', '.join(map(str, sorted({i.V for i in insts})))}}}, "
            f"T in {{{', '.join(map(str, sorted({i.T for i in insts})))}}}, at most "
            f"{max(i.V**i.T * i.n_prompts for i in insts)} sequences each")  # fmt: skip
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
                f"instances ({size}); max max_R|Error| / sharp B = {ratio:.3f}",
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
    """Bounds on the enumerated transformer pairs of transformer_instances.json, computed as
    ``python -m trm_bounds exact`` computes them (:func:`trm_bounds.engines.tree.check_instance`)."""
    from trm_bounds.engines.tree import check_instance
    from trm_bounds.instances.format import load_instances

    inst_path = ROOT / "trm_bounds" / "data" / "results" / "transformer_instances.json"
    if not inst_path.is_file():
        return [], True
    insts = load_instances(inst_path)
    viol, best, sizes = 0, {}, set()
    for inst in insts:
        rep, mismatch = check_instance(inst)
        viol += bool(mismatch)
        for key in ("bounds_published", "bounds_sharp"):
            viol += sum(
                float(rep["error_max_over_rewards"]) > float(b) * (1 + 1e-10) + 1e-12
                for b in rep[key].values()
            )
        m = re.fullmatch(r"transformer-(.+)-V\d+-T\d+", inst.id)
        source = m.group(1) if m else inst.id
        ratio = float(rep["bounds_sharp"]["unified"]) / float(rep["error_max_over_rewards"])
        best[source] = min(best.get(source, np.inf), ratio)
        sizes.add((inst.V, inst.T))
    where = ", ".join(f"V = {v}, T = {t}" for v, t in sorted(sizes))
    text = (
        f"{viol} violations over {len(insts)} enumerated pairs ({len(best)} sources; {where}); "
        "sharp B* / max_R|Error|: " + ", ".join(f"{k} {v:.3g}" for k, v in best.items())
    )
    return [
        Row("The bounds hold on real policy pairs from the three mismatch sources (transformers)",
            f"python -m trm_bounds exact {inst_path.relative_to(ROOT)}", text,
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
    """The exact error against T from the committed tabular_scaling.json (F3) and
    worst_case.json (F9), when present: slopes only where a power law holds."""
    res = ROOT / "trm_bounds" / "data" / "results"
    rows = []
    path = res / "tabular_scaling.json"
    if path.is_file():
        parts = []
        for name, sec in json.loads(path.read_text()).get("regimes", {}).items():
            fit = (sec.get("fits") or {}).get("error_max_over_rewards")
            text = f"{name}: " + (
                f"slope {_slope(fit['slope'])} on T in [{fit['window'][0]:g}, {fit['window'][1]:g}]"
                if fit
                else "no power law"
            )
            if sec.get("decay"):
                text += f", then exp(-T/{1 / sec['decay']['rate']:.0f})"
            if sec.get("sign_changes"):
                a, b = sec["sign_changes"][0]
                text += f" (Error changes sign in [{a:g}, {b:g}])"
            parts.append(text)
        if parts:
            rows.append(
                Row("Exact error against T (finite-state DP engine, T up to 10^4)",
                    f"{SELF} --claim scaling", "max_R|Error|: " + "; ".join(parts),
                    "(no exact error in the paper)", "new evidence (figure F3)")
            )  # fmt: skip
    path = res / "worst_case.json"
    if path.is_file():
        best = json.loads(path.read_text()).get("best_exponent", {})
        parts = [
            f"{name}: {_slope(b['slope'])} ({b['family']}, T in [{b['window'][0]:g}, "
            f"{b['window'][1]:g}])"
            for name, b in best.items()
            if b and b.get("slope") is not None
        ]
        if parts:
            rows.append(
                Row("How tight in T: the worst-case exact error against T (issue 12)",
                    f"{SELF} --claim scaling",
                    "largest exponent of max_R|Error| found: " + "; ".join(parts),
                    "PM-KL and B* grow as T^{3/2} (uniform divergence)",
                    "new evidence (figure F9): the worst case found grows like T, not T^{3/2}, "
                    "under a per-token KL budget, and is constant in T under sparse divergence "
                    "(docs/theory.md §10)")
            )  # fmt: skip
    return rows


def _slope(x: float) -> str:
    """A fitted slope with two decimals, ``-0.00`` printed as ``0.00``."""
    return f"{round(float(x), 2) + 0.0:.2f}"


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
    path = ROOT / "trm_bounds" / "data" / "results" / "bound_scaling.json"
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


# ----------------------------------------------------------------------------- abstract


def abstract() -> tuple[list[Row], bool]:
    """The abstracts' claims (arXiv 2512.23075 v1 and v5) not covered by a theorem row above."""
    rows, ok = [], True
    for fn in (_classical_vacuous_row, _dependence_row, _ppo_clip_row, _entire_sequence_row, _minimum_row,
               _adaptive_pm_row, _nonvacuous_row):  # fmt: skip
        row, row_ok = fn()
        rows.append(row)
        ok &= row_ok
    rows.append(
        Row("TRM demonstrates empirical training stability for long-horizon LLM-RL (v5 abstract)",
            f"{SELF} --claim abstract",
            "no training run in this repository: the toolkit checks bounds, not training curves",
            "training stability", "not reproduced (no training run)")
    )  # fmt: skip
    return rows, ok


#: The worst-case setting of the abstract rows: T = 4096 (the paper's table), delta = 1e-4.
_T_PAPER, _DELTA_PAPER = 4096, 1e-4


def _worst_case(T: int, delta: float, *, sharp: bool = False, dkl_seq: float | None = None):
    """Every bound at ``eps = sqrt(delta/2)`` and ``D_KL^seq`` (default ``T delta``, uniform
    divergence; docs/theory.md §4); ``Dbar_t = eps`` (compute_bounds' default, the worst case)."""
    dkl = T * delta if dkl_seq is None else dkl_seq
    eps, dtv = kl_only(delta, dkl)
    return compute_bounds(T, eps=eps, delta=delta, dkl_seq=dkl, dtv_seq=dtv, sharp=sharp)


def _classical_vacuous_row() -> tuple[Row, bool]:
    """The smallest T at which the Classical bound reaches 1 (vacuous for R in [0, 1])."""
    T = np.arange(2, _T_PAPER + 1)
    cl = np.asarray(
        compute_bounds(
            T,
            eps=np.sqrt(_DELTA_PAPER / 2),
            delta=_DELTA_PAPER,
            dkl_seq=T * _DELTA_PAPER,
            dtv_seq=kl_only(_DELTA_PAPER, T * _DELTA_PAPER)[1],
        )["classical_kl"]
    )
    t_pub = int(T[np.argmax(cl >= 1)])
    t_shp = int(T[np.argmax(cl / 2 >= 1)])  # sharp constant 2 = published / 2 (docs/theory.md §5)
    ok = t_pub < _T_PAPER and cl[-1] > 1000
    return Row(
        "Classical trust-region bounds scale as O(T^2) and are vacuous for long horizons",
        f"{SELF} --claim abstract",
        f"Classical (KL) T(T-1) delta at delta = 1e-4 reaches 1 at T = {t_pub} (sharp: "
        f"T = {t_shp}) and is {cl[-1]:.0f} at T = {_T_PAPER}",
        "O(T^2), vacuous for long-horizon tasks",
        "reproduced",
    ), ok


def _dependence_row() -> tuple[Row, bool]:
    """Every bound reads D_KL^{tok,max} = delta, directly or through eps <= sqrt(delta/2) and
    Dbar_t <= eps, and shrinks with it (uniform divergence, D_KL^seq = T delta)."""
    from trm_bounds.bounds import BOUNDS

    reads = {n: set(s.needs) & {"delta", "eps", "dbar"} for n, s in BOUNDS.items()}
    direct = [n for n, r in reads.items() if "delta" in r]
    through = [BOUNDS[n].label for n, r in reads.items() if r and "delta" not in r]
    hi, lo = _worst_case(_T_PAPER, 1e-4), _worst_case(_T_PAPER, 1e-6)
    shrink = {n: float(hi[n] / lo[n]) for n in BOUNDS}
    ok = len(direct) + len(through) == len(BOUNDS) - 1 and min(shrink.values()) >= 10 - 1e-9
    return Row(
        "All bounds depend on D_KL^{tok,max}, the maximum token-level KL",
        f"{SELF} --claim abstract",
        f"{len(direct)} of {len(BOUNDS)} bounds read delta = D_KL^{{tok,max}} directly; "
        f"{len(through)} ({', '.join(through)}) read eps = max TV <= sqrt(delta/2) "
        "(Pinsker) or Dbar_t <= eps; B* takes their minimum. Every bound shrinks by >= "
        f"{min(shrink.values()):.0f}x when delta drops from 1e-4 to 1e-6 (T = {_T_PAPER}, "
        "uniform: D_KL^seq = T delta, Dbar_t = eps)",
        "all bounds depend on D_KL^{tok,max}",
        "clarified: the TV-route bounds depend on it through eps <= sqrt(D_KL^{tok,max}/2) "
        "and Dbar_t <= eps (docs/theory.md §3)",
    ), ok


def _demo_batch():
    """The demo dump (``trm_bounds/data/demo_dump.npz``): theta and rollout logprobs, mask."""
    d = np.load(ROOT / "trm_bounds" / "data" / "demo_dump.npz")
    return d["old_log_probs"], d["rollout_log_probs"], d["response_mask"]


def _ppo_clip_row() -> tuple[Row, bool]:
    """Token-ratio clipping at 0.2 leaves in the gradient sequences that TRM-Max rejects."""
    import torch

    from trm_bounds.masking import sequence_mask

    lp, lr, m = _demo_batch()  # (B, T) each
    thr = 0.05  # TRM-Max threshold on max_t k2 (the paper's default)
    mask, _ = sequence_mask(torch.from_numpy(lp), torch.from_numpy(lr), torch.from_numpy(m),
                            criteria=("seq_max_k2",), thresholds={"seq_max_k2": thr})  # fmt: skip
    accept = mask.numpy().astype(bool)  # (B,)
    r = (lp - lr).astype(np.float64)  # (B, T) log rho_t
    k2_max = np.where(m, r**2 / 2, 0.0).max(axis=1)  # (B,)
    inside = m & (np.abs(np.exp(r) - 1) <= 0.2)  # (B, T) tokens PPO does not clip
    rejected = ~accept
    frac = inside[rejected].sum(axis=1) / m[rejected].sum(axis=1)  # (n_rejected,)
    ok = bool(np.all(k2_max[rejected] > thr)) and bool(np.all(frac > 0)) and rejected.any()
    return Row(
        "PPO's token-independent clipping cannot control the sequence-level D_KL^{tok,max}",
        f"{SELF} --claim abstract",
        f"demo dump ({len(accept)} sequences): {int(rejected.sum())} have a token with k2 > "
        f"{thr:g} (max k2 up to {k2_max.max():.3f}); PPO clipping at 0.2 still passes "
        f"gradient through {100 * frac.min():.1f}%-{100 * frac.max():.1f}% of their tokens "
        "(|rho_t - 1| <= 0.2), while TRM-Max drops each of them whole",
        "cannot be controlled by token-independent methods like PPO clipping",
        "reproduced",
    ), ok


def _entire_sequence_row() -> tuple[Row, bool]:
    """masked_loss gives zero gradient at every token of a rejected sequence, non-zero at every
    valid token of an accepted one (autograd on the demo dump)."""
    import torch

    from trm_bounds.masking import masked_loss, sequence_mask

    lp, lr, m = (torch.from_numpy(x) for x in _demo_batch())
    mask, _ = sequence_mask(lp, lr, m, criteria=("seq_max_k2",))  # (B,)
    loss_t = torch.ones(m.shape, dtype=torch.float64, requires_grad=True)  # (B, T)
    masked_loss(loss_t, mask, m).backward()
    g = loss_t.grad.numpy()  # (B, T)
    acc, valid = mask.numpy().astype(bool), m.numpy().astype(bool)
    zero_rej = int(np.sum(g[~acc] == 0))
    n_rej_tok = int(valid[~acc].sum())
    nonzero_acc = bool(np.all(g[acc][valid[acc]] != 0))
    ok = zero_rej == g[~acc].size and nonzero_acc and n_rej_tok > 0
    return Row(
        "TRM masks entire sequences that violate the trust region",
        f"{SELF} --claim abstract",
        f"autograd through masked_loss on the demo dump: gradient exactly 0 at all "
        f"{n_rej_tok} valid tokens of the {int((~acc).sum())} rejected sequences, non-zero at "
        f"every valid token of the {int(acc.sum())} accepted ones",
        "masks entire sequences",
        "reproduced",
    ), ok


def _minimum_row() -> tuple[Row, bool]:
    """Each of Mixed and Adaptive is the unique minimiser somewhere; PM only ties Adaptive."""
    from trm_bounds.paper import paper_table_rows

    fam = {"PM": ("pm_kl", "pm_tv"), "Mixed": ("mix_kl", "mix_tv"),
           "Adaptive": ("adaptive_hybrid",), "Coupling": ("coupling",)}  # fmt: skip

    def family_min(b):
        return {f: min(float(b[n]) for n in ns) for f, ns in fam.items()}

    # (a) the paper's KL+TV column: worst case Dbar_t = eps (Dbar unknown)
    col = {r.bound: r.ours for r in paper_table_rows() if r.column == "KL+TV"}
    kltv = {f: min(col[n] for n in ns if n in col) for f, ns in fam.items()
            if any(n in col for n in ns)}  # fmt: skip
    # (b) the demo dump's estimated Dbar_t (report.json of the demo evaluation)
    rep = json.loads((ROOT / "trm_bounds" / "data" / "results" / "demo_eval" / "report.json").read_text())
    data = family_min(rep["bounds"]["published"])
    # (c) uniform worst case: PM ties Adaptive
    uni = family_min(_worst_case(_T_PAPER, _DELTA_PAPER))

    def unique(d):
        best = min(d.values())
        winners = [f for f, v in d.items() if v <= best * (1 + 1e-12)]
        return winners[0] if len(winners) == 1 else None

    def fmt(d):
        return ", ".join(f"{f} {_g(v)}" for f, v in sorted(d.items(), key=lambda kv: kv[1]))

    tie = abs(uni["PM"] / uni["Adaptive"] - 1)
    ok = unique(kltv) == "Mixed" and unique(data) == "Adaptive" and tie < 1e-9
    return Row(
        "The minimum over the three bounds (PM, Mixed, Adaptive) is tighter than any one",
        f"{SELF} --claim abstract",
        f"Mixed is the unique minimiser in the paper's KL+TV column (T = {_T_PAPER}, worst case "
        f"Dbar_t = eps): {fmt(kltv)}; Adaptive with the demo dump's estimated Dbar_t "
        f"(T = {rep['bounds']['inputs']['T']}): {fmt(data)}; PM is never the unique minimiser: "
        f"it ties Adaptive at Dbar_t = eps (uniform, rel. gap {_tiny(tie, 1e-9)}) and is above "
        "it elsewhere (next row)",
        "min of three tighter than any one",
        "clarified: B* is the minimum of six (Coupling and the TV twins too); PM attains it "
        "only in a tie with Adaptive",
    ), ok


def _adaptive_pm_row() -> tuple[Row, bool]:
    """Adaptive <= PM on every exact instance (Dbar_t <= eps <= sqrt(delta/2)), strict on some."""
    from trm_bounds.engines.tree import exact_report

    reps = [exact_report(inst) for _, inst in _instances()]
    n, viol, strict = len(reps), 0, 0
    for r in reps:
        for key in ("bounds_published", "bounds_sharp"):
            b = r[key]
            pm = min(b["pm_kl"], b["pm_tv"])
            ad = min(b["adaptive_kl"], b["adaptive_hybrid"])
            viol += ad > pm * (1 + 1e-12) + 1e-15
            strict += key == "bounds_published" and ad < pm * (1 - 1e-9)
    # equality at the worst case Dbar_t = eps = a (row "Adaptive with Dbar_t = a equals PM-KL")
    wc = _worst_case(_T_PAPER, _DELTA_PAPER)
    eq = abs(float(wc["adaptive_kl"] / wc["pm_kl"]) - 1)
    ok = viol == 0 and strict > 0 and eq < 1e-12
    return Row(
        "The Adaptive bound strictly generalises the Pinsker-Marginal bound",
        f"{SELF} --claim abstract",
        f"Adaptive <= PM in all {n} exact instances (published and sharp; {viol} violations), "
        f"strictly in {strict}; equal at Dbar_t = eps = sqrt(delta/2) (rel. gap {_tiny(eq)})",
        "strictly generalises PM",
        "reproduced (Adaptive reduces to PM-KL at Dbar_t = sqrt(delta/2), docs/theory.md §4)",
    ), ok


def nonvacuous_delta(T: int, *, sharp: bool = False) -> float:
    """The largest per-token KL ``delta`` with ``B* <= 1`` at horizon ``T`` under uniform
    divergence (``D_KL^seq = T delta``, ``Dbar_t = eps = sqrt(delta/2)``), by root finding on
    :func:`trm_bounds.bounds.compute_bounds` (``B*`` increases with ``delta``)."""
    from scipy.optimize import brentq

    def f(log_delta: float) -> float:
        return float(_worst_case(T, 10.0**log_delta, sharp=sharp)["unified"]) - 1.0

    return 10.0 ** brentq(f, -12.0, -1.0, xtol=1e-13)


def _nonvacuous_row() -> tuple[Row, bool]:
    """The regime where B* < 1 (R in [0, 1], so |Error| <= 1 anyway): the largest delta at
    T = 4096 under uniform divergence, published and sharp, against the paper's table."""
    from trm_bounds.paper import paper_table_rows

    d_pub, d_shp = nonvacuous_delta(_T_PAPER), nonvacuous_delta(_T_PAPER, sharp=True)
    table = {r.column: r.ours for r in paper_table_rows() if r.bound == "unified"}
    ok = d_pub < _DELTA_PAPER and abs(d_shp / d_pub - 2) < 1e-6 and min(table.values()) > 1
    return Row(
        "TRM gives the first non-vacuous monotonic improvement guarantee for long-horizon LLM-RL",
        f"{SELF} --claim abstract",
        f"B* < 1 at T = {_T_PAPER} under uniform divergence (D_KL^seq = T delta, Dbar_t = eps) "
        f"needs delta <= {d_pub:.2g} published, {d_shp:.2g} sharp; at the paper's delta = 1e-4 "
        f"its own table gives B* = {table['KL-only']:.2f} (KL-only) and {table['KL+TV']:.2f} "
        "(KL+TV), above 1 (vacuous for R in [0, 1])",
        "non-vacuous",
        f"clarified: non-vacuous only for per-token KL up to {d_pub:.1g} at T = {_T_PAPER} "
        "(uniform) or with a small data Dbar_t (docs/theory.md §4)",
    ), ok


#: Claim groups in the order of paper_repro.md.
CLAIMS: dict[str, Callable[[], tuple[list[Row], bool]]] = {
    "theorems": theorems,
    "tight": tight,
    "baseline": baseline,
    "table": table,
    "scaling": scaling,
    "trm": trm,
    "length-bias": length_bias_rows,
    "abstract": abstract,
}

HEADER = """# Reproducing the paper's claims

*Trust Region Masking for Long-Horizon LLM Reinforcement Learning* (Li et al., arXiv
2512.23075), claim by claim: every theorem, every printed number, and every claim of the
abstracts (v1 and v5). Every "ours" number below is computed by this repository: the table is
generated by `python experiments/paper_repro_numbers.py --write`, and
`tests/test_paper_repro.py` fails when it no longer matches what the code computes, or when
a command of the table does not run. Each command runs in seconds from the repository root.
Definitions and the corrections are in `docs/theory.md` (sections cited as §N).

Status: **reproduced** (our number matches the paper's, under its rounding),
**clarified** (true under an assumption the paper does not write down, given in the row),
**corrected** (the claim needs a change, given in the row), **differs** (with the reason),
**not reproduced** (nothing here can check it, with the reason), **new** (evidence the paper
does not have).

Rows 1-14 check the theorems on exact instances small enough to enumerate (each row says how
small). Row 15 comes from small transformers trained on the CPU, recomputed by the command it
names from `trm_bounds/data/results/transformer_instances.json` (rewritten by
`python -m trm_bounds.plot --recompute`). Training is not bit-reproducible across CPUs and
BLAS builds, so the numbers of rows marked † may move between machines (for example
6.25 -> 6.21 and 5.33 -> 5.65 on two x86 CPUs); the staleness test compares them within a
factor 1.5 (counts exactly) and every other row digit for digit.

Figures (`python -m trm_bounds.plot`; captions in `trm_bounds/plot/figures.py`): F1/F2 bound
scaling under uniform and sparse divergence, F3 exact error against the bounds, F4 the paper's
table (published beside sharp), F5 the Adaptive crossover, F6 length bias, F7 transformer
mismatch sources, F8 the log evaluator on the demo dump, F9 the worst-case exact error
against T beside every bound.

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
