r"""Evaluate logged logprob dumps: streaming statistics, report, CLI (THEORY.md section 6).

``python -m trm_bounds.evaluate DUMP [DUMP ...] --out DIR`` (or ``--demo``) writes into DIR:
``report.json`` (schema ``trm-bounds-report/v1``), ``report.md``, ``sequences.csv`` and
the figures of :mod:`trm_bounds.plot.evaluate`. Bad input exits with status 2 and a
one-line message naming the file, record/line and field; no ``report.json`` is left behind.

Per valid token ``t`` of sequence ``i`` (``r_t = log pi_theta(y_t) - log pi_roll(y_t)``,
nats; ``rho_t = e^{r_t}``; ``k2 = r^2/2``, ``k3 = rho - 1 - r``) the report gives

.. math::

    \text{log\_ppl\_abs\_diff} = \frac1N\sum_i \Big|\frac1{T_i}\sum_t r_t\Big|,\quad
    \text{k3\_mean} = \frac{\sum_{i,t} k3}{\sum_i T_i},\quad
    \text{k2\_max} = \max_{i,t} k2,\quad
    \text{ser\_mean} = \frac1N\sum_i \frac1{T_i}\sum_t|\rho_t - 1|,

    \widehat{\bar D}_t = \frac{1}{|\{i: T_i \ge t\}|}\sum_{i: T_i\ge t} \tfrac12|\rho_{i,t} - 1|

(the last is unbiased for ``Dbar_t`` under rollout sampling, THEORY.md section 6). The
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
rows are streamed to a temporary ``sequences.csv``. Peak memory is therefore one chunk (three
with the default background loading) plus ``O(T_max)``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from trm_bounds.logs import FORMATS, Batch, LogFormatError, count_sequences, iter_batches
from trm_bounds.results import atomic_write_text, git_hash, to_jsonable

__all__ = [
    "SCHEMA",
    "SCORES",
    "HIST_EDGES",
    "Stats",
    "chunk_stats",
    "evaluate",
    "build_report",
    "report_markdown",
    "demo_dump_path",
    "main",
]

SCHEMA = "trm-bounds-report/v1"

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
    """Mergeable statistics of a set of sequences (THEORY.md section 6).

    ``merge`` is associative (and commutative): counts and histograms add, maxima take the
    max, sums add as double-double pairs, per-position arrays add after zero-padding to the
    longer one. ``pos_sum`` is the (double-double) sum over sequences of ``|rho_t - 1|/2`` at
    position ``t`` and ``pos_count`` the number of sequences reaching ``t``.
    """

    n_sequences: int = 0
    n_tokens: int = 0
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

    def merge(self, other: Stats) -> Stats:
        """The statistics of the union of both sets of sequences."""
        if self.n_sequences == 0:
            return other
        if other.n_sequences == 0:
            return self
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
) -> tuple[Stats, dict[str, np.ndarray]]:
    """Statistics of one canonical chunk, and its per-sequence columns (for sequences.csv).

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
    st = masking.sequence_stats(
        torch.from_numpy(lp),
        torch.from_numpy(lr),
        torch.from_numpy(m),
        ln_delta=ln_delta,
        ln_eps=ln_eps,
        token_kl=token_kl,
        position_sums=True,  # sum_i |rho_it - 1| per position, from the same pass
        padding_is_zero=batch.zero_padding,
    )
    if criteria is None:
        criteria = [c for c in masking.CRITERIA if c != "seq_max_kl" or token_kl is not None]
    elif token_kl is None and any("seq_max_kl" in c.split(",") for c in criteria):
        raise LogFormatError(
            batch.source, "file", "logits",
            "criterion seq_max_kl needs full distributions (logits) or top-k fields",
        )  # fmt: skip
    dec = masking.decide(st, thresholds, criteria)
    pos = 0.5 * st.pop("pos_abs_dev_sum").numpy()  # (T,) sum_i |rho_it - 1| / 2, float64
    cols = {k: v.numpy() for k, v in st.items()}
    cols["abs_log_ppl_diff"] = np.abs(cols["log_ppl_diff"])
    L = cols["length"].astype(np.int64)
    n_len = int(L.max()) + 1
    len_count = np.bincount(L, minlength=max(n_len, pos.shape[0] + 1)).astype(np.int64)
    # canonical masks are prefixes: the sequences reaching position t are those with T_i > t
    pos_count = len(batch) - np.cumsum(len_count)[: pos.shape[0]]
    k2 = cols["k2_max"]
    stats = Stats(
        n_sequences=len(batch),
        n_tokens=int(L.sum()),
        criteria=tuple(criteria),
        k2_max=float(k2.max()),
        kl_max=kl_max,
        tv_max=tv_max,
        topk_max=topk_max,
        sums={k: tuple(float(v) for v in _dd_sum(cols[k])) for k in _SUMS},
        pos_sum=(pos, np.zeros_like(pos)),
        pos_count=pos_count,
        len_count=len_count[:n_len],
        len_accepted={
            c: np.bincount(L, weights=dec[c].numpy(), minlength=n_len).astype(np.int64)
            for c in criteria
        },
        hists={k: _hist(cols[k]) for k in SCORES if k in cols},
    )
    cols.update({f"accept:{c}": dec[c].numpy() for c in criteria})
    return stats, cols


