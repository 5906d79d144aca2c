r"""The exact report: the one typed result of every exact engine (tree, finite-state, neural).

An :class:`ExactReport` holds the exact quantities of docs/theory.md §1-§3 of one policy
pair and every bound of §4 (published constants) and §5 (sharp constants) evaluated at them.
All KL divergences are forward, ``KL(pi_roll || pi_theta)``, in nats.

The report is also a read-only mapping over the keys of :meth:`ExactReport.to_dict` (the
JSON keys of result and instance files), so ``report["error"]`` and ``dict(report)`` work.
A field that an engine cannot compute is ``None`` and is left out of the keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

__all__ = [
    "ExactReport",
    "REPORT_KEYS",
    "EXPECTED_KEYS",
    "EXPECTED_RTOL",
    "EXPECTED_ATOL",
    "compare_reports",
    "format_report",
]

#: The keys every engine computes (the core of every report).
REPORT_KEYS = (
    "J_roll",
    "J_theta",
    "L_prime",
    "error",
    "error_identity",
    "error_max_over_rewards",
    "eps",
    "delta",
    "Dbar",
    "D_KL_seq",
    "D_TV_seq",
    "bounds_published",
    "bounds_sharp",
)

#: The keys an instance file stores as its ``expected`` report (those present).
EXPECTED_KEYS = (*REPORT_KEYS, "baseline_b", "L_baseline")

#: Relative tolerance (with absolute floor :data:`EXPECTED_ATOL`) for ``expected`` values.
EXPECTED_RTOL = 1e-9
EXPECTED_ATOL = 1e-12

_INT_FIELDS = ("V", "T", "n_prompts", "n_sequences")
_STR_FIELDS = ("error_max_over_rewards_scope", "D_TV_seq_method")


@dataclass(frozen=True)
class ExactReport(Mapping[str, Any]):
    r"""Every exact quantity of one policy pair (docs/theory.md §1-§5), one field per key.

    Always present (every engine):

    - ``J_roll``, ``J_theta``: ``J(pi) = E_x E_{y~pi}[R]``;
    - ``L_prime``: centred surrogate ``L' = E_roll[R sum_t (rho_t - 1)]`` (§2);
    - ``error``: ``J(theta) - J(roll) - L'`` (§2, the definition);
    - ``error_identity``: the same error computed a second, independent way (tree engine:
      telescoping identity; finite-state DP: ``L'`` from the forward first moment; neural:
      telescoping identity in log space);
    - ``error_max_over_rewards``: ``max_R |Error| = 1/2 sum |c|`` over the rewards of
      ``error_max_over_rewards_scope`` (all rewards where it is ``None``);
    - ``eps``, ``delta``: largest per-context TV and forward KL over contexts reached with
      positive probability by either policy (§3);
    - ``Dbar``: ``Dbar_t = E_{d_t^roll} TV(c_t)``, ``t = 1..T`` (§4);
    - ``D_KL_seq``: chain rule ``sum_t E_{d_t^roll} KL(c_t)``, nats (§3);
    - ``D_TV_seq``: ``E_x TV(P^roll(.|x), P^theta(.|x))`` (§3), exact unless
      ``D_TV_seq_method`` names a certified upper bound, at which every bound stays valid
      (bounds are non-decreasing in it);
    - ``bounds_published``, ``bounds_sharp``: ``trm_bounds.bounds.compute_bounds`` at these
      values with the exact ``Dbar_t`` (§4 constants and the sharp ones of §5).

    Optional (``None``: the engine does not compute it):

    - ``D_KL_seq_direct``: ``E_x KL(P^roll(.|x) || P^theta(.|x))`` over whole sequences
      (tree, neural);
    - ``error_max_over_rewards_direct``: ``max_R |Error|`` from the untelescoped coefficients
      (tree);
    - ``baseline_b``, ``L_baseline``: a baseline ``b`` and the paper's surrogate
      ``L_b = E_roll[(R - b) sum_t rho_t]`` (*not* ``L'``) (tree);
    - ``V``, ``T``, ``n_prompts``, ``n_sequences``: sizes (``n_sequences`` only where all
      sequences are enumerated);
    - ``error_max_over_rewards_scope``: the rewards ``error_max_over_rewards`` maximises over;
      ``None`` means all rewards (tree, neural); ``"final_state_rewards"`` for the
      finite-state DP, whose rewards are functions of the final state;
    - ``D_TV_seq_method``: how ``D_TV_seq`` was obtained; ``None`` means exact (tree,
      neural); the finite-state DP always sets it: ``"exact"`` (enumerated) or the certified
      upper bound used (``"bhattacharyya_upper"``, ``"pinsker_upper"``, ``"dbar_sum_upper"``,
      ``"coupling_upper"``);
    - ``D_TV_seq_lower``: the certified lower bound ``1 - BC`` of ``D_TV_seq`` and
      ``bhattacharyya``: the coefficient ``BC = E_x sum_y sqrt(P^roll P^theta)`` (finite-state);
    - ``L_prime_first_moment``: ``L'`` from the forward first-moment pass (finite-state);
    - ``error_from_J``: ``J(theta) - J(roll) - L'`` where ``error`` is computed in another
      form (neural).

    >>> rep = ExactReport(J_roll=0.5, J_theta=0.52, L_prime=0.0, error=0.02,
    ...     error_identity=0.02, error_max_over_rewards=0.02, eps=0.1, delta=0.02,
    ...     Dbar=[0.1, 0.1], D_KL_seq=0.04, D_TV_seq=0.1,
    ...     bounds_published={"coupling": 0.04}, bounds_sharp={"coupling": 0.02})
    >>> rep["error"], "baseline_b" in rep, rep.to_dict()["Dbar"]
    (0.02, False, [0.1, 0.1])
    """

    J_roll: float
    J_theta: float
    L_prime: float
    error: float
    error_identity: float
    error_max_over_rewards: float
    eps: float
    delta: float
    Dbar: list[float]
    D_KL_seq: float
    D_TV_seq: float
    bounds_published: dict[str, float]
    bounds_sharp: dict[str, float]
    D_KL_seq_direct: float | None = None
    error_max_over_rewards_direct: float | None = None
    baseline_b: float | None = None
    L_baseline: float | None = None
    V: int | None = None
    T: int | None = None
    n_prompts: int | None = None
    n_sequences: int | None = None
    error_max_over_rewards_scope: str | None = None
    D_TV_seq_method: str | None = None
    D_TV_seq_lower: float | None = None
    bhattacharyya: float | None = None
    L_prime_first_moment: float | None = None
    error_from_J: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name in _STR_FIELDS:
                continue
            if f.name == "Dbar":
                value = np.asarray(value, dtype=np.float64).ravel().tolist()
            elif f.name in ("bounds_published", "bounds_sharp"):
                value = {str(k): float(np.asarray(v)) for k, v in value.items()}
            elif f.name in _INT_FIELDS:
                value = int(value)
            else:
                value = float(value)
            object.__setattr__(self, f.name, value)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready plain Python, every field that is not ``None``."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, list):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            out[f.name] = value
        return out

    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key, None) if key in _FIELD_NAMES else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (name for name in _FIELD_NAMES if getattr(self, name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    __hash__ = None  # type: ignore[assignment]  # mutable containers inside


_FIELD_NAMES = tuple(f.name for f in fields(ExactReport))


def _as_float(value: Any) -> float | None:
    """A JSON number or the strings "inf"/"-inf"/"nan" as float; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.floating, np.integer)):
        return float(value)
    if isinstance(value, str) and value in ("inf", "-inf", "nan"):
        return float(value)
    return None


