"""Claims about the theorems (:mod:`trm_bounds.claims.theorems`)."""

from __future__ import annotations

from pathlib import Path

from trm_bounds.claims import CLAIMS

RESULTS = Path(__file__).resolve().parents[2] / "trm_bounds" / "data" / "results"


def test_a_failing_check_fails_its_group(monkeypatch):
    """The tight-instance group fails when the instance is made untight (eps / 2 while the
    row expects 2 eps^2 at eps): a check that cannot fail would pass here."""
    import trm_bounds.instances.named as named

    real = named.tight_instance
    assert CLAIMS["tight"](RESULTS)[1]
    monkeypatch.setattr(named, "tight_instance", lambda eps: real(eps / 2))
    assert not CLAIMS["tight"](RESULTS)[1]


def test_the_constant_row_agrees_with_theorem_9_3():
    """Row 16 (docs/theory.md §5, §9): the constant 2 cannot be lowered for exactly the bounds
    the tight instance attains, which excludes Linear, and Linear holds with constant 1 with
    no violation (issue 20: the row said "cannot be lowered" for every bound)."""
    (row,), ok = CLAIMS["tight"](RESULTS)
    assert ok
    attained = row.status.split("instance attains (")[1].split(";")[0]
    assert "Coupling" in attained and "Linear" not in attained
    assert "Linear holds with constant 1 (docs/theory.md §9, Theorem 9.3)" in row.status
    assert "Linear with constant 1: 0 violations" in row.ours
