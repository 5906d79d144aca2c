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


def test_core_commands_import_no_heavy_library():
    """``bounds`` runs with the core install: neither torch, matplotlib nor pyarrow is imported."""
    code = ("import sys; from trm_bounds.cli import main; "
            "main(['bounds', '--T', '64', '--delta', '1e-4', '--dkl-seq', '0.01']); "
            "print(sorted(m for m in ('torch', 'matplotlib', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


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

    inst = load_instances(ROOT / "experiments" / "results" / "transformer_instances.json")[0]
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
])  # fmt: skip
def test_plot_bad_flags(argv, expect, tmp_path, capsys):
    """Negative or NaN --dpi, an unknown format, --full without --recompute: one line, exit 2."""
    status, _, err = run(["plot", "--out", str(tmp_path / "f"), *argv], capsys)
    assert_one_line_error(status, err, "plot", expect=expect)
    assert not (tmp_path / "f").exists()


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
