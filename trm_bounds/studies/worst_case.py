r"""How tight are the bounds in ``T``?  Worst-case exact errors against every bound (figure F9).

For each regime and each instance family (:mod:`trm_bounds.instances.worst_case`,
:mod:`trm_bounds.instances.named`) and each horizon ``T`` on a log grid, the study records the
exact worst case over rewards ``max_R |Error|`` (docs/theory.md §2; finite-state DP, or the
walk's closed form where the DP's ``O(T S)`` memory does not fit), every sharp bound of §5 at
the instance's exact divergences, and the chi-square martingale bound of §10
(:func:`trm_bounds.bounds.chi2.chi2_bound`).  Exponents are fitted only where a power law
holds (:mod:`trm_bounds.studies._power_law`).

Regimes (per-token forward KL ``delta`` in nats):

``uniform``
    every context perturbed with KL exactly (walks) or to second order (random machine)
    ``delta = 1e-6``, so ``T delta <= 0.1`` up to ``T = 10^5``: no cap of any bound binds,
    Pinsker-Marginal and Mixed-KL grow like ``T^{3/2}``;
``uniform_large``
    the tilted walk at ``delta = 1e-4``: ``T delta`` crosses 1 at ``T = 10^4``;
``sparse``
    ``k = 4`` perturbed positions, KL ``0.01`` each, ``D_KL^seq`` fixed; placement at the
    start, the end, or spread (walk with free tokens), and the random machine's perturbed
    contexts at the start or the end.

Layout of ``trm_bounds/data/results/worst_case.json`` (besides the provenance keys)::

    {"regimes": {name: {"description": str, "families": {family: {
        "params": {...}, "source": "dp" | "closed_form",
        "T": [int], "max_error": [...],               # exact max_R |Error|
        "bounds_sharp": {bound: [...]}, "chi2_bound": [...],
        "ratio": {bound: [...]},                      # max_error / sharp bound ("chi2" too)
        "fit": {"max_error": {"slope", "window"} | null,
                "ratio": {bound: {"slope", "window"} | null}}}}}},
     "best_exponent": {regime: {"family", "slope", "window"}},
     "walk_check": {"T": [...], "dp": [...], "closed_form": [...]},   # two routes, one number
     "constant_z": {"params", "T", "max_error", "stderr", "source": ["tree" | "monte_carlo"],
                    "leading": [...],                  # delta sqrt(T(T-1)/2), Theorem 10.3's limit
                    "chi2_bound": [... | null], "ratio_leading", "ratio_chi2"},
     "notes": [...]}

The constant-``|Z_T|`` design (:mod:`trm_bounds.instances.constant_z`) runs at the uniform
``delta``: exact by the tree engine to ``T = 16``, Monte Carlo (stated standard error) beyond.

Usage: ``python -m trm_bounds.studies.worst_case`` (about a minute), ``--full`` (DP to
``T = 10^4``), ``--tiny`` (smoke test).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.bounds import BOUND_NAMES, compute_bounds
from trm_bounds.bounds.chi2 import chi2_bound
from trm_bounds.engines.dp import exact_report
from trm_bounds.engines.tree import exact_report as tree_report
from trm_bounds.instances.constant_z import constant_z, constant_z_leading, constant_z_monte_carlo
from trm_bounds.instances.finite import FiniteStateInstance
from trm_bounds.instances.named import random_walk, sparse_divergence, uniform_divergence
from trm_bounds.instances.worst_case import (
    PLACEMENTS,
    hidden_regime_walk,
    tilted_walk,
    walk_max_error_closed_form,
    walk_sequence_tv,
    walk_tilt,
    walk_tilt_positions,
)
from trm_bounds.results import write_results
from trm_bounds.studies._cli import default_out, progress, study_main
from trm_bounds.studies._fit import log_grid
from trm_bounds.studies._power_law import fit_power_law

__all__ = ["Args", "SIZES", "RESULT", "run", "produce", "main", "chi2_per_position",
           "tree_chi2_per_position", "constant_z_series"]

RESULT = "worst_case.json"
#: Exact errors below this (absolute, reward units) are float64 rounding of a vanishing
#: quantity: plotted, never fitted.
NOISE_FLOOR = 1e-13


@dataclass
class Args:
    """Arguments of the study (default: about a minute on one core).

    ``out`` None: ``trm_bounds/data/results/worst_case.json`` in a checkout, else ``./results``.
    """

    out: str | None = None  # result JSON path
    seed: int = 0  # seed of the random machines
    size: str = "default"  # preset: default, full or tiny
    T_max: int = 100_000  # largest horizon of the closed-form walk
    T_max_dp: int = 3_000  # largest horizon of the DP families with O(sqrt T) states
    T_max_small: int = 100_000  # largest horizon of the DP families with a fixed state count
    n_T: int = 16  # log-spaced grid points per family
    delta: float = 1e-6  # uniform regime: per-token forward KL (nats)
    delta_large: float = 1e-4  # uniform_large regime: per-token forward KL
    k: int = 4  # sparse regime: number of perturbed positions
    kl_sparse: float = 0.01  # sparse regime: forward KL of each perturbed context
    S_walk: int = 128  # states of the reflecting walk of named.random_walk
    S: int = 8  # states of the random machine
    V: int = 4  # its vocabulary
    cz_T_max_tree: int = 16  # constant-|Z_T| design: exact tree form up to this T
    cz_T_max: int = 1024  # and Monte Carlo beyond, up to this T
    cz_paths: int = 20_000  # Monte Carlo paths per horizon

    def __post_init__(self) -> None:
        for name in ("T_max", "T_max_dp", "T_max_small"):
            if getattr(self, name) < 4:
                raise ValueError(f"--{name.replace('_', '-')}: {getattr(self, name)} < 4")


#: Size presets.
SIZES = {
    "full": {"T_max_dp": 10_000, "n_T": 22},
    "tiny": {"T_max": 200, "T_max_dp": 60, "T_max_small": 200, "n_T": 6, "S_walk": 16,
             "cz_T_max_tree": 8, "cz_T_max": 32, "cz_paths": 2_000},
}


def chi2_per_position(inst: FiniteStateInstance) -> np.ndarray:
    r"""``chi_t = max_s chi^2(pi_theta || pi_roll)(t, s)`` ``(T,)``, over every state.

    ``chi^2(q || p) = sum_{v: p_v > 0} (q_v - p_v)^2 / p_v`` (docs/theory.md §10; no
    cancellation).  The maximum runs over all states, not only the reached ones: an upper
    bound on the maximum the chi-square bound needs, so the bound stays valid.  A
    time-broadcast policy pair is evaluated once.
    """
    pr, pt = inst.pi_roll, inst.pi_theta
    hom = pr.strides[0] == 0 and pt.strides[0] == 0
    P, Q = (pr[:1], pt[:1]) if hom else (pr, pt)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(P > 0, (Q - P) ** 2 / np.where(P > 0, P, 1.0), 0.0)
    chi = terms.sum(-1).max(-1)  # (T|1,)
    return np.broadcast_to(chi, (inst.T,)).copy() if hom else chi


def _dp_point(inst: FiniteStateInstance) -> dict[str, Any]:
    rep = exact_report(inst)
    return {
        "max_error": rep.error_max_over_rewards,
        "bounds_sharp": dict(rep.bounds_sharp),
        "chi2_bound": chi2_bound(chi2_per_position(inst), dtv_seq=min(1.0, rep.D_TV_seq)),
    }


def _walk_point(T: int, delta: float) -> dict[str, Any]:
    """The uniform tilted walk without reflection, every number in closed form."""
    e = walk_tilt(delta)
    dtv = walk_sequence_tv(T, delta)
    b = compute_bounds(T, eps=e, delta=delta, dkl_seq=T * delta, dtv_seq=dtv,
                       dbar=np.full(T, e), sharp=True)  # fmt: skip
    return {
        "max_error": walk_max_error_closed_form(T, delta),
        "bounds_sharp": dict(b),
        "chi2_bound": chi2_bound(np.full(T, 4 * e * e), dtv_seq=dtv),
    }


def _series(point: Callable[[int], dict[str, Any]], grid: np.ndarray, desc: str,
            params: dict[str, Any], source: str) -> dict[str, Any]:  # fmt: skip
    """One family over the grid: values, ratios to each bound, power-law fits."""
    rows = [point(int(T)) for T in progress(grid, desc=desc, leave=False)]
    T = np.asarray(grid, dtype=np.float64)
    err = np.array([r["max_error"] for r in rows])
    bounds = {n: np.array([r["bounds_sharp"][n] for r in rows]) for n in BOUND_NAMES}
    bounds_chi = np.array([r["chi2_bound"] for r in rows])
    ratio = {n: err / b for n, b in bounds.items()}
    ratio["chi2"] = err / bounds_chi
    fit_err = np.where(err > NOISE_FLOOR, err, 0.0)  # rounding noise is not a power law
    return {
        "params": params,
        "source": source,
        "T": [int(t) for t in grid],
        "max_error": err.tolist(),
        "bounds_sharp": {n: b.tolist() for n, b in bounds.items()},
        "chi2_bound": bounds_chi.tolist(),
        "ratio": {n: r.tolist() for n, r in ratio.items()},
        "fit": {
            "max_error": fit_power_law(T, fit_err),
            "ratio": {n: fit_power_law(T, np.where(fit_err > 0, r, 0.0))
                      for n, r in ratio.items()},
        },
    }


def constant_z_series(args: Args) -> dict[str, Any]:
    r"""The constant-``|Z_T|`` design at ``delta``: exact (tree engine) for ``T <= cz_T_max_tree``,
    Monte Carlo beyond (``cz_paths`` paths, seed ``args.seed``), beside its leading value
    ``delta sqrt(T(T-1)/2)`` (the limit of Theorem 10.3, docs/theory.md §10) and, on the tree
    points, Theorem 10.1's chi-square bound at the design's ``chi_t``."""
    d = args.delta
    T_tree = [T for T in (2, 4, 8, 16) if T <= args.cz_T_max_tree]
    T_mc = [int(T) for T in 2 ** np.arange(5, 21) if args.cz_T_max_tree < T <= args.cz_T_max]
    err, se, chi, src = [], [], [], []
    for T in progress(T_tree, desc="constant-|Z| (tree)", leave=False):
        inst = constant_z(T, d)
        err.append(tree_report(inst).error_max_over_rewards)
        se.append(0.0)
        chi.append(chi2_bound(tree_chi2_per_position(inst)))
        src.append("tree")
    for T in progress(T_mc, desc="constant-|Z| (Monte Carlo)", leave=False):
        e, s_ = constant_z_monte_carlo(T, d, n_paths=args.cz_paths, seed=args.seed)
        err.append(e)
        se.append(s_)
        chi.append(None)
        src.append("monte_carlo")
    T_all = T_tree + T_mc
    lead = [constant_z_leading(T, d) for T in T_all]
    return {
        "params": {"family": "constant_z", "delta": d, "n_paths": args.cz_paths, "seed": args.seed},
        "T": T_all, "max_error": err, "stderr": se, "source": src, "leading": lead,
        "chi2_bound": chi, "ratio_leading": [e / v for e, v in zip(err, lead, strict=True)],
        "ratio_chi2": [None if c is None else e / c for e, c in zip(err, chi, strict=True)],
    }  # fmt: skip


def tree_chi2_per_position(inst: Any) -> np.ndarray:
    """``chi_t`` ``(T,)`` of a one-prompt tree instance: max over the contexts at ``t``."""
    V, pr, pt = inst.V, inst.pi_roll[0], inst.pi_theta[0]
    out = np.empty(inst.T)
    for t in range(1, inst.T + 1):
        sl = slice((V ** (t - 1) - 1) // (V - 1), (V**t - 1) // (V - 1))
        out[t - 1] = np.max(np.sum((pt[sl] - pr[sl]) ** 2 / pr[sl], axis=-1))
    return out


def run(args: Args) -> dict[str, Any]:
    """Every regime of the result file (without provenance)."""
    g_cf = log_grid(2, args.T_max, args.n_T)
    g_dp = log_grid(2, args.T_max_dp, args.n_T)
    g_small = log_grid(2, args.T_max_small, args.n_T)
    g_sparse = log_grid(args.k, args.T_max_small, args.n_T)
    d, dl, k, kl = args.delta, args.delta_large, args.k, args.kl_sparse

    uniform = {
        "tilted_walk": _series(lambda T: _walk_point(T, d), g_cf, "walk (closed form)",
                               {"family": "tilted_walk", "delta": d}, "closed_form"),
        "hidden_regime_walk": _series(lambda T: _dp_point(hidden_regime_walk(T, delta=d)), g_dp,
                                      "hidden-regime walk", {"family": "hidden_regime_walk",
                                                             "delta": d}, "dp"),
        "reflecting_walk": _series(
            lambda T: _dp_point(random_walk(T, form="finite_state", S=args.S_walk, delta=d)),
            g_small, "reflecting walk",
            {"family": "named.random_walk", "S": args.S_walk, "delta": d}, "dp"),
        "random_machine": _series(
            lambda T: _dp_point(uniform_divergence(args.V, T, form="finite_state", S=args.S,
                                                   delta=d, seed=args.seed)),
            g_small, "random machine",
            {"family": "named.uniform_divergence", "S": args.S, "V": args.V, "delta": d,
             "seed": args.seed}, "dp"),
    }  # fmt: skip
    uniform_large = {
        "tilted_walk": _series(lambda T: _walk_point(T, dl), g_cf, "walk, large delta",
                               {"family": "tilted_walk", "delta": dl}, "closed_form"),
    }  # fmt: skip
    sparse: dict[str, Any] = {}
    for pl in PLACEMENTS:
        sparse[f"walk_{pl}"] = _series(
            lambda T, pl=pl: _dp_point(tilted_walk(T, delta=kl,
                                                   positions=walk_tilt_positions(T, k, pl))),
            g_sparse, f"sparse walk ({pl})",
            {"family": "tilted_walk", "delta": kl, "k": k, "placement": pl}, "dp")  # fmt: skip
    for at in ("start", "end"):
        sparse[f"random_machine_{at}"] = _series(
            lambda T, at=at: _dp_point(sparse_divergence(args.V, T, form="finite_state", S=args.S,
                                                         k=k, kl_size=kl, at=at, seed=args.seed)),
            g_sparse, f"sparse random machine ({at})",
            {"family": "named.sparse_divergence", "S": args.S, "V": args.V, "k": k,
             "kl_size": kl, "at": at, "seed": args.seed}, "dp")  # fmt: skip

    regimes = {
        "uniform": {"description": f"every context at forward KL {d:g}", "families": uniform},
        "uniform_large": {"description": f"every context at forward KL {dl:g}",
                          "families": uniform_large},
        "sparse": {"description": f"{k} perturbed positions at forward KL {kl:g}",
                   "families": sparse},
    }  # fmt: skip
    best = {}
    for name, reg in regimes.items():
        fits = [(f["fit"]["max_error"], fam) for fam, f in reg["families"].items()
                if f["fit"]["max_error"] is not None]  # fmt: skip
        if fits:
            fit, fam = max(fits, key=lambda x: x[0]["slope"])
            best[name] = {"family": fam, **fit}
        else:
            best[name] = None
    check_T = [int(t) for t in log_grid(2, min(args.T_max_dp, 2000), 6)]
    walk_check = {
        "T": check_T,
        "delta": d,
        "dp": [exact_report(tilted_walk(T, delta=d, width=T)).error_max_over_rewards
               for T in check_T],
        "closed_form": [walk_max_error_closed_form(T, d) for T in check_T],
    }  # fmt: skip
    notes = [
        "max_error: exact max over rewards of |Error| (final-state rewards; for the tilted walk"
        " without reflection this is the max over all rewards, docs/theory.md §10)",
        "bounds: sharp constants (docs/theory.md §5) at the exact divergences and Dbar_t",
        "chi2: the chi-square martingale bound of docs/theory.md §10",
        "fits: least squares of log value on log T over the widest window where local slopes "
        "stay within 0.05 of their median, spanning at least one decade; null: no power law",
    ]
    notes.append("constant_z: the constant-|Z_T| design at the uniform delta (exact tree to T = "
                 f"{args.cz_T_max_tree}, Monte Carlo beyond, stderr given); ratio_leading: over "
                 "delta sqrt(T(T-1)/2), the limit of Theorem 10.3; ratio_chi2: over Theorem 10.1")
    return {"regimes": regimes, "best_exponent": best, "walk_check": walk_check,
            "constant_z": constant_z_series(args), "notes": notes}


def produce(args: Args) -> Path:
    """Run the study and write its result file (with provenance); return its path."""
    out = Path(args.out) if args.out is not None else default_out(RESULT)
    data = run(args)
    write_results(out, data, experiment="worst_case", args={**asdict(args), "out": str(out)},
                  seed=args.seed)  # fmt: skip
    cz = data["constant_z"]
    print("constant_z: max_R|Error| / (delta sqrt(T(T-1)/2)) = "
          + ", ".join(f"{r:.4f} (T={T})" for T, r in zip(cz["T"], cz["ratio_leading"], strict=True)))
    for name, reg in data["regimes"].items():
        for fam, f in reg["families"].items():
            fit = f["fit"]["max_error"]
            s = "no power law" if fit is None else f"slope {fit['slope']:.3f} on {fit['window']}"
            last = {n: f["ratio"][n][-1] for n in ("pm_kl", "linear", "unified", "chi2")}
            print(f"{name:13s} {fam:22s} max_R|Error|: {s}; at T={f['T'][-1]}: "
                  + ", ".join(f"/{n} {v:.3g}" for n, v in last.items()))
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: compute and write the result file."""
    return study_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
