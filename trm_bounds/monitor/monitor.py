r"""The monitor a trainer calls once per step: TRM mask, metrics and the certificate
(docs/theory.md §6, §9).

:meth:`Monitor.update` takes a trainer batch, ``(B, L)`` tensors as trainers hold them (any
float dtype, any device, right- or left-aligned: only the positions where ``mask`` is non-zero
are read), and returns the TRM sequence mask at the configured criteria (docs/theory.md §6,
:func:`~trm_bounds.masking.decide`) with the step's metrics (:mod:`trm_bounds.monitor.metrics`):
mask rates, k1/k2/k3 summaries, verl's names where the quantity is the same, the certified
bound on ``|Error|`` at the configured level and generation limit (§9, Theorem 9.2/9.3; over
GRPO groups when ids are given) and, with rewards, the estimated error where the effective
diagnostic (PSIS Pareto k-hat) lets the interval be shown (§9, "The actual error,
estimated").

Everything is computed and checked before anything is written: a bad batch (shape mismatch,
NaN or ``+inf`` at a valid token, a step that does not increase, a row longer than the
generation limit, rewards outside ``reward_range``) raises a one-line ``ValueError`` and
leaves the run folder as it was. Memory does not grow with the number of steps (nothing is
kept from one step to the next but the step number).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from trm_bounds.certify.linear import check_reward_range, check_rewards_in_range
from trm_bounds.masking import check_threshold, criterion_parts, decide, sequence_stats
from trm_bounds.masking.trainer import batch_metrics
from trm_bounds.monitor.metrics import trm_metrics, verl_metrics
from trm_bounds.monitor.run_folder import RunFolder

if TYPE_CHECKING:
    import torch

__all__ = ["Monitor", "MonitorOutput"]


@dataclass(frozen=True)
class MonitorOutput:
    """``keep``: ``(B,)`` bool tensor on the inputs' device (True = the TRM mask keeps the
    row); ``metrics``: the step's numbers as plain floats."""

    keep: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)


def parse_criteria(criteria: str, thresholds: str | float | Mapping[str, Any] | None
                   ) -> tuple[list[str], dict[str, Any]]:  # fmt: skip
    """``"seq_max_k2,seq_mean_k3"`` with ``"0.05,0.001"`` (one threshold per part, or one
    shared; verl's grammar, :func:`~trm_bounds.masking.check_threshold` each) or a mapping
    ``{part: threshold}``; None: the defaults. Returns ``(parts, thresholds)``.

    >>> parse_criteria("seq_max_k2,seq_mean_k3", "0.05,0.001")
    (['seq_max_k2', 'seq_mean_k3'], {'seq_max_k2': 0.05, 'seq_mean_k3': 0.001})
    """
    parts = list(dict.fromkeys(criterion_parts(criteria)))
    if thresholds is None:
        return parts, {}
    if isinstance(thresholds, Mapping):
        return parts, {k: check_threshold(k, v) for k, v in thresholds.items()}
    specs = [s.strip() for s in str(thresholds).split(",") if s.strip()]
    if len(specs) == 1:
        specs = specs * len(parts)
    if len(specs) != len(parts):
        raise ValueError(f"thresholds: {len(specs)} values for {len(parts)} criteria "
                         f"({criteria!r}); give one shared or one per criterion")
    return parts, {p: check_threshold(p, v) for p, v in zip(parts, specs, strict=True)}


