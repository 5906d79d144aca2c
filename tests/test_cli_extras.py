"""A subcommand whose optional dependency is missing says which extra installs it, in one line."""

import sys

import pytest

from trm_bounds.cli import _EXTRA_OF, main


@pytest.mark.parametrize("missing, argv, extra", [
    ("matplotlib", ["plot", "--out", "{tmp}/figs"], "plot"),
    ("torch", ["evaluate", "--demo", "--no-figures", "--out", "{tmp}/ev"], "logs"),
    ("matplotlib", ["evaluate", "--demo", "--out", "{tmp}/ev"], "plot"),
])  # fmt: skip
def test_missing_extra_is_one_line(missing, argv, extra, tmp_path, monkeypatch, capsys):
    """With the module made unimportable (``sys.modules[name] = None``) and the package's modules
    that import it unloaded, the command exits 1 with one line naming the module and the extra,
    before anything is written."""
    for name in list(sys.modules):
        if name.startswith(("trm_bounds.plot", "trm_bounds.masking", "trm_bounds.evaluate")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, missing, None)
    status = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(err) == 1, err
    assert missing in err[0] and f"trm-bounds[{extra}]" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_every_missing_extra_in_one_hint(tmp_path, monkeypatch, capsys):
    """Issue 16, item 9: a command missing several extras names all of them in one line."""
    for name in ("torch", "matplotlib"):
        monkeypatch.setitem(sys.modules, name, None)
    status = main(["plot", "--recompute", "--out", str(tmp_path / "f")])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1
    assert "matplotlib and torch" in err[0] and "trm-bounds[plot,torch]" in err[0]


def test_extras_named_exist_in_pyproject():
    """Every extra the message names is declared in pyproject.toml."""
    from pathlib import Path

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    extras = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    assert set(_EXTRA_OF.values()) <= set(extras)
