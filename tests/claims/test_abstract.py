"""Claims of the abstracts (:mod:`trm_bounds.claims.abstract`)."""

from __future__ import annotations

import numpy as np

from trm_bounds.claims.abstract import T_PAPER, worst_case_bounds
from trm_bounds.planner import largest_delta


def test_nonvacuous_delta_matches_the_closed_form():
    """At T = 4096 under uniform divergence B* is PM-KL = 4 (delta/2) sum_{k<T} sqrt(k) (no cap
    binds), so B* = 1 at delta = 1 / (2 S) published and 1 / S sharp, S = sum sqrt(k): the
    planner's root (the one the row prints) agrees (relative 1e-9), and the paper's
    delta = 1e-4 is far above."""
    S = float(np.sum(np.sqrt(np.arange(T_PAPER, dtype=np.float64))))
    np.testing.assert_allclose(largest_delta(T_PAPER, 1.0), 1 / (2 * S), rtol=1e-9)
    np.testing.assert_allclose(largest_delta(T_PAPER, 1.0, sharp=True), 1 / S, rtol=1e-9)
    assert largest_delta(T_PAPER, 1.0) < 1e-4 / 30


def test_worst_case_inputs_are_the_papers_kl_only_column():
    """The planner's worst case at delta = 1e-4 (D_KL^seq = T delta) gives every bound as the
    paper's KL-only column computes it (kl_only inputs, docs/theory.md §7)."""
    from trm_bounds.bounds import compute_bounds, kl_only

    wc = worst_case_bounds(T_PAPER, 1e-4)
    eps, dtv = kl_only(1e-4, T_PAPER * 1e-4)
    ref = compute_bounds(T_PAPER, eps=eps, delta=1e-4, dkl_seq=T_PAPER * 1e-4, dtv_seq=dtv)
    for name in ref:
        np.testing.assert_allclose(float(wc[name]), float(ref[name]), rtol=1e-12)
