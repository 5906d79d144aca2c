r"""Trust Region Masking as a drop-in torch API (THEORY.md section 6).

Per sequence ``i`` with valid tokens ``t = 1..T_i`` (the positions where ``response_mask``
is true, counted in order) and sampled-token log-ratio

.. math:: r_t = \log\pi_\theta(y_t|c_t) - \log\pi_{roll}(y_t|c_t),\qquad \rho_t = e^{r_t},

:func:`sequence_stats` computes, without any Python loop over tokens or sequences,

- ``k2_max = max_t r_t^2 / 2`` (TRM-Max statistic, estimator ``k2``),
- ``k3_mean = mean_t (e^{r_t} - 1 - r_t)`` (TRM-Avg statistic, estimator ``k3``, unbiased
  for KL(roll || theta) in nats), ``k3_sum``,
- ``ser = mean_t |rho_t - 1|`` (SER),
- ``ln_trm = W / Z(T_i)``, ``W = sum_t |rho_t - 1| w_t``, ``Z(T_i) = sum_t w_t`` with
  ``w_t = min(1, sqrt((T_i - t) delta / 2))`` (KL route, the paper's appendix) and, when
  ``ln_eps`` is given, also ``min(.., (T_i - t) eps)`` (coupling route),
- ``log_ppl_diff = mean_t r_t`` (signed; the paper's log-PPL gap is its absolute value),
- ``kl_max = max_t KL(c_t)`` when exact per-token KL values are supplied.

:func:`decide` turns them into accept/reject decisions (True = accepted) with verl's criterion
names; :func:`sequence_mask` does both and returns batch metrics; :func:`masked_loss` applies
the mask with the normalisation by the total batch size ``N`` that THEORY.md section 6
prescribes. :func:`exact_token_kl` / :func:`exact_token_tv` compute exact per-position
divergences from full logits with the vocabulary processed in chunks, and
:func:`topk_divergence_bounds` gives guaranteed bounds from top-k logprobs.

Conventions:

- Padded (masked) positions are never read into a result: their values may be garbage,
  NaN or ``-inf``; no output is NaN or infinite because of them.
- A trainer logprob of ``-inf`` on a valid token is valid: ``rho = 0``, ``|rho - 1| = 1``,
  ``k2 = k3 = +inf``, so the max and mean criteria reject the sequence.
- A sequence with no valid token has every statistic 0 and is accepted by every criterion.
- Statistics are computed in the floating dtype of the inputs promoted to at least float32
  (float32 logprobs give float32 statistics, like the trainers that produce them; pass float64
  tensors for float64 statistics). In float32, ``k3 = expm1(r) - r`` has an absolute error of
  about ``1e-7 |r|`` per token, far below the float32 rounding of the logprobs themselves
  (``~6e-8 |log pi|``) as it propagates into ``r``.
- A rollout logprob of ``-inf`` on a valid token is invalid input (a sampled token has positive
  probability under its sampler): ``r = +inf`` gives infinite or NaN statistics, which every
  criterion rejects. Validate inputs upstream (``trm_bounds.logs`` does).
- ``fused=True`` runs the per-token pass through ``torch.compile`` (one loop that reads the
  inputs once); it falls back to the eager path with a warning where compilation fails.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily inside the functions
    import torch

__all__ = [
    "DEFAULT_THRESHOLDS",
    "CRITERIA",
    "STAT_OF_CRITERION",
    "sequence_stats",
    "decide",
    "sequence_mask",
    "batch_metrics",
    "masked_loss",
    "ln_trm_weights",
    "exact_token_kl",
    "exact_token_tv",
    "exact_token_divergences",
    "topk_divergence_bounds",
]

#: The paper's default thresholds (THEORY.md section 6; issue 5): 0.05 for the max criteria,
#: 0.001 for ``seq_mean_k3``, 0.05 for SER and LN-TRM.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "seq_max_k2": 0.05,
    "seq_mean_k3": 0.001,
    "ser": 0.05,
    "ln_trm": 0.05,
    "seq_max_kl": 0.05,
}

#: Criterion names, verl's grammar; a comma joins criteria that must all accept.
CRITERIA: tuple[str, ...] = (
    "seq_max_k2",
    "seq_mean_k3",
    "seq_max_k2,seq_mean_k3",
    "ser",
    "ln_trm",
    "seq_max_kl",
)

#: The statistic of :func:`sequence_stats` each basic criterion compares with its threshold.
STAT_OF_CRITERION: dict[str, str] = {
    "seq_max_k2": "k2_max",
    "seq_mean_k3": "k3_mean",
    "ser": "ser",
    "ln_trm": "ln_trm",
    "seq_max_kl": "kl_max",
}

#: Elements per row block on CPU: 2**18 (1 MiB in float32) keeps the two block buffers in the
#: L2 cache across the passes of :func:`_row_sums` (measured 1.4x faster than 2**22 blocks,
#: ``experiments/bench_evaluate.py``) while the per-block Python overhead stays below 5%.
_CPU_BLOCK_ELEMENTS = 1 << 18


def _torch():
    import torch

    return torch


def _as_tensor(x: Any, device: Any = None) -> torch.Tensor:
    """A torch tensor view of ``x`` (numpy arrays are wrapped without a copy)."""
    torch = _torch()
    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device)
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    else:
        t = torch.as_tensor(np.asarray(x))
    return t if device is None else t.to(device)


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    torch = _torch()
    dt = torch.float32
    for t in tensors:
        if t.is_floating_point():
            dt = torch.promote_types(dt, t.dtype)
    return dt


def ln_trm_weights(n: int, ln_delta: float, ln_eps: float | None = None) -> np.ndarray:
    r"""LN-TRM weights ``w(k)`` for ``k = T_i - t = 0..n-1`` (THEORY.md section 6), float64.

    .. math:: w(k) = \min\!\big(1,\ \sqrt{k\,\delta/2}\big)
              \quad[\text{and } \min(\cdot,\ k\,\epsilon) \text{ if } \epsilon \text{ given}]

    ``k`` is the number of valid tokens after position ``t``; the last token has weight 0.

    >>> ln_trm_weights(4, 0.5).round(6).tolist()
    [0.0, 0.5, 0.707107, 0.866025]
    """
    if not ln_delta > 0:
        raise ValueError(f"ln_delta must be positive, got {ln_delta}")
    k = np.arange(n, dtype=np.float64)
    w = np.minimum(1.0, np.sqrt(k * (ln_delta / 2.0)))
    if ln_eps is not None:
        if not ln_eps > 0:
            raise ValueError(f"ln_eps must be positive, got {ln_eps}")
        w = np.minimum(w, k * ln_eps)
    return w


def _ln_window(ln_delta: float, ln_eps: float | None) -> int:
    """Smallest ``K`` with ``w(k) = 1`` for every ``k >= K`` (``w`` is non-decreasing)."""
    k0 = math.ceil(2.0 / ln_delta)
    if ln_eps is not None:
        k0 = max(k0, math.ceil(1.0 / ln_eps))
    w = ln_trm_weights(k0 + 3, ln_delta, ln_eps)
    return int(np.argmax(w >= 1.0))


def _row_sums(
    lp: torch.Tensor,
    rlp: torch.Tensor,
    invalid: torch.Tensor | None,
    dtype: torch.dtype,
    pos_sum: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-row (k2_max, sum r, sum k3, sum |rho - 1|) of one row block, eager, in place.

    One pass per operation over a block-sized buffer pair (``r``, then ``e = rho - 1``; both
    stay in the L2 cache at the default block size), no other temporaries; ``k3`` overwrites
    ``r``. ``invalid`` is the bool complement of the mask; None means every cell is valid
    (no masking pass). When ``pos_sum``
    (``(T,)`` float64) is given, the column sums of ``|rho - 1|`` are added to it in float64.
    """
    torch = _torch()
    r = torch.sub(lp.to(dtype), rlp.to(dtype))  # (b, T) log-ratio
    if invalid is not None:  # padding: r = 0 gives k2 = k3 = |rho - 1| = 0
        if r.device.type == "cpu":  # numpy's masked copy is 3-4x faster than masked_fill_
            np.copyto(r.numpy(), 0.0, where=invalid.numpy())
        else:
            r.masked_fill_(invalid, 0.0)
    amax = torch.maximum(r.amax(dim=1), r.amin(dim=1).neg_())  # (b,) max |r|
    k2_max = 0.5 * amax * amax
    r_sum = r.sum(dim=1)
    e = _expm1(r)  # (b, T) rho - 1
    k3_sum = torch.sub(e, r, out=r).sum(dim=1)  # k3 = rho - 1 - r, into r's buffer
    e.abs_()  # |rho - 1|
    ser_sum = e.sum(dim=1)
    if pos_sum is not None:
        if e.device.type == "cpu":  # numpy accumulates float32 in float64 without a copy
            pos_sum += torch.from_numpy(np.add.reduce(e.numpy(), axis=0, dtype=np.float64))
        else:
            pos_sum += e.sum(dim=0, dtype=torch.float64)
    return k2_max, r_sum, k3_sum, ser_sum


