r"""Exact tree engine: every quantity of docs/theory.md §1-§5 by enumerating all responses.

For a :class:`~trm_bounds.instances.tree.TreeInstance` the engine enumerates all ``V^T``
responses per prompt, vectorised: sequence log-probabilities are built level by level by
broadcasting; the only Python loop is over the position ``t``.

The centred surrogate ``L'`` (docs/theory.md §2) needs ``rho_t`` on every sequence the
rollout policy samples, so the engine requires ``pi_theta(v|c) = 0`` wherever
``pi_roll(v|c) = 0`` at contexts the rollout policy reaches (``theta << roll``).
Reachability is decided exactly (a boolean product of positive factors), never from a
probability that may underflow.  All KL divergences are forward, rollout first, in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trm_bounds.bounds import compute_bounds
from trm_bounds.divergences import kl_from_logprobs, tv
from trm_bounds.instances.tree import InstanceFormatError, TreeInstance
from trm_bounds.report import ExactReport, compare_reports

__all__ = [
    "error_coefficients",
    "surrogate_with_baseline",
    "exact_report",
    "check_instance",
    "adversarial_reward",
    "policy_gradient",
]

#: Smallest positive normal float64.
_TINY = np.finfo(np.float64).tiny


@dataclass
class _Exact:
    """Per-sequence and per-context arrays of one instance (internal)."""

    w_roll: np.ndarray  # (n, V^T)  P(x) P^roll(y|x)
    w_theta: np.ndarray  # (n, V^T) P(x) P^theta(y|x)
    lp_roll: np.ndarray  # (n, V^T) log P^roll(y|x)
    lp_theta: np.ndarray  # (n, V^T) log P^theta(y|x)
    sum_rho_m1: np.ndarray  # (n, V^T) sum_t (rho_t - 1)
    w_rho_m1: np.ndarray | None  # (n, V^T) w_roll sum_t (rho_t - 1) where sum_rho_m1 is inf
    telescoped: np.ndarray  # (n, V^T) sum_t (rho_t - 1)(1 - prod_{j>t} rho_j)
    log_rho_total: np.ndarray  # (n, V^T) sum_t log rho_t
    tv_c: np.ndarray  # (n, C) TV(c)
    kl_c: np.ndarray  # (n, C) KL(c)
    reach: np.ndarray  # (n, C) bool, reached with positive probability by either policy
    dbar: np.ndarray  # (T,) Dbar_t
    dkl_t: np.ndarray  # (T,) E_{d_t^roll} KL(c_t)


def _exact(inst: TreeInstance) -> _Exact:
    """Enumerate all ``V^T`` responses per prompt (docs/theory.md §1-§3), level by level."""
    n, V, T = inst.n_prompts, inst.V, inst.T
    p_x = inst.p_x
    pr, pt = inst.pi_roll, inst.pi_theta
    tv_c = tv(pr, pt)  # (n, C)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pr = np.log(pr)  # (n, C, V)
        log_pt = np.log(pt)  # (n, C, V)
        kl_c = kl_from_logprobs(log_pr, log_pt)  # (n, C), forward, rollout first
        # rho = 1 where roll puts no mass (then theta puts none either, checked below)
        log_rho = np.where(pr > 0.0, log_pt - log_pr, 0.0)  # (n, C, V)
    reach = np.zeros((n, inst.n_contexts), dtype=bool)
    dbar = np.empty(T)
    dkl_t = np.empty(T)
    lp_r = np.zeros((n, 1))  # log P^roll(prefix | x), (n, V^(t-1))
    lp_t = np.zeros((n, 1))
    # exact reachability: P(x) > 0 and every factor on the prefix positive (no underflow)
    on_r = np.broadcast_to(p_x[:, None] > 0.0, (n, 1))  # (n, V^(t-1)) bool
    on_t = on_r
    levels = []  # log rho of (prefix, y_t), (n, V^t) per t
    for t in range(1, T + 1):
        off, size = (V ** (t - 1) - 1) // (V - 1), V ** (t - 1)
        sl = slice(off, off + size)
        d_roll = p_x[:, None] * np.exp(lp_r)  # (n, V^(t-1)) = d_t^roll(c_t)
        reach[:, sl] = on_r | on_t
        leak = on_r[:, :, None] & (pr[:, sl] == 0.0) & (pt[:, sl] > 0.0)
        if leak.any():
            i, j, v = np.argwhere(leak)[0]
            raise InstanceFormatError(
                f"instance {inst.id!r}: field 'pi_theta': entry [{i}, {off + j}, {v}] is "
                "positive where pi_roll is 0 at a context the rollout reaches; "
                "the surrogate L' needs theta << roll (docs/theory.md §2)"
            )
        dbar[t - 1] = np.sum(d_roll * tv_c[:, sl])
        dkl_t[t - 1] = np.sum(np.where(d_roll > 0.0, d_roll * kl_c[:, sl], 0.0))
        lp_r = (lp_r[:, :, None] + log_pr[:, sl, :]).reshape(n, -1)  # (n, V^t)
        lp_t = (lp_t[:, :, None] + log_pt[:, sl, :]).reshape(n, -1)
        on_r = (on_r[:, :, None] & (pr[:, sl] > 0.0)).reshape(n, -1)
        on_t = (on_t[:, :, None] & (pt[:, sl] > 0.0)).reshape(n, -1)
        levels.append(log_rho[:, sl, :].reshape(n, -1))
    S = V**T
    suffix = np.zeros((n, S))  # sum_{j>t} log rho_j, then the total
    telescoped = np.zeros((n, S))
    sum_rho_m1 = np.zeros((n, S))
    for t in range(T, 0, -1):
        shape = (n, V**t, V ** (T - t))
        suf = suffix.reshape(shape)
        with np.errstate(over="ignore", invalid="ignore"):  # extreme rho: see _coefficients
            r_m1 = np.expm1(levels[t - 1])[:, :, None]  # (n, V^t, 1) rho_t - 1
            # (rho_t - 1)(1 - prod_{j>t} rho_j), the product in log space
            telescoped.reshape(shape)[...] -= r_m1 * np.expm1(suf)
            sum_rho_m1.reshape(shape)[...] += r_m1
        suf += levels[t - 1][:, :, None]
    w_roll = p_x[:, None] * np.exp(lp_r)
    w_theta = p_x[:, None] * np.exp(lp_t)
    w_rho_m1 = None
    if not np.isfinite(sum_rho_m1).all():  # some rho_t beyond 1e308: sum_t w_roll rho_t in logs
        with np.errstate(divide="ignore"):
            log_w = np.log(p_x)[:, None] + lp_r  # (n, V^T)
        w_rho_m1 = -T * w_roll
        for t in range(1, T + 1):
            shape = (n, V**t, V ** (T - t))
            w_rho_m1.reshape(shape)[...] += np.exp(log_w.reshape(shape) + levels[t - 1][:, :, None])
    return _Exact(
        w_roll=w_roll,
        w_theta=w_theta,
        lp_roll=lp_r,
        lp_theta=lp_t,
        sum_rho_m1=sum_rho_m1,
        w_rho_m1=w_rho_m1,
        telescoped=telescoped,
        log_rho_total=suffix,
        tv_c=tv_c,
        kl_c=kl_c,
        reach=reach,
        dbar=dbar,
        dkl_t=dkl_t,
    )


def _weighted_rho_sum(ex: _Exact, weight: np.ndarray | float, k: float) -> np.ndarray:
    """``w_roll weight (sum_t (rho_t - 1) + k)`` per sequence, ``(n, V^T)``; where a ``rho_t``
    overflows, from ``w_roll sum_t (rho_t - 1)`` computed in log space (no ``0 * inf``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = ex.w_roll * weight * (ex.sum_rho_m1 + k)
    if ex.w_rho_m1 is None:
        return out
    bad = ~np.isfinite(ex.sum_rho_m1)
    return np.where(bad, (ex.w_rho_m1 + k * ex.w_roll) * weight, out)


def _coefficients(ex: _Exact) -> tuple[np.ndarray, np.ndarray]:
    r"""The error coefficients ``c`` (telescoped form) and ``c_direct`` (untelescoped).

    Where the telescoped product is not finite (``rho`` beyond ``1e150``, with a rollout
    weight that underflows), ``c`` takes the untelescoped value, which has no ``0 * inf``.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        c = -ex.w_roll * ex.telescoped  # (n, V^T)
        c_direct = ex.w_theta - _weighted_rho_sum(ex, 1.0, 1.0)
    bad = ~np.isfinite(c)
    if bad.any():
        c = np.where(bad, c_direct, c)
    return c, c_direct


def error_coefficients(inst: TreeInstance) -> np.ndarray:
    r"""The reward coefficients of the error, ``Error = sum_{x,y} c(x,y) R(x,y)`` (docs/theory.md §2).

    .. math:: c(x,y) = P(x)\,[P^\theta(y|x) - P^{roll}(y|x)(1 + \textstyle\sum_t(\rho_t-1))]
              = -P(x)\,P^{roll}(y|x) \sum_t (\rho_t - 1)(1 - \prod_{j>t}\rho_j)

    computed in the second (telescoped, cancellation-free) form. Shape ``(n_prompts, V^T)``;
    the entries sum to 0, and ``max_R |Error| = 1/2 sum |c|``.
    """
    return _coefficients(_exact(inst))[0]


def surrogate_with_baseline(inst: TreeInstance, b: float) -> tuple[float, float]:
    r"""The paper's surrogate with a baseline, and the centred one with the same baseline.

    Returns ``(L_b, Lprime_b)`` with (docs/theory.md §2)

    .. math:: L_b = E_{roll}[(R - b) \textstyle\sum_t \rho_t], \qquad
              L'_b = E_{roll}[(R - b) \textstyle\sum_t (\rho_t - 1)].

    ``L'_b = L'`` for every constant ``b``, while ``L_b = L' + T (J(roll) - b)``.
    """
    ex = _exact(inst)
    rb = inst.reward - b
    lprime_b = float(np.sum(_weighted_rho_sum(ex, rb, 0.0)))
    l_b = float(np.sum(_weighted_rho_sum(ex, rb, inst.T)))
    return l_b, lprime_b


def _sequence_tv(ex: _Exact) -> float:
    r"""``D_TV^seq = 1/2 sum_{x,y} |P(x) P^theta(y|x) - P(x) P^roll(y|x)|`` (docs/theory.md §3).

    Computed as ``w_roll |e^S - 1|``, ``S = sum_t log rho_t`` (no cancellation when the
    policies are close), and, where ``S > 0`` and that product overflows or ``w_roll`` is
    below the normal range, as ``w_theta (1 - e^-S)`` (the same value, with no ``0 * inf``).
    """
    S = ex.log_rho_total
    with np.errstate(over="ignore", invalid="ignore"):
        gap = ex.w_roll * np.abs(np.expm1(S))  # (n, V^T)
        fix = (S > 0.0) & ~(np.isfinite(gap) & (ex.w_roll >= _TINY))
        if fix.any():
            gap = np.where(fix, ex.w_theta * -np.expm1(-S), gap)
    return float(0.5 * np.sum(gap))


def exact_report(inst: TreeInstance, *, baseline: float = 0.0) -> ExactReport:
    r"""Every exact quantity of docs/theory.md §1-§3 and every bound of §4-§5, by enumeration.

    Fields (:class:`~trm_bounds.report.ExactReport`; divergences in nats, KL forward):

    - ``J_roll``, ``J_theta``: ``J(pi) = E_x E_{y~pi}[R]``;
    - ``L_prime``: centred surrogate ``E_roll[R sum_t (rho_t - 1)]`` (§2);
    - ``error``: ``J(theta) - J(roll) - L'`` (the definition);
    - ``error_identity``: ``-E_roll[R sum_t (rho_t - 1)(1 - prod_{j>t} rho_j)]``
      (telescoping identity, suffix products in log space);
    - ``error_max_over_rewards``: ``max_R |Error| = 1/2 sum_{x,y} |c(x,y)|`` (all rewards);
    - ``eps``, ``delta``: max of ``TV(c)`` and forward ``KL(c)`` over contexts reached with
      positive probability by either policy (decided exactly, §3);
    - ``Dbar``: ``Dbar_t = E_{d_t^roll} TV(c_t)``;
    - ``D_KL_seq``: chain rule ``sum_t E_{d_t^roll} KL(c_t)``;
    - ``D_TV_seq``: ``E_x TV(P^roll(.|x), P^theta(.|x))``, exact;
    - ``bounds_published``, ``bounds_sharp``: ``trm_bounds.bounds.compute_bounds`` with the
      exact ``Dbar_t`` (§4 constants, and the sharp ones of §5);
    - ``D_KL_seq_direct``: ``E_x KL(P^roll(.|x) || P^theta(.|x))`` over whole sequences;
    - ``error_max_over_rewards_direct``: from the untelescoped coefficients;
    - ``baseline_b`` (``= baseline``) and ``L_baseline = E_roll[(R - b) sum_t rho_t]`` (the
      paper's surrogate, *not* ``L'``); ``V``, ``T``, ``n_prompts``, ``n_sequences``.

    Raises ``ValueError`` if ``delta`` is infinite (``pi_theta = 0 < pi_roll`` at a reached
    context) and :class:`~trm_bounds.instances.format.InstanceFormatError` if ``theta << roll``
    fails at a context the rollout reaches.

    The tight instance of docs/theory.md §5: ``Error = 2 eps^2`` = the sharp Coupling bound.

    >>> from trm_bounds.instances.named import tight_instance
    >>> r = exact_report(tight_instance(0.1))
    >>> round(r.error, 15), round(r.bounds_sharp["coupling"], 15)
    (0.02, 0.02)
    """
    ex = _exact(inst)
    R = inst.reward
    J_roll = float(np.sum(ex.w_roll * R))
    J_theta = float(np.sum(ex.w_theta * R))
    L_prime = float(np.sum(_weighted_rho_sum(ex, R, 0.0)))
    c, c_direct = _coefficients(ex)  # (n, V^T)
    eps = float(np.max(ex.tv_c, where=ex.reach, initial=0.0))
    delta = float(np.max(ex.kl_c, where=ex.reach, initial=0.0))
    if not math.isfinite(delta):
        raise ValueError(
            f"instance {inst.id!r}: delta = inf (pi_theta is 0 where pi_roll > 0 at a reached "
            "context); the forward KL and the KL bounds are infinite"
        )
    pos = inst.p_x > 0.0
    kl_direct = kl_from_logprobs(ex.lp_roll[pos], ex.lp_theta[pos])  # (n_pos,)
    dkl_seq = float(np.sum(ex.dkl_t))
    dtv_seq = _sequence_tv(ex)
    kw = dict(eps=eps, delta=delta, dkl_seq=dkl_seq, dtv_seq=dtv_seq, dbar=ex.dbar)
    return ExactReport(
        J_roll=J_roll,
        J_theta=J_theta,
        L_prime=L_prime,
        error=J_theta - J_roll - L_prime,
        error_identity=float(np.sum(c * R)),
        error_max_over_rewards=float(0.5 * np.sum(np.abs(c))),
        eps=eps,
        delta=delta,
        Dbar=ex.dbar,
        D_KL_seq=dkl_seq,
        D_TV_seq=dtv_seq,
        bounds_published=compute_bounds(inst.T, sharp=False, **kw),
        bounds_sharp=compute_bounds(inst.T, sharp=True, **kw),
        D_KL_seq_direct=float(np.sum(inst.p_x[pos] * kl_direct)),
        error_max_over_rewards_direct=float(0.5 * np.sum(np.abs(c_direct))),
        baseline_b=float(baseline),
        L_baseline=float(np.sum(_weighted_rho_sum(ex, R - baseline, inst.T))),
        V=inst.V,
        T=inst.T,
        n_prompts=inst.n_prompts,
        n_sequences=inst.n_prompts * inst.n_sequences,
    )


def check_instance(
    inst: TreeInstance, *, baseline: float | None = None
) -> tuple[ExactReport, list[str] | None]:
    """The exact report of ``inst`` and its mismatches against the ``expected`` report it carries.

    The baseline is ``baseline`` when given, else the one the expected report records
    (``baseline_b``), else 0.  Returns ``(report, mismatches)``; ``mismatches`` is ``None``
    when the instance carries no expected report, else a list of ``"key: expected e, got a"``
    (:func:`~trm_bounds.report.compare_reports`), empty when everything matches.

    >>> from trm_bounds.instances.named import tight_instance
    >>> inst = tight_instance(0.1)
    >>> inst.meta["expected"] = exact_report(inst, baseline=0.5).to_dict()
    >>> check_instance(inst)[1]
    []
    """
    expected = inst.meta.get("expected")
    if baseline is None:
        b = expected.get("baseline_b", 0.0) if isinstance(expected, dict) else 0.0
        try:
            baseline = float(b)
        except (TypeError, ValueError):
            raise InstanceFormatError(
                f"instance {inst.id!r}: field 'expected.baseline_b': not a number: {b!r}"
            ) from None
    report = exact_report(inst, baseline=baseline)
    if expected is None:
        return report, None
    return report, compare_reports(expected, report)


def policy_gradient(inst: TreeInstance) -> np.ndarray:
    r"""Exact gradient of ``L'`` (= of ``J``) w.r.t. theta's logits at ``theta = roll``.

    .. math:: \partial L' / \partial z_{c,u} = d^{roll}(c)\, \pi_{roll}(u|c)\, A^{roll}(c, u)

    (docs/theory.md §2). Shape ``(n_prompts, C, V)``. Computed from
    ``G(c, u) = sum_{y extends (c,u)} P(x) P^roll(y|x) R(y)`` as
    ``G(c, u) - pi_roll(u|c) sum_v G(c, v)``.
    """
    n, V, T = inst.n_prompts, inst.V, inst.T
    lp = np.zeros((n, 1))
    for t in range(1, T + 1):
        off, size = (V ** (t - 1) - 1) // (V - 1), V ** (t - 1)
        with np.errstate(divide="ignore"):
            log_pr = np.log(inst.pi_roll[:, off : off + size])  # (n, V^(t-1), V)
        lp = (lp[:, :, None] + log_pr).reshape(n, -1)
    wR = inst.p_x[:, None] * np.exp(lp) * inst.reward  # (n, V^T)
    grad = np.empty_like(inst.pi_roll)
    for t in range(1, T + 1):
        off, size = (V ** (t - 1) - 1) // (V - 1), V ** (t - 1)
        G = wR.reshape(n, size, V, V ** (T - t)).sum(axis=-1)  # (n, V^(t-1), V)
        pr = inst.pi_roll[:, off : off + size]
        grad[:, off : off + size] = G - pr * G.sum(axis=-1, keepdims=True)
    return grad


def adversarial_reward(inst: TreeInstance) -> TreeInstance:
    r"""The same pair with the reward maximising ``Error``: ``R = 1[c(x, y) > 0]``.

    Then ``Error = sum c^+ = 1/2 sum |c| = max_R |Error|`` (docs/theory.md §2).
    """
    c = error_coefficients(inst)
    meta = {**inst.meta, "reward": "adversarial"}
    return inst.replace(reward=(c > 0.0).astype(np.float64), meta=meta, id=inst.id + "-adv")
