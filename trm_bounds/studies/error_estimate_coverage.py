"""Coverage of the error estimate's intervals (docs/theory.md §9 "The actual error").

For every instance of the registry (:data:`trm_bounds.instances.random.GENERATORS`, the kinds
below, three seeds, one and two prompts, ``V = 3``, ``T = 4``), draws ``reps`` batches of
``N`` sequences from ``pi_roll`` and calls
:func:`trm_bounds.certify.error_estimate.estimate_error_sums` at level 0.95 with ``T_max = T``
and rewards in ``[0, 1]``; for each of Error, ``J_theta - J_roll`` and ``L'`` it records how
often the interval covers the exact value (enumeration, :mod:`trm_bounds.certify.exact`) and
its mean width.  The claim checked: coverage at least the level minus two standard errors in
every cell (Theorem 9.4 gives at least the level for every law).

For contrast, the central-limit interval ``estimate +- z se`` shown where the Pareto k-hat of
the summands and of the weights is below the paper's threshold and the weights average 1
(the interval this toolkit showed before Theorem 9.4), computed from the same estimates: its
shown count, coverage and width (``clt_gated``), and the worst such cell.

Usage::

    python -m trm_bounds.studies.error_estimate_coverage [--tiny]
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist

import numpy as np

from trm_bounds.certify.error_estimate import QUANTITIES, error_terms, estimate_error_sums
from trm_bounds.certify.exact import sequence_table
from trm_bounds.instances.generators import GENERATORS
from trm_bounds.results import write_results
from trm_bounds.studies._cli import default_out, progress, study_main

__all__ = ["Args", "SIZES", "KINDS", "instance_coverage", "run", "produce", "main"]

RESULT = "error_estimate_coverage.json"
#: Contrast cells with fewer shown CLT intervals are pooled, not judged one by one.
MIN_SHOWN = 10
#: Registry kinds measured (absolutely continuous: the estimate is unbiased only there).
KINDS = ("dense", "sparse", "moe_flip", "staleness", "adversarial", "tight",
         "single_perturbation", "uniform", "sparse_divergence")


#: The conditions users have (docs/theory.md §9): an end token (lengths 1 to 6), GRPO groups of
#: ``G`` responses per prompt, rewards in ``[lo, hi]``; ``worst``: the reward at the end of the
#: range that makes ``|Error|`` largest, else the instance's uniform rewards scaled to the range.
CONDITIONS = {
    "end_token:G1:R0_1": (1, (0.0, 1.0), False),
    "end_token:G8:R-3_5:worst": (8, (-3.0, 5.0), True),
    "end_token:G16:R0_1000": (16, (0.0, 1000.0), False),
}


@dataclass
class Args:
    """Arguments of the study (default: 200 repetitions, N in 256, 1024, 2048, seeds 0-2)."""

    out: str | None = None  # result JSON path
    seed: int = 0  # first instance seed
    size: str = "default"  # preset: default or tiny
    level: float = 0.95  # nominal level of the intervals
    reps: int = 200  # batches per (instance, N)
    N: tuple[int, ...] = (256, 1024, 2048)  # batch sizes
    seeds: int = 3  # instance seeds per kind


SIZES = {"tiny": {"reps": 40, "N": (256,), "seeds": 1}}


def _covers(e: dict, exact: float) -> bool:
    """Whether the interval ``e`` covers ``exact``; an interval withheld as empty (the sample
    contradicts the known means, docs/theory.md §9) covers nothing."""
    return bool(e["shown"] and e["lo"] <= exact <= e["hi"])


def _clt_shown(out: dict, q: str) -> bool:
    """The contrast's gate: k-hat of the summands and of the weights below the threshold, the
    weights averaging 1 within ``z`` standard errors, and a positive standard error."""
    k_max = out["pareto_k_threshold"]
    return bool(out[q]["pareto_k"] < k_max and out["pareto_k_weights"] < k_max
                and out["weights_mean"]["consistent"] and 0 < out[q]["se"] < math.inf)


def instance_coverage(kind: str, seed: int, n_prompts: int, *, N: int, reps: int,
                      level: float) -> dict:
    """Per quantity: ``exact``, ``covered`` and ``coverage`` of the intervals over ``reps``
    batches of ``N`` sequences of ``GENERATORS[kind](seed, 3, 4, n_prompts)``, their
    ``mean_width`` (0 for an interval withheld as empty), and the contrast ``clt_gated``
    (``shown``, ``covered``, ``coverage``, ``mean_width``)."""
    T = 4
    inst = GENERATORS[kind](seed, 3, T, n_prompts)
    tb = sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, inst.reward)
    p = tb.w_roll.ravel() / tb.w_roll.sum()  # (n K,)
    S, U, R = tb.S.ravel(), tb.U.ravel(), tb.reward.ravel()
    f = error_terms(S, U, R)
    exact = {q: float((p * f[q]).sum()) for q in QUANTITIES}
    rng = np.random.default_rng([seed, n_prompts, N, len(kind)])
    z = NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)
    cov = dict.fromkeys(QUANTITIES, 0)
    width = dict.fromkeys(QUANTITIES, 0.0)
    clt = {q: {"shown": 0, "covered": 0, "width": 0.0} for q in QUANTITIES}
    for _ in range(reps):  # one batch per repetition; the estimator is vectorised inside
        idx = rng.choice(p.size, size=N, p=p)
        out = estimate_error_sums(S[idx], U[idx], R[idx], level=level, T_max=T)
        for q in QUANTITIES:
            e = out[q]
            cov[q] += _covers(e, exact[q])
            width[q] += e["hi"] - e["lo"] if e["shown"] else 0.0
            if _clt_shown(out, q):
                c = clt[q]
                c["shown"] += 1
                c["covered"] += bool(abs(e["estimate"] - exact[q]) <= z * e["se"])
                c["width"] += 2 * z * e["se"]
    return {q: {"exact": exact[q], "covered": cov[q], "coverage": cov[q] / reps,
                "mean_width": width[q] / reps,
                "clt_gated": {"shown": clt[q]["shown"], "covered": clt[q]["covered"],
                              "coverage": (clt[q]["covered"] / clt[q]["shown"]
                                           if clt[q]["shown"] else None),
                              "mean_width": (clt[q]["width"] / clt[q]["shown"]
                                             if clt[q]["shown"] else None)}}
            for q in QUANTITIES}


def condition_coverage(name: str, seed: int, *, N: int, reps: int, level: float) -> dict:
    """Per quantity: ``exact``, ``covered``, ``coverage``, ``mean_width`` of the intervals over
    ``reps`` batches of ``N`` sequences (``N / G`` groups of ``G``, the unit then) of the
    :data:`CONDITIONS` setting ``name`` on :func:`~trm_bounds.instances.end_token.end_token_tree`
    ``(seed)``, sampled as a trainer logs them (masks stop after the end token)."""
    from trm_bounds.certify.samples import log_ratio_sums, valid_log_ratios
    from trm_bounds.instances.end_token import end_token_tree, sample_responses

    G, (lo, hi), worst = CONDITIONS[name]
    inst = end_token_tree(seed)
    tb = sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, np.zeros_like(inst.reward))
    R = (np.where(tb.coef > 0, hi, lo) if worst
         else lo + (hi - lo) * inst.reward)  # (n_prompts, V^T)
    terms = error_terms(tb.S, tb.U, R)
    exact = {q: float((tb.w_roll * terms[q]).sum()) for q in QUANTITIES}
    rng = np.random.default_rng([seed, N, G, int(hi)])
    cov = dict.fromkeys(QUANTITIES, 0)
    width = dict.fromkeys(QUANTITIES, 0.0)
    for _ in range(reps):
        x = np.repeat(rng.choice(inst.n_prompts, size=N // G, p=inst.p_x), G)
        d = sample_responses(inst, x, rng)
        r, valid = valid_log_ratios(d["log_probs"], d["rollout_log_probs"], d["mask"])
        S, U = log_ratio_sums(r, valid)
        out = estimate_error_sums(S, U, R[x, d["seq"]], level=level, T_max=inst.T,
                                  reward_range=(lo, hi),
                                  group_ids=np.arange(x.size) // G if G > 1 else None)
        assert out["unit"] == ("group" if G > 1 else "sequence")
        for q in QUANTITIES:
            cov[q] += _covers(out[q], exact[q])
            width[q] += out[q]["hi"] - out[q]["lo"] if out[q]["shown"] else 0.0
    return {q: {"exact": exact[q], "covered": cov[q], "coverage": cov[q] / reps,
                "mean_width": width[q] / reps} for q in QUANTITIES}


def _z(covered: int, n: int, p0: float) -> float:
    """Distance of ``covered / n`` above ``p0`` in standard errors of a proportion ``p0``."""
    return (covered / n - p0) / math.sqrt(p0 * (1 - p0) / n)


def run(args: Args) -> dict:
    """``instances[name][str(N)][quantity]``, the worst cell of the intervals and of the
    contrast, and pooled counts."""
    cells = [(k, s, n) for k in KINDS for s in range(args.seed, args.seed + args.seeds)
             for n in (1, 2)]
    out: dict = {}
    worst = worst_clt = None
    total = covered = clt_shown = clt_cov = 0
    for k, s, n in progress(cells, desc="error estimate coverage"):
        name = f"{k}:{s}:{n}"
        out[name] = {}
        for N in args.N:
            row = instance_coverage(k, s, n, N=N, reps=args.reps, level=args.level)
            out[name][str(N)] = row
            for q, c in row.items():
                total, covered = total + args.reps, covered + c["covered"]
                zc = _z(c["covered"], args.reps, args.level)
                if worst is None or zc < worst["z"]:
                    worst = {"cell": [name, N, q], "covered": c["covered"], "reps": args.reps,
                             "coverage": c["coverage"], "z": zc}
                g = c["clt_gated"]
                clt_shown, clt_cov = clt_shown + g["shown"], clt_cov + g["covered"]
                if g["shown"] >= MIN_SHOWN:
                    zg = _z(g["covered"], g["shown"], 0.9)
                    if worst_clt is None or zg < worst_clt["z"]:
                        worst_clt = {"cell": [name, N, q], **g, "z": zg}
    conditions: dict = {}
    for name in progress(list(CONDITIONS), desc="conditions"):
        conditions[name] = {}
        for N in args.N:
            row = condition_coverage(name, args.seed, N=N, reps=args.reps, level=args.level)
            conditions[name][str(N)] = row
            for q, c in row.items():
                zc = _z(c["covered"], args.reps, args.level)
                if zc < worst["z"]:
                    worst = {"cell": [name, N, q], "covered": c["covered"], "reps": args.reps,
                             "coverage": c["coverage"], "z": zc}
    n_cells = len(cells) * len(args.N) * len(QUANTITIES)
    below = sum(_z(c["clt_gated"]["covered"], c["clt_gated"]["shown"], 0.9) < -2
                for rows in out.values() for row in rows.values() for c in row.values()
                if c["clt_gated"]["shown"] >= MIN_SHOWN)
    return {"level": args.level, "reps": args.reps, "T_max": 4, "instances": out,
            "conditions": conditions,
            "pooled": {"batches": total, "covered": covered, "coverage": covered / total},
            "worst_cell": worst,
            "clt_gated": {"shown": clt_shown, "covered": clt_cov,
                          "coverage": clt_cov / clt_shown if clt_shown else None,
                          "shown_fraction": clt_shown / (n_cells * args.reps),
                          "cells_below_0.9_by_2se": int(below), "worst_cell": worst_clt}}


def produce(args: Args) -> Path:
    """Run and write the result file with provenance."""
    path = Path(args.out) if args.out else default_out(RESULT)
    return write_results(path, run(args), experiment="error_estimate_coverage",
                         args=asdict(args), seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    return study_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