def _valid_length_prefix(m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(valid, length, prefix)``: bool mask, ``(B,)`` int64 counts, whether every row's
    valid cells are a prefix. On CPU through numpy (5-10x faster than torch on bool data)."""
    torch = _torch()
    if m.device.type == "cpu" and not m.requires_grad and m.dtype != torch.bfloat16:
        mn = m.numpy()
        vn = mn if mn.dtype == np.bool_ else mn != 0
        length = torch.from_numpy(np.count_nonzero(vn, axis=1).astype(np.int64, copy=False))
        prefix = vn.shape[1] < 2 or not np.any(vn[:, 1:] > vn[:, :-1])
        return torch.from_numpy(vn), length, bool(prefix)
    valid = m if m.dtype == torch.bool else m != 0
    length = valid.sum(dim=1)
    prefix = bool(torch.all(valid[:, 1:] <= valid[:, :-1])) if m.shape[1] > 1 else True
    return valid, length, prefix


def _expm1(r: torch.Tensor) -> torch.Tensor:
    """``expm1`` into a new tensor; on CPU through numpy's SIMD loop (2-3x faster than torch's)."""
    torch = _torch()
    if r.device.type == "cpu" and not r.requires_grad and r.is_contiguous():
        e = torch.empty_like(r)
        with np.errstate(over="ignore", invalid="ignore"):  # r > 88 (float32): inf, as torch
            np.expm1(r.numpy(), out=e.numpy())
        return e
    return torch.expm1(r)


def _row_sums_expr(
    lp: torch.Tensor, rlp: torch.Tensor, m: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, ...]:
    """All per-row reductions as one pure expression (for ``torch.compile``, one fused loop).

    Returns (length, sum_j j*valid_j, k2_max, sum r, sum k3, sum |rho - 1|); the second gives
    the prefix test ``sum_j j valid_j = T_i (T_i - 1) / 2`` (true iff the valid columns are
    exactly ``0..T_i-1``, the smallest sum of ``T_i`` distinct non-negative integers).
    """
    torch = _torch()
    valid = m != 0
    j = torch.arange(m.shape[1], device=m.device)
    r = torch.where(valid, lp.to(dtype) - rlp.to(dtype), 0.0)  # (B, T)
    e = torch.expm1(r)
    k2_max = 0.5 * (r * r).amax(dim=1)
    length = valid.sum(dim=1)
    possum = torch.where(valid, j, 0).sum(dim=1)
    return length, possum, k2_max, r.sum(dim=1), (e - r).sum(dim=1), e.abs().sum(dim=1)


_FUSED: dict[str, Any] = {}


def _fused_row_sums():
    """``torch.compile`` of :func:`_row_sums_expr` (one fused loop: inputs read once)."""
    if "fn" not in _FUSED:
        _FUSED["fn"] = _torch().compile(_row_sums_expr, dynamic=None)
    return _FUSED["fn"]


def _ln_w(
    lp: torch.Tensor,
    rlp: torch.Tensor,
    m: torch.Tensor,
    length: torch.Tensor,
    ser_sum: torch.Tensor,
    prefix: bool,
    w_tail: torch.Tensor,
    dtype: torch.dtype,
) -> torch.Tensor:
    """``W_i = sum_t |rho_t - 1| w(T_i - t)`` given ``ser_sum = sum_t |rho_t - 1|``.

    ``w(k) = 1`` for ``k >= K`` (``K = len(w_tail)``), so only the last ``K`` valid tokens of
    each sequence need their weight: ``W = (ser_sum - sum_win |rho - 1|) + sum_win |rho - 1| w``.
    """
    torch = _torch()
    K = w_tail.numel()
    if prefix:
        # valid tokens are columns 0..T_i-1; the token with k valid tokens after it is T_i-1-k
        k = torch.arange(K, device=lp.device)
        col = length.unsqueeze(1) - 1 - k  # (B, K)
        inwin = col >= 0
        col = col.clamp_(min=0)
        r_win = lp.gather(1, col).to(dtype) - rlp.gather(1, col).to(dtype)  # (B, K)
        e_win = torch.where(inwin, torch.expm1(r_win).abs_(), 0.0)
        head = torch.where(length <= K, torch.zeros_like(ser_sum), ser_sum - e_win.sum(dim=1))
        return head + e_win @ w_tail
    # general mask: k = T_i - t from a cumulative count
    valid = m if m.dtype == torch.bool else m != 0
    after = length.unsqueeze(1) - valid.cumsum(dim=1)  # (B, T) valid tokens after t
    table = torch.cat([w_tail, w_tail.new_ones(1)])  # w(k) for k = 0..K (K stands for >= K)
    w = table[after.clamp_(min=0, max=K)]  # (B, T)
    r = torch.where(valid, lp.to(dtype) - rlp.to(dtype), 0.0)
    return (torch.expm1(r).abs_() * w).sum(dim=1)


def sequence_stats(
    log_probs: Any,
    rollout_log_probs: Any,
    response_mask: Any,
    *,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    token_kl: Any = None,
    block_elements: int | None = None,
    fused: bool = False,
    position_sums: bool = False,
    padding_is_zero: bool = False,
) -> dict[str, torch.Tensor]:
    r"""Per-sequence TRM statistics from sampled-token logprobs (THEORY.md section 6).

    With ``r_t = log_probs - rollout_log_probs`` (theta minus roll) on the valid tokens
    ``t = 1..T_i`` of sequence ``i``:

    .. math::

        \mathrm{k2\_max}_i = \max_t r_t^2/2,\qquad
        \mathrm{k3\_mean}_i = \tfrac{1}{T_i}\sum_t (e^{r_t} - 1 - r_t),\qquad
        \mathrm{ser}_i = \tfrac{1}{T_i}\sum_t |e^{r_t} - 1|,

        \mathrm{ln\_trm}_i = \frac{\sum_t |e^{r_t}-1|\,w_t}{\sum_t w_t},\quad
        w_t = \min\!\big(1, \sqrt{(T_i - t)\,\delta/2}\,[, (T_i-t)\,\epsilon]\big),\qquad
        \mathrm{log\_ppl\_diff}_i = \tfrac{1}{T_i}\sum_t r_t .

    ``ln_trm`` is 0 when ``Z = sum_t w_t = 0`` (sequences of one token). Sequences with
    ``T_i = 0`` get every statistic 0.

    Args:
        log_probs: ``(B, T)`` trainer logprobs ``log pi_theta(y_t)`` (torch or numpy).
        rollout_log_probs: ``(B, T)`` rollout logprobs ``log pi_roll(y_t)``.
        response_mask: ``(B, T)`` valid-token mask (bool, or numeric with non-zero = valid).
        ln_delta: LN-TRM per-token KL tolerance ``delta`` (KL route).
        ln_eps: optional LN-TRM TV tolerance ``eps`` (adds the coupling route).
        token_kl: optional ``(B, T)`` exact per-token KL(roll || theta); adds ``kl_max``.
        block_elements: rows are processed in blocks of about this many elements
            (default: ``2**22`` on CPU to bound temporaries, everything at once on GPU).
        fused: compute the per-token part with ``torch.compile`` (one fused loop that reads
            the inputs once; several times faster on CPU, but the first call compiles, which
            takes from seconds to a minute and needs a C++ compiler on CPU). Same values up to
            summation order.
        position_sums: also return ``pos_abs_dev_sum``, the ``(T,)`` float64 column sums
            ``sum_i |rho_{i,t} - 1|`` over valid cells (with prefix masks, ``t`` is the token
            position; half of it over the number of sequences reaching ``t`` is the
            ``Dbar_t`` estimate of THEORY.md section 6). Computed in the same pass as the
            other statistics (eager path; ``fused`` is ignored when this is set).
        padding_is_zero: the caller guarantees that both logprob tensors hold 0 at every
            invalid cell (so ``r = 0`` there already), which skips the masking pass (the
            canonical batches of :mod:`trm_bounds.logs` say so in ``Batch.zero_padding``).
            Garbage padding with this flag set gives wrong statistics.

    Returns:
        dict of ``(B,)`` tensors: ``length`` (int64), ``k2_max``, ``k3_mean``, ``k3_sum``,
        ``ser``, ``ln_trm``, ``log_ppl_diff``; with ``token_kl``, ``kl_max``; with
        ``position_sums``, ``pos_abs_dev_sum`` of shape ``(T,)``.

    >>> import torch
    >>> s = sequence_stats(torch.tensor([[-1.0, -2.0, 0.0]]), torch.tensor([[-1.0, -2.1, 5.0]]),
    ...                    torch.tensor([[1, 1, 0]]))
    >>> round(float(s["k2_max"][0]), 6), int(s["length"][0])
    (0.005, 2)
    """
    torch = _torch()
    lp = _as_tensor(log_probs).detach()
    rlp = _as_tensor(rollout_log_probs, lp.device).detach()
    m = _as_tensor(response_mask, lp.device).detach()
    if lp.ndim != 2 or lp.shape != rlp.shape or lp.shape != m.shape:
        raise ValueError(
            "log_probs, rollout_log_probs and response_mask must share one (B, T) shape, got "
            f"{tuple(lp.shape)}, {tuple(rlp.shape)}, {tuple(m.shape)}"
        )
    dtype = _compute_dtype(lp, rlp)
    B, T = lp.shape
    dev = lp.device
    # weights w(k), k >= T, are never used: a window longer than T is the whole sequence
    K = min(_ln_window(ln_delta, ln_eps), max(T, 1))
    w_tail = torch.as_tensor(ln_trm_weights(K, ln_delta, ln_eps), dtype=dtype, device=dev)
    T0 = T
    if T == 0:
        lp = lp.new_zeros((B, 1), dtype=dtype)
        rlp, m, T = lp, torch.zeros((B, 1), dtype=torch.bool, device=dev), 1
    pos_acc = torch.zeros(T, dtype=torch.float64, device=dev) if position_sums else None
    if position_sums:
        fused = False
    if fused and "failed" not in _FUSED:
        try:
            length, possum, k2_max, r_sum, k3_sum, ser_sum = _fused_row_sums()(lp, rlp, m, dtype)
        except Exception as err:  # no C++ compiler, unsupported platform: stay eager
            _FUSED["failed"] = repr(err)
            warnings.warn(f"fused=True unavailable, using eager ({err!r:.200})", stacklevel=2)
            fused = False
        else:
            prefix = bool(torch.all(possum == length * (length - 1) // 2))
    else:
        fused = False
    if not fused:
        valid, length, prefix = _valid_length_prefix(m)  # (B, T) bool, (B,) int64
        # zero padding, or prefix rows of full length T: no masking pass needed
        no_pad = padding_is_zero or (prefix and bool((length == T).all()))
        if no_pad:
            mask_arg = None
        elif dev.type == "cpu":
            mask_arg = torch.from_numpy(~valid.numpy())  # (B, T) invalid cells
        else:
            mask_arg = ~valid
        if block_elements is None:
            block_elements = _CPU_BLOCK_ELEMENTS if dev.type == "cpu" else B * max(T, 1)
        rows = max(1, block_elements // max(T, 1))
        if rows >= B:
            k2_max, r_sum, k3_sum, ser_sum = _row_sums(lp, rlp, mask_arg, dtype, pos_acc)
        else:
            k2_max, r_sum, k3_sum, ser_sum = (
                torch.empty(B, dtype=dtype, device=dev) for _ in range(4)
            )
            for s in range(0, B, rows):
                sl = slice(s, min(B, s + rows))
                v = None if mask_arg is None else mask_arg[sl]
                out = _row_sums(lp[sl], rlp[sl], v, dtype, pos_acc)
                k2_max[sl], r_sum[sl], k3_sum[sl], ser_sum[sl] = out
    W = _ln_w(lp, rlp, m, length, ser_sum, prefix, w_tail, dtype)
    # Z(T_i) = sum_{k < T_i} w(k) = Zc[min(T_i, K)] + max(T_i - K, 0)
    zc = np.concatenate([[0.0], np.cumsum(ln_trm_weights(K, ln_delta, ln_eps))])
    zc_t = torch.as_tensor(zc, dtype=torch.float64, device=dev)
    Z = zc_t[length.clamp(max=K)] + (length - K).clamp(min=0)
    Z = Z.to(dtype)
    denom = length.clamp(min=1).to(dtype)
    stats = {
        "length": length,
        "k2_max": k2_max,
        "k3_mean": k3_sum / denom,
        "k3_sum": k3_sum,
        "ser": ser_sum / denom,
        "ln_trm": torch.where(
            Z > 0, W / Z.clamp(min=1e-300 if dtype == torch.float64 else 1e-30), 0.0
        ),
        "log_ppl_diff": r_sum / denom,
    }
    if token_kl is not None:
        kl = _as_tensor(token_kl, dev)
        if kl.shape != lp.shape:
            raise ValueError(f"token_kl must have shape {tuple(lp.shape)}, got {tuple(kl.shape)}")
        valid = m if m.dtype == torch.bool else m != 0
        kl = kl.to(torch.promote_types(dtype, kl.dtype)).masked_fill(~valid, 0.0)
        stats["kl_max"] = kl.amax(dim=1) if T > 0 else torch.zeros(B, dtype=kl.dtype, device=dev)
    if pos_acc is not None:
        stats["pos_abs_dev_sum"] = pos_acc[:T0]
    return stats


def _criterion_parts(name: str) -> list[str]:
    parts = [p.strip() for p in name.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"empty criterion name {name!r}")
    for p in parts:
        if p not in STAT_OF_CRITERION:
            raise ValueError(
                f"unknown criterion {p!r} in {name!r}; known: {sorted(STAT_OF_CRITERION)}"
            )
    return parts


def decide(
    stats: Mapping[str, torch.Tensor],
    thresholds: Mapping[str, float] | None = None,
    criteria: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    r"""Accept/reject decisions per criterion (THEORY.md section 6); True = accepted.

    A basic criterion accepts sequence ``i`` iff its statistic is at most the threshold:
    ``seq_max_k2``: ``max_t r_t^2/2 <= delta``; ``seq_mean_k3``: ``mean_t k3 <= delta_avg``;
    ``ser``: ``mean_t |rho_t - 1| <= delta_SER``; ``ln_trm``: ``W/Z <= delta_W``;
    ``seq_max_kl``: ``max_t KL(c_t) <= delta``. A comma-joined name (verl's grammar, e.g.
    ``"seq_max_k2,seq_mean_k3"``) accepts iff every part accepts, each with its own threshold.
    A NaN statistic is rejected.

    Args:
        stats: output of :func:`sequence_stats`.
        thresholds: overrides of :data:`DEFAULT_THRESHOLDS` by basic criterion name.
        criteria: names to decide; default every name of :data:`CRITERIA` whose statistics
            are present (``seq_max_kl`` needs ``kl_max``).

    Returns:
        ``{name: (B,) bool tensor}``.

    >>> import torch
    >>> d = decide({"k2_max": torch.tensor([0.01, 0.2]), "k3_mean": torch.tensor([0.0, 0.0])},
    ...            criteria=["seq_max_k2", "seq_max_k2,seq_mean_k3"])
    >>> d["seq_max_k2"].tolist(), d["seq_max_k2,seq_mean_k3"].tolist()
    ([True, False], [True, False])
    """
    th = dict(DEFAULT_THRESHOLDS)
    if thresholds:
        for k, v in thresholds.items():
            for p in _criterion_parts(k):
                th[p] = float(v)
    if criteria is None:
        criteria = [c for c in CRITERIA if all(STAT_OF_CRITERION[p] in stats for p in c.split(","))]
    out: dict[str, torch.Tensor] = {}
    cache: dict[str, torch.Tensor] = {}
    for name in criteria:
        acc = None
        for p in _criterion_parts(name):
            if p not in cache:
                key = STAT_OF_CRITERION[p]
                if key not in stats:
                    raise ValueError(f"criterion {p!r} needs statistic {key!r}, not in stats")
                cache[p] = stats[key] <= th[p]
            acc = cache[p] if acc is None else acc & cache[p]
        out[name] = acc
    return out


def sequence_mask(
    log_probs: Any,
    rollout_log_probs: Any,
    response_mask: Any,
    criteria: Sequence[str] | str = ("seq_max_k2",),
    thresholds: Mapping[str, float] | None = None,
    *,
    ln_delta: float = 0.05,
    ln_eps: float | None = None,
    token_kl: Any = None,
    fused: bool = False,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""The TRM sequence mask for a trainer batch (THEORY.md section 6).

    ``mask_i`` is the AND of the requested criteria (see :func:`decide`); multiply the loss of
    sequence ``i`` by it and normalise by the total batch size (:func:`masked_loss`).
    Keyword arguments are those of :func:`sequence_stats`.

    Returns:
        ``(mask, metrics)``: ``mask`` a ``(B,)`` bool tensor on the inputs' device (True =
        kept); ``metrics`` plain floats: ``acceptance_rate/<criterion>`` per requested
        criterion, ``acceptance_rate`` of the mask, and the batch metrics of the report
        contract: ``log_ppl_abs_diff = mean_i |mean_t r_t|`` and ``ser_mean = mean_i ser_i``
        (over sequences with at least one valid token), ``k3_mean`` (token mean of
        ``e^r - 1 - r``), ``k2_max`` (batch maximum of ``r^2/2``), ``n_sequences``,
        ``n_tokens``.

    >>> import torch
    >>> lp = torch.tensor([[-1.0, -1.0], [-1.0, -3.0]])
    >>> mask, met = sequence_mask(lp, torch.full((2, 2), -1.0), torch.ones(2, 2))
    >>> mask.tolist(), met["acceptance_rate"]
    ([True, False], 0.5)
    """
    if isinstance(criteria, str):
        criteria = [criteria]
    stats = sequence_stats(
        log_probs,
        rollout_log_probs,
        response_mask,
        ln_delta=ln_delta,
        ln_eps=ln_eps,
        token_kl=token_kl,
        fused=fused,
    )
    dec = decide(stats, thresholds, criteria)
    mask = None
    for v in dec.values():
        mask = v if mask is None else mask & v
    if mask is None:
        mask = stats["length"] >= 0
    metrics = batch_metrics(stats)
    for name, v in dec.items():
        metrics[f"acceptance_rate/{name}"] = float(v.float().mean()) if v.numel() else 1.0
    metrics["acceptance_rate"] = float(mask.float().mean()) if mask.numel() else 1.0
    return mask, metrics


