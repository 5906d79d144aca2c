r"""The policy network: a small nanoGPT-style decoder (dense or Mixture-of-Experts).

Setting (docs/theory.md §1).  A prompt ``x`` in ``0..n_prompts-1`` is fed as one prompt
token (index ``V + x`` of the embedding table; it plays the role of BOS, so position 1 has a
context).  The model reads ``[x, y_1, ..., y_{T-1}]`` and its logits at input position
``t-1`` give ``pi(. | c_t)``, ``c_t = (x, y_<t)``, over the ``V`` response tokens.

Log-probabilities are always formed in float64 (``log_softmax(logits.double())``), whatever
dtype the network ran in, so low-precision policies are *evaluated* in low precision but
*accumulated* in float64.  :func:`sample` draws responses autoregressively with a KV cache.

No TF32 or reduced-precision defaults are used on verification paths: matmuls run in the
module's own dtype and TF32 is switched off when a CUDA device is used (:func:`no_tf32`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GPTConfig",
    "GPT",
    "CausalSelfAttention",
    "MLP",
    "MoE",
    "Block",
    "sinusoidal_positions",
    "policy_logprobs",
    "token_logprobs",
    "model_inputs",
    "sample",
    "no_tf32",
]


def no_tf32() -> None:
    """Switch off TF32 matmuls/convolutions (verification paths need true float32 on CUDA)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


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
    n: int,
    d: int,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    start: int = 0,
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

    >>> model = GPT(GPTConfig(vocab_size=4, n_prompts=2))
    >>> model(torch.tensor([[4, 0, 3]])).shape  # prompt x = 0, then y_1 = 0, y_2 = 3
    torch.Size([1, 3, 4])
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

    The network runs in its own dtype; the softmax is taken in float64 (docs/theory.md §1).
    """
    with torch.no_grad():
        return torch.log_softmax(model(idx).double(), dim=-1)  # (B, L, V)


def token_logprobs(model: GPT, prompts: Tensor, tokens: Tensor) -> Tensor:
    """Per-token ``log pi(y_t | x, y_<t)`` for responses ``tokens`` ``(B, T)``; float64 ``(B, T)``.

    Differentiable (used by the RL surrogate); the softmax is taken in float64.
    """
    idx = model_inputs(model, prompts, tokens)  # (B, T)
    logp = torch.log_softmax(model(idx).double(), dim=-1)  # (B, T, V)
    return logp.gather(-1, tokens[..., None]).squeeze(-1)  # (B, T)


def model_inputs(model: GPT, prompts: Tensor, tokens: Tensor) -> Tensor:
    """Model input ``[V + x, y_1, ..., y_{T-1}]``, shape ``(B, T)``."""
    first = (model.cfg.vocab_size + prompts)[:, None]  # (B, 1)
    return torch.cat([first, tokens[:, :-1]], dim=1)  # (B, T)


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
