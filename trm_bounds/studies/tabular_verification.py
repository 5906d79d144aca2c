"""Check every bound against the exact error on many random tree instances.

For every generator kind of :data:`trm_bounds.instances.generators.GENERATORS` (plus instances drawn
entry by entry, kind ``raw``), draws random instances, computes the exact report
(:func:`trm_bounds.engines.tree.exact_report`) and records, per kind:

- the number of instances checked;
- the number of violations per bound, published and sharp, of ``|Error| <= B`` and of
  ``max_R |Error| <= B`` (must be 0; tolerance: the test-suite's ``B (1 + 1e-10) + 1e-12``);
- the largest ratios ``|Error| / B`` and ``max_R |Error| / B`` per sharp bound;
- the largest disagreement of the two Error computations and of the two D_KL^seq ones.

A hill-climb mode (``--search-iters``) then drives ``max_R |Error| / sharp bound`` up over
policy pairs with ``V = 2`` and ``T = 2..5`` (docs/theory.md §5 says the sharp Adaptive and
Unified bounds reach 1.000) and records the best ratio found per bound and ``T``.

Usage::

    python experiments/tabular_verification.py            # ~ a few thousand, < 1 min
    python experiments/tabular_verification.py --full     # more instances, longer search
    python experiments/tabular_verification.py --engine ray [--address auto]

(or ``python -m trm_bounds.studies.tabular_verification`` with the same flags).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trm_bounds.bounds import BOUND_NAMES
from trm_bounds.divergences import softmax
from trm_bounds.engines.tree import exact_report as _exact_report
from trm_bounds.instances.generators import GENERATORS
from trm_bounds.instances.tree import TreeInstance, n_contexts
from trm_bounds.results import write_results
from trm_bounds.studies._cli import default_out, parse_args, progress

RESULT = "tabular_verification.json"
TOL_R, TOL_A = 1e-10, 1e-12  # the test-suite pair (tests/tolerances.py)
SEARCH_BOUNDS = ("unified", "adaptive_hybrid", "adaptive_kl", "adaptive_tv", "coupling", "linear")


@dataclass
class Args:
    """Arguments of the study (default: about two thousand instances, under a minute).

    ``out`` None: ``experiments/results/tabular_verification.json`` in a source checkout,
    else ``./results/tabular_verification.json``.
    """

    out: str | None = None  # result JSON path
    seed: int = 0  # seed of the instance draws and of the search
    size: str = "default"  # preset the sizes come from: default or full
    per_kind: int = 300  # instances per generator kind
    max_sequences: int = 256  # V^T per prompt at most
    search_iters: int = 100  # hill-climb steps per (bound, T, restart)
    search_restarts: int = 2  # alternating near-uniform and near-deterministic starts
    search_T: tuple[int, ...] = (2, 3, 4, 5)  # horizons of the adversarial search
    engine: str = "local"  # local, or ray: the sweep's instances checked in Ray tasks
    address: str | None = None  # Ray address (None: start a local cluster; auto; ray://...)


#: Size preset ``--full``: ten times the instances, a longer search.
SIZES = {"full": {"per_kind": 3000, "search_iters": 1500, "search_restarts": 4,
                  "max_sequences": 1024}}


def exact_report(inst: TreeInstance) -> dict:
    """The tree engine's exact report as the key-value record of the result files."""
    return _exact_report(inst).to_dict()


def raw_instance(rng: np.random.Generator, V: int, T: int, n: int) -> TreeInstance:
    """Every probability drawn directly: Dirichlet rows, theta row equal to roll w.p. 1/2."""
    C = n_contexts(V, T)
    alpha = float(rng.choice([0.3, 1.0, 5.0]))
    pr = rng.dirichlet(np.full(V, alpha), size=(n, C)) * (1 - V * 1e-4) + 1e-4
    pt = rng.dirichlet(np.full(V, alpha), size=(n, C)) * (1 - V * 1e-6) + 1e-6
    keep = rng.random((n, C, 1)) < 0.5
    pt = np.where(keep, pr, pt)
    R = rng.random((n, V**T))
    p_x = rng.dirichlet(np.ones(n))
    return TreeInstance.from_arrays(p_x, pr, pt, R, id="raw", meta={"kind": "raw"})