def compare_reports(expected: Any, actual: Any, prefix: str = "") -> list[str]:
    """Mismatches between an ``expected`` report and a computed one, as ``key: exp vs got``.

    Numbers agree when ``|a - e| <= 1e-9 max(|a|, |e|) + 1e-12`` (:data:`EXPECTED_RTOL`,
    :data:`EXPECTED_ATOL`) or both are the same non-finite value. Only keys in ``expected``
    are compared; ``actual`` may be an :class:`ExactReport` or a plain mapping.

    >>> compare_reports({"error": 0.02, "Dbar": [0.1]}, {"error": 0.0200001, "Dbar": [0.1]})
    ['error: expected 0.02, got 0.0200001']
    """
    if isinstance(actual, ExactReport):
        actual = actual.to_dict()
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return [f"{prefix or 'report'}: expected an object"]
        out = []
        for key, value in expected.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in actual:
                out.append(f"{name}: not computed")
            else:
                out.extend(compare_reports(value, actual[key], name))
        return out
    if isinstance(expected, list):
        if not isinstance(actual, (list, tuple)) or len(actual) != len(expected):
            return [f"{prefix}: expected a list of length {len(expected)}"]
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out.extend(compare_reports(e, a, f"{prefix}[{i}]"))
        return out
    e, a = _as_float(expected), _as_float(actual)
    if e is None or a is None:
        return [] if expected == actual else [f"{prefix}: expected {expected!r}, got {actual!r}"]
    if math.isfinite(e) and math.isfinite(a):
        ok = abs(a - e) <= EXPECTED_RTOL * max(abs(a), abs(e)) + EXPECTED_ATOL
    else:
        ok = (math.isnan(e) and math.isnan(a)) or e == a
    return [] if ok else [f"{prefix}: expected {e!r}, got {a!r}"]


