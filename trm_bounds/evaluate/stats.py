r"""Mergeable statistics of logged logprob dumps (docs/theory.md §6).

Per valid token ``t`` of sequence ``i`` (``r_t = log pi_theta(y_t) - log pi_roll(y_t)``,
nats; ``rho_t = e^{r_t}``; ``k2 = r^2/2``, ``k3 = rho - 1 - r``) the report gives

.. math::

    \text{log\_ppl\_abs\_diff} = \frac1N\sum_i \Big|\frac1{T_i}\sum_t r_t\Big|,\quad
    \text{k3\_mean} = \frac{\sum_{i,t} k3}{\sum_i T_i},\quad
    \text{k2\_max} = \max_{i,t} k2,\quad
    \text{ser\_mean} = \frac1N\sum_i \frac1{T_i}\sum_t|\rho_t - 1|,

    \widehat{\bar D}_t = \frac{1}{|\{i: T_i \ge t\}|}\sum_{i: T_i\ge t} \tfrac12|\rho_{i,t} - 1|

(the last is unbiased for ``Dbar_t`` under rollout sampling, docs/theory.md §6). The
criteria are decided by :func:`trm_bounds.masking.decide`.

>>> from trm_bounds.logs import Batch
>>> b = Batch(np.log([[0.5, 0.25]]), np.log([[0.5, 0.5]]), np.array([[True, True]]))
>>> s, cols = chunk_stats(b)
>>> s.n_tokens, round(s.k2_max, 6)  # r = (0, -log 2), so k2_max = (log 2)^2 / 2
(2, 0.240227)
>>> s.dbar_estimate.tolist()  # |rho_t - 1| / 2 = (0, 1/4)
[0.0, 0.25]

Streaming design. Each chunk of sequences yields a :class:`Stats`: counts, maxima, fixed-bin
histograms of every per-sequence score, per-length acceptance counts, and sums. Sums over
sequences of per-sequence scores are carried as double-double pairs (TwoSum), so merging is
associative up to about ``2^-106`` relative and the float64 metrics do not depend on the
chunk size. The per-position sums behind the ``Dbar_t`` estimate come from the same pass as
the per-sequence statistics (:func:`trm_bounds.masking.sequence_stats` with
``position_sums=True``): plain float64 column sums per chunk, merged as double-double, so
they depend on the chunking only through rounding (relative ``<= n 2^-53`` for ``n``
sequences). Acceptance-against-threshold curves come from the fixed-bin histograms
(right-closed bins, exact at the bin edges), not from kept per-sequence arrays; per-sequence
rows are streamed to a temporary ``sequences.csv`` (:mod:`trm_bounds.evaluate.report`). Peak
memory is therefore one chunk (three with the default background loading) plus ``O(T_max)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from trm_bounds.logs import Batch, LogFormatError

__all__ = ["SCORES", "HIST_EDGES", "Stats", "chunk_stats"]

#: Per-sequence scores with a histogram (``kl_max`` only when distributions are given).
SCORES = ("k2_max", "k3_mean", "ser", "ln_trm", "abs_log_ppl_diff", "kl_max")

#: Right-closed histogram bin edges for every score: 0.05 decades from 1e-12 to 1e4.
#: Bin 0 counts scores ``<= 1e-12`` (zeros included); the last counts scores ``> 1e4``.
HIST_EDGES = 10.0 ** np.linspace(-12.0, 4.0, 321)

_SUMS = ("abs_log_ppl_diff", "k3_sum", "ser")


# ----------------------------------------------------------------------------- double-double


def _two_sum(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Knuth's TwoSum: ``s = fl(a + b)`` and the exact error ``e``, ``a + b = s + e``."""
    with np.errstate(invalid="ignore", over="ignore"):
        s = a + b
        bb = s - a
        e = (a - (s - bb)) + (b - bb)
    return s, np.where(np.isfinite(s), e, 0.0)


