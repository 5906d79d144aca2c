"""The Ray engine of the evaluator (trm_bounds.evaluate.ray_engine; docs/theory.md §6).

One local Ray cluster (``ray.init(num_cpus=2)``) serves the session (``ray_cluster`` in
tests/conftest.py).
The Ray report must equal the local one: counts, decisions, histograms, buckets and
``sequences.csv`` exactly (both engines chunk each file the same way), float sums within
``CHUNK_RTOL`` (the double-double sums are grouped per shard, then across shards). A task
that raises surfaces as the local engine's one-line error naming the shard; a worker killed
mid-run is retried by Ray and the report does not change.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.evaluate.test_run import GOOD, _jsonl, assert_close_tree
from tests.logs.test_dataset import random_source, write_jsonl, write_npz, write_parquet
from trm_bounds.evaluate import evaluate
from trm_bounds.evaluate.ray_engine import ray_map, ray_shards
from trm_bounds.logs import LogFormatError

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")


def test_unreachable_address_is_a_one_line_error(tmp_path):
    """``--address auto`` with no cluster running: exit 2 and one stderr line naming the
    address; nothing written. (Defined before the tests that start this module's cluster.)"""
    import subprocess

    from ray._private.services import find_gcs_addresses

    if find_gcs_addresses():
        pytest.skip("a Ray cluster is running on this machine: 'auto' would join it")
    path = write_npz(tmp_path / "a.npz", random_source(seed=6))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    r = subprocess.run(
        [sys.executable, "-m", "trm_bounds", "evaluate", str(path), "--out",
         str(tmp_path / "o"), "--quiet", "--no-figures", "--engine", "ray", "--address", "auto"],
        capture_output=True, text=True, check=False, cwd=os.getcwd(), env=env, timeout=120,
    )  # fmt: skip
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("trm-bounds evaluate: error")]
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert "address 'auto': cannot connect to a Ray cluster" in lines[0]
    assert not (tmp_path / "o").exists()


def _dataset(d: Path) -> list[Path]:
    """Five shards of three formats, with ragged lengths and rewards."""
    d.mkdir()
    return [
        write_npz(d / "a.npz", random_source(B=23, T=19, seed=41, sigma=0.2)),
        write_parquet(d / "b.parquet", random_source(B=17, T=25, seed=42, sigma=0.1)),
        write_jsonl(d / "c.jsonl", random_source(B=11, T=9, seed=43, sigma=0.3)),
        write_npz(d / "d.npz", random_source(B=5, T=31, seed=44, sigma=0.05)),
        write_parquet(d / "e.parquet", random_source(B=29, T=7, seed=45, sigma=0.2)),
    ]


def _both(tmp_path: Path, paths, **kw) -> tuple[dict, dict]:
    a = evaluate(paths, tmp_path / "local", progress=False, **kw)
    b = evaluate(paths, tmp_path / "ray", progress=False, engine="ray", **kw)
    return a, b


def _assert_same(tmp_path: Path, a: dict, b: dict) -> None:
    skip = ("git_hash",)
    assert_close_tree({k: v for k, v in a.items() if k not in skip},
                      {k: v for k, v in b.items() if k not in skip})  # fmt: skip
    assert a["n_sequences"] == b["n_sequences"] and a["n_tokens"] == b["n_tokens"]
    assert a["criteria"] == b["criteria"]  # decisions and counts: exactly
    assert a["histograms"] == b["histograms"] and a["length_buckets"] == b["length_buckets"]
    csv_a, csv_b = ((tmp_path / d / "sequences.csv").read_text() for d in ("local", "ray"))
    assert csv_a == csv_b


def test_ray_report_equals_local_report(tmp_path, ray_cluster):
    """Five shards in three formats, chunk size 4: same report, same CSV, same HTML tables."""
    paths = _dataset(tmp_path / "dump")
    a, b = _both(tmp_path, [str(p) for p in paths], chunk_size=4)
    assert a["n_sequences"] == 23 + 17 + 11 + 5 + 29
    _assert_same(tmp_path, a, b)
    assert (tmp_path / "ray" / "report.html").is_file()


