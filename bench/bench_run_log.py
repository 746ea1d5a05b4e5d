"""How much does run.log() cost a training loop, and how fast do metrics reach the database?

Side by side in one run:

- a bare loop (the same loop with a no-op call), in this process and inside a submitted job;
- run.log on an interactive run (start_logging: the ring plus a flusher thread in this process);
- run.log in a submitted job (a real ScriptRunConfig job times its own loop; its supervisor drains the
  spool into the store), into SQLite and into PostgreSQL, with the job's peak RSS;
- mlflow.log_metric on a sqlite:/// tracking URI (MLflow's own SQL store);
- 8 jobs x 200,000 values at once: rows/s into one SQLite file, and whether every value arrived.

End to end is the values logged / (loop + the flush that waits until the store holds them all).
`--big` adds a job that logs 50,000,000 values through the default ring (it takes minutes: the store's
speed bounds it) and reports its peak RSS early and at the end, and the spool's size.

Run: .venv/bin/python bench/bench_run_log.py [--big] [--no-pg]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pg_cluster

LOOP_CALLS = 200_000  # fits the default ring (262,144): the loop measures run.log, not the store
DRAIN_CALLS = 2_000_000  # 8 rings' worth: the loop waits for the store when the store is slower
MLFLOW_CALLS = 500

JOB = """
import json, os, sys, time
from runyard import Run
n = int(sys.argv[1])
run = Run.get_context()
run.log("loss", 0.0)  # the first call checks the name; the loop measures the calls after it

def loop(log):
    value = 0.0
    start, cpu = time.perf_counter(), time.thread_time()
    for i in range(n):
        value = value * 0.999 + i * 1e-6
        log("loss", value)
    return time.perf_counter() - start, time.thread_time() - cpu

def peak_kib():
    # VmHWM: this process's own high-water mark since its exec (ru_maxrss would also count the
    # supervisor's memory at the fork that started it)
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

bare, _ = loop(lambda name, value: None)
early = peak_kib()  # the ring is made: peak RSS before the loop
logged, logged_cpu = loop(run.log)
start = time.perf_counter()
run.flush()
flush = time.perf_counter() - start
heavy = [m for m in ("sqlalchemy", "httpx", "numpy", "pandas") if m in sys.modules]
spool = os.environ.get("RUNYARD_SPOOL_DIR")
spool_bytes = sum(p.stat().st_size for p in os.scandir(spool)) if spool and os.path.isdir(spool) else 0
print("RESULT " + json.dumps({"bare_s": bare, "loop_s": logged, "cpu_s": logged_cpu, "flush_s": flush, "early_kib": early,
      "peak_kib": peak_kib(), "imported": heavy,
      "spool_bytes": spool_bytes}), flush=True)
"""

CONCURRENT = """
import os, sys, time
from runyard import Run
barrier, n = sys.argv[1], int(sys.argv[2])
run = Run.get_context()
print("ready", flush=True)
while not os.path.exists(barrier):
    time.sleep(0.005)
for i in range(n):
    run.log("m", float(i))