def format_report(report: ExactReport, *, name: str | None = None) -> str:
    """A readable table: exact quantities, then each bound with ``|Error|/B`` and ``max_R/B``.

    ``name`` heads the table (the instance id); the sizes follow where the report has them.
    """
    sizes = " ".join(
        f"{label}={getattr(report, key)}"
        for key, label in (("V", "V"), ("T", "T"), ("n_prompts", "prompts"),
                           ("n_sequences", "sequences"))
        if getattr(report, key) is not None
    )  # fmt: skip
    head = f"instance {name!r}" if name is not None else "exact report"
    lines = [f"{head}: {sizes}" if sizes else head]
    scalars = [k for k in REPORT_KEYS if not isinstance(report[k], (list, dict))]
    extras = ("D_KL_seq_direct", "D_TV_seq_lower", "bhattacharyya", "L_prime_first_moment")
    scalars[scalars.index("D_KL_seq") + 1 : scalars.index("D_KL_seq") + 1] = [
        k for k in extras if getattr(report, k) is not None
    ]
    for key in scalars:
        lines.append(f"  {key:<24s} {report[key]: .10g}")
    if report.D_TV_seq_method not in (None, "exact"):
        lines.append(f"  {'D_TV_seq_method':<24s} {report.D_TV_seq_method}")
    if report.error_max_over_rewards_scope is not None:
        lines.append(f"  {'max over rewards':<24s} {report.error_max_over_rewards_scope}")
    if report.L_baseline is not None:
        b = report.baseline_b if report.baseline_b is not None else 0.0
        lines.append(f"  {'L_baseline (b=' + format(b, 'g') + ')':<24s} "
                     f"{report.L_baseline: .10g}   (paper's L, not L')")  # fmt: skip
    T = len(report.Dbar)
    dbar = ", ".join(f"{v:.4g}" for v in report.Dbar[:8])
    lines.append(f"  {'Dbar_t':<24s} [{dbar}{', ...' if T > 8 else ''}]")
    err, emax = abs(report.error), report.error_max_over_rewards
    lines.append(
        f"  {'bound':<16s} {'published':>12s} {'|err|/B':>9s} {'maxR/B':>9s}"
        f" {'sharp':>12s} {'|err|/B':>9s} {'maxR/B':>9s}"
    )

    def ratio(x: float, b: float) -> str:
        return f"{x / b:9.4f}" if b > 0 else f"{'-' if x == 0 else 'inf':>9s}"

    for bound, pub in report.bounds_published.items():
        sh = report.bounds_sharp[bound]
        lines.append(
            f"  {bound:<16s} {pub:12.5g} {ratio(err, pub)} {ratio(emax, pub)}"
            f" {sh:12.5g} {ratio(err, sh)} {ratio(emax, sh)}"
        )
    return "\n".join(lines)