# ----------------------------------------------------------------------------- report


def _thresholds(overrides: Mapping[str, float] | None) -> dict[str, float]:
    from trm_bounds.masking import DEFAULT_THRESHOLDS

    th = dict(DEFAULT_THRESHOLDS)
    for k, v in (overrides or {}).items():
        for p in k.split(","):
            th[p] = float(v)
    return th


def _curve(hist: np.ndarray, n: int) -> dict[str, list[float]]:
    """Acceptance ``P(score <= edge)`` at each histogram edge (exact: right-closed bins)."""
    acc = np.cumsum(hist)[: HIST_EDGES.shape[0]] / max(n, 1)
    return {"thresholds": HIST_EDGES.tolist(), "acceptance": acc.tolist()}


def _length_buckets(s: Stats, n_buckets: int) -> list[dict[str, Any]]:
    """Acceptance per criterion in length quantile buckets (from per-length counts)."""
    lengths = np.arange(s.len_count.shape[0])
    cdf = np.cumsum(s.len_count)
    n = int(cdf[-1])
    # bucket upper edges: the length at quantile k / n_buckets (inverted empirical CDF)
    qs = [
        int(lengths[np.searchsorted(cdf, math.ceil(k * n / n_buckets))])
        for k in range(1, n_buckets)
    ]
    uppers = sorted(set(qs + [int(lengths[-1])]))
    out, lo = [], int(lengths[s.len_count > 0][0])
    for hi in uppers:
        sel = slice(lo, hi + 1)
        cnt = int(s.len_count[sel].sum())
        if cnt:
            out.append(
                {
                    "min_length": lo,
                    "max_length": hi,
                    "n_sequences": cnt,
                    "acceptance_rate": {
                        c: float(a[sel].sum() / cnt) for c, a in s.len_accepted.items()
                    },
                }
            )
        lo = hi + 1
    return out


