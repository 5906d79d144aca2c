r"""Exact surrogate error against the bounds on small transformers, per mismatch source (F7).

Trains a dense and an MoE decoder (:mod:`trm_bounds.transformer`) on a sparse Markov source
with a curriculum (``steps`` Adam steps at length 8, then ``long_steps`` at ``train_T =
1024``, so that the Monte Carlo horizon is in distribution), builds one policy pair per
mismatch source, and

- enumerates every sequence at a few horizons (default ``V = 4``, ``T = 4, 6, 8, 10``;
  ``--large`` adds ``T = 12``, 16.7M sequences per prompt) with the KV-cached prefix-tree
  walk (:func:`trm_bounds.engines.neural.enumerate_with_routes`; a model shared by several
  pairs is walked once) to get every exact quantity and bound
  (:func:`trm_bounds.engines.neural.exact_quantities`);
- samples long horizons (default ``T = 1024``) and reports Monte Carlo estimates with
  4-sigma intervals and plug-in bounds (:mod:`trm_bounds.estimators`), with the caveat that
  ``eps``/``delta`` there are observed maxima (lower estimates);
- exports the enumerated pairs at ``--export-T`` as ``trm-oracle-instances/v1`` instances
  with their expected values (``trm_bounds/data/results/transformer_instances.json``).

Sources: ``precision_bf16`` / ``precision_fp16`` (roll evaluated in bfloat16 / float16,
theta in float64), ``staleness`` (theta = roll after ``k = 2`` Adam steps on the RL surrogate),
``moe_routing`` (roll's router logits perturbed by ``x P``), ``weight_noise_*`` (roll's weights
plus relative Gaussian noise; the controllable knob).  Reward: fraction of grammatical
positions, in ``[0, 1]`` (:func:`trm_bounds.transformer.grammar_reward`).

JSON layout of ``trm_bounds/data/results/transformer_mismatch.json`` (besides the provenance keys
``experiment, created, git_hash, args, seed`` of ``trm_bounds.results.write_results``):

``device`` (str), ``torch_version`` (str), ``seconds`` (float, whole run)
``model``: ``{"dense": GPTConfig fields + train_steps, train_T, final_loss, train_seconds
(and long_steps, long_T, long_batch with the curriculum), "moe": ...}``
``source``: ``{"V", "n_prompts", "n_allowed", "leak", "allowed": [V][V] bools}``;
``p_x``: ``[n_prompts]``; ``reward``: its definition (str)
``sources``: ``{name: {"description": str, "params": {...}}}``
``exact``: list of rows, one per (source, T), each with
    ``source, V, T, n_sequences, seconds`` and the exact quantities ``J_roll, J_theta, L_prime, error,
    error_identity, error_max_over_rewards, eps, delta, Dbar (list over t), D_KL_seq,
    D_TV_seq, bounds_published, bounds_sharp`` (dicts keyed by the twelve
    ``trm_bounds.bounds.BOUND_NAMES``), and the summary ``tightest_published`` /
    ``tightest_sharp`` (bound name, first in ``BOUND_NAMES`` order), ``tied_published`` /
    ``tied_sharp`` (every bound equal to the tightest, e.g. ``adaptive_tv`` and
    ``adaptive_hybrid`` when the TV route is active), ``ratio_published`` / ``ratio_sharp``
    (tightest bound divided by ``|error|``), ``ratio_worst_case_sharp`` (tightest sharp bound
    divided by ``max_R |Error|``), and for ``moe_routing`` ``route_flips`` = ``[flipped, total]``
    (layer, prompt, context) routing decisions, each context counted once
    (:func:`trm_bounds.engines.neural.route_flips`).
``montecarlo``: list of rows, one per source, each with ``source, T, N, seconds``,
    ``estimates`` (``{name: {"mean", "se", "lo", "hi"}}`` for ``error, L_prime, J_diff,
    D_KL_seq`` (from ``sum_t k3``), ``D_KL_seq_k1``, ``D_KL_seq_rb`` (sum of exact visited
    per-context KL), ``D_TV_seq``, ``Dbar`` and ``Dbar_rb`` (lists over t)),
    ``eps_observed``, ``delta_observed`` (lower estimates of eps, delta),
    ``plugin_bounds_published``, ``plugin_bounds_sharp`` and ``caveat``.
``instances_file``: path of the exported instances.

Usage::

    python experiments/transformer_mismatch.py                 # CPU default, 2-4 CPU minutes
    python experiments/transformer_mismatch.py --small         # the plot command's size
    python experiments/transformer_mismatch.py --large         # + T = 12 (CPU, about an hour)
    python experiments/transformer_mismatch.py --device cuda --full

(or ``python -m trm_bounds.studies.transformer_mismatch`` with the same flags).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from trm_bounds.engines.neural import (
    enumerate_with_routes,
    exact_quantities,
    reward_table,
    route_flips,
)
from trm_bounds.estimators import CAVEAT, mc_estimates, plugin_bounds_from_estimates
from trm_bounds.instances.format import instance_record, write_instances
from trm_bounds.results import portable_path, write_results
from trm_bounds.studies._cli import default_out, parse_args, progress
from trm_bounds.transformer import (
    GPT,
    GPTConfig,
    MarkovSource,
    moe_routing_pair,
    no_tf32,
    precision_pair,
    rollout_logratios,
    staleness_pair,
    train_on_source,
    weight_noise_pair,
)

RESULT = "transformer_mismatch.json"
INSTANCES = "transformer_instances.json"


@dataclass
class Args:
    """Arguments of the study (default: CPU, 2-4 CPU minutes; ``--small``: the smallest sizes).

    ``out`` / ``instances_out`` None: ``trm_bounds/data/results/`` in a source checkout, else
    ``./results/`` (``transformer_mismatch.json``, ``transformer_instances.json``).
    """

    out: str | None = None  # result JSON path
    instances_out: str | None = None  # exported trm-oracle-instances/v1 file
    seed: int = 0  # seed of the source, the models, the pairs and the samples
    device: str = "cpu"  # torch device (cpu, cuda)
    size: str = "default"  # preset the sizes come from: default, small or full
    V: int = 4  # vocabulary size (>= 2)
    export_T: int = 4  # horizon of the exported instances (one of T_exact)
    threads: int = 1  # torch CPU threads (tiny models: 1 is fastest)
    T_exact: tuple[int, ...] = (4, 6, 8, 10)  # enumerated horizons (KV-cached tree walk)
    T_mc: int = 1024  # Monte Carlo horizon
    N_mc: int = 16  # Monte Carlo samples
    mc_batch: int = 16  # Monte Carlo batch
    steps: int = 200  # training steps of each model at length 8
    train_T: int = 1024  # sequence length of the second training phase (curriculum)
    long_steps: int = 40  # training steps at train_T after the short phase (0: none)
    long_batch: int = 4  # batch of the long phase

    def __post_init__(self) -> None:
        if self.V < 2:
            raise ValueError(f"--V: must be >= 2, got {self.V}")
        if self.export_T not in self.T_exact:
            raise ValueError(f"--export-T: must be one of the enumerated horizons "
                             f"{list(self.T_exact)}, got {self.export_T}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device: {self.device!r} requested but CUDA is not available")


#: Size presets (``--small``: smallest, trained at length 8 only; ``--large``: the default
#: plus enumerations up to ``T = 12``, 16.7M sequences per prompt; ``--full``: larger, meant
#: for ``--device cuda``).
SIZES = {
    "small": {"T_exact": (4, 6), "T_mc": 256, "N_mc": 32, "mc_batch": 32, "steps": 150,
              "long_steps": 0},
    "large": {"T_exact": (4, 6, 8, 10, 12)},
    "full": {"T_exact": (4, 6, 8, 10, 12), "T_mc": 4096, "N_mc": 512, "mc_batch": 256,
             "steps": 400, "train_T": 4096, "long_steps": 200, "long_batch": 8},
}

SOURCES = {
    "precision_bf16": "same weights; roll in bfloat16, theta in float64 (backend discrepancy)",
    "precision_fp16": "same weights; roll in float16, theta in float64 (backend discrepancy)",
    "staleness": "theta = roll after k Adam steps on the RL surrogate (distributed staleness)",
    "moe_routing": "roll adds x P to the router logits of every MoE layer (routing flips)",
    "weight_noise_0.02": "roll = weights + 0.02 rms(w) N(0,1) per tensor (controllable knob)",
    "weight_noise_0.1": "roll = weights + 0.1 rms(w) N(0,1) per tensor (controllable knob)",
}
PARAMS = {
    "precision_bf16": {"roll_dtype": "bfloat16", "theta_dtype": "float64"},
    "precision_fp16": {"roll_dtype": "float16", "theta_dtype": "float64"},
    "staleness": {"k": 2, "lr": 1e-3, "T": 8, "batch": 64, "optimizer": "Adam"},
    "moe_routing": {"scale": 0.05, "n_experts": 4, "top_k": 2},
    "weight_noise_0.02": {"scale": 0.02},
    "weight_noise_0.1": {"scale": 0.1},
}


def build_pairs(dense: GPT, moe: GPT, source: MarkovSource, seed: int) -> dict:
    """One ``(roll, theta)`` pair per source (on the models' device)."""
    st = PARAMS["staleness"]
    return {
        "precision_bf16": precision_pair(dense, torch.bfloat16, torch.float64),
        "precision_fp16": precision_pair(dense, torch.float16, torch.float64),
        "staleness": staleness_pair(
            dense, source, k=st["k"], lr=st["lr"], T=st["T"], batch=st["batch"], seed=seed
        ),
        "moe_routing": moe_routing_pair(moe, PARAMS["moe_routing"]["scale"], seed=seed),
        "weight_noise_0.02": weight_noise_pair(dense, 0.02, seed=seed),
        "weight_noise_0.1": weight_noise_pair(dense, 0.1, seed=seed),
    }


def _fingerprint(model: GPT) -> int:
    """Hash of a model's dtype, weights and router perturbations (equal models walk once)."""
    import hashlib

    h = hashlib.sha256(str(model.dtype).encode())
    for t in [*model.state_dict().values(),
              *(getattr(b.mlp, "router_perturbation", None) for b in model.blocks)]:
        if t is not None:
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return int.from_bytes(h.digest()[:8], "big")


def summarise(q: dict) -> dict:
    """Tightest published/sharp bound and its ratio to |error| and to max_R |Error|."""
    out = {}
    for kind, key in (("published", "bounds_published"), ("sharp", "bounds_sharp")):
        b = {k: v for k, v in q[key].items() if k != "unified"}
        name = min(b, key=b.get)
        out[f"tightest_{kind}"] = name
        out[f"tied_{kind}"] = [k for k in b if b[k] <= b[name] * (1 + 1e-12)]
        out[f"ratio_{kind}"] = b[name] / abs(q["error"]) if q["error"] != 0 else float("inf")
        if kind == "sharp":
            out["ratio_worst_case_sharp"] = b[name] / q["error_max_over_rewards"]
    return out


def run(args: Args) -> dict:
    """The whole experiment; writes the instances file and returns the result record
    (without provenance)."""
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    instances_out = (Path(args.instances_out) if args.instances_out is not None
                     else default_out(INSTANCES))
    t_start = time.perf_counter()
    size = {"T_exact": list(args.T_exact), "T_mc": args.T_mc, "N_mc": args.N_mc,
            "mc_batch": args.mc_batch, "steps": args.steps, "train_T": args.train_T,
            "long_steps": args.long_steps, "long_batch": args.long_batch}
    dev = torch.device(args.device)
    if dev.type == "cuda":
        no_tf32()
    V, n_prompts = args.V, 2
    p_x = np.full(n_prompts, 1.0 / n_prompts)
    source = MarkovSource(V=V, n_prompts=n_prompts, seed=args.seed)
    models, model_info = {}, {}
    for name, n_exp in progress([("dense", 0), ("moe", 4)], desc="train"):
        cfg = GPTConfig(vocab_size=V, n_prompts=n_prompts, n_experts=n_exp, seed=args.seed)
        m = GPT(cfg).to(dev)
        t0 = time.perf_counter()
        losses = train_on_source(m, source, steps=size["steps"], lr=1e-2, seed=args.seed)
        info = {"train_steps": size["steps"], "train_T": 8, "final_loss": losses[-1]}
        if args.long_steps > 0:  # curriculum: then at the Monte Carlo length
            long = train_on_source(m, source, steps=args.long_steps, T=args.train_T,
                                   batch=args.long_batch, lr=3e-3, seed=args.seed + 1)
            info.update(long_steps=args.long_steps, long_T=args.train_T,
                        long_batch=args.long_batch, final_loss=long[-1])
        models[name] = m
        model_info[name] = {**asdict(cfg), **info, "train_seconds": time.perf_counter() - t0}
    pairs = build_pairs(models["dense"], models["moe"], source, args.seed)

    exact_rows, instances = [], []
    tables: dict = {}  # model fingerprint -> (tables, routes): shared models walk once

    def walk(model: GPT, T: int) -> tuple:
        key = (_fingerprint(model), T)
        for done in [k for k in tables if k[1] != T]:  # one horizon in memory at a time
            del tables[done]
        if key not in tables:
            tables[key] = enumerate_with_routes(model, T)
        return tables[key]

    jobs = [(name, T) for T in size["T_exact"] for name in pairs]
    for name, T in progress(jobs, desc="enumerate"):
        t0 = time.perf_counter()
        roll, theta = pairs[name]
        (pr, routes_r), (pt, routes_t) = walk(roll, T), walk(theta, T)
        R = reward_table(source, n_prompts, T)
        q = exact_quantities(pr, pt, R, p_x, device=dev).to_dict()
        row = {"source": name, "V": V, "T": T, "n_sequences": n_prompts * V**T, **q,
               **summarise(q)}  # fmt: skip
        if routes_r is not None:
            row["route_flips"] = list(route_flips(routes_r, routes_t))
        row["seconds"] = time.perf_counter() - t0
        exact_rows.append(row)
        if T == args.export_T:
            instances.append(
                instance_record(
                    f"transformer-{name}-V{V}-T{T}",
                    pr,
                    pt,
                    R,
                    p_x,
                    expected=q,
                    kind="transformer",
                    generator=name,
                    description=SOURCES[name],
                )
            )

    tables.clear()
    mc_rows = []
    for name in progress(pairs, desc=f"monte carlo T={size['T_mc']}"):
        t0 = time.perf_counter()
        roll, theta = pairs[name]
        s = rollout_logratios(
            roll,
            theta,
            source,
            N=size["N_mc"],
            T=size["T_mc"],
            p_x=p_x,
            seed=args.seed,
            batch=size["mc_batch"],
        )
        est = mc_estimates(s["logr"], s["reward"], kl_ctx=s["kl_ctx"], tv_ctx=s["tv_ctx"])
        mc_rows.append(
            {
                "source": name,
                "T": size["T_mc"],
                "N": size["N_mc"],
                "estimates": {k: v.as_dict() for k, v in est.items() if hasattr(v, "as_dict")},
                "eps_observed": est["eps_observed"],
                "delta_observed": est["delta_observed"],
                "plugin_bounds_published": plugin_bounds_from_estimates(est)["bounds"],
                "plugin_bounds_sharp": plugin_bounds_from_estimates(est, sharp=True)["bounds"],
                "caveat": CAVEAT,
                "seconds": time.perf_counter() - t0,
            }
        )

    write_instances(instances_out, instances, compact=True)
    gpu = f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else ""
    return {
        "device": str(dev) + gpu,
        "torch_version": torch.__version__,
        "model": model_info,
        "source": {
            "V": V,
            "n_prompts": n_prompts,
            "n_allowed": source.n_allowed,
            "leak": source.leak,
            "allowed": source.allowed,
        },
        "p_x": p_x,
        "reward": "R(x, y) = (1/T) sum_t 1[y_t in A(y_{t-1})], y_0 = x mod V; in [0, 1]",
        "sources": {k: {"description": SOURCES[k], "params": PARAMS[k]} for k in SOURCES},
        "exact": exact_rows,
        "montecarlo": mc_rows,
        "instances_file": portable_path(str(instances_out)),
        "seconds": time.perf_counter() - t_start,
    }


def produce(args: Args) -> Path:
    """Run the study and write its result file (with provenance); return its path."""
    out = Path(args.out) if args.out is not None else default_out(RESULT)
    data = run(args)
    write_results(out, data, experiment="transformer_mismatch",
                  args={**asdict(args), "out": str(out)}, seed=args.seed)
    print(f"wrote {out} and {data['instances_file']} ({data['seconds']:.1f} s)")
    for row in data["exact"]:
        print(
            f"{row['source']:>18} T={row['T']:<3} error={row['error']:+.3e} "
            f"max_R={row['error_max_over_rewards']:.3e} delta={row['delta']:.3e} "
            f"eps={row['eps']:.3e} DKLseq={row['D_KL_seq']:.3e} "
            f"tightest={row['tightest_sharp']} x{row['ratio_sharp']:.3g}"
        )
    for row in data["montecarlo"]:
        e = row["estimates"]["error"]
        print(f"{row['source']:>18} MC T={row['T']} N={row['N']} error={e['mean']:+.3e} "
              f"+-{e['hi'] - e['mean']:.2e} eps_obs={row['eps_observed']:.3e} "
              f"delta_obs={row['delta_observed']:.3e} "
              f"B*_sharp={row['plugin_bounds_sharp']['unified']:.3e}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: train, enumerate, sample; write the result and instances files."""
    args = parse_args(Args, argv, description=__doc__.split("\n")[0], sizes=SIZES)
    produce(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
