r"""Exact long-horizon engine: finite-state autoregressive policies (THEORY.md sections 1-4).

A *finite-state instance* is an autoregressive model whose next-token distribution depends
on the context only through ``(t, s_t)``, a state with deterministic update
``s_{t+1} = f(s_t, y_t)``, and whose reward is a function of the final state
``s_{T+1}``.  Every quantity of THEORY.md sections 2-3 then follows from dynamic
programming in ``O(T S V)`` time and input: horizons ``T = 10^5`` are exact.

Symbols (shapes):

- ``p0 (S,)``: distribution of the initial state ``s_1`` (prompts mapped to initial states;
  each initial state plays the role of one prompt ``x`` of THEORY.md section 1);
- ``f (S, V)``: integer next state ``f(s, v)``;
- ``pi_roll, pi_theta (T, S, V)``: next-token distributions ``pi(v | t, s)``, ``t = 1..T``;
- ``reward (S,)``: ``R = r(s_{T+1})`` in ``[0, 1]``.

Recursions (``A_t(s, s') = sum_{v: f(s,v)=s'} pi(v|t,s)``):

.. math::

    d_{t+1} = d_t A_t^{\mathrm{roll}},\quad V_t = A_t^{\mathrm{roll}} V_{t+1},\ V_{T+1}=r,\quad
    Q_t(s, v) = V_{t+1}(f(s, v)),

.. math::

    L' = \sum_t \sum_s d_t(s) \sum_v (\pi_\theta - \pi_{\mathrm{roll}})(v|t,s)\, Q_t(s, v)
    \quad\text{(performance difference, section 2)},

and independently the forward first moment
``m_t(s) = E_roll[1{s_t = s} sum_{u<t} (rho_u - 1)]``,
``m_{t+1} = m_t A_t^roll + d_t (A_t^theta - A_t^roll)``, ``L' = m_{T+1} . r``.
With ``c = P^theta(s_{T+1}) - P^roll(s_{T+1}) - m_{T+1}`` (sum 0), ``Error = c . r`` and the
largest ``|Error|`` over rewards that are functions of the final state is ``1/2 sum_s |c(s)|``
(THEORY.md section 2 restricted to final-state rewards; it equals the max over *all*
rewards only when the final state determines the sequence).

KL is forward (rollout first), in nats.  ``D_TV^seq`` (the ``p0``-average of per-prompt TV) is
exact by enumeration when at most ``2^20`` sequences exist; otherwise a certified upper
bound is used: ``min(sqrt(1 - BC^2), sqrt(D_KL^seq / 2))`` with the Bhattacharyya
coefficient ``BC = E_x sum_y sqrt(P^roll P^theta)(y|x)`` computed exactly by DP
(``b_{t+1}(s') = sum_{s,v: f(s,v)=s'} b_t(s) sqrt(pi_roll pi_theta)(v|t,s)``; by concavity
of ``u -> sqrt(1-u^2)``, ``E_x sqrt(1-BC_x^2) <= sqrt(1 - BC^2)``).  Every bound of
section 4 is non-decreasing in ``D_TV^seq``, so bounds evaluated at an upper bound remain
valid upper bounds on ``|Error|``.  The lower bound ``1 - BC <= D_TV^seq`` is also reported.

Implementation: the five recursions (``d^roll``, ``m``, ``d^theta``, ``b`` forward and
``V^roll`` backward, the latter run in reverse time in the same loop) form one sparse linear
map per step with ``6 S V`` nonzeros, whose pattern is fixed by ``f`` and whose values are the
policy rows of that step.  One call of scipy's compiled CSC kernel per step applies it; no
``S x S`` matrix is ever built.  Everything that needs no recursion (per-``(t, s)`` KL, TV,
``g_t``, the kernel's values) is vectorised over cache-sized chunks of steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _csc_matvec_numpy(
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
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec
except ImportError:  # pragma: no cover - private scipy module
    _csc_matvec = _csc_matvec_numpy


__all__ = [
    "FiniteStateInstance",
    "DPResult",
    "dp_exact",
    "exact_report",
    "sequence_tv_exact",
    "adversarial_reward",
    "to_tree_instance",
    "uniform_divergence_instance",
    "sparse_divergence_instance",
    "tight_instance",
    "staleness_instance",
    "moe_flip_instance",
    "dense_noise_instance",
    "random_walk_instance",
    "MAX_ENUMERATED_SEQUENCES",
]

#: Largest number of sequences (summed over initial states) for exact ``D_TV^seq``.
MAX_ENUMERATED_SEQUENCES = 2**20
#: Tolerance for rows of probabilities summing to one (entries must be >= 0 exactly).
_PROB_ATOL = 1e-9
#: Smallest positive normal float64; below it a product may have underflowed to zero.
_TINY = np.finfo(np.float64).tiny
#: Policy entries per chunk of steps (per array): temporaries stay cache-resident.
_CHUNK_ENTRIES = 2**15


# --------------------------------------------------------------------------- instance
@dataclass(frozen=True, eq=False)
class FiniteStateInstance:
    """A finite-state autoregressive policy pair with a final-state reward (module docstring).

    Arrays may be read-only broadcast views (``np.broadcast_to(pi, (T, S, V))`` for
    time-homogeneous policies); the engine detects zero time-stride and works once per
    distinct matrix.  Construction validates every field and raises ``ValueError`` with a
    one-line message naming the instance, the field and the position.
    """

    p0: np.ndarray  # (S,)
    f: np.ndarray  # (S, V) int
    pi_roll: np.ndarray  # (T, S, V)
    pi_theta: np.ndarray  # (T, S, V)
    reward: np.ndarray  # (S,)
    name: str = "finite-state"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def fail(fld: str, msg: str) -> None:
            raise ValueError(f"FiniteStateInstance {self.name!r}: field {fld}: {msg}")

        p0 = np.asarray(self.p0, dtype=np.float64)
        f = np.asarray(self.f)
        if p0.ndim != 1 or p0.size == 0:
            fail("p0", f"expected shape (S,), got {p0.shape}")
        S = p0.size
        if f.ndim != 2 or f.shape[0] != S or f.shape[1] < 1:
            fail("f", f"expected shape ({S}, V), got {f.shape}")
        if not np.issubdtype(f.dtype, np.integer):
            fail("f", f"expected integers, got dtype {f.dtype}")
        V = f.shape[1]
        bad = np.argwhere((f < 0) | (f >= S))
        if bad.size:
            s, v = bad[0]
            fail("f", f"entry (s={s}, v={v}) = {f[s, v]} is not a state in [0, {S})")
        _check_distribution(p0[None], "p0", fail, ("",))
        object.__setattr__(self, "p0", p0)
        object.__setattr__(self, "f", f.astype(np.intp, copy=False))
        for fld in ("pi_roll", "pi_theta"):
            pi = np.asarray(getattr(self, fld), dtype=np.float64)
            if pi.ndim != 3 or pi.shape[1:] != (S, V) or pi.shape[0] < 1:
                fail(fld, f"expected shape (T, {S}, {V}), got {pi.shape}")
            _check_distribution(_distinct_times(pi), fld, fail, ("t", "s"))
            object.__setattr__(self, fld, pi)
        if self.pi_roll.shape != self.pi_theta.shape:
            fail("pi_theta", f"shape {self.pi_theta.shape} != pi_roll {self.pi_roll.shape}")
        r = np.asarray(self.reward, dtype=np.float64)
        if r.shape != (S,):
            fail("reward", f"expected shape ({S},), got {r.shape}")
        bad = np.flatnonzero(~(np.isfinite(r) & (r >= 0) & (r <= 1)))
        if bad.size:
            fail("reward", f"entry s={bad[0]} = {r[bad[0]]} is outside [0, 1]")
        object.__setattr__(self, "reward", r)

    @property
    def T(self) -> int:
        """Horizon ``T``."""
        return int(self.pi_roll.shape[0])

    @property
    def S(self) -> int:
        """Number of states ``S``."""
        return int(self.p0.size)

    @property
    def V(self) -> int:
        """Vocabulary size ``V``."""
        return int(self.f.shape[1])

    def with_reward(self, reward: np.ndarray) -> FiniteStateInstance:
        """The same policy pair with another final-state reward."""
        return FiniteStateInstance(
            self.p0, self.f, self.pi_roll, self.pi_theta, reward, self.name, dict(self.meta)
        )


def _distinct_times(pi: np.ndarray) -> np.ndarray:
    """The distinct time slices of a possibly time-broadcast array (stride 0 -> one slice)."""
    return pi[:1] if pi.strides[0] == 0 else pi


def _check_distribution(a: np.ndarray, fld: str, fail: Any, names: tuple[str, ...]) -> None:
    """Rows along the last axis must be finite, non-negative and sum to 1 (within 1e-9).

    Fast path: one pass over cache-sized chunks, no temporaries of the input's size (a NaN
    fails ``min >= 0``, an infinity the sum test); the position of the first offending
    entry is searched only on failure.
    """
    rows = a.reshape(-1, a.shape[-1])  # a view for contiguous input
    step = max(1, _CHUNK_ENTRIES // a.shape[-1])
    for i in range(0, rows.shape[0], step):
        c = rows[i : i + step]
        if not (c.min() >= 0 and np.abs(_row_sums(c) - 1.0).max() <= _PROB_ATOL):
            break
    else:
        return
    ok = np.isfinite(a) & (a >= 0)
    if not ok.all():
        pos = np.argwhere(~ok)[0]
        fail(fld, f"entry {_pos(pos, names + ('v',))} = {a[tuple(pos)]} is negative or not finite")
    sums = a.sum(axis=-1)
    bad = np.abs(sums - 1.0) > _PROB_ATOL
    if bad.any():
        pos = np.argwhere(bad)[0]
        fail(fld, f"row {_pos(pos, names)} sums to {sums[tuple(pos)]!r}, expected 1")


def _pos(pos: np.ndarray, names: tuple[str, ...]) -> str:
    parts = [
        f"{n}={int(i) + (1 if n == 't' else 0)}" for n, i in zip(names, pos, strict=False) if n
    ]
    return "(" + ", ".join(parts) + ")" if parts else "(all)"


# --------------------------------------------------------------------------- DP core
@dataclass(frozen=True)
class DPResult:
    """Raw dynamic-programming output (float64; position ``t = 1..T`` is index ``t-1``).

    ``d_roll, d_theta (T+1, S)``: state marginals ``P(s_t = s)``, ``t = 1..T+1``;
    ``m_final (S,)``: first moment ``m_{T+1}``; ``value (T+1, S)``: ``V_t^roll``;
    ``kl_ts, tv_ts, g_ts (T, S)``: per-(t, s) forward KL, TV and
    ``g_t(s) = sum_v (pi_theta - pi_roll) Q_t^roll``; ``reach (T, S)``: reachable under
    either policy; ``bc``: Bhattacharyya coefficient ``E_x BC_x``.
    """

    d_roll: np.ndarray
    d_theta: np.ndarray
    m_final: np.ndarray
    value: np.ndarray
    kl_ts: np.ndarray
    tv_ts: np.ndarray
    g_ts: np.ndarray
    reach: np.ndarray
    bc: float


def _chunk_len(T: int, S: int, V: int) -> int:
    """Steps per chunk: ``_CHUNK_ENTRIES`` policy entries (256 KiB per float64 array, so
    the chunk's temporaries stay in cache), at least 8 steps, at most ``T``."""
    return int(max(1, min(T, max(8, _CHUNK_ENTRIES // (S * V)))))


class _FusedStep:
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


def _kl_rows(
    P: np.ndarray,
    Q: np.ndarray,
    D: np.ndarray,
    has_zero: bool,
    work: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    r"""Forward ``KL(P || Q)`` per row of ``(n, S, V)`` arrays, nats (THEORY.md section 3).

    Each term is ``p (u - log1p(u))`` with ``u = (q - p)/p = D/p``, and
    ``p (u - log(q/p)) = p log(p/q) + q - p`` where ``u < -1/2`` (there ``1 + u = q/p`` is
    not accurate from ``u``); a term with ``p = 0`` is ``q``, one with ``q = 0 < p`` is
    ``+inf``.  ``has_zero``: whether ``P`` has a zero entry; ``work``: two scratch arrays of
    ``D``'s shape.  Returns ``(n, S)``.

    >>> p, q = np.array([[[0.9, 0.1]]]), np.array([[[0.5, 0.5]]])
    >>> textbook = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    >>> bool(abs(_kl_rows(p, q, q - p, False)[0, 0] - textbook) < 1e-15)
    True
    """
    u, lg = work if work is not None else (np.empty_like(D), np.empty_like(D))
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(D, P, out=u)  # (n, S, V)
        np.log1p(u, out=lg)
        if not u.min() >= -0.5:  # also when a NaN (p = 0) hides the minimum
            far = u < -0.5
            lg[far] = np.log(Q[far] / P[far])
        np.subtract(u, lg, out=u)
        np.multiply(u, P, out=u)
    if has_zero:
        u = np.where(P == 0, Q, u)
    return _row_sums(u)


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Sums along the (short) last axis: einsum's contiguous inner loop, single-threaded
    (faster here than ``a.sum(-1)``, and than a BLAS product, which may spawn threads)."""
    return np.einsum("...v->...", a)


def dp_exact(inst: FiniteStateInstance) -> DPResult:
    r"""Exact forward/backward DP of a finite-state instance (THEORY.md sections 2-3).

    Forward (module docstring), position ``t -> t + 1``:

    .. math::

        d^{roll}_{t+1} = d^{roll}_t A^{roll}_t,\quad
        m_{t+1} = m_t A^{roll}_t + d^{roll}_t (A^\theta_t - A^{roll}_t),\quad
        d^\theta_{t+1} = d^\theta_t A^\theta_t,\quad b_{t+1} = b_t A^{b}_t,

    (``m``: first moment of ``sum_{u<t}(rho_u - 1)``, cross term
    ``pi_roll (rho - 1) = pi_theta - pi_roll``; ``b``: Bhattacharyya, ``A^b`` from
    ``sqrt(pi_roll pi_theta)``), and backward ``V_t^roll = A_t^roll V_{t+1}^roll``: step
    ``i = 0..T-1`` advances the forward recursions from ``t = i + 1`` and the backward one from
    ``t = T + 1 - i``, all in one sparse product (:class:`_FusedStep`).  Per-(t, s) KL, TV and
    the performance-difference term ``g_t(s)`` are vectorised per chunk of steps.

    ``L'`` needs ``rho_t`` on every rollout sequence, so, as in the tree engine, ``pi_theta``
    must put no mass where ``pi_roll`` puts none at a ``(t, s)`` the rollout reaches
    (``theta << roll``); otherwise ``ValueError``.  Cost: ``O(T S V)`` time, ``T`` kernel
    calls; memory ``O(T S)`` plus one chunk.  Time-broadcast policies (stride 0 along ``t``)
    reuse one step's values.

    The tight instance of THEORY.md section 5 (``V = T = 2``): ``V_1 = E_roll[R] = 1/2`` and
    ``BC = (sqrt(0.5 * 0.6) + sqrt(0.5 * 0.4))^2 = 0.5 + 2 sqrt(0.06)``:

    >>> res = dp_exact(tight_instance(0.1))
    >>> float(res.value[0, 0]), round(float(res.bc), 12), round(0.5 + 2 * 0.06**0.5, 12)
    (0.5, 0.989897948557, 0.989897948557)
    """
    T, S, V = inst.T, inst.S, inst.V
    sv = S * V
    pr_all, pt_all, f = inst.pi_roll, inst.pi_theta, inst.f
    hom = pr_all.strides[0] == 0 and pt_all.strides[0] == 0
    K = _chunk_len(T, S, V)
    step = _FusedStep(f)
    f_flat = f.ravel()
    wD, wU, wL, wB = (np.empty((K, S, V)) for _ in range(4))  # chunk scratch arrays
    wG = np.empty((K, sv))

    d_roll = np.empty((T + 1, S))
    d_theta = np.empty((T + 1, S))
    value = np.empty((T + 1, S))
    kl_ts = np.empty((T, S))
    tv_ts = np.empty((T, S))
    g_ts = np.empty((T, S))
    leak_at: list[tuple[int, int, np.ndarray]] = []  # (a, b, (n|1, S)) chunks with leaks
    min_p = np.inf  # smallest positive policy entry (underflow check of the reachability)

    H = np.empty((K + 1, 5 * S))  # H[i]: state before step i of the chunk (_FusedStep)
    H[0] = np.concatenate([inst.p0, np.zeros(S), inst.p0, inst.p0, inst.reward])
    value[T] = inst.reward
    d_roll[0] = d_theta[0] = inst.p0
    hl = list(H)
    vals = np.empty((1 if hom else K, 6 * sv))  # kernel values, one row per step
    if hom:
        P, Q = pr_all[:1], pt_all[:1]
        D = Q - P
        step.fill(vals, P, Q, D, P)  # one step's values, reused
        rows = [vals[0]] * K
    else:
        rows = list(vals)
    mv, n_state, indptr, indices = _csc_matvec, step.n, step.indptr, step.indices

    for a in range(0, T, K):
        b = min(T, a + K)
        n = b - a
        if not hom or a == 0:
            # per-(t, s) quantities at the forward positions a+1..b (once if homogeneous)
            P, Q = (pr_all[:1], pt_all[:1]) if hom else (pr_all[a:b], pt_all[a:b])
            D = np.subtract(Q, P, out=wD[: P.shape[0]])  # (n|1, S, V)
            p_min = P.min()
            has_zero = p_min == 0  # entries are >= 0 (validated)
            min_p = min(min_p, p_min if p_min > 0 else _min_positive(P), _min_positive(Q))
            kl_c = _kl_rows(P, Q, D, has_zero, (wU[: D.shape[0]], wL[: D.shape[0]]))  # (n|1, S)
            tv_c = 0.5 * _row_sums(np.abs(D, out=wU[: D.shape[0]]))  # (n|1, S)
            leak_c = ((P == 0) & (Q > 0)).any(-1) if has_zero else None
            if not hom:
                step.fill(vals[:n], P, Q, D, pr_all[T - b : T - a], wL[:n], wG[:n])
        kl_ts[a:b] = kl_c
        tv_ts[a:b] = tv_c
        if leak_c is not None:
            leak_at.append((a, b, leak_c))

        H[1 : n + 1] = 0.0  # the kernel accumulates: y += A x
        for data, x, y in zip(rows[:n], hl[:n], hl[1 : n + 1], strict=True):
            mv(n_state, n_state, indptr, indices, data, x, y)
        d_roll[a + 1 : b + 1] = H[1 : n + 1, :S]
        d_theta[a + 1 : b + 1] = H[1 : n + 1, 2 * S : 3 * S]
        value[T - b : T - a] = H[n:0:-1, 4 * S :]  # V_t for t = T-b+1..T-a (index t-1)
        H[0] = H[n]

        # g_t(s) = sum_v (pi_theta - pi_roll)(v|t,s) V_{t+1}(f(s,v)) at the backward positions
        Qv = np.take(value[T - b + 1 : T - a + 1], f_flat, axis=1, out=wG[:n], mode="clip")
        if hom:
            Db = D.reshape(1, sv)
        else:
            Db = np.subtract(pt_all[T - b : T - a], pr_all[T - b : T - a], out=wB[:n])
        np.multiply(Qv, Db.reshape(-1, sv), out=Qv)  # (n, S V)
        g_ts[T - b : T - a] = _row_sums(Qv.reshape(n, S, V))

    m_final = H[0, S : 2 * S].copy()
    bc = float(H[0, 3 * S : 4 * S].sum())
    for a, b, leak_c in leak_at:
        hit = leak_c & (d_roll[a:b] > 0)
        if hit.any():
            t, s = np.argwhere(hit)[0]
            raise ValueError(
                f"FiniteStateInstance {inst.name!r}: field pi_theta: row (t={a + t + 1}, s={s}) "
                "puts mass where pi_roll is 0 at a state the rollout reaches; L' needs "
                "theta << roll"
            )
    reach = _reachable(inst, d_roll, d_theta, min_p)
    return DPResult(d_roll, d_theta, m_final, value, kl_ts, tv_ts, g_ts, reach, bc)


def _min_positive(a: np.ndarray) -> float:
    """Smallest positive entry of ``a`` (``inf`` if none); one pass when all are positive."""
    m = a.min()
    return float(m if m > 0 else np.min(a, where=a > 0, initial=np.inf))


def _reachable(
    inst: FiniteStateInstance, d_roll: np.ndarray, d_theta: np.ndarray, min_p: float
) -> np.ndarray:
    """``(T, S)`` mask of ``(t, s)`` reached with positive probability under either policy.

    ``d > 0`` is exact unless a product underflowed; that is impossible when the smallest
    positive marginal times ``min_p``, the smallest positive policy entry, is a normal float,
    which is checked; otherwise the supports are propagated exactly (0/1 values, clipped to
    1 after each step), one sparse product per step.
    """
    T, S, V = inst.T, inst.S, inst.V
    reach = (d_roll[:T] > 0) | (d_theta[:T] > 0)
    min_d = min(_min_positive(d) for d in (d_roll, d_theta))
    if min_d * min_p >= _TINY:
        return reach
    f = inst.f
    indices = np.concatenate([f.ravel(), S + f.ravel()]).astype(np.int64)
    indptr = np.arange(0, 2 * S * V + 1, V, dtype=np.int64)  # column (block, s): V edges
    x = np.concatenate([inst.p0 > 0, inst.p0 > 0]).astype(np.float64)  # (2 S,) supports
    out = np.empty((T, S), dtype=bool)
    K = _chunk_len(T, S, V)
    for a in range(0, T, K):
        b = min(T, a + K)
        sup = np.concatenate(
            [(pi[a:b] > 0).reshape(b - a, -1) for pi in (inst.pi_roll, inst.pi_theta)], axis=1
        ).astype(np.float64)  # (n, 2 S V) support indicators
        for i in range(b - a):
            out[a + i] = (x[:S] > 0) | (x[S:] > 0)
            y = np.zeros(2 * S)
            _csc_matvec(2 * S, 2 * S, indptr, indices, sup[i], x, y)
            x = np.minimum(y, 1.0)
    return out


# --------------------------------------------------------------------------- sequence TV
def _enumerable(inst: FiniteStateInstance) -> bool:
    """Whether ``n_prompts V^T <= MAX_ENUMERATED_SEQUENCES`` (no float overflow for huge T)."""
    n = int(np.count_nonzero(inst.p0 > 0))
    return inst.T * np.log2(inst.V) <= 64 and n * inst.V**inst.T <= MAX_ENUMERATED_SEQUENCES


def sequence_tv_exact(inst: FiniteStateInstance) -> float:
    r"""Exact ``D_TV^seq = sum_x p0(x) 1/2 sum_y |P^theta(y|x) - P^roll(y|x)|`` (THEORY.md 3).

    Enumerates all ``V^T`` sequences of every initial state with ``p0 > 0`` (vectorised over
    sequences, loop over ``t``).  Raises ``ValueError`` above ``MAX_ENUMERATED_SEQUENCES``.
    """
    T, V = inst.T, inst.V
    starts = np.flatnonzero(inst.p0 > 0)
    if not _enumerable(inst):
        raise ValueError(
            f"FiniteStateInstance {inst.name!r}: {starts.size} x {V}^{T} sequences exceed "
            f"MAX_ENUMERATED_SEQUENCES = {MAX_ENUMERATED_SEQUENCES}"
        )
    N = V**T
    y = np.arange(N)
    total = 0.0
    for s0 in starts:
        s = np.full(N, s0, dtype=np.intp)
        pr = np.ones(N)
        pt = np.ones(N)
        for t in range(T):
            tok = (y // V ** (T - 1 - t)) % V  # y_t, most significant first
            pr *= inst.pi_roll[t, s, tok]
            pt *= inst.pi_theta[t, s, tok]
            s = inst.f[s, tok]
        total += inst.p0[s0] * 0.5 * np.abs(pt - pr).sum()
    return float(total)


# --------------------------------------------------------------------------- report
def adversarial_reward(inst: FiniteStateInstance) -> np.ndarray:
    """The final-state reward ``r = 1[c > 0]`` that maximises ``Error`` (module docstring)."""
    res = dp_exact(inst)
    c = res.d_theta[-1] - res.d_roll[-1] - res.m_final
    return (c > 0).astype(np.float64)


def exact_report(inst: FiniteStateInstance) -> dict[str, Any]:
    r"""Every exact quantity of THEORY.md sections 2-4 for a finite-state instance.

    Keys (as the tree engine's ``trm_bounds.tabular.exact_report``): ``J_roll``,
    ``J_theta``, ``L_prime`` (performance-difference form), ``error = J_theta - J_roll -
    L_prime``, ``error_identity`` (here: with ``L'`` from the forward first-moment pass),
    ``error_max_over_rewards`` (over final-state rewards, ``1/2 sum_s |c(s)|``), ``eps``,
    ``delta`` (maxima over reachable ``(t, s)``), ``Dbar`` (list, ``t = 1..T``),
    ``D_KL_seq`` (chain rule, nats), ``D_TV_seq``, ``bounds_published``, ``bounds_sharp``
    (``trm_bounds.bounds.compute_bounds`` evaluated at these values, ``dbar = Dbar``); plus
    ``L_prime_first_moment``, ``error_max_over_rewards_scope = "final_state_rewards"``,
    ``D_TV_seq_method`` (``"exact"``, ``"bhattacharyya_upper"`` or ``"pinsker_upper"``: the
    smaller certified upper bound), ``D_TV_seq_lower = 1 - BC``, ``bhattacharyya``.

    The tight instance of THEORY.md section 5 (``Error = 2 eps^2`` = sharp Coupling bound):

    >>> rep = exact_report(tight_instance(0.1))
    >>> round(rep["error"], 12), round(rep["bounds_sharp"]["coupling"], 12)
    (0.02, 0.02)
    """
    res = dp_exact(inst)
    T = inst.T
    r = inst.reward
    d = res.d_roll[:T]  # (T, S), positions 1..T
    J_roll = float(inst.p0 @ res.value[0])
    J_theta = float(res.d_theta[T] @ r)
    L_pd = float(np.vecdot(d, res.g_ts).sum())  # per-position sums, then pairwise over t
    L_fm = float(res.m_final @ r)
    c = res.d_theta[T] - res.d_roll[T] - res.m_final
    eps = _max_over(res.tv_ts, res.reach)
    delta = _max_over(res.kl_ts, res.reach)
    dbar = np.vecdot(d, res.tv_ts)  # (T,)
    dkl_seq = float(np.vecdot(d, res.kl_ts).sum())
    bc = min(1.0, res.bc)
    tv_lower = max(0.0, 1.0 - bc)
    if _enumerable(inst):
        dtv_seq, method = sequence_tv_exact(inst), "exact"
    else:
        bc_up = float(np.sqrt(max(0.0, 1.0 - bc * bc)))
        pinsker = float(min(1.0, np.sqrt(dkl_seq / 2)))
        dtv_seq, method = (
            (bc_up, "bhattacharyya_upper") if bc_up <= pinsker else (pinsker, "pinsker_upper")
        )
    from trm_bounds.bounds import compute_bounds

    kw = dict(eps=eps, delta=delta, dkl_seq=dkl_seq, dtv_seq=dtv_seq, dbar=dbar)
    return {
        "J_roll": J_roll,
        "J_theta": J_theta,
        "L_prime": L_pd,
        "L_prime_first_moment": L_fm,
        "error": J_theta - J_roll - L_pd,
        "error_identity": J_theta - J_roll - L_fm,
        "error_max_over_rewards": float(0.5 * np.abs(c).sum()),
        "error_max_over_rewards_scope": "final_state_rewards",
        "eps": eps,
        "delta": delta,
        "Dbar": dbar.tolist(),
        "D_KL_seq": dkl_seq,
        "D_TV_seq": dtv_seq,
        "D_TV_seq_method": method,
        "D_TV_seq_lower": tv_lower,
        "bhattacharyya": bc,
        "bounds_published": _floats(compute_bounds(T, sharp=False, **kw)),
        "bounds_sharp": _floats(compute_bounds(T, sharp=True, **kw)),
    }


def _max_over(a: np.ndarray, mask: np.ndarray) -> float:
    """``max a[mask]`` without copying ``a`` (``mask`` has at least one True)."""
    return float(a.max() if mask.all() else np.max(a, where=mask, initial=-np.inf))


def _floats(b: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in b.items()}


# --------------------------------------------------------------------------- generators
def _softmax(z: np.ndarray) -> np.ndarray:
    """Softmax along the last axis (float64, max-shifted)."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _machine(rng: np.random.Generator, S: int, V: int) -> np.ndarray:
    """A random deterministic update ``f (S, V)``."""
    return rng.integers(0, S, size=(S, V))


def _half_reward(rng: np.random.Generator, S: int) -> np.ndarray:
    """Indicator reward of a random half of the states (at least one state rewarded)."""
    r = np.zeros(S)
    r[rng.permutation(S)[: max(1, S // 2)]] = 1.0
    return r


def _perturb(pr: np.ndarray, z: np.ndarray, kl_size: float) -> np.ndarray:
    r"""``softmax(log pr + c z)`` with ``c = sqrt(2 kl / Var_pr(z))`` per row, so that the
    forward ``KL(pr || result) = kl_size + O(kl_size^{3/2})`` (second-order expansion)."""
    zc = z - (pr * z).sum(-1, keepdims=True)
    var = (pr * zc * zc).sum(-1, keepdims=True)
    c = np.sqrt(2.0 * kl_size / np.maximum(var, 1e-300))
    return _softmax(np.log(pr) + c * zc)


def _reach_sets(f: np.ndarray, s0: int, upto: int) -> list[np.ndarray]:
    """States reachable at positions ``t = 1..upto`` from ``s0`` under full support."""
    S = f.shape[0]
    cur = np.zeros(S, dtype=bool)
    cur[s0] = True
    out = [cur]
    for _ in range(upto - 1):
        nxt = np.zeros(S, dtype=bool)
        nxt[f[cur].ravel()] = True
        out.append(nxt)
        cur = nxt
    return out


def uniform_divergence_instance(
    T: int,
    S: int = 8,
    V: int = 4,
    *,
    delta: float = 1e-4,
    seed: int = 0,
    time_homogeneous: bool = True,
) -> FiniteStateInstance:
    """Uniform divergence: every ``(t, s)`` perturbed at one size, ``KL(t, s) ~= delta``.

    Rollout logits are standard normal; ``pi_theta`` tilts them along a random direction
    scaled so that each per-context forward KL is ``delta`` to second order (THEORY.md
    section 4, the regime where ``D_KL^seq ~ T delta``).  One initial state, reward the
    indicator of a random half of the states.  ``time_homogeneous`` stores one ``(S, V)``
    table broadcast over ``t`` (memory ``O(S V)`` for any ``T``).
    """
    rng = np.random.default_rng(seed)
    f = _machine(rng, S, V)
    reward = _half_reward(rng, S)  # drawn first: the same for every T at a given seed
    shape = (1 if time_homogeneous else T, S, V)
    pr = _softmax(rng.normal(size=shape))
    pt = _perturb(pr, rng.normal(size=shape), delta)
    p0 = np.zeros(S)
    p0[0] = 1.0
    if time_homogeneous:
        pr, pt = np.broadcast_to(pr, (T, S, V)), np.broadcast_to(pt, (T, S, V))
    return FiniteStateInstance(
        p0, f, pr, pt, reward, name=f"uniform(T={T},seed={seed})",
        meta={"kind": "uniform", "delta_target": delta, "seed": seed},
    )  # fmt: skip


def sparse_divergence_instance(
    T: int,
    S: int = 8,
    V: int = 4,
    *,
    n_contexts: int = 3,
    kl_size: float = 0.05,
    at: str = "end",
    seed: int = 0,
) -> FiniteStateInstance:
    """Sparse divergence: ``n_contexts`` perturbed ``(t, s)`` contexts, the rest identical.

    The perturbed contexts sit on reachable paths at the last (``at="end"``) or the first
    (``at="start"``) two positions; the first two lie on one path (``s_{t+1} = f(s_t, v)``,
    so the error can be non-zero, THEORY.md section 2).  Their number does not grow with
    ``T``, so ``D_KL^seq`` stays bounded (the regime of the O(T) Mixed bounds, section 4).
    Each perturbed context has forward KL ``kl_size`` to second order.  Needs ``T >= 2``
    when ``n_contexts >= 2``.
    """
    rng = np.random.default_rng(seed)
    f = _machine(rng, S, V)
    reward = _half_reward(rng, S)  # drawn first: the same for every T at a given seed
    pr1 = _softmax(rng.normal(size=(S, V)))
    pr = np.broadcast_to(pr1, (T, S, V))
    pt = np.array(pr)
    times = [T - 1, T] if at == "end" else [1, 2]
    times = [t for t in times if t >= 1][: max(1, min(2, n_contexts))]
    sets = _reach_sets(f, 0, max(times))
    first = int(rng.choice(np.flatnonzero(sets[times[0] - 1])))
    chosen = [(times[0], first)]
    if len(times) > 1:
        chosen.append((times[1], int(f[first, rng.integers(V)])))
    cand = [(t, int(s)) for t in times for s in np.flatnonzero(sets[t - 1])]
    cand = [c for c in cand if c not in chosen]
    for i in rng.permutation(len(cand))[: max(0, n_contexts - len(chosen))]:
        chosen.append(cand[i])
    for t, s in chosen:
        pt[t - 1, s] = _perturb(pr1[s], rng.normal(size=V), kl_size)
    p0 = np.zeros(S)
    p0[0] = 1.0
    return FiniteStateInstance(
        p0, f, pr, pt, reward, name=f"sparse(T={T},seed={seed})",
        meta={"kind": "sparse", "contexts": chosen, "kl_size": kl_size, "seed": seed},
    )  # fmt: skip


def tight_instance(eps: float = 0.1) -> FiniteStateInstance:
    """The tight instance of THEORY.md section 5: ``Error = 2 eps^2`` exactly.

    ``V = T = 2``, ``pi_roll = (1/2, 1/2)``, ``pi_theta = (1/2 + eps, 1/2 - eps)`` everywhere,
    ``R = 1[y_1 = y_2]``.  States: 0 start, 1 + y_1 after one token, 3 (equal) or 4
    (different) after two; the final state carries exactly the history the reward needs.
    """
    if not 0 <= eps <= 0.5:
        raise ValueError(f"tight_instance: field eps: {eps} is outside [0, 1/2]")
    f = np.array([[1, 2], [3, 4], [4, 3], [3, 3], [4, 4]])
    pr = np.full((2, 5, 2), 0.5)
    pt = np.broadcast_to(np.array([0.5 + eps, 0.5 - eps]), (2, 5, 2)).copy()
    p0 = np.eye(5)[0]
    r = np.array([0.0, 0.0, 0.0, 1.0, 0.0])
    return FiniteStateInstance(p0, f, pr, pt, r, name=f"tight(eps={eps})", meta={"kind": "tight"})


def staleness_instance(
    T: int, S: int = 6, V: int = 3, *, lr: float = 1.0, seed: int = 0
) -> FiniteStateInstance:
    r"""Staleness: ``pi_theta`` is ``pi_roll`` after one exact policy-gradient step on logits.

    ``z_theta(t,s,v) = z(t,s,v) + lr d_t^roll(s) pi_roll(v|t,s) A_t^roll(s,v)``, the exact
    gradient ``dJ/dz`` of the softmax parametrisation (THEORY.md section 2 quantities from
    :func:`dp_exact`).  Random logits per ``(t, s)``, reward a random half of the states.
    """
    rng = np.random.default_rng(seed)
    f = _machine(rng, S, V)
    z = rng.normal(size=(T, S, V))
    pr = _softmax(z)
    p0 = np.full(S, 1.0 / S)
    r = _half_reward(rng, S)
    base = dp_exact(FiniteStateInstance(p0, f, pr, pr, r, name="staleness-base"))
    Q = base.value[1:][:, f]  # (T, S, V)
    adv = Q - base.value[:-1][:, :, None]
    grad = base.d_roll[:T, :, None] * pr * adv
    pt = _softmax(z + lr * grad)
    return FiniteStateInstance(
        p0, f, pr, pt, r, name=f"staleness(T={T},lr={lr},seed={seed})",
        meta={"kind": "staleness", "lr": lr, "seed": seed},
    )  # fmt: skip


def moe_flip_instance(
    T: int, S: int = 6, V: int = 3, *, n_flips: int = 2, seed: int = 0
) -> FiniteStateInstance:
    """MoE-like flip: at ``n_flips`` contexts one token's probability goes 0.9 -> 0.001.

    Elsewhere both policies are equal (random).  At a flipped context the rollout puts 0.9 on
    a dominant token and 0.1 spread over the rest; ``pi_theta`` puts 0.001 on it and rescales
    the rest to 0.999.  The first two flips lie on one path (positions 1 and 2, needs
    ``T >= 2``), further flips at random reachable ``(t, s)``.
    """
    rng = np.random.default_rng(seed)
    f = _machine(rng, S, V)
    pr = _softmax(rng.normal(size=(T, S, V)))
    pt = pr.copy()
    p0 = np.eye(S)[0]
    sets = _reach_sets(f, 0, T)
    chosen = [(1, 0)]
    if T >= 2 and n_flips >= 2:
        chosen.append((2, int(f[0, rng.integers(V)])))
    cand = [(t + 1, int(s)) for t in range(T) for s in np.flatnonzero(sets[t])]
    cand = [c for c in cand if c not in chosen]
    for i in rng.permutation(len(cand))[: max(0, n_flips - len(chosen))]:
        chosen.append(cand[i])
    for t, s in chosen:
        top = rng.integers(V)
        rest = rng.dirichlet(np.ones(V - 1))
        row_r, row_t = np.empty(V), np.empty(V)
        row_r[top], row_t[top] = 0.9, 0.001
        row_r[np.arange(V) != top] = 0.1 * rest
        row_t[np.arange(V) != top] = 0.999 * rest
        pr[t - 1, s], pt[t - 1, s] = row_r, row_t
    return FiniteStateInstance(
        p0, f, pr, pt, _half_reward(rng, S), name=f"moe_flip(T={T},seed={seed})",
        meta={"kind": "moe_flip", "flips": chosen, "seed": seed},
    )  # fmt: skip


# --------------------------------------------------------------------------- tree export
def to_tree_instance(inst: FiniteStateInstance) -> Any:
    """Expand into the full context tree, a ``trm_bounds.tabular.TreeInstance``.

    Each initial state with ``p0 > 0`` becomes one prompt (``p_x = p0`` on those states).
    Contexts follow the exchange order (position, then prefix in base ``V``, ``y_1`` most
    significant): the children of context ``i`` at position ``t`` are ``i V + v`` at
    ``t + 1``, so the states of level ``t + 1`` are ``f[states_t].ravel()``; the reward of
    sequence ``seq(y)`` is ``r(s_{T+1})``.  Size ``O(n V^T)``: small ``V^T`` only.
    """
    from trm_bounds.tabular import TreeInstance

    T = inst.T
    starts = np.flatnonzero(inst.p0 > 0)
    pr_rows, pt_rows, rewards = [], [], []
    for s0 in starts:
        states = np.array([s0])
        rows_r, rows_t = [], []
        for t in range(T):
            rows_r.append(inst.pi_roll[t, states])  # (V^t, V)
            rows_t.append(inst.pi_theta[t, states])
            states = inst.f[states].ravel()  # (V^(t+1),) children in prefix order
        pr_rows.append(np.concatenate(rows_r))
        pt_rows.append(np.concatenate(rows_t))
        rewards.append(inst.reward[states])
    return TreeInstance.from_arrays(
        p_x=inst.p0[starts],
        pi_roll=np.stack(pr_rows),
        pi_theta=np.stack(pt_rows),
        reward=np.stack(rewards),
        id=inst.name,
        meta={"kind": "finite_state", **inst.meta},
    )


def dense_noise_instance(
    T: int,
    S: int = 4,
    V: int = 3,
    *,
    sigma: float = 0.3,
    p_zero: float = 0.0,
    seed: int = 0,
) -> FiniteStateInstance:
    """Dense noise on logits: ``pi_theta = softmax(z + sigma N(0, 1))`` at every ``(t, s)``.

    Rollout logits ``z`` are standard normal per ``(t, s)``; with ``p_zero > 0`` each token
    is removed from both policies with that probability (never the whole row), which
    exercises zero-probability tokens while keeping ``theta << roll``.  Random initial
    distribution, random reward in ``[0, 1]``.
    """
    rng = np.random.default_rng(seed)
    f = _machine(rng, S, V)
    z = rng.normal(size=(T, S, V))
    zt = z + sigma * rng.normal(size=(T, S, V))
    drop = rng.random((T, S, V)) < p_zero
    drop[..., 0] &= ~drop.all(-1)  # keep at least one token per row
    z, zt = np.where(drop, -np.inf, z), np.where(drop, -np.inf, zt)
    p0 = rng.dirichlet(np.ones(S))
    return FiniteStateInstance(
        p0, f, _softmax(z), _softmax(zt), rng.random(S), name=f"dense_noise(T={T},seed={seed})",
        meta={"kind": "dense_noise", "sigma": sigma, "p_zero": p_zero, "seed": seed},
    )  # fmt: skip


def random_walk_instance(
    T: int,
    S: int = 128,
    *,
    delta: float = 1e-4,
    n_contexts: int | None = None,
    offset: int = 4,
) -> FiniteStateInstance:
    r"""A slowly mixing machine: reflecting random walk on ``0..S-1`` with a drift tilt.

    ``V = 2`` (token 0 steps down, token 1 up, clipped at the ends), start ``S // 2``,
    ``pi_roll = (1/2, 1/2)``; at perturbed contexts ``pi_theta = (1/2 - e, 1/2 + e)`` with
    ``e = sqrt(-expm1(-2 delta)) / 2``, so that the forward ``KL = -1/2 log(1 - 4 e^2)``
    equals ``delta`` exactly.  ``n_contexts = None`` perturbs every ``(t, s)`` (uniform
    divergence); an integer perturbs ``(t, S//2 + t - 1)``, ``t = 1..n_contexts``, which lie
    on one path (sparse divergence, ``D_KL^seq`` fixed once ``T >= n_contexts``).  Reward
    ``1[s_{T+1} >= S//2 + offset]``.  The walk forgets its start only after about ``S^2``
    steps, so the perturbations' effects accumulate over ``T`` (unlike fast-mixing random
    machines, whose error saturates after a few steps).
    """
    f = np.stack([np.maximum(np.arange(S) - 1, 0), np.minimum(np.arange(S) + 1, S - 1)], axis=1)
    e = np.sqrt(-np.expm1(-2.0 * delta)) / 2.0
    tilt = np.array([0.5 - e, 0.5 + e])
    pr = np.broadcast_to(np.array([0.5, 0.5]), (T, S, 2))
    if n_contexts is None:
        pt = np.broadcast_to(tilt, (T, S, 2))
    else:
        pt = np.array(pr)
        for t in range(1, min(T, n_contexts) + 1):
            pt[t - 1, min(S - 1, S // 2 + t - 1)] = tilt
    r = (np.arange(S) >= S // 2 + offset).astype(np.float64)
    kind = "walk_uniform" if n_contexts is None else "walk_sparse"
    return FiniteStateInstance(
        np.eye(S)[S // 2], f, pr, pt, r, name=f"{kind}(T={T},S={S})",
        meta={"kind": kind, "delta": delta, "n_contexts": n_contexts, "offset": offset},
    )  # fmt: skip
