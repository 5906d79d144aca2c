"""Claims about the theorems: every bound of ``docs/theory.md §4`` (published) and ``§5``
(sharp) against the exact error on enumerated instances, the exact-error identity (§2),
monotonic improvement, the tight instance (§5) with Linear's constant 1 (§9, Theorem 9.3),
the baseline (§2), and the enumerated transformer pairs of a result folder.

Every count of violations compares ``max_R |Error|`` with ``B (1 + 1e-10) + 1e-12``: the exact
engines agree to float64 rounding (about ``1e-16`` relative on these sizes), so an instance
where a bound is attained (ratio 1 to rounding) is never a violation, while a real violation
would exceed the bound by far more than ``1e-10``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.bounds import BOUND_NAMES, BOUNDS
from trm_bounds.claims.rows import SELF, Row, num, tiny
from trm_bounds.margins import MarginError, above, text

__all__ = ["THEOREM_OF", "instances", "theorems", "transformer_rows", "tight", "baseline"]

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

#: ``x`` violates ``B`` when ``x > B (1 + VIOLATION_RTOL) + VIOLATION_ATOL`` (module docstring).
VIOLATION_RTOL, VIOLATION_ATOL = 1e-10, 1e-12


def instances(n_seeds: int = 12) -> Iterator[Any]:
    """Exact tree instances of every generator kind (V in {2, 3}, T in {2, 3, 4})."""
    from trm_bounds.instances.generators import GENERATORS

    for make in GENERATORS.values():
        for seed in range(n_seeds):
            V, T, n = 2 + seed % 2, 2 + seed % 3, 1 + seed % 2
            yield make(seed, V, T, n)


def _violations(err: Any, bound: Any) -> int:
    return int(np.sum(np.asarray(err) > np.asarray(bound) * (1 + VIOLATION_RTOL) + VIOLATION_ATOL))


def theorems(results: Path) -> tuple[list[Row], bool]:
    """Every bound of docs/theory.md §4 (and §5 sharp) against the exact error on tree instances.

    Checks ``max_R |Error| <= B`` for the published and the sharp constants, the exact-error
    identity (definition against telescoping, §2), and monotonic improvement (``L' > B*``
    implies ``J(theta) > J(roll)``), then the transformer pairs of ``results``.
    """
    from trm_bounds.engines.tree import exact_report

    cmd = f"{SELF} --claim theorems"
    insts = list(instances())
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
        viol_pub, viol_shp = _violations(err_max, pub), _violations(err_max, shp)
        ok &= viol_pub == 0 and viol_shp == 0
        ratio = float(np.max(np.where(shp > 0, err_max / np.where(shp > 0, shp, 1), 0)))
        rows.append(
            Row(
                THEOREM_OF[b],
                cmd,
                f"{viol_pub} / {viol_shp} violations (published / sharp) in {n} exact "
                f"instances ({size}); max max_R|Error| / sharp B = "
                f"{text(ratio, '.3f', what=f'max ratio to sharp {b}')}",
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
            f"max |definition - identity| {tiny(gap, what='identity gap')} over {n} instances",
            "identity",
            "reproduced",
        )
    )
    # L' > B*: decided at the margin TEXT_GUARD (relative to B*; trm_bounds.margins)
    improved = [
        (above(r["L_prime"], r[key]["unified"], what=f"L' against B* ({key})", atol=1e-15),
         r["J_theta"] > r["J_roll"])
        for r in reps
        for key in ("bounds_published", "bounds_sharp")
    ]  # fmt: skip
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
    t_rows, t_ok = transformer_rows(results)
    return rows + t_rows, ok and t_ok


def transformer_rows(results: Path) -> tuple[list[Row], bool]:
    """Bounds on the enumerated transformer pairs of ``results/transformer_instances.json``,
    computed as ``python -m trm_bounds exact`` computes them
    (:func:`trm_bounds.engines.tree.check_instance`); no row when the file is absent."""
    from trm_bounds.engines.tree import check_instance
    from trm_bounds.instances.format import load_instances

    inst_path = Path(results) / "transformer_instances.json"
    if not inst_path.is_file():
        return [], True
    insts = load_instances(inst_path)
    viol, best, sizes = 0, {}, set()
    for inst in insts:
        rep, mismatch = check_instance(inst)
        viol += bool(mismatch)
        for key in ("bounds_published", "bounds_sharp"):
            viol += _violations([float(rep["error_max_over_rewards"])] * len(rep[key]),
                                [float(b) for b in rep[key].values()])  # fmt: skip
        m = re.fullmatch(r"transformer-(.+)-V\d+-T\d+", inst.id)
        source = m.group(1) if m else inst.id
        ratio = float(rep["bounds_sharp"]["unified"]) / float(rep["error_max_over_rewards"])
        best[source] = min(best.get(source, np.inf), ratio)
        sizes.add((inst.V, inst.T))
    where = ", ".join(f"V = {v}, T = {t}" for v, t in sorted(sizes))
    ours = (
        f"{viol} violations over {len(insts)} enumerated pairs ({len(best)} sources; {where}); "
        "sharp B* / max_R|Error|: "
        + ", ".join(f"{k} {num(v, 3, what=f'B* / max error of {k}')}" for k, v in best.items())
    )
    return [
        Row("The bounds hold on real policy pairs from the three mismatch sources (transformers)",
            f"python -m trm_bounds exact trm_bounds/data/results/{inst_path.name}", ours,
            "(no exact error in the paper)", "new evidence (figure F7)", trained=True)
    ], viol == 0  # fmt: skip


def tight(results: Path) -> tuple[list[Row], bool]:
    """docs/theory.md §5: the tight instance reaches the sharp bounds (constant 2) of the
    bounds it is proved sharp for, the published ones are twice; Linear holds with constant 1
    (§9, Theorem 9.3), checked on the exact instances of :func:`theorems`."""
    from trm_bounds.certify.linear import CONSTANTS
    from trm_bounds.engines.tree import exact_report
    from trm_bounds.instances import named

    eps = 0.1
    r = exact_report(named.tight_instance(eps))
    err = r["error"]
    # Attained: sharp B / Error - 1 below 1e-9 (rounding is 1e-16 here); every other bound
    # must be above by at least 1e-3 (PM-TV, the next, is 1.0102 x Error), else no decision.
    gaps = {b: r["bounds_sharp"][b] / err - 1 for b in BOUND_NAMES}
    attained = [b for b, g in gaps.items() if g <= 1e-9]
    if any(1e-9 < g < 1e-3 for g in gaps.values()):
        raise MarginError(f"tight instance: a sharp bound is within 1e-3 of Error ({gaps})")
    pub = [r["bounds_published"][b] for b in attained]
    ok = bool(attained) and abs(err - 2 * eps**2) < 1e-12
    ok &= all(abs(p - 2 * r["bounds_sharp"][b]) <= 1e-12 for p, b in zip(pub, attained, strict=True))
    # Linear with constant 1 = sharp Linear / 2 on every exact instance of the theorem rows.
    c_lin = CONSTANTS["proved_here"]
    reps = [exact_report(inst) for inst in instances()]
    err_max = np.array([x["error_max_over_rewards"] for x in reps])
    lin1 = np.array([x["bounds_sharp"]["linear"] for x in reps]) / CONSTANTS["sharp"] * c_lin
    viol = _violations(err_max, lin1)
    ok &= viol == 0
    names = ", ".join(BOUNDS[b].label for b in attained)
    return [
        Row(
            "Constant 4 in every bound (|A_t| <= 1, |E_P f - E_Q f| <= 2 ||f|| TV)",
            f"{SELF} --claim tight",
            f"tight instance (V = T = 2, eps = {eps:g}): Error = {num(err)} = sharp {names} = "
            f"{num(r['bounds_sharp'][attained[0]])}; published = {num(pub[0])}. Linear with "
            f"constant {c_lin:g}: {viol} violations in {len(reps)} exact instances, max "
            f"max_R|Error| / sum_t Dbar_t = {text(float(np.max(err_max / lin1)), '.3f', what='Linear ratio')}",
            "constant 4",
            f"corrected: the constant is 2 and cannot be lowered for the bounds the tight "
            f"instance attains ({names}; docs/theory.md §5); Linear holds with constant "
            f"{c_lin:g} (docs/theory.md §9, Theorem 9.3)",
        )
    ], ok


def baseline(results: Path) -> tuple[list[Row], bool]:
    """docs/theory.md §2: a baseline leaves L' unchanged but shifts L by T (J(roll) - b)."""
    from trm_bounds.engines.tree import exact_report, surrogate_with_baseline
    from trm_bounds.instances.named import dense_noise

    inst = dense_noise(3, 4, scale=0.5, seed=0)
    rep = exact_report(inst)
    devs, shifts = [], []
    for b in (0.0, 0.25, 0.5, 1.0):
        l_b, lp_b = surrogate_with_baseline(inst, b)
        devs.append(abs(lp_b - rep["L_prime"]))
        shifts.append(abs(l_b - rep["L_prime"] - inst.T * (rep["J_roll"] - b)))
    ok = max(devs) <= 1e-12 and max(shifts) <= 1e-12
    return [
        Row(
            "A fixed baseline b does not change the surrogate's error",
            f"{SELF} --claim baseline",
            f"|L'_b - L'| {tiny(max(devs), what='baseline deviation')} for b in "
            f"{{0, .25, .5, 1}}, but L_b - L' = T (J_roll - b) (residual "
            f"{tiny(max(shifts), what='baseline shift')}; {num(inst.T * rep['J_roll'])} at b = 0)",
            "L = E[(R - b) sum_t rho_t] unaffected by b",
            "corrected: true for the centred L' only (docs/theory.md §2)",
        )
    ], ok