def test_pyarrow_uri_shards_equal_local_paths(tmp_path, ray_cluster):
    """A ``file://`` directory URI goes through pyarrow's filesystem layer (as s3:// would):
    same statistics as the local directory; shards are named by their URI."""
    _dataset(tmp_path / "dump")
    uri = (tmp_path / "dump").as_uri()
    names = [f"file://{p}" for p in sorted(map(str, (tmp_path / "dump").iterdir()))]
    assert [s.name for s in ray_shards([uri])] == names
    a = evaluate([str(tmp_path / "dump")], tmp_path / "local", progress=False, chunk_size=5)
    b = evaluate([uri], tmp_path / "ray", progress=False, chunk_size=5, engine="ray")
    skip = ("git_hash", "inputs")
    assert_close_tree({k: v for k, v in a.items() if k not in skip},
                      {k: v for k, v in b.items() if k not in skip})  # fmt: skip
    rows = (tmp_path / "ray" / "sequences.csv").read_text().splitlines()
    assert rows[1].split(",")[1].startswith("file://")


def test_task_error_is_the_local_one_line_error(tmp_path, ray_cluster):
    """A shard whose reader raises: the Ray engine raises the same LogFormatError, with the
    same one-line message naming the shard, and writes nothing."""
    d = tmp_path / "dump"
    d.mkdir()
    write_npz(d / "a.npz", random_source(seed=25))
    _jsonl(d / "b.jsonl", [GOOD, '{"logprobs": [NaN], "rollout_logprobs": [-1.0]}'])
    errs = []
    for engine in ("local", "ray"):
        out = tmp_path / engine
        with pytest.raises(LogFormatError) as info:
            evaluate([str(d)], out, progress=False, engine=engine)
        assert type(info.value) is LogFormatError
        errs.append(str(info.value))
        assert not out.exists() or list(out.iterdir()) == []
    assert errs[0] == errs[1]
    assert "b.jsonl" in errs[1] and "\n" not in errs[1]


def test_killed_worker_is_retried_and_report_unchanged(tmp_path, ray_cluster):
    """Arm the fault: the first task kills its own worker process (os._exit, no exception).
    Ray retries the task; the marker shows the kill happened; the report equals the local one."""
    paths = _dataset(tmp_path / "dump")
    ray_cluster.unlink()  # armed
    a, b = _both(tmp_path, [str(p) for p in paths], chunk_size=6)
    assert ray_cluster.exists(), "no worker was killed: the fault injection did not run"
    _assert_same(tmp_path, a, b)


def test_cli_engine_ray(tmp_path, ray_cluster):
    """``trm-bounds evaluate --engine ray`` (in process, joining the running cluster)."""
    from trm_bounds.cli import main

    paths = _dataset(tmp_path / "dump")
    args = [*map(str, paths), "--quiet", "--no-figures", "--chunk-size", "7"]
    assert main(["evaluate", *args, "--out", str(tmp_path / "local")]) == 0
    assert main(["evaluate", *args, "--out", str(tmp_path / "ray"), "--engine", "ray"]) == 0
    csv_a, csv_b = ((tmp_path / d / "sequences.csv").read_text() for d in ("local", "ray"))
    assert csv_a == csv_b


def test_tabular_verification_on_ray_equals_local(ray_cluster):
    """Sweeps: the verification study with ``engine='ray'`` (instances generated in the tasks
    from their seeds) gives the same per-kind record as the local loop, to the bit."""
    from trm_bounds.studies.tabular_verification import Args, verify

    small = dict(per_kind=7, max_sequences=16, seed=5)
    assert verify(Args(**small, engine="ray")) == verify(Args(**small))


def test_ray_map_keeps_item_order(ray_cluster):
    """``ray_map`` equals the serial map, in item order."""
    from trm_bounds.studies.tabular_verification import check_instances

    jobs = [[("raw", 2, 2, 1, s)] for s in (3, 1, 4, 1, 5)]
    assert ray_map(check_instances, jobs) == [check_instances(j) for j in jobs]


def test_ray_absent_is_a_one_line_error(tmp_path, monkeypatch):
    """Without Ray installed, ``engine='ray'`` is a one-line ValueError naming the extra."""
    monkeypatch.setitem(sys.modules, "ray", None)
    path = write_npz(tmp_path / "a.npz", random_source(seed=1))
    with pytest.raises(ValueError, match=r"pip install 'trm-bounds\[ray\]'"):
        evaluate([str(path)], tmp_path / "out", progress=False, engine="ray")
    assert not (tmp_path / "out").exists()


def test_local_engine_never_imports_ray(tmp_path):
    """Ray stays optional: a local evaluation (CLI, subprocess) does not import it."""
    import subprocess

    path = write_npz(tmp_path / "a.npz", random_source(seed=2))
    code = ("import sys; from trm_bounds.cli import main; "
            f"rc = main(['evaluate', {str(path)!r}, '--out', {str(tmp_path / 'o')!r}, "
            "'--quiet', '--no-figures']); print(rc, 'ray' in sys.modules)")  # fmt: skip
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=False, cwd=os.getcwd())  # fmt: skip
    assert r.stdout.split()[-2:] == ["0", "False"], r.stderr[-2000:]


