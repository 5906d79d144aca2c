r"""Certified Linear bound on ``|Error|`` from sampled logprobs alone (docs/theory.md §9).

.. math::

    |\mathrm{Error}| \;\le\; c \sum_t \bar D_t \;=\; c\, \mathbb E_{\text{roll}}[X],
    \qquad X = \sum_{t \le T_i} (1 - \rho_t)_+ \in [0, T_{\max}],

with ``c = 4`` (published, §4), ``c = 2`` (sharp, §5) or ``c = 1`` (proved in this toolkit,
docs/theory.md §9, Theorem 9.3, and attained), for every reward in ``[0, 1]``, **with or
without** :math:`\pi_\theta \ll \pi_{\text{roll}}` (§9, Theorem 9.3).  An upper confidence
bound ``U`` on :math:`\mathbb E X` at level ``1 - alpha`` (:mod:`trm_bounds.certify.confidence`)
gives :math:`P(|\mathrm{Error}| \le c U) \ge 1 - \alpha`.

>>> import numpy as np
>>> lp = np.log(np.full((1024, 8), 0.5))  # theta = roll: sum_t Dbar_t = 0
>>> out = certify_linear(lp, lp, np.ones((1024, 8)))
>>> out["dbar_sum_estimate"], out["bound"] < 0.2
(0.0, True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from trm_bounds.certify.confidence import upper_confidence_bound
from trm_bounds.certify.samples import divergence_terms, valid_log_ratios

__all__ = ["certify_linear", "certified_mean", "CONSTANTS"]

#: The constant c of the Linear bound, by variant (docs/theory.md §4, §5, §9 Theorem 9.3).
CONSTANTS = {"published": 4.0, "sharp": 2.0, "proved_here": 1.0}


def certified_mean(x: np.ndarray, lengths: np.ndarray, *, T_max: int | None, level: float,
                   method: str, scale: float = 1.0) -> dict[str, Any]:
    """UCB on the mean of per-sequence ``x`` in ``[0, scale * T_max]``; shared by the certificates.

    ``lengths`` ``(B,)``: valid tokens per sequence.  ``T_max`` ``None``: the longest observed
    valid length, recorded as a condition.
    """
    longest = int(lengths.max())
    if T_max is None:
        T = longest
        cond = (f"range of the per-sequence variable uses T_max = {longest}, the longest sequence "
                "in the log: valid if no response can be longer (pass T_max = the generation "
                "limit to make it a-priori)")
    else:
        if int(T_max) < longest:
            raise ValueError(f"T_max: {int(T_max)} is shorter than the longest valid sequence "
                             f"({longest})")
        T = int(T_max)
        cond = f"range of the per-sequence variable uses T_max = {T}, given a priori"
    ucb = upper_confidence_bound(x, upper=scale * T, level=level, method=method)
    est = float(np.mean(x))
    return {"estimate": est, "ucb": max(ucb, est), "T_max": T, "conditions": [cond]}


def certify_linear(log_probs: Any, rollout_log_probs: Any, mask: Any, *, level: float = 0.95,
                   sharp: bool = False, method: str = "betting",
                   T_max: int | None = None) -> dict[str, Any]:
    r"""Certified Linear bound: ``bound = c * UCB_level(sum_t Dbar_t)``, docs/theory.md §9.

    Parameters: ``log_probs``, ``rollout_log_probs``, ``mask`` of shape ``(B, T)`` (numpy or
    torch; :mod:`trm_bounds.certify.samples`), each row one i.i.d. sequence from
    :math:`\pi_{\text{roll}}`; ``level = 1 - alpha``; ``sharp``: ``c = 2`` instead of the
    published ``c = 4``; ``method``: ``"betting"``, ``"bernstein"`` or ``"hoeffding"``;
    ``T_max``: a-priori maximum response length (default: the longest in the log).

    Returns a dict: ``level``, ``method``, ``n_sequences``, ``T_max``, ``constant``,
    ``variant``, ``dbar_sum_estimate`` (the sample mean of ``X``, unbiased for
    :math:`\sum_t\bar D_t`), ``dbar_sum_ucb``, ``width`` (ucb - estimate), ``bound``
    (``c * dbar_sum_ucb`` with the ``sharp``-selected paper constant), ``bounds`` (all three
    variants, ``published`` 4, ``sharp`` 2, ``proved_here`` 1), ``bound_proved_here``
    (``1 * dbar_sum_ucb``, docs/theory.md §9 Theorem 9.3) and ``conditions`` (every
    assumption, as strings).
    """
    r, valid = valid_log_ratios(log_probs, rollout_log_probs, mask)
    x = divergence_terms(r, valid).sum(axis=1)  # (B,) in [0, T_i]
    lengths = valid.sum(axis=1)
    cm = certified_mean(x, lengths, T_max=T_max, level=level, method=method)
    variant = "sharp" if sharp else "published"
    c = CONSTANTS[variant]
    conditions = [
        "rows are i.i.d. sequences sampled from pi_roll (one per prompt draw), and "
        "rollout_log_probs are the sampling policy's own log-probabilities",
        "reward R in [0, 1] (scale the bound by the reward range otherwise)",
        "no absolute continuity needed: valid when the rollout was truncated by top-p/top-k "
        "(docs/theory.md §9, Theorem 9.3)",
        f"Linear bound |Error| <= c * sum_t Dbar_t with c = {c:g} ({variant}, docs/theory.md "
        f"§{'5' if sharp else '4'}); bound_proved_here uses c = 1, proved in docs/theory.md §9 "
        "Theorem 9.3 (this toolkit, not the paper) and attained by an instance",
        f"holds with probability >= {float(level)} over the sampled sequences ({method} bound)",
        *cm["conditions"],
    ]
    return {
        "level": float(level),
        "method": method,
        "n_sequences": int(x.shape[0]),
        "T_max": cm["T_max"],
        "variant": variant,
        "constant": c,
        "dbar_sum_estimate": cm["estimate"],
        "dbar_sum_ucb": cm["ucb"],
        "width": cm["ucb"] - cm["estimate"],
        "bound": c * cm["ucb"],
        "bounds": {k: v * cm["ucb"] for k, v in CONSTANTS.items()},
        "bound_proved_here": CONSTANTS["proved_here"] * cm["ucb"],
        "conditions": conditions,
    }