def draw_shape(rng: np.random.Generator, max_sequences: int) -> tuple[int, int, int]:
    """``(V, T, n_prompts)`` with ``V^T <= max_sequences``."""
    V = int(rng.integers(2, 5))
    T_max = max(1, int(np.floor(np.log(max_sequences) / np.log(V) + 1e-9)))
    return V, int(rng.integers(1, T_max + 1)), int(rng.integers(1, 3))


def check_instances(jobs: list[tuple[str, int, int, int, int]]) -> list[dict]:
    """Per job ``(kind, V, T, n_prompts, seed)``: the instance built from its seed and the
    numbers :func:`verify` aggregates (``|Error|``, ``max_R |Error|``, the two gaps, the bounds).

    A pure function of its jobs, so it runs unchanged as a Ray task (``--engine ray``): only
    the seeds travel, the instances are generated where they are checked.
    """
    out = []
    for kind, V, T, n, seed in jobs:
        if kind == "raw":
            inst = raw_instance(np.random.default_rng(seed), V, T, n)
        else:
            inst = GENERATORS[kind](seed, V, T, n)
        rep = exact_report(inst)
        out.append({
            "err": abs(rep["error"]),
            "emax": rep["error_max_over_rewards"],
            "err_gap": abs(rep["error"] - rep["error_identity"]),
            "dkl_gap": abs(rep["D_KL_seq"] - rep["D_KL_seq_direct"]),
            "published": rep["bounds_published"],
            "sharp": rep["bounds_sharp"],
        })  # fmt: skip
    return out


def _checked(args: Args, jobs: list[tuple[str, int, int, int, int]], kind: str) -> list[dict]:
    """:func:`check_instances` here, or on Ray in tasks of ``_RAY_JOBS`` instances."""
    if args.engine == "local":
        return [
            r
            for job in progress(jobs, desc=f"verify {kind}", leave=False)
            for r in check_instances([job])
        ]
    from trm_bounds.evaluate.ray_engine import ray_map

    parts = [jobs[i : i + _RAY_JOBS] for i in range(0, len(jobs), _RAY_JOBS)]
    return [r for part in ray_map(check_instances, parts, address=args.address) for r in part]


#: Instances per Ray task (a task costs milliseconds to schedule; an instance about as much).
_RAY_JOBS = 64


def verify(args: Args) -> dict:
    """The random-instance sweep: violations and largest ratios per kind and bound."""
    if args.engine not in ("local", "ray"):
        raise ValueError(f"engine must be local or ray, got {args.engine!r}")
    rng = np.random.default_rng(args.seed)
    kinds = [*GENERATORS, "raw"]
    out: dict[str, dict] = {}
    for kind in kinds:
        viol = {f: dict.fromkeys(BOUND_NAMES, 0) for f in ("published", "sharp")}
        viol_max = {f: dict.fromkeys(BOUND_NAMES, 0) for f in ("published", "sharp")}
        ratio = dict.fromkeys(BOUND_NAMES, 0.0)
        ratio_max = dict.fromkeys(BOUND_NAMES, 0.0)
        err_gap = dkl_gap = 0.0
        jobs = []
        for _ in range(args.per_kind):
            V, T, n = draw_shape(rng, args.max_sequences)
            jobs.append((kind, V, T, n, int(rng.integers(2**32))))
        for rec in _checked(args, jobs, kind):
            err, emax = rec["err"], rec["emax"]
            err_gap = max(err_gap, rec["err_gap"])
            dkl_gap = max(dkl_gap, rec["dkl_gap"])
            for fam in ("published", "sharp"):
                for name, B in rec[fam].items():
                    viol[fam][name] += int(err > B * (1 + TOL_R) + TOL_A)
                    viol_max[fam][name] += int(emax > B * (1 + TOL_R) + TOL_A)
            for name, B in rec["sharp"].items():
                if B > 0:
                    ratio[name] = max(ratio[name], err / B)
                    ratio_max[name] = max(ratio_max[name], emax / B)
        out[kind] = {
            "checked": args.per_kind,
            "violations_error": viol,
            "violations_max_over_rewards": viol_max,
            "max_ratio_error_over_sharp": ratio,
            "max_ratio_maxR_over_sharp": ratio_max,
            "max_abs_error_minus_identity": err_gap,
            "max_abs_dkl_chain_minus_direct": dkl_gap,
        }
    return out


