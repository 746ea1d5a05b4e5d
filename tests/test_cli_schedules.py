"""`runyard schedule list | show | disable | enable` through the real `main()` in this process
(conftest.invoke_cli), and `runyard up` as a real subprocess: it names the schedules it serves and stays
up while one is Active."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir, invoke_cli, wait_for
from runyard import Workspace
from runyard.engine.service import service_info
from runyard.pipeline import Pipeline, PythonScriptStep
from runyard.store import ScheduleRecord
from runyard.store.records import ACTIVE, DISABLED

pytestmark = pytest.mark.usefixtures("no_stray_processes")

FAR = "2099-01-01T09:00:00"  # a start no test reaches: nothing fires


@pytest.fixture(autouse=True)
def _wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide tables: no folded ids


def published(ws: Workspace, tmp_path: Path) -> str:
    src = SourceDir(tmp_path / "src").gen({"hello.py": "print('hello')\n"})
    pipeline = Pipeline(ws, [PythonScriptStep("hello.py", name="hello", source_directory=src)])
    return str(pipeline.publish(name="nightly").id)


def schedule(ws: Workspace, pipeline_id: str, name: str, **fields: Any) -> ScheduleRecord:
    record = ScheduleRecord(
        id=str(uuid.uuid4()),
        name=name,
        status=ACTIVE,
        experiment_name="nightly-runs",
        created_time=time.time(),
        pipeline_id=pipeline_id,
        **fields,
    )
    return ws.store.create_schedule(record)  # type: ignore[attr-defined,no-any-return]


def daily(ws: Workspace, pipeline_id: str) -> ScheduleRecord:
    recurrence = {"frequency": "Day", "interval": 1, "start_time": FAR, "time_zone": "UTC"}
    return schedule(ws, pipeline_id, "daily", recurrence=recurrence, description="every morning")


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke_cli("-w", str(ws.path), "schedule", *args)


def ok(ws: Workspace, *args: str) -> str:
    result = cli(ws, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_list_show_disable_enable(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    ws = sqlite_workspace
    assert "No schedules." in ok(ws, "list")
    pipeline_id = published(ws, tmp_path)
    day = daily(ws, pipeline_id)
    watch = schedule(
        ws, pipeline_id, "on-upload", datastore_name="workspaceblobstore", path_on_datastore="incoming",
        polling_interval=5, data_path_parameter_name="input_data",
    )  # fmt: skip
    text = ok(ws, "list")
    assert day.id in text and watch.id in text and pipeline_id in text
    assert "every 1 Day from 2099-01-01T09:00:00 (UTC)" in text
    assert "watch workspaceblobstore/incoming every 5 min" in text
    assert "2099-01-01 " in text  # the daily one's next firing (local time)
    rows = json.loads(ok(ws, "list", "--json"))
    assert [r["name"] for r in rows] == ["on-upload", "daily"]  # newest first
    assert rows[1]["nextFireTime"] is not None and rows[1]["recurrence"]["frequency"] == "Day"

    shown = ok(ws, "show", day.id)
    assert "daily" in shown and "every morning" in shown and "nightly-runs" in shown
    assert "Last firing: never" in shown
    assert "Changed path passed as parameter 'input_data'" in ok(ws, "show", watch.id)
    assert json.loads(ok(ws, "show", day.id, "--json"))["id"] == day.id

    assert "is disabled: it will not fire" in ok(ws, "disable", day.id)
    assert [r["name"] for r in json.loads(ok(ws, "list", "--json"))] == ["on-upload"]
    listed = json.loads(ok(ws, "list", "--all", "--json"))
    assert {r["name"]: r["status"] for r in listed} == {"on-upload": ACTIVE, "daily": DISABLED}
    assert json.loads(ok(ws, "show", day.id, "--json"))["nextFireTime"] is None
    assert "Next firing: none (disabled)" in ok(ws, "show", day.id)

    enabled = ok(ws, "enable", day.id)
    assert "is enabled; next firing 2099-01-01" in enabled
    assert "Started the workspace's scheduler." in enabled  # it fires schedules; none ran
    wait_for(lambda: service_info(ws), timeout=20)
    assert json.loads(ok(ws, "show", day.id, "--json"))["status"] == ACTIVE


def test_unknown_ids_are_clear_errors(sqlite_workspace: Workspace) -> None:
    for command in ("show", "disable", "enable"):
        result = cli(sqlite_workspace, command, "nope")
        assert result.returncode == 1, result.stdout
        assert "No schedule with id 'nope'" in result.stderr, result.stderr
        assert "runyard schedule list --all" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_up_names_the_schedules_it_serves_and_stays_up_while_one_is_active(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    record = daily(ws, published(ws, tmp_path))
    up = subprocess.Popen(
        [sys.executable, "-m", "runyard", "-w", str(ws.path), "up", "--no-studio", "--idle-seconds", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: service_info(ws), timeout=20)
        time.sleep(1.6)  # past its idle time: an Active schedule keeps it up
        assert up.poll() is None
        ws.store.set_schedule_status(record.id, DISABLED)  # type: ignore[attr-defined]
        out, _ = up.communicate(timeout=20)  # nothing Active: it goes idle and exits
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 0, out
    assert f"schedule daily ({record.id}): every 1 Day from {FAR} (UTC); next firing 2099-01-01" in out, out
    assert out.rstrip().endswith("idle; exiting"), out
