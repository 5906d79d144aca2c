"""The studies' command lines (trm_bounds/studies/_cli.py): help per option, ``--out`` a folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from trm_bounds.results import SHIPPED_RESULTS, checkout_root, default_result_path
from trm_bounds.studies import STUDIES
from trm_bounds.studies._cli import field_help, parse_args


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_every_option_has_help(name, capsys):
    """Issue 16, item 12: every field of every study's Args has help text (its comment), and
    the help screen is plain text."""
    mod = STUDIES[name].module()
    helps = field_help(mod.Args)
    fields = [f.name for f in dataclasses.fields(mod.Args) if f.name != "size"]
    assert [f for f in fields if not helps.get(f)] == []
    with pytest.raises(SystemExit):
        parse_args(mod.Args, ["--help"], description=mod.__doc__.split("\n")[0],
                   sizes=mod.SIZES)  # fmt: skip
    out = capsys.readouterr().out
    assert "--out DIR" in out and "output folder" in out
    assert "``" not in out and ":func:" not in out  # plain text, no reST
    assert helps[fields[-1]] in " ".join(out.split())


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_out_is_a_folder(name, tmp_path):
    """``--out DIR`` puts the study's result file (and exported instances) into DIR; a value
    ending in .json is still the file itself."""
    mod = STUDIES[name].module()
    args = parse_args(mod.Args, ["--out", str(tmp_path)], description="d", sizes=mod.SIZES)
    want = tmp_path / mod.RESULT
    assert Path(args.out) == (want.parent if STUDIES[name].outputs_folder else want)
    if hasattr(args, "instances_out"):
        assert Path(args.instances_out) == tmp_path / mod.INSTANCES
    old = parse_args(mod.Args, ["--out", str(tmp_path / "x.json")], description="d",
                     sizes=mod.SIZES)  # fmt: skip
    assert old.out == str(tmp_path / "x.json")


def test_default_result_paths():
    """In a checkout the figures' result files default to trm_bounds/data/results (the one
    home, shipped in the wheel); the other studies' to experiments/results."""
    root = checkout_root()
    if root is None:
        pytest.skip("not a source checkout")
    for name, study in STUDIES.items():
        home = SHIPPED_RESULTS if (SHIPPED_RESULTS / study.result).is_file() else (
            root / "experiments" / "results")
        assert default_result_path(study.result) == home / study.result, name
