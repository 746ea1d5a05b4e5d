"""ParallelRunStep's runtime: the driver as a real subprocess on a job file, real worker processes, real
entry scripts. Each driver start costs ~1.5 s (it imports runyard), so checks share runs where they can.
The entry scripts (ECHO, FAILURES, TIMEOUT, SLOW) are in parallel_helpers.py.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

import parallel_helpers as helpers
from parallel_helpers import ECHO, FAILURES, SLOW, TIMEOUT, driver_settings
from runyard.engine.graph_parallel import ParallelSettings
from runyard.errors import InvalidInputError
from runyard.parallel.accounting import Accounting
from runyard.parallel.checkpoint import Checkpoint, DoneRecord
from runyard.parallel.driver import Driver
from runyard.parallel.job import ENV_JOB, ParallelJob
from runyard.parallel.partition import Plan
from runyard.parallel.worker import format_rows

PYTHON = sys.executable


def settings(**changes: Any) -> dict[str, Any]:
    return {**driver_settings().to_json(), **changes}


def make_job(root: Path, script: str, files: list[str] | None = None, **changes: Any) -> Path:
    """A job folder: data/ (one small text file per name), the entry script, job.json."""
    names = files or [f"f{i:02d}" for i in range(8)]
    arguments = ["--model_name", "digits"]
    return helpers.make_job(root, script, names, settings(**changes), arguments, changes.get("kind", "file"))


def start(job: Path) -> subprocess.Popen[str]:
    env = {**os.environ, ENV_JOB: str(job)}
    return subprocess.Popen(
        [PYTHON, "-m", "runyard.parallel.driver"],
        cwd=job.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_driver(job: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = start(job)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def run_in_process(job: Path) -> subprocess.CompletedProcess[str]:
    """The driver in this process (its workers are still real processes): the error-matrix tests save
    the ~1.5 s a driver process spends importing runyard. The subprocess tests cover `-m ...driver`."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = Driver(ParallelJob.load(job), job.parent).run()
    return subprocess.CompletedProcess([], code, out.getvalue(), err.getvalue())


