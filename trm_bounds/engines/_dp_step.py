r"""The fused sparse step of the finite-state DP engine (:mod:`trm_bounds.engines.dp`).

One step of the five DP recursions (``d^roll``, ``m``, ``d^theta``, ``b`` forward and ``V^roll``
backward) is one sparse linear map with ``6 S V`` nonzeros whose pattern is fixed by the
next-state table ``f (S, V)`` and whose values are the policy rows of that step.
:class:`FusedStep` holds the pattern in CSC form and fills the values; :func:`csc_matvec`
(scipy's compiled CSC kernel, or :func:`csc_matvec_numpy` with the same contract) applies it
as ``y += A x``, so no ``S x S`` matrix is ever built.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FusedStep", "csc_matvec", "csc_matvec_numpy"]


def csc_matvec_numpy(
    n_row: int,
    n_col: int,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
) -> None:
    """``y += A x`` for ``A (n_row, n_col)`` in CSC form ``(data, indices, indptr)``.

    The contract of scipy's compiled ``csc_matvec`` (used when available), in numpy.
    """
    xs = np.repeat(x, np.diff(indptr))  # (nnz,) the column value of each entry
    y += np.bincount(indices, weights=data * xs, minlength=n_row)


try:  # the compiled kernel behind scipy.sparse's CSC products, without the wrapper overhead
    from scipy.sparse._sparsetools import csc_matvec
except ImportError:  # pragma: no cover - private scipy module
    csc_matvec = csc_matvec_numpy


class FusedStep:
    r"""Sparsity pattern (CSC) of one combined DP step, a linear map of the state
    ``x_i = [d^roll_{i+1}, m_{i+1}, d^theta_{i+1}, b_{i+1}, V_{T+1-i}]`` (five blocks of
    ``S``; positions 1-based, step ``i = 0..T-1``) to ``x_{i+1}``.

    Column ``(block, s)`` lists the rows that the value ``x(block, s)`` is pushed to:

    - ``d^roll(s)``: ``pi_roll(v|s)`` to ``d^roll(f(s, v))`` and ``(pi_theta - pi_roll)(v|s)``
      to ``m(f(s, v))`` (the source term of the first moment), ``2 V`` entries;
    - ``m(s)``, ``d^theta(s)``, ``b(s)``: ``pi_roll``, ``pi_theta``, ``sqrt(pi_roll
      pi_theta)`` to ``f(s, v)`` of the same block, ``V`` entries each;
    - ``V(s')`` (backward, ``V_t(s) = sum_v pi_roll(v|t,s) V_{t+1}(f(s, v))``): ``pi_roll(v|s)``
      to ``V(s)`` for every edge ``(s, v)`` with ``f(s, v) = s'``; ``perm`` orders the edges
      ``s V + v`` by ``f`` (stable), so this block's values are ``pi_roll[perm]``.

    The values of one step are one row of length ``6 S V``, laid out as
    ``[(pi_roll, pi_theta - pi_roll) interleaved per (s, v) | pi_roll | pi_theta | sqrt |
    pi_roll[perm]]``.
    Repeated next states (``f(s, v) = f(s, v')``) are summed by the kernel.
    """

    def __init__(self, f: np.ndarray) -> None:
        S, V = f.shape
        self.S, self.V = S, V
        fl = f.ravel()  # (S V,)
        self.perm = np.argsort(fl, kind="stable")  # (S V,) edges grouped by next state
        rows = np.concatenate(
            [
                np.stack([f, S + f], axis=-1).ravel(),  # (S, V, 2): d^roll and m targets
                (S + f).ravel(),
                (2 * S + f).ravel(),
                (3 * S + f).ravel(),
                4 * S + self.perm // V,  # source state of each incoming edge
            ]
        )
        counts = np.concatenate(
            [np.full(S, 2 * V), np.full(3 * S, V), np.bincount(fl, minlength=S)]
        )  # (5 S,) entries per column
        self.indices = rows.astype(np.int64)  # int64: the kernel's fastest call (vs int32)
        self.indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.n = 5 * S

    def fill(
        self,
        out: np.ndarray,
        P: np.ndarray,
        Q: np.ndarray,
        D: np.ndarray,
        P_back: np.ndarray,
        work: np.ndarray | None = None,
        work_flat: np.ndarray | None = None,
    ) -> None:
        """Values of ``n`` steps into ``out (n, 6 S V)``.

        ``P, Q, D (n, S, V)``: ``pi_roll``, ``pi_theta`` and ``pi_theta - pi_roll`` at the
        forward positions; ``P_back (n, S, V)``: ``pi_roll`` at the backward positions in
        increasing ``t`` (the steps run them in decreasing ``t``); ``work``, ``work_flat``:
        scratch arrays of shapes ``(n, S, V)`` and ``(n, S V)``.
        """
        n, sv = P.shape[0], self.S * self.V
        pair = out[:, : 2 * sv].reshape(n, self.S, self.V, 2)  # interleaved per entry
        pair[..., 0] = P
        pair[..., 1] = D
        out[:, 2 * sv : 3 * sv] = P.reshape(n, sv)
        out[:, 3 * sv : 4 * sv] = Q.reshape(n, sv)
        sq = np.multiply(P, Q, out=work)  # contiguous: faster than in place in ``out``
        out[:, 4 * sv : 5 * sv] = np.sqrt(sq, out=sq).reshape(n, sv)
        back = np.take(P_back.reshape(n, sv), self.perm, axis=1, out=work_flat, mode="clip")
        out[:, 5 * sv :] = back[::-1]  # (take copies a non-contiguous input first)