class Monitor:
    """TRM masks and the certificate during a run; see the module docstring.

    Args:
        run_dir: the run folder (:mod:`trm_bounds.monitor.run_folder`); created, or resumed
            when the monitor wrote it with the same settings.
        level: confidence level of the certified bound, in (0, 1).
        max_response_length: the generation limit ``T_max``, the a-priori range of the
            per-sequence variable (docs/theory.md §9); a row with more valid tokens is an error.
        reward_range: ``(lo, hi)``; the certified bound is ``((hi - lo) c + dist(0, [lo,
            hi])) U`` (§9, "Reward ranges"), and rewards outside it are an error.
        criteria, thresholds: the TRM criteria (joined: all must keep a row) and their
            thresholds, verl's grammar (:func:`parse_criteria`).
        tensorboard: also write TensorBoard event files (needs the tensorboard package).
        dump_batches: also write each step's batch (``dumps/step_{N}.npz``).
        method: the confidence bound (``"betting"``, ``"bernstein"``, ``"hoeffding"``).
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        level: float = 0.95,
        max_response_length: int | None = None,
        reward_range: tuple[float, float] = (0.0, 1.0),
        criteria: str = "seq_max_k2,seq_mean_k3",
        thresholds: str | float | Mapping[str, Any] | None = "0.05,0.001",
        tensorboard: bool = False,
        dump_batches: bool = False,
        method: str = "betting",
    ) -> None:
        if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
            raise ValueError(f"level must lie in (0, 1), got {level!r}")
        if (isinstance(max_response_length, bool) or not isinstance(max_response_length, int)
                or max_response_length < 1):  # fmt: skip
            raise ValueError("max_response_length: give the generation limit (a positive "
                             f"integer), got {max_response_length!r}")
        lo, hi = check_reward_range(reward_range)
        if method not in ("betting", "bernstein", "hoeffding"):
            raise ValueError(f"method: one of betting, bernstein, hoeffding; got {method!r}")
        self.parts, self.thresholds = parse_criteria(criteria, thresholds)
        self.names = self.parts + ([",".join(self.parts)] if len(self.parts) > 1 else [])
        self.level, self.T_max, self.reward_range, self.method = (
            float(level), int(max_response_length), (lo, hi), method)  # fmt: skip
        settings = {"level": self.level, "max_response_length": self.T_max,
                    "reward_range": [lo, hi], "criteria": ",".join(self.parts),
                    "thresholds": {k: v for k, v in self.thresholds.items()}, "method": method}  # fmt: skip
        self._folder = RunFolder(run_dir, settings, tensorboard=tensorboard,
                                 dump_batches=dump_batches)  # fmt: skip
        self._dump = bool(dump_batches)

    @property
    def run_dir(self) -> os.PathLike:
        return self._folder.path

    def update(self, step: int, log_probs: Any, rollout_log_probs: Any, mask: Any,
               rewards: Any = None, group_ids: Any = None) -> MonitorOutput:  # fmt: skip
        """One step: the TRM mask and the metrics, written to the run folder.

        ``log_probs`` are the trainer's ``log pi_theta`` of the sampled tokens (the ones its
        loss uses), ``rollout_log_probs`` the sampler's, ``mask`` non-zero on trained tokens;
        ``rewards`` ``(B,)`` and ``group_ids`` ``(B,)`` (GRPO groups: the certificate then
        treats each group's mean as one draw) are optional. ``ValueError`` on bad input,
        before anything is written.
        """
        from trm_bounds.masking._tensors import _as_tensor

        where = f"Monitor.update(step={step!r})"
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"{where}: step must be a non-negative integer")
        step = int(step)
        last = self._folder.last_step
        if last is not None and step <= last:
            raise ValueError(f"{where}: steps must increase; {self.run_dir} already holds step {last}")
        lp = _as_tensor(log_probs).detach()
        rlp = _as_tensor(rollout_log_probs, lp.device).detach()
        m = _as_tensor(mask, lp.device).detach()
        if lp.ndim != 2 or rlp.shape != lp.shape or m.shape != lp.shape:
            raise ValueError(f"{where}: log_probs, rollout_log_probs and mask must share one "
                             f"(B, L) shape, got {tuple(lp.shape)}, {tuple(rlp.shape)}, "
                             f"{tuple(m.shape)}")
        if not (lp.is_floating_point() and rlp.is_floating_point()):
            raise ValueError(f"{where}: log_probs and rollout_log_probs must be float tensors")
        try:
            return self._update(step, lp, rlp, m, rewards, group_ids)
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None

    def _update(self, step: int, lp: torch.Tensor, rlp: torch.Tensor, m: torch.Tensor,
                rewards: Any, group_ids: Any) -> MonitorOutput:  # fmt: skip
        import torch

        from trm_bounds.certify.samples import divergence_terms, valid_log_ratios

        valid = m if m.dtype == torch.bool else m != 0
        # float64 on the host: validates NaN/inf at valid tokens, gives X_i (§9, Lemma 9.1)
        r64, v64 = valid_log_ratios(lp, rlp, valid)
        lengths = v64.sum(axis=1)
        if int(lengths.max()) > self.T_max:
            row = int(np.argmax(lengths > self.T_max))
            raise ValueError(f"mask: row {row} has {int(lengths[row])} valid tokens, more than "
                             f"max_response_length = {self.T_max}")
        B = lp.shape[0]
        R = self._rewards(rewards, B)
        groups = self._groups(group_ids, B)  # checked before anything is written
        stats = sequence_stats(lp, rlp, valid, k2_sum=True)
        dec = decide(stats, self.thresholds, self.names)
        keep = dec[self.names[-1]]
        metrics = trm_metrics(stats, dec, keep, batch_metrics(stats))
        dtype = stats["k2_max"].dtype
        metrics.update(verl_metrics(lp.to(dtype), rlp.to(dtype), valid, stats, dec, self.parts))
        x = divergence_terms(r64, v64).sum(axis=1)  # (B,) X_i in [0, T_i]
        metrics.update(self._certificate(x, lengths, groups))
        if R is not None:
            metrics.update(self._error(r64, v64, R, groups))
        batch = self._batch(lp, rlp, valid, R, group_ids) if self._dump else None
        self._folder.write(step, metrics, batch)
        return MonitorOutput(keep=keep.to(lp.device), metrics=metrics)

    def _rewards(self, rewards: Any, B: int) -> np.ndarray | None:
        if rewards is None:
            return None
        from trm_bounds.certify.samples import as_float64

        R = as_float64(rewards, "rewards").reshape(-1)
        if R.shape[0] != B:
            raise ValueError(f"rewards: {R.shape[0]} values for {B} rows")
        check_rewards_in_range(R, *self.reward_range)
        return R

    @staticmethod
    def _groups(group_ids: Any, B: int) -> np.ndarray | None:
        """Group codes ``0..G-1`` per row (None without ids)."""
        if group_ids is None:
            return None
        g = group_ids.detach().cpu().numpy() if hasattr(group_ids, "detach") else np.asarray(group_ids)
        g = g.reshape(-1)
        if g.shape[0] != B:
            raise ValueError(f"group_ids: {g.shape[0]} ids for {B} rows")
        return np.unique(g, return_inverse=True)[1].reshape(-1)

    def _certificate(self, x: np.ndarray, lengths: np.ndarray, group_ids: Any
                     ) -> dict[str, float]:  # fmt: skip
        """The certified bounds on ``|Error|`` at ``level`` with ``T_max`` and the reward range,
        :func:`~trm_bounds.certify.certify_sums` (docs/theory.md §9; over the group means with
        ``group_ids``; rows without a valid token are not sequences)."""
        from trm_bounds.certify import certify_sums

        c = certify_sums(x, T_max=self.T_max, level=self.level, method=self.method,
                         group_ids=group_ids, reward_range=self.reward_range, lengths=lengths)  # fmt: skip
        return {
            "trm/cert/n_units": float(c["n_units"]),
            "trm/cert/dbar_sum_estimate": c["dbar_sum_estimate"],
            "trm/cert/dbar_sum_ucb": c["dbar_sum_ucb"],
            **{f"trm/cert/bound_{k}": v for k, v in c["bounds"].items()},
        }

    def _error(self, r64: np.ndarray, v64: np.ndarray, R: np.ndarray, groups: np.ndarray | None
               ) -> dict[str, float]:  # fmt: skip
        """The estimated error, ``J_theta - J_roll`` and ``L'`` (docs/theory.md §9, "The actual
        error, estimated"; :func:`~trm_bounds.certify.estimate_error_sums` from this step's
        float64 log-ratios) with the intervals that hold for every law given ``T_max`` and the
        reward range (Theorem 9.4); the diagnostics (Pareto k-hat, effective sample size)."""
        from trm_bounds.certify.error_estimate import estimate_error_sums
        from trm_bounds.certify.samples import log_ratio_sums

        S, U = log_ratio_sums(r64, v64)  # (B,) log prod rho, (B,) sum_t (rho_t - 1)
        est = estimate_error_sums(S, U, R, level=self.level, group_ids=groups,
                                  lengths=v64.sum(axis=1), T_max=self.T_max,
                                  reward_range=self.reward_range)  # fmt: skip
        out = {"trm/error/ess_fraction": est["ess_fraction"],
               "trm/error/pareto_k_weights": est["pareto_k_weights"]}  # fmt: skip
        for k in ("error", "L_prime", "J_diff"):
            q = est[k]
            out[f"trm/error/{k}_pareto_k"] = q["pareto_k"]
            out[f"trm/error/{k}_estimate"] = q["estimate"]
            if q["shown"]:
                out.update({f"trm/error/{k}_{p}": q[p] for p in ("lo", "hi")})
        return out

    @staticmethod
    def _batch(lp: torch.Tensor, rlp: torch.Tensor, valid: torch.Tensor, R: np.ndarray | None,
               group_ids: Any) -> dict[str, np.ndarray]:  # fmt: skip
        """The dump of one step: the inputs at their positions and in their dtype (bfloat16
        widened to float32, exactly), padding cells written as 0 (never read)."""
        import torch

        def host(t: torch.Tensor) -> np.ndarray:
            t = torch.where(valid, t.detach(), torch.zeros((), dtype=t.dtype, device=t.device))
            return (t.float() if t.dtype == torch.bfloat16 else t).cpu().numpy()

        out = {"old_log_probs": host(lp), "rollout_log_probs": host(rlp),
               "response_mask": valid.cpu().numpy()}  # fmt: skip
        if R is not None:
            out["reward"] = R
        if group_ids is not None:
            g = group_ids.detach().cpu().numpy() if hasattr(group_ids, "detach") else np.asarray(group_ids)
            out["prompt_id"] = g if g.dtype.kind in "iub" else g.astype(str)
        return out

    def close(self) -> None:
        """Close the run folder's files (idempotent)."""
        self._folder.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
