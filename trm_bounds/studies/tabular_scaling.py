r"""Exact surrogate error against every bound as ``T`` grows (figure F3).

The finite-state DP engine (:mod:`trm_bounds.engines.dp`) computes, for each horizon
``T`` on a log grid from 2 to ``T_max``, the exact ``|Error|`` (docs/theory.md §2) of a
fixed final-state reward, the worst case ``max_R |Error|`` over final-state rewards, the
exact divergences (§3) and every bound of §4 (published) and §5
(sharp) at those exact values, with the exact ``Dbar_t``.  Two regimes, each with one
seeded state machine and one reward shared by every ``T``.  Two machines:

- a *slowly mixing* reflecting random walk (``V = 2``, ``S`` states, reward
  ``1[s_{T+1} >= S/2 + 4]``, :func:`~trm_bounds.instances.named.random_walk`): the
  effect of every perturbation persists for about ``S^2`` steps, so errors accumulate;
- a *fast-mixing* random machine (``S = 8``, ``V = 4``, reward the indicator of a random
  half of the states): the final state forgets early perturbations within a few steps.

Regimes (keys of ``regimes``):

``uniform`` (walk, ``S = 128``) and ``uniform_mixing`` (random machine)
    every ``(t, s)`` perturbed at one size, forward ``KL(t, s) = delta`` (exact for the
    walk, to second order for the random machine), so ``D_KL^seq ~ T delta``.
    ``delta = 1e-4`` keeps ``T delta <= 1`` up to ``T = 10^4``: the Pinsker-Marginal caps
    ``sqrt((t-1) delta/2) <= 0.71`` and the Mixed caps never bind; the Coupling cap
    ``(t-1) eps <= 1`` binds from ``T ~ 1/eps`` (``eps ~ 5e-3`` to ``7e-3``: ``T >~ 150``).
``sparse`` (walk, ``S = 64``) and ``sparse_mixing`` (random machine)
    ``n_contexts = 3`` perturbed contexts with forward KL ``kl_size = 0.01`` each, on one
    path (walk: positions 1-3 along the upward path from the start; random machine: the
    last two positions), so ``D_KL^seq`` stays fixed (walk) or bounded (random machine);
    the PM caps bind from ``T ~ 2/delta = 200``.

Layout of ``experiments/results/tabular_scaling.json`` (besides the provenance keys of
:func:`trm_bounds.results.write_results`)::

    {"regimes": {"uniform" | "sparse" | "uniform_mixing" | "sparse_mixing": {
        "params":  {"machine": "random_walk" | "random", generator arguments},
        "T":       [int, ...],                       # the grid, ascending
        "abs_error":              [...],             # |Error| of the instance's reward
        "error":                  [...],             # signed Error
        "error_max_over_rewards": [...],             # max over final-state rewards
        "eps", "delta", "D_KL_seq", "D_TV_seq", "D_TV_seq_lower", "J_roll", "L_prime": [...],
        "D_TV_seq_method":        ["exact" | "bhattacharyya_upper" | "pinsker_upper", ...],
        "bounds_published": {bound name: [...]},     # trm_bounds.bounds.BOUND_NAMES
        "bounds_sharp":     {bound name: [...]},
        "slopes": {"abs_error": s, "error_max_over_rewards": s,
                   "bounds_published": {name: s}, "bounds_sharp": {name: s}},
        "fit_window": [T_lo, T_hi],                  # slopes: least squares of log value
    }}, "notes": [...]}                              #   on log T over this window

Slopes of quantities with a non-positive value in the window are ``null``.  Where
``D_TV_seq_method`` is not ``"exact"`` the Mixed-TV bound (and the unified minimum) is
evaluated at a certified upper bound of ``D_TV^seq``; all bounds are non-decreasing in
``D_TV^seq``, so they remain valid upper bounds.

Usage::

    python experiments/tabular_scaling.py            # default grid, under a minute
    python experiments/tabular_scaling.py --full     # T up to 10^5, finer grid
    python experiments/tabular_scaling.py --tiny     # smoke test

(or ``python -m trm_bounds.studies.tabular_scaling`` with the same flags).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trm_bounds.bounds import BOUND_NAMES
from trm_bounds.engines.dp import exact_report
from trm_bounds.instances.finite import FiniteStateInstance
from trm_bounds.instances.named import random_walk, sparse_divergence, uniform_divergence
from trm_bounds.results import write_results
from trm_bounds.studies._cli import default_out, parse_args, progress
from trm_bounds.studies._fit import fit_slope, log_grid

RESULT = "tabular_scaling.json"
#: Per-T scalar keys copied from :func:`trm_bounds.engines.dp.exact_report`.
SCALARS = (
    "error",
    "error_max_over_rewards",
    "eps",
    "delta",
    "D_KL_seq",
    "D_TV_seq",
    "D_TV_seq_lower",
    "J_roll",
    "L_prime",
)


@dataclass
class Args:
    """Arguments of the study (default: about 20 horizons up to 10^4).

    ``out`` None: ``experiments/results/tabular_scaling.json`` in a source checkout, else
    ``./results/tabular_scaling.json``.
    """

    out: str | None = None  # result JSON path
    seed: int = 0  # seed of the random machine, its policies and its reward
    size: str = "default"  # preset the sizes come from: default, full or tiny
    T_max: int = 10_000  # largest horizon
    n_T: int = 22  # log-spaced grid points on [2, T_max]
    fit_lo: int = 100  # slopes are fitted on [fit_lo, T_max]
    S: int = 8  # states of the random (fast-mixing) machine
    V: int = 4  # its vocabulary
    S_walk_uniform: int = 128  # states of the random walk, uniform regime
    S_walk_sparse: int = 64  # states of the random walk, sparse regime
    delta: float = 1e-4  # uniform regimes: per-context forward KL (nats)
    n_contexts: int = 3  # sparse regimes: number of perturbed contexts
    kl_size: float = 0.01  # sparse regimes: forward KL of each perturbed context (nats)
    at: str = "end"  # sparse random machine: perturbed contexts at the last two positions

    def __post_init__(self) -> None:
        if self.T_max < 2:
            raise ValueError(f"--T-max: {self.T_max} < 2")


#: Size presets (``--full``: T up to 10^5; ``--tiny``: smoke test and plot-test fixture).
SIZES = {
    "full": {"T_max": 100_000, "n_T": 40, "fit_lo": 1000},
    "tiny": {"T_max": 50, "n_T": 6, "fit_lo": 5, "S_walk_uniform": 16, "S_walk_sparse": 16},
}


def run_regime(
    make: Any, grid: np.ndarray, fit_lo: int, desc: str, params: dict[str, Any]
) -> dict[str, Any]:
    """Exact reports over the grid for one regime, stacked into lists, with slopes."""
    cols: dict[str, list] = {k: [] for k in SCALARS + ("D_TV_seq_method",)}
    pub = {name: [] for name in BOUND_NAMES}
    sharp = {name: [] for name in BOUND_NAMES}
    for T in progress(grid, desc=desc, leave=False):
        inst: FiniteStateInstance = make(int(T))
        rep = exact_report(inst).to_dict()
        for k in cols:
            cols[k].append(rep[k])
        for name in BOUND_NAMES:
            pub[name].append(rep["bounds_published"][name])
            sharp[name].append(rep["bounds_sharp"][name])
    T_arr = np.asarray(grid, dtype=np.float64)
    hi = float(grid[-1])
    abs_error = np.abs(cols["error"])
    out: dict[str, Any] = {"params": params, "T": [int(t) for t in grid]}
    out["abs_error"] = abs_error
    out.update(cols)
    out["bounds_published"] = pub
    out["bounds_sharp"] = sharp
    out["slopes"] = {
        "abs_error": fit_slope(T_arr, abs_error, fit_lo, hi),
        "error_max_over_rewards": fit_slope(T_arr, cols["error_max_over_rewards"], fit_lo, hi),
        "D_KL_seq": fit_slope(T_arr, cols["D_KL_seq"], fit_lo, hi),
        "bounds_published": {n: fit_slope(T_arr, pub[n], fit_lo, hi) for n in BOUND_NAMES},
        "bounds_sharp": {n: fit_slope(T_arr, sharp[n], fit_lo, hi) for n in BOUND_NAMES},
    }
    out["fit_window"] = [fit_lo, int(hi)]
    return out


def run(args: Args) -> dict[str, Any]:
    """Every regime of the result file (without provenance)."""
    grid = log_grid(2, args.T_max, args.n_T)
    seed = args.seed
    uni_params = {"machine": "random", "S": args.S, "V": args.V, "delta": args.delta}
    sp_params = {
        "machine": "random",
        "S": args.S,
        "V": args.V,
        "n_contexts": args.n_contexts,
        "kl_size": args.kl_size,
        "at": args.at,
    }
    walk_uni = {"machine": "random_walk", "S": args.S_walk_uniform, "V": 2, "delta": args.delta}
    walk_sp = {
        "machine": "random_walk",
        "S": args.S_walk_sparse,
        "V": 2,
        "n_contexts": args.n_contexts,
        "kl_size": args.kl_size,
    }
    makers = {
        "uniform": (
            lambda T: random_walk(T, form="finite_state", S=args.S_walk_uniform,
                                  delta=args.delta),
            walk_uni,
        ),
        "sparse": (
            lambda T: random_walk(T, form="finite_state", S=args.S_walk_sparse,
                                  delta=args.kl_size, k=args.n_contexts),
            walk_sp,
        ),
        "uniform_mixing": (
            lambda T: uniform_divergence(args.V, T, form="finite_state", S=args.S,
                                         delta=args.delta, seed=seed),
            {**uni_params, "seed": seed},
        ),
        "sparse_mixing": (
            lambda T: sparse_divergence(args.V, T, form="finite_state", S=args.S,
                                        k=args.n_contexts, kl_size=args.kl_size, at=args.at,
                                        seed=seed),
            {**sp_params, "seed": seed},
        ),  # fmt: skip
    }
    regimes = {
        name: run_regime(make, grid, args.fit_lo, name, params)
        for name, (make, params) in makers.items()
    }
    notes = [
        "error: J(theta) - J(roll) - L' (centred surrogate), exact by DP (docs/theory.md §2)",
        "error_max_over_rewards: max over rewards that are functions of the final state",
        "bounds use the exact Dbar_t; D_TV_seq beyond enumeration is a certified upper bound",
    ]
    return {"regimes": regimes, "notes": notes}


def produce(args: Args) -> Path:
    """Run the study and write its result file (with provenance); return its path."""
    out = Path(args.out) if args.out is not None else default_out(RESULT)
    data = run(args)
    write_results(out, data, experiment="tabular_scaling",
                  args={**asdict(args), "out": str(out)}, seed=args.seed)
    for name, reg in data["regimes"].items():
        s = reg["slopes"]
        print(
            f"{name:8s} slopes on T in {reg['fit_window']}: |Error| {s['abs_error']}, "
            f"max_R {s['error_max_over_rewards']}, "
            + ", ".join(f"{n} {v:.2f}" for n, v in s["bounds_published"].items() if v is not None)
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: compute and write the result file."""
    args = parse_args(Args, argv, description=__doc__.split("\n")[0], sizes=SIZES)
    print(f"wrote {produce(args)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