def batch_metrics(stats: Mapping[str, torch.Tensor]) -> dict[str, float]:
    r"""Batch metrics of the report contract from :func:`sequence_stats` output.

    ``log_ppl_abs_diff = mean_i |mean_t r_t|`` and ``ser_mean = mean_i mean_t |rho_t - 1|``
    over sequences with ``T_i > 0``; ``k3_mean = sum_i k3_sum_i / sum_i T_i`` (token mean);
    ``k2_max = max_i k2_max_i``; ``n_sequences``; ``n_tokens = sum_i T_i``. Empty input gives 0.
    """
    length = stats["length"]
    nonempty = length > 0
    n_ne = int(nonempty.sum())
    n_tok = int(length.sum())
    f = float
    return {
        "n_sequences": int(length.numel()),
        "n_tokens": n_tok,
        "log_ppl_abs_diff": f(stats["log_ppl_diff"].abs()[nonempty].double().sum()) / n_ne
        if n_ne
        else 0.0,
        "k3_mean": f(stats["k3_sum"].double().sum()) / n_tok if n_tok else 0.0,
        "k2_max": f(stats["k2_max"].max()) if length.numel() else 0.0,
        "ser_mean": f(stats["ser"][nonempty].double().sum()) / n_ne if n_ne else 0.0,
    }


