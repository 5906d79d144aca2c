"""A subcommand whose optional dependency is missing says which extra installs it, in one line."""

import sys

import pytest

from trm_bounds.cli import _EXTRA_OF, main


@pytest.mark.parametrize("missing, argv", [
    ("matplotlib", ["plot", "--out", "{tmp}/figs"]),
    ("torch", ["evaluate", "--demo", "--no-figures", "--out", "{tmp}/ev"]),
])  # fmt: skip
def test_missing_extra_is_one_line(missing, argv, tmp_path, monkeypatch, capsys):
    """With the module made unimportable (``sys.modules[name] = None``) and the package's modules
    that import it unloaded, the command exits 1 with one line naming the module and the extra."""
    for name in list(sys.modules):
        if name.startswith(("trm_bounds.plot", "trm_bounds.masking", "trm_bounds.evaluate")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)
    status = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(err) == 1, err
    assert missing in err[0] and f"[{_EXTRA_OF[missing]}]" in err[0]


def test_extras_named_exist_in_pyproject():
    """Every extra the message names is declared in pyproject.toml."""
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    assert set(_EXTRA_OF.values()) <= set(extras)
