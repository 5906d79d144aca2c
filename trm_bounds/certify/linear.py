r"""Certified Linear bound on ``|Error|`` from sampled logprobs alone (docs/theory.md §9).

.. math::

    |\mathrm{Error}| \;\le\; (h - l)\, c \sum_t \bar D_t + d\,\sum_t \bar D_t
    \;\le\; \big((h - l)\,c + d\big)\, U,
    \qquad X = \sum_{t \le T_i} (1 - \rho_t)_+ \in [0, T_{\max}],

for every reward in ``[l, h]`` (``reward_range``), with ``c = 4`` (published, §4), ``c = 2``
(sharp, §5) or ``c = 1`` (proved in this toolkit, docs/theory.md §9, Theorem 9.3, and
attained), ``d = dist(0, [l, h])`` (0 when the range contains 0, and the whole term vanishes
under :math:`\pi_\theta \ll \pi_{\text{roll}}`; §9 "Reward ranges"), **with or without**
absolute continuity.  ``U`` is an upper confidence bound at level ``1 - alpha``
(:mod:`trm_bounds.certify.confidence`) on :math:`\mathbb E X = \sum_t \bar D_t`, over the
``N`` sequences, or over the ``G`` group means :math:`\bar X_g` when responses share a prompt
(§9 "Groups"); ``T_max`` is the generation limit, known before the data (§9 "The range").

>>> import numpy as np
>>> lp = np.log(np.full((1024, 8), 0.5))  # theta = roll: sum_t Dbar_t = 0
>>> out = certify_linear(lp, lp, np.ones((1024, 8)), T_max=8)
>>> out["dbar_sum_estimate"], out["bound"] < 0.2, out["unit"]
(0.0, True, 'sequence')
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trm_bounds.certify.confidence import upper_confidence_bound
from trm_bounds.certify.samples import divergence_terms, valid_log_ratios

__all__ = ["certify_linear", "certify_sums", "check_T_max", "unit_order", "ORDER_SEED",
           "check_reward_range", "check_rewards_in_range", "group_means", "CONSTANTS"]

#: The constant c of the Linear bound, by variant (docs/theory.md §4, §5, §9 Theorem 9.3).
CONSTANTS = {"published": 4.0, "sharp": 2.0, "proved_here": 1.0}

_WHERE = {"published": "4", "sharp": "5", "proved_here": "9 Theorem 9.3"}


def check_T_max(T_max: Any) -> int:
    """``T_max`` as a positive int; ``ValueError`` for None, bool, NaN, 0 or a non-integer.

    The range of ``X`` must be known before the data (docs/theory.md §9 "The range"): the
    longest response in the log is not a valid range.
    """
    if T_max is None:
        raise ValueError("T_max: give the generation limit (max response length, e.g. verl's "
                         "data.max_response_length) that bounded the rollout; the observed "
                         "maximum is not a valid range for a certified bound")
    if isinstance(T_max, bool | np.bool_) or not isinstance(T_max, int | float | np.number):
        raise ValueError(f"T_max: must be a positive integer, got {T_max!r}")
    v = float(T_max)
    if not (math.isfinite(v) and v == int(v) and v >= 1):
        raise ValueError(f"T_max: must be a positive integer, got {T_max!r}")
    return int(v)


def check_reward_range(reward_range: Any) -> tuple[float, float]:
    """``(lo, hi)`` finite with ``lo < hi``; ``ValueError`` otherwise."""
    try:
        lo, hi = (float(v) for v in reward_range)
    except (TypeError, ValueError):
        raise ValueError(f"reward_range: expected (lo, hi), got {reward_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"reward_range: need finite lo < hi, got ({lo!r}, {hi!r})")
    return lo, hi


def check_rewards_in_range(R: np.ndarray, lo: float, hi: float) -> None:
    """Every reward of ``R`` ``(N,)`` in ``[lo, hi]`` (NaN is not); ``ValueError`` naming the
    first row outside otherwise (docs/theory.md §9, reward ranges)."""
    bad = ~((R >= lo) & (R <= hi))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"rewards: row {i} has {float(R[i])}, outside reward_range "
                         f"[{lo:g}, {hi:g}]")


#: Seed of the order the betting bound takes the units in (:func:`unit_order`).
ORDER_SEED = 0


def unit_order(n: int, seed: int = ORDER_SEED) -> np.ndarray:
    """A uniformly random permutation of ``range(n)`` drawn with ``seed`` (numpy's PCG64: the
    same on every machine), independent of the values it orders (docs/theory.md §9, "Order").

    >>> sorted(unit_order(5).tolist())
    [0, 1, 2, 3, 4]
    """
    return np.random.default_rng(seed).permutation(n)


def group_means(x: np.ndarray, group_ids: Any) -> tuple[np.ndarray, np.ndarray]:
    r"""Means :math:`\bar X_g` ``(G,)`` of ``x`` ``(N,)`` per group, and the group sizes ``(G,)``.

    Groups are ordered by their id (``np.unique``) or, for ids that do not sort, by first
    appearance: an order that does not depend on the values of ``x``, as the betting bound
    requires (docs/theory.md §9 "Groups").
    """
    ids = np.asarray(group_ids)
    if ids.shape != x.shape:
        raise ValueError(f"group_ids: shape {ids.shape} differs from x {x.shape}")
    try:
        _, inv = np.unique(ids, return_inverse=True)
    except TypeError:  # ids of mixed types: number them in order of first appearance
        codes: dict[Any, int] = {}
        inv = np.array([codes.setdefault(g, len(codes)) for g in ids.tolist()], dtype=np.int64)
    inv = inv.reshape(-1)
    sizes = np.bincount(inv)
    keep = sizes > 0
    return (np.bincount(inv, weights=x)[keep] / sizes[keep]), sizes[keep]


def certify_sums(x: Any, *, T_max: Any = None, level: float = 0.95, method: str = "betting",
                 sharp: bool = False, group_ids: Any = None,
                 reward_range: Any = (0.0, 1.0), lengths: Any = None,
                 order_seed: int | None = ORDER_SEED) -> dict[str, Any]:
    r"""Certified Linear bound from the per-row sums :math:`X_i = \sum_t(1-\rho_{it})_+`.

    docs/theory.md §9 (Theorems 9.2, 9.3 and the conditions of §9).  ``x`` ``(N,)``: one value
    per row, in ``[0, T_max]``; ``lengths`` ``(N,)`` optional valid-token counts: rows of
    length 0 are not sequences (excluded, counted in ``n_empty_rows``), rows longer than
    ``T_max`` are an error naming the row; ``group_ids`` ``(N,)`` optional, one id per row:
    certify over the group means (range ``[0, T_max]``); ``reward_range = (lo, hi)``: the
    a-priori reward range (the caller checks the rewards); ``order_seed``: the betting bound
    is sequential, so the units are put in the order :func:`unit_order` draws with this seed
    (fixed before any data is seen), never in the log's own order, which may depend on the
    values (a log sorted by length); None keeps the log's order.  Other arguments and the
    returned keys as in :func:`certify_linear`.
    """
    T = check_T_max(T_max)
    lo, hi = check_reward_range(reward_range)
    xs = np.asarray(x, dtype=np.float64).reshape(-1)
    n_rows = xs.shape[0]
    keep = np.ones(n_rows, dtype=bool)
    if lengths is not None:
        L = np.asarray(lengths, dtype=np.float64).reshape(-1)
        if L.shape[0] != n_rows:
            raise ValueError(f"lengths: {L.shape[0]} values for {n_rows} rows")
        over = np.flatnonzero(L > T)
        if over.size:
            i = int(over[0])
            raise ValueError(f"row {i}: {int(L[i])} valid tokens, more than T_max = {T} (the "
                             "generation limit must bound every response)")
        keep = L > 0
    bad = ~np.isfinite(xs) | (xs < 0) | (xs > T)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"x: row {i}: value {float(xs[i])!r} outside [0, T_max = {T}]")
    n_seq = int(keep.sum())
    if n_seq == 0:
        raise ValueError("no sequence: every row is empty (no valid token)")
    xk = xs[keep]
    if group_ids is None:
        units, sizes, unit = xk, None, "sequence"
    else:
        ids = group_ids.detach().cpu().numpy() if hasattr(group_ids, "detach") else group_ids
        ids = np.asarray(ids)
        if ids.ndim != 1 or ids.shape[0] != n_rows:
            raise ValueError(f"group_ids: expected one id per row ({n_rows}), got shape "
                             f"{ids.shape}")
        units, sizes = group_means(xk, ids[keep])
        unit = "group"
    est = float(np.mean(units))  # unbiased for sum_t Dbar_t (each unit's mean is E X)
    if method == "betting" and order_seed is not None:  # the other bounds ignore the order
        units = units[unit_order(units.shape[0], order_seed)]
    ucb = max(upper_confidence_bound(units, upper=float(T), level=level, method=method), est)
    span, offset = hi - lo, max(lo, -hi, 0.0)  # offset = dist(0, [lo, hi])
    variant = "sharp" if sharp else "published"
    c = CONSTANTS[variant]
    bounds = {k: (span * v + offset) * ucb for k, v in CONSTANTS.items()}
    conditions = [
        ("rows are independent sequences sampled from pi_roll, one response per prompt (with "
         "several responses per prompt, e.g. GRPO groups, pass group_ids: otherwise the level "
         "is not guaranteed)") if unit == "sequence" else
        (f"groups are independent draws (a prompt, then its {_sizes_text(sizes)} responses, "
         "which may depend on each other, each marginally from pi_roll given the prompt; group "
         "sizes not chosen after seeing the responses): the certificate bounds the mean of the "
         f"{units.shape[0]} group means of X, each in [0, T_max]"),
        "the mask covers every token sampled from pi_roll, the end-of-sequence token included "
        "(docs/theory.md §9, 'Order, and what the mask must cover')",
        "rollout_log_probs are the sampling policy's own log-probabilities (after any top-p/"
        "top-k truncation)",
        f"range of the per-sequence variable uses T_max = {T}, the generation limit given a "
        "priori: no response can be longer (the longest observed response is not a valid range)",
        f"reward R in [{lo:g}, {hi:g}], given a priori (the caller checks the logged rewards): "
        f"the bound is (hi - lo) * c * U + dist(0, [lo, hi]) * U = ({span:g} * c + {offset:g}) "
        "* U (docs/theory.md §9, reward ranges)",
        "no absolute continuity needed: valid when the rollout was truncated by top-p/top-k "
        "(docs/theory.md §9, Theorem 9.3)",
        f"Linear bound |Error| <= c * sum_t Dbar_t with c = {c:g} ({variant}, docs/theory.md "
        f"§{_WHERE[variant]}); bound_proved_here uses c = 1, proved in docs/theory.md §9 "
        "Theorem 9.3 (this toolkit, not the paper) and attained by an instance",
        f"holds with probability >= {float(level)} over the sampled {unit}s ({method} bound)",
    ]
    if method == "betting":
        conditions.append(
            "the betting bound is sequential: its guarantee needs the units in an order that "
            "does not depend on their values; " + (
                f"they were put in the random order drawn with seed {order_seed}, fixed before "
                "the data, so a log sorted by length or reward does not bias it"
                if order_seed is not None else
                "they were taken in the log's order (order_seed=None): a log sorted by length "
                "or reward breaks the level"))
    if lengths is not None and n_seq < n_rows:
        conditions.append(f"{n_rows - n_seq} rows without a valid token are not sequences and "
                          "were excluded")
    out: dict[str, Any] = {
        "level": float(level),
        "method": method,
        "unit": unit,
        "n_units": int(units.shape[0]),
        "n_sequences": n_seq,
        "n_empty_rows": n_rows - n_seq,
        "group_size": None if sizes is None else {
            "min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
        "T_max": T,
        "reward_range": [lo, hi],
        "variant": variant,
        "constant": c,
        "dbar_sum_estimate": est,
        "dbar_sum_ucb": ucb,
        "width": ucb - est,
        "bound": bounds[variant],
        "bounds": bounds,
        "bound_proved_here": bounds["proved_here"],
        "conditions": conditions,
    }
    return out


def _sizes_text(sizes: np.ndarray) -> str:
    lo, hi = int(sizes.min()), int(sizes.max())
    return f"{lo}" if lo == hi else f"{lo} to {hi}"


def certify_linear(log_probs: Any, rollout_log_probs: Any, mask: Any, *, T_max: Any = None,
                   level: float = 0.95, sharp: bool = False, method: str = "betting",
                   group_ids: Any = None, reward_range: Any = (0.0, 1.0),
                   order_seed: int | None = ORDER_SEED) -> dict[str, Any]:
    r"""Certified Linear bound: ``bound = ((hi - lo) c + dist(0, [lo, hi])) * UCB(sum_t Dbar_t)``.

    docs/theory.md §9.  Parameters: ``log_probs``, ``rollout_log_probs``, ``mask`` of shape
    ``(B, T)`` (numpy or torch; :mod:`trm_bounds.certify.samples`), each row one sequence from
    :math:`\pi_{\text{roll}}` (all-masked rows are padding, not sequences); ``T_max`` (required):
    the generation limit, a positive integer known before the data; ``level = 1 - alpha``;
    ``sharp``: ``c = 2`` instead of the published ``c = 4``; ``method``: ``"betting"``,
    ``"bernstein"`` or ``"hoeffding"``; ``group_ids`` ``(B,)``: one id per row (rows sharing a
    prompt), certify over the group means; ``reward_range``: a-priori ``(lo, hi)``;
    ``order_seed``: the order the betting bound takes the units in (:func:`certify_sums`).

    Returns a dict: ``level``, ``method``, ``unit`` (``"sequence"`` or ``"group"``),
    ``n_units`` (sequences or groups the bound is over), ``n_sequences`` (non-empty rows),
    ``n_empty_rows``, ``group_size`` (``min``, ``median``, ``max``; None without groups),
    ``T_max``, ``reward_range``, ``variant``, ``constant``, ``dbar_sum_estimate`` (the sample
    mean of ``X`` over the units, i.e. of the group means with groups: unbiased for
    :math:`\sum_t\bar D_t`), ``dbar_sum_ucb`` (``U``), ``width``
    (``U`` - estimate), ``bound`` (the ``sharp``-selected paper constant), ``bounds`` (all three
    constants ``published`` 4, ``sharp`` 2, ``proved_here`` 1), ``bound_proved_here`` and
    ``conditions`` (every assumption, as strings).
    """
    T = check_T_max(T_max)
    r, valid = valid_log_ratios(log_probs, rollout_log_probs, mask)
    x = divergence_terms(r, valid).sum(axis=1)  # (B,) in [0, T_i]
    lengths = valid.sum(axis=1)  # (B,)
    return certify_sums(x, T_max=T, level=level, method=method, sharp=sharp,
                        group_ids=group_ids, reward_range=reward_range, lengths=lengths,
                        order_seed=order_seed)