def masked_loss(
    per_token_loss: torch.Tensor,
    seq_mask: torch.Tensor,
    response_mask: torch.Tensor,
    *,
    total: int | None = None,
) -> torch.Tensor:
    r"""The TRM masked loss, normalised by the total batch size (THEORY.md section 6).

    .. math:: \mathcal{L} = \frac{1}{N}\sum_{i=1}^{B} M_i\,
              \frac{1}{\max(T_i,1)}\sum_{t:\,m_{it}} \ell_{it}

    with ``M_i`` the sequence mask, ``m_{it}`` the response mask, ``T_i = sum_t m_{it}``, and
    ``N = B`` (or ``total``, e.g. the global batch size under gradient accumulation): rejected
    sequences count in ``N`` but contribute nothing, so masking never rescales the accepted
    sequences' gradients. The selection uses ``torch.where``, so NaN or infinite losses at
    masked entries never reach the value or the gradient (their gradient is exactly 0; an
    upstream op whose own derivative is infinite at garbage inputs can still make NaN, so feed
    finite values to such ops).

    >>> import torch
    >>> l = torch.tensor([[1.0, 3.0], [5.0, float("nan")]])
    >>> float(masked_loss(l, torch.tensor([True, True]), torch.tensor([[1, 1], [1, 0]])))
    3.5
    """
    torch = _torch()
    valid = response_mask if response_mask.dtype == torch.bool else response_mask != 0
    keep = valid & seq_mask.to(torch.bool).unsqueeze(-1)  # (B, T)
    zero = torch.zeros((), dtype=per_token_loss.dtype, device=per_token_loss.device)
    picked = torch.where(keep, per_token_loss, zero)  # (B, T)
    length = valid.sum(dim=-1).clamp(min=1).to(per_token_loss.dtype)  # (B,)
    n = per_token_loss.shape[0] if total is None else int(total)
    if n <= 0:
        raise ValueError(f"total batch size must be positive, got {n}")
    return (picked.sum(dim=-1) / length).sum() / n


