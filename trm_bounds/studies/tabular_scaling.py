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

Layout of ``trm_bounds/data/results/tabular_scaling.json`` (besides the provenance keys of
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
        "fits": {"abs_error" | "error_max_over_rewards" | "D_KL_seq":
                     {"slope", "window": [T_lo, T_hi]} | null,
                 "bounds_published" | "bounds_sharp": {name: {...} | null}},
        "slopes": the same, slopes only (null: no power law),
        "sign_changes": [[T_i, T_i+1], ...],         # where the signed Error changes sign
        "decay": {"rate", "window"} | null,          # max_R |Error| ~ exp(-rate T) there
    }}, "notes": [...]}

A slope is fitted only over a window where the curve is a power law: local log-log slopes
within 0.05 of their median over at least one decade (:mod:`trm_bounds.studies._power_law`).
So no slope is fitted across a sign change of ``Error`` (``|Error|`` has a cusp there) or over
an exponential decay.  Why the sparse errors decay: the perturbed contexts sit at the first
positions, and the final state forgets them.  The reflecting walk on ``S = 64`` states diffuses
first (``max_R |Error| ~ T^{-1/2}`` while ``T << S^2``: the perturbation's trace is smeared over
``sqrt(T)`` states) and then mixes, after which the error falls exponentially (rate close to
the spectral gap ``-log cos(pi/S)`` of the walk); the random machine mixes within a few steps.
Exact errors below ``1e-13`` are float64 rounding of a vanishing quantity and are never fitted.

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
from trm_bounds.studies._cli import default_out, progress, study_main
from trm_bounds.studies._fit import log_grid
from trm_bounds.studies._power_law import fit_exponential_tail, fit_power_law, sign_changes

RESULT = "tabular_scaling.json"
#: Exact errors below this (absolute) are float64 rounding of a vanishing quantity: never fitted.
NOISE_FLOOR = 1e-13
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

    ``out`` None: ``trm_bounds/data/results/tabular_scaling.json`` in a source checkout, else
    ``./results/tabular_scaling.json``.
    """

    out: str | None = None  # result JSON path
    seed: int = 0  # seed of the random machine, its policies and its reward
    size: str = "default"  # preset the sizes come from: default, full or tiny
    T_max: int = 10_000  # largest horizon
    n_T: int = 22  # log-spaced grid points on [2, T_max]
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
    "full": {"T_max": 100_000, "n_T": 40},
    "tiny": {"T_max": 50, "n_T": 6, "S_walk_uniform": 16, "S_walk_sparse": 16},
}


def run_regime(make: Any, grid: np.ndarray, desc: str, params: dict[str, Any]) -> dict[str, Any]:
    """Exact reports over the grid for one regime, stacked into lists, with power-law fits
    (only where one holds, :mod:`trm_bounds.studies._power_law`), the sign changes of the
    signed error and, where the worst-case error decays exponentially, its rate."""
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
    abs_error = np.abs(cols["error"])
    out: dict[str, Any] = {"params": params, "T": [int(t) for t in grid]}
    out["abs_error"] = abs_error
    out.update(cols)
    out["bounds_published"] = pub
    out["bounds_sharp"] = sharp

    def fit(y: Any) -> dict[str, Any] | None:
        return fit_power_law(T_arr, np.asarray(y, dtype=np.float64), floor=NOISE_FLOOR)

    fits = {
        "abs_error": fit(abs_error),
        "error_max_over_rewards": fit(cols["error_max_over_rewards"]),
        "D_KL_seq": fit(cols["D_KL_seq"]),
        "bounds_published": {n: fit(pub[n]) for n in BOUND_NAMES},
        "bounds_sharp": {n: fit(sharp[n]) for n in BOUND_NAMES},
    }
    out["fits"] = fits
    out["slopes"] = {
        k: ({n: (f or {}).get("slope") for n, f in v.items()} if k.startswith("bounds")
            else (v or {}).get("slope"))
        for k, v in fits.items()
    }  # fmt: skip
    out.update(error_shape(T_arr, cols["error"], cols["error_max_over_rewards"]))
    return out


def error_shape(T: Any, error: Any, error_max: Any) -> dict[str, Any]:
    """Where the signed ``error`` changes sign and whether ``error_max`` (max_R |Error|) decays
    exponentially (keys ``sign_changes``, ``decay`` of the result file), both with the margin
    of :mod:`trm_bounds.studies._power_law` over the noise floor :data:`NOISE_FLOOR`."""
    T = np.asarray(T, dtype=np.float64)
    m = np.asarray(error_max, dtype=np.float64)
    return {"sign_changes": sign_changes(T, np.asarray(error, dtype=np.float64), floor=NOISE_FLOOR),
            "decay": fit_exponential_tail(T, m, floor=NOISE_FLOOR)}  # fmt: skip


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
        name: run_regime(make, grid, name, params)
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
        f = reg["fits"]
        desc = {k: ("no power law" if f[k] is None else
                    f"slope {f[k]['slope']:.2f} on {f[k]['window']}")
                for k in ("abs_error", "error_max_over_rewards")}  # fmt: skip
        print(f"{name:14s} |Error|: {desc['abs_error']}; max_R: "
              f"{desc['error_max_over_rewards']}; sign changes {reg['sign_changes']}; "
              f"exponential decay {reg['decay']}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: compute and write the result file."""
    return study_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
