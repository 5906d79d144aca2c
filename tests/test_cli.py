"""``trm-bounds``: every user error is one line on stderr and a non-zero exit, never a traceback,
and nothing partial is left behind; flags are honoured, not ignored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trm_bounds.cli import evaluate_main, main, plot_main

ROOT = Path(__file__).resolve().parents[1]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``trm-bounds ARGV`` in this process: (status, stdout, stderr)."""
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status: int, err: str, command: str, *, expect: str = "") -> None:
    """Non-zero exit, and stderr is exactly one line ``trm-bounds <command>: error: ...``."""
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"trm-bounds {command}: error: "), err
    assert "Traceback" not in err and "np.float64" not in err
    assert expect in lines[0], err


# ----------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("argv, expect", [
    (["--T", "100", "--delta=-1e-4", "--dkl-seq", "0.01"], "delta"),
    (["--delta=-1e-4"], "--T"),
    (["--T", "100", "--eps", "0", "--delta", "1e-4", "--dkl-seq", "0.01"], "eps"),
    (["--T", "0", "--delta", "1e-4", "--dkl-seq", "0.01"], "T"),
    (["--T", "100", "--delta", "nan", "--dkl-seq", "0.01"], "delta"),
    (["--paper-table", "--T", "5"], "--T"),
])  # fmt: skip
def test_bounds_bad_input_is_one_line(argv, expect, capsys):
    """Negative or NaN delta, T = 0, and eps = 0 with delta > 0 (zero TV forces zero KL, so
    the inputs contradict each other: a B* = 0 'certificate' would be false) are refused."""
    status, out, err = run(["bounds", *argv], capsys)
    assert_one_line_error(status, err, "bounds", expect=expect)
    assert status == 2 and out == ""


def test_bounds_table_and_json(capsys):
    """The table names the tightest bound; --json gives both constant families."""
    status, out, _ = run(["bounds", "--T", "4096", "--delta", "1e-4", "--dkl-seq", "0.01"], capsys)
    assert status == 0 and "tightest (published)" in out
    status, out, _ = run(["bounds", "--T", "4096", "--delta", "1e-4", "--dkl-seq", "0.01",
                          "--json", "--sharp"], capsys)  # fmt: skip
    rec = json.loads(out)
    assert status == 0 and rec["primary"] == "sharp"
    assert rec["published"]["unified"] == pytest.approx(2 * rec["sharp"]["unified"], rel=1e-12)


def test_paper_table_honours_json_and_sharp(capsys):
    """--paper-table with --json prints JSON (it was ignored); --sharp puts the sharp column
    first (it was ignored)."""
    status, out, _ = run(["bounds", "--paper-table", "--json"], capsys)
    rec = json.loads(out)
    assert status == 0 and rec["all_reproduced"] is True and rec["primary"] == "published"
    assert len(rec["table"]) > 20 and all(r["ok"] for r in rec["table"])
    classical = next(r for r in rec["table"] if r["bound"] == "classical_kl")
    assert classical["ours"] == pytest.approx(2 * classical["ours_sharp"], rel=1e-12)
    _, plain, _ = run(["bounds", "--paper-table"], capsys)
    _, sharp, _ = run(["bounds", "--paper-table", "--sharp"], capsys)
    assert plain.index("ours (pub.)") < plain.index("ours (sharp)")
    assert sharp.index("ours (sharp)") < sharp.index("ours (pub.)")
    assert sharp != plain


def test_version(capsys):
    """--version prints the package version."""
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("trm-bounds ")


