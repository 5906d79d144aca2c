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
The conditions of docs/theory.md §9, each a setting of its own:

- ``varlen_eos``: an end-of-sequence token makes responses of length 100 (probability 0.02,
  each token with ``(1 - rho)_+ = 0.99``) or 1 (no divergence): ``sum_t Dbar_t = 1.98``,
  ``T_max = 100`` (the generation limit).  ``observed_max_coverage`` records, for contrast, the
  invalid range ``max_i T_i`` of the log (the counterexample of §9);
- ``groups_G8``, ``groups_G16``: GRPO groups of ``G`` responses per prompt, correlated through a
  per-prompt latent (a hard prompt with probability 0.1; a divergence scale ``u ~ U(0, 1)``):
  ``X = T u B`` with ``B ~ Bernoulli(0.9 if hard else 0.01)``, ``T = 64``.  ``N`` counts groups
  here; the bound is over the group means; ``ungrouped_coverage`` records, for contrast, the
  invalid bound that treats the ``N G`` rows as independent;
- ``tree_dense_R0_1000``, ``tree_dense_R-3_5``, ``tree_non_ac_R1_2``: rewards in ``[lo, hi]``;
  ``bound_coverage`` is then ``((hi - lo) + dist(0, [lo, hi])) U >= max_{R in [lo, hi]}
  |Error|`` (exact, §9 reward ranges).

The repetitions of each ``(setting, N)`` are cut into blocks of ``block_reps``; each block draws
its batches from its own generator, seeded by ``(seed, crc32(setting name), N, first
repetition)``, so the numbers do not depend on the engine. ``--engine ray`` checks the blocks in
Ray tasks: a task rebuilds its settings from their seeds (only seeds go out) and returns the
per-repetition indicators (never the samples); the table equals the local one to the bit.

Usage::

    python experiments/certify_coverage.py            # default (small): about a minute
    python experiments/certify_coverage.py --full     # N up to 4096, T up to 1024
    python experiments/certify_coverage.py --engine ray [--address auto]

(or ``python -m trm_bounds.studies.certify_coverage`` with the same flags).
"""

from __future__ import annotations

import functools
import math
import sys
import zlib
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

__all__ = ["Args", "SIZES", "Block", "run", "produce", "main", "settings", "make_setting",
           "coverage_table", "coverage_blocks"]

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
    block_reps: int = 250  # repetitions per block (one generator each: part of the seeding)
    engine: str = "local"  # local, or ray: the blocks checked in Ray tasks
    address: str | None = None  # Ray address (None: start a local cluster; auto; ray://...)

    def __post_init__(self) -> None:
        if self.engine not in ("local", "ray"):
            raise ValueError(f"engine must be local or ray, got {self.engine!r}")
        if self.block_reps < 1:
            raise ValueError(f"block_reps must be >= 1, got {self.block_reps}")


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
    kind: str = ""  # make_setting(kind, seed[, T]) rebuilds it
    seed: int = 0
    group: int = 0  # G > 0: N counts groups of G correlated responses (sample_x gives N G rows)
    bound_factor: float = 1.0  # (hi - lo) + dist(0, [lo, hi]) of the reward range

    def sample_x(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` i.i.d. values of ``X`` under ``pi_roll`` (``n`` groups of ``G`` rows, group by
        group, for a group setting)."""
        if self.kind == "varlen_eos":
            return np.where(rng.random(n) < VARLEN_P_LONG, VARLEN_A * self.T, 0.0)
        if self.group:
            hard = rng.random((n, 1)) < GROUP_P_HARD  # (n, 1) per-prompt latents
            u = rng.random((n, 1))
            b = rng.random((n, self.group)) < np.where(hard, 0.9, 0.01)  # (n, G)
            return (self.T * u * b).reshape(-1)
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


#: Tree settings (exact by enumeration) and finite-state ones (exact by DP, one per ``T_long``).
TREE_KINDS = ("tree_dense", "tree_sparse", "tree_moe_flip", "tree_non_ac")
FINITE_KINDS = ("finite_uniform", "finite_sparse")
#: The conditions of docs/theory.md §9: variable lengths, groups, reward ranges.
CONDITION_KINDS = ("varlen_eos", "groups_G8", "groups_G16", "tree_dense_R0_1000",
                   "tree_dense_R-3_5", "tree_non_ac_R1_2")
