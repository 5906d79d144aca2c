"""Coverage of the certified bounds (docs/theory.md §9): do they hold as often as they claim?

For each setting (an exact instance), draws ``reps`` independent batches of ``N`` sequences from
``pi_roll``, computes ``X = sum_t (1 - rho_t)_+`` per sequence and each method's upper confidence
bound ``U`` at ``level`` (:mod:`trm_bounds.certify.confidence`), and records per method and ``N``:

- ``coverage``: the fraction of batches with ``U >= sum_t Dbar_t`` (exact), with its binomial
  standard error ``se``; must be ``>= level`` within ``3 se``;
- ``bound_coverage``: the fraction with ``1 * U >= max_R |Error|`` (exact, adversarial reward;
  the constant 1 of Theorem 9.3, the strictest of the three labelled constants);
- ``rel_width``: the mean of ``(U - sum_t Dbar_t) / sum_t Dbar_t``, and ``rel_ucb`` the mean of
  ``U / sum_t Dbar_t``.

Settings: random tree instances (exact values by enumeration, :mod:`trm_bounds.certify.exact`,
cross-checked against the tree engine), a tree instance without absolute continuity (top-k style
rollout: rollout zeros where theta has mass), and finite-state instances with long ``T`` (exact
values by the DP engine, sequences simulated step by step; ``max_R`` over final-state rewards).

Usage::

    python experiments/certify_coverage.py            # default (small): about a minute
    python experiments/certify_coverage.py --full     # N up to 4096, T up to 1024

(or ``python -m trm_bounds.studies.certify_coverage`` with the same flags).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trm_bounds.certify.confidence import METHODS, upper_confidence_bounds
from trm_bounds.certify.exact import sequence_table
from trm_bounds.engines import dp
from trm_bounds.instances.finite import FiniteStateInstance
from trm_bounds.instances.named import sparse_divergence, uniform_divergence
from trm_bounds.instances.random import GENERATORS
from trm_bounds.instances.tree import TreeInstance
from trm_bounds.results import write_results
from trm_bounds.studies._cli import default_out, parse_args, progress

__all__ = ["Args", "SIZES", "run", "produce", "main", "settings", "coverage_table"]

RESULT = "certify_coverage.json"


@dataclass
class Args:
    """Arguments of the study (default: 1,000 repetitions, N up to 1024, T up to 256).

    ``out`` None: ``experiments/results/certify_coverage.json`` in a source checkout.
    """

    out: str | None = None  # result JSON path
    seed: int = 0  # seed of the instances and of the sampling
    size: str = "default"  # preset: default, tiny or full
    level: float = 0.95  # confidence level 1 - alpha
    reps: int = 1000  # independent batches per (setting, N)
    N: tuple[int, ...] = (16, 64, 256, 1024)  # batch sizes
    T_long: tuple[int, ...] = (64, 256)  # horizons of the finite-state settings
    max_batch: int = 2**22  # sequences simulated at once (memory)


#: Size presets.
SIZES = {
    "tiny": {"reps": 100, "N": (16, 64), "T_long": (16,)},
    "full": {"reps": 1000, "N": (16, 64, 256, 1024, 4096), "T_long": (64, 256, 1024)},
}


@dataclass
class Setting:
    """One exact instance: a sampler of per-sequence ``X`` and the exact values."""

    name: str
    dbar_sum: float  # exact sum_t Dbar_t
    error_max: float  # exact max_R |Error| (scope in ``scope``)
    scope: str
    T: int
    tree: TreeInstance | None = None
    table: object | None = None
    finite: FiniteStateInstance | None = None

    def sample_x(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` i.i.d. values of ``X`` under ``pi_roll``."""
        if self.table is not None:
            w = self.table.w_roll.ravel()
            idx = rng.choice(w.size, size=n, p=w / w.sum())
            return self.table.X.ravel()[idx]
        return _simulate_finite(self.finite, rng, n)


def _simulate_finite(inst: FiniteStateInstance, rng: np.random.Generator, n: int) -> np.ndarray:
    """``X`` of ``n`` sequences simulated from the rollout policy of a finite-state instance."""
    s = rng.choice(inst.S, size=n, p=inst.p0)  # (n,)
    x = np.zeros(n)
    for t in range(inst.T):
        pr = inst.pi_roll[t][s]  # (n, V)
        cdf = np.cumsum(pr, axis=1)
        u = rng.random(n)[:, None] * cdf[:, -1:]
        v = np.minimum((u >= cdf).sum(axis=1), inst.V - 1)  # (n,) sampled token
        r = pr[np.arange(n), v]
        q = inst.pi_theta[t][s, v]
        x += np.clip(1.0 - q / r, 0.0, None)
        s = inst.f[s, v]
    return x


