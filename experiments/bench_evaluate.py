"""Benchmark of the TRM masking API and the evaluator.

Three figures, written to ``experiments/results/bench_evaluate.json``:

1. **verl peer**: verl 0.9.1's ``compute_rollout_correction_and_rejection_mask`` with
   ``rollout_rs="seq_max_k2,seq_mean_k3"`` (thresholds ``0.05,0.001``) against
   :func:`trm_bounds.masking.sequence_mask` with the criterion of the same name, on identical
   CPU tensors (default ``B x T = 512 x 8192``). verl runs in its own interpreter
   (``--verl-python``, default ``/tmp/verl-venv/bin/python``), set up with
   ``python3 -m venv --system-site-packages /tmp/verl-venv`` and
   ``pip install --no-deps verl==0.9.1`` plus ``ray tensordict omegaconf transformers
   codetiming orjson packaging`` (torch pinned to the system's 2.13.0). Per-sequence decisions
   are compared (mismatch count) and the speed ratio of medians is reported. Skipped, with the
   reason recorded, when that interpreter or verl is missing.
2. **metric suite**: every statistic of :func:`~trm_bounds.masking.sequence_stats`, every
   decision of :func:`~trm_bounds.masking.decide` and the batch metrics, on an in-memory
   float32 batch; tokens/s = valid tokens / median time (eager and ``fused=True``).
3. **exact KL/TV at V = 151,936**: :func:`~trm_bounds.masking.exact_token_divergences` on
   64 positions of float32 logits, chunked, against a direct float64 log-softmax.
4. **end to end**: :func:`trm_bounds.evaluate.evaluate` on a generated parquet dump of
   ``list<float>`` columns (``--e2e-tokens``, ``--full``: 10^8) without figures; tokens/s =
   valid tokens / median wall time of ``--e2e-repeats`` runs, with the default background
   loading (``prefetch=True``) and without it; plus the floor set by the parquet decoding
   alone (pyarrow ``iter_batches`` over both columns, its own thread pool).

5. **threads**: :func:`~trm_bounds.masking.sequence_mask` idle and beside a competing process
   that the benchmark starts itself (one spinning core), with the library default (one torch
   thread) and with torch's default (one thread per core); ``busy_over_idle`` per setting.
   The verl peer (1.) also runs beside that competing process, at torch's default threads.
6. **memory**: peak RSS (``VmHWM``) of ``evaluate()`` in a fresh interpreter on parquet dumps
   of ``--mem-tokens`` valid tokens (default 2e6, 6e6, 2e7). ``--only-memory`` runs only the
   byte-budget rows of issue 18 (row groups of ``--mem-row-group`` rows, rows up to 8,192
   tokens; ``--mem-baseline CHECKOUT`` measured side by side) and adds them to ``--out``
   under ``memory_byte_budget``.

All timings are medians of ``--repeats`` runs in one invocation on a shared machine.

Usage: ``python experiments/bench_evaluate.py [--full] [--skip-e2e] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from trm_bounds.masking import batch_metrics, decide, sequence_mask, sequence_stats
from trm_bounds.results import write_results

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_evaluate.json"
CRIT = "seq_max_k2,seq_mean_k3"
VERL_THRESHOLD = "0.05,0.001"  # the paper's defaults for the two parts (DEFAULT_THRESHOLDS)

VERL_SCRIPT = r"""
import json, sys, time
import torch
from verl.trainer.ppo.rollout_corr_helper import compute_rollout_correction_and_rejection_mask
import verl
torch.set_num_threads(int(sys.argv[6]))
d = torch.load(sys.argv[1], weights_only=True)
lp, rlp, mask = d["log_probs"], d["rollout_log_probs"], d["response_mask"]
repeats = int(sys.argv[3])
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    _, new_mask, metrics = compute_rollout_correction_and_rejection_mask(
        old_log_prob=lp, rollout_log_prob=rlp, response_mask=mask,
        rollout_is=None, rollout_rs=sys.argv[4], rollout_rs_threshold=sys.argv[5])
    times.append(time.perf_counter() - t0)