#: varlen_eos: P(long response), (1 - rho)_+ per token of a long one, and the generation limit.
VARLEN_P_LONG, VARLEN_A, VARLEN_T = 0.02, 0.99, 100
#: groups: P(hard prompt), the horizon.
GROUP_P_HARD, GROUP_T = 0.1, 64


def _range_max_error(coef: np.ndarray, lo: float, hi: float) -> float:
    r""":math:`\max_{R \in [lo, hi]} |\sum_y R(y) c(y)|` of the exact coefficients (§2, §9)."""
    pos, neg = float(np.clip(coef, 0, None).sum()), float(np.clip(-coef, 0, None).sum())
    return max(abs(hi * pos - lo * neg), abs(lo * pos - hi * neg))


def _condition_setting(kind: str, seed: int) -> Setting:
    """A setting of :data:`CONDITION_KINDS` (module docstring)."""
    if kind == "varlen_eos":
        mean = VARLEN_P_LONG * VARLEN_A * VARLEN_T
        return Setting(kind, mean, math.nan, "none (X law only)", VARLEN_T, kind=kind, seed=seed)
    if kind.startswith("groups_G"):
        mean = GROUP_T * 0.5 * (GROUP_P_HARD * 0.9 + (1 - GROUP_P_HARD) * 0.01)
        return Setting(kind, mean, math.nan, "none (X law only)", GROUP_T, kind=kind, seed=seed,
                       group=int(kind[len("groups_G"):]))
    base, rng_txt = kind.split("_R")
    lo, hi = (float(v) for v in rng_txt.replace("m", "-").split("_"))
    st = make_setting(base, seed)
    return Setting(kind, st.dbar_sum, _range_max_error(st.table.coef, lo, hi),
                   f"all rewards in [{lo:g}, {hi:g}]", st.T, tree=st.tree, table=st.table,
                   kind=kind, seed=seed, bound_factor=(hi - lo) + max(lo, -hi, 0.0))


def make_setting(kind: str, seed: int, T: int | None = None) -> Setting:
    """The setting ``kind`` of the study at seed ``seed`` (``T``: finite-state kinds only).

    A pure function of its arguments, so a Ray task rebuilds the setting from them.
    """
    if kind in CONDITION_KINDS:
        return _condition_setting(kind, seed)
    if kind in TREE_KINDS:
        if kind == "tree_non_ac":
            inst = _non_ac_tree(seed + 4)
        else:
            gen, off, n = {"tree_dense": ("dense", 1, 2),
                           "tree_sparse": ("sparse_divergence", 2, 1),
                           "tree_moe_flip": ("moe_flip", 3, 1)}[kind]  # fmt: skip
            inst = GENERATORS[gen](seed + off, 3, 4, n)
        tb = sequence_table(inst.p_x, inst.pi_roll, inst.pi_theta, inst.reward)
        return Setting(kind, tb.dbar_sum, tb.error_max, "all rewards", inst.T, tree=inst,
                       table=tb, kind=kind, seed=seed)
    if kind == "finite_uniform":
        inst = uniform_divergence(4, T, form="finite_state", S=8, delta=1e-3, seed=seed)
    elif kind == "finite_sparse":
        inst = sparse_divergence(4, T, form="finite_state", S=8, k=4, kl_size=0.05, seed=seed)
    else:
        raise ValueError("kind must be one of "
                         f"{', '.join(TREE_KINDS + FINITE_KINDS + CONDITION_KINDS)}, "
                         f"got {kind!r}")
    rep = dp.exact_report(inst)
    return Setting(f"{kind}_T{T}", float(np.sum(rep["Dbar"])),
                   float(rep["error_max_over_rewards"]), "final-state rewards", T, finite=inst,
                   kind=kind, seed=seed)


@functools.lru_cache(maxsize=16)
def _cached_setting(kind: str, seed: int, T: int | None) -> Setting:
    """:func:`make_setting` cached per process: a Ray worker builds each setting once."""
    return make_setting(kind, seed, T)


def settings(args: Args) -> list[Setting]:
    """The exact instances of the study."""
    out = [make_setting(kind, args.seed) for kind in TREE_KINDS + CONDITION_KINDS]
    return out + [make_setting(kind, args.seed, T) for T in args.T_long for kind in FINITE_KINDS]