@pytest.mark.slow
def test_bench_scale_smoke(tmp_path):
    """experiments/bench_scale.py with tiny sizes (starts its own clusters; slow): the JSON has
    both engines' rates and one driver-memory row per shard count."""
    import json
    import subprocess

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "b.json"
    r = subprocess.run(
        [sys.executable, str(root / "experiments" / "bench_scale.py"), "--out", str(out),
         "--shards", "2", "--seqs", "8", "--T", "16", "--repeats", "1", "--mem-shards", "1", "3",
         "--mem-seqs", "4", "--mem-T", "8"],
        capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(out.read_text())
    th = data["throughput"]
    assert {"local", "ray_1", "ray_2"} <= set(th) and th["tokens"] > 0
    assert [row["shards"] for row in data["driver_memory"]] == [1, 3]



def _many_row_groups(path: Path, n_groups: int = 5) -> Path:
    """One parquet file of ``n_groups`` row groups (ragged list columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = random_source(B=40, T=21, seed=77, sigma=0.2)
    rows = [src["lp"][i, : src["L"][i]].tolist() for i in range(40)]
    rrows = [src["lr"][i, : src["L"][i]].tolist() for i in range(40)]
    table = pa.table({"old_log_probs": rows, "rollout_log_probs": rrows,
                      "uid": [f"p{i // 4}" for i in range(40)]})  # fmt: skip
    pq.write_table(table, path, row_group_size=40 // n_groups)
    return path


def test_one_parquet_file_spreads_over_workers_by_row_group(tmp_path, ray_cluster):
    """A file of five row groups is five shards (record numbers counted from the file's
    first row); the Ray report equals the local one (chunk size 3: chunks inside groups)."""
    path = _many_row_groups(tmp_path / "big.parquet")
    shards = ray_shards([str(path)])
    assert [s.part for s in shards] == [(g,) for g in range(5)]
    a, b = _both(tmp_path, [str(path)], chunk_size=3)
    assert a["n_sequences"] == 40
    _assert_same(tmp_path, a, b)


@pytest.mark.parametrize("case", ["nemo-rl-run", "slime-run", "step-dirs-run"])
def test_run_folder_by_step_on_ray_equals_local(tmp_path, ray_cluster, case):
    """``--by-step`` on a run folder: every step, on both engines, the same rows; files
    without logprobs skipped by both with the same notice."""
    from tests.logs.test_run_folder import RUNS
    from trm_bounds.evaluate.runs import evaluate_run

    RUNS.make_run_corpus(tmp_path / "c", seed=2, B=5)
    run = tmp_path / "c" / case
    res = {}
    for engine in ("local", "ray"):
        res[engine] = evaluate_run(run, tmp_path / engine, progress=False, draw_figures=None,
                                   engine=engine)  # fmt: skip
    ref = json.loads((tmp_path / "c" / "reference.json").read_text())[case]
    assert [r["step"] for r in res["local"]["steps"]] == sorted(int(s) for s in ref["steps"])
    assert res["local"]["skipped_steps"] == res["ray"]["skipped_steps"] == []
    for ra, rb in zip(res["local"]["steps"], res["ray"]["steps"], strict=True):
        assert_close_tree(ra, rb)


def test_skip_notice_is_the_same_on_both_engines(tmp_path, ray_cluster):
    """A NeMo-RL log directory (validation files beside the data): the Ray engine reads it
    (the bug: it failed) and says what the local engine says."""
    from tests.logs.test_run_folder import RUNS
    from trm_bounds.evaluate.ray_engine import ray_chunks
    from trm_bounds.evaluate.run import evaluate_chunk
    from trm_bounds.logs import iter_batches

    RUNS.make_run_corpus(tmp_path / "c", seed=3, B=4)
    run = tmp_path / "c" / "nemo-rl-run"
    local: list[str] = []
    n_local = sum(len(b) for b in iter_batches([run], notice=local.append))
    on_ray: list[str] = []
    n_ray = sum(len(b) for b, _, _ in ray_chunks([run], chunk_fn=evaluate_chunk,
                                                 notice=on_ray.append))  # fmt: skip
    assert n_local == n_ray == 12 and local == on_ray and len(local) == 1
    assert "val_data_step1.jsonl" in local[0] and "val_data_step3.jsonl" in local[0]