def pair_from_logits(z: np.ndarray, V: int, T: int) -> TreeInstance:
    """One-prompt instance from logits ``z`` of shape ``(2, C, V)`` (roll, theta); zero reward
    (the search scores ``max_R |Error|``, which does not depend on the reward)."""
    return TreeInstance.from_arrays(
        [1.0], softmax(z[0])[None], softmax(z[1])[None], np.zeros((1, V**T)), id="search"
    )


def score(z: np.ndarray, V: int, T: int, bound: str) -> float:
    """``max_R |Error| / sharp bound`` of the pair with logits ``z`` (0 if the bound is 0)."""
    rep = exact_report(pair_from_logits(z, V, T))
    B = rep["bounds_sharp"][bound]
    return rep["error_max_over_rewards"] / B if B > 1e-300 else 0.0


def hill_climb(
    rng: np.random.Generator, V: int, T: int, bound: str, iters: int, init_scale: float = 0.5
) -> dict:
    """(1+1) hill climb with an adaptive step on the logits of both policies, started from
    ``init_scale * N(0, 1)`` logits (small: near-uniform pairs; large: near-deterministic)."""
    C = n_contexts(V, T)
    z = rng.normal(size=(2, C, V)) * init_scale
    best = score(z, V, T, bound)
    sigma = 0.5
    for _ in range(iters):
        cand = z + sigma * rng.normal(size=z.shape) * (rng.random(size=(2, C, 1)) < 0.5)
        s = score(cand, V, T, bound)
        if s >= best:
            z, best, sigma = cand, s, min(sigma * 1.5, 4.0)
        else:
            sigma = max(sigma * 0.9, 1e-3)
    rep = exact_report(pair_from_logits(z, V, T))
    return {"ratio": best, "eps": rep["eps"], "delta": rep["delta"], "Dbar": rep["Dbar"]}


def search(args: Args) -> dict:
    """Best ``max_R |Error| / sharp bound`` per bound and ``T`` (``V = 2``)."""
    rng = np.random.default_rng([args.seed, 7])
    out: dict[str, dict] = {}
    jobs = [(b, T) for b in SEARCH_BOUNDS for T in args.search_T]
    for bound, T in progress(jobs, desc="hill-climb", leave=False):
        runs = [
            hill_climb(rng, 2, T, bound, args.search_iters, init_scale=(0.5, 5.0)[k % 2])
            for k in range(args.search_restarts)
        ]
        out.setdefault(bound, {})[str(T)] = max(runs, key=lambda r: r["ratio"])
    return out


def run(args: Args) -> dict:
    """The sweep and the search (without provenance)."""
    t0 = time.perf_counter()
    kinds = verify(args)
    t1 = time.perf_counter()
    best = search(args) if args.search_iters > 0 else {}
    t2 = time.perf_counter()
    total = sum(k["checked"] for k in kinds.values())
    n_viol = sum(
        v
        for k in kinds.values()
        for key in ("violations_error", "violations_max_over_rewards")
        for fam in k[key].values()
        for v in fam.values()
    )
    overall = {
        name: max(k["max_ratio_maxR_over_sharp"][name] for k in kinds.values())
        for name in BOUND_NAMES
    }
    return {
        "instances_checked": total,
        "violations_total": n_viol,
        "max_ratio_maxR_over_sharp_all_kinds": overall,
        "kinds": kinds,
        "search": best,
        "seconds_verify": t1 - t0,
        "seconds_search": t2 - t1,
    }


def produce(args: Args) -> Path:
    """Run the study and write its result file (with provenance); return its path."""
    out = Path(args.out) if args.out is not None else default_out(RESULT)
    data = run(args)
    write_results(out, data, experiment="tabular_verification",
                  args={**asdict(args), "out": str(out)}, seed=args.seed)
    print(f"checked {data['instances_checked']} instances, {data['violations_total']} "
          f"violations ({data['seconds_verify']:.1f} s); wrote {out}")
    for name in BOUND_NAMES:
        line = f"  {name:<16s} max maxR/sharp = {data['max_ratio_maxR_over_sharp_all_kinds'][name]:.4f}"
        if name in data["search"]:
            line += "   search " + " ".join(
                f"T={T}:{r['ratio']:.4f}" for T, r in data["search"][name].items()
            )
        print(line)
    if data["violations_total"]:
        raise RuntimeError(f"{out}: {data['violations_total']} bound violations")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: run the sweep and the search; exit 1 on any violation."""
    args = parse_args(Args, argv, description=__doc__.splitlines()[0], sizes=SIZES)
    try:
        produce(args)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