def _observed_and_bounds(s: Stats, dbar: np.ndarray) -> tuple[dict[str, Any], dict[str, Any]]:
    """Observed (lower) estimates of delta and eps, and the bounds conditional on them."""
    notes: list[str] = []
    T = int(dbar.shape[0])
    dkl_seq = s.sum("k3_sum") / s.n_sequences
    if s.kl_max is not None and s.topk_max is None:
        source = "exact token KL/TV from full distributions"
        delta, eps = s.kl_max, min(1.0, s.tv_max)
    elif s.topk_max is not None:
        source = "guaranteed lower bounds on token KL/TV from top-k (tail mass)"
        delta, eps = s.topk_max["kl_lower"], min(1.0, s.topk_max["tv_lower"])
    else:
        source = "maximum sampled-token k2 = r^2/2 (no distributions given)"
        delta = s.k2_max
        eps = min(1.0, math.sqrt(delta / 2.0)) if math.isfinite(delta) else 1.0
    observed = {
        "label": (
            "lower estimates: maxima over the logged tokens only; the true delta and eps are "
            "maxima over every reachable context and are not estimable from samples "
            "(THEORY.md section 6)"
        ),
        "source": source,
        "delta_lower_estimate": delta,
        "eps_lower_estimate": eps,
        "max_token_k2": s.k2_max,
        "max_token_kl": s.kl_max,
        "max_token_tv": s.tv_max,
        "topk_max": s.topk_max,
        "dkl_seq_estimate": dkl_seq,
        "dkl_seq_label": "mean over sequences of sum_t k3 (unbiased for D_KL^seq)",
        "dbar_label": (
            "dbar_estimate averages over the sequences that reach t (issue 5); with THEORY.md "
            "section 1's absorbing end token, ended sequences carry zero divergence and the "
            "unbiased estimate of Dbar_t is dbar_estimate_absorbing (sum over all sequences "
            "/ N), which is never larger; the bounds use the larger, conservative one"
        ),
        "dbar_estimate_absorbing": ((s.pos_sum[0] + s.pos_sum[1]) / s.n_sequences).tolist(),
    }
    bounds: dict[str, Any] = {
        "label": (
            "conditional: valid only if the true delta, eps, D_KL^seq, D_TV^seq and Dbar_t "
            "equal the values used here; the observed maxima are lower estimates, so these "
            "bounds are optimistic"
        ),
    }
    if not (math.isfinite(delta) and math.isfinite(dkl_seq)):
        bounds.update(computed=False, reason="observed delta or D_KL^seq is infinite")
        return observed, bounds
    # section-3 relations; observed values are lower estimates, so adjust upward
    if eps > math.sqrt(delta / 2.0):
        notes.append(
            f"eps = {eps:.6g} > sqrt(delta/2) (Pinsker): delta raised to 2 eps^2 = {2 * eps**2:.6g}"
        )
        delta = 2.0 * eps * eps
    if dkl_seq > T * delta:
        notes.append(
            f"D_KL^seq estimate {dkl_seq:.6g} > T delta = {T * delta:.6g}: "
            f"delta raised to D_KL^seq / T = {dkl_seq / T:.6g}"
        )
        delta = dkl_seq / T
    dtv_seq = min(1.0, math.sqrt(max(dkl_seq, 0.0) / 2.0))
    if np.any(dbar > eps):
        notes.append(
            f"Dbar_t estimate exceeds eps = {eps:.6g} at {int(np.sum(dbar > eps))} positions: "
            "clipped to eps"
        )
    dbar_c = np.minimum(dbar, eps)
    used = {"T": T, "delta": delta, "eps": eps, "dkl_seq": max(dkl_seq, 0.0), "dtv_seq": dtv_seq}
    try:
        from trm_bounds.bounds import compute_bounds

        pub = compute_bounds(
            T, eps=eps, delta=delta, dkl_seq=used["dkl_seq"], dtv_seq=dtv_seq, dbar=dbar_c
        )
        sharp = compute_bounds(
            T,
            eps=eps,
            delta=delta,
            dkl_seq=used["dkl_seq"],
            dtv_seq=dtv_seq,
            dbar=dbar_c,
            sharp=True,
        )
    except (ImportError, ValueError) as err:
        bounds.update(computed=False, reason=str(err), inputs=used, adjustments=notes)
        return observed, bounds
    bounds.update(
        computed=True,
        inputs=used,
        adjustments=notes,
        published={k: float(v) for k, v in pub.items()},
        sharp={k: float(v) for k, v in sharp.items()},
    )
    return observed, bounds


