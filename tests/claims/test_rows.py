"""The staleness rule of ``paper_repro.md`` (:func:`trm_bounds.claims.stale_rows`)."""

from __future__ import annotations

from trm_bounds.claims import stale_rows
from trm_bounds.claims.rows import Row, num, render_markdown


def test_only_trained_rows_may_move_and_only_a_little():
    """The transformer row (†) accepts the movement measured between two CPUs (6.25 -> 6.21,
    5.33 -> 5.65) but not a factor 2 or a new violation; any other row must match digit for
    digit, and a row more or less is stale."""
    row = ("| 15 | bounds hold | `cmd` | 0 violations over 18 pairs; precision_bf16 6.25, "
           "precision_fp16 5.33 † | x | new |")  # fmt: skip
    moved = row.replace("6.25", "6.21").replace("5.33", "5.65")
    assert stale_rows(row, moved) == []
    assert stale_rows(row, row.replace("6.25", "12.5"))  # a factor 2
    assert stale_rows(row, row.replace("0 violations", "1 violations"))
    assert stale_rows(row, row.replace("6.25", "6.25 extra"))  # text, not numbers
    plain = row.replace(" †", "")
    assert stale_rows(plain, plain.replace("6.25", "6.26"))  # unmarked rows: exact
    assert stale_rows(plain, plain + "\n| 16 |")  # a row more


def test_render_numbers_rows_marks_trained_ones_and_escapes_bars():
    """Rows are numbered from 1, ``|`` inside a cell is escaped, trained rows end in †."""
    rows = [Row("a |x|", "c", "o", "p", "s"), Row("b", "c", num(6.254, 3), "p", "s", trained=True)]
    lines = render_markdown(rows).splitlines()[-2:]
    assert lines[0] == "| 1 | a \\|x\\| | `c` | o | p | s |"
    assert lines[1] == "| 2 | b | `c` | 6.25 † | p | s |"
