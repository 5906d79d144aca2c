r"""Small causal transformers whose policy pairs carry the paper's mismatch sources.

A nanoGPT-style decoder-only model (dense or Mixture-of-Experts), a synthetic Markov source
to train it on, a bounded reward, the four policy-pair constructors of issue 4 and
autoregressive sampling with a KV cache.  Exact enumeration lives in
:mod:`trm_bounds.neural_exact`; Monte Carlo estimators in :mod:`trm_bounds.montecarlo`.

Setting (THEORY.md section 1).  A prompt ``x`` in ``0..n_prompts-1`` is fed as one prompt
token (index ``V + x`` of the embedding table; it plays the role of BOS, so position 1 has a
context).  The model reads ``[x, y_1, ..., y_{T-1}]`` and its logits at input position
``t-1`` give ``pi(. | c_t)``, ``c_t = (x, y_<t)``, over the ``V`` response tokens.

Policies.  A policy is a :class:`GPT` module with its own weights, dtype and (for MoE) router
perturbation.  Its log-probabilities are always formed in float64
(``log_softmax(logits.double())``), whatever dtype the network ran in, so low-precision
policies are *evaluated* in low precision but *accumulated* in float64.  Pairs are returned
as ``(roll, theta)``:

- :func:`precision_pair`: same weights, ``roll`` in bfloat16 or float16, ``theta`` in
  float64 (backend discrepancy);
- :func:`staleness_pair`: ``theta`` is ``roll`` after ``k`` optimizer steps on the RL
  surrogate ``E_roll[(R - b) sum_t rho_t]`` (distributed staleness);
- :func:`moe_routing_pair`: ``roll`` routes with perturbed router logits
  ``l + x P`` (MoE routing discontinuities);
- :func:`weight_noise_pair`: ``roll`` has weights ``w + scale * rms(w) * N(0, 1)``.

Reward (bounded in ``[0, 1]``, :func:`grammar_reward`): the fraction of positions
``t = 1..T`` whose token is grammatical, ``R(x, y) = (1/T) sum_t 1[y_t in A(y_{t-1})]``, with
``y_0 = start(x) = x mod V`` and ``A(v)`` the allowed successors of ``v`` in the source.

No TF32 or reduced-precision defaults are used on verification paths: matmuls run in the
module's own dtype and TF32 is switched off when a CUDA device is used (:func:`no_tf32`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GPTConfig",
    "GPT",
    "MarkovSource",
    "grammar_reward",
    "policy_logprobs",
    "token_logprobs",
    "train_on_source",
    "sample",
    "rollout_logratios",
    "precision_pair",
    "staleness_pair",
    "moe_routing_pair",
    "weight_noise_pair",
    "count_route_flips",
    "no_tf32",
]


def no_tf32() -> None:
    """Switch off TF32 matmuls/convolutions (verification paths need true float32 on CUDA)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


# ----------------------------------------------------------------------------- model


@dataclass
class GPTConfig:
    """Model configuration.

    ``vocab_size`` is the response vocabulary ``V``; the embedding table has
    ``V + n_prompts`` rows (prompt tokens).  ``n_experts = 0`` gives a dense MLP, otherwise a
    Mixture-of-Experts MLP with a top-``top_k`` router.  Positions use a fixed sinusoidal
    encoding, so any horizon can be evaluated (sequences of length 1024 and more).
    """

    vocab_size: int = 4
    n_prompts: int = 2
    n_layer: int = 2
    n_head: int = 2
    d_model: int = 32
    n_experts: int = 0
    top_k: int = 2
    seed: int = 0


def sinusoidal_positions(
    n: int, d: int, device=None, dtype=torch.float32, start: int = 0
) -> Tensor:
    """Fixed sinusoidal encoding of positions ``start..start+n-1``, shape ``(n, d)``."""
    pos = torch.arange(start, start + n, device=device, dtype=torch.float64)[:, None]  # (n, 1)
    freq = torch.exp(
        -math.log(10000.0) * torch.arange(0, d, 2, device=device, dtype=torch.float64) / d
    )  # (d/2,)
    pe = torch.zeros(n, d, device=device, dtype=torch.float64)  # (n, d)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe.to(dtype)


