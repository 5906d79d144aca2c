r"""The training source and the reward: a sparse Markov chain with a grammar.

Reward (bounded in ``[0, 1]``, :func:`grammar_reward`): the fraction of positions
``t = 1..T`` whose token is grammatical, ``R(x, y) = (1/T) sum_t 1[y_t in A(y_{t-1})]``, with
``y_0 = start(x) = x mod V`` and ``A(v)`` the allowed successors of ``v`` in the source.
:func:`train_on_source` fits a :class:`~trm_bounds.transformer.model.GPT` to the chain, so
that its next-token distributions are far from uniform.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from trm_bounds.transformer.model import GPT, token_logprobs

__all__ = ["MarkovSource", "grammar_reward", "train_on_source"]


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

    def start(self, prompts: ArrayLike) -> np.ndarray:
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


def grammar_reward(source: MarkovSource, prompts: ArrayLike, tokens: ArrayLike) -> np.ndarray:
    r"""Reward in ``[0, 1]``: fraction of grammatical positions (docs/theory.md §1).

    .. math:: R(x, y) = \frac1T \sum_{t=1}^T \mathbf 1[y_t \in A(y_{t-1})],\quad y_0 = x \bmod V.

    ``prompts`` ``(N,)``, ``tokens`` ``(N, T)``; returns float64 ``(N,)``.

    >>> src = MarkovSource(V=4, n_prompts=2, seed=0)
    >>> y1 = int(np.flatnonzero(src.allowed[0])[0])  # allowed after y_0 = 0 mod 4
    >>> y2 = int(np.flatnonzero(~src.allowed[y1])[0])  # not allowed after y1
    >>> grammar_reward(src, [0], [[y1, y2]]).tolist()
    [0.5]
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
