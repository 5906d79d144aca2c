r"""Exact long-horizon engine: dynamic programming on finite-state instances (docs/theory.md §1-§5).

A finite-state instance (:class:`~trm_bounds.instances.finite.FiniteStateInstance`) is an
autoregressive model whose next-token distribution depends on the context only through
``(t, s_t)``, a state with deterministic update ``s_{t+1} = f(s_t, y_t)``, and whose reward
is a function of the final state ``s_{T+1}``.  Every quantity of docs/theory.md §2-§3 then follows from dynamic
programming in ``O(T S V)`` time and input: horizons ``T = 10^5`` are exact.

Symbols (shapes):

- ``p0 (S,)``: distribution of the initial state ``s_1`` (prompts mapped to initial states;
  each initial state plays the role of one prompt ``x`` of docs/theory.md §1);
- ``f (S, V)``: integer next state ``f(s, v)``;
- ``pi_roll, pi_theta (T, S, V)``: next-token distributions ``pi(v | t, s)``, ``t = 1..T``;
- ``reward (S,)``: ``R = r(s_{T+1})`` in ``[0, 1]``.

Recursions (``A_t(s, s') = sum_{v: f(s,v)=s'} pi(v|t,s)``):

.. math::

    d_{t+1} = d_t A_t^{\mathrm{roll}},\quad V_t = A_t^{\mathrm{roll}} V_{t+1},\ V_{T+1}=r,\quad
    Q_t(s, v) = V_{t+1}(f(s, v)),

.. math::

    L' = \sum_t \sum_s d_t(s) \sum_v (\pi_\theta - \pi_{\mathrm{roll}})(v|t,s)\, Q_t(s, v)
    \quad\text{(performance difference, §2)},

and independently the forward first moment
``m_t(s) = E_roll[1{s_t = s} sum_{u<t} (rho_u - 1)]``,
``m_{t+1} = m_t A_t^roll + d_t (A_t^theta - A_t^roll)``, ``L' = m_{T+1} . r``.
With ``c = P^theta(s_{T+1}) - P^roll(s_{T+1}) - m_{T+1}`` (sum 0), ``Error = c . r`` and the
largest ``|Error|`` over rewards that are functions of the final state is ``1/2 sum_s |c(s)|``
(docs/theory.md §2 restricted to final-state rewards; it equals the max over *all*
rewards only when the final state determines the sequence).

KL is forward (rollout first), in nats.  ``D_TV^seq`` (the ``p0``-average of per-prompt TV) is
exact by enumeration when at most ``2^20`` sequences exist; otherwise a certified upper
bound is used: ``min(sqrt(1 - BC^2), sqrt(D_KL^seq / 2))`` with the Bhattacharyya
coefficient ``BC = E_x sum_y sqrt(P^roll P^theta)(y|x)`` computed exactly by DP
(``b_{t+1}(s') = sum_{s,v: f(s,v)=s'} b_t(s) sqrt(pi_roll pi_theta)(v|t,s)``; by concavity
of ``u -> sqrt(1-u^2)``, ``E_x sqrt(1-BC_x^2) <= sqrt(1 - BC^2)``).  Every bound of
§4 is non-decreasing in ``D_TV^seq``, so bounds evaluated at an upper bound remain
valid upper bounds on ``|Error|``.  The lower bound ``1 - BC <= D_TV^seq`` is also reported.

Implementation: the five recursions (``d^roll``, ``m``, ``d^theta``, ``b`` forward and
``V^roll`` backward, the latter run in reverse time in the same loop) form one sparse linear
map per step with ``6 S V`` nonzeros, whose pattern is fixed by ``f`` and whose values are the
policy rows of that step (:class:`~trm_bounds.engines._dp_step.FusedStep`).  One call of
scipy's compiled CSC kernel per step applies it; no ``S x S`` matrix is ever built.
Everything that needs no recursion (per-``(t, s)`` KL, TV, ``g_t``, the kernel's values) is
vectorised over cache-sized chunks of steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trm_bounds.bounds import compute_bounds
from trm_bounds.divergences import kl_terms
from trm_bounds.engines._dp_step import FusedStep, csc_matvec
from trm_bounds.instances.finite import FiniteStateInstance
from trm_bounds.instances.tree import InstanceFormatError
from trm_bounds.report import ExactReport

__all__ = [
    "DPResult",
    "dp_exact",
    "exact_report",
    "sequence_tv_exact",
    "adversarial_reward",
    "MAX_ENUMERATED_SEQUENCES",
]

#: Largest number of sequences (summed over initial states) for exact ``D_TV^seq``.
MAX_ENUMERATED_SEQUENCES = 2**20
#: Smallest positive normal float64; below it a product may have underflowed to zero.
_TINY = np.finfo(np.float64).tiny
#: Policy entries per chunk of steps (per array): temporaries stay cache-resident.
_CHUNK_ENTRIES = 2**15


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


def _kl_rows(
    P: np.ndarray,
    Q: np.ndarray,
    D: np.ndarray,
    work: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    r"""Forward ``KL(P || Q)`` per row of ``(n, S, V)`` arrays, nats (docs/theory.md §3).

    The kernel's in-place terms :func:`trm_bounds.divergences.kl_terms` (``D = Q - P``,
    ``work``: two scratch arrays of ``D``'s shape), summed per row.  A row is ``+inf`` only
    where ``Q = 0 < P`` (a subnormal ``P`` gives a finite term in the kernel).  Returns
    ``(n, S)``.

    >>> p, q = np.array([[[0.9, 0.1]]]), np.array([[[0.5, 0.5]]])
    >>> textbook = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    >>> bool(abs(_kl_rows(p, q, q - p)[0, 0] - textbook) < 1e-15)
    True
    """
    return _row_sums(kl_terms(P, Q, diff=D, work=work))


def _row_sums(a: np.ndarray) -> np.ndarray:
    """Sums along the (short) last axis: einsum's contiguous inner loop, single-threaded
    (faster here than ``a.sum(-1)``, and than a BLAS product, which may spawn threads)."""
    return np.einsum("...v->...", a)


def dp_exact(inst: FiniteStateInstance) -> DPResult:
    r"""Exact forward/backward DP of a finite-state instance (docs/theory.md §2-§3).

    Forward (module docstring), position ``t -> t + 1``:

    .. math::

        d^{roll}_{t+1} = d^{roll}_t A^{roll}_t,\quad
        m_{t+1} = m_t A^{roll}_t + d^{roll}_t (A^\theta_t - A^{roll}_t),\quad
        d^\theta_{t+1} = d^\theta_t A^\theta_t,\quad b_{t+1} = b_t A^{b}_t,

    (``m``: first moment of ``sum_{u<t}(rho_u - 1)``, cross term
    ``pi_roll (rho - 1) = pi_theta - pi_roll``; ``b``: Bhattacharyya, ``A^b`` from
    ``sqrt(pi_roll pi_theta)``), and backward ``V_t^roll = A_t^roll V_{t+1}^roll``: step
    ``i = 0..T-1`` advances the forward recursions from ``t = i + 1`` and the backward one from
    ``t = T + 1 - i``, all in one sparse product (:class:`FusedStep`).  Per-(t, s) KL, TV and
    the performance-difference term ``g_t(s)`` are vectorised per chunk of steps.

    ``L'`` needs ``rho_t`` on every rollout sequence, so, as in the tree engine, ``pi_theta``
    must put no mass where ``pi_roll`` puts none at a ``(t, s)`` the rollout reaches
    (``theta << roll``); otherwise ``ValueError``.  Cost: ``O(T S V)`` time, ``T`` kernel
    calls; memory ``O(T S)`` plus one chunk.  Time-broadcast policies (stride 0 along ``t``)
    reuse one step's values.

    The tight instance of docs/theory.md §5 (``V = T = 2``): ``V_1 = E_roll[R] = 1/2`` and
    ``BC = (sqrt(0.5 * 0.6) + sqrt(0.5 * 0.4))^2 = 0.5 + 2 sqrt(0.06)``:

    >>> from trm_bounds.instances.named import tight_instance
    >>> res = dp_exact(tight_instance(0.1, form="finite_state"))
    >>> float(res.value[0, 0]), round(float(res.bc), 12), round(0.5 + 2 * 0.06**0.5, 12)
    (0.5, 0.989897948557, 0.989897948557)
    """
    T, S, V = inst.T, inst.S, inst.V
    sv = S * V
    pr_all, pt_all, f = inst.pi_roll, inst.pi_theta, inst.f
    hom = pr_all.strides[0] == 0 and pt_all.strides[0] == 0
    K = _chunk_len(T, S, V)
    step = FusedStep(f)
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

    H = np.empty((K + 1, 5 * S))  # H[i]: state before step i of the chunk (FusedStep)
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
    mv, n_state, indptr, indices = csc_matvec, step.n, step.indptr, step.indices

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
            kl_c = _kl_rows(P, Q, D, (wU[: D.shape[0]], wL[: D.shape[0]]))  # (n|1, S)
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
    reach_roll, reach = _reachable(inst, d_roll, d_theta, min_p)
    for a, b, leak_c in leak_at:
        hit = leak_c & reach_roll[a:b]
        if hit.any():
            i, s = (int(k) for k in np.argwhere(hit)[0])
            row_r, row_t = pr_all[a + i, s], pt_all[a + i, s]
            v = int(np.flatnonzero((row_r == 0) & (row_t > 0))[0])
            raise InstanceFormatError(
                f"FiniteStateInstance {inst.name!r}: field pi_theta: entry (t={a + i + 1}, s={s}, "
                f"v={v}) = {float(row_t[v])!r} is positive where pi_roll is 0 at a state the "
                "rollout reaches; L' needs theta << roll (docs/theory.md §2)"
            )
    return DPResult(d_roll, d_theta, m_final, value, kl_ts, tv_ts, g_ts, reach, bc)


def _min_positive(a: np.ndarray) -> float:
    """Smallest positive entry of ``a`` (``inf`` if none); one pass when all are positive."""
    m = a.min()
    return float(m if m > 0 else np.min(a, where=a > 0, initial=np.inf))


def _reachable(
    inst: FiniteStateInstance, d_roll: np.ndarray, d_theta: np.ndarray, min_p: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(T, S)`` masks of ``(t, s)`` reached with positive probability under the rollout
    policy, and under either policy.

    ``d > 0`` is exact unless a product underflowed; that is impossible when the smallest
    positive marginal times ``min_p``, the smallest positive policy entry, is a normal float,
    which is checked; otherwise the supports are propagated exactly (0/1 values, clipped to
    1 after each step), one sparse product per step.
    """
    T, S, V = inst.T, inst.S, inst.V
    reach_roll = d_roll[:T] > 0
    min_d = min(_min_positive(d) for d in (d_roll, d_theta))
    if min_d * min_p >= _TINY:
        return reach_roll, reach_roll | (d_theta[:T] > 0)
    f = inst.f
    indices = np.concatenate([f.ravel(), S + f.ravel()]).astype(np.int64)
    indptr = np.arange(0, 2 * S * V + 1, V, dtype=np.int64)  # column (block, s): V edges
    x = np.concatenate([inst.p0 > 0, inst.p0 > 0]).astype(np.float64)  # (2 S,) supports
    out = np.empty((T, S), dtype=bool)
    out_roll = np.empty((T, S), dtype=bool)
    K = _chunk_len(T, S, V)
    for a in range(0, T, K):
        b = min(T, a + K)
        sup = np.concatenate(
            [(pi[a:b] > 0).reshape(b - a, -1) for pi in (inst.pi_roll, inst.pi_theta)], axis=1
        ).astype(np.float64)  # (n, 2 S V) support indicators
        for i in range(b - a):
            out_roll[a + i] = x[:S] > 0
            out[a + i] = out_roll[a + i] | (x[S:] > 0)
            y = np.zeros(2 * S)
            csc_matvec(2 * S, 2 * S, indptr, indices, sup[i], x, y)
            x = np.minimum(y, 1.0)
    return out_roll, out