class CausalSelfAttention(nn.Module):
    """Plain multi-head causal attention (explicit softmax, no fused kernels)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        B, L, D = x.shape  # (B, L, D)
        H = self.n_head
        q, k, v = self.qkv(x).split(D, dim=2)  # 3 x (B, L, D)
        q = q.view(B, L, H, D // H).transpose(1, 2)  # (B, H, L, hd)
        k = k.view(B, L, H, D // H).transpose(1, 2)  # (B, H, L, hd)
        v = v.view(B, L, H, D // H).transpose(1, 2)  # (B, H, L, hd)
        past = 0
        if cache is not None:  # KV cache: preallocated buffers of cache["size"] positions
            if "k" not in cache:
                shape = (B, H, cache["size"], D // H)
                cache["k"] = x.new_empty(shape)  # (B, H, size, hd)
                cache["v"] = x.new_empty(shape)  # (B, H, size, hd)
                cache["n"] = 0
            past = cache["n"]
            cache["k"][:, :, past : past + L] = k
            cache["v"][:, :, past : past + L] = v
            cache["n"] = past + L
            k = cache["k"][:, :, : past + L]  # (B, H, past+L, hd)
            v = cache["v"][:, :, : past + L]  # (B, H, past+L, hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(D // H)  # (B, H, L, past+L)
        qi = torch.arange(L, device=x.device)[:, None] + past  # (L, 1)
        ki = torch.arange(k.shape[2], device=x.device)[None, :]  # (1, past+L)
        att = att.masked_fill(ki > qi, float("-inf"))  # causal mask
        att = torch.softmax(att, dim=-1)  # (B, H, L, past+L)
        y = att @ v  # (B, H, L, hd)
        y = y.transpose(1, 2).reshape(B, L, D)  # (B, L, D)
        return self.proj(y)  # (B, L, D)


class MLP(nn.Module):
    """Dense feed-forward block ``W2 gelu(W1 x)``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x)))  # (B, L, D)


class MoE(nn.Module):
    r"""Mixture-of-Experts feed-forward block with a top-k router.

    Router logits ``l = W_r x`` (exposed as ``last_router_logits`` after each call; a fixed
    perturbation ``router_perturbation`` of shape ``(D, E)`` is added as ``l + x P`` when set).
    The ``top_k`` largest logits are kept, their softmax gives the gates, the others get gate 0:
    ``y = sum_{e in topk(l)} softmax(l_topk)_e * expert_e(x)``.  All experts are evaluated
    densely (einsum) and masked, which is exact and vectorised for small ``E``.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        E, D = cfg.n_experts, cfg.d_model
        self.top_k = cfg.top_k
        self.router = nn.Linear(D, E, bias=False)
        self.w1 = nn.Parameter(torch.randn(E, D, 4 * D) / math.sqrt(D))  # (E, D, 4D)
        self.b1 = nn.Parameter(torch.zeros(E, 4 * D))  # (E, 4D)
        self.w2 = nn.Parameter(torch.randn(E, 4 * D, D) / math.sqrt(4 * D))  # (E, 4D, D)
        self.register_buffer("router_perturbation", None, persistent=False)
        self.last_router_logits: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        logits = self.router(x)  # (B, L, E)
        if self.router_perturbation is not None:
            logits = logits + x @ self.router_perturbation  # (B, L, E)
        self.last_router_logits = logits.detach()
        top, idx = logits.topk(self.top_k, dim=-1)  # (B, L, k), (B, L, k)
        gates = torch.zeros_like(logits).scatter(-1, idx, torch.softmax(top, dim=-1))  # (B,L,E)
        h = F.gelu(torch.einsum("bld,edh->bleh", x, self.w1) + self.b1)  # (B, L, E, 4D)
        out = torch.einsum("bleh,ehd->bled", h, self.w2)  # (B, L, E, D)
        return torch.einsum("ble,bled->bld", gates, out)  # (B, L, D)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MoE(cfg) if cfg.n_experts > 0 else MLP(cfg)

    def forward(self, x: Tensor, cache: dict | None = None) -> Tensor:
        x = x + self.attn(self.ln1(x), cache)  # (B, L, D)
        return x + self.mlp(self.ln2(x))  # (B, L, D)


class GPT(nn.Module):
    """Decoder-only transformer; ``forward(idx)`` returns logits at every position.

    ``idx`` has shape ``(B, L)``: column 0 holds the prompt token ``V + x``, columns ``1..``
    hold response tokens.  ``forward`` returns ``(B, L, V)`` logits in the module's dtype;
    position ``t-1`` scores ``y_t``.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(cfg.seed)  # seeded initialisation
        self.wte = nn.Embedding(cfg.vocab_size + cfg.n_prompts, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size)
        torch.random.set_rng_state(gen_state)

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def forward(self, idx: Tensor, caches: list | None = None, start: int = 0) -> Tensor:
        B, L = idx.shape  # (B, L)
        pe = sinusoidal_positions(L, self.cfg.d_model, idx.device, self.dtype, start)  # (L, D)
        x = self.wte(idx) + pe  # (B, L, D)
        for i, block in enumerate(self.blocks):
            x = block(x, None if caches is None else caches[i])  # (B, L, D)
        return self.head(self.ln_f(x))  # (B, L, V)


