"""Mergeable statistics: rows without a trained token are not sequences; identical fields."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.tolerances import ATOL, RTOL
from trm_bounds.evaluate.stats import chunk_stats
from trm_bounds.logs import Batch


def _batch(B: int, T: int, seed: int, untrained: np.ndarray | None = None) -> Batch:
    rng = np.random.default_rng(seed)
    lr = np.log(rng.uniform(0.05, 1.0, (B, T)))
    lp = lr + rng.normal(0.0, 0.3, (B, T))
    lp = np.minimum(lp, 0.0)
    L = rng.integers(1, T + 1, B)
    m = np.arange(T)[None, :] < L[:, None]
    if untrained is not None:
        m[untrained] = False
    return Batch(lp, lr, m, prompt_id=np.arange(B).astype(object))


def _same(a, b) -> None:
    assert (a.n_sequences, a.n_tokens) == (b.n_sequences, b.n_tokens)
    assert a.accepted == b.accepted
    np.testing.assert_array_equal(a.len_count, b.len_count)
    for k in a.len_accepted:
        np.testing.assert_array_equal(a.len_accepted[k], b.len_accepted[k])
    for k in a.hists:
        np.testing.assert_array_equal(a.hists[k], b.hists[k])
    np.testing.assert_array_equal(a.pos_count, b.pos_count)
    np.testing.assert_allclose(a.dbar_estimate, b.dbar_estimate, rtol=RTOL, atol=ATOL)
    for k in a.sums:
        np.testing.assert_allclose(a.sum(k), b.sum(k), rtol=RTOL, atol=ATOL)
    assert a.k2_max == b.k2_max


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 12), st.integers(1, 9), st.integers(0, 2**31 - 1), st.data())
def test_untrained_rows_are_counted_apart_and_change_no_statistic(B, T, seed, data):
    """Stats of a chunk with rows masked out == stats of the chunk without those rows."""
    drop = np.array(data.draw(st.lists(st.booleans(), min_size=B, max_size=B)))
    if drop.all():
        drop[0] = False
    full = _batch(B, T, seed, untrained=drop)
    kept = Batch(full.log_probs[~drop], full.rollout_log_probs[~drop], full.response_mask[~drop])
    s_full, cols = chunk_stats(full)
    s_kept, _ = chunk_stats(kept)
    _same(s_full, s_kept)
    assert s_full.n_untrained_rows == int(drop.sum()) and s_kept.n_untrained_rows == 0
    # the per-row columns still cover every row (sequences.csv), flagged
    np.testing.assert_array_equal(cols["trained"], ~drop)
    assert all(len(v) == B for v in cols.values())
    # acceptance is over trained rows only
    assert all(v <= s_full.n_sequences for v in s_full.accepted.values())


def test_a_chunk_of_only_untrained_rows_merges_its_count():
    a, _ = chunk_stats(_batch(4, 5, 1, untrained=np.ones(4, bool)))
    b, _ = chunk_stats(_batch(3, 5, 2))
    assert a.n_sequences == 0 and a.n_untrained_rows == 4
    for m in (a.merge(b), b.merge(a)):
        assert (m.n_sequences, m.n_untrained_rows) == (3, 4)
        assert m.n_tokens == b.n_tokens
    assert any(w.startswith("4 rows train no token") for w in a.merge(b).warnings)


def test_identical_trainer_and_rollout_fields_warn():
    b = _batch(5, 6, 3)
    b.rollout_log_probs = b.log_probs.copy()
    s, _ = chunk_stats(b)
    assert s.k2_max == 0.0 and s.n_equal_tokens == s.n_tokens
    assert any("identical at every trained token" in w for w in s.warnings)
    # one differing token among many: no warning (an exact integer comparison)
    b.rollout_log_probs[0, 0] = b.log_probs[0, 0] - 1e-3
    s, _ = chunk_stats(b)
    assert s.n_equal_tokens == s.n_tokens - 1
    assert not any("identical" in w for w in s.warnings)