def build_report(
    s: Stats,
    *,
    thresholds: Mapping[str, float] | None = None,
    n_buckets: int = 4,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    inputs: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``trm-bounds-report/v1`` dictionary from merged :class:`Stats` (issue 5 contract).

    Contract keys: ``schema, n_sequences, n_tokens, metrics, criteria, length_buckets,
    dbar_estimate, observed, bounds``. Extra keys used by the figures: ``acceptance_curves``
    and ``histograms`` (right-closed bins on :data:`HIST_EDGES`), plus ``options``/``inputs``.
    """
    if s.n_sequences == 0:
        raise ValueError("no sequences")
    th = _thresholds(thresholds)
    acc = s.accepted
    criteria = {}
    for c in s.criteria:
        parts = c.split(",")
        criteria[c] = {
            "threshold": th[parts[0]] if len(parts) == 1 else {p: th[p] for p in parts},
            "accepted": acc[c],
            "acceptance_rate": acc[c] / s.n_sequences,
        }
    dbar = s.dbar_estimate
    observed, bounds = _observed_and_bounds(s, dbar)
    curves = {}
    from trm_bounds.masking import STAT_OF_CRITERION

    for c in s.criteria:
        if "," not in c and STAT_OF_CRITERION[c] in s.hists:
            curves[c] = _curve(s.hists[STAT_OF_CRITERION[c]], s.n_sequences)
    return {
        "schema": SCHEMA,
        "n_sequences": s.n_sequences,
        "n_tokens": s.n_tokens,
        "metrics": {
            "log_ppl_abs_diff": s.sum("abs_log_ppl_diff") / s.n_sequences,
            "k3_mean": s.sum("k3_sum") / max(s.n_tokens, 1),
            "k2_max": s.k2_max,
            "ser_mean": s.sum("ser") / s.n_sequences,
        },
        "criteria": criteria,
        "length_buckets": _length_buckets(s, n_buckets),
        "dbar_estimate": dbar.tolist(),
        "observed": observed,
        "bounds": bounds,
        "acceptance_curves": curves,
        "histograms": {
            k: {"edges": HIST_EDGES.tolist(), "counts": h.tolist()} for k, h in s.hists.items()
        },
        "options": {"ln_delta": ln_delta, "ln_eps": ln_eps, "n_buckets": n_buckets},
        "inputs": [str(p) for p in inputs],
        "git_hash": git_hash(),
    }


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in x.items())
    return str(x)


def report_markdown(report: dict[str, Any], figures: Iterable[Path] = ()) -> str:
    """A readable ``report.md`` (tables plus the figures embedded by relative path)."""
    r = report
    lines = [
        "# trm-bounds log evaluation",
        "",
        f"Inputs: {', '.join(r['inputs']) or '-'}  ",
        f"Sequences: {r['n_sequences']}, valid response tokens: {r['n_tokens']}",
        "",
        "## Metrics",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in r["metrics"].items()]
    lines += [
        "",
        "## Criteria (accepted = kept by the mask)",
        "",
        "| criterion | threshold | accepted | rate |",
        "|---|---|---|---|",
    ]
    for c, d in r["criteria"].items():
        lines.append(
            f"| `{c}` | {_fmt(d['threshold'])} | {d['accepted']} | {d['acceptance_rate']:.4f} |"
        )
    lines += ["", "## Acceptance by length bucket", ""]
    crit = list(r["criteria"])
    lines.append("| lengths | n | " + " | ".join(f"`{c}`" for c in crit) + " |")
    lines.append("|---|---|" + "---|" * len(crit))
    for b in r["length_buckets"]:
        rates = " | ".join(f"{b['acceptance_rate'][c]:.3f}" for c in crit)
        lines.append(f"| {b['min_length']}-{b['max_length']} | {b['n_sequences']} | {rates} |")
    o = r["observed"]
    lines += [
        "",
        "## Observed divergences",
        "",
        f"*{o['label']}.* Source: {o['source']}.",
        "",
        f"- delta (lower estimate): {_fmt(o['delta_lower_estimate'])}",
        f"- eps (lower estimate): {_fmt(o['eps_lower_estimate'])}",
        f"- D_KL^seq estimate: {_fmt(o['dkl_seq_estimate'])}",
        "",
        "## Bounds",
        "",
        f"*{r['bounds']['label']}.*",
        "",
    ]
    b = r["bounds"]
    if b.get("computed"):
        lines += [f"Inputs used: {_fmt(b['inputs'])}", ""]
        lines += [f"- adjustment: {a}" for a in b["adjustments"]]
        lines += ["", "| bound | published | sharp |", "|---|---|---|"]
        lines += [f"| {k} | {_fmt(v)} | {_fmt(b['sharp'][k])} |" for k, v in b["published"].items()]
    else:
        lines.append(f"Not computed: {b.get('reason')}")
    figs = list(figures)
    if figs:
        lines += ["", "## Figures", ""]
        lines += [f"![{p.stem}]({p.name})" for p in figs if p.suffix == ".png"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- driver

_Item = TypeVar("_Item")


def _prefetch(items: Iterable[_Item], depth: int = 1) -> Iterator[_Item]:
    """Yield ``items`` in order while a background thread produces up to ``depth`` ahead.

    Loading a chunk (parquet decoding, padding, validation) and computing its statistics
    release the GIL for most of their time, so the two overlap on two cores. An exception
    raised by the producer is re-raised here, at its position in the sequence. Peak memory:
    ``depth + 2`` chunks. Closing this generator early stops the producer.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for x in items:
                if not put((x, None)):
                    return
            put((done, None))
        except BaseException as err:  # noqa: BLE001 -- handed to the consumer, re-raised there
            put((None, err))

    worker = threading.Thread(target=produce, name="trm-bounds-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            x, err = q.get()
            if err is not None:
                raise err
            if x is done:
                return
            yield x
    finally:
        stop.set()
        worker.join()


_CSV_FIRST = ("length", "k2_max", "k3_mean", "ser", "ln_trm", "log_ppl_diff")


class _CsvSink:
    """Streams per-sequence rows into a temporary file beside the final ``sequences.csv``."""

    def __init__(self, out_dir: Path):
        fd, self.tmp = tempfile.mkstemp(dir=out_dir, prefix=".sequences.csv.", suffix=".tmp")
        self.fh = os.fdopen(fd, "w", newline="")
        self.writer = csv.writer(self.fh)
        self.header: list[str] | None = None
        self.n = 0

    def write(self, batch: Batch, cols: dict[str, np.ndarray]) -> None:
        keys = [k for k in _CSV_FIRST] + [k for k in ("kl_max",) if k in cols]
        keys += [k for k in cols if k.startswith("accept:")]
        extra = {}
        if batch.reward is not None:
            extra["reward"] = batch.reward.tolist()
        if batch.prompt_id is not None:
            extra["prompt_id"] = [str(p) for p in batch.prompt_id.tolist()]
        header = ["sequence", "source", "record"] + keys + list(extra)
        if self.header is None:
            self.header = header
            self.writer.writerow(header)
        B = len(batch)
        columns = [
            list(range(self.n, self.n + B)),
            [batch.source] * B,
            list(range(batch.first_record, batch.first_record + B)),
        ]
        for k in keys:
            v = cols[k]
            columns.append(v.astype(int).tolist() if v.dtype == bool else v.tolist())
        columns += list(extra.values())
        if len(header) != len(self.header):  # shards with different optional fields
            columns = columns[: len(self.header)]
        self.writer.writerows(zip(*columns, strict=False))
        self.n += B

    def commit(self, path: Path) -> None:
        self.fh.close()
        os.replace(self.tmp, path)

    def discard(self) -> None:
        self.fh.close()
        Path(self.tmp).unlink(missing_ok=True)


def demo_dump_path() -> Path:
    """The shipped demo dump (``trm_bounds/data/demo_dump.npz``, verl field names)."""
    return Path(__file__).resolve().parent / "data" / "demo_dump.npz"


def evaluate(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    fmt: str = "auto",
    thresholds: Mapping[str, float] | None = None,
    criteria: Sequence[str] | None = None,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    chunk_size: int = 4096,
    trust_pickle: bool = False,
    n_buckets: int = 4,
    figures: bool = True,
    progress: bool | None = None,
    prefetch: bool = True,
    float64: bool = False,
) -> dict[str, Any]:
    """Evaluate a dump end to end and write the report files into ``out_dir``; return the report.

    ``path``: a file, directory or glob, or a list of them (one dataset). Raises
    :class:`~trm_bounds.logs.LogFormatError` on bad input, before anything is written (every
    output is written to a temporary name and renamed at the end, ``report.json`` last; an
    older ``report.json`` in ``out_dir`` is removed first). ``prefetch``: load the next chunk
    in a background thread while the current one is evaluated (same results; peak memory
    three chunks instead of one: at most about 0.2 GB for float32 dumps and 0.4 GB for float64
    at the chunk bound of :data:`~trm_bounds.logs.MAX_CELLS` cells). ``float64``: evaluate
    float32 dumps in float64 arithmetic (see :func:`chunk_stats`; slower).
    """
    from tqdm.auto import tqdm

    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # a stale report from an earlier run must not survive a failed one
    (out / "report.json").unlink(missing_ok=True)
    total = count_sequences(paths, fmt=fmt)
    sink = _CsvSink(out)
    stats = Stats()
    try:
        quiet = progress is False or (progress is None and not sys.stderr.isatty())
        batches = iter_batches(paths, fmt=fmt, chunk_size=chunk_size, trust_pickle=trust_pickle)
        with (
            tqdm(total=total, unit="seq", disable=quiet, leave=False, desc="evaluate") as bar,
            closing(_prefetch(batches) if prefetch else batches) as stream,  # stops the thread
        ):
            first: Batch | None = None
            for batch in stream:
                if first is None:
                    first = batch
                    has_dist = batch.logits is not None or batch.topk is not None
                elif (batch.logits is not None or batch.topk is not None) != has_dist:
                    raise LogFormatError(
                        batch.source,
                        "file",
                        "logits",
                        "distributions are present in some shards and missing in others",
                    )
                st, cols = chunk_stats(
                    batch,
                    thresholds=thresholds,
                    criteria=criteria,
                    ln_delta=ln_delta,
                    ln_eps=ln_eps,
                    float64=float64,
                )
                stats = stats.merge(st)
                sink.write(batch, cols)
                bar.update(len(batch))
        if stats.n_sequences == 0:
            raise LogFormatError(paths[0], "file", None, "no sequences")
        report = build_report(
            stats,
            thresholds=thresholds,
            n_buckets=n_buckets,
            ln_delta=ln_delta,
            ln_eps=ln_eps,
            inputs=[str(p) for p in paths],
        )
        text = json.dumps(to_jsonable(report), indent=1) + "\n"
        fig_paths: list[Path] = []
        with tempfile.TemporaryDirectory(dir=out, prefix=".figures.") as tmp:
            if figures:
                from trm_bounds.plot.evaluate import draw_report_figures

                drawn = draw_report_figures(json.loads(text), tmp)
                for p in drawn:  # rename into place only once every figure is drawn
                    os.replace(p, out / p.name)
                fig_paths = [out / p.name for p in drawn]
        atomic_write_text(out / "report.md", report_markdown(report, fig_paths))
        sink.commit(out / "sequences.csv")
        atomic_write_text(out / "report.json", text)
    except BaseException:
        sink.discard()
        raise
    return report


def _parse_threshold(text: str) -> tuple[str, float]:
    from trm_bounds.masking import DEFAULT_THRESHOLDS

    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--threshold expects NAME=VALUE, got {text!r}")
    for p in name.split(","):
        if p not in DEFAULT_THRESHOLDS:
            raise argparse.ArgumentTypeError(
                f"unknown criterion {p!r} in --threshold (known: {', '.join(DEFAULT_THRESHOLDS)})"
            )
    try:
        v = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threshold {name}: {value!r} is not a number") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"--threshold {name}: must be finite and >= 0")
    return name, v


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m trm_bounds.evaluate",
        description="Evaluate logged trainer/rollout logprobs: TRM criteria, metrics, bounds.",
    )
    p.add_argument("dump", nargs="*", help="files, directories or globs (one dataset)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--demo", action="store_true", help="evaluate the shipped demo dump")
    p.add_argument("--format", default="auto", choices=FORMATS, dest="fmt")
    p.add_argument(
        "--threshold",
        action="append",
        type=_parse_threshold,
        default=[],
        metavar="NAME=VALUE",
        help="override a criterion threshold (repeatable)",
    )
    p.add_argument(
        "--criterion",
        action="append",
        default=None,
        dest="criteria",
        metavar="NAME",
        help="evaluate only these criteria (repeatable; default: all applicable)",
    )
    p.add_argument("--ln-delta", type=float, default=0.05, help="LN-TRM per-token KL tolerance")
    p.add_argument("--ln-eps", type=float, default=None, help="LN-TRM TV tolerance (coupling)")
    p.add_argument("--chunk-size", type=int, default=4096, help="sequences per chunk")
    p.add_argument("--buckets", type=int, default=4, help="length quantile buckets")
    p.add_argument("--trust-pickle", action="store_true", help="allow arbitrary unpickling")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument(
        "--float64",
        action="store_true",
        help="float64 arithmetic for float32 dumps (default: the dump's own precision)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (0 ok, 2 bad input or usage)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as err:
        return int(err.code or 0)
    dumps = list(args.dump)
    if args.demo:
        demo = demo_dump_path()
        rel = os.path.relpath(demo)  # machine-independent in reports when run from the repo
        dumps.append(demo.as_posix() if rel.startswith("..") else rel)
    if not dumps:
        parser.print_usage(sys.stderr)
        print("error: give a DUMP or --demo", file=sys.stderr)
        return 2
    if args.ln_delta <= 0 or (args.ln_eps is not None and args.ln_eps <= 0):
        print("error: --ln-delta and --ln-eps must be positive", file=sys.stderr)
        return 2
    criteria = args.criteria
    from trm_bounds.masking import DEFAULT_THRESHOLDS

    for c in criteria or ():
        if not all(p in DEFAULT_THRESHOLDS for p in c.split(",")):
            print(f"error: unknown criterion {c!r} in --criterion", file=sys.stderr)
            return 2
    if args.chunk_size < 1 or args.buckets < 1:
        print("error: --chunk-size and --buckets must be positive", file=sys.stderr)
        return 2
    try:
        report = evaluate(
            dumps,
            args.out,
            fmt=args.fmt,
            thresholds=dict(args.threshold),
            criteria=criteria,
            ln_delta=args.ln_delta,
            ln_eps=args.ln_eps,
            chunk_size=args.chunk_size,
            trust_pickle=args.trust_pickle,
            n_buckets=args.buckets,
            figures=not args.no_figures,
            progress=False if args.quiet else None,
            float64=args.float64,
        )
    except LogFormatError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(
        f"{report['n_sequences']} sequences, {report['n_tokens']} tokens -> "
        f"{Path(args.out) / 'report.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
