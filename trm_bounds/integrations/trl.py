r"""TRL's ``GRPOTrainer`` with TRM masking and the monitor (docs/theory.md §6, §9).

What a TRL user changes (the trainer class and one argument)::

    from trm_bounds.integrations.trl import TRMGRPOTrainer
    from trm_bounds.monitor import Monitor
    trainer = TRMGRPOTrainer(model=..., reward_funcs=..., args=grpo_config, train_dataset=...,
                             monitor=Monitor("runs/exp1", max_response_length=grpo_config.max_completion_length))

:class:`TRMGRPOTrainer` subclasses TRL's ``GRPOTrainer`` (tested with ``trl==1.16.0``) and
overrides two hooks, copying none of TRL's code:

- ``_generate_and_score_completions`` (once per generation batch, whole GRPO groups): calls
  TRL's, then :meth:`~trm_bounds.monitor.Monitor.update` with
  **rollout log-probs** = the sampler's, TRL's ``sampling_per_token_logps`` (filled by its vLLM
  path, the one its importance-sampling correction uses, or by a ``rollout_func``; without
  either, :func:`generation_rollout` records them at generation time and is installed
  automatically), and **trainer log-probs** = TRL's ``old_per_token_logps`` (the trainer's
  log-probs of the batch, the ones its loss takes the ratio against); where TRL skips them
  (``num_iterations = 1``, no vLLM correction) they are computed here with TRL's own
  ``_get_per_token_logps_and_entropies`` and handed to the loss, so the loss uses exactly the
  log-probs the monitor saw. Rewards (weighted sum of TRL's reward functions) and group ids
  (``num_generations`` consecutive rows) go with them. Metrics go into TRL's own logs
  (``self._metrics``: every ``report_to`` backend, ``trainer.state.log_history``).
- ``_compute_loss``: the rejected rows' loss-mask entries are zeroed through TRL's
  ``tool_mask`` (which enters only the loss mask, not the attention), so a rejected sequence
  contributes exactly zero to the loss and its gradient, in every loss type and the entropy
  bonus; with ``loss_type="grpo"`` (mean over sequences) the rejected rows still count in the
  denominator, the TRM normalisation of docs/theory.md §6.

A reward outside the monitor's ``reward_range`` stops the run with a one-line error (a certificate
for the wrong range would be false). Single process only (each process would need its own
monitor); multimodal inputs are not supported by the automatic trainer log-probs.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from trl import GRPOTrainer

from trm_bounds.monitor import Monitor

__all__ = ["TRMGRPOTrainer", "generation_rollout"]


def generation_rollout(sampler: Any = None) -> Any:
    """A TRL ``rollout_func`` that samples with ``sampler`` (default: the trainer's model) through
    ``generate`` and records, at generation time, the log-probability of each sampled token under
    the distribution it was drawn from (the processed scores: temperature, top-k, top-p).

    Prompts are tokenized by TRL's own ``_tokenize_prompts`` (chat template for conversational
    prompts; multimodal prompts are not supported); the trainer's ``generation_config`` is used.
    Returns TRL's keys ``prompt_ids``, ``completion_ids`` (up to and including the first
    end-of-sequence token) and ``logprobs``.
    """

    def rollout(prompts: list[Any], trainer: GRPOTrainer) -> dict[str, list]:
        tok = trainer.processing_class
        ids, images, _ = trainer._tokenize_prompts(prompts)  # TRL's own prompt tokenization
        if images is not None:
            raise NotImplementedError("generation_rollout: multimodal prompts are not supported")
        ids = [list(i) for i in ids]
        model = trainer.accelerator.unwrap_model(trainer.model) if sampler is None else sampler
        dev = next(model.parameters()).device
        P = max(len(i) for i in ids)
        pad = tok.pad_token_id
        inp = torch.tensor([[pad] * (P - len(i)) + i for i in ids], device=dev)
        att = torch.tensor([[0] * (P - len(i)) + [1] * len(i) for i in ids], device=dev)
        gen = copy.deepcopy(trainer.generation_config)
        gen.output_scores, gen.return_dict_in_generate = True, True
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(input_ids=inp, attention_mask=att, generation_config=gen)
        finally:
            model.train(was_training)
        comp = out.sequences[:, P:]  # (B, C)
        scores = torch.stack(out.scores, dim=1).float()  # (B, C, V) processed logits
        lps = torch.log_softmax(scores, dim=-1).gather(-1, comp.unsqueeze(-1)).squeeze(-1)
        is_eos = torch.isin(comp, torch.tensor(trainer.eos_token_ids, device=comp.device))
        first = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, comp.shape[1])  # (B,)
        n = first.tolist()
        completion_ids = [c[:k] for c, k in zip(comp.tolist(), n, strict=True)]
        logprobs = [lp[:k] for lp, k in zip(lps.tolist(), n, strict=True)]
        return {"prompt_ids": ids, "completion_ids": completion_ids, "logprobs": logprobs}

    return rollout


class TRMGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` with the TRM sequence mask applied to the loss and the monitor's
    metrics in TRL's logs; see the module docstring. ``monitor``: a
    :class:`~trm_bounds.monitor.Monitor` (closed when training ends)."""

    def __init__(self, *args: Any, monitor: Monitor, **kwargs: Any) -> None:
        cfg = kwargs.get("args") if "args" in kwargs else (args[2] if len(args) > 2 else None)
        if kwargs.get("rollout_func") is None and not (cfg is not None and cfg.use_vllm):
            kwargs["rollout_func"] = generation_rollout()
        super().__init__(*args, **kwargs)
        if self.accelerator.num_processes > 1:
            raise NotImplementedError("TRMGRPOTrainer: one process only (each process would "
                                      "need its own monitor and run folder)")
        self.monitor = monitor
        self._trm_generations = 0
        self._trm_rewards: torch.Tensor | None = None

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any,
                           completion_ids_list: Any) -> torch.Tensor:  # fmt: skip
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._trm_rewards = rewards_per_func
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        if not self.model.training:
            return out
        rlp = out.get("sampling_per_token_logps")
        if rlp is None:
            raise RuntimeError("TRMGRPOTrainer: the sampler's log-probs are missing (TRL gives "
                               "them with vLLM or a rollout_func returning 'logprobs')")
        mask = out["completion_mask"]
        if "tool_mask" in out:
            mask = mask * out["tool_mask"]
        lp = out.get("old_per_token_logps")
        if lp is None:
            lp = self._trainer_logps(out)
            out["old_per_token_logps"] = lp  # the loss's ratio is then taken against these
        res = self.monitor.update(self._trm_generations, lp, rlp, mask,
                                  rewards=self._monitor_rewards(), group_ids=self._group_ids(mask))  # fmt: skip
        self._trm_generations += 1
        out["trm_keep"] = res.keep
        for k, v in res.metrics.items():
            self._metrics["train"][k].append(v)
        self._metrics["train"]["trm/global_step"].append(float(self.state.global_step))
        return out

    def _trainer_logps(self, out: dict[str, Any]) -> torch.Tensor:
        """The trainer's log-probs of the batch, by TRL's own routine, without gradient."""
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        att = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        with torch.no_grad():
            lp, _, _ = self._get_per_token_logps_and_entropies(
                self.model, ids, att, out["completion_ids"].size(1),
                batch_size=self.args.per_device_train_batch_size,
            )  # fmt: skip
        return lp

    def _monitor_rewards(self) -> torch.Tensor | None:
        """TRL's per-row reward (weighted sum over reward functions); None where TRL aggregates
        otherwise or a row is unscorable (then the error estimate is skipped)."""
        rpf, self._trm_rewards = self._trm_rewards, None
        if rpf is None or self.multi_objective_aggregation != "sum_then_normalize":
            return None
        if torch.isnan(rpf).all(dim=1).any():
            return None
        w = self.reward_weights.to(rpf.device).unsqueeze(0)
        return (rpf * w).nansum(dim=1)

    def _group_ids(self, mask: torch.Tensor) -> torch.Tensor:
        """GRPO groups: ``num_generations`` consecutive rows share a prompt."""
        return torch.arange(mask.shape[0], device=mask.device) // self.num_generations

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        keep = inputs.get("trm_keep")
        if keep is not None:
            base = inputs.get("tool_mask")
            if base is None:
                base = torch.ones_like(inputs["completion_mask"])
            inputs = {**inputs, "tool_mask": base * keep.to(base.dtype).unsqueeze(-1)}
        return super()._compute_loss(model, inputs)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().train(*args, **kwargs)
        finally:
            self.monitor.close()
