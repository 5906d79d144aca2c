r"""LN-TRM weights and the weighted deviation ``W`` (docs/theory.md §6).

Sequence ``i`` with valid tokens ``t = 1..T_i`` gets ``ln_trm = W / Z(T_i)``,
``W = sum_t |rho_t - 1| w(T_i - t)``, ``Z(T_i) = sum_t w(T_i - t)``, with the weights of
:func:`ln_trm_weights`. Every per-row value is computed from that row alone in a fixed order,
so it does not depend on how many rows are evaluated together.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from trm_bounds.masking._tensors import _row_sum, _torch

if TYPE_CHECKING:
    import torch

__all__ = ["check_ln_params", "ln_trm_weights"]


def check_ln_params(ln_delta: float, ln_eps: float | None = None) -> tuple[float, float | None]:
    """``(ln_delta, ln_eps)`` as floats if finite and positive (``ln_eps`` may be None).

    >>> check_ln_params(0.05)
    (0.05, None)
    >>> check_ln_params(0.0)
    Traceback (most recent call last):
    ...
    ValueError: ln_delta must be a finite number > 0, got 0.0
    """
    out = []
    for name, v in (("ln_delta", ln_delta), ("ln_eps", ln_eps)):
        if v is None and name == "ln_eps":
            out.append(None)
            continue
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a finite number > 0, got {v!r}") from None
        if not (math.isfinite(f) and f > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {f}")
        out.append(f)
    return out[0], out[1]


def ln_trm_weights(n: int, ln_delta: float, ln_eps: float | None = None) -> np.ndarray:
    r"""LN-TRM weights ``w(k)`` for ``k = T_i - t = 0..n-1`` (docs/theory.md §6), float64.

    .. math:: w(k) = \min\!\big(1,\ \sqrt{k\,\delta/2}\big)
              \quad[\text{and } \min(\cdot,\ k\,\epsilon) \text{ if } \epsilon \text{ given}]

    ``k`` is the number of valid tokens after position ``t``; the last token has weight 0.
    ``ln_delta`` (and ``ln_eps``) must be finite and positive.

    >>> ln_trm_weights(4, 0.5).round(6).tolist()
    [0.0, 0.5, 0.707107, 0.866025]
    """
    ln_delta, ln_eps = check_ln_params(ln_delta, ln_eps)
    k = np.arange(n, dtype=np.float64)
    w = np.minimum(1.0, np.sqrt(k * (ln_delta / 2.0)))
    if ln_eps is not None:
        w = np.minimum(w, k * ln_eps)
    return w


def _ln_window(ln_delta: float, ln_eps: float | None, cap: int) -> int:
    """``min(K, cap)``, ``K`` the smallest integer with ``w(k) = 1`` for every ``k >= K``.

    ``w`` is non-decreasing; ``K`` is near ``max(2/delta, 1/eps)``, so nothing larger than
    ``cap + 3`` weights is ever allocated (a window longer than the sequence is the whole
    sequence).
    """
    ln_delta, ln_eps = check_ln_params(ln_delta, ln_eps)
    k0 = 2.0 / ln_delta
    if ln_eps is not None:
        k0 = max(k0, 1.0 / ln_eps)
    if k0 > cap:
        return cap
    w = ln_trm_weights(math.ceil(k0) + 3, ln_delta, ln_eps)
    return min(int(np.argmax(w >= 1.0)), cap)


def _ln_normaliser(
    length: torch.Tensor, K: int, ln_delta: float, ln_eps: float | None, dtype: torch.dtype
) -> torch.Tensor:
    """``Z(T_i) = sum_{k < T_i} w(k) = Zc[min(T_i, K)] + max(T_i - K, 0)``, ``(B,)``."""
    torch = _torch()
    zc = np.concatenate([[0.0], np.cumsum(ln_trm_weights(K, ln_delta, ln_eps))])
    zc_t = torch.as_tensor(zc, dtype=torch.float64, device=length.device)
    Z = zc_t[length.clamp(max=K)] + (length - K).clamp(min=0)
    return Z.to(dtype)


def _ln_w(
    lp: torch.Tensor,
    rlp: torch.Tensor,
    m: torch.Tensor,
    length: torch.Tensor,
    ser_sum: torch.Tensor,
    prefix: bool,
    w_tail: torch.Tensor,
    dtype: torch.dtype,
    clamp: float | None = None,
) -> torch.Tensor:
    """``W_i = sum_t |rho_t - 1| w(T_i - t)`` given ``ser_sum = sum_t |rho_t - 1|``.

    ``w(k) = 1`` for ``k >= K`` (``K = len(w_tail)``), so only the last ``K`` valid tokens of
    each sequence need their weight: ``W = (ser_sum - sum_win |rho - 1|) + sum_win |rho - 1| w``.
    The window sum is an elementwise product and a per-row sum (:func:`_row_sum`), never a
    matrix-vector product, whose rounding would depend on the number of rows (BLAS blocking).
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
        if clamp is not None:
            r_win.clamp_(-clamp, clamp)
        e_win = torch.where(inwin, torch.expm1(r_win).abs_(), 0.0)  # (B, K) |rho - 1|
        head = torch.where(length <= K, torch.zeros_like(ser_sum), ser_sum - _row_sum(e_win))
        return head + _row_sum(e_win.mul_(w_tail))
    # general mask: k = T_i - t from a cumulative count
    valid = m if m.dtype == torch.bool else m != 0
    after = length.unsqueeze(1) - valid.cumsum(dim=1)  # (B, T) valid tokens after t
    table = torch.cat([w_tail, w_tail.new_ones(1)])  # w(k) for k = 0..K (K stands for >= K)
    w = table[after.clamp_(min=0, max=K)]  # (B, T)
    r = torch.where(valid, lp.to(dtype) - rlp.to(dtype), 0.0)
    if clamp is not None:
        r.clamp_(-clamp, clamp)
    return _row_sum(torch.expm1(r).abs_().mul_(w))
