"""``trm_bounds.margins``: a printed number or decision never changes within its margin.

The property that makes text CPU-independent: when :func:`text` prints ``s`` for ``x``, every
value within a relative ``TEXT_GUARD`` of ``x`` (so every value another CPU could compute,
float noise being far smaller) prints ``s`` too; when it cannot guarantee that, it raises.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trm_bounds.margins import (
    REL_NOISE,
    TEXT_GUARD,
    MarginError,
    above,
    agreed,
    residual,
    text,
)

SPECS = (".2f", ".3f", ".0f", ".1e", ".3g", ".4g", ".6g")


@settings(max_examples=300, deadline=None)
@given(x=st.floats(-1e6, 1e6, allow_nan=False), spec=st.sampled_from(SPECS),
       u=st.floats(-1.0, 1.0))  # fmt: skip
def test_printed_text_is_the_same_for_every_value_within_the_guard(x, spec, u):
    """``text(x)`` either raises or equals the text of ``x (1 + u TEXT_GUARD)`` for every
    ``|u| <= 1`` (up to the sign of a printed zero)."""
    try:
        s = text(x, spec, what="x")
    except MarginError:
        return
    y = x * (1 + u * TEXT_GUARD)
    t = format(y, spec)
    assert t == s or (t.startswith("-") and t[1:] == s and float(t) == 0)


def test_text_refuses_values_on_a_rounding_boundary_and_prints_others():
    """0.125 with two decimals (a tie) and 398/400 = 0.995 are refused; a value a relative
    1e-7 away from the tie (10 TEXT_GUARD) is printed."""
    for x in (0.125, 398 / 400):
        with pytest.raises(MarginError, match="rounding boundary"):
            text(x, ".2f", what="x")
    assert text(0.125 * (1 + 10 * TEXT_GUARD), ".2f", what="x") == "0.13"
    assert text(-1e-17, ".2f", what="x", atol=1e-6) == "0.00"  # a signed zero is zero
    assert TEXT_GUARD >= 10 * REL_NOISE


def test_above_and_residual_refuse_inside_their_margins():
    """``above`` decides ``x > t`` only at a relative TEXT_GUARD from ``t``; ``residual``
    prints ``< tol`` only for ``x < tol / 100`` and refuses within a factor 100 of tol."""
    assert above(2.0, 1.0, what="x") and not above(0.5, 1.0, what="x")
    with pytest.raises(MarginError):
        above(1.0 + TEXT_GUARD / 2, 1.0, what="x")
    assert residual(1e-15, 1e-12, what="r") == "< 1e-12"
    with pytest.raises(MarginError):
        residual(1e-12, 1e-12, what="r")
    assert residual(0.25, 1e-12, what="r") == "= 2.5e-01"


def test_agreed_returns_a_shared_outcome_and_refuses_a_split():
    """``agreed`` runs the decision with the noise counted against and for it."""
    assert agreed(lambda s: 0.3 + s * 1e-9 > 0.25, what="d") is True
    with pytest.raises(MarginError, match="d: the outcome changes"):
        agreed(lambda s: 0.25 + s * 1e-9 > 0.25, what="d")