def policy_logprobs(model: GPT, idx: Tensor) -> Tensor:
    """Next-token log-probabilities ``log pi(. | c_t)`` at every position, float64 ``(B, L, V)``.

    The network runs in its own dtype; the softmax is taken in float64 (THEORY.md section 1).
    """
    with torch.no_grad():
        return torch.log_softmax(model(idx).double(), dim=-1)  # (B, L, V)


def token_logprobs(model: GPT, prompts: Tensor, tokens: Tensor) -> Tensor:
    """Per-token ``log pi(y_t | x, y_<t)`` for responses ``tokens`` ``(B, T)``; float64 ``(B, T)``.

    Differentiable (used by the RL surrogate); the softmax is taken in float64.
    """
    idx = _inputs(model, prompts, tokens)  # (B, T)
    logp = torch.log_softmax(model(idx).double(), dim=-1)  # (B, T, V)
    return logp.gather(-1, tokens[..., None]).squeeze(-1)  # (B, T)


def _inputs(model: GPT, prompts: Tensor, tokens: Tensor) -> Tensor:
    """Model input ``[V + x, y_1, ..., y_{T-1}]``, shape ``(B, T)``."""
    first = (model.cfg.vocab_size + prompts)[:, None]  # (B, 1)
    return torch.cat([first, tokens[:, :-1]], dim=1)  # (B, T)


# ----------------------------------------------------------------------------- source, reward


