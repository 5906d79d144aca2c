r"""Certified bounds against the exact error, against ``N`` and against ``T`` (figure F9).

For policy pairs whose error is known exactly, the study samples ``N`` sequences from
``pi_roll`` ``reps`` times and records, per repetition, what a user with those logs gets
(docs/theory.md §9):

- the certified bounds on ``|Error|`` at ``level``: Linear ``c U`` with ``c = 4``
  (published), ``2`` (sharp) and ``1`` (proved in docs/theory.md §9, Theorem 9.3), ``U``
  the upper confidence bound of ``method`` on the mean of ``X_i`` in ``[0, T]``
  (:mod:`trm_bounds.certify`);
- the estimated error (the sample mean of ``R (prod rho - 1 - sum (rho - 1))``) with its
  CLT interval (an estimate, :func:`trm_bounds.certify.estimate_error`);

beside the exact ``|Error|``, ``max_R |Error|``, ``sum_t Dbar_t`` and the paper's ``B*``
evaluated at the *exact* maxima ``delta, eps`` (the conditional bound, which a log cannot
give).  Pairs: the transformer pairs exported by the transformer study
(``transformer_instances.json``, tree instances, exact by enumeration,
:mod:`trm_bounds.engines.tree`) against ``N``, and the finite-state family
:func:`~trm_bounds.instances.named.uniform_divergence` (exact by
:mod:`trm_bounds.engines.dp`) against ``N`` at ``T_for_N`` and against ``T`` at ``N_for_T``.

Finite-state sequences are sampled step by step, and the per-sequence variables are
accumulated online (``X = sum_t (1 - rho_t)_+``, ``S = sum_t r_t``,
``U = sum_t expm1(r_t)``); memory ``O(N reps)`` for any ``T``.

Layout of ``certify_figure.json``::

    {"level", "method", "reps",
     "panels": {name: {"family": "transformer" | "finite_state", "axis": "N" | "T",
                       "x": [...], "T": [...], "N": [...],
                       "exact": {"abs_error", "error_max_over_rewards", "dbar_sum",
                                 "unified_published", "unified_sharp": [...]},
                       "series": {"proved_median", "proved_lo", "proved_hi",
                                  "linear_published_median", "linear_sharp_median",
                                  "estimate_median", "estimate_lo_median",
                                  "estimate_hi_median", "ucb_coverage", "bound_coverage",
                                  "ci_coverage": [...]}}}}

``*_lo``/``*_hi`` are the 10% and 90% quantiles over repetitions; coverages are fractions
of repetitions (UCB >= exact sum Dbar; the constant-1 bound >= exact |Error|; CLT
interval contains the exact Error).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from trm_bounds.certify.confidence import upper_confidence_bounds
from trm_bounds.certify.error_estimate import error_terms
from trm_bounds.certify.samples import divergence_terms
from trm_bounds.results import write_results
from trm_bounds.studies._cli import default_out, progress, study_main

RESULT = "certify_figure.json"
#: The transformer pair file this study reads (written by ``transformer_mismatch``).
INSTANCES = "transformer_instances.json"


@dataclass
class Args:
    """Arguments of the study (default: under two minutes on two cores)."""

    out: str | None = None  # result JSON path (default experiments/results/certify_figure.json)
    instances: str | None = None  # transformer pairs (default: beside out, else shipped)
    seed: int = 0  # sampling seed and the finite-state family's seed
    size: str = "default"  # preset: default or tiny
    reps: int = 200  # repetitions per point
    level: float = 0.95  # confidence level of the certificates and intervals
    method: str = "betting"  # confidence bound: betting, bernstein or hoeffding
    Ns: tuple[int, ...] = (16, 64, 256, 1024, 4096)  # sequences per repetition (N axis)
    Ts: tuple[int, ...] = (4, 16, 64, 256, 1024)  # horizons (T axis, finite-state)
    N_for_T: int = 1024  # sequences per repetition on the T axis
    T_for_N: int = 64  # finite-state horizon on the N axis
    transformer_ids: tuple[str, ...] = ("transformer-staleness-V4-T4",
                                        "transformer-weight_noise_0.1-V4-T4")  # fmt: skip
    delta: float = 1e-3  # finite-state per-context forward KL (nats)
    S: int = 8  # finite-state states
    V: int = 4  # finite-state vocabulary

    def __post_init__(self) -> None:
        if self.reps < 2 or min(self.Ns) < 2:
            raise ValueError("--reps and every --Ns must be >= 2")


SIZES = {"tiny": {"reps": 20, "Ns": (16, 64), "Ts": (4, 8), "N_for_T": 64, "T_for_N": 8,
                  "transformer_ids": ("transformer-staleness-V4-T4",)}}  # fmt: skip


def _summaries(x, S, U, R, T: int, exact: dict[str, float], args: Args) -> dict[str, float]:
    """Per-repetition certificates and estimates (rows of ``(reps, N)`` arrays), summarised."""
    ux = upper_confidence_bounds(x, upper=float(T), level=args.level, method=args.method)
    err = error_terms(S, U, R)["error"]  # (reps, N), the one owner of the summand
    n = x.shape[1]
    est = err.mean(axis=1)
    half = NormalDist().inv_cdf(1 - (1 - args.level) / 2) * err.std(axis=1, ddof=1) / np.sqrt(n)
    q = (10, 50, 90)
    f_lo, f_med, f_hi = np.percentile(ux, q)
    e = exact["error"]
    return {
        "proved_median": f_med, "proved_lo": f_lo, "proved_hi": f_hi,
        "linear_published_median": float(np.median(4 * ux)),
        "linear_sharp_median": float(np.median(2 * ux)),
        "estimate_median": float(np.median(est)),
        "estimate_lo_median": float(np.median(est - half)),
        "estimate_hi_median": float(np.median(est + half)),
        "ucb_coverage": float(np.mean(ux >= exact["dbar_sum"])),
        "bound_coverage": float(np.mean(ux >= abs(e))),
        "ci_coverage": float(np.mean((est - half <= e) & (e <= est + half))),
    }  # fmt: skip


def _exact(rep: Any) -> dict[str, float]:
    return {"error": float(rep["error"]), "abs_error": abs(float(rep["error"])),
            "error_max_over_rewards": float(rep["error_max_over_rewards"]),
            "dbar_sum": float(np.sum(rep["Dbar"])),
            "unified_published": float(rep["bounds_published"]["unified"]),
            "unified_sharp": float(rep["bounds_sharp"]["unified"])}  # fmt: skip


def _tree_table(inst: Any) -> tuple[np.ndarray, ...]:
    """Every (prompt, response): roll probability ``(M,)``, log-probs ``(M, T)`` of both
    policies at the response's tokens, and the reward ``(M,)``, ``M = n_prompts V^T``."""
    from trm_bounds.instances.tree import n_contexts

    V, T = inst.V, inst.T
    k = np.arange(V**T)
    y = (k[:, None] // V ** np.arange(T - 1, -1, -1)[None, :]) % V  # (V^T, T) tokens
    ctx = np.zeros_like(y)
    for t in range(1, T):  # ctx(t, y_<t) = n_contexts(V, t) + prefix read in base V
        ctx[:, t] = n_contexts(V, t) + k // V ** (T - t)
    lr = np.log(inst.pi_roll[:, ctx, y])  # (P, V^T, T)
    with np.errstate(divide="ignore"):
        lp = np.log(inst.pi_theta[:, ctx, y])
    prob = inst.p_x[:, None] * np.exp(lr.sum(axis=2))
    return prob.reshape(-1), lp.reshape(-1, T), lr.reshape(-1, T), inst.reward.reshape(-1)


def _tree_terms(table, n: int, reps: int, rng) -> tuple[np.ndarray, ...]:
    """Sample ``reps x n`` responses and return ``X, S, U, R``, each ``(reps, n)``."""
    prob, lp, lr, reward = table
    idx = rng.choice(prob.shape[0], size=reps * n, p=prob / prob.sum())
    r = lp[idx] - lr[idx]  # (reps n, T), -inf allowed
    a = divergence_terms(r, np.ones_like(r, dtype=bool))
    with np.errstate(over="ignore"):
        u = np.expm1(r).sum(axis=1)
    cols = (a.sum(axis=1), r.sum(axis=1), u, reward[idx])
    return tuple(c.reshape(reps, n) for c in cols)


def _finite_terms(inst: Any, n: int, reps: int, rng) -> tuple[np.ndarray, ...]:
    """Sample ``reps x n`` sequences of a finite-state instance; online ``X, S, U, R``."""
    m = reps * n
    s = rng.choice(inst.p0.shape[0], size=m, p=inst.p0)
    X, S, U = (np.zeros(m) for _ in range(3))
    for t in range(inst.pi_roll.shape[0]):
        pr, pt = inst.pi_roll[t, s], inst.pi_theta[t, s]  # (m, V)
        v = (np.cumsum(pr, axis=1) < rng.random(m)[:, None]).sum(axis=1)
        v = np.minimum(v, pr.shape[1] - 1)
        r = np.log(pt[np.arange(m), v]) - np.log(pr[np.arange(m), v])
        X += -np.expm1(np.minimum(r, 0.0))
        S += r
        U += np.expm1(r)
        s = inst.f[s, v]
    cols = (X, S, U, inst.reward[s])
    return tuple(c.reshape(reps, n) for c in cols)


def _panel(family: str, axis: str, xs, Ts, Ns, exacts, summaries) -> dict[str, Any]:
    keys = ("abs_error", "error_max_over_rewards", "dbar_sum", "unified_published",
            "unified_sharp")  # fmt: skip
    return {"family": family, "axis": axis, "x": list(xs), "T": list(Ts), "N": list(Ns),
            "exact": {k: [e[k] for e in exacts] for k in keys},
            "series": {k: [s[k] for s in summaries] for k in summaries[0]}}  # fmt: skip


def _instances_path(args: Args, out: Path) -> Path:
    if args.instances is not None:
        return Path(args.instances)
    beside = out.parent / INSTANCES
    if beside.is_file():
        return beside
    from trm_bounds.results import results_dir

    return Path(results_dir()) / INSTANCES


def run(args: Args, out: Path | None = None) -> dict[str, Any]:
    """The panels of F9 (module docstring)."""
    from trm_bounds.engines.dp import exact_report as dp_report
    from trm_bounds.engines.tree import exact_report as tree_report
    from trm_bounds.instances.format import load_instances
    from trm_bounds.instances.named import uniform_divergence

    rng = np.random.default_rng(args.seed)
    panels: dict[str, Any] = {}
    path = _instances_path(args, out or default_out(RESULT))
    by_id = {inst.id: inst for inst in load_instances(path)}
    for tid in args.transformer_ids:
        if tid not in by_id:
            raise ValueError(f"{path}: no instance {tid!r} (have {', '.join(by_id)})")
        inst = by_id[tid]
        ex, table = _exact(tree_report(inst)), _tree_table(inst)
        summ = [_summaries(*_tree_terms(table, n, args.reps, rng), inst.T, ex, args)
                for n in progress(args.Ns, desc=tid, leave=False)]  # fmt: skip
        panels[tid] = _panel("transformer", "N", args.Ns, [inst.T] * len(args.Ns), args.Ns,
                             [ex] * len(args.Ns), summ)  # fmt: skip

    def fs(T: int):
        return uniform_divergence(args.V, T, form="finite_state", S=args.S, delta=args.delta,
                                  seed=args.seed)  # fmt: skip

    inst = fs(args.T_for_N)
    ex = _exact(dp_report(inst))
    summ = [_summaries(*_finite_terms(inst, n, args.reps, rng), args.T_for_N, ex, args)
            for n in progress(args.Ns, desc="finite-state, N", leave=False)]  # fmt: skip
    panels["finite_state_vs_N"] = _panel("finite_state", "N", args.Ns,
                                         [args.T_for_N] * len(args.Ns), args.Ns,
                                         [ex] * len(args.Ns), summ)  # fmt: skip
    exs, summ = [], []
    for T in progress(args.Ts, desc="finite-state, T", leave=False):
        inst = fs(T)
        exs.append(_exact(dp_report(inst)))
        summ.append(_summaries(*_finite_terms(inst, args.N_for_T, args.reps, rng), T, exs[-1],
                               args))  # fmt: skip
    panels["finite_state_vs_T"] = _panel("finite_state", "T", args.Ts, args.Ts,
                                         [args.N_for_T] * len(args.Ts), exs, summ)  # fmt: skip
    return {"level": args.level, "method": args.method, "reps": args.reps, "panels": panels,
            "instances": str(path.name)}  # fmt: skip


def produce(args: Args) -> Path:
    """Run the study and write its result file (with provenance); return its path."""
    out = Path(args.out) if args.out is not None else default_out(RESULT)
    data = run(args, out)
    write_results(out, data, experiment="certify_figure", args={**asdict(args), "out": str(out)},
                  seed=args.seed)  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: compute and write the result file."""
    return study_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