def report(root: Path) -> list[dict[str, str]]:
    with open(root / "logs/sys/job_report/processed_mini-batches.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def progress(root: Path) -> dict[str, Any]:
    return json.loads((root / "logs/sys/progress.json").read_text())


def output_lines(root: Path) -> list[str]:
    return (root / "out/parallel_run_step.txt").read_text().splitlines()


def worker_pids(root: Path) -> list[int]:
    return [
        int(p) for p in re.findall(r"started \(pid (\d+)\)", (root / "logs/sys/master_role.txt").read_text())
    ]


def gone(pids: list[int], timeout: float = 10) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = [
            p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        if not alive:
            return True
        time.sleep(0.05)
    return False


def test_success_writes_each_input_once_and_v1_logs(tmp_path: Path) -> None:
    names = [f"img{i:02d}" for i in range(11)]
    job = make_job(tmp_path, ECHO, names, mini_batch_size=3, process_count_per_node=1)  # azureml costs 1.5 s
    done = run_driver(job)
    assert done.returncode == 0, done.stderr
    assert "ParallelRunStep completed: 4 of 4 mini-batches" in done.stdout.strip().splitlines()[-1]
    lines = output_lines(tmp_path)
    assert sorted(lines) == [f"{n}.txt|content of {n}|digits" for n in names]
    assert [r["Status"] for r in report(tmp_path)] == ["RUN_DONE"] * 4
    snap = progress(tmp_path)
    assert snap["state"] == "completed"
    assert snap["items"] == {"total": 11, "succeeded": 11, "failed": 0}
    assert (tmp_path / "logs/job_result.txt").read_text().startswith("Completed")
    entry_log = (tmp_path / "logs/user/entry_script_log/0/process001.log.txt").read_text()
    assert "init in process001 model=digits out=" + str(tmp_path / "out") in entry_log
    assert "init process001 True True" in (tmp_path / "logs/user/stdout/0/process001.stdout.txt").read_text()
    assert (tmp_path / "logs/perf/0/node_resource_usage.csv").is_file()


def test_tabular_rows_each_once(tmp_path: Path) -> None:
    script = """
    def init():
        pass

    def run(df):
        return df
    """
    job = make_job(tmp_path, script, [], kind="tabular", mini_batch_size=120, process_count_per_node=1)
    rows = [f"{i},name{i}" for i in range(40)]
    (tmp_path / "data/table.csv").write_text("id,name\n" + "\n".join(rows) + "\n")
    done = run_driver(job)
    assert done.returncode == 0, done.stderr
    assert sorted(output_lines(tmp_path), key=lambda x: int(x.split()[0])) == [
        r.replace(",", " ") for r in rows
    ]
    assert len(report(tmp_path)) > 1  # the file was split into several mini-batches


def test_retries_failures_and_fewer_results_are_counted(tmp_path: Path) -> None:
    names = ["bad1", "flaky1", "ok1", "ok2", "ok3", "short1", "short2"]
    job = make_job(tmp_path, FAILURES, names, mini_batch_size=2, run_max_try=2)
    done = run_driver(job)
    assert done.returncode == 0, done.stderr  # error_threshold=-1 ignores every failure
    rows = {r["Mini-batch Id"]: r for r in report(tmp_path)}
    # sorted files: bad1 flaky1 | ok1 ok2 | ok3 short1 | short2
    assert (rows["0"]["Status"], rows["0"]["Tries"], rows["0"]["Failed"]) == ("RUN_FAILED", "2", "2")
    assert (rows["2"]["Status"], rows["2"]["Failed"]) == ("RUN_DONE", "1")  # returned 1 of 2
    assert (rows["3"]["Status"], rows["3"]["Succeeded"], rows["3"]["Failed"]) == ("RUN_DONE", "0", "1")
    snap = progress(tmp_path)
    assert snap["items"] == {"total": 7, "succeeded": 3, "failed": 4}
    assert snap["mini_batches"]["failed"] == 1 and snap["failures"][0]["mini_batch"] == 0
    errors = (tmp_path / "logs/user/error.txt").read_text()
    assert errors.count("ValueError: cannot score bad1") == 2  # both tries, each once
    assert sorted(output_lines(tmp_path)) == sorted(
        str(tmp_path / f"data/{n}.txt") for n in ("ok1", "ok2", "ok3")
    )


def test_failed_try_and_dead_worker_are_retried(tmp_path: Path) -> None:
    job = make_job(tmp_path, FAILURES, ["crash1", "flaky1", "ok1"], error_threshold=0, run_max_try=2)
    done = run_driver(job)
    assert done.returncode == 0, done.stderr
    rows = {r["Mini-batch Id"]: r for r in report(tmp_path)}
    assert (rows["0"]["Status"], rows["0"]["Tries"]) == ("RUN_DONE", "2")
    assert (rows["1"]["Status"], rows["1"]["Tries"]) == ("RUN_DONE", "2")
    errors = (tmp_path / "logs/user/error.txt").read_text()
    assert "try 1 of 2: RuntimeError: first try fails" in errors
    assert re.search(r"mini-batch 0: try 1 of 2: process00\d exited \(code 7\)", errors), errors
    assert len(worker_pids(tmp_path)) == 3  # the dead worker was replaced
    assert len(output_lines(tmp_path)) == 3


@pytest.mark.parametrize(
    ("threshold", "allowed_count", "ok"),
    [(2, 2, True), (1, None, False), (-1, 1, False)],
    ids=["both-at-limit", "threshold-one-past", "count-one-past"],
)
def test_error_budget(tmp_path: Path, threshold: int, allowed_count: int | None, ok: bool) -> None:
    names = ["bad1", "bad2", "ok1", "ok2", "ok3"]
    job = make_job(
        tmp_path,
        FAILURES,
        names,
        error_threshold=threshold,
        allowed_failed_count=allowed_count,
        run_max_try=1,
    )
    done = run_in_process(job)
    if ok:
        assert done.returncode == 0, done.stderr
        assert progress(tmp_path)["items"]["failed"] == 2
        assert len(output_lines(tmp_path)) == 3
    else:
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        limit = (
            f"error_threshold {threshold}"
            if allowed_count is None
            else f"allowed_failed_count {allowed_count}"
        )
        assert last.startswith("ParallelRunStep failed: 2 of 5") and limit in last, last
        assert "See logs/user/error.txt" in last
        assert (tmp_path / "logs/job_result.txt").read_text().startswith("Failed")
        assert not (tmp_path / "out/parallel_run_step.txt").exists()


def test_timeout_replaces_the_worker_and_retries(tmp_path: Path) -> None:
    job = make_job(tmp_path, TIMEOUT, ["a", "b", "slow"], run_invocation_timeout=1, process_count_per_node=1)
    done = run_driver(job)
    assert done.returncode == 0, done.stderr
    child = int((tmp_path / "data/slow.txt.child").read_text())
    assert gone([child], timeout=2)  # the worker's children are killed with it
    rows = {r["Mini-batch Id"]: r for r in report(tmp_path)}
    assert (rows["2"]["Status"], rows["2"]["Tries"], rows["2"]["Agent"]) == ("RUN_DONE", "2", "process002")
    assert "init process002" in (tmp_path / "logs/user/stdout/0/process002.stdout.txt").read_text()
    assert "run_invocation_timeout (1 s)" in (tmp_path / "logs/user/error.txt").read_text()
    assert len(output_lines(tmp_path)) == 3


@pytest.mark.parametrize(
    ("script", "cause"),
    [
        (
            "def init():\n    raise ValueError('no model here')\n\ndef run(mb):\n    return mb\n",
            "init() raised ValueError: no model here",
        ),
        ("import not_a_module_anywhere\n", "failed to import: ModuleNotFoundError"),
        ("def init():\n    pass\n", "has no run() function"),
    ],
    ids=["init-raises", "import-error", "missing-run"],
)
def test_entry_script_problems_fail_fast_once(tmp_path: Path, script: str, cause: str) -> None:
    job = make_job(tmp_path, script)
    done = run_in_process(job)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ParallelRunStep failed:") and cause in last, last
    assert cause in (tmp_path / "logs/job_result.txt").read_text()
    errors = (tmp_path / "logs/user/error.txt").read_text().splitlines()
    assert len(errors) == 1, errors  # once, not once per worker or per retry
    error_files = list((tmp_path / "logs/user/error/0").iterdir())
    assert len(error_files) == 1
    if "init" in cause or "import" in cause:
        assert "Traceback" in error_files[0].read_text()
    assert len(worker_pids(tmp_path)) == 2  # no replacement storm
    assert not (tmp_path / "logs/sys/job_report/processed_mini-batches.csv").exists()


def wait_done(root: Path, count: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    done = root / "ckpt/done.jsonl"
    while time.monotonic() < end:
        if done.exists() and len(done.read_text().splitlines()) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"{count} mini-batches did not complete in {timeout} s")


def test_cancel_then_sigkill_then_resume_each_row_once(tmp_path: Path) -> None:
    names = [f"f{i:02d}" for i in range(24)]
    job = make_job(tmp_path, SLOW, names)

    proc = start(job)
    wait_done(tmp_path, 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and "canceled" in err.strip().splitlines()[-1]
    assert gone(worker_pids(tmp_path))
    kept = len((tmp_path / "ckpt/done.jsonl").read_text().splitlines())
    assert kept >= 3

    proc = start(job)
    wait_done(tmp_path, kept + 3)
    pids = worker_pids(tmp_path)[2:]
    proc.kill()
    proc.wait()
    assert gone(pids), "workers outlived their SIGKILLed driver"
    assert "already completed (resumed)" in (tmp_path / "logs/sys/master_role.txt").read_text()

    done = run_driver(job)
    assert done.returncode == 0, done.stderr
    assert sorted(output_lines(tmp_path)) == [f"{n}.txt" for n in names]
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) <= len(names) + 8  # only tries in flight at the two stops ran twice
    snap = progress(tmp_path)
    assert snap["mini_batches"]["resumed"] > 0 and snap["items"]["succeeded"] == len(names)


def test_node_count_above_one_runs_one_node_here(tmp_path: Path) -> None:
    """The scheduler starts a driver with node_count > 1 only on a named compute target: it runs one node
    (process_count_per_node workers) and says so in master_role.txt."""
    done = run_in_process(make_job(tmp_path, ECHO, node_count=3, process_count_per_node=2))
    assert done.returncode == 0, done.stderr
    assert sorted(line.split("|")[0] for line in output_lines(tmp_path)) == [
        f"f{i:02d}.txt" for i in range(8)
    ]
    master = (tmp_path / "logs/sys/master_role.txt").read_text()
    assert (
        "node_count=3: runyard runs one node on this machine (process_count_per_node=2 workers); "
        "several nodes need the Ray compute target." in master
    )
    assert len(worker_pids(tmp_path)) == 2


# -- the parts, in process -------------------------------------------------------------------------
def test_job_file_version_is_checked(tmp_path: Path) -> None:
    job = make_job(tmp_path, ECHO)
    data = json.loads(job.read_text())
    data["v"] = 2
    job.write_text(json.dumps(data))
    with pytest.raises(InvalidInputError, match="version 2, but this runyard's driver reads version 1"):
        ParallelJob.load(job)


def test_checkpoint_resumes_only_the_same_plan(tmp_path: Path) -> None:
    plan_a, plan_b = Plan(), Plan()
    for i in range(3):
        plan_a.add("data", "file", (f"/x/{i}",), None, 1)
        plan_b.add("data", "file", (f"/y/{i}",), None, 1)
    ck = Checkpoint(tmp_path / "ck")
    assert "new" in ck.open(plan_a.key())
    (ck.results / ck.result_name(0, 1)).write_text("a\n")
    (ck.results / ck.result_name(1, 2)).write_text("b\n")
    (ck.results / ck.result_name(2, 1)).write_text("unrecorded\n")
    ck.record_done(DoneRecord(1, 1, 1, ck.result_name(1, 2)))
    ck.record_done(DoneRecord(0, 1, 1, ck.result_name(0, 1)))
    with pytest.raises(InvalidInputError, match="Another ParallelRunStep driver"):
        Checkpoint(tmp_path / "ck").open(plan_a.key())
    ck.close()

    ck = Checkpoint(tmp_path / "ck")
    assert "resuming" in ck.open(plan_a.key())
    records = ck.completed()
    assert sorted(records) == [0, 1]
    assert not (ck.results / ck.result_name(2, 1)).exists()  # a try without a record is dropped
    ck.assemble(records.values(), tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text() == "a\nb\n"
    ck.close()

    ck = Checkpoint(tmp_path / "ck")
    assert "held another plan" in ck.open(plan_b.key())
    assert ck.completed() == {}
    ck.close()


def test_accounting_rules() -> None:
    acc = Accounting(
        ParallelSettings.from_json(settings(error_threshold=3, allowed_failed_percent=40)), 5, 10
    )
    assert acc.complete(items=2, returned=5) == 0  # more results than inputs: none failed
    assert acc.complete(items=2, returned=1) == 1
    acc.fail(items=2)
    assert acc.items_failed == 3 and acc.exceeded(all_scheduled=False) is None
    acc.fail(items=2)
    assert "5 of 10 files failed, more than error_threshold 3" in (acc.exceeded(False) or "")
    pct = Accounting(ParallelSettings.from_json(settings(allowed_failed_percent=40)), 5, 10)
    pct.fail(2)
    pct.fail(2)
    pct.fail(2)
    assert pct.exceeded(all_scheduled=False) is None  # v1: checked once everything was scheduled
    assert "allowed_failed_percent 40" in (pct.exceeded(all_scheduled=True) or "")


def test_returned_values_become_lines() -> None:
    import pandas as pd

    assert format_rows([1, "a b", [2, 3]]) == (3, "1\na b\n[2, 3]\n")
    assert format_rows(pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})) == (2, "1 x\n2 y\n")
    with pytest.raises(TypeError, match="returned None"):
        format_rows(None)