def _non_ac_tree(seed: int) -> TreeInstance:
    """A top-k style pair: the rollout zeroes its least likely token where theta keeps mass."""
    base = GENERATORS["dense"](seed, 3, 4, 1)
    pr = base.pi_roll.copy()
    k = np.argmin(pr, axis=-1)
    np.put_along_axis(pr, k[..., None], 0.0, axis=-1)
    pr /= pr.sum(axis=-1, keepdims=True)
    return TreeInstance.from_arrays(base.p_x, pr, base.pi_theta, base.reward, id="non_ac_topk")


def settings(args: Args) -> list[Setting]:
    """The exact instances of the study."""
    out = []
    trees = [("tree_dense", GENERATORS["dense"](args.seed + 1, 3, 4, 2)),
             ("tree_sparse", GENERATORS["sparse_divergence"](args.seed + 2, 3, 4, 1)),
             ("tree_moe_flip", GENERATORS["moe_flip"](args.seed + 3, 3, 4, 1)),
             ("tree_non_ac", _non_ac_tree(args.seed + 4))]
    for name, inst in trees:
        tb = sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, inst.reward)
        out.append(Setting(name, tb.dbar_sum, tb.error_max, "all rewards", inst.T, tree=inst,
                           table=tb))
    for T in args.T_long:
        for name, inst in (
            ("finite_uniform", uniform_divergence(4, T, form="finite_state", S=8, delta=1e-3,
                                                  seed=args.seed)),
            ("finite_sparse", sparse_divergence(4, T, form="finite_state", S=8, k=4,
                                                kl_size=0.05, seed=args.seed)),
        ):
            rep = dp.exact_report(inst)
            out.append(Setting(f"{name}_T{T}", float(np.sum(rep["Dbar"])),
                               float(rep["error_max_over_rewards"]), "final-state rewards", T,
                               finite=inst))
    return out


def coverage_table(setting: Setting, *, N: int, reps: int, level: float,
                   rng: np.random.Generator, max_batch: int = 2**22) -> dict:
    """Coverage, bound coverage and relative widths of every method at one ``(setting, N)``."""
    chunks = []
    per = max(1, max_batch // N)
    for start in range(0, reps, per):
        m = min(per, reps - start)
        chunks.append(setting.sample_x(rng, m * N).reshape(m, N))
    x = np.concatenate(chunks)  # (reps, N)
    exact = setting.dbar_sum
    row = {}
    for method in METHODS:
        u = upper_confidence_bounds(x, upper=float(setting.T), level=level, method=method)
        cov = float(np.mean(u >= exact))
        row[method] = {
            "coverage": cov,
            "se": math.sqrt(level * (1 - level) / reps),
            "bound_coverage": float(np.mean(u >= setting.error_max)),
            "rel_width": float(np.mean((u - exact) / exact)) if exact > 0 else None,
            "rel_ucb": float(np.mean(u / exact)) if exact > 0 else None,
        }
    row["estimate_rel_sd"] = float(x.mean(axis=1).std() / exact) if exact > 0 else None
    return row


def run(args: Args) -> dict:
    """The coverage table: ``settings[name]['N'][str(N)][method]``."""
    rng = np.random.default_rng(args.seed)
    out = {}
    for st in progress(settings(args), desc="certify coverage"):
        sec = {"dbar_sum": st.dbar_sum, "error_max": st.error_max, "error_max_scope": st.scope,
               "T": st.T, "N": {}}
        for n in args.N:
            sec["N"][str(n)] = coverage_table(st, N=n, reps=args.reps, level=args.level,
                                              rng=rng, max_batch=args.max_batch)
        out[st.name] = sec
    return {"level": args.level, "methods": list(METHODS), "settings": out}


def produce(args: Args) -> Path:
    """Run and write the result file with provenance."""
    path = Path(args.out) if args.out else default_out(RESULT)
    return write_results(path, run(args), experiment="certify_coverage", args=asdict(args),
                         seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    """Command line."""
    args = parse_args(Args, argv, description=__doc__.splitlines()[0], sizes=SIZES)
    print(produce(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
