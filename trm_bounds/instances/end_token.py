r"""Tree instances with an absorbing end token: responses of variable length (docs/theory.md §9,
"Order, and what the mask must cover").

Token :data:`END` ends a response; after it both policies repeat it with probability 1
(:math:`\rho = 1`, nothing more is generated), so a depth-``T`` tree holds every response of
length 1 to ``T`` and the exact engines apply unchanged.  Prompts differ, so responses to one
prompt are correlated (GRPO groups); the policies differ by a random mixture at every context
before the end token.  :func:`sample_responses` draws responses from ``pi_roll`` as a trainer
logs them: per-token log-probabilities and a mask that stops after the end token.

>>> inst = end_token_tree(0)
>>> int(inst.T), int(inst.V), int(response_lengths(inst.V, inst.T).max())
(6, 3, 6)
"""

from __future__ import annotations

import numpy as np

from trm_bounds.instances.tree import TreeInstance, n_contexts

__all__ = ["END", "end_token_tree", "response_lengths", "sample_responses"]

#: The end token.
END = 2


def end_token_tree(seed: int, *, n_prompts: int = 4, V: int = 3, T: int = 6,
                   mix: float = 0.25) -> TreeInstance:
    """An instance whose responses end at token :data:`END` (lengths 1 to ``T``): ``pi_theta =
    (1 - mix) pi_roll + mix q`` before the end token (``q`` random), so
    :math:`\\pi_\\theta \\ll \\pi_{\\text{roll}}`; rewards uniform in ``[0, 1]`` per response."""
    rng = np.random.default_rng(seed)
    C = n_contexts(V, T)
    level = np.concatenate([np.full(V**t, t) for t in range(T)])  # (C,) position of a context
    prefix = np.concatenate([np.arange(V**t) for t in range(T)])  # (C,) prefix as a number
    digits = (prefix[:, None] // V ** np.arange(T)[None, :]) % V  # (C, T), low digit first
    ended = ((digits == END) & (np.arange(T)[None, :] < level[:, None])).any(axis=1)  # (C,)
    roll = rng.dirichlet(np.ones(V) * 0.7, size=(n_prompts, C))
    roll[..., END] *= 0.4  # long responses are rarer
    roll /= roll.sum(axis=2, keepdims=True)
    other = rng.dirichlet(np.ones(V), size=(n_prompts, C))
    theta = (1 - mix) * roll + mix * other
    for p in (roll, theta):
        p[:, ended] = np.eye(V)[END]
    return TreeInstance.from_arrays(
        p_x=rng.dirichlet(np.ones(n_prompts)), pi_roll=roll, pi_theta=theta,
        reward=rng.uniform(0.0, 1.0, size=(n_prompts, V**T)), id=f"end_token:{seed}",
        meta={"kind": "end_token", "seed": seed, "end_token": END})


def response_lengths(V: int, T: int) -> np.ndarray:
    """``(V^T,)`` the length of every response (tokens up to and including the first
    :data:`END`; ``T`` without one), in the order of the tree's sequence index."""
    seq = np.arange(V**T)
    tokens = (seq[:, None] // V ** np.arange(T - 1, -1, -1)[None, :]) % V  # (V^T, T)
    has = (tokens == END).any(axis=1)
    return np.where(has, np.argmax(tokens == END, axis=1) + 1, T)


def sample_responses(inst: TreeInstance, prompts: np.ndarray, rng: np.random.Generator
                     ) -> dict[str, np.ndarray]:  # fmt: skip
    """Responses to ``prompts`` ``(n,)`` drawn from ``pi_roll``: ``seq`` ``(n,)`` (sequence
    index), ``log_probs`` and ``rollout_log_probs`` ``(n, T)`` (0 after the end), ``mask``
    ``(n, T)`` (the tokens up to and including the end token).  One vectorised draw per
    position (``T`` steps)."""
    V, T = inst.V, inst.T
    x = np.asarray(prompts, dtype=np.int64)
    n = x.shape[0]
    seq = np.zeros(n, dtype=np.int64)
    lp, lr = np.zeros((n, T)), np.zeros((n, T))
    for t in range(T):
        ctx = (V**t - 1) // (V - 1) + seq
        cum = inst.pi_roll[x, ctx].cumsum(axis=1)  # (n, V)
        tok = (rng.random(n)[:, None] > cum).sum(axis=1).clip(max=V - 1)
        lr[:, t] = np.log(inst.pi_roll[x, ctx, tok])
        lp[:, t] = np.log(inst.pi_theta[x, ctx, tok])
        seq = seq * V + tok
    mask = np.arange(T)[None, :] < response_lengths(V, T)[seq][:, None]
    return {"seq": seq, "log_probs": np.where(mask, lp, 0.0),
            "rollout_log_probs": np.where(mask, lr, 0.0), "mask": mask}
