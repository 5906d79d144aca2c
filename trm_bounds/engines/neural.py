r"""Exact evaluation of transformer policy pairs by enumerating every sequence.

For a pair ``(roll, theta)`` of :class:`trm_bounds.transformer.GPT` policies, a vocabulary
``V``, horizon ``T`` and prompt distribution ``P(x)``:

1. :func:`enumerate_tables` reads off the next-token distribution of *every* context, in the
   tree order of the ``trm-oracle-instances/v1`` format (docs/theory.md §1):
   ``ctx(t, y_<t) = (V^(t-1) - 1)/(V - 1) + sum_{s<t} y_s V^(t-1-s)``, ``C = (V^T - 1)/(V - 1)``
   contexts per prompt.  By default it walks the prefix tree with a batched key/value cache
   (:func:`enumerate_with_routes`: one model token per context, depth-first in blocks, so
   ``V = 4, T = 12`` and ``V = 8, T = 8``, 16.7M sequences per prompt, run on one CPU core);
   the reference ``method="full"`` runs the model on every prefix of length ``T - 1`` and
   reads each context at its position.  Causality makes both exact: a context's
   distribution does not depend on the tokens that follow it.
2. :func:`exact_quantities` computes, in float64 torch on any device, every exact quantity of
   docs/theory.md §2-§4 from the probability tables, over all ``V^T`` sequences
   ``seq(y) = sum_t y_t V^(T-t)`` in blocks of leaves.
3. The tables export as a ``trm-oracle-instances/v1`` instance with the report as its
   expected values (:func:`trm_bounds.instances.format.instance_record`, written by
   :func:`trm_bounds.instances.format.write_instances`), so the tree engine
   (:func:`trm_bounds.engines.tree.exact_report`) recomputes everything from the same tables.

All policies here are softmax policies evaluated in float64, so every context has full
support and ``rho_t`` is finite; every context is reachable (docs/theory.md §3).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from trm_bounds.bounds import compute_bounds
from trm_bounds.divergences_torch import k3, kl_from_logprobs, tv_from_logprobs
from trm_bounds.instances.tree import n_contexts
from trm_bounds.report import ExactReport
from trm_bounds.transformer import GPT, MarkovSource, grammar_reward, policy_logprobs

__all__ = [
    "sequence_tokens",
    "context_indices",
    "enumerate_tables",
    "enumerate_with_routes",
    "route_flips",
    "exact_quantities",
    "reward_table",
]

Device = str | torch.device | None


def _position_of_context(V: int, T: int, device: Device = None) -> tuple[Tensor, Tensor]:
    """Position ``t`` (1-based) and prefix number ``p`` of every context, both ``(C,)``.

    Context ``c = (V^(t-1) - 1)/(V - 1) + p`` has a prefix of length ``t - 1`` whose base-``V``
    reading is ``p`` (tree order, docs/theory.md §1).
    """
    sizes = V ** torch.arange(T, device=device)  # (T,)  V^(t-1) contexts at position t
    t_of = torch.repeat_interleave(torch.arange(1, T + 1, device=device), sizes)  # (C,)
    offset = torch.cumsum(sizes, 0) - sizes  # (T,)  first context of position t
    p_of = torch.arange(len(t_of), device=device) - offset[t_of - 1]  # (C,)
    return t_of, p_of


def sequence_tokens(
    V: int, T: int, device: Device = None, *, start: int = 0, stop: int | None = None
) -> Tensor:
    """Sequences ``start..stop-1`` (default all ``V^T``) as tokens ``(stop - start, T)``, row
    ``seq(y) - start`` with ``seq(y) = sum_t y_t V^(T-t)``.

    >>> sequence_tokens(2, 2).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    >>> sequence_tokens(2, 2, start=2).tolist()
    [[1, 0], [1, 1]]
    """
    stop = V**T if stop is None else stop
    n = torch.arange(start, stop, device=device)[:, None]  # (M, 1)
    powers = V ** torch.arange(T - 1, -1, -1, device=device)  # (T,)
    return (n // powers) % V  # (M, T)


def context_indices(
    V: int, T: int, device: Device = None, *, start: int = 0, stop: int | None = None
) -> Tensor:
    """Tree-order context index of ``c_t`` for sequences ``start..stop-1`` (default all
    ``V^T``) and every position, ``(stop - start, T)``.

    ``ctx(t, y_<t) = (V^(t-1) - 1)/(V - 1) + floor(seq(y) / V^(T-t+1))`` (the prefix
    ``y_<t`` read in base ``V``, ``y_1`` most significant).

    >>> context_indices(2, 2).tolist()  # c_1 is the root; c_2 = 1 + y_1
    [[0, 1], [0, 1], [0, 2], [0, 2]]
    """
    stop = V**T if stop is None else stop
    n = torch.arange(start, stop, device=device)[:, None]  # (M, 1)
    t = torch.arange(1, T + 1, device=device)  # (T,)
    offset = torch.tensor([n_contexts(V, s - 1) for s in range(1, T + 1)], device=device)  # (T,)
    return offset + n // (V ** (T - t + 1))  # (M, T)


def enumerate_tables(
    model: GPT,
    T: int,
    *,
    n_prompts: int | None = None,
    batch: int = 4096,
    method: str = "kv",
) -> np.ndarray:
    """Next-token distributions of every context, float64 ``(n_prompts, C, V)``, tree order.

    ``method="kv"`` (default) walks the prefix tree with a key/value cache
    (:func:`enumerate_with_routes`): each of the ``C`` contexts costs one token, ``C`` model
    tokens in all.  ``method="full"`` is the reference: the model runs on the ``V^(T-1)``
    prefixes of length ``T - 1`` (``T V^(T-1)`` tokens, ``batch`` tokens per call) and context
    ``(t, p)`` (prefix ``p`` of length ``t-1`` in base ``V``) is read at input position
    ``t-1`` of row ``p V^(T-t)``.  Rows are ``exp(log_softmax(logits in float64))``.  In
    float64 both agree to rounding; a low-precision model rounds differently on the two paths
    (the ``kv`` path is the decode path :func:`trm_bounds.transformer.sample` draws from).
    """
    if method == "kv":
        return enumerate_with_routes(model, T, n_prompts=n_prompts, batch=batch)[0]
    if method != "full":
        raise ValueError(f"method: must be 'kv' or 'full', got {method!r}")
    V = model.cfg.vocab_size
    n_prompts = model.cfg.n_prompts if n_prompts is None else n_prompts
    dev = model.device
    prefixes = sequence_tokens(V, T - 1, dev) if T > 1 else torch.zeros(1, 0, dtype=torch.long)
    prefixes = prefixes.to(dev)  # (V^(T-1), T-1)
    # row and column of each context c = (t, p) in the (V^(T-1), T) grid of positions
    t_of, p_of = _position_of_context(V, T)  # (C,), (C,)
    rows, cols = p_of * V ** (T - t_of), t_of - 1  # (C,), (C,)
    out = np.empty((n_prompts, n_contexts(V, T), V))
    rows_per_call = max(1, batch // T)
    for x in range(n_prompts):
        first = torch.full((prefixes.shape[0], 1), V + x, device=dev)  # (M, 1)
        idx = torch.cat([first, prefixes], dim=1)  # (M, T)
        logp = torch.cat([policy_logprobs(model, b) for b in idx.split(rows_per_call)])
        out[x] = logp[rows.to(dev), cols.to(dev)].exp().cpu().numpy()  # (C, V)
    return out


def enumerate_with_routes(
    model: GPT, T: int, *, n_prompts: int | None = None, batch: int = 4096
) -> tuple[np.ndarray, np.ndarray | None]:
    r"""Every context's next-token distribution by a KV-cached walk of the prefix tree.

    A node of the tree is a prefix ``(x, y_<t)``; its distribution comes from one model step
    on its last input token (``V + x`` at the root, else ``y_{t-1}``) at position ``t - 1``,
    attending to the cached keys/values of its ancestors.  A node's ``V`` children share its
    cache (copied ``V`` times), so the walk runs the model once per tree level on the new
    tokens only: ``C = (V^T - 1)/(V - 1)`` tokens per prompt instead of ``T V^(T-1)``.  The
    walk is depth-first over blocks of at most ``batch`` nodes, so the live caches stay
    ``O(batch T^2 d_model n_layer)`` at any ``V`` (about 300 MB in float64 at ``T = 12``), while
    the tables hold 5.6M contexts per prompt at ``V = 4``, ``T = 12``.
    A block of parents with consecutive prefix numbers ``[p, p + B)`` has children
    ``[pV, (p + B)V)``: every step fills a contiguous run of contexts in tree order.

    Returns ``tables`` float64 ``(n_prompts, C, V)`` (``exp(log_softmax(logits in
    float64))``, as :func:`enumerate_tables`) and, for a Mixture-of-Experts model, ``routes``
    int8 ``(n_layer, n_prompts, C, top_k)``: the sorted top-k expert ids of every (layer,
    context) (``None`` for a dense model).
    """
    cfg = model.cfg
    V = cfg.vocab_size
    n_prompts = cfg.n_prompts if n_prompts is None else n_prompts
    C, dev = n_contexts(V, T), model.device
    offsets = [n_contexts(V, t) for t in range(T)]  # first context of position t + 1
    tables = np.empty((n_prompts, C, V))
    out = torch.from_numpy(tables)  # (n_prompts, C, V) view the steps write into
    moe = cfg.n_experts > 0
    routes = np.empty((cfg.n_layer, n_prompts, C, cfg.top_k), np.int8) if moe else None
    children = torch.arange(V, device=dev)  # (V,)

    def step(x: int, k: int, p0: int, tokens: Tensor, caches: list[dict]) -> None:
        # nodes: prefixes of length k with prefix numbers p0.., last input token ``tokens``
        with torch.no_grad():
            logits = model(tokens[:, None], caches, start=k)[:, -1]  # (B, V)
        c0 = offsets[k] + p0
        c1 = c0 + len(tokens)
        out[x, c0:c1] = torch.log_softmax(logits.double(), -1).exp().cpu()  # (B, V)
        if moe:
            for i, block in enumerate(model.blocks):
                top = block.mlp.last_router_logits[:, -1].topk(cfg.top_k, -1).indices  # (B, k)
                routes[i, x, c0:c1] = top.sort(-1).values.cpu().numpy()
        if k + 1 == T:
            return
        per = max(1, batch // V)  # parents per block of children
        for a in range(0, len(tokens), per):
            b = min(a + per, len(tokens))
            child = []
            for cache in caches:  # each layer: (B, H, k+1, hd) -> ((b-a) V, H, k+2, hd)
                kv = {"size": k + 2, "n": k + 1}
                for key in ("k", "v"):
                    par = cache[key][a:b, :, : k + 1]  # (b-a, H, k+1, hd)
                    buf = par.new_empty((b - a, V, par.shape[1], k + 2, par.shape[3]))
                    buf[:, :, :, : k + 1] = par[:, None]  # (b-a, V, H, k+1, hd) broadcast
                    kv[key] = buf.view(-1, *buf.shape[2:])  # ((b-a) V, H, k+2, hd)
                child.append(kv)
            step(x, k + 1, (p0 + a) * V, children.repeat(b - a), child)

    for x in range(n_prompts):
        root = torch.full((1,), V + x, device=dev)  # (1,)
        step(x, 0, 0, root, [{"size": 1} for _ in model.blocks])
    return tables, routes


def route_flips(routes_roll: np.ndarray, routes_theta: np.ndarray) -> tuple[int, int]:
    """Number of (layer, prompt, context) whose top-k expert set differs, and the total.

    ``routes_*`` are the sorted expert ids of :func:`enumerate_with_routes`,
    ``(n_layer, n_prompts, C, top_k)``; every context counts once.
    """
    diff = (np.asarray(routes_roll) != np.asarray(routes_theta)).any(-1)  # (L, X, C)
    return int(diff.sum()), int(diff.size)


def exact_quantities(
    pi_roll: ArrayLike,
    pi_theta: ArrayLike,
    reward: ArrayLike,
    p_x: ArrayLike,
    *,
    device: str | torch.device = "cpu",
    chunk: int = 2**18,
) -> ExactReport:
    r"""Every exact quantity of docs/theory.md §2-§4 for a tree instance, by enumeration.

    ``pi_roll``, ``pi_theta``: ``(n_prompts, C, V)`` probabilities in tree order; ``reward``:
    ``(n_prompts, V^T)`` in ``[0, 1]``; ``p_x``: ``(n_prompts,)``.  With ``r_t = log rho_t``
    and ``S = sum_t r_t`` (all in float64):

    - ``J_roll``, ``J_theta`` ``= E_x sum_y P^pi(y|x) R``;
      ``L_prime = E_roll[R sum_t expm1(r_t)]`` (docs/theory.md §2);
    - ``error = E_roll[R (expm1(S) - sum_t expm1(r_t))]`` (definition, log space) and
      ``error_identity = E_roll[R sum_t expm1(r_t) expm1(S_{>t})]`` (telescoping identity);
      ``error_from_J = J_theta - J_roll - L_prime``;
    - ``error_max_over_rewards = 1/2 E_x sum_y P^roll |expm1(S) - sum_t expm1(r_t)|``;
    - ``eps``, ``delta``: max per-context TV and forward KL (nats); ``Dbar`` (``t = 1..T``);
      ``D_KL_seq`` by the chain rule and ``D_KL_seq_direct = E_x sum_y P^roll (expm1(S) - S)``
      with ``S = log P^theta - log P^roll`` (stable sequence-level form);
      ``D_TV_seq = 1/2 E_x sum_y P^roll |expm1(S)|``;
    - ``bounds_published`` / ``bounds_sharp``: ``trm_bounds.bounds.compute_bounds`` (docs/theory.md §4
      and §5) at these values.

    Sequence sums run over blocks of ``chunk`` leaves (memory ``O(n_prompts chunk T)``, so
    ``V^T = 16.7M`` fits); ``d_t^roll`` is built level by level over the tree,
    ``d(Vp + v) = d(p) pi_roll(v | p)``.  Returns an :class:`~trm_bounds.report.ExactReport`
    with the keys every engine reports plus ``error_from_J`` and ``D_KL_seq_direct``.
    """
    f64 = dict(dtype=torch.float64, device=device)
    pr = torch.as_tensor(np.asarray(pi_roll), **f64)  # (X, C, V)
    lpr = torch.log(pr)  # (X, C, V)
    lpt = torch.log(torch.as_tensor(np.asarray(pi_theta), **f64))  # (X, C, V)
    R_all = np.asarray(reward)  # (X, V^T)
    px = torch.as_tensor(np.asarray(p_x), **f64)  # (X,)
    X, C, V = lpr.shape
    T = int(round(np.log(R_all.shape[1]) / np.log(V)))
    sums = dict.fromkeys(("J_roll", "J_theta", "L_prime", "error", "error_identity",
                          "error_max", "dtv_seq", "dkl_direct"), 0.0)  # fmt: skip
    for a in range(0, V**T, chunk):  # leaves a..b-1: memory O(X chunk T), any T
        b = min(a + chunk, V**T)
        toks = sequence_tokens(V, T, device, start=a, stop=b)  # (M, T)
        ctx = context_indices(V, T, device, start=a, stop=b)  # (M, T)
        R = torch.as_tensor(R_all[:, a:b], **f64)  # (X, M)
        lr_tok = lpr[:, ctx, toks]  # (X, M, T)  log pi_roll(y_t | c_t)
        lt_tok = lpt[:, ctx, toks]  # (X, M, T)  log pi_theta(y_t | c_t)
        r = lt_tok - lr_tok  # (X, M, T)  r_t = log rho_t
        w = px[:, None] * lr_tok.sum(-1).exp()  # (X, M)  P(x) P^roll(y|x)
        S = r.sum(-1)  # (X, M)
        em = torch.expm1(r)  # (X, M, T)  rho_t - 1
        suffix = S[..., None] - r.cumsum(-1)  # (X, M, T)  S_{>t} = sum_{j>t} r_j
        c = torch.expm1(S) - em.sum(-1)  # (X, M)  prod rho - 1 - sum (rho - 1)
        sums["J_roll"] += float((w * R).sum())
        sums["J_theta"] += float((px[:, None] * lt_tok.sum(-1).exp() * R).sum())
        sums["L_prime"] += float((w * R * em.sum(-1)).sum())
        sums["error"] += float((w * R * c).sum())
        sums["error_identity"] += float((w * R * (em * torch.expm1(suffix)).sum(-1)).sum())
        sums["error_max"] += float(0.5 * (w * c.abs()).sum())
        sums["dtv_seq"] += float(0.5 * (w * torch.expm1(S).abs()).sum())
        sums["dkl_direct"] += float((w * k3(S)).sum())

    # per-context divergences and context probabilities d_t^roll (tree order), level by level:
    # the children of context p at position t are V p + v at position t + 1, d = d_p pi(v|p)
    kl_c = kl_from_logprobs(lpr, lpt)  # (X, C)  forward KL(roll || theta), nats
    tv_c = tv_from_logprobs(lpr, lpt)  # (X, C)
    d = torch.empty(X, C, **f64)  # (X, C)  P(x) d_t^roll(c)
    d[:, 0] = px
    for t in range(1, T):
        lo, mid, hi = n_contexts(V, t - 1), n_contexts(V, t), n_contexts(V, t + 1)
        d[:, mid:hi] = (d[:, lo:mid, None] * pr[:, lo:mid]).reshape(X, -1)
    t_of = _position_of_context(V, T, device)[0] - 1  # (C,)  0-based position of each context
    dbar = torch.zeros(T, **f64).index_add_(0, t_of, (d * tv_c).sum(0))  # (T,)
    q = {
        "eps": float(tv_c.max()),
        "delta": float(kl_c.max()),
        "dkl_seq": float((d * kl_c).sum()),
        "dtv_seq": sums["dtv_seq"],
        "dbar": dbar.cpu().numpy(),
    }
    bounds = {
        key: {k: float(v) for k, v in compute_bounds(T, sharp=sharp, **q).items()}
        for key, sharp in (("bounds_published", False), ("bounds_sharp", True))
    }
    return ExactReport(
        J_roll=sums["J_roll"],
        J_theta=sums["J_theta"],
        L_prime=sums["L_prime"],
        error=sums["error"],
        error_identity=sums["error_identity"],
        error_max_over_rewards=sums["error_max"],
        eps=q["eps"],
        delta=q["delta"],
        Dbar=q["dbar"],
        D_KL_seq=q["dkl_seq"],
        D_TV_seq=q["dtv_seq"],
        D_KL_seq_direct=sums["dkl_direct"],
        error_from_J=sums["J_theta"] - sums["J_roll"] - sums["L_prime"],
        **bounds,
    )


def reward_table(source: MarkovSource, n_prompts: int, T: int, *, chunk: int = 2**18) -> np.ndarray:
    """Grammar reward of every sequence, ``(n_prompts, V^T)`` in ``[0, 1]`` (row ``seq(y)``),
    computed over blocks of ``chunk`` sequences."""
    out = np.empty((n_prompts, source.V**T))
    for a in range(0, source.V**T, chunk):
        toks = sequence_tokens(source.V, T, start=a, stop=min(a + chunk, source.V**T)).numpy()
        for x in range(n_prompts):
            out[x, a : a + len(toks)] = grammar_reward(source, np.full(len(toks), x), toks)
    return out