def _dd_add(x: tuple[np.ndarray, np.ndarray], y: tuple[np.ndarray, np.ndarray]):
    """Add two double-double values (hi, lo) elementwise; non-finite sums stay non-finite."""
    s, e = _two_sum(x[0], y[0])
    with np.errstate(invalid="ignore"):
        e = e + (x[1] + y[1])
    hi, lo = _two_sum(s, e)
    return hi, np.where(np.isfinite(hi), lo, 0.0)


def _dd_sum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum over axis 0 as a double-double pair ``(hi, lo)``, by a pairwise TwoSum tree.

    Each level adds the first half of the rows to the second half (contiguous blocks, a
    few vectorised numpy ops); ``hi + lo`` carries about 106 bits, so ``hi + lo`` rounded
    once is the correctly rounded sum in all but contrived cases. Columns holding a
    non-finite value get the plain sum (``inf``/``nan``) and ``lo = 0``.
    """
    x = np.asarray(x, dtype=np.float64)
    shape = x.shape[1:]
    n = x.shape[0]
    if n == 0:
        return np.zeros(shape), np.zeros(shape)
    x = x.reshape(n, -1)
    hi, lo = x, np.zeros_like(x)
    with np.errstate(invalid="ignore", over="ignore"):
        while n > 1:
            k = n // 2
            a, b = hi[:k], hi[k : 2 * k]
            s = a + b  # TwoSum: a + b = s + e exactly
            bb = s - a
            e = a - (s - bb)
            e += b - bb
            e += lo[:k]
            e += lo[k : 2 * k]
            h = s + e  # renormalise (FastTwoSum, |s| >= |e|)
            e -= h - s
            if n % 2:  # the odd row left over joins row 0
                h[0], e[0] = _dd_add((h[0], e[0]), (hi[n - 1], lo[n - 1]))
            hi, lo, n = h, e, k
        hi, lo = hi[0].copy(), lo[0].copy()
    bad = ~np.isfinite(hi)  # a non-finite input (or overflow): the plain sum, lo = 0
    if bad.any():
        hi[bad] = x[:, bad].sum(axis=0)
        lo[bad] = 0.0
    return hi.reshape(shape), lo.reshape(shape)


def _pad_to(a: np.ndarray, n: int) -> np.ndarray:
    return a if a.shape[0] >= n else np.concatenate([a, np.zeros(n - a.shape[0], a.dtype)])


# ----------------------------------------------------------------------------- Stats


@dataclass
class Stats:
    """Mergeable statistics of a set of sequences (docs/theory.md §6).

    ``merge`` is associative (and commutative): counts and histograms add, maxima take the
    max, sums add as double-double pairs, per-position arrays add after zero-padding to the
    longer one. ``pos_sum`` is the (double-double) sum over sequences of ``|rho_t - 1|/2`` at
    position ``t`` and ``pos_count`` the number of sequences reaching ``t``.

    A *sequence* is a row with at least one trained token; every statistic, count and
    acceptance rate is over sequences. ``n_untrained_rows`` counts the rows without a trained
    token (pad rows, masked samples: :class:`~trm_bounds.logs.Batch`), apart.
    ``n_nan_tokens``: tokens whose NaN rollout logprob the reader took out of the mask (as
    the framework does). ``n_equal_tokens``: trained tokens whose trainer and rollout
    logprobs are bit-identical in the file (all of them: :attr:`warnings`).
    """

    n_sequences: int = 0
    n_tokens: int = 0
    n_untrained_rows: int = 0
    n_nan_tokens: int = 0
    n_equal_tokens: int = 0
    criteria: tuple[str, ...] = ()
    k2_max: float = 0.0
    kl_max: float | None = None
    tv_max: float | None = None
    topk_max: dict[str, float] | None = None
    sums: dict[str, tuple[float, float]] = field(default_factory=dict)
    pos_sum: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0))
    )
    pos_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    len_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    len_accepted: dict[str, np.ndarray] = field(default_factory=dict)
    hists: dict[str, np.ndarray] = field(default_factory=dict)

    def sum(self, name: str) -> float:
        """The float64 value of a carried sum (``hi + lo`` rounded once)."""
        hi, lo = self.sums.get(name, (0.0, 0.0))
        return float(hi + lo) if math.isfinite(hi) else float(hi)

    @property
    def accepted(self) -> dict[str, int]:
        """Accepted sequences per criterion."""
        return {c: int(a.sum()) for c, a in self.len_accepted.items()}

    @property
    def warnings(self) -> list[str]:
        """Sentences the report and stderr must carry (each one line; exact integer tests)."""
        out = []
        if self.n_tokens > 0 and self.n_equal_tokens == self.n_tokens:
            out.append(
                "the trainer and rollout logprob fields are identical at every trained token "
                f"({self.n_tokens} tokens): the rollout logprobs were most likely overwritten "
                "by the trainer's (e.g. AReaL after compute_advantages without the decoupled "
                "loss), so a zero mismatch here measures nothing"
            )
        n = self.n_untrained_rows
        if n:
            out.append(
                f"{n} row{'s' if n != 1 else ''} train{'' if n != 1 else 's'} no token (pad "
                "rows, masked or removed samples): not counted as sequences"
            )
        n = self.n_nan_tokens
        if n:
            out.append(
                f"{n} token{'s' if n != 1 else ''} with a NaN rollout logprob left out of the "
                "trained-token mask (no rollout probability to compare with)"
            )
        return out

    def _counts_added(self, other: Stats) -> Stats:
        return replace(
            self,
            n_untrained_rows=self.n_untrained_rows + other.n_untrained_rows,
            n_nan_tokens=self.n_nan_tokens + other.n_nan_tokens,
            n_equal_tokens=self.n_equal_tokens + other.n_equal_tokens,
        )

    def merge(self, other: Stats) -> Stats:
        """The statistics of the union of both sets of sequences."""
        if self.n_sequences == 0:
            return other._counts_added(self)
        if other.n_sequences == 0:
            return self._counts_added(other)
        if self.criteria != other.criteria:
            raise ValueError(f"cannot merge criteria {self.criteria} and {other.criteria}")

        def mx(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else max(a, b)

        n_pos = max(self.pos_count.shape[0], other.pos_count.shape[0])
        n_len = max(self.len_count.shape[0], other.len_count.shape[0])
        sums = {}
        for k in set(self.sums) | set(other.sums):
            a, b = self.sums.get(k, (0.0, 0.0)), other.sums.get(k, (0.0, 0.0))
            hi, lo = _dd_add((np.float64(a[0]), np.float64(a[1])), (np.float64(b[0]), b[1]))
            sums[k] = (float(hi), float(lo))
        topk = None
        if self.topk_max is not None and other.topk_max is not None:
            topk = {k: max(v, other.topk_max[k]) for k, v in self.topk_max.items()}
        return Stats(
            n_sequences=self.n_sequences + other.n_sequences,
            n_tokens=self.n_tokens + other.n_tokens,
            n_untrained_rows=self.n_untrained_rows + other.n_untrained_rows,
            n_nan_tokens=self.n_nan_tokens + other.n_nan_tokens,
            n_equal_tokens=self.n_equal_tokens + other.n_equal_tokens,
            criteria=self.criteria,
            k2_max=max(self.k2_max, other.k2_max),
            kl_max=mx(self.kl_max, other.kl_max),
            tv_max=mx(self.tv_max, other.tv_max),
            topk_max=topk,
            sums=sums,
            pos_sum=_dd_add(
                (_pad_to(self.pos_sum[0], n_pos), _pad_to(self.pos_sum[1], n_pos)),
                (_pad_to(other.pos_sum[0], n_pos), _pad_to(other.pos_sum[1], n_pos)),
            ),
            pos_count=_pad_to(self.pos_count, n_pos) + _pad_to(other.pos_count, n_pos),
            len_count=_pad_to(self.len_count, n_len) + _pad_to(other.len_count, n_len),
            len_accepted={
                c: _pad_to(a, n_len) + _pad_to(other.len_accepted[c], n_len)
                for c, a in self.len_accepted.items()
            },
            hists={k: h + other.hists[k] for k, h in self.hists.items() if k in other.hists},
        )

    @property
    def dbar_estimate(self) -> np.ndarray:
        """Per-position mean of ``|rho_t - 1|/2`` over sequences reaching ``t`` (length T_max)."""
        s = self.pos_sum[0] + self.pos_sum[1]
        n = np.maximum(self.pos_count, 1)
        return np.where(self.pos_count > 0, s / n, 0.0)


def _hist(x: np.ndarray) -> np.ndarray:
    """Counts in the right-closed bins of :data:`HIST_EDGES` (``len(HIST_EDGES) + 1`` bins)."""
    idx = np.searchsorted(HIST_EDGES, np.nan_to_num(x, nan=np.inf), side="left")
    return np.bincount(idx, minlength=HIST_EDGES.shape[0] + 1).astype(np.int64)


def chunk_stats(
    batch: Batch,
    *,
    thresholds: Mapping[str, float] | None = None,
    criteria: Sequence[str] | None = None,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    float64: bool = False,
    clamp_log_ratio: float | None = None,
) -> tuple[Stats, dict[str, np.ndarray]]:
    """Statistics of one canonical chunk, and its per-sequence columns (for sequences.csv).

    The columns have one entry per *row* of the chunk; ``trained`` is False on a row without
    a trained token, which is not a sequence and is in no statistic (``n_untrained_rows``).

    Per-sequence statistics and decisions come from :func:`trm_bounds.masking.sequence_stats`
    and :func:`trm_bounds.masking.decide`; exact ``kl_max``/``tv_max`` from
    :func:`~trm_bounds.masking.exact_token_divergences` when logits are present, or the
    guaranteed top-k bounds of :func:`~trm_bounds.masking.topk_divergence_bounds` (the
    ``seq_max_kl`` criterion then uses the KL *upper* bound, so it never accepts a sequence
    whose true KL exceeds the threshold).

    Arithmetic is in the dtype of the chunk: a float32 dump is evaluated in float32 per token
    (sums accumulated in float64 or by cascade summation), so that no conversion pass is paid;
    per-token ``k3 = expm1(r) - r`` then carries an absolute error of about ``1e-7 |r|``
    (relative ``~1e-7/|r|`` per token), the other statistics about ``1e-7`` relative.
    ``float64=True`` converts the chunk first, for float64 arithmetic throughout.
    ``clamp_log_ratio``: clip ``r`` to ``[-c, c]`` first (verl's decisions exactly at 20).
    """
    import torch

    from trm_bounds import masking

    lp, lr, m = batch.log_probs, batch.rollout_log_probs, batch.response_mask
    if float64:
        lp, lr = lp.astype(np.float64, copy=False), lr.astype(np.float64, copy=False)
    token_kl = None
    kl_max = tv_max = None
    topk_max = None
    if batch.logits is not None and batch.rollout_logits is not None:
        div = masking.exact_token_divergences(
            torch.from_numpy(np.asarray(batch.logits)),
            torch.from_numpy(np.asarray(batch.rollout_logits)),
            torch.from_numpy(m),
        )
        token_kl = div["kl"].to(torch.float64).masked_fill(~torch.from_numpy(m), 0.0)
        tv = div["tv"].to(torch.float64).masked_fill(~torch.from_numpy(m), 0.0)
        kl_max, tv_max = float(token_kl.max()), float(tv.max())
    elif batch.topk is not None:
        tk = batch.topk
        b = masking.topk_divergence_bounds(
            tk["topk_indices"],
            tk["topk_log_probs"],
            tk["rollout_topk_indices"],
            tk["rollout_topk_log_probs"],
            vocab_size=batch.vocab_size,
        )
        mt = torch.from_numpy(m)
        topk_max = {k: float(v.masked_fill(~mt, 0.0).max()) for k, v in b.items()}
        token_kl = b["kl_upper"].masked_fill(~mt, 0.0)
        kl_max, tv_max = topk_max["kl_lower"], topk_max["tv_lower"]
    if criteria is None:
        criteria = [c for c in masking.CRITERIA if c != "seq_max_kl" or token_kl is not None]
    st = masking.sequence_stats(
        torch.from_numpy(lp),
        torch.from_numpy(lr),
        torch.from_numpy(m),
        ln_delta=ln_delta,
        ln_eps=ln_eps,
        token_kl=token_kl,
        position_sums=True,  # sum_i |rho_it - 1| per position, from the same pass
        padding_is_zero=batch.zero_padding,
        clamp_log_ratio=clamp_log_ratio,
        k2_sum=masking.needs_k2_sum(criteria),
    )
    if token_kl is None and any("seq_max_kl" in c.split(",") for c in criteria):
        raise LogFormatError(
            batch.source, "file", "logits",
            "criterion seq_max_kl needs full distributions (logits) or top-k fields",
        )  # fmt: skip
    dec = masking.decide(st, thresholds, criteria)
    for k in ("r_max", "r_min", "r_sum", "k2_sum"):  # decision inputs, not report columns
        st.pop(k, None)
    L_all = st["length"].numpy().astype(np.int64)
    # rows without a trained token are not sequences: counted apart, out of every statistic
    # (untrained rows add 0 to every per-position sum, so those need no selection)
    trained = L_all > 0
    L = L_all[trained]
    n_len = int(L.max()) + 1 if L.size else 1
    # the horizon comes from the data, never the padded width: positions >= max T_i dropped
    pos = 0.5 * st.pop("pos_abs_dev_sum").numpy()[: n_len - 1]  # (T_max,) float64
    cols = {k: v.numpy() for k, v in st.items()}
    cols["abs_log_ppl_diff"] = np.abs(cols["log_ppl_diff"])
    tcols = cols if trained.all() else {k: v[trained] for k, v in cols.items()}
    len_count = np.bincount(L, minlength=max(n_len, pos.shape[0] + 1)).astype(np.int64)
    # canonical masks are prefixes: the sequences reaching position t are those with T_i > t
    pos_count = L.shape[0] - np.cumsum(len_count)[: pos.shape[0]]
    k2 = tcols["k2_max"]
    stats = Stats(
        n_sequences=int(L.shape[0]),
        n_tokens=int(L.sum()),
        n_untrained_rows=int(len(batch) - L.shape[0]),
        n_nan_tokens=int(batch.n_nan_tokens),
        n_equal_tokens=int(np.count_nonzero((batch.log_probs == batch.rollout_log_probs) & m)),
        criteria=tuple(criteria),
        k2_max=float(k2.max()) if k2.size else 0.0,
        kl_max=kl_max,
        tv_max=tv_max,
        topk_max=topk_max,
        sums={k: tuple(float(v) for v in _dd_sum(tcols[k])) for k in _SUMS},
        pos_sum=(pos, np.zeros_like(pos)),
        pos_count=pos_count,
        len_count=len_count[:n_len],
        len_accepted={
            c: np.bincount(L, weights=dec[c].numpy()[trained], minlength=n_len).astype(np.int64)
            for c in criteria
        },
        hists={k: _hist(tcols[k]) for k in SCORES if k in tcols},
    )
    cols.update({f"accept:{c}": dec[c].numpy() for c in criteria})
    cols["trained"] = trained  # False: a row without a trained token, not a sequence
    return stats, cols
