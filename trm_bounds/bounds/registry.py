r"""The bound registry: one :class:`BoundSpec` per bound of ``docs/theory.md §4``.

Everything that describes a bound lives here once -- its formula, labels, section, expected
growth in ``T``, family, the divergences it reads, membership in ``B*`` and its plot style
(as data: colour, marker and line style; this module imports no plotting library).  The
symbolic module, the command line, the figures and the tests read it.  Adding a bound costs
its formula in :mod:`trm_bounds.bounds.formulas` plus one entry below (and, for the array
path and the symbolic check, one line each in :mod:`~trm_bounds.bounds.vectorised` and
:mod:`trm_bounds.symbolic`; the registry-parametrised tests find a missing one).

>>> BOUNDS["pm_kl"].exponents["uniform"], BOUNDS["mix_kl"].needs
('3/2', ('delta', 'dkl_seq'))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from trm_bounds.bounds import formulas as F

__all__ = ["BoundSpec", "BOUNDS", "BOUND_NAMES", "UNIFIED_MEMBERS", "DIVERGENCES"]

#: The divergence inputs a bound can read (``docs/theory.md §3``), in signature order.
DIVERGENCES = ("eps", "delta", "dkl_seq", "dtv_seq", "dbar")


@dataclass(frozen=True)
class BoundSpec:
    """One bound of ``docs/theory.md §4``.

    Attributes:
        name: key in :data:`BOUND_NAMES` and in every result dict.
        label: plain-text label (tables, legends).
        label_tex: matplotlib mathtext label.
        fn: the scalar formula ``fn(T, **{n: ... for n in needs}, sharp=...)``; ``None`` for
            ``unified`` (the minimum of :data:`UNIFIED_MEMBERS`).
        needs: the divergences the formula reads (a subset of :data:`DIVERGENCES`).
        family: ``"TV"``, ``"KL"``, ``"hybrid"`` (both) or ``"min"`` (``unified``).
        route: how the divergences enter, in words (e.g. ``"Dbar x min(TV, KL)"``).
        scaling: the expected growth in ``T``, in words (``docs/theory.md §4`` table).
        exponents: leading exponent of ``T`` per regime, as a string fraction -- ``"uniform"``
            (``dkl_seq = T delta``) and ``"fixed"`` (sequence divergences fixed), in the
            small-divergence regime where no cap binds (checked by
            :func:`trm_bounds.symbolic.leading_exponent`).
        theory: the section and table row, e.g. ``"§4 row 4"`` (sharp constant: ``§5``).
        capped: whether the formula carries ``min(1, .)`` caps (all but the classical forms).
        unified_member: whether the bound is one of the minimands of ``B*``.
        color: a matplotlib colour (hex string), one per bound, shared by every figure.
        marker: a matplotlib marker.
        linestyle: a matplotlib line style.
    """

    name: str
    label: str
    label_tex: str
    fn: Callable[..., float | np.ndarray] | None
    needs: tuple[str, ...]
    family: str
    route: str
    scaling: str
    exponents: dict[str, str] = field(hash=False)
    theory: str
    capped: bool = True
    unified_member: bool = False
    color: str = "#000000"
    marker: str = ""
    linestyle: str = "-"

    @property
    def args(self) -> tuple[str, ...]:
        """Alias of :attr:`needs` (the keyword arguments of :attr:`fn` besides ``T``, ``sharp``)."""
        return self.needs


# Families share a hue; KL and TV variants differ in lightness (matplotlib's tab20 pairs),
# except Adaptive: cyan (KL), pink (TV), purple (hybrid), so the three never read as one.
# Red stays free for the exact errors the figures draw beside the bounds.
_SPECS = (
    BoundSpec("classical_tv", "Classical (TV)", r"Classical (TV) $2T(T-1)\varepsilon^2$",
              F.classical_tv, ("eps",), "TV", "TV", "T^2", {"uniform": "2", "fixed": "2"},
              "§4 row 1", capped=False, color="#c7c7c7", marker="D"),
    BoundSpec("classical_kl", "Classical (KL)", r"Classical (KL) $T(T-1)\delta$",
              F.classical_kl, ("delta",), "KL", "KL", "T^2", {"uniform": "2", "fixed": "2"},
              "§4 row 2", capped=False, color="#7f7f7f", marker="s"),
    BoundSpec("coupling", "Coupling", r"Coupling", F.coupling, ("eps",), "TV", "TV",
              "T^2; T once T eps > 1", {"uniform": "2", "fixed": "2"}, "§4 row 3",
              unified_member=True, color="#8c564b", marker="v"),
    BoundSpec("pm_kl", "Pinsker-Marginal (KL)", r"Pinsker-Marginal (KL)", F.pm_kl, ("delta",),
              "KL", "KL", "T^{3/2}", {"uniform": "3/2", "fixed": "3/2"}, "§4 row 4",
              unified_member=True, color="#1f77b4", marker="o"),
    BoundSpec("pm_tv", "Pinsker-Marginal (TV)", r"Pinsker-Marginal (TV)", F.pm_tv,
              ("eps", "delta"), "hybrid", "TV x KL", "T^{3/2}",
              {"uniform": "3/2", "fixed": "3/2"}, "§4 row 5", unified_member=True,
              color="#aec7e8", marker="^"),
    BoundSpec("mix_kl", "Mixed (KL)", r"Mixed (KL) $2T\sqrt{\delta D_{KL}^{seq}}$", F.mix_kl,
              ("delta", "dkl_seq"), "KL", "KL x seq-KL", "T (D_KL^seq fixed)",
              {"uniform": "3/2", "fixed": "1"}, "§4 row 6", unified_member=True,
              color="#2ca02c", marker="P"),
    BoundSpec("mix_tv", "Mixed (TV)", r"Mixed (TV) $4T\varepsilon D_{TV}^{seq}$", F.mix_tv,
              ("eps", "dtv_seq"), "TV", "TV x seq-TV", "T (D_TV^seq fixed)",
              {"uniform": "3/2", "fixed": "1"}, "§4 row 7", unified_member=True,
              color="#98df8a", marker="X"),
    BoundSpec("adaptive_kl", "Adaptive (KL)", r"Adaptive (KL)", F.adaptive_kl,
              ("eps", "delta", "dbar"), "hybrid", "Dbar x KL", "data-dependent",
              {"uniform": "3/2", "fixed": "3/2"}, "§4 row 8", color="#17becf", marker="<"),
    BoundSpec("adaptive_tv", "Adaptive (TV)", r"Adaptive (TV)", F.adaptive_tv,
              ("eps", "delta", "dbar"), "TV", "Dbar x TV", "data-dependent",
              {"uniform": "2", "fixed": "2"}, "§4 row 9", color="#e377c2", marker=">"),
    BoundSpec("adaptive_hybrid", "Adaptive (hybrid)", r"Adaptive (hybrid)", F.adaptive_hybrid,
              ("eps", "delta", "dbar"), "hybrid", "Dbar x min(TV, KL)", "data-dependent",
              {"uniform": "3/2", "fixed": "3/2"}, "§4 row 10", unified_member=True,
              color="#9467bd", marker="*"),
    BoundSpec("linear", "Linear", r"Linear $4\sum_t \bar D_t$", F.linear, ("eps", "dbar"), "TV",
              "Dbar", "T", {"uniform": "1", "fixed": "1"}, "§4 row 11", color="#bcbd22",
              marker="h"),
    BoundSpec("unified", "Unified B*", r"Unified $B^*$", None, (), "min", "min of six", "-",
              {"uniform": "3/2", "fixed": "1"}, "§4 row 12", color="#000000", marker="",
              linestyle="--"),
)

#: name -> :class:`BoundSpec`, in the order of ``docs/theory.md §4``.
BOUNDS: dict[str, BoundSpec] = {s.name: s for s in _SPECS}
#: The twelve bound names, in the order of ``docs/theory.md §4``.
BOUND_NAMES: tuple[str, ...] = tuple(BOUNDS)
#: Members of the unified bound ``B*`` (in the order of its definition, ``docs/theory.md §4``).
UNIFIED_MEMBERS: tuple[str, ...] = F.UNIFIED_MEMBERS
if {s.name for s in _SPECS if s.unified_member} != set(UNIFIED_MEMBERS):
    raise RuntimeError("the registry's unified_member flags disagree with formulas.unified")
