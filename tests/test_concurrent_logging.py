"""Many processes logging into one workspace at once: no row is lost, none is doubled, summaries add up.

Each writer is a real submitted run (its own supervisor and script process). The scripts wait at a
barrier file until every run is up, so their logging really overlaps.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.status import RunStatus

SCRIPT = """
    import os, sys, time
    from runyard import Run

    barrier, count = sys.argv[1], int(sys.argv[2])
    run = Run.get_context()
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(barrier):
        if time.monotonic() > deadline:
            sys.exit("barrier never opened")
        time.sleep(0.01)
    for i in range(count):
        run.log("m", i)
    print("logged", count, flush=True)
"""


def log_concurrently(
    workspace: Workspace, source_dir: SourceDir, tmp_path: Path, runs: int, count: int
) -> None:
    source_dir.gen({"log_many.py": SCRIPT})
    barrier = tmp_path / "go"
    exp = Experiment(workspace, "concurrent")
    submitted: list[Run] = [
        exp.submit(ScriptRunConfig(source_dir, "log_many.py", arguments=[str(barrier), count]))
        for _ in range(runs)
    ]
    # Open the barrier only when every script is running and waiting at it.
    wait_for(
        lambda: all(r.get_status() == RunStatus.RUNNING and b"ready" in r.read_log() for r in submitted),
        timeout=90,
        interval=0.1,
    )
    barrier.touch()
    for run in submitted:
        details = run.wait_for_completion(raise_on_error=False)
        assert details["status"] == "Completed", (details.get("error"), run.read_log().decode()[-2000:])

    store = workspace.store
    assert store.count_metric_rows() == runs * count
    for run in submitted:
        assert store.count_metric_rows(run.id) == count
        summaries = store.get_metric_summaries([run.id])
        assert [(s.name, s.count) for s in summaries] == [("m", count)]
        assert (summaries[0].min, summaries[0].max, summaries[0].last) == (0, count - 1, count - 1)
    # Order within each run is the logging order.
    sample = submitted[len(submitted) // 2]
    assert sample.get_metrics()["m"] == list(range(count))


@pytest.mark.timeout(240)
def test_eight_processes_log_160k_metrics_into_one_sqlite_workspace(
    sqlite_workspace: Workspace, source_dir: SourceDir, tmp_path: Path
) -> None:
    started = time.monotonic()
    log_concurrently(sqlite_workspace, source_dir, tmp_path, runs=8, count=20_000)
    assert sqlite_workspace.store.count_metric_rows() == 160_000
    print(f"8 x 20,000 metrics took {time.monotonic() - started:.1f}s")


def test_four_processes_log_concurrently(workspace: Workspace, source_dir: SourceDir, tmp_path: Path) -> None:
    """The smaller version, on SQLite and PostgreSQL."""
    log_concurrently(workspace, source_dir, tmp_path, runs=4, count=2_000)


FORKING_SCRIPT = """
    import multiprocessing as mp, os, sys
    from runyard import Run

    run = Run.get_context()
    for i in range(10):
        run.log("parent", i)  # still pending in this process's writer when the children fork

    def work(k):
        child_run = Run.get_context()
        for i in range(100):
            child_run.log(f"worker{k}", i)
        if k == 0:
            child_run.flush()  # one worker flushes itself; the others are left to the spool replay
        return k

    if __name__ == "__main__":
        with mp.get_context("fork").Pool(3) as pool:
            print("pool", pool.map(work, range(3)), flush=True)
        pid = os.fork()
        if pid == 0:  # a plain fork that exits normally: it must not write the parent's rows again
            for i in range(5):
                run.log("forked", i)
            sys.exit(0)
        os.waitpid(pid, 0)
        for i in range(10, 20):
            run.log("parent", i)
"""


def test_forked_worker_processes_log_into_the_run(
    workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multiprocessing's fork start method: each child needs a writer (and connections) of its own."""
    monkeypatch.setenv("RUNYARD_METRIC_FLUSH_SECONDS", "60")
    source_dir.gen({"train.py": FORKING_SCRIPT})
    run = Experiment(workspace, "forking").submit(ScriptRunConfig(source_dir, "train.py"))
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details.get("error")
    assert "pool [0, 1, 2]" in run.read_log().decode()
    metrics = run.get_metrics()
    assert metrics["parent"] == list(range(20))
    for k in range(3):
        assert metrics[f"worker{k}"] == list(range(100))
    assert metrics["forked"] == list(range(5))
    assert workspace.store.count_metric_rows(run.id) == 20 + 300 + 5
