r"""The trainer API: the TRM sequence mask, its batch metrics and the masked loss.

docs/theory.md §6: a sequence is kept iff every requested criterion accepts it
(:func:`~trm_bounds.masking.decide`), and the loss of the kept sequences is normalised by the
total batch size, so that masking never rescales the accepted sequences' gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trm_bounds.masking._tensors import CPU_THREADS, _as_tensor, _torch, cpu_threads
from trm_bounds.masking.criteria import decide, needs_k2_sum
from trm_bounds.masking.stats import sequence_stats

if TYPE_CHECKING:
    import torch

__all__ = ["sequence_mask", "batch_metrics", "masked_loss"]


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
    clamp_log_ratio: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""The TRM sequence mask for a trainer batch (docs/theory.md §6).

    ``mask_i`` is the AND of the requested criteria (see :func:`decide`); multiply the loss of
    sequence ``i`` by it and normalise by the total batch size (:func:`masked_loss`).
    Keyword arguments are those of :func:`sequence_stats`; ``criteria`` may be any of
    :data:`~trm_bounds.masking.VERL_CRITERIA` (a ``token_*`` criterion keeps a sequence iff it
    keeps every token; :func:`~trm_bounds.masking.rollout_rs_mask` gives verl's token mask).

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
    on_cpu = _as_tensor(log_probs).device.type == "cpu"
    with cpu_threads(CPU_THREADS if on_cpu else None):  # every small op too (see CPU_THREADS)
        return _sequence_mask(
            log_probs, rollout_log_probs, response_mask, criteria, thresholds,
            ln_delta=ln_delta, ln_eps=ln_eps, token_kl=token_kl, fused=fused,
            clamp_log_ratio=clamp_log_ratio,
        )  # fmt: skip


def _sequence_mask(
    log_probs: Any,
    rollout_log_probs: Any,
    response_mask: Any,
    criteria: Sequence[str],
    thresholds: Mapping[str, float] | None,
    **kw: Any,
) -> tuple[torch.Tensor, dict[str, float]]:
    clamp_log_ratio = kw.pop("clamp_log_ratio")
    ln_delta, ln_eps, token_kl, fused = (kw[k] for k in ("ln_delta", "ln_eps", "token_kl", "fused"))
    stats = sequence_stats(
        log_probs,
        rollout_log_probs,
        response_mask,
        ln_delta=ln_delta,
        ln_eps=ln_eps,
        token_kl=token_kl,
        fused=fused,
        clamp_log_ratio=clamp_log_ratio,
        k2_sum=needs_k2_sum(criteria),
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
    r"""The TRM masked loss, normalised by the total batch size (docs/theory.md §6).

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