def _draw(setting: Setting, rng: np.random.Generator, *, N: int, reps: int,
          max_batch: int) -> np.ndarray:
    """``reps`` batches of ``N`` values of ``X``, shape (reps, N), ``max_batch`` sequences at
    most per draw."""
    chunks = []
    G = max(setting.group, 1)
    per = max(1, max_batch // (N * G))
    for start in range(0, reps, per):
        m = min(per, reps - start)
        chunks.append(setting.sample_x(rng, m * N).reshape(m, N * G))
    return np.concatenate(chunks)  # (reps, N) or (reps, N G) for a group setting


def _indicators(setting: Setting, x: np.ndarray, *, level: float,
                methods: tuple[str, ...]) -> dict:
    """Per repetition (row of ``x``, shape (reps, N)): the batch mean ``xbar``, and per method
    ``covered`` (``U >= sum_t Dbar_t``), ``bound_covered`` (``U >= max_R |Error|``),
    ``rel_width`` (``(U - sum_t Dbar_t) / sum_t Dbar_t``) and ``rel_ucb`` (``U / sum_t
    Dbar_t``; both None when the sum is 0), each of shape (reps,)."""
    exact = setting.dbar_sum
    rows = x
    if setting.group:  # the units are the group means (§9 groups); x is (reps, N G)
        x = x.reshape(x.shape[0], -1, setting.group).mean(axis=2)  # (reps, N)
    out: dict = {"xbar": x.mean(axis=1)}  # (reps,)
    for method in methods:
        u = upper_confidence_bounds(x, upper=float(setting.T), level=level, method=method)
        out[method] = {
            "covered": u >= exact,  # (reps,) bool
            "bound_covered": (setting.bound_factor * u >= setting.error_max
                              if math.isfinite(setting.error_max) else None),  # (reps,) bool
            "rel_width": (u - exact) / exact if exact > 0 else None,  # (reps,)
            "rel_ucb": u / exact if exact > 0 else None,  # (reps,)
        }
        if setting.group:  # contrast: the invalid bound treating the N G rows as independent
            v = upper_confidence_bounds(rows, upper=float(setting.T), level=level, method=method)
            out[method]["ungrouped_covered"] = v >= exact
        if setting.kind == "varlen_eos":  # contrast: the invalid range max_i T_i of the log
            short = ~(rows > 0).any(axis=1)  # (reps,) every response of length 1: max T_i = 1
            v = u.copy()  # a batch with a long response has max T_i = T_max: the valid bound
            if short.any():
                v[short] = upper_confidence_bounds(rows[short], upper=1.0, level=level,
                                                   method=method)
            out[method]["observed_max_covered"] = v >= exact
    return out


def _summarize(setting: Setting, parts: list[dict], *, level: float,
               methods: tuple[str, ...]) -> dict:
    """The row of one ``(setting, N)`` from the indicators of its blocks, in repetition order."""

    def mean(m: str, key: str) -> float:
        return float(np.mean(np.concatenate([p[m][key] for p in parts])))

    exact = setting.dbar_sum
    reps = sum(p["xbar"].size for p in parts)
    row: dict = {}
    for m in methods:
        row[m] = {
            "coverage": mean(m, "covered"),
            "se": math.sqrt(level * (1 - level) / reps),
            "bound_coverage": (mean(m, "bound_covered") if math.isfinite(setting.error_max)
                               else None),
            "rel_width": mean(m, "rel_width") if exact > 0 else None,
            "rel_ucb": mean(m, "rel_ucb") if exact > 0 else None,
        }
        for extra in ("ungrouped_covered", "observed_max_covered"):
            if extra in parts[0][m]:
                row[m][extra.replace("_covered", "_coverage")] = mean(m, extra)
    xbar = np.concatenate([p["xbar"] for p in parts])  # (reps,)
    row["estimate_rel_sd"] = float(xbar.std() / exact) if exact > 0 else None
    return row


def coverage_table(setting: Setting, *, N: int, reps: int, level: float,
                   rng: np.random.Generator, max_batch: int = 2**22) -> dict:
    """Coverage, bound coverage and relative widths of every method at one ``(setting, N)``,
    every batch drawn from ``rng`` (one block)."""
    x = _draw(setting, rng, N=N, reps=reps, max_batch=max_batch)
    parts = [_indicators(setting, x, level=level, methods=METHODS)]
    return _summarize(setting, parts, level=level, methods=METHODS)


@dataclass(frozen=True)
class Block:
    """One work item: repetitions ``[start, stop)`` of the setting ``make_setting(kind, seed,
    T)`` at batch size ``N``, drawn from ``np.random.default_rng(rng_seed)``; every method of
    ``methods`` on the same batches."""

    kind: str
    seed: int  # the study's seed (the instance)
    T: int | None  # None for tree kinds
    N: int
    methods: tuple[str, ...]
    start: int
    stop: int
    rng_seed: tuple[int, ...]  # (seed, crc32(setting name), N, start)
    level: float
    max_batch: int


def coverage_blocks(blocks: list[Block]) -> list[dict]:
    """Per block: its setting rebuilt from its seed, its batches drawn from its own generator,
    and the per-repetition indicators (``xbar`` and, per method, ``covered``,
    ``bound_covered``, ``rel_width``, ``rel_ucb``; arrays of shape (stop - start,)).

    A pure function of its blocks, so it runs unchanged as a Ray task (``--engine ray``): only
    the seeds travel, the instances and samples are generated where they are used.
    """
    out = []
    for b in blocks:
        st = _cached_setting(b.kind, b.seed, b.T)
        rng = np.random.default_rng(list(b.rng_seed))
        x = _draw(st, rng, N=b.N, reps=b.stop - b.start, max_batch=b.max_batch)  # (reps, N)
        out.append(_indicators(st, x, level=b.level, methods=b.methods))
    return out


def _blocks(args: Args, st: Setting, n: int) -> list[Block]:
    """The blocks of one ``(setting, N)``, in repetition order."""
    key = zlib.crc32(st.name.encode())  # stable across processes, unlike hash()
    T = st.T if st.finite is not None else None
    return [Block(st.kind, st.seed, T, n, tuple(METHODS), a, min(a + args.block_reps, args.reps),
                  (args.seed, key, n, a), args.level, args.max_batch)
            for a in range(0, args.reps, args.block_reps)]  # fmt: skip


#: Work per Ray task: about this many sequence-steps (a tree sequence counts as one step).
_RAY_STEPS = 2**23


def _computed(args: Args, blocks: list[Block]) -> list[dict]:
    """:func:`coverage_blocks` of every block, here or on Ray (consecutive blocks packed into
    tasks of about ``_RAY_STEPS`` sequence-steps); results in block order."""
    if args.engine == "local":
        return [r for b in progress(blocks, desc="certify coverage") for r in coverage_blocks([b])]
    from trm_bounds.evaluate.ray_engine import ray_map

    # The task by reference to the importable module, also under ``python -m`` (where this
    # module is __main__ and would be pickled by value, its cache included).
    from trm_bounds.studies.certify_coverage import coverage_blocks as task

    parts: list[list[Block]] = []
    load = _RAY_STEPS
    for b in blocks:
        cost = b.N * (b.stop - b.start) * (b.T or 1)
        if parts and load + cost <= _RAY_STEPS:
            parts[-1].append(b)
            load += cost
        else:
            parts.append([b])
            load = cost
    return [r for part in ray_map(task, parts, address=args.address) for r in part]


def run(args: Args) -> dict:
    """The coverage table: ``settings[name]['N'][str(N)][method]`` (same numbers on either
    engine)."""
    sts = settings(args)
    cells = [(st, n, _blocks(args, st, n)) for st in sts for n in args.N]
    results = iter(_computed(args, [b for _, _, bs in cells for b in bs]))
    out = {st.name: {"dbar_sum": st.dbar_sum,
                     "error_max": st.error_max if math.isfinite(st.error_max) else None,
                     "error_max_scope": st.scope, "T": st.T, "group_size": st.group or None,
                     "bound_factor": st.bound_factor, "N": {}} for st in sts}
    for st, n, bs in cells:
        parts = [next(results) for _ in bs]
        out[st.name]["N"][str(n)] = _summarize(st, parts, level=args.level, methods=METHODS)
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