run.flush()
"""


def _loop(log: Any, n: int) -> tuple[float, float]:
    """Wall and CPU seconds (this thread's) of `n` calls in a training-like loop."""
    value = 0.0
    start, cpu = time.perf_counter(), time.thread_time()
    for i in range(n):
        value = value * 0.999 + i * 1e-6
        log("loss", value)
    return time.perf_counter() - start, time.thread_time() - cpu


def interactive(root: Path, n: int) -> dict[str, float]:
    os.environ.pop("RUNYARD_SPOOL_DIR", None)
    from runyard import Experiment, Workspace

    ws = Workspace.create(root / "interactive" / ".runyard")
    run = Experiment(ws, "bench-interactive").start_logging()
    run.log("loss", 0.0)
    bare, _ = _loop(lambda name, value: None, n)
    logged, cpu = _loop(run.log, n)
    start = time.perf_counter()
    run.flush()
    flush = time.perf_counter() - start
    assert ws.store.count_metric_rows(run.id) == n + 1
    run.complete()
    return {"bare_s": bare, "loop_s": logged, "cpu_s": cpu, "flush_s": flush}


def submitted(root: Path, label: str, n: int, tracking_uri: str | None = None) -> dict[str, Any]:
    from runyard import Experiment, ScriptRunConfig, Workspace

    ws = Workspace.create(root / label / ".runyard", tracking_uri=tracking_uri)
    source = root / label / "src"
    source.mkdir(parents=True)
    (source / "job.py").write_text(JOB)
    run = Experiment(ws, "bench-submitted").submit(ScriptRunConfig(str(source), "job.py", arguments=[str(n)]))
    details = run.wait_for_completion(raise_on_error=False)
    log = run.read_log().decode()
    if details["status"] != "Completed" or "RESULT " not in log:
        raise RuntimeError(f"the {label} job failed: {details.get('error')}\n{log[-2000:]}")
    result: dict[str, Any] = json.loads(log.split("RESULT ", 1)[1].splitlines()[0])
    stored = ws.store.count_metric_rows(run.id)
    assert stored == n + 1, (stored, n + 1)
    return result


def mlflow_case(root: Path, n: int) -> float | str:
    """Seconds for `n` mlflow.log_metric calls on MLflow's own SQL store (or why it was skipped)."""
    try:
        import mlflow
    except ImportError as exc:
        return f"skipped: {exc}"
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    with mlflow.start_run():
        mlflow.log_metric("loss", 0.0, step=0)
        start = time.perf_counter()
        for i in range(n):
            mlflow.log_metric("loss", i * 1e-3, step=i)
        return time.perf_counter() - start


def concurrent(root: Path, jobs: int, n: int) -> dict[str, Any]:
    from runyard import Experiment, ScriptRunConfig, Workspace

    ws = Workspace.create(root / "concurrent" / ".runyard")
    source = root / "concurrent" / "src"
    source.mkdir(parents=True)
    (source / "job.py").write_text(CONCURRENT)
    barrier = root / "concurrent" / "go"
    exp = Experiment(ws, "bench-concurrent")
    runs = [
        exp.submit(ScriptRunConfig(str(source), "job.py", arguments=[str(barrier), str(n)]))
        for _ in range(jobs)
    ]
    while not all(b"ready" in r.read_log() for r in runs):
        time.sleep(0.05)
    start = time.perf_counter()
    barrier.touch()
    for run in runs:
        run.wait_for_completion(raise_on_error=False)
    seconds = time.perf_counter() - start
    counts = [ws.store.count_metric_rows(r.id) for r in runs]
    return {"seconds": seconds, "rows_per_s": sum(counts) / seconds, "complete": counts == [n] * jobs}


@contextmanager
def postgres() -> Iterator[str | None]:
    """A throwaway PostgreSQL 15 cluster without fsync; None (and why) if it is not installed."""
    if not pg_cluster.installed():
        print(f"PostgreSQL skipped: {pg_cluster.PG_BIN}/initdb is not installed", file=sys.stderr)
        yield None
        return
    with pg_cluster.postgres_cluster(fsync=False) as uri:
        yield uri


def per_call(seconds: float, n: int, cpu: float | None = None) -> str:
    shown = f"{seconds / n * 1e6:.2f} µs ({n / seconds:,.0f}/s)"
    return shown if cpu is None else f"{shown}; CPU {cpu / n * 1e6:.2f} µs"


def job_row(label: str, r: dict[str, Any], n: int) -> str:
    return (
        f"| {label} | {per_call(r['loop_s'], n, r['cpu_s'])} | {per_call(r['bare_s'], n)} | "
        f"{r['flush_s']:.2f} s | {(n + 1) / (r['loop_s'] + r['flush_s']):,.0f} | {r['peak_kib'] / 1024:.1f} MiB |"
    )


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big", action="store_true", help="also log 50,000,000 values in one job")
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    args = parser.parse_args(argv)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare, bare_cpu = _loop(lambda name, value: None, LOOP_CALLS)
        rows.append(f"| bare loop, this process | {per_call(bare, LOOP_CALLS, bare_cpu)} | | | | |")
        r = interactive(root, LOOP_CALLS)
        e2e = (LOOP_CALLS + 1) / (r["loop_s"] + r["flush_s"])
        rows.append(
            f"| run.log, interactive run (SQLite) | {per_call(r['loop_s'], LOOP_CALLS, r['cpu_s'])} | "
            f"{per_call(r['bare_s'], LOOP_CALLS)} | {r['flush_s']:.2f} s | {e2e:,.0f} | |"
        )
        job = submitted(root, "sqlite", LOOP_CALLS)
        rows.append(job_row(f"run.log, submitted job, {LOOP_CALLS:,} calls (SQLite)", job, LOOP_CALLS))
        drained = submitted(root, "sqlite-drain", DRAIN_CALLS)
        rows.append(job_row(f"run.log, submitted job, {DRAIN_CALLS:,} calls (SQLite)", drained, DRAIN_CALLS))
        with nullcontext(None) if args.no_pg else postgres() as pg:
            if pg is not None:
                on_pg = submitted(root, "postgres", DRAIN_CALLS, pg)
                rows.append(
                    job_row(f"run.log, submitted job, {DRAIN_CALLS:,} calls (PostgreSQL)", on_pg, DRAIN_CALLS)
                )
            else:
                rows.append("| run.log, submitted job (PostgreSQL) | skipped (see stderr) | | | | |")
        many = concurrent(root, 8, 200_000)
        rows.append(
            f"| 8 jobs x 200,000 at once (SQLite) | | | {many['seconds']:.1f} s in all | "
            f"{many['rows_per_s']:,.0f} | every value stored: {many['complete']} |"
        )
        ml = mlflow_case(root, MLFLOW_CALLS)
        shown = ml if isinstance(ml, str) else per_call(ml, MLFLOW_CALLS)
        rows.append(f"| mlflow.log_metric (sqlite:///, {MLFLOW_CALLS} calls) | {shown} | | | | |")
        if args.big:
            n = 50_000_000
            big = submitted(root, "big", n)
            rows.append(job_row(f"run.log, one job, {n:,} calls (SQLite)", big, n))
            rows.append(
                f"| ... its peak RSS before the loop / at the end; spool size | | | | | "
                f"{big['early_kib'] / 1024:.1f} / {big['peak_kib'] / 1024:.1f} MiB; {big['spool_bytes'] / 2**20:.1f} MiB |"
            )
        imported = ", ".join(job["imported"]) or "none of sqlalchemy, httpx, numpy, pandas"
    header = [
        f"### run.log in a training loop — {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        "| case | per call, wall (calls/s); CPU | bare loop, same process | flush after loop | rows/s end to end "
        "| job peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    footer = [
        "",
        "Per call: wall time of the loop (what a training loop notices), and the logging thread's CPU time (what",
        "run.log itself costs, whatever else the machine runs). End to end: values / (loop + flush).",
        f"Imported by the {LOOP_CALLS:,}-call job before its flush: {imported}.",
    ]
    return header + rows + footer


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
