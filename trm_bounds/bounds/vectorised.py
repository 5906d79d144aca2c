r"""The array path: all twelve bounds over an array of horizons ``T`` in one pass.

A fast twin of :mod:`trm_bounds.bounds.formulas` under the worst case ``Dbar_t = min(1, eps)``
(``docs/theory.md §4``).  It builds every bound from the same prefix sums
(:mod:`trm_bounds.bounds.prefix`) -- ``T(T-1)``, ``C(T-1)``, ``P(T-1)``, ``H(T-1)`` -- times the
bound's constant, in place, so ``T = 1..10^6`` costs tens of milliseconds.  It is tested
against the scalar formulas over the whole registry (``tests/bounds/test_registry.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trm_bounds.bounds.prefix import (
    adaptive_crossover,
    coupling_prefix,
    leading_constant,
    pm_prefix,
    sum_sqrt,
)
from trm_bounds.bounds.registry import BOUND_NAMES, UNIFIED_MEMBERS

__all__ = ["compute_array"]


def compute_array(
    T: np.ndarray, eps: float, delta: float, dkl_seq: Any, dtv_seq: Any, sharp: bool
) -> dict[str, np.ndarray]:
    """All twelve bounds over an array of ``T`` in one pass (worst-case ``Dbar_t``).

    Shares the prefix sums between bounds -- ``T(T-1)`` (classical), ``C(T-1)`` (Coupling,
    Adaptive-TV), ``P(T-1)`` (PM, Adaptive-KL), ``H(T-1)`` (Adaptive-hybrid) -- and works
    in place: at ``10^6`` entries the cost is dominated by touching fresh memory, so each
    result is computed into its own output array with masked ufuncs instead of
    ``np.where`` temporaries.  Entries that are equal by ``docs/theory.md §4`` (Adaptive-KL and
    PM-TV, Adaptive-TV and Coupling under the worst case ``Dbar_t = e``) share one
    read-only array.
    """
    c = leading_constant(sharp)
    e = min(1.0, eps)
    a = min(1.0, math.sqrt(delta / 2.0))
    ce = c * e
    # All results live in the rows of one block: a single large allocation costs far fewer
    # page faults than ten separate ones (measured: about 2x at 10^6 entries).
    rows = iter(np.empty((10, T.shape[0])))
    n = np.subtract(T, 1.0, out=next(rows), casting="unsafe")  # n = T - 1
    n_max = float(n.max())

    # Coupling = c e C(n); C(n) = eps n(n+1)/2 for n <= M = floor(1/eps), else C(M) + n - M.
    coup = np.add(n, 1.0, out=next(rows))
    coup *= n  # T (T - 1)
    classical_tv = np.multiply(coup, (1.0 if sharp else 2.0) * eps * eps, out=next(rows))
    with np.errstate(over="ignore"):  # inf when T(T-1) delta exceeds float64, as the scalar path
        classical_kl = np.multiply(coup, (0.5 if sharp else 1.0) * delta, out=next(rows))
    if eps > 0.0 and 1.0 / eps < n_max:
        m_c = float(math.floor(1.0 / eps))
        above = n > m_c
        np.multiply(coup, ce * eps / 2.0, out=coup, where=~above)
        np.add(n, eps * m_c * (m_c + 1.0) / 2.0 - m_c, out=coup, where=above)
        np.multiply(coup, ce, out=coup, where=above)
    else:
        coup *= ce * eps / 2.0

    # P(n) = a S(n) for n <= M = floor(2/delta), else P(M) + n - M; computed once, then
    # PM-KL = c a P(n) and PM-TV = c e P(n) (rescaling one by a/e would underflow for tiny e).
    pm = next(rows)
    if delta <= 0.0:
        pm[:] = 0.0
    elif 2.0 / delta < n_max:
        m_p = float(math.floor(2.0 / delta))
        np.add(n, pm_prefix(m_p, delta) - m_p, out=pm)
        low = np.flatnonzero(n <= m_p)
        pm[low] = math.sqrt(delta / 2.0) * sum_sqrt(n[low])
    else:
        np.multiply(sum_sqrt(n), math.sqrt(delta / 2.0), out=pm)
    pm_kl = np.multiply(pm, c * a, out=next(rows))
    pm *= ce

    # Hybrid = c e H(n); H(n) = C(n) for n <= kc = floor(delta/(2 eps^2)), else
    # C(kc) + P(n) - P(kc).
    kc_real = adaptive_crossover(eps=eps, delta=delta)
    if eps > 0.0 and kc_real < n_max:
        kc = float(math.floor(kc_real))
        hyb = np.add(pm, ce * (coupling_prefix(kc, eps) - pm_prefix(kc, delta)),
                     out=next(rows))
        np.copyto(hyb, coup, where=n <= kc)
    else:
        hyb = coup  # H = C on the whole range: shared below

    out: dict[str, np.ndarray] = {"classical_tv": classical_tv, "classical_kl": classical_kl}
    out["coupling"] = coup
    out["pm_kl"] = pm_kl
    out["pm_tv"] = pm
    n += 1.0  # n = T from here on
    if np.ndim(dkl_seq) == 0:
        out["mix_kl"] = np.multiply(n, c * a * min(1.0, math.sqrt(dkl_seq / 2.0)), out=next(rows))
    else:
        mk = np.multiply(dkl_seq, 0.5, out=next(rows))
        np.sqrt(mk, out=mk)
        np.minimum(mk, 1.0, out=mk)
        mk *= n
        mk *= c * a
        out["mix_kl"] = mk
    if np.ndim(dtv_seq) == 0:
        out["mix_tv"] = np.multiply(n, ce * min(1.0, dtv_seq), out=next(rows))
    else:
        mt = np.minimum(dtv_seq, 1.0, out=next(rows))
        mt *= n
        mt *= ce
        out["mix_tv"] = mt
    out["adaptive_kl"] = pm  # c e P(T-1): identical to PM-TV under Dbar_t = e
    out["adaptive_tv"] = coup  # c e C(T-1): identical to Coupling under Dbar_t = e
    out["adaptive_hybrid"] = hyb
    n *= ce
    out["linear"] = n
    scalar_seq = np.ndim(dkl_seq) == 0 and np.ndim(dtv_seq) == 0
    out["unified"] = _unified_array(out, e <= a, scalar_seq, next(rows))
    for arr in out.values():
        arr.flags.writeable = False
    return {name: out[name] for name in BOUND_NAMES}


def _unified_array(
    out: dict[str, np.ndarray], e_le_a: bool, scalar_seq: bool, uni: np.ndarray
) -> np.ndarray:
    """``B*`` over an array of ``T``, skipping members that are provably not smaller.

    Under the worst case ``Dbar_t = e``, Adaptive-hybrid ``c e H`` is at most Coupling
    ``c e C`` and PM-TV ``c e P`` (``H <= C, P`` termwise), and PM-TV is at most PM-KL when
    ``e <= a`` (Pinsker); with scalar sequence divergences the two Mixed bounds are ``T``
    times constants, so their minimum is one of them.  Anything else takes every member.
    """
    if not e_le_a:
        np.minimum(out["pm_kl"], out["pm_tv"], out=uni)
        for name in UNIFIED_MEMBERS[2:]:
            np.minimum(uni, out[name], out=uni)
        return uni
    if scalar_seq:
        mix = out["mix_kl"] if out["mix_kl"][-1] <= out["mix_tv"][-1] else out["mix_tv"]
        np.minimum(out["adaptive_hybrid"], mix, out=uni)
    else:
        np.minimum(out["adaptive_hybrid"], out["mix_kl"], out=uni)
        np.minimum(uni, out["mix_tv"], out=uni)
    # H <= C and H <= P hold termwise in exact arithmetic; guard the last ulp.
    np.minimum(uni, out["coupling"], out=uni)
    return uni