# --------------------------------------------------------------------------- sequence TV
def _enumerable(inst: FiniteStateInstance) -> bool:
    """Whether ``n_prompts V^T <= MAX_ENUMERATED_SEQUENCES`` (no float overflow for huge T)."""
    n = int(np.count_nonzero(inst.p0 > 0))
    return inst.T * np.log2(inst.V) <= 64 and n * inst.V**inst.T <= MAX_ENUMERATED_SEQUENCES


def sequence_tv_exact(inst: FiniteStateInstance) -> float:
    r"""Exact ``D_TV^seq = sum_x p0(x) 1/2 sum_y |P^theta(y|x) - P^roll(y|x)|`` (docs/theory.md §3).

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


def exact_report(inst: FiniteStateInstance) -> ExactReport:
    r"""Every exact quantity of docs/theory.md §2-§4 for a finite-state instance, by DP.

    Fields as the tree engine's (:class:`~trm_bounds.report.ExactReport`): ``J_roll``,
    ``J_theta``, ``L_prime`` (performance-difference form), ``error = J_theta - J_roll -
    L_prime``, ``error_identity`` (here: with ``L'`` from the forward first-moment pass,
    also reported as ``L_prime_first_moment``), ``error_max_over_rewards`` (over final-state
    rewards, ``1/2 sum_s |c(s)|``; ``error_max_over_rewards_scope = "final_state_rewards"``),
    ``eps``, ``delta`` (maxima over reachable ``(t, s)``), ``Dbar`` (``t = 1..T``),
    ``D_KL_seq`` (chain rule, nats), ``D_TV_seq`` with ``D_TV_seq_method``: ``"exact"`` when
    the sequences can be enumerated, else the smallest certified upper bound, by name:
    ``"bhattacharyya_upper"`` (``sqrt(1 - BC^2)``), ``"pinsker_upper"`` (``sqrt(D_KL^seq/2)``),
    ``"dbar_sum_upper"`` (``sum_t Dbar_t``, the hybrid argument) or ``"coupling_upper"``
    (``1 - (1 - eps)^T``, the step-by-step maximal coupling),
    ``D_TV_seq_lower = 1 - BC``, ``bhattacharyya``, ``bounds_published``, ``bounds_sharp``
    (``trm_bounds.bounds.compute_bounds`` at these values, ``dbar = Dbar``); ``V``, ``T`` and
    ``n_prompts`` (initial states with ``p0 > 0``).

    The tight instance of docs/theory.md §5 (``Error = 2 eps^2`` = sharp Coupling bound):

    >>> from trm_bounds.instances.named import tight_instance
    >>> rep = exact_report(tight_instance(0.1, form="finite_state"))
    >>> round(rep.error, 12), round(rep.bounds_sharp["coupling"], 12)
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
        # the smallest of four certified upper bounds (docs/theory.md §3), first one wins ties
        uppers = {
            "bhattacharyya_upper": float(np.sqrt(max(0.0, 1.0 - bc * bc))),
            "pinsker_upper": float(min(1.0, np.sqrt(dkl_seq / 2))),
            "dbar_sum_upper": float(dbar.sum()),
            "coupling_upper": float(-np.expm1(T * np.log1p(-min(eps, 1.0)))),
        }
        method = min(uppers, key=uppers.__getitem__)
        dtv_seq = uppers[method]
    kw = dict(eps=eps, delta=delta, dkl_seq=dkl_seq, dtv_seq=dtv_seq, dbar=dbar)
    return ExactReport(
        J_roll=J_roll,
        J_theta=J_theta,
        L_prime=L_pd,
        error=J_theta - J_roll - L_pd,
        error_identity=J_theta - J_roll - L_fm,
        error_max_over_rewards=float(0.5 * np.abs(c).sum()),
        eps=eps,
        delta=delta,
        Dbar=dbar,
        D_KL_seq=dkl_seq,
        D_TV_seq=dtv_seq,
        bounds_published=compute_bounds(T, sharp=False, **kw),
        bounds_sharp=compute_bounds(T, sharp=True, **kw),
        V=inst.V,
        T=T,
        n_prompts=int(np.count_nonzero(inst.p0 > 0)),
        error_max_over_rewards_scope="final_state_rewards",
        D_TV_seq_method=method,
        D_TV_seq_lower=tv_lower,
        bhattacharyya=bc,
        L_prime_first_moment=L_fm,
    )


def _max_over(a: np.ndarray, mask: np.ndarray) -> float:
    """``max a[mask]`` without copying ``a`` (``mask`` has at least one True)."""
    return float(a.max() if mask.all() else np.max(a, where=mask, initial=-np.inf))
