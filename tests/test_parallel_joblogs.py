"""A ParallelRunStep's log folder in v1's layout, its resource samples, and the progress snapshot that
the faces read: written by JobLogs, read back through a real run's file API (embedded and over a real
server on 127.0.0.1)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

from runyard import Experiment, Workspace
from runyard.parallel.joblogs import CSV_COLUMNS, JobLogs, MiniBatchRecord, agent_name
from runyard.parallel.perf import NODE_COLUMNS, PROCESS_COLUMNS, PerfSampler
from runyard.parallel.progress import (
    MAX_FAILURES,
    PROGRESS_FILE,
    Failure,
    ItemCounts,
    MiniBatchCounts,
    ProgressSnapshot,
    describe,
    read_progress,
)
from runyard.store.rest_artifacts import RestArtifactStore
from runyard.store.rest_http import HttpClient
from runyard.store.rest_store import RestStore


def snapshot(state: str = "running", **changes: object) -> ProgressSnapshot:
    snap = ProgressSnapshot(
        state=state,  # type: ignore[arg-type]
        step="score-digits",
        started=1_700_000_000.0,
        updated=1_700_000_042.0,
        mini_batches=MiniBatchCounts(total=200, scheduled=130, completed=117, failed=3, resumed=10),
        items=ItemCounts(total=2000, succeeded=1170, failed=31),
        items_per_second=1234.4,
        eta_seconds=42.0,
        workers=2,
    )
    return snap.model_copy(update=changes)


def record(mb: int, agent: str, status: str = "RUN_DONE", failed: int = 0) -> MiniBatchRecord:
    return MiniBatchRecord(
        id=mb,
        input="images",
        items=10,
        succeeded=10 - failed,
        failed=failed,
        tries=1 if status == "RUN_DONE" else 3,
        agent=agent,
        status=status,
        started=1_700_000_001.5,
        seconds=0.25,
        run_seconds=0.2,
    )


def test_v1_layout_and_the_processed_mini_batches_report(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with JobLogs(logs, node="0", level="INFO") as job:
        job.master("Partitioned 'images': 200 mini-batches\nsecond line")
        job.master("hidden detail", level="DEBUG")  # below the job's logging_level
        paths = job.agent_paths(agent_name(2))
        job.mini_batch(record(0, "process001"))
        job.mini_batch(record(1, "process002", "RUN_FAILED", failed=10))
        job.user_error(
            "process002",
            1,
            "ValueError: bad pixel\nmore",
            "Traceback (most recent call last):\n  ...\nValueError: bad pixel",
        )
        job.user_error("process001", None, "init() raised KeyError: 'model'", "")
        job.progress(snapshot())
        job.result(snapshot("failed"), "Failed", "1 mini-batch failed. See logs/user/error.txt.")
    with JobLogs(logs, node="0") as again:  # a resumed driver appends to the same report
        again.mini_batch(record(2, "process003"))

    assert paths.stdout == logs / "user/stdout/0/process002.stdout.txt" and paths.stdout.parent.is_dir()
    assert paths.stderr == logs / "user/stderr/0/process002.stderr.txt"
    assert paths.entry_log == logs / "user/entry_script_log/0/process002.log.txt"
    assert paths.sys_log == logs / "sys/node/0/process002.txt"
    assert paths.error == logs / "user/error/0/process002.txt"

    master = (logs / "sys/master_role.txt").read_text().splitlines()
    assert [line.split(" ", 3)[3] for line in master] == [
        "Partitioned 'images': 200 mini-batches",
        "second line",
    ]
    assert all(line.split(" ")[2] == "INFO" for line in master)

    with open(logs / "sys/job_report/processed_mini-batches.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == list(CSV_COLUMNS)
    assert rows[1:] == [
        ["0", "RUN_DONE", "images", "10", "10", "0", "1", "process001", "0.250"],
        ["1", "RUN_FAILED", "images", "10", "0", "10", "3", "process002", "0.250"],
        ["2", "RUN_DONE", "images", "10", "10", "0", "1", "process003", "0.250"],
    ]
    agent_log = (logs / "sys/node/0/process002.txt").read_text()
    assert "mini-batch 1 RUN_FAILED" in agent_log and "items=10" in agent_log and "run=0.200s" in agent_log

    errors = (logs / "user/error.txt").read_text().splitlines()
    assert errors[0].endswith("process002 mini-batch 1: ValueError: bad pixel")
    assert errors[1].endswith("process001 no mini-batch: init() raised KeyError: 'model'")
    assert "Traceback (most recent call last)" in (logs / "user/error/0/process002.txt").read_text()
    assert "KeyError: 'model'" in (logs / "user/error/0/process001.txt").read_text()

    result = (logs / "job_result.txt").read_text()
    assert result.startswith("Failed\n1 mini-batch failed. See logs/user/error.txt.\n")
    overview = list(logs.glob("job_progress_overview.*.txt"))
    assert [p.name for p in overview] == [
        time.strftime("job_progress_overview.%Y%m%d%H.txt", time.gmtime(1_700_000_042))
    ]
    assert "completed 117, failed 3" in overview[0].read_text()
    final = ProgressSnapshot.parse((logs / "sys/progress.json").read_bytes())
    assert final is not None and final.state == "failed"
    assert not [p for p in (logs / "sys").iterdir() if p.name.endswith(".tmp")]


def test_progress_round_trip_version_check_and_description() -> None:
    snap = snapshot()
    for i in range(MAX_FAILURES + 5):
        snap.add_failure(
            Failure(mini_batch=i, input="images", message="boom", log="logs/user/error/0/process001.txt")
        )
    data = json.loads(snap.model_dump_json())
    assert set(data) == {
        "v", "state", "step", "updated", "started", "mini_batches", "items",
        "items_per_second", "eta_seconds", "workers", "failures",
    }  # fmt: skip
    assert data["v"] == 1 and data["mini_batches"]["resumed"] == 10 and len(data["failures"]) == MAX_FAILURES
    assert ProgressSnapshot.parse(snap.model_dump_json()) == snap

    assert ProgressSnapshot.parse(json.dumps(data | {"v": 2})) is None  # another format version
    assert ProgressSnapshot.parse(snap.model_dump_json()[:40]) is None  # cut short
    assert (
        describe(snap)
        == "120/200 mini-batches, 3 failed, 31 items failed, 10 resumed, 1,234 items/s, ETA 0:00:42"
    )
    done = snapshot("completed", eta_seconds=None)
    assert describe(done).endswith("completed in 0:00:42")


def served_client(served: Workspace, tmp_path: Path) -> Workspace:
    """A client workspace whose store and artifacts talk HTTP to `served`'s real server app, in-process
    (starlette's TestClient is an httpx.Client: the requests, routes and file API are the server's own)."""
    from runyard.server.app import create_app

    with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    http = TestClient(create_app(served))
    http.__enter__()  # one event loop for every request, as `with TestClient(...)` does
    url = f"http://testserver-{uuid.uuid4().hex[:8]}"
    client = Workspace.get("http://127.0.0.1:9")  # a server workspace; its parts are pointed at `served`
    client._store = RestStore(url, client=http)
    artifacts = RestArtifactStore(url, None, tmp_path / "mirror")
    artifacts.http = HttpClient(url, None, client=http)
    client._artifacts = artifacts
    return client


def test_read_progress_through_the_run_file_api(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    run = Experiment(sqlite_workspace, "parallel").start_logging(snapshot_directory=None)
    assert read_progress(run) is None  # the driver has not written one yet
    logs = tmp_path / "logs"
    JobLogs(logs, node="0").progress(snapshot())
    run.upload_file(PROGRESS_FILE, str(logs / "sys/progress.json"))
    got = read_progress(run)
    assert got is not None and got.mini_batches.completed == 117 and got.step == "score-digits"

    remote = served_client(sqlite_workspace, tmp_path)
    assert read_progress(remote.get_run(run.id)) == got
    run.upload_file(PROGRESS_FILE, io.BytesIO(b'{"v": 9, "state": "paused"}'))  # a newer driver's file
    assert read_progress(remote.get_run(run.id)) is None
    assert read_progress(run) is None
    run.complete()


def test_perf_sampler_writes_node_and_process_rows(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler = PerfSampler(
            tmp_path / "perf" / "0", lambda: [child.pid, os.getpid(), 999_999_999], interval=0.05
        )
        sampler.start()
        time.sleep(0.3)
        sampler.stop()
    finally:
        child.kill()
        child.wait()
    with open(tmp_path / "perf/0/node_resource_usage.csv", newline="") as handle:
        node = list(csv.reader(handle))
    with open(tmp_path / "perf/0/processes_resource_usage.csv", newline="") as handle:
        procs = list(csv.reader(handle))
    assert node[0] == list(NODE_COLUMNS) and len(node) >= 3
    assert float(node[-1][3]) > 0 and float(node[-1][2]) > 0
    assert procs[0] == list(PROCESS_COLUMNS)
    assert {int(row[1]) for row in procs[1:]} == {child.pid, os.getpid()}  # a gone pid is left out
    assert all(float(row[3]) > 0 for row in procs[1:])


def test_a_new_overview_file_when_the_hour_changes(tmp_path: Path) -> None:
    job = JobLogs(tmp_path / "logs", node="0")
    job.progress(snapshot(updated=1_700_000_000.0, workers=1))
    job.progress(snapshot(updated=1_700_000_060.0, workers=2))  # the same hour: rewritten in place
    job.progress(snapshot(updated=1_700_003_600.0, workers=3))
    job.close()
    files = sorted((tmp_path / "logs").glob("job_progress_overview.*.txt"))
    assert [f.read_text().count("Workers: ") for f in files] == [1, 1]
    assert ["Workers: 2" in files[0].read_text(), "Workers: 3" in files[1].read_text()] == [True, True]
