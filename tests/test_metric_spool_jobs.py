"""The metric spool in real submitted jobs: each script runs under its own supervisor, which drains the
job's spool into the workspace's SQLite database while the script runs and once more after it ended.

SIGKILL after N logged calls leaves exactly N rows; concurrent jobs, threads and forked workers lose
nothing through a ring that wraps many times; a job's memory and spool stay flat however many values it
logs; and a job cannot get values stored in a run that is not its own (or its descendants').
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.core.metric_spool import HEADER_BYTES, RECORD_BYTES

KILL_AFTER = """
    import os, signal, sys
    from runyard import Run
    run = Run.get_context()
    for i in range(int(sys.argv[1])):
        run.log("v", i, step=i)
    print("logged", sys.argv[1], flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def submit(ws: Workspace, source_dir: SourceDir, script: str, *arguments: object, name: str = "spool") -> Run:
    source_dir.gen({"train.py": script})
    return Experiment(ws, name).submit(ScriptRunConfig(source_dir, "train.py", arguments=list(arguments)))


def finished(run: Run, status: str = "Completed") -> None:
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == status, (details.get("error"), run.read_log().decode()[-3000:])


def values_of(run: Run, name: str) -> list[float]:
    return [r.value for r in run.workspace.store.get_metric_rows([run.id], name)]  # type: ignore[misc]


@pytest.mark.timeout(180)
def test_sigkill_after_n_calls_leaves_exactly_n_rows(
    sqlite_workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 64-record ring: nothing, one value, one short of the ring, exactly the ring, one past it,
    and a ring wrapped 15 times (the job waits for its supervisor to drain, then is killed)."""
    monkeypatch.setenv("RUNYARD_METRIC_SPOOL_RECORDS", "64")
    monkeypatch.setenv("RUNYARD_METRIC_FLUSH_SECONDS", "60")  # the supervisor drains only when asked
    counts = [0, 1, 63, 64, 65, 1000]
    runs = [submit(sqlite_workspace, source_dir, KILL_AFTER, n) for n in counts]
    for n, run in zip(counts, runs, strict=True):
        finished(run, "Failed")
        assert "SIGKILL" in run.get_details()["error"]["message"]
        assert values_of(run, "v") == [float(i) for i in range(n)], n
        assert [r.step for r in sqlite_workspace.store.get_metric_rows([run.id])] == list(range(n))


LOG_MANY = """
    import os, sys, time
    from runyard import Run
    barrier, count = sys.argv[1], int(sys.argv[2])
    run = Run.get_context()
    print("ready", flush=True)
    while not os.path.exists(barrier):
        time.sleep(0.01)
    for i in range(count):
        run.log("m", float(i))
"""


@pytest.mark.timeout(240)
def test_eight_jobs_logging_through_small_rings_lose_nothing(
    sqlite_workspace: Workspace, source_dir: SourceDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 jobs x 10,000 values at once, each through a 1,024-record ring (it wraps 10 times): every value
    once, in order, per run. (bench/bench_run_log.py runs 8 x 200,000: too long for the suite.)"""
    monkeypatch.setenv("RUNYARD_METRIC_SPOOL_RECORDS", "1024")
    barrier = tmp_path / "go"
    runs = [submit(sqlite_workspace, source_dir, LOG_MANY, barrier, 10_000) for _ in range(8)]
    deadline = time.monotonic() + 120
    while not all(b"ready" in r.read_log() for r in runs) and time.monotonic() < deadline:
        time.sleep(0.1)
    barrier.touch()
    for run in runs:
        finished(run)
        assert sqlite_workspace.store.count_metric_rows(run.id) == 10_000
        assert values_of(run, "m") == [float(i) for i in range(10_000)]


FLAT = """
    import json, os, sys
    from pathlib import Path
    from runyard import Run

    def peak_kib():  # VmHWM: this process's own peak since exec (ru_maxrss also counts the supervisor's)
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))

    run = Run.get_context()
    count = int(sys.argv[1])
    for i in range(count):
        run.log("loss", i * 1e-3, step=i)
        if i == 20_000:
            early = peak_kib()
    late = peak_kib()
    spool = Path(os.environ["RUNYARD_SPOOL_DIR"])
    sizes = {p.name.rsplit(".", 1)[1]: p.stat().st_size for p in spool.iterdir()}
    Path("outputs/memory.json").write_text(json.dumps({"early_kib": early, "late_kib": late, "sizes": sizes}))
"""


@pytest.mark.timeout(180)
def test_a_job_logging_many_values_keeps_memory_and_spool_flat(
    sqlite_workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """150,000 values through a 1,024-record ring (it wraps ~146 times): the job's peak RSS after 20,000
    values and after 150,000 differ by less than 4 MiB (and stay far below the supervisor's), and the ring
    file keeps its size. (The 50M-value
    run is bench/bench_run_log.py --big.)"""
    monkeypatch.setenv("RUNYARD_METRIC_SPOOL_RECORDS", "1024")
    run = submit(sqlite_workspace, source_dir, FLAT, 150_000)
    finished(run)
    memory = json.loads(
        sqlite_workspace.artifacts.local_path(f"runs/{run.id}/outputs/memory.json").read_text()
    )
    assert memory["late_kib"] - memory["early_kib"] < 4096, memory
    assert memory["late_kib"] < 48 * 1024, memory  # a job that only logs loads no database client
    assert memory["sizes"]["ring"] == HEADER_BYTES + 1024 * RECORD_BYTES, memory
    assert memory["sizes"]["jsonl"] < 1024, memory  # one series definition; no value goes there
    assert sqlite_workspace.store.count_metric_rows(run.id) == 150_000


THREADS_AND_FORKS = """
    import json, multiprocessing as mp, os, sys, threading
    from runyard import Run
    run = Run.get_context()

    def work(k):
        for i in range(5000):
            run.log(f"t{k}", i)

    def child(k):
        mine = Run.get_context()
        for i in range(1000):
            mine.log(f"w{k}", i)
        return k

    if __name__ == "__main__":
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads: t.start()
        with mp.get_context("fork").Pool(2) as pool:
            print("pool", pool.map(child, range(2)), flush=True)
        for t in threads: t.join()
        pid = os.fork()
        if pid == 0:
            for i in range(100):
                run.log("forked", i)
            sys.exit(0)
        os.waitpid(pid, 0)
        run.log("note", "seen")
        seen = run.get_metrics()  # inside the job: flushed first, so its own values are all there
        print("SEEN", json.dumps({k: len(v) if isinstance(v, list) else v for k, v in sorted(seen.items())}))
"""


@pytest.mark.timeout(120)
def test_threads_and_forked_workers_of_a_job_lose_nothing(
    sqlite_workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_METRIC_SPOOL_RECORDS", "512")
    run = submit(sqlite_workspace, source_dir, THREADS_AND_FORKS)
    finished(run)
    log = run.read_log().decode()
    assert "pool [0, 1]" in log
    seen = json.loads(log.split("SEEN ", 1)[1].splitlines()[0])
    assert {k: seen[k] for k in ("t0", "t1", "t2", "t3", "note")} == {
        "t0": 5000,
        "t1": 5000,
        "t2": 5000,
        "t3": 5000,
        "note": "seen",
    }
    got = run.get_metrics()
    for k in range(4):
        assert got[f"t{k}"] == list(range(5000))
    for k in range(2):
        assert got[f"w{k}"] == list(range(1000))
    assert got["forked"] == list(range(100))
    assert sqlite_workspace.store.count_metric_rows(run.id) == 4 * 5000 + 2 * 1000 + 100 + 1


HIJACK = """
    import sys
    from runyard import Run
    run = Run.get_context()
    run.log("mine", 1.0)
    child = run.child_run(name="from-the-job")
    child.log("child_metric", 2.0)
    child.complete()
    other = Run.get(run.workspace, sys.argv[1])
    other.log("hijacked", 666.0)
    other.log("hijacked_text", "yes")
    other.flush()  # the supervisor took the values (and dropped them): nothing waits forever
    print("LOGGED TO THE OTHER RUN", flush=True)
"""


def test_a_job_cannot_store_values_in_another_run(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    """The supervisor writes the job's metrics with the job's rights: values the job spooled for a run
    outside its family (its run, that run's descendants) are dropped, with a line in its control log."""
    other = Experiment(sqlite_workspace, "bystander").start_logging()
    run = submit(sqlite_workspace, source_dir, HIJACK, other.id)
    finished(run)
    assert "LOGGED TO THE OTHER RUN" in run.read_log().decode()
    assert other.get_metrics() == {}
    assert run.get_metrics() == {"mine": 1.0}
    (child,) = run.get_children()
    assert child.get_metrics() == {"child_metric": 2.0}
    control = run.read_log("azureml-logs/60_control_log.txt").decode()
    assert f"dropped the metric values this job logged for run {other.id!r}" in control
