"""ParallelRunStep (issue 14): runyard's batch throughput against multiprocessing.Pool and Ray Data.

The work is the same Python function everywhere: a pure-Python busy loop calibrated once to about
WORK_MS of CPU per item (the entry script gets the very source of `work` and `work_file` below).

(a) ITEMS items (rows of a Parquet table), mini-batches of BATCH, PROCESSES processes:
    - pure compute: `work` over every item in this process; divided by PROCESSES it is the best a
      PROCESSES-process run can do;
    - runyard: the ParallelRunStep driver run directly on a job file (`python -m runyard.parallel.driver`,
      RUNYARD_PARALLEL_JOB, append_row output), as the scheduler starts it. Wall = process start to exit
      (Python start, planning, worker start, init, assembly of the output file); processing = first
      run() start to last run() end, as the entry script records them;
    - multiprocessing.Pool(PROCESSES).map(..., chunksize=BATCH): wall includes starting and joining the
      pool, processing is the map call;
    - Ray Data: `ray.data.range(ITEMS).map_batches(fn, batch_size=BATCH)` under `ray.init(num_cpus=PROCESSES)`;
      wall includes ray.init, processing is the dataset's execution.
(b) FILES small files (1 KiB each) in one folder, as a FileDataset hands them: each item reads its file,
    then the same busy loop; mini-batches of BATCH files; runyard (file input), Pool and Ray Data over the
    same paths.

Per-mini-batch overhead = (runyard processing - pure compute / PROCESSES) / (mini-batches / PROCESSES):
the time each worker spends per mini-batch beyond the work itself (handing out, loading the rows,
writing results, accounting). Targets: runyard >= 90% of the Pool's items/s; overhead < 2 ms per
mini-batch. Each system runs REPEATS times, alternated; medians are reported.

Run from the repository root: `.venv/bin/python bench/bench_parallel.py` (Ray Data from the `bench`
extra: `.venv/bin/pip install -e '.[bench]'`; without it Ray is reported as not measured).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import logging
import math
import multiprocessing
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from runyard.engine.graph_parallel import ParallelSettings
from runyard.parallel.job import ENV_JOB, InputEntry, ParallelJob

WORK_MS = 0.5
ITEMS = 20_000
FILES = 5_000
BATCH = 100
PROCESSES = 2
REPEATS = 3
POOL_TARGET = 0.90
SYS_LINE = re.compile(r"duration=([\d.]+)s run=([\d.]+)s")
OVERHEAD_TARGET_MS = 2.0


def spin(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i
    return total


def work(value: int, loops: int) -> int:
    spin(loops)
    return value


def work_file(path: str, loops: int) -> int:
    with open(path, "rb") as fh:
        size = len(fh.read())
    spin(loops)
    return size


ENTRY = '''"""Benchmark entry script: the same work as bench_parallel.py's Pool and Ray runs."""
import os
import sys
import time

LOOPS = int(sys.argv[sys.argv.index("--loops") + 1])
times = None

{functions}

def init():
    global times
    times = open(os.path.join(os.environ["BENCH_TIMES"], f"{{os.getpid()}}.txt"), "a", buffering=1)


def run(mini_batch):
    start = time.time()
    if isinstance(mini_batch, list):
        out = [work_file(path, LOOPS) for path in mini_batch]
    else:
        out = [work(value, LOOPS) for value in mini_batch["item"].tolist()]
    times.write(f"{{start}} {{time.time()}}\\n")
    return out