@pytest.mark.e2e
def test_core_commands_import_no_heavy_library():
    """``bounds`` runs with the core install: neither torch, matplotlib nor pyarrow is imported."""
    code = ("import sys; from trm_bounds.cli import main; "
            "main(['bounds', '--T', '64', '--delta', '1e-4', '--dkl-seq', '0.01']); "
            "print(sorted(m for m in ('torch', 'matplotlib', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.e2e
def test_subprocess_error_has_no_traceback():
    """The module entry point: one line and exit 2 for ``bounds --delta=-1e-4``."""
    out = subprocess.run(
        [sys.executable, "-m", "trm_bounds", "bounds", "--T", "10", "--delta=-1e-4",
         "--dkl-seq", "0.01"], capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# ----------------------------------------------------------------------------- exact


def test_exact_compares_against_the_files_baseline(tmp_path, capsys):
    """A file whose expected values were computed with a baseline matches them by default
    (the default was --baseline 0, which reported every such instance as a mismatch)."""
    from trm_bounds.engines.tree import exact_report
    from trm_bounds.instances.format import instance_record, load_instances, write_instances

    inst = load_instances(ROOT / "trm_bounds" / "data" / "results" / "transformer_instances.json")[0]
    path = tmp_path / "with_baseline.json"
    rec = instance_record(inst.id, inst.pi_roll, inst.pi_theta, inst.reward, inst.p_x,
                          expected=exact_report(inst, baseline=0.5))
    assert rec["expected"]["baseline_b"] == 0.5
    write_instances(path, [rec])
    status, out, err = run(["exact", str(path)], capsys)
    assert status == 0, err
    assert "matches expected" in out


def test_exact_bad_file_is_one_line(tmp_path, capsys):
    """A malformed instance file: one line naming the file, exit 2, no --json written."""
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    status, _, err = run(["exact", str(bad), "--json", str(tmp_path / "o.json")], capsys)
    assert_one_line_error(status, err, "exact", expect="bad.json")
    assert not (tmp_path / "o.json").exists()


# ----------------------------------------------------------------------------- evaluate / plot


def _bad_outs(tmp_path: Path) -> dict[str, Path]:
    """--out values that cannot be output folders: an existing file, a path under a file."""
    f = tmp_path / "a_file"
    f.write_text("keep me")
    return {"existing file": f, "under a file": f / "sub" / "dir"}


@pytest.mark.parametrize("command", ["evaluate", "plot"])
@pytest.mark.parametrize("case", ["existing file", "under a file"])
def test_out_that_cannot_be_a_folder(command, case, tmp_path, capsys):
    """--out naming a file or a path below a file: one line, exit 2, the file untouched."""
    out = _bad_outs(tmp_path)[case]
    extra = ["--demo", "--no-figures"] if command == "evaluate" else []
    status, _, err = run([command, *extra, "--out", str(out)], capsys)
    assert_one_line_error(status, err, command, expect="--out")
    assert (tmp_path / "a_file").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write into read-only folders")
@pytest.mark.parametrize("command", ["evaluate", "plot"])
def test_out_in_a_read_only_folder(command, tmp_path, capsys):
    """--out inside a read-only folder: one line, exit 2, nothing created."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        extra = ["--demo", "--no-figures"] if command == "evaluate" else []
        status, _, err = run([command, *extra, "--out", str(ro / "x")], capsys)
        assert_one_line_error(status, err, command, expect="not writable")
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("command", ["evaluate", "plot"])
def test_out_that_cannot_be_created(command, capsys):
    """--out in a folder nobody can create entries in (procfs): one line, non-zero exit."""
    if not Path("/proc/1").is_dir():
        pytest.skip("no /proc")
    extra = ["--demo", "--no-figures"] if command == "evaluate" else ["--only", "F5"]
    status, _, err = run([command, *extra, "--out", "/proc/1/trm_bounds_out"], capsys)
    assert_one_line_error(status, err, command)
    assert not Path("/proc/1/trm_bounds_out").exists()


@pytest.mark.parametrize("argv, expect", [
    (["--ln-delta", "nan"], "--ln-delta"),
    (["--ln-delta", "0"], "--ln-delta"),
    (["--ln-eps", "-1"], "--ln-eps"),
    (["--threshold", "seq_max_k2=nan"], "threshold"),
    (["--criterion", "nope"], "nope"),
])  # fmt: skip
def test_evaluate_bad_numbers(argv, expect, tmp_path, capsys):
    """Non-finite or non-positive tolerances and unknown criteria: one line, exit 2."""
    status, _, err = run(["evaluate", "--demo", "--no-figures", "--out", str(tmp_path / "o"),
                          *argv], capsys)  # fmt: skip
    assert_one_line_error(status, err, "evaluate", expect=expect)
    assert status == 2 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, expect", [
    (["--dpi", "-5"], "--dpi"),
    (["--dpi", "nan"], "--dpi"),
    (["--formats", "gif"], "gif"),
    (["--full"], "--recompute"),
    (["--dpi", "100000"], "--dpi"),  # issue 16, item 3: was a 42-line MemoryError
    (["--seed", "3"], "--recompute"),  # item 6: was silently ignored
    (["--only", "F11"], "F10"),  # the choices come from the figure registry
])  # fmt: skip
def test_plot_bad_flags(argv, expect, tmp_path, capsys):
    """Negative, NaN or huge --dpi, an unknown format, --full or --seed without --recompute,
    an unknown figure: one line, exit 2, nothing created."""
    status, _, err = run(["plot", "--out", str(tmp_path / "f"), *argv], capsys)
    assert_one_line_error(status, err, "plot", expect=expect)
    assert not (tmp_path / "f").exists()


@pytest.mark.e2e
def test_evaluate_help_shows_the_dump_schema():
    """``evaluate --help`` lists the dump schema (rendered from the alias table)."""
    from trm_bounds.logs import dump_schema

    out = subprocess.run([sys.executable, "-m", "trm_bounds.evaluate", "--help"],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0
    first = next(line for line in dump_schema().splitlines() if line.strip())
    assert first.strip() in out.stdout


def test_module_entry_points_are_the_cli(tmp_path, capsys):
    """``python -m trm_bounds.evaluate`` / ``.plot`` run the same subcommands."""
    assert evaluate_main(["--out", str(tmp_path / "o")]) == 2  # no DUMP and no --demo
    assert "trm-bounds evaluate: error:" in capsys.readouterr().err
    assert plot_main(["--dpi", "-1", "--out", str(tmp_path / "f")]) == 2
    assert "trm-bounds plot: error:" in capsys.readouterr().err


def test_readme_shows_the_dump_schema():
    """The README's dump schema is the one rendered from the alias table (never typed twice)."""
    from trm_bounds.logs import dump_schema

    assert dump_schema(markdown=True).strip() in (ROOT / "README.md").read_text()


# ----------------------------------------------------------------------------- issue 16


def test_bounds_huge_delta_gives_no_warning(capsys):
    """Item 4: ``--delta 1e308`` overflows T delta to inf quietly (no numpy warning)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        status, out, err = run(["bounds", "--T", "4096", "--delta", "1e308", "--dkl-seq", "0.01"],
                               capsys)  # fmt: skip
    assert status == 0 and err == ""
    assert "inf" in next(line for line in out.splitlines() if line.startswith("Classical (KL)"))


@pytest.mark.parametrize("argv, expect", [
    (["{empty}"], "holds no instance"),  # item 5: printed nothing and exited 0
    (["--baseline", "nan"], "--baseline"),  # item 5: was accepted
    (["--baseline", "inf"], "--baseline"),
    (["--demo", "{empty}"], "--demo"),
    (["--json", "{afile}/x.json"], "is not a directory"),  # item 11: said "File exists"
    (["--json", "{afile}/sub/x.json"], "is a file"),
])  # fmt: skip
def test_exact_bad_command_lines(argv, expect, tmp_path, capsys):
    """Items 5 and 11: one line, exit 2, nothing written; the file under --json untouched."""
    empty = tmp_path / "empty.json"
    empty.write_text('{"schema": "trm-oracle-instances/v1", "instances": []}')
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    status, out, err = run(["exact", *(a.format(empty=empty, afile=afile) for a in argv)],
                           capsys)  # fmt: skip
    assert_one_line_error(status, err, "exact", expect=expect)
    assert status == 2 and out == ""
    assert afile.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "empty.json"]


def test_exact_demo_matches_its_expected_values(tmp_path, capsys):
    """``exact`` without a file runs the shipped demo; every instance matches its stored
    exact report; ``--demo`` is the same; --json writes one report per instance."""
    from trm_bounds.cli import EXACT_DEMO
    from trm_bounds.instances.format import load_instances

    n = len(load_instances(EXACT_DEMO))
    status, out, err = run(["exact", "--json", str(tmp_path / "r.json")], capsys)
    assert status == 0, err
    assert out.count("expected values: matches expected") == n >= 3
    assert len(json.loads((tmp_path / "r.json").read_text())["reports"]) == n
    assert run(["exact", "--demo"], capsys)[1] == out


def test_plot_out_that_cannot_be_created_advises_nothing_wrong(capsys):
    """Item 7: an --out that cannot be created is reported as such (it advised --recompute)."""
    if not Path("/proc/1").is_dir():
        pytest.skip("no /proc")
    status, _, err = run(["plot", "--only", "F4", "--out", "/proc/nope"], capsys)
    assert_one_line_error(status, err, "plot", expect="--out /proc/nope")
    assert "--recompute" not in err


def test_no_command_prints_usage_and_a_hint(capsys):
    """Item 12: no arguments: the usage line and a hint naming --help, exit 2."""
    status, out, err = run([], capsys)
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert lines[0].startswith("usage: trm-bounds")
    assert lines[-1].startswith("trm-bounds: error:") and "--help" in lines[-1]


def test_help_says_what_the_tool_does_in_plain_text(capsys):
    """Item 12: ``--help`` says what the tool does, lists every command, and has no reST."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Trust Region Masking" in out and "examples:" in out
    for command in ("bounds", "plan", "exact", "evaluate", "plot", "theory"):
        assert f"\n    {command} " in out, command
    assert "``" not in out and ":mod:" not in out and ":func:" not in out


def test_plot_help_lists_the_figure_registry(capsys):
    """``plot --help`` lists the figures of the registry (a new figure needs no CLI edit)."""
    pytest.importorskip("matplotlib")
    from trm_bounds.plot.figures import FIGURES

    assert main(["plot", "--help"]) == 0
    out = capsys.readouterr().out
    for key, spec in FIGURES.items():
        assert f"{key} " in out and spec.what[:30] in out


def test_theory_is_installed_with_the_package(capsys):
    """``trm-bounds theory`` prints the path of the shipped docs/theory.md; --text its text."""
    assert main(["theory"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path.read_text() == (ROOT / "docs" / "theory.md").read_text()
    assert main(["theory", "--text"]) == 0
    assert capsys.readouterr().out.startswith(path.read_text().splitlines()[0])


@pytest.mark.e2e
def test_mistyped_dump_path_is_reported_before_torch_is_imported(tmp_path):
    """Goal: a wrong path in under a second. CPU-independent proxy: the one-line error comes
    before torch, matplotlib, pyarrow or ray is imported (``-X importtime`` lists every import)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "trm_bounds", "evaluate",
                           str(tmp_path / "no_such.parquet"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "trm_bounds.cli" in imported  # the listing works
    assert not imported & {"torch", "matplotlib", "pyarrow", "ray"}
    errors = [ln for ln in proc.stderr.splitlines() if not ln.startswith("import time:")]
    assert proc.returncode == 2 and len(errors) == 1 and "no_such.parquet" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.e2e
def test_closed_pipe_ends_quietly(tmp_path):
    """Item 8: output cut short by a closed pipe (``| head -1``) ends with status 141 and no
    traceback. The output (demo instances repeated, over 64 KiB) cannot fit the pipe buffer,
    so the write after the reader has gone always fails."""
    from trm_bounds.cli import EXACT_DEMO

    doc = json.loads(EXACT_DEMO.read_text())
    doc["instances"] = doc["instances"] * 40
    big = tmp_path / "many.json"
    big.write_text(json.dumps(doc))
    proc = subprocess.Popen([sys.executable, "-m", "trm_bounds", "exact", str(big)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.stdout.readline().startswith(b"instance ")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


#: A sitecustomize that makes the extras' modules unimportable, as in a core-only install.
_CORE_ONLY = """\
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "matplotlib", "pyarrow", "ray", "tqdm"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Block())
"""


@pytest.mark.e2e
def test_core_only_install_gets_one_hint_with_every_extra(tmp_path):
    """Item 9: without the extras, ``python -m trm_bounds.plot`` says what ``trm-bounds plot``
    says (one line, exit 1), and ``evaluate`` names every extra it needs in one hint."""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(_CORE_ONLY)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}{os.pathsep}{ROOT}"}

    def err(*argv: str) -> str:
        proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path, env=env)  # fmt: skip
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1, proc.stderr[-2000:]
        return lines[0]

    out = str(tmp_path / "o")
    assert err("trm_bounds.plot", "--out", out) == err("trm_bounds", "plot", "--out", out)
    assert "matplotlib" in err("trm_bounds.plot", "--out", out)
    line = err("trm_bounds", "evaluate", "--demo", "--out", out)
    assert "torch and matplotlib" in line and "trm-bounds[logs,plot]" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
