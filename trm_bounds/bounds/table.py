"""The bounds as a text table: every bound of ``docs/theory.md §4``, published and sharp (§5).

The text of ``trm-bounds bounds`` (and the number format of the paper table,
:func:`trm_bounds.paper.format_paper_table`).  Rows follow the registry
(:data:`~trm_bounds.bounds.BOUNDS`): label, route, scaling and the two values.
"""

from __future__ import annotations

from collections.abc import Mapping

from trm_bounds.bounds.registry import BOUND_NAMES, BOUNDS

__all__ = ["format_value", "format_bounds_table", "SYMBOLS"]

#: The legend of the table: its inputs and the two constant families (docs/theory.md §1-§5).
SYMBOLS = """\
symbols (docs/theory.md §1-§4; KL is forward, KL(pi_roll || pi_theta), in nats):
  T         horizon: the response length (maximum length with an absorbing end token)
  eps       D_TV^{tok,max}: the largest per-context total variation
            TV(c) = 1/2 sum_v |pi_theta(v|c) - pi_roll(v|c)| over reachable contexts
  delta     D_KL^{tok,max}: the largest per-context KL(pi_roll(.|c) || pi_theta(.|c))
  dkl-seq   D_KL^seq = sum_t E_{c_t ~ d_t^roll} KL(c_t): the sequence-level KL
  dtv-seq   D_TV^seq = E_x TV(P^roll(.|x), P^theta(.|x)): the sequence-level TV
  Dbar_t    E_{c_t ~ d_t^roll} TV(c_t); the Adaptive and Linear bounds use the worst
            case Dbar_t = min(1, eps) here
  published the paper's constants (leading 4; classical 2T(T-1)eps^2 and T(T-1)delta)
  sharp     docs/theory.md §5 (leading 2; classical T(T-1)eps^2 and T(T-1)delta/2)
"""


def format_value(x: float) -> str:
    """One number for a table column: 4 decimals in ``[1e-3, 1e3)``, 1 decimal up to ``1e6``,
    else 4 significant digits in scientific notation.

    >>> format_value(8.192), format_value(1677.3), format_value(1.6773e7)
    ('8.1920', '1677.3', '1.6773e+07')
    """
    if x == 0 or 1e-3 <= abs(x) < 1e6:
        return f"{x:.4f}" if abs(x) < 1e3 else f"{x:.1f}"
    return f"{x:.4e}"


def format_bounds_table(
    published: Mapping[str, float], sharp: Mapping[str, float], *, sharp_first: bool = False
) -> str:
    """Every bound with its route and scaling, published and sharp constants side by side,
    then the tightest bound of the leading column (``unified`` left out: it is the minimum).

    ``published``, ``sharp``: :func:`~trm_bounds.bounds.compute_bounds` at scalar ``T`` with
    ``sharp=False`` and ``sharp=True``; ``sharp_first``: the sharp column first, and the
    tightest bound named among the sharp values.

    >>> from trm_bounds.bounds import compute_bounds
    >>> kw = dict(eps=5e-3, delta=1e-4, dkl_seq=0.01, dtv_seq=0.05)
    >>> pub, sharp = (compute_bounds(4096, **kw, sharp=s) for s in (False, True))
    >>> format_bounds_table(pub, sharp).splitlines()[-1]
    'tightest (published): Mixed (TV) = 4.0960'
    """
    cols = ("sharp", "published") if sharp_first else ("published", "sharp")
    vals = {"published": published, "sharp": sharp}
    head = f"{'bound':<22} {'route':<20} {'scaling':<22} {cols[0]:>13} {cols[1]:>13}"
    lines = [head, "-" * len(head)]
    for name in BOUND_NAMES:
        s = BOUNDS[name]
        lines.append(
            f"{s.label:<22} {s.route:<20} {s.scaling:<22} "
            f"{format_value(vals[cols[0]][name]):>13} {format_value(vals[cols[1]][name]):>13}"
        )
    lead = vals[cols[0]]
    tight = min((n for n in BOUND_NAMES if n != "unified"), key=lambda n: lead[n])
    lines.append(f"tightest ({cols[0]}): {BOUNDS[tight].label} = {format_value(lead[tight])}")
    return "\n".join(lines)