'''


def calibrate() -> int:
    """Loops of `spin` that take WORK_MS of CPU here (median of several timings)."""
    loops = 20_000
    samples = []
    for _ in range(15):
        start = time.process_time()
        spin(loops)
        samples.append(time.process_time() - start)
    return max(1, round(loops * WORK_MS / 1000 / statistics.median(samples)))


def children_cpu() -> float:
    """CPU seconds of every finished child process and their reaped children (the driver's workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- runyard ---------------------------------------------------------------------------------------
def runyard_run(work_dir: Path, entry: InputEntry, mini_batch_size: int, loops: int) -> dict[str, float]:
    """One driver run on a fresh job folder and checkpoint; wall and processing seconds."""
    job_dir = Path(tempfile.mkdtemp(prefix="job-", dir=work_dir))
    times, output = job_dir / "times", job_dir / "output"
    times.mkdir()
    output.mkdir()
    (job_dir / "entry.py").write_text(
        ENTRY.format(functions="\n\n".join(inspect.getsource(f) for f in (spin, work, work_file)))
    )
    settings = ParallelSettings(
        kind=entry.kind,
        mini_batch_size=mini_batch_size,
        error_threshold=0,
        output_action="append_row",
        append_row_file_name="parallel_run_step.txt",
        node_count=1,
        process_count_per_node=PROCESSES,
        logging_level="INFO",
        run_invocation_timeout=60,
        run_max_try=1,
        environment_variables={"BENCH_TIMES": str(times)},
    )
    job = ParallelJob(
        step="bench",
        entry_script="entry.py",
        settings=settings.to_json(),
        inputs=[entry],
        output=str(output),
        arguments=["--loops", str(loops)],
        checkpoint=str(job_dir / "checkpoint"),
    )
    job_file = job.save(job_dir / "job.json")
    env = {**os.environ, ENV_JOB: str(job_file), "PYTHONUNBUFFERED": "1"}
    cpu = children_cpu()
    start = time.time()
    done = subprocess.run(
        [sys.executable, "-u", "-m", "runyard.parallel.driver"],
        cwd=job_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.time() - start
    cpu = children_cpu() - cpu
    if done.returncode != 0:
        raise RuntimeError(f"the driver failed ({done.returncode}): {(done.stdout + done.stderr)[-2000:]}")
    per_worker = [
        [tuple(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
        for path in times.iterdir()
    ]
    spans = [span for worker in per_worker for span in worker]
    # per mini-batch, the time a worker is between two run() calls (its own clock): what runyard adds to
    # each mini-batch in a worker's timeline (handing over, slicing, the DataFrame, the results file)
    between = [b[0] - a[1] for worker in per_worker for a, b in itertools.pairwise(worker)]
    progress = json.loads((job_dir / "logs" / "sys" / "progress.json").read_text())
    lines = (output / "parallel_run_step.txt").read_text().count("\n")
    # each worker's per-mini-batch lines (logs/sys/node/<node>/processNNN.txt): its time beyond run().
    # A worker's first mini-batch also pays its imports (pandas, pyarrow): left out. The log rounds to
    # 1 ms, so the mean is taken, not the median.
    gaps: list[float] = []
    for path in (job_dir / "logs" / "sys" / "node").rglob("*.txt"):
        own = sorted(float(d) - float(r) for d, r in SYS_LINE.findall(path.read_text()))
        gaps += own[:-1]
    shutil.rmtree(job_dir, ignore_errors=True)
    return {
        "wall": wall,
        "cpu": cpu,
        "processing": max(end for _s, end in spans) - min(start for start, _e in spans),
        "first_run_after": min(start for start, _e in spans) - start,
        "mini_batches": progress["mini_batches"]["total"],
        "items_failed": progress["items"]["failed"],
        "output_lines": lines,
        "worker_gap": statistics.fmean(gaps) if gaps else math.nan,
        "between_runs": statistics.fmean(between) if between else math.nan,
    }


# -- multiprocessing.Pool --------------------------------------------------------------------------
def pool_run(items: list[Any], func: Any) -> dict[str, float]:
    cpu = children_cpu()
    start = time.perf_counter()
    pool = multiprocessing.get_context("fork").Pool(PROCESSES)
    began = time.perf_counter()
    results = pool.map(func, items, chunksize=BATCH)
    processing = time.perf_counter() - began
    pool.close()
    pool.join()
    assert len(results) == len(items)
    return {"wall": time.perf_counter() - start, "processing": processing, "cpu": children_cpu() - cpu}


# -- Ray Data --------------------------------------------------------------------------------------
def _ray_rows(batch: dict[str, Any], loops: int) -> dict[str, Any]:
    return {"id": [work(int(v), loops) for v in batch["id"]]}


def _ray_files(batch: dict[str, Any], loops: int) -> dict[str, Any]:
    return {"size": [work_file(str(p), loops) for p in batch["path"]]}


def ray_run(kind: str, items: list[Any], loops: int) -> dict[str, float]:
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=PROCESSES, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    try:
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        began = time.perf_counter()
        if kind == "rows":
            ds = ray.data.range(len(items)).map_batches(
                _ray_rows, batch_size=BATCH, fn_kwargs={"loops": loops}
            )
        else:
            ds = ray.data.from_items([{"path": p} for p in items]).map_batches(
                _ray_files, batch_size=BATCH, fn_kwargs={"loops": loops}
            )
        count = ds.materialize().count()
        processing = time.perf_counter() - began
    finally:
        ray.shutdown()
    assert count == len(items), count
    return {"wall": time.perf_counter() - start, "processing": processing}


def ray_problem() -> str | None:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        return f"Ray Data is not installed ({exc}); install the bench extra: pip install -e '.[bench]'"
    return None


# -- the run ---------------------------------------------------------------------------------------
def _median(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def measure(work_dir: Path, items: int, files: int, repeats: int) -> dict[str, Any]:
    loops = calibrate()
    table = work_dir / "items.parquet"
    pq.write_table(pa.table({"item": pa.array(range(items), pa.int64())}), table)
    # a byte size that gives BATCH rows per mini-batch: rows * size // file_bytes == BATCH
    row_size = math.ceil(BATCH * table.stat().st_size / items)
    folder = work_dir / "files"
    folder.mkdir()
    paths = []
    for index in range(files):
        path = folder / f"item-{index:05d}.bin"
        path.write_bytes(os.urandom(1024))
        paths.append(str(path))
    rows_input = InputEntry(name="items", kind="tabular", source="path", path=str(table))
    files_input = InputEntry(name="files", kind="file", source="path", path=str(folder))
    # one mini-batch of one item: what a run costs before and after its work (startup, assembly)
    one_row = work_dir / "one.parquet"
    pq.write_table(pa.table({"item": pa.array([0], pa.int64())}), one_row)
    (work_dir / "one").mkdir()
    shutil.copy(paths[0], work_dir / "one" / "item.bin")
    tiny = {
        "rows": InputEntry(name="items", kind="tabular", source="path", path=str(one_row)),
        "files": InputEntry(name="files", kind="file", source="path", path=str(work_dir / "one")),
    }
    ray_missing = ray_problem()
    result: dict[str, Any] = {"loops": loops, "ray_missing": ray_missing, "load_before": os.getloadavg()[0]}
    for case, count, entry, size, func, ray_kind, ray_items in (
        ("rows", items, rows_input, row_size, partial(work, loops=loops), "rows", list(range(items))),
        ("files", files, files_input, BATCH, partial(work_file, loops=loops), "files", paths),
    ):
        serial_items = range(count) if case == "rows" else paths
        runs: dict[str, list[dict[str, float]]] = {
            "runyard": [], "pool": [], "ray": [], "pure": [], "startup": []
        }  # fmt: skip
        for _ in range(repeats):
            start, cpu = time.perf_counter(), time.process_time()
            for item in serial_items:
                func(item)
            runs["pure"].append({"processing": time.perf_counter() - start, "cpu": time.process_time() - cpu})
            runs["startup"].append(runyard_run(work_dir, tiny[case], 1 << 30, loops))
            runs["pool"].append(pool_run(list(serial_items), func))
            runs["runyard"].append(runyard_run(work_dir, entry, size, loops))
            if not ray_missing:
                runs["ray"].append(ray_run(ray_kind, ray_items, loops))
        last = runs["runyard"][-1]
        result[case] = {
            "items": count,
            "mini_batches": last["mini_batches"],
            "output_lines": last["output_lines"],
            "items_failed": last["items_failed"],
            "pure": _median(runs["pure"], "processing"),
            "pure_cpu": _median(runs["pure"], "cpu"),
            "startup_cpu": _median(runs["startup"], "cpu"),
            "startup_wall": _median(runs["startup"], "wall"),
            **{
                f"{system}_{key}": _median(runs[system], key)
                for system in ("runyard", "pool", "ray")
                if runs[system]
                for key in ("wall", "processing", "cpu")
                if key in runs[system][0]
            },
            "runyard_first_run_after": _median(runs["runyard"], "first_run_after"),
            "runyard_worker_gap": _median(runs["runyard"], "worker_gap"),
            "runyard_between_runs": _median(runs["runyard"], "between_runs"),
        }
    result["load_after"] = os.getloadavg()[0]
    return result


def _rate(items: int, seconds: float) -> str:
    return f"{items / seconds:,.0f}"


def report(res: dict[str, Any]) -> list[str]:
    lines = [
        f"### ParallelRunStep (issue 14), {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "",
        f"Busy loop of {res['loops']:,} iterations (~{WORK_MS} ms CPU) per item, mini-batches of {BATCH}, "
        f"{PROCESSES} processes; medians of {REPEATS} alternated runs. items/s = items / seconds. "
        f"Load average {res['load_before']:.1f} before, {res['load_after']:.1f} after.",
        "",
    ]
    for case, title in (("rows", "rows of a Parquet table"), ("files", "small files (1 KiB, read + loop)")):
        r = res[case]
        n, mbs = r["items"], r["mini_batches"]
        ideal = r["pure"] / PROCESSES
        overhead_ms = (r["runyard_processing"] - ideal) / (mbs / PROCESSES) * 1000
        ratio = r["runyard_processing"] and r["pool_processing"] / r["runyard_processing"]
        ratio_wall = r["pool_wall"] / r["runyard_wall"]
        beyond_pool_ms = (r["runyard_processing"] - r["pool_processing"]) / (mbs / PROCESSES) * 1000
        cpu_ms = (r["runyard_cpu"] - r["startup_cpu"] - r["pure_cpu"]) / mbs * 1000
        between_ms = r["runyard_between_runs"] * 1000
        lines += [
            f"**{n:,} {title}** ({mbs} mini-batches; output file {r['output_lines']:,} lines, "
            f"{r['items_failed']} items failed; runyard's first run() {r['runyard_first_run_after']:.2f} s "
            "after the driver started)",
            "",
            "| system | processing s | items/s (processing) | wall s | items/s (wall) |",
            "|---|---|---|---|---|",
            f"| pure compute / {PROCESSES} (ideal) | {ideal:.2f} | {_rate(n, ideal)} | | |",
            f"| runyard driver | {r['runyard_processing']:.2f} | **{_rate(n, r['runyard_processing'])}** | "
            f"{r['runyard_wall']:.2f} | {_rate(n, r['runyard_wall'])} |",
            f"| multiprocessing.Pool | {r['pool_processing']:.2f} | {_rate(n, r['pool_processing'])} | "
            f"{r['pool_wall']:.2f} | {_rate(n, r['pool_wall'])} |",
        ]
        if "ray_processing" in r:
            lines.append(
                f"| Ray Data map_batches | {r['ray_processing']:.2f} | {_rate(n, r['ray_processing'])} | "
                f"{r['ray_wall']:.2f} | {_rate(n, r['ray_wall'])} |"
            )
        else:
            lines.append(f"| Ray Data map_batches | not measured: {res['ray_missing']} | | | |")
        lines += [
            "",
            f"- runyard / Pool throughput: **{ratio:.0%}** processing, {ratio_wall:.0%} wall; target >= "
            f"{POOL_TARGET:.0%}: **{'MET' if ratio >= POOL_TARGET else 'NOT MET'}** "
            f"({_rate(n, r['runyard_processing'])} vs {_rate(n, r['pool_processing'])} items/s)",
            f"- per-mini-batch overhead, a worker's time between the end of one run() and the start of the "
            f"next (the entry script's own clock; mean): **{between_ms:.2f} ms**; target < "
            f"{OVERHEAD_TARGET_MS:g} ms: **{'MET' if between_ms < OVERHEAD_TARGET_MS else 'NOT MET'}**. "
            f"Other views: processing beyond pure compute / {PROCESSES} per worker's mini-batch {overhead_ms:.2f} "
            f"ms (it carries the difference between the in-process calibration and the workers' speed); beyond "
            f"the Pool's processing {beyond_pool_ms:.2f} ms; a worker's own time outside run() (its sys log; "
            f"first mini-batch left out) {r['runyard_worker_gap'] * 1000:.2f} ms",
            f"- CPU seconds, all processes: pure compute {r['pure_cpu']:.2f}, Pool {r['pool_cpu']:.2f}, runyard "
            f"{r['runyard_cpu']:.2f}, of which {r['startup_cpu']:.2f} is a one-item job's (startup: the driver and "
            f"{PROCESSES} workers importing, planning, assembling; {r['startup_wall']:.2f} s wall). runyard's CPU "
            f"per mini-batch beyond the work and the startup: {cpu_ms:.2f} ms (not a target; more than the workers' "
            f"own time outside run() explains, and not yet traced: ±0.5 s of CPU between alike runs is ±2.5 ms "
            f"per mini-batch here)",
            "",
        ]
    return lines


def main(argv: list[str] | None = None) -> list[str]:
    global REPEATS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=ITEMS)
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--json", help="also write the raw numbers to this file")
    args = parser.parse_args(argv)
    REPEATS = args.repeats
    work_dir = Path(tempfile.mkdtemp(prefix="runyard-bench-parallel-"))
    try:
        res = measure(work_dir, args.items, args.files, args.repeats)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return report(res)


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