# a sequence is kept iff none of its valid tokens was zeroed
kept = ((new_mask * mask).sum(-1) == mask.sum(-1)).tolist()
json.dump({"times_s": times, "accepted": kept, "verl_version": verl.__version__,
           "torch": torch.__version__, "threads": torch.get_num_threads()}, open(sys.argv[2], "w"))
"""


def make_batch(B: int, T: int, seed: int, *, full_length: bool = False):
    """A float32 (B, T) logprob pair with realistic mismatch and right padding.

    ``log pi_roll`` of sampled tokens: ``0.2 log U``, U uniform (probabilities ``U^0.2``, mostly
    near 1 with a long tail, mean logprob -0.2); ``r = log pi_theta - log pi_roll``:
    N(0, 0.01^2) times a per-sequence log-normal scale, plus rare spikes
    (probability 2e-5 per token, N(0, 0.5^2)) so that both criteria reject some sequences.
    Padding holds garbage (NaN) to exercise masking. Mask is float32 like verl's.
    """
    g = torch.Generator().manual_seed(seed)
    rlp = torch.rand(B, T, generator=g).clamp_(min=1e-12).log_().mul_(0.2)
    r = 0.01 * torch.randn(B, T, generator=g)
    # per-sequence noise scale so that mean-k3 straddles its threshold
    r *= torch.exp(torch.randn(B, 1, generator=g) * 1.2 + 0.8)
    spikes = torch.rand(B, T, generator=g) < 2e-5
    r = torch.where(spikes, 0.5 * torch.randn(B, T, generator=g), r)
    lp = (rlp + r).clamp_(max=0.0)
    if full_length:
        lengths = torch.full((B,), T)
    else:
        lengths = torch.randint(T // 8, T + 1, (B,), generator=g)
    mask = (torch.arange(T)[None, :] < lengths[:, None]).to(torch.float32)
    lp = torch.where(mask > 0, lp, torch.tensor(float("nan")))
    rlp = torch.where(mask > 0, rlp, torch.tensor(float("nan")))
    return lp.contiguous(), rlp.contiguous(), mask


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times


def bench_verl(args, lp, rlp, mask) -> dict:
    """Ours vs verl on identical tensors: decisions and median times."""
    res: dict = {
        "B": lp.shape[0],
        "T": lp.shape[1],
        "criterion": CRIT,
        "thresholds": VERL_THRESHOLD,
    }
    # verl's masked_mean divides by (count + 1e-8) and masks padding by multiplication, so it
    # needs finite padding; it also needs >= 1 valid token: give it zeros at padding.
    lp0 = torch.where(mask > 0, lp, 0.0)
    rlp0 = torch.where(mask > 0, rlp, 0.0)
    ours = lambda: sequence_mask(lp0, rlp0, mask, [CRIT])  # noqa: E731
    ours_fused = lambda: sequence_mask(lp0, rlp0, mask, [CRIT], fused=True)  # noqa: E731
    ours()
    t_ours_a, times_a = timed(ours, args.repeats)
    vpy = Path(args.verl_python)
    if not vpy.exists():
        res["verl"] = {"skipped": f"no verl interpreter at {vpy}"}
        res["ours_median_s"] = t_ours_a
        return res
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "batch.pt"
        torch.save({"log_probs": lp0, "rollout_log_probs": rlp0, "response_mask": mask}, data)
        script = Path(tmp) / "run_verl.py"
        script.write_text(VERL_SCRIPT)
        outj = Path(tmp) / "verl.json"
        proc = subprocess.run(
            [
                str(vpy),
                str(script),
                str(data),
                str(outj),
                str(args.repeats),
                CRIT,
                VERL_THRESHOLD,
                str(args.verl_threads or os.cpu_count() or 1),  # torch's default: every core
            ],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        if proc.returncode != 0:
            res["verl"] = {"skipped": "verl run failed: " + proc.stderr.strip().splitlines()[-1]}
            res["ours_median_s"] = t_ours_a
            return res
        verl = json.loads(outj.read_text())
    t_ours_b, times_b = timed(ours, args.repeats)
    t_ours = float(np.median(times_a + times_b))
    ours_fused()  # compile (cost reported separately)
    t_fused, times_f = timed(ours_fused, args.repeats)
    mask_ours, _ = ours()
    mask_fused, _ = ours_fused()
    parts = decide(sequence_stats(lp0, rlp0, mask), criteria=["seq_max_k2", "seq_mean_k3"])
    v_acc = np.asarray(verl["accepted"], dtype=bool)
    o_acc = mask_ours.numpy()
    t_verl = float(np.median(verl["times_s"]))
    res.update(
        verl_version=verl["verl_version"],
        threads=verl["threads"],
        verl_median_s=t_verl,
        verl_times_s=verl["times_s"],
        ours_median_s=t_ours,
        ours_times_s=times_a + times_b,
        ours_fused_median_s=t_fused,
        ours_fused_times_s=times_f,
        speedup=t_verl / t_ours,
        speedup_fused=t_verl / t_fused,
        decision_mismatches=int((v_acc != o_acc).sum()),
        decision_mismatches_fused=int((v_acc != mask_fused.numpy()).sum()),
        accepted_fraction=float(o_acc.mean()),
        accepted_fraction_parts={k: float(v.float().mean()) for k, v in parts.items()},
    )
    return res


@contextmanager
def busy_neighbour(on: bool = True):
    """A competing process (one core spinning) for the duration of the block."""
    if not on:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)  # let the scheduler see it
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def bench_threads(args, lp, rlp, mask) -> dict:
    """``sequence_mask`` idle and beside a competing process started here: the library default
    (one torch thread, ``trm_bounds.masking._tensors.CPU_THREADS``) against torch's default
    (one thread per core)."""
    from trm_bounds.masking import sequence_stats as stats_fn

    out: dict = {"B": lp.shape[0], "T": lp.shape[1], "cpu_count": os.cpu_count()}

    def ours():
        return sequence_mask(lp, rlp, mask, [CRIT])

    def torch_default():
        torch.set_num_threads(os.cpu_count() or 1)
        st = stats_fn(lp, rlp, mask, threads=None)
        return decide(st, {"seq_max_k2": 0.05, "seq_mean_k3": 0.001}, [CRIT])

    for name, fn in (("library_default_1_thread", ours), ("torch_default_threads", torch_default)):
        fn()
        idle, t_idle = timed(fn, args.repeats)
        with busy_neighbour():
            busy, t_busy = timed(fn, args.repeats)
        out[name] = {"idle_median_s": idle, "busy_median_s": busy, "busy_over_idle": busy / idle,
                     "idle_times_s": t_idle, "busy_times_s": t_busy}  # fmt: skip
    torch.set_num_threads(1)
    return out


def bench_memory(args, *, rows_per_group: int = 256, code_path: str | None = None) -> dict:
    """Peak RSS (``VmHWM``) of ``evaluate()`` in a fresh interpreter per size, on parquet dumps
    of growing size (``ru_maxrss`` is not used: Linux keeps the parent's peak across exec).
    ``rows_per_group``: parquet row-group size of the dump (large groups let a row-count
    record batch hold thousands of 8,192-token rows); ``code_path``: the checkout whose
    package runs (``PYTHONPATH``; default this one), for a baseline side by side."""
    sizes = [int(float(x)) for x in args.mem_tokens.split(",")]
    root = Path(code_path or Path(__file__).parents[1])  # cwd too: ``-c`` puts it first
    env = {**os.environ, "PYTHONPATH": str(root)}
    rows = []
    code = (
        "import sys; from pathlib import Path\n"
        "from trm_bounds.evaluate import evaluate\n"
        "evaluate(sys.argv[1], Path(sys.argv[2]), progress=False)\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]))\n"  # kB; ru_maxrss would carry the parent's across exec
    )
    for n in sizes:
        with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
            path = Path(tmp) / "dump.parquet"
            n_tok, _ = write_parquet(path, n, 8192, args.seed + 2000, rows_per_group)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", code, str(path), str(Path(tmp) / "o")],
                                  capture_output=True, text=True, cwd=root, env=env)  # fmt: skip
            wall = time.perf_counter() - t0
            if proc.returncode:
                return {"failed": proc.stderr.strip().splitlines()[-1]}
            rss = int(proc.stdout.split()[-1]) * 1024  # VmHWM (peak RSS of this process), kB
            rows.append({"valid_tokens": n_tok, "peak_rss_bytes": rss, "wall_s": wall,
                         "parquet_bytes": path.stat().st_size,
                         "rows_per_row_group": rows_per_group})  # fmt: skip
    return {
        "rows": rows,
        "largest_over_smallest_rss": rows[-1]["peak_rss_bytes"] / rows[0]["peak_rss_bytes"],
        "target": "largest/smallest <= 1.3 and largest < 1 GB",
    }


def memory_byte_budget(args) -> int:
    """Issue 18: peak RSS with large row groups (record batches of thousands of 8,192-token
    rows under a row count), this checkout's byte budget beside ``--mem-baseline``; written
    into ``--out`` under ``memory_byte_budget`` next to the earlier figures."""
    from trm_bounds.results import git_hash

    res = {"git_hash": git_hash(), "args": {k: str(v) for k, v in vars(args).items()},
           "load_average_start": list(os.getloadavg()),
           "this": bench_memory(args, rows_per_group=args.mem_row_group)}  # fmt: skip
    if args.mem_baseline:
        res["baseline"] = bench_memory(
            args, rows_per_group=args.mem_row_group, code_path=args.mem_baseline
        )
    res["load_average_end"] = list(os.getloadavg())
    res["target"] = "peak RSS < 1 GB at 1e8 tokens, rows up to 8,192 tokens"
    print(json.dumps(res, indent=1))
    data = json.loads(args.out.read_text()) if args.out.exists() else {}
    data["memory_byte_budget"] = res
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


def bench_suite(args, lp, rlp, mask) -> dict:
    """The whole metric suite (every statistic, decision and batch metric) in memory."""
    n_tok = int(mask.sum())
    out: dict = {"B": lp.shape[0], "T": lp.shape[1], "valid_tokens": n_tok, "dtype": "float32"}
    for fused in (False, True):

        def run(fused=fused):
            st = sequence_stats(lp, rlp, mask, fused=fused)
            decide(st)
            return batch_metrics(st)

        t0 = time.perf_counter()
        run()
        first = time.perf_counter() - t0
        t, times = timed(run, args.repeats)
        key = "fused" if fused else "eager"
        out[key] = {
            "median_s": t,
            "times_s": times,
            "first_call_s": first,
            "tokens_per_s": n_tok / t,
        }
    return out


def bench_exact_kl(args) -> dict:
    """exact_token_divergences at a 151,936-token vocabulary (Qwen's), chunked vs direct."""
    from trm_bounds.masking import exact_token_divergences

    V, n = 151_936, 64
    g = torch.Generator().manual_seed(args.seed + 7)
    lt = 3.0 * torch.randn(1, n, V, generator=g)  # (1, n, V) float32 logits
    lr = lt + 0.05 * torch.randn(1, n, V, generator=g)

    def run():
        return exact_token_divergences(lt, lr, chunk_size=8192, max_block_elements=1 << 20)

    out = run()
    t, times = timed(run, max(1, args.repeats // 2))
    # direct float64 reference without chunks (log_softmax over the whole vocabulary)
    lq = torch.log_softmax(lt.double(), -1)
    lp = torch.log_softmax(lr.double(), -1)
    d = lq - lp
    ref_kl = (lp.exp() * (torch.expm1(d) - d)).sum(-1)
    ref_tv = 0.5 * (lq.exp() - lp.exp()).abs().sum(-1)
    return {
        "V": V,
        "positions": n,
        "input_bytes_each": lt.numel() * 4,
        "chunk_size": 8192,
        "max_block_elements": 1 << 20,
        "median_s": t,
        "times_s": times,
        "positions_per_s": n / t,
        "max_rel_diff_kl_vs_direct_float64": float(((out["kl"] - ref_kl).abs() / ref_kl).max()),
        "max_abs_diff_tv_vs_direct_float64": float((out["tv"] - ref_tv).abs().max()),
    }


def write_parquet(
    path: Path, n_tokens: int, T: int, seed: int, rows_per_group: int = 256
) -> tuple[int, int]:
    """A verl-named parquet dump (list<float32> columns) of about ``n_tokens`` valid tokens,
    generated 256 rows at a time, ``rows_per_group`` rows per parquet row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pending: list = []
    n_written = 0
    n_seq = 0
    writer = None
    with tqdm(total=n_tokens, unit="tok", unit_scale=True, desc="write parquet") as bar:
        g = 0
        while n_written < n_tokens:
            lp, rlp, mask = make_batch(256, T, seed + g)
            g += 1
            L = mask.sum(1).to(torch.int64).numpy()
            sel = mask.numpy() > 0
            offsets = np.concatenate([[0], np.cumsum(L)]).astype(np.int64)
            cols = {
                "old_log_probs": lp.numpy()[sel],
                "rollout_log_probs": rlp.numpy()[sel],
            }
            arrays = [
                pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(v, pa.float32()))
                for v in cols.values()
            ]
            table = pa.Table.from_arrays(arrays, names=list(cols))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            pending.append(table)
            if sum(t.num_rows for t in pending) >= rows_per_group:
                writer.write_table(pa.concat_tables(pending), row_group_size=rows_per_group)
                pending = []
            n_written += int(L.sum())
            n_seq += 256
            bar.update(int(L.sum()))
    if pending:
        writer.write_table(pa.concat_tables(pending), row_group_size=rows_per_group)
    writer.close()
    return n_written, n_seq


def bench_e2e(args) -> dict:
    """evaluate() on a generated parquet dump: valid tokens / wall time."""
    try:
        from trm_bounds.evaluate import evaluate
    except ImportError as err:
        return {"skipped": f"trm_bounds.evaluate not importable ({err})"}
    import pyarrow.parquet as pq

    n_target = int(1e8) if args.full else int(args.e2e_tokens)
    runs: dict = {}
    with tempfile.TemporaryDirectory(dir=args.tmpdir) as tmp:
        path = Path(tmp) / "dump.parquet"
        n_tok, n_seq = write_parquet(path, n_target, 8192, args.seed + 1000)
        size = path.stat().st_size
        # the decoding floor first: it also reads the fresh file once, so that every timed
        # evaluate() run below finds it in the page cache alike
        t0 = time.perf_counter()
        pf = pq.ParquetFile(path, pre_buffer=True)
        for _ in pf.iter_batches(batch_size=4096, columns=["old_log_probs", "rollout_log_probs"]):
            pass
        read_s = time.perf_counter() - t0
        for prefetch in (True, False):
            times = []
            for _ in range(args.e2e_repeats):
                t0 = time.perf_counter()
                report = evaluate(
                    path, Path(tmp) / "out", progress=True, prefetch=prefetch, overwrite=True
                )
                times.append(time.perf_counter() - t0)
                assert report["n_tokens"] == n_tok, (report["n_tokens"], n_tok)
            t = float(np.median(times))
            runs["prefetch" if prefetch else "no_prefetch"] = {
                "times_s": times,
                "median_s": t,
                "tokens_per_s": n_tok / t,
            }
    return {
        "valid_tokens": n_tok,
        "sequences": n_seq,
        "parquet_bytes": size,
        "wall_s": runs["prefetch"]["median_s"],
        "tokens_per_s": runs["prefetch"]["tokens_per_s"],
        "runs": runs,
        "parquet_decode_only_s": read_s,
        "parquet_decode_only_tokens_per_s": n_tok / read_s,
        "figures": False,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="end to end on 1e8 tokens")
    ap.add_argument("--device", default="cpu", help="verl comparison is CPU by definition")
    ap.add_argument("--B", type=int, default=512)
    ap.add_argument("--T", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--e2e-tokens", type=float, default=2e7)
    ap.add_argument("--e2e-repeats", type=int, default=3, help="evaluate() runs per setting")
    ap.add_argument("--skip-e2e", action="store_true")
    ap.add_argument("--skip-verl", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--mem-tokens", default="2e6,1e7,3e7",
                    help="parquet sizes (valid tokens) for the peak-RSS section")
    ap.add_argument("--idle", action="store_true",
                    help="no competing process during the verl comparison")
    ap.add_argument("--verl-python", default="/tmp/verl-venv/bin/python")
    ap.add_argument("--verl-threads", type=int, default=0,
                    help="torch threads of the verl peer (0: torch's default, one per core)")
    ap.add_argument("--tmpdir", default=None)
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both peers (on a shared, loaded machine 2 threads stall "
        "in every parallel region, so 1 is the fair default)",
    )
    ap.add_argument("--only-memory", action="store_true",
                    help="run only the byte-budget memory rows (issue 18) and add them to --out "
                    "beside its earlier figures")
    ap.add_argument("--mem-row-group", type=int, default=8192,
                    help="rows per parquet row group of the byte-budget memory rows")
    ap.add_argument("--mem-baseline", default=None,
                    help="a checkout whose package is measured side by side (e.g. the commit "
                    "before the byte budget)")
    args = ap.parse_args(argv)
    if args.only_memory:
        return memory_byte_budget(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data: dict = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    data["load_average_start"] = list(os.getloadavg())
    lp, rlp, mask = make_batch(args.B, args.T, args.seed)
    if args.skip_verl:
        data["verl_peer"] = {"skipped": "--skip-verl"}
    else:
        with busy_neighbour(not args.idle):  # verl at its default threads on a busy machine
            data["verl_peer"] = bench_verl(args, lp, rlp, mask)
        data["verl_peer"]["busy_neighbour"] = not args.idle
    print(json.dumps({k: v for k, v in data["verl_peer"].items() if "times" not in k}))
    lpf, rlpf, maskf = make_batch(args.B, args.T, args.seed + 1, full_length=True)
    data["metric_suite"] = bench_suite(args, lpf.to(args.device), rlpf.to(args.device), maskf)
    print(
        json.dumps(
            {
                k: v.get("tokens_per_s")
                for k, v in data["metric_suite"].items()
                if isinstance(v, dict)
            }
        )
    )
    data["exact_kl_150k"] = bench_exact_kl(args)
    print(json.dumps({k: v for k, v in data["exact_kl_150k"].items() if k != "times_s"}))
    data["threads"] = bench_threads(args, lp, rlp, mask)
    print(json.dumps({k: v.get("busy_over_idle") if isinstance(v, dict) else v
                      for k, v in data["threads"].items()}))  # fmt: skip
    data["end_to_end"] = {"skipped": "--skip-e2e"} if args.skip_e2e else bench_e2e(args)
    if "tokens_per_s" in data["end_to_end"]:
        e = data["end_to_end"]
        e["e2e_over_pyarrow_decode"] = e["tokens_per_s"] / e["parquet_decode_only_tokens_per_s"]
    data["memory"] = {"skipped": "--skip-memory"} if args.skip_memory else bench_memory(args)
    print(json.dumps({k: v for k, v in data["memory"].items()}))
    print(json.dumps({k: v for k, v in data["end_to_end"].items() if k != "runs"}))
    data["load_average_end"] = list(os.getloadavg())
    write_results(args.out, data, experiment="bench_evaluate", args=vars(args), seed=args.seed)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
