r"""Per-sequence TRM statistics from sampled-token logprobs (docs/theory.md §6).

Per sequence ``i`` with valid tokens ``t = 1..T_i`` (the positions where ``response_mask``
is true, counted in order) and sampled-token log-ratio

.. math:: r_t = \log\pi_\theta(y_t|c_t) - \log\pi_{roll}(y_t|c_t),\qquad \rho_t = e^{r_t},

:func:`sequence_stats` computes, without any Python loop over tokens or sequences,

- ``k2_max = max_t r_t^2 / 2`` (TRM-Max statistic, estimator ``k2``),
- ``k3_mean = mean_t (e^{r_t} - 1 - r_t)`` (TRM-Avg statistic, estimator ``k3``, unbiased
  for KL(roll || theta) in nats), ``k3_sum``,
- ``ser = mean_t |rho_t - 1|`` (SER),
- ``ln_trm = W / Z(T_i)`` (:mod:`trm_bounds.masking.ln_trm`),
- ``log_ppl_diff = mean_t r_t`` (signed; the paper's log-PPL gap is its absolute value),
- ``kl_max = max_t KL(c_t)`` when exact per-token KL values are supplied.

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
- On CPU a sequence's statistics do not depend on the other rows evaluated with it (the
  batch size or the row block): every per-row value is a reduction over that row alone, in an
  order fixed by the row's length (see :func:`_row_sum`).
- ``fused=True`` runs the per-token pass through ``torch.compile`` (one loop that reads the
  inputs once); it falls back to the eager path with a warning where compilation fails.

The eager path keeps its own in-place ``k2``/``k3`` pass (one ``expm1`` per token serves
``k3`` and ``|rho - 1|``); the tests check it against :mod:`trm_bounds.divergences_torch`.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from trm_bounds.masking._tensors import (
    CPU_THREADS,
    _as_tensor,
    _compute_dtype,
    _row_sum,
    _torch,
    cpu_threads,
)
from trm_bounds.masking.ln_trm import (
    _ln_normaliser,
    _ln_w,
    _ln_window,
    check_ln_params,
    ln_trm_weights,
)

if TYPE_CHECKING:  # torch is imported lazily inside the functions
    import torch

__all__ = ["sequence_stats"]


#: Elements per row block on CPU: 2**18 (1 MiB in float32) keeps the two block buffers in the
#: L2 cache across the passes of :func:`_row_sums` (measured 1.4x faster than 2**22 blocks,
#: ``experiments/bench_evaluate.py``) while the per-block Python overhead stays below 5%.
_CPU_BLOCK_ELEMENTS = 1 << 18


def _row_sums(
    lp: torch.Tensor,
    rlp: torch.Tensor,
    invalid: torch.Tensor | None,
    dtype: torch.dtype,
    pos_sum: torch.Tensor | None = None,
    clamp: float | None = None,
    want_k2_sum: bool = False,
) -> tuple[torch.Tensor, ...]:
    """Per-row (max r, min r, sum r, sum k3, sum |rho - 1|, sum k2 or None) of one row block,
    eager, in place (invalid cells count as ``r = 0``; ``clamp``: ``r`` clipped to
    ``[-clamp, clamp]`` first, verl's ``SAFETY_BOUND``).

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
    if clamp is not None:
        r.clamp_(-clamp, clamp)
    r_max, r_min = r.amax(dim=1), r.amin(dim=1)  # (b,)
    r_sum = _row_sum(r)
    k2_sum = 0.5 * _row_sum(r * r) if want_k2_sum else None
    e = _expm1(r)  # (b, T) rho - 1
    k3_sum = _row_sum(torch.sub(e, r, out=r))  # k3 = rho - 1 - r, into r's buffer
    e.abs_()  # |rho - 1|
    ser_sum = _row_sum(e)
    if pos_sum is not None:
        if e.device.type == "cpu":  # numpy accumulates float32 in float64 without a copy
            pos_sum += torch.from_numpy(np.add.reduce(e.numpy(), axis=0, dtype=np.float64))
        else:
            pos_sum += e.sum(dim=0, dtype=torch.float64)
    return r_max, r_min, r_sum, k3_sum, ser_sum, k2_sum


def _k3_verl(r: torch.Tensor) -> torch.Tensor:
    """``e^r - 1 - r`` written as verl writes it (``exp(r) - 1.0 - r``, same rounding)."""
    return _torch().exp(r) - 1.0 - r


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

    Returns (length, sum_j j*valid_j, max r, min r, sum r, sum k3, sum |rho - 1|); the second gives
    the prefix test ``sum_j j valid_j = T_i (T_i - 1) / 2`` (true iff the valid columns are
    exactly ``0..T_i-1``, the smallest sum of ``T_i`` distinct non-negative integers).
    """
    from trm_bounds.divergences_torch import k3

    torch = _torch()
    valid = m != 0
    j = torch.arange(m.shape[1], device=m.device)
    r = torch.where(valid, lp.to(dtype) - rlp.to(dtype), 0.0)  # (B, T)
    length = valid.sum(dim=1)
    possum = torch.where(valid, j, 0).sum(dim=1)
    abs_dev = torch.expm1(r).abs()  # (B, T) |rho - 1|
    return (
        length, possum, r.amax(dim=1), r.amin(dim=1), r.sum(dim=1), k3(r).sum(dim=1),
        abs_dev.sum(dim=1),
    )  # fmt: skip


_FUSED: dict[str, Any] = {}


def _fused_row_sums():
    """``torch.compile`` of :func:`_row_sums_expr` (one fused loop: inputs read once)."""
    if "fn" not in _FUSED:
        _FUSED["fn"] = _torch().compile(_row_sums_expr, dynamic=None)
    return _FUSED["fn"]


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
    clamp_log_ratio: float | None = None,
    k2_sum: bool = False,
    threads: int | None = CPU_THREADS,
) -> dict[str, torch.Tensor]:
    r"""Per-sequence TRM statistics from sampled-token logprobs (docs/theory.md §6).

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
        ln_delta: LN-TRM per-token KL tolerance ``delta`` (KL route), finite and > 0.
        ln_eps: optional LN-TRM TV tolerance ``eps`` (adds the coupling route), finite
            and > 0.
        token_kl: optional ``(B, T)`` exact per-token KL(roll || theta); adds ``kl_max``.
        block_elements: rows are processed in blocks of about this many elements
            (default: ``2**18`` on CPU to bound temporaries, everything at once on GPU).
        fused: compute the per-token part with ``torch.compile`` (one fused loop that reads
            the inputs once; several times faster on CPU, but the first call compiles, which
            takes from seconds to a minute and needs a C++ compiler on CPU). Same values up to
            summation order.
        position_sums: also return ``pos_abs_dev_sum``, the ``(T,)`` float64 column sums
            ``sum_i |rho_{i,t} - 1|`` over valid cells (with prefix masks, ``t`` is the token
            position; half of it over the number of sequences reaching ``t`` is the
            ``Dbar_t`` estimate of docs/theory.md §6). Computed in the same pass as the
            other statistics (eager path; ``fused`` is ignored when this is set).
        padding_is_zero: the caller guarantees that both logprob tensors hold 0 at every
            invalid cell (so ``r = 0`` there already), which skips the masking pass (the
            canonical batches of :mod:`trm_bounds.logs` say so in ``Batch.zero_padding``).
            Garbage padding with this flag set gives wrong statistics.
        clamp_log_ratio: clip ``r_t`` to ``[-c, c]`` before every statistic (verl clips at
            ``c = 20``, its ``SAFETY_BOUND``; pass 20 for its decisions exactly). Default
            None: no clipping, so a trainer logprob of ``-inf`` is an infinite divergence.
        k2_sum: also return ``k2_sum = sum_t r_t^2/2`` (one more pass; verl's
            ``seq_sum_k2``/``seq_mean_k2``).
        threads: torch intra-op threads on CPU for this call (default 1,
            :data:`~trm_bounds.masking._tensors.CPU_THREADS`: a busy neighbour core then
            costs little instead of 70x); None keeps the caller's setting. Values do not
            depend on it (every reduction is per row).

    Returns:
        dict of ``(B,)`` tensors: ``length`` (int64), ``k2_max``, ``k3_max``
        (``max_t e^{r_t} - 1 - r_t``), ``r_max``, ``r_min``, ``r_sum``, ``k3_mean``,
        ``k3_sum``, ``ser``, ``ln_trm``, ``log_ppl_diff``; with ``token_kl``, ``kl_max``;
        with ``k2_sum``, ``k2_sum``; with ``position_sums``, ``pos_abs_dev_sum`` of shape
        ``(T,)``. ``r_max``/``r_min`` of a row with padding include the padding's ``r = 0``
        (so ``k2_max``, ``k3_max`` are exact: both are 0 at ``r = 0`` and never negative).

    >>> import torch
    >>> s = sequence_stats(torch.tensor([[-1.0, -2.0, 0.0]]), torch.tensor([[-1.0, -2.1, 5.0]]),
    ...                    torch.tensor([[1, 1, 0]]))
    >>> round(float(s["k2_max"][0]), 6), int(s["length"][0])
    (0.005, 2)
    """
    lp = _as_tensor(log_probs).detach()
    if lp.device.type != "cpu":
        threads = None
    with cpu_threads(threads):
        return _sequence_stats(
            lp, rollout_log_probs, response_mask, ln_delta=ln_delta, ln_eps=ln_eps,
            token_kl=token_kl, block_elements=block_elements, fused=fused,
            position_sums=position_sums, padding_is_zero=padding_is_zero,
            clamp_log_ratio=clamp_log_ratio, k2_sum=k2_sum,
        )  # fmt: skip


def _sequence_stats(
    lp: torch.Tensor,
    rollout_log_probs: Any,
    response_mask: Any,
    *,
    ln_delta: float,
    ln_eps: float | None,
    token_kl: Any,
    block_elements: int | None,
    fused: bool,
    position_sums: bool,
    padding_is_zero: bool,
    clamp_log_ratio: float | None,
    k2_sum: bool,
) -> dict[str, torch.Tensor]:
    """The body of :func:`sequence_stats` (``lp`` already a detached tensor)."""
    torch = _torch()
    ln_delta, ln_eps = check_ln_params(ln_delta, ln_eps)
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
    K = _ln_window(ln_delta, ln_eps, max(T, 1))
    w_tail = torch.as_tensor(ln_trm_weights(K, ln_delta, ln_eps), dtype=dtype, device=dev)
    T0 = T
    if T == 0:
        lp = lp.new_zeros((B, 1), dtype=dtype)
        rlp, m, T = lp, torch.zeros((B, 1), dtype=torch.bool, device=dev), 1
    pos_acc = torch.zeros(T, dtype=torch.float64, device=dev) if position_sums else None
    if clamp_log_ratio is not None:
        clamp_log_ratio = float(clamp_log_ratio)
        if not clamp_log_ratio > 0:
            raise ValueError(f"clamp_log_ratio must be > 0, got {clamp_log_ratio}")
    if position_sums or k2_sum or clamp_log_ratio is not None:
        fused = False
    k2s = None
    if fused and "failed" not in _FUSED:
        try:
            fused_out = _fused_row_sums()(lp, rlp, m, dtype)
            length, possum, r_max, r_min, r_sum, k3_sum, ser_sum = fused_out
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
        kw = {"clamp": clamp_log_ratio, "want_k2_sum": k2_sum}
        if rows >= B:
            out = _row_sums(lp, rlp, mask_arg, dtype, pos_acc, **kw)
            r_max, r_min, r_sum, k3_sum, ser_sum, k2s = out
        else:
            cols = [torch.empty(B, dtype=dtype, device=dev) for _ in range(5 + k2_sum)]
            for s in range(0, B, rows):
                sl = slice(s, min(B, s + rows))
                v = None if mask_arg is None else mask_arg[sl]
                out = _row_sums(lp[sl], rlp[sl], v, dtype, pos_acc, **kw)
                for c, o in zip(cols, out, strict=False):  # k2_sum may be None
                    c[sl] = o
            r_max, r_min, r_sum, k3_sum, ser_sum = cols[:5]
            k2s = cols[5] if k2_sum else None
    amax = torch.maximum(r_max, r_min.neg())  # (B,) max |r|
    k2_max = 0.5 * amax * amax
    k3_max = torch.maximum(_k3_verl(r_max), _k3_verl(r_min))  # k3 is monotone in |r| per side
    W = _ln_w(lp, rlp, m, length, ser_sum, prefix, w_tail, dtype, clamp_log_ratio)
    Z = _ln_normaliser(length, K, ln_delta, ln_eps, dtype)  # (B,) sum_t w(T_i - t)
    denom = length.clamp(min=1).to(dtype)
    stats = {
        "length": length,
        "k2_max": k2_max,
        "k3_max": k3_max,
        "r_max": r_max,
        "r_min": r_min,
        "r_sum": r_sum,
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
    if k2s is not None:
        stats["k2_sum"] = k2s
    if pos_acc is not None:
        stats["pos_abs_dev_sum"] = pos_acc[:T0]
    return stats