@dataclass
class MarkovSource:
    """Synthetic training source: a sparse Markov chain with a grammar of allowed successors.

    Each token ``v`` has ``n_allowed`` allowed successors ``A(v)`` (a random set) carrying
    probability ``1 - leak`` in total; the other tokens share ``leak``.  The chain starts from
    ``y_0 = start(x) = x mod V``.
    """

    V: int = 4
    n_prompts: int = 2
    n_allowed: int = 2
    leak: float = 0.1
    seed: int = 0
    allowed: np.ndarray = field(init=False)  # (V, V) bool
    P: np.ndarray = field(init=False)  # (V, V) transition matrix

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        allowed = np.zeros((self.V, self.V), dtype=bool)
        for v in range(self.V):
            allowed[v, rng.choice(self.V, self.n_allowed, replace=False)] = True
        w = rng.dirichlet(np.ones(self.n_allowed), size=self.V)  # (V, n_allowed)
        P = np.full((self.V, self.V), self.leak / max(self.V - self.n_allowed, 1))
        P[allowed] = ((1 - self.leak) * w).ravel()
        self.allowed, self.P = allowed, P / P.sum(1, keepdims=True)

    def start(self, prompts: np.ndarray) -> np.ndarray:
        """Start token ``y_0 = x mod V``."""
        return np.asarray(prompts) % self.V

    def sample(self, n: int, T: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` prompts (uniform) and token sequences ``(n, T)`` from the chain."""
        x = rng.integers(0, self.n_prompts, n)
        y = np.empty((n, T), dtype=np.int64)
        prev = self.start(x)
        cum = np.cumsum(self.P, axis=1)  # (V, V)
        for t in range(T):
            u = rng.random(n)[:, None]
            y[:, t] = np.minimum((u > cum[prev]).sum(1), self.V - 1)
            prev = y[:, t]
        return x, y


def grammar_reward(source: MarkovSource, prompts, tokens) -> np.ndarray:
    r"""Reward in ``[0, 1]``: fraction of grammatical positions (THEORY.md section 1).

    .. math:: R(x, y) = \frac1T \sum_{t=1}^T \mathbf 1[y_t \in A(y_{t-1})],\quad y_0 = x \bmod V.

    ``prompts`` ``(N,)``, ``tokens`` ``(N, T)``; returns float64 ``(N,)``.
    """
    tokens = np.asarray(tokens)
    prev = np.concatenate([source.start(np.asarray(prompts))[:, None], tokens[:, :-1]], axis=1)
    return source.allowed[prev, tokens].mean(axis=1).astype(np.float64)


def train_on_source(
    model: GPT,
    source: MarkovSource,
    *,
    steps: int = 300,
    T: int = 8,
    batch: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Fit ``model`` to ``source`` by next-token cross-entropy (Adam); returns the loss curve.

    Takes a few seconds on CPU at the default sizes; afterwards next-token distributions are
    far from uniform (close to the chain's rows).
    """
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        x, y = source.sample(batch, T, rng)
        x = torch.as_tensor(x, device=model.device)
        y = torch.as_tensor(y, device=model.device)
        loss = -token_logprobs(model, x, y).mean()  # cross-entropy, nats
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


# ----------------------------------------------------------------------------- sampling


def sample(
    model: GPT, prompts: Tensor, T: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Sample responses of length ``T`` from ``model`` with a KV cache.

    Returns ``tokens`` ``(N, T)`` and the sampler's full next-token log-probabilities
    ``(N, T, V)`` in float64 (the rollout log-probabilities, as an inference engine reports
    them).  ``generator`` lives on ``model.device``.
    """
    N = prompts.shape[0]
    caches = [{"size": T} for _ in model.blocks]
    idx = (model.cfg.vocab_size + prompts)[:, None]  # (N, 1)
    tokens = torch.empty(N, T, dtype=torch.long, device=model.device)  # (N, T)
    logps = torch.empty(N, T, model.cfg.vocab_size, dtype=torch.float64, device=model.device)
    with torch.no_grad():
        for t in range(T):
            logits = model(idx, caches, start=t)[:, -1]  # (N, V)
            logp = torch.log_softmax(logits.double(), dim=-1)  # (N, V)
            logps[:, t] = logp
            tokens[:, t] = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
            idx = tokens[:, t : t + 1]  # (N, 1)
    return tokens, logps


# ----------------------------------------------------------------------------- policy pairs


def precision_pair(
    model: GPT, roll_dtype: torch.dtype = torch.bfloat16, theta_dtype: torch.dtype = torch.float64
) -> tuple[GPT, GPT]:
    """Backend mismatch: the same weights cast to ``roll_dtype`` (roll) and ``theta_dtype``."""
    return copy.deepcopy(model).to(roll_dtype), copy.deepcopy(model).to(theta_dtype)


def weight_noise_pair(
    model: GPT, scale: float, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[GPT, GPT]:
    """Weight noise: roll has ``w + scale * rms(w) * N(0,1)`` per tensor; theta is ``model``."""
    roll = copy.deepcopy(model).to(dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for p in roll.parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.device, p.dtype)
            p.add_(scale * p.pow(2).mean().sqrt() * noise)
    return roll, copy.deepcopy(model).to(dtype)


def moe_routing_pair(
    model: GPT, scale: float, *, seed: int = 0, dtype: torch.dtype = torch.float64
) -> tuple[GPT, GPT]:
    """MoE routing: roll adds ``x P`` to the router logits, ``P ~ scale * N(0, 1/D)`` per layer.

    A small ``scale`` flips the top-k selection only for contexts near a routing boundary
    (count them with :func:`count_route_flips`); theta routes with the unperturbed logits.
    """
    if model.cfg.n_experts == 0:
        raise ValueError("moe_routing_pair needs a model with n_experts > 0")
    roll = copy.deepcopy(model).to(dtype)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    D, E = model.cfg.d_model, model.cfg.n_experts
    for block in roll.blocks:
        P = torch.randn(D, E, generator=gen, dtype=torch.float64) * scale / math.sqrt(D)
        block.mlp.router_perturbation = P.to(roll.device, dtype)
    return roll, copy.deepcopy(model).to(dtype)


def count_route_flips(roll: GPT, theta: GPT, idx: Tensor, batch: int = 4096) -> tuple[int, int]:
    """Number of (layer, token position) pairs whose top-k expert set differs, and the total."""
    flips = total = 0
    for chunk in idx.split(batch):  # (b, L)
        with torch.no_grad():
            roll(chunk)
            theta(chunk)
        for br, bt in zip(roll.blocks, theta.blocks, strict=True):
            k = br.mlp.top_k
            sr = br.mlp.last_router_logits.topk(k, -1).indices.sort(-1).values  # (b, L, k)
            st = bt.mlp.last_router_logits.topk(k, -1).indices.sort(-1).values  # (b, L, k)
            flips += int((sr != st).any(-1).sum())
            total += sr.shape[0] * sr.shape[1]
    return flips, total


def staleness_pair(
    model: GPT,
    source: MarkovSource,
    *,
    k: int = 2,
    lr: float = 1e-3,
    T: int = 8,
    batch: int = 64,
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
) -> tuple[GPT, GPT]:
    r"""Staleness: theta = roll after ``k`` Adam steps on the RL surrogate (THEORY.md section 2).

    Each step samples ``batch`` responses of length ``T`` from the *fixed* roll policy and
    ascends ``E_roll[(R - b) sum_t rho_t]`` with ``b`` the batch mean reward (the gradient of
    ``L'`` at ``theta``).
    """
    roll = copy.deepcopy(model).to(dtype)
    theta = copy.deepcopy(model).to(dtype)
    opt = torch.optim.Adam(theta.parameters(), lr=lr)
    gen = torch.Generator(device=model.device).manual_seed(seed)
    for _ in range(k):
        x = torch.randint(0, model.cfg.n_prompts, (batch,), generator=gen, device=model.device)
        y, logp_roll = sample(roll, x, T, gen)
        lr_tok = logp_roll.gather(-1, y[..., None]).squeeze(-1)  # (B, T)
        R = torch.as_tensor(grammar_reward(source, x.cpu().numpy(), y.cpu().numpy()))
        adv = (R - R.mean()).to(model.device)  # (B,)
        rho = torch.exp(token_logprobs(theta, x, y) - lr_tok)  # (B, T)
        loss = -(adv[:, None] * rho).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return roll, theta


def rollout_logratios(
    roll: GPT,
    theta: GPT,
    source: MarkovSource,
    *,
    N: int,
    T: int,
    p_x: np.ndarray | None = None,
    seed: int = 0,
    batch: int = 64,
) -> dict[str, np.ndarray]:
    r"""Sample ``N`` responses of length ``T`` from ``roll``; the inputs of Monte Carlo estimation.

    Prompts ``x ~ p_x`` (uniform by default), responses from :func:`sample` (KV cache; its
    log-probabilities *define* the rollout policy, as an inference engine's do), theta's
    distributions by one teacher-forced pass per batch.  Returns float64 numpy arrays:
    ``prompts`` ``(N,)``, ``tokens`` ``(N, T)``, ``logr`` ``(N, T)`` (``log rho_t``),
    ``reward`` ``(N,)`` (:func:`grammar_reward`), and the exact forward ``kl_ctx`` and
    ``tv_ctx`` ``(N, T)`` of each visited context (THEORY.md section 3).

    For a low-precision ``roll`` the KV-cache (decode) path and the full (prefill) pass round
    differently, as in real inference engines: on a trained V = 4 model, float16 decode and
    prefill log-probabilities differ by up to 2e-3 (the float16-float64 gap is 3e-3),
    bfloat16 ones agreed exactly, float32 ones by 1e-6.  Enumeration
    (:mod:`trm_bounds.neural_exact`) uses the prefill path, so Monte Carlo rows of precision
    pairs describe the decode-path policy.
    """
    from trm_bounds.divergences import kl_from_logprobs

    n_prompts = roll.cfg.n_prompts
    p_x = np.full(n_prompts, 1.0 / n_prompts) if p_x is None else np.asarray(p_x)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=roll.device).manual_seed(seed)
    prompts = rng.choice(n_prompts, size=N, p=p_x)
    parts: dict[str, list] = {k: [] for k in ("tokens", "logr", "kl_ctx", "tv_ctx")}
    for x in np.array_split(prompts, max(1, -(-N // batch))):
        xt = torch.as_tensor(x, device=roll.device)
        y, lpr = sample(roll, xt, T, gen)  # (B, T), (B, T, V)
        idx = _inputs(theta, xt.to(theta.device), y.to(theta.device))  # (B, T)
        chunk = max(1, 2**22 // (T * T))  # keeps the (chunk, H, T, T) attention small
        lpt = torch.cat([policy_logprobs(theta, i) for i in idx.split(chunk)])  # (B, T, V)
        lpr, lpt, y = lpr.cpu().numpy(), lpt.cpu().numpy(), y.cpu().numpy()
        tok = y[..., None]
        parts["tokens"].append(y)
        parts["logr"].append((np.take_along_axis(lpt - lpr, tok, -1))[..., 0])
        parts["kl_ctx"].append(kl_from_logprobs(lpr, lpt))
        parts["tv_ctx"].append(0.5 * np.abs(np.exp(lpt) - np.exp(lpr)).sum(-1))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["prompts"] = prompts
    out["reward"] = grammar_reward(source, prompts, out["tokens"])
    return out
