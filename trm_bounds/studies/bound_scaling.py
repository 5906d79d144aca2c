r"""Bound scaling: the data of figures F1, F2, F4, F5 and F6.

Every bound value comes from :func:`trm_bounds.bounds.compute_bounds` (docs/theory.md §4);
this script only chooses the divergences, fits slopes and records the results.

Sections of ``trm_bounds/data/results/bound_scaling.json`` (besides the provenance keys of
:func:`trm_bounds.results.write_results`):

``uniform`` (F1)
    Every context diverges by the same amount: ``delta``, ``eps = sqrt(delta/2)``,
    ``dkl_seq = T delta``, ``dtv_seq = min(1, sqrt(dkl_seq/2))``, worst-case
    ``Dbar_t = eps``.  Keys ``delta, eps, T`` (list), ``published`` and ``sharp``
    (``{bound: list over T}``), ``slopes`` (``{bound: fitted log-log slope}``) and
    ``fit_window`` (``[T_lo, T_hi]``, the range the slopes are fitted on).
``sparse`` (F2)
    Only ``n_divergent = dkl_seq / delta`` positions diverge (each by ``delta``, TV ``eps``),
    so ``dkl_seq`` and ``dtv_seq`` stay fixed as ``T`` grows and ``Dbar_t = eps`` on those
    positions only (the first ones, the worst place for the Adaptive bound).  Same keys
    as ``uniform`` plus ``dkl_seq, dtv_seq, n_divergent``.
``paper_table`` (F4)
    ``T = 4096``; ``columns`` maps ``kl_only`` and ``kl_tv`` to
    ``{"params": {eps, delta, dkl_seq, dtv_seq}, "published": {...}, "sharp": {...},
    "paper": {bound: paper's number}}``; ``rows`` lists ``[bound, paper_label]`` in the
    paper's order; ``large_divergence`` (``delta = 1``) and ``adaptive_delta_0_01`` hold
    the §7 side numbers; ``headline`` the ratio Classical / Unified (paper: 409).
``crossover`` (F5)
    Per-position weights of the Adaptive route against ``k = T - t``:
    ``kl_route = min(1, sqrt(k delta/2))``, per case ``coupling_route = min(1, k eps)``,
    ``hybrid = min(1, k eps, sqrt(k delta/2))`` and ``crossover = delta/(2 eps^2)``.
``length_bias`` (F6)
    ``analytic``: ``(1-p)^T`` on a ``T`` grid for each ``p``; ``paper_table``: the same at the
    paper's ``T`` values beside the paper's numbers; ``simulation``: acceptance of TRM-Max,
    SER and LN-TRM against ``T`` for i.i.d. per-token log-ratios (or ``null`` with a
    ``reason`` when :mod:`trm_bounds.masking` is not available).

Usage::

    python experiments/bound_scaling.py                 # small default, seconds
    python experiments/bound_scaling.py --full          # finer grids, more sequences
    python experiments/bound_scaling.py --tiny          # smallest sizes (smoke test, fixture)

(or ``python -m trm_bounds.studies.bound_scaling`` with the same flags).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from trm_bounds.bounds import (
    BOUND_NAMES,
    adaptive_crossover,
    compute_bounds,
    kl_only,
)
from trm_bounds.paper import (
    DELTA,
    DKL_SEQ,
    DTV_SEQ_KLTV,
    EPS_KLTV,
    LENGTH_BIAS_PAPER,
    LENGTH_BIAS_T,
    T_PAPER,
    paper_table_rows,
)
from trm_bounds.paper import length_bias as length_bias_prob
from trm_bounds.proportions import wilson
from trm_bounds.results import write_results
from trm_bounds.studies._cli import default_out, progress, study_main
from trm_bounds.studies._fit import fit_slope, log_grid

RESULT = "bound_scaling.json"

#: Rows of the paper's table (bound key, the paper's label), in the paper's order.  The
#: printed numbers themselves come from :mod:`trm_bounds.paper` (typed there once).
PAPER_ROWS: list[tuple[str, str]] = [
    ("classical_tv", "Classical (TV form)"),
    ("coupling", "Coupling"),
    ("pm_kl", "PM-KL"),
    ("pm_tv", "PM-TV"),
    ("mix_kl", "Mix-KL"),
    ("mix_tv", "Mix-TV"),
    ("adaptive_hybrid", "Adaptive (worst case)"),
    ("unified", "Unified B*"),
]
#: Column keys of this file against the column names of :mod:`trm_bounds.paper`.
PAPER_COLUMNS = {"kl_only": "KL-only", "kl_tv": "KL+TV"}


@dataclass
class Args:
    """Arguments of the study (the default runs in seconds; ``--full`` refines grids).

    ``out`` None: ``trm_bounds/data/results/bound_scaling.json`` in a source checkout, else
    ``./results/bound_scaling.json``.
    """

    out: str | None = None  # result JSON path
    seed: int = 0  # seed of the F6 simulation
    device: str = "cpu"  # torch device of the F6 simulation
    size: str = "default"  # preset the sizes come from: default, full or tiny
    delta: float = 1e-4  # per-token max KL (nats), the paper's table value
    dkl_seq: float = 0.01  # sparse regime: fixed sequence KL (nats), the paper's value
    T_max: int = 16384  # largest horizon of F1/F2 (below the PM cap at 2/delta = 20000)
    n_T: int = 40  # grid points in T (log-spaced)
    fit_lo: int = 512  # slopes are fitted on [fit_lo, T_max]
    crossover_eps: tuple[float, ...] = (1e-3, 2e-3, 5e-3)  # TV sizes of F5 (delta as above)
    sim_p: float = 1e-3  # per-token violation probability of the F6 simulation
    sim_sigma: float = 0.02  # std of the ordinary per-token log-ratios of F6
    sim_spike: float = 0.5  # |log-ratio| of a violating token (k2 = 0.125 > 0.05)
    sim_n: int = 400  # sequences per T in the F6 simulation
    sim_T: tuple[int, ...] = (16, 64, 256, 1024, 4096, 16384)  # horizons of the F6 simulation


#: Size presets (``--full``, ``--tiny``); ``tiny`` makes the plot-test fixture
#: (tests/fixtures/bound_scaling.json).
SIZES = {
    "full": {
        "n_T": 120,
        "sim_n": 4000,
        "sim_T": (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    },
    "tiny": {"n_T": 12, "sim_n": 40, "sim_T": (16, 256, 4096)},
}


def _bounds_per_T(T: np.ndarray, **per_T) -> dict[str, dict[str, np.ndarray]]:
    """``compute_bounds`` at every ``T`` (published and sharp), stacked into arrays over ``T``.

    ``per_T`` maps argument names to callables of ``T`` (one horizon at a time, because the
    divergences and ``dbar`` depend on ``T``; the grid has tens of points).
    """
    out = {}
    for sharp in (False, True):
        rows = [
            compute_bounds(int(t), sharp=sharp, **{k: f(int(t)) for k, f in per_T.items()})
            for t in T
        ]
        out["sharp" if sharp else "published"] = {
            name: np.array([float(r[name]) for r in rows]) for name in BOUND_NAMES
        }
    return out


def uniform_regime(a: Args) -> dict:
    """F1: docs/theory.md §4 bounds under uniform divergence, ``dkl_seq = T delta``."""
    T = log_grid(2, a.T_max, a.n_T)
    dkl = T * a.delta
    eps, dtv = kl_only(a.delta, dkl)
    kw = {"eps": eps, "delta": a.delta, "dkl_seq": dkl, "dtv_seq": dtv}
    res = {
        "published": compute_bounds(T, **kw),  # one vectorised pass over T
        "sharp": compute_bounds(T, **kw, sharp=True),
    }
    slopes = {k: fit_slope(T, v, a.fit_lo, a.T_max) for k, v in res["published"].items()}
    return {
        "delta": a.delta,
        "eps": eps,
        "T": T,
        **res,
        "slopes": slopes,
        "fit_window": [a.fit_lo, a.T_max],
    }


def sparse_regime(a: Args) -> dict:
    """F2: bounds with ``dkl_seq`` fixed (``n_divergent = dkl_seq/delta`` divergent positions)."""
    eps, dtv = kl_only(a.delta, a.dkl_seq)
    n_div = int(round(a.dkl_seq / a.delta))
    T = log_grid(n_div, a.T_max, a.n_T)

    def dbar(t: int) -> np.ndarray:
        d = np.zeros(t)
        d[:n_div] = eps
        return d

    res = _bounds_per_T(
        T,
        eps=lambda t: eps,
        delta=lambda t: a.delta,
        dkl_seq=lambda t: a.dkl_seq,
        dtv_seq=lambda t: dtv,
        dbar=dbar,
    )
    slopes = {k: fit_slope(T, v, a.fit_lo, a.T_max) for k, v in res["published"].items()}
    return {
        "delta": a.delta,
        "eps": eps,
        "dkl_seq": a.dkl_seq,
        "dtv_seq": dtv,
        "n_divergent": n_div,
        "T": T,
        **res,
        "slopes": slopes,
        "fit_window": [a.fit_lo, a.T_max],
    }


def paper_table() -> dict:
    """F4 and docs/theory.md §7: both columns of the paper's table, published and sharp.

    Bars come from :func:`compute_bounds` (exact sums); the paper's printed numbers and the
    rounding-aware comparison of every section-7 number come from
    :func:`trm_bounds.paper.paper_table_rows`.
    """
    rows = paper_table_rows()
    eps_kl, dtv_kl = kl_only(DELTA, DKL_SEQ)
    params = {
        "KL-only": {"eps": eps_kl, "delta": DELTA, "dkl_seq": DKL_SEQ, "dtv_seq": dtv_kl},
        "KL+TV": {"eps": EPS_KLTV, "delta": DELTA, "dkl_seq": DKL_SEQ, "dtv_seq": DTV_SEQ_KLTV},
    }
    columns = {}
    for col, name in PAPER_COLUMNS.items():
        p = params[name]
        printed = {r.bound: r.paper for r in rows if r.column == name and r.bound in BOUND_NAMES}
        if col == "kl_only":  # the paper's Classical row is one number for both forms
            printed["classical_tv"] = printed.get("classical_kl", printed.get("classical_tv"))
        columns[col] = {
            "params": p,
            "published": compute_bounds(T_PAPER, **p),
            "sharp": compute_bounds(T_PAPER, **p, sharp=True),
            "paper": printed,
        }
    head = next(r for r in rows if r.bound == "ratio")
    return {
        "T": T_PAPER,
        "columns": columns,
        "rows": [list(r) for r in PAPER_ROWS],
        "upper_only": ["adaptive_hybrid", "unified"],
        "paper_rows": [{**asdict(r), "ok": r.ok} for r in rows],
        "headline": {
            "classical": columns["kl_only"]["published"]["classical_kl"],
            "unified": columns["kl_tv"]["published"]["unified"],
            "ratio": head.ours,
            "ratio_sharp": head.ours_sharp,
            "paper_ratio": head.paper,
        },
    }


def crossover(a: Args) -> dict:
    """F5: per-position Adaptive weights against ``k = T - t`` (docs/theory.md §4)."""
    k = log_grid(1, 10**5, 200).astype(np.float64)
    kl_route = np.minimum(1.0, np.sqrt(k * a.delta / 2.0))
    cases = []
    for eps in a.crossover_eps:
        coupling_route = np.minimum(1.0, k * eps)
        kc = adaptive_crossover(eps=eps, delta=a.delta)
        cases.append(
            {
                "eps": eps,
                "coupling_route": coupling_route,
                "hybrid": np.minimum(coupling_route, kl_route),
                "crossover": kc,
                "crossover_weight": min(1.0, kc * eps),
            }
        )
    return {"delta": a.delta, "k": k, "kl_route": kl_route, "cases": cases}


def length_bias(a: Args, rng: np.random.Generator, device: str = "cpu") -> dict:
    """F6: ``(1-p)^T`` (docs/theory.md §6) and a simulation of TRM-Max / SER / LN-TRM."""
    T = log_grid(16, 16384, 60)
    ps = sorted(LENGTH_BIAS_PAPER, reverse=True)
    analytic = {str(p): np.exp(T * np.log1p(-p)) for p in ps}
    table = {
        str(p): {
            "ours": [length_bias_prob(p, t) for t in LENGTH_BIAS_T],
            "paper": [v for v, _, _ in LENGTH_BIAS_PAPER[p]],
            "relation": [rel for _, _, rel in LENGTH_BIAS_PAPER[p]],
        }
        for p in ps
    }
    return {
        "T": T,
        "analytic": analytic,
        "paper_table": {"T": list(LENGTH_BIAS_T), **table},
        "simulation": simulate_acceptance(a, rng, device=device),
    }


#: Criteria of the F6 simulation (trm_bounds.masking names) and their legend labels.
SIM_CRITERIA = {
    "seq_max_k2": r"TRM-Max (max$_t\,k_2\leq0.05$)",
    "seq_mean_k3": r"TRM-Avg ($\overline{k_3}\leq0.001$)",
    "ser": r"SER ($\overline{|\rho-1|}\leq0.05$)",
    "ln_trm": r"LN-TRM ($W/Z\leq0.05$, $\delta=0.05$)",
}


def simulate_acceptance(
    a: Args, rng: np.random.Generator, chunk: int = 1 << 21, device: str = "cpu"
) -> dict:
    """Acceptance rates against ``T`` for i.i.d. per-token log-ratios (docs/theory.md §6).

    Each token's log-ratio ``r_t`` is ``N(0, sim_sigma^2)`` plus, with probability ``sim_p``,
    a spike ``+-sim_spike`` (then ``k2 = r^2/2 > 0.05``: a TRM-Max violation; ordinary tokens
    never violate, ``0.316`` is 15 sigma), so TRM-Max accepts with probability
    ``(1 - sim_p)^T`` exactly.  Decisions by :func:`trm_bounds.masking.sequence_stats` and
    :func:`trm_bounds.masking.decide` at the paper's default thresholds.
    """
    import torch

    from trm_bounds.masking import decide, sequence_stats

    accepted = {c: [] for c in SIM_CRITERIA}
    for T in progress(a.sim_T, desc="length-bias simulation", unit="T", leave=False):
        counts = dict.fromkeys(SIM_CRITERIA, 0)
        rows = max(1, chunk // T)
        for start in range(0, a.sim_n, rows):  # chunks of sequences bound the memory
            n = min(rows, a.sim_n - start)
            r = rng.normal(0.0, a.sim_sigma, size=(n, T))  # (n, T)
            spike = rng.random((n, T)) < a.sim_p  # (n, T)
            r += spike * a.sim_spike * rng.choice([-1.0, 1.0], size=(n, T))
            roll = np.full((n, T), -2.0)  # rollout logprobs (any constant < 0)
            stats = sequence_stats(
                torch.from_numpy(roll + r),
                torch.from_numpy(roll),
                torch.ones(n, T, dtype=bool),
                ln_delta=0.05,
            )
            dec = decide(stats, criteria=list(SIM_CRITERIA))
            for c in SIM_CRITERIA:
                counts[c] += int(dec[c].sum().item())
        for c in SIM_CRITERIA:
            accepted[c].append(counts[c])
    T_arr = np.asarray(a.sim_T)
    acc = {c: np.asarray(v, dtype=np.float64) for c, v in accepted.items()}
    ci = {c: wilson(v, a.sim_n) for c, v in acc.items()}
    return {
        "T": T_arr,
        "n_sequences": a.sim_n,
        "p": a.sim_p,
        "sigma": a.sim_sigma,
        "spike": a.sim_spike,
        "labels": SIM_CRITERIA,
        "acceptance": {c: v / a.sim_n for c, v in acc.items()},
        "ci_low": {c: lo for c, (lo, _) in ci.items()},
        "ci_high": {c: hi for c, (_, hi) in ci.items()},
        "expected_trm_max": np.exp(T_arr * np.log1p(-a.sim_p)),
    }


def run(args: Args) -> dict:
    """Every section of the result file (without provenance)."""
    rng = np.random.default_rng(args.seed)
    return {
        "bound_names": list(BOUND_NAMES),
        "uniform": uniform_regime(args),
        "sparse": sparse_regime(args),
        "paper_table": paper_table(),
        "crossover": crossover(args),
        "length_bias": length_bias(args, rng, args.device),
    }


def produce(args: Args) -> Path:
    """Run the study and write its result file (with provenance); return its path."""
    out = Path(args.out) if args.out is not None else default_out(RESULT)
    return write_results(out, run(args), experiment="bound_scaling",
                         args={**asdict(args), "out": str(out)}, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    """Command line: compute and write the result file."""
    return study_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    sys.exit(main())