# ---------------------------------------------------------------------------------------------
# Exact per-position divergences from full logits (THEORY.md section 3)


def exact_token_divergences(
    logits_theta: Any,
    logits_roll: Any,
    mask: Any = None,
    *,
    chunk_size: int = 8192,
    max_block_elements: int = 1 << 22,
    compute_dtype: Any = None,
) -> dict[str, torch.Tensor]:
    r"""Exact per-position KL(roll || theta) and TV from full logits (THEORY.md section 3).

    .. math::

        \mathrm{KL}(c) = \sum_v p_v\,(e^{d_v} - 1 - d_v),\quad
        d_v = \log q_v - \log p_v,\qquad
        \mathrm{TV}(c) = \tfrac12\sum_v |q_v - p_v|,

    ``p = softmax(logits_roll)``, ``q = softmax(logits_theta)`` (forward KL, rollout first,
    nats; the stable form of THEORY.md section 3, whose added ``q - p`` terms sum to zero).
    Log-softmax is done in two passes over vocabulary chunks of ``chunk_size``: first the
    per-chunk log-sum-exp, combined stably, then the terms per chunk; rows are taken in blocks
    so that a temporary never exceeds ``max_block_elements`` elements. Peak extra memory is
    therefore ``O(max_block_elements)`` whatever ``V`` (e.g. 150k) is.

    Precision: each chunk is converted to ``compute_dtype`` — float64 by default on CPU
    (agrees with a direct float64 computation to about 1e-15 relative), float32 on GPU
    (relative error about 1e-6: the stable form is insensitive to first order to the
    normalisation error of the log-softmax).

    Args:
        logits_theta, logits_roll: ``(..., V)`` logits (or logprobs) of theta and roll.
        mask: optional ``(...)`` valid mask; masked positions get 0.

    Returns:
        ``{"kl": (...), "tv": (...)}`` in ``compute_dtype``.
    """
    torch = _torch()
    xt = _as_tensor(logits_theta)
    xr = _as_tensor(logits_roll, xt.device)
    if xt.shape != xr.shape or xt.ndim < 1:
        raise ValueError(f"logits shapes differ: {tuple(xt.shape)} vs {tuple(xr.shape)}")
    dev = xt.device
    if compute_dtype is None:
        compute_dtype = torch.float64 if dev.type == "cpu" else torch.float32
    lead = xt.shape[:-1]
    V = xt.shape[-1]
    xt2 = xt.reshape(-1, V)
    xr2 = xr.reshape(-1, V)
    n = xt2.shape[0]
    kl = torch.zeros(n, dtype=compute_dtype, device=dev)
    tv = torch.zeros(n, dtype=compute_dtype, device=dev)
    C = max(1, min(int(chunk_size), V))
    rows = max(1, int(max_block_elements) // C)
    for r0 in range(0, n, rows):
        rs = slice(r0, min(n, r0 + rows))
        # pass 1: log-sum-exp per chunk, combined
        lse_t = []
        lse_r = []
        for c0 in range(0, V, C):
            lse_t.append(torch.logsumexp(xt2[rs, c0 : c0 + C].to(compute_dtype), dim=-1))
            lse_r.append(torch.logsumexp(xr2[rs, c0 : c0 + C].to(compute_dtype), dim=-1))
        zt = torch.logsumexp(torch.stack(lse_t, dim=-1), dim=-1, keepdim=True)  # (rows, 1)
        zr = torch.logsumexp(torch.stack(lse_r, dim=-1), dim=-1, keepdim=True)
        # pass 2: the terms per chunk
        for c0 in range(0, V, C):
            lq = xt2[rs, c0 : c0 + C].to(compute_dtype) - zt  # (rows, C) log q
            lp = xr2[rs, c0 : c0 + C].to(compute_dtype) - zr  # (rows, C) log p
            p = lp.exp()
            q = lq.exp()
            tv[rs] += (q - p).abs_().sum(dim=-1)
            d = lq.sub_(lp)  # log q - log p (in place)
            term = torch.expm1(d).sub_(d).mul_(p)
            # p = 0: the term is q (limit); p > 0 = q: +inf (already, as expm1(-inf)+inf)
            term = torch.where(p == 0, q, term)
            kl[rs] += term.sum(dim=-1)
    tv *= 0.5
    kl = kl.reshape(lead)
    tv = tv.reshape(lead)
    if mask is not None:
        mk = _as_tensor(mask, dev)
        valid = mk if mk.dtype == torch.bool else mk != 0
        kl = kl.masked_fill(~valid, 0.0)
        tv = tv.masked_fill(~valid, 0.0)
    return {"kl": kl, "tv": tv}


def exact_token_kl(
    logits_theta: Any, logits_roll: Any, mask: Any = None, *, chunk_size: int = 8192, **kw: Any
) -> torch.Tensor:
    r"""Exact per-position forward KL(roll || theta) in nats from full logits, ``(B, T)``.

    ``KL(c) = sum_v p_v (e^{d_v} - 1 - d_v)``, ``d = log q - log p`` (THEORY.md section 3);
    chunked over the vocabulary, see :func:`exact_token_divergences`.

    >>> import torch
    >>> lt = torch.log(torch.tensor([[[0.5, 0.5]]], dtype=torch.float64))
    >>> lr = torch.log(torch.tensor([[[0.9, 0.1]]], dtype=torch.float64))
    >>> round(float(exact_token_kl(lt, lr)[0, 0]), 12)
    0.368064207168
    """
    return exact_token_divergences(logits_theta, logits_roll, mask, chunk_size=chunk_size, **kw)[
        "kl"
    ]


def exact_token_tv(
    logits_theta: Any, logits_roll: Any, mask: Any = None, *, chunk_size: int = 8192, **kw: Any
) -> torch.Tensor:
    r"""Exact per-position TV ``1/2 sum_v |q_v - p_v|`` from full logits (THEORY.md section 3).

    >>> import torch
    >>> lt = torch.log(torch.tensor([[[0.5, 0.5]]], dtype=torch.float64))
    >>> lr = torch.log(torch.tensor([[[0.9, 0.1]]], dtype=torch.float64))
    >>> round(float(exact_token_tv(lt, lr)[0, 0]), 12)
    0.4
    """
    return exact_token_divergences(logits_theta, logits_roll, mask, chunk_size=chunk_size, **kw)[
        "tv"
    ]


# ---------------------------------------------------------------------------------------------
# Guaranteed bounds from top-k logprobs


def _amin_or_inf(x: torch.Tensor) -> torch.Tensor:
    """Minimum over the last axis, ``+inf`` when that axis is empty."""
    torch = _torch()
    if x.shape[-1] == 0:
        return torch.full(x.shape[:-1], math.inf, dtype=x.dtype, device=x.device)
    return x.amin(-1)


def topk_divergence_bounds(
    idx_theta: Any,
    logp_theta: Any,
    idx_roll: Any,
    logp_roll: Any,
    *,
    vocab_size: int | None = None,
    assume_topk: bool = False,
) -> dict[str, torch.Tensor]:
    r"""Guaranteed lower and upper bounds on per-position TV and KL(roll || theta) from top-k.

    At one position let ``p = pi_roll``, ``q = pi_theta`` (full distributions, unknown) and
    ``S_r``, ``S_t`` the index sets whose probabilities are known for roll and theta
    (entries with index ``< 0`` are padding). Split the vocabulary into ``A = S_r & S_t``,
    ``B = S_r - S_t`` (``p`` known, ``q`` not), ``C = S_t - S_r`` (``q`` known, ``p`` not)
    and ``D`` (neither). Tail masses ``m_p = 1 - sum_{S_r} p``, ``m_q = 1 - sum_{S_t} q``
    (clamped at 0). An unknown ``q_v`` lies in ``[0, u_q]`` with ``u_q = m_q``; with
    ``assume_topk=True`` (every unknown probability is at most every known one of the same
    policy, i.e. the known sets are true top-k sets) ``u_q = min(m_q, min_{S_t} q)``; same for
    ``p``. ``P_X``, ``Q_X`` are the known masses on a set ``X``.

    TV, lower: data processing on the partition ``{v}_{v in A}, A^c`` gives
    ``sum_{A^c} |p - q| >= |P_{A^c} - Q_{A^c}| = |Q_A - P_A|``; termwise,
    ``|p_v - q_v| >= (p_v - u_q)_+`` on ``B`` and ``(q_v - u_p)_+`` on ``C``. So

    .. math:: TV \ge \tfrac12\Big(\sum_A |p-q| + \max\big(|Q_A - P_A|,
              \sum_B (p_v - u_q)_+ + \sum_C (q_v - u_p)_+\big)\Big).

    TV, upper: ``|p_v - q_v| <= p_v + q_v`` on ``A^c``, whose masses are ``1 - P_A`` and
    ``1 - Q_A``:  ``TV <= min(1, 1/2 (sum_A |p - q| + (1 - P_A) + (1 - Q_A)))``.

    KL, lower: data processing (log-sum inequality) on the same partition,
    ``KL >= sum_A p log(p/q) + P_{A^c} log(P_{A^c} / Q_{A^c})``, and Pinsker
    ``KL >= 2 TV^2 >= 2 TV_lower^2``; the larger of the two.

    KL, upper: ``+inf`` unless every token that can carry roll mass has a known ``q``:
    any ``v in B`` (``p_v > 0`` known, ``q_v`` may be arbitrarily close to 0), or
    ``m_p > 0`` with ``D`` possibly non-empty (``D`` is empty only when ``vocab_size`` is
    given and ``|S_r | S_t| = V``), makes KL unbounded above. Otherwise
    ``KL = sum_A p log(p/q) + sum_C p_v log(p_v/q_v)`` with ``p_v <= u_p``, so
    ``sum_C p_v log(p_v/q_v) <= m_p max(0, max_C log(u_p/q_v))``.

    With ``k = V`` (all known) ``A`` is the vocabulary, the tails vanish, and both bounds
    equal the exact values. Probabilities are taken as ``exp`` of the logprobs in float64;
    per-set indices must be unique.

    Args:
        idx_theta, logp_theta: ``(..., k_t)`` indices and logprobs of theta.
        idx_roll, logp_roll: ``(..., k_r)`` indices and logprobs of roll.
        vocab_size: ``V``, needed only to recognise an empty ``D``.
        assume_topk: use the smallest known probability as a cap (see above).

    Returns:
        ``{"tv_lower", "tv_upper", "kl_lower", "kl_upper"}``, ``(...)`` float64 tensors.
    """
    torch = _torch()
    f64 = torch.float64
    it = _as_tensor(idx_theta).long()
    dev = it.device
    ir = _as_tensor(idx_roll, dev).long()
    lq_k = _as_tensor(logp_theta, dev).to(f64)
    lp_k = _as_tensor(logp_roll, dev).to(f64)
    known_t = it >= 0  # (..., kt)
    known_r = ir >= 0  # (..., kr)
    q_k = torch.where(known_t, lq_k.exp(), 0.0)  # (..., kt)
    p_k = torch.where(known_r, lp_k.exp(), 0.0)  # (..., kr)
    eq = (ir.unsqueeze(-1) == it.unsqueeze(-2)) & known_r.unsqueeze(-1) & known_t.unsqueeze(-2)
    r_in_t = eq.any(-1)  # (..., kr) roll index also known for theta  (A from roll's side)
    t_in_r = eq.any(-2)  # (..., kt)
    q_at_r = (eq.to(f64) * q_k.unsqueeze(-2)).sum(-1)  # (..., kr) q of A tokens, 0 elsewhere
    m_p = (1.0 - p_k.sum(-1)).clamp(min=0.0)
    m_q = (1.0 - q_k.sum(-1)).clamp(min=0.0)
    if assume_topk:
        u_p = torch.minimum(m_p, _amin_or_inf(torch.where(known_r, p_k, math.inf)))
        u_q = torch.minimum(m_q, _amin_or_inf(torch.where(known_t, q_k, math.inf)))
    else:
        u_p, u_q = m_p, m_q
    inA = r_in_t  # roll-side view of A
    P_A = torch.where(inA, p_k, 0.0).sum(-1)
    Q_A = (q_k * t_in_r).sum(-1)
    tv_A = torch.where(inA, (p_k - q_at_r).abs(), 0.0).sum(-1)
    inB = known_r & ~r_in_t
    inC = known_t & ~t_in_r
    capB = torch.where(inB, (p_k - u_q.unsqueeze(-1)).clamp(min=0.0), 0.0).sum(-1)
    capC = torch.where(inC, (q_k - u_p.unsqueeze(-1)).clamp(min=0.0), 0.0).sum(-1)
    rest_p = (1.0 - P_A).clamp(min=0.0)
    rest_q = (1.0 - Q_A).clamp(min=0.0)
    tv_lower = 0.5 * (tv_A + torch.maximum((Q_A - P_A).abs(), capB + capC))
    tv_upper = torch.clamp(0.5 * (tv_A + rest_p + rest_q), max=1.0)
    tv_lower = torch.minimum(tv_lower, tv_upper)
    # KL over A: p log(p/q) = p (e^d - 1 - d) + p - q, d = log q - log p
    lq_at_r = torch.where(inA, q_at_r.log(), 0.0)
    d = torch.where(inA, lq_at_r - lp_k, 0.0)
    tA = torch.where(p_k > 0, p_k * (torch.expm1(d) - d), q_at_r)  # p = 0: the limit is q
    termA = torch.where(inA, tA, 0.0).sum(-1) + (P_A - Q_A)
    # coarse term P log(P/Q) for the rest, in the stable form P (e^D - 1 - D) + P - Q
    # rounding: 1 - sum has an absolute error up to ~k 2^-53; a rest mass below ``tol`` may be
    # a true 0 (P -> 0 changes P log(P/Q) by at most tol |log tol| ~ 1e-13), and Q is raised to
    # at least ``tol`` (P log(P/Q) decreases in Q, so the bound stays below the truth)
    tol = 4.0 * (known_r.shape[-1] + known_t.shape[-1] + 1) * 2.0**-52
    pos = rest_p > tol
    Qc = rest_q.clamp(min=tol)
    D = torch.where(pos, Qc.log() - rest_p.log(), 0.0)
    coarse = torch.where(pos, rest_p * (torch.expm1(D) - D) + (rest_p - Qc), 0.0)
    kl_lower = torch.maximum(termA + coarse, 2.0 * tv_lower * tv_lower).clamp(min=0.0)
    # upper: finite only if no B token and (m_p = 0 or D empty)
    n_union = known_r.sum(-1) + inC.sum(-1)
    d_empty = (
        (n_union >= vocab_size) if vocab_size is not None else torch.zeros_like(m_p, dtype=bool)
    )
    finite = (~inB.any(-1)) & ((m_p == 0) | d_empty)
    log_ratio_C = torch.where(inC & (q_k > 0), u_p.unsqueeze(-1).log() - q_k.log(), -math.inf)
    log_ratio_C = torch.where(inC & (q_k == 0) & (u_p.unsqueeze(-1) > 0), math.inf, log_ratio_C)
    tailC = m_p * (-_amin_or_inf(-log_ratio_C)).clamp(min=0.0)
    tailC = torch.where(m_p > 0, tailC, 0.0)
    kl_upper = torch.where(finite, termA + tailC, math.inf)
    kl_upper = torch.maximum(kl_upper, kl_lower)
    return {"tv_lower": tv_lower, "tv_upper": tv_upper, "kl_lower": kl_lower, "kl_upper": kl_upper}
