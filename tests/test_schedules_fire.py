"""Schedules fire (engine/schedules.py): recurrences computed by APScheduler's triggers, exactly once
through the scheduler service (on a thread as `runyard up` runs it, or the real background process killed
with SIGKILL), a missed firing once, disabled schedules never, datastore watches on a new file, and every
firing submitted as the schedule's creator (docs/schedules.md)."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, Workspace
from runyard.data.datapath import DataPath, DataPathComputeBinding
from runyard.engine.schedules import ScheduleTicker, next_fire_time, upcoming, watch_listing
from runyard.engine.service import SchedulerService, ensure_running, service_info
from runyard.pipeline import (
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
    TimeZone,
)
from runyard.server.auth import create_token
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord, ScheduleRecord
from runyard.store.records import ACTIVE, DISABLED
from s3_fixture import s3_client, s3_datastore

pytestmark = pytest.mark.usefixtures("no_stray_processes")

MARK = """
    import sys
    print("scheduled step ran with", sys.argv[1:])
"""
READ = """
    import pathlib, sys
    path = pathlib.Path(sys.argv[1])
    files = sorted(path.rglob("*")) if path.is_dir() else [path]
    for f in files:
        if f.is_file():
            print("FILE", f.name, f.read_text())
"""


@pytest.fixture
def src(tmp_path: Path) -> SourceDir:
    return SourceDir(tmp_path / "src").gen({"mark.py": MARK, "read.py": READ})


def publish(ws: Workspace, src: SourceDir, name: str = "nightly") -> str:
    step = PythonScriptStep(
        "mark.py", name="mark", arguments=["hello"], source_directory=src, allow_reuse=False
    )
    return published_id(Pipeline(ws, [step]), name)


def published_id(pipeline: Pipeline, name: str) -> str:
    return str(pipeline.publish(name=name).id)


def schedule(ws: Workspace, pipeline_id: str | None, **fields: Any) -> ScheduleRecord:
    """A schedule written straight into the store (as Schedule.create does, with full control of its fields)."""
    record = ScheduleRecord(
        id=str(uuid.uuid4()),
        name=fields.pop("name", "every-minute"),
        status=fields.pop("status", ACTIVE),
        experiment_name=fields.pop("experiment_name", f"sched-{uuid.uuid4().hex[:8]}"),
        created_time=fields.pop("created_time", time.time()),
        pipeline_id=pipeline_id,
        **fields,
    )
    return ws.store.create_schedule(record)  # type: ignore[attr-defined,no-any-return]


def minutely(start: float | None) -> dict[str, Any]:
    """Every minute from `start` (epoch seconds, whole: v1 keeps start_time to the second), in UTC."""
    iso = None if start is None else datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return {"frequency": "Minute", "interval": 1, "start_time": iso, "time_zone": "UTC"}


def fired_runs(ws: Workspace, record: ScheduleRecord) -> list[RunRecord]:
    return ws.store.list_runs(experiment_name=record.experiment_name, top_level_only=True)


def ended(ws: Workspace, run_id: str, timeout: float = 30) -> RunRecord:
    return wait_for(
        lambda: (r := ws.store.get_run(run_id)).status in TERMINAL_STATUSES and r, timeout=timeout
    )


def current(ws: Workspace, record: ScheduleRecord) -> ScheduleRecord:
    return ws.store.get_schedule(record.id)  # type: ignore[attr-defined,no-any-return]


@pytest.fixture
def service(sqlite_workspace: Workspace) -> Iterator[SchedulerService]:
    """The scheduler service on a thread, as `runyard up` runs it; its printed lines are kept."""
    lines: list[str] = []
    service = SchedulerService(sqlite_workspace, idle_seconds=600, echo=lines.append)
    service.lines = lines  # type: ignore[attr-defined]
    worker = threading.Thread(target=service.serve, daemon=True)
    worker.start()
    yield service
    service.stop()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert not [line for line in lines if "Traceback" in line], lines  # no fault was swallowed


# -- when a recurrence fires (pure) --------------------------------------------------------------
def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def record_with(recurrence: dict[str, Any], **fields: Any) -> ScheduleRecord:
    return ScheduleRecord(
        id="s", name="s", status=ACTIVE, experiment_name="e", created_time=at("2026-01-01T00:00:00+00:00"),
        pipeline_id="p", recurrence=recurrence, **fields,
    )  # fmt: skip


def test_next_fire_time_follows_v1_recurrences_in_their_time_zone() -> None:
    now = at("2026-03-05T12:00:30+00:00")
    assert next_fire_time(record_with({"frequency": "Hour", "interval": 1}), now) == now  # no start: at once
    every2days = {"frequency": "Day", "interval": 2, "start_time": "2026-03-01T09:00:00",
                  "time_zone": "Pacific Standard Time"}  # fmt: skip
    times, t = [], now
    for _ in range(3):
        t = next_fire_time(record_with(every2days), t)  # type: ignore[assignment]
        times.append(t)
    # 09:00 wall-clock in Los Angeles on every second day, across the DST change of March 8th
    assert times == [
        at("2026-03-05T17:00:00+00:00"),
        at("2026-03-07T17:00:00+00:00"),
        at("2026-03-09T16:00:00+00:00"),
    ]
    weekly = {"frequency": "Week", "interval": 2, "start_time": "2026-03-01T00:00:00", "time_zone": "UTC",
              "week_days": ["Monday", "Friday"], "hours": [8], "minutes": [30]}  # fmt: skip
    first = next_fire_time(record_with(weekly), now)
    assert first == at("2026-03-09T08:30:00+00:00")  # the week of March 2nd is skipped (interval 2)
    assert next_fire_time(record_with(weekly), first) == at("2026-03-13T08:30:00+00:00")  # type: ignore[arg-type]
    monthly = {"frequency": "Month", "interval": 3, "start_time": "2026-01-31T10:00:00", "time_zone": "UTC"}
    assert next_fire_time(record_with(monthly), now) == at("2026-07-31T10:00:00+00:00")  # April has no 31st
    daily = {"frequency": "Day", "interval": 1, "time_of_day": "06:15", "time_zone": "UTC"}
    fired = record_with(daily, last_fire_time=now, data={"firstFireTime": now})
    assert next_fire_time(fired, now) == at("2026-03-06T06:15:00+00:00")
    watch = dataclasses.replace(record_with(daily), recurrence=None, datastore_name="d", polling_interval=0.5)
    assert next_fire_time(watch, now) == now + 30


# -- firing through the service ------------------------------------------------------------------
def test_an_interval_recurrence_fires_within_seconds_and_again_after_its_interval(
    service: SchedulerService, src: SourceDir
) -> None:
    ws = service.ws
    start = float(int(time.time()) + 2)
    record = schedule(ws, publish(ws, src), recurrence=minutely(start), pipeline_parameters={})
    first = wait_for(lambda: fired_runs(ws, record), timeout=20)
    assert len(first) == 1 and ended(ws, first[0].run_id).status == RunStatus.COMPLETED
    assert first[0].created_time >= start - 0.01
    fired = current(ws, record)
    assert fired.last_run_id == first[0].run_id
    assert fired.next_fire_time == pytest.approx(start + 60, abs=0.01)  # the next minute from the start
    props = ws.store.get_properties(first[0].run_id)
    assert props["azureml.scheduleId"] == record.id and props["azureml.pipelineid"] == record.pipeline_id
    # The next interval, on the ticker's clock (the service's own ticker sees the same record).
    ScheduleTicker(ws, service.echo).tick(start + 60.5)
    runs = fired_runs(ws, record)
    assert len(runs) == 2 and ended(ws, runs[0].run_id).status == RunStatus.COMPLETED
    assert current(ws, record).next_fire_time == pytest.approx(start + 120, abs=0.01)
    assert [r for r, _ in upcoming(ws)] == [current(ws, record)]
    assert any("fired pipeline run" in line for line in service.lines), service.lines  # type: ignore[attr-defined]


def test_a_firing_missed_while_the_scheduler_was_killed_fires_once_after_the_restart(
    sqlite_workspace: Workspace, src: SourceDir
) -> None:
    """v1's Schedule.create starts the real background scheduler (`python -m runyard.engine WS`); it is
    SIGKILLed while a firing is pending and started again after that time: one run. The first firing is
    far off, so no loaded machine fires it before the kill; once the scheduler is dead its pending firing
    is moved into the past (the compare-and-set the scheduler itself uses), as if its time had passed."""
    ws = sqlite_workspace
    start = float(int(time.time()) + 600)
    recurrence = ScheduleRecurrence(
        frequency="Minute", interval=1, start_time=datetime.fromtimestamp(start, UTC).replace(tzinfo=None),
        time_zone=TimeZone.UTC,
    )  # fmt: skip
    created = Schedule.create(
        ws,
        name="every-minute",
        pipeline_id=publish(ws, src),
        experiment_name="minutely",
        recurrence=recurrence,
    )
    record = ws.store.get_schedule(created.id)  # type: ignore[attr-defined]
    pid = wait_for(lambda: (service_info(ws) or {}).get("pid"), timeout=20)  # started by Schedule.create
    wait_for(lambda: current(ws, record).next_fire_time is not None, timeout=20)  # seen, not fired yet
    assert current(ws, record).next_fire_time == start
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: service_info(ws) is None, timeout=10)  # the kernel dropped its lock
    missed = time.time() - 1
    assert ws.store.claim_schedule_firing(record.id, start, missed)  # type: ignore[attr-defined]
    assert fired_runs(ws, record) == []  # nobody ran at the firing time
    assert ensure_running(ws)  # as the next submit or Schedule.create does
    runs = wait_for(lambda: fired_runs(ws, record), timeout=20)
    log = (ws.path / "scheduler.log").read_text
    assert ended(ws, runs[0].run_id).status == RunStatus.COMPLETED, log()
    assert len(fired_runs(ws, record)) == 1, log()
    fired = current(ws, record)
    assert fired.next_fire_time == start and fired.last_run_id == runs[0].run_id  # back on its own grid
    assert [r.id for r in created.get_pipeline_runs()] == [runs[0].run_id]  # type: ignore[attr-defined]


def test_missed_intervals_fire_once_and_a_claimed_firing_without_its_run_gets_it_once(
    workspace: Workspace, src: SourceDir
) -> None:
    ws = workspace  # SQLite and PostgreSQL: the claim is one compare-and-set on each
    pipeline_id = publish(ws, src)
    now = float(int(time.time()))
    # A scheduler saw this one ten minutes ago, then nothing ran: ten missed minutes.
    missed = schedule(ws, pipeline_id, recurrence=minutely(now - 600), next_fire_time=now - 600)
    # A scheduler claimed this firing under a run id and was killed before creating the run.
    claimed = schedule(ws, pipeline_id, recurrence=minutely(now + 3000), next_fire_time=now + 3000)
    # Created for a start 5 s ago, but no scheduler looked until now: that first firing is owed (once).
    late = schedule(ws, pipeline_id, recurrence=minutely(now - 5), created_time=now - 10)
    orphan = str(uuid.uuid4())
    assert ws.store.claim_schedule_firing(claimed.id, now + 3000, now + 3060, fired_time=now, run_id=orphan)  # type: ignore[attr-defined]
    lines: list[str] = []
    for _ in range(2):  # two scheduler lives: the second owes nothing
        ticker = ScheduleTicker(ws, lines.append)
        ticker.tick(time.time())
        ticker.tick(time.time() + 1)
    assert [r.run_id for r in fired_runs(ws, claimed)] == [orphan]
    assert len(fired_runs(ws, missed)) == len(fired_runs(ws, late)) == 1, lines
    assert current(ws, late).next_fire_time == now + 55
    after = current(ws, missed).next_fire_time
    assert after is not None and 0 < after - time.time() <= 61  # computed from now, on the minute grid
    assert round(after - (now - 600)) % 60 == 0


def test_a_disabled_schedule_never_fires_and_a_failed_firing_is_recorded(
    sqlite_workspace: Workspace, src: SourceDir
) -> None:
    ws = sqlite_workspace
    pipeline_id = publish(ws, src)
    off = schedule(ws, pipeline_id, recurrence=minutely(None), status=DISABLED)
    on = schedule(ws, pipeline_id, recurrence=minutely(None), name="on")
    ws.store.set_schedule_status(on.id, DISABLED)  # type: ignore[attr-defined]
    lines: list[str] = []
    ticker = ScheduleTicker(ws, lines.append)
    for later in (0, 60, 3600):
        ticker.tick(time.time() + later)
    assert fired_runs(ws, off) == fired_runs(ws, on) == [] and not ticker.active()
    assert current(ws, off).last_run_id is None and current(ws, off).next_fire_time is None
    # Enabled, with its published pipeline disabled: the firing fails, is kept, and the ticker goes on.
    ws.store.set_published_pipeline_status(pipeline_id, DISABLED)  # type: ignore[attr-defined]
    ws.store.set_schedule_status(on.id, ACTIVE)  # type: ignore[attr-defined]
    ticker.tick(time.time())
    failed = current(ws, on)
    assert fired_runs(ws, on) == [] and ticker.active()
    assert failed.data["lastError"]["runId"] == failed.last_run_id
    assert "enable it first" in failed.data["lastError"]["message"], failed.data
    assert any("failed" in line for line in lines), lines
    ScheduleTicker(ws, lines.append).tick(time.time())  # a restart does not retry a failed firing
    assert fired_runs(ws, on) == []


# -- datastore watch ------------------------------------------------------------------------------
def test_a_datastore_watch_fires_on_a_new_file_with_its_path(
    service: SchedulerService, src: SourceDir, tmp_path: Path
) -> None:
    ws = service.ws
    store = ws.get_default_datastore()
    incoming = tmp_path / "incoming"
    (incoming / "old").mkdir(parents=True)
    (incoming / "old" / "seen.csv").write_text("old")
    store.upload(str(incoming), target_path="incoming", show_progress=False)
    param = PipelineParameter("input_data", default_value=DataPath(store, "incoming"))
    bound = (param, DataPathComputeBinding(mode="download"))
    step = PythonScriptStep("read.py", name="read", arguments=[bound], inputs=[bound], source_directory=src)
    pipeline_id = published_id(Pipeline(ws, [step]), "on-new-data")
    draft = ScheduleRecord(
        id=str(uuid.uuid4()), name="watch", status=ACTIVE, experiment_name="watched", created_time=time.time(),
        pipeline_id=pipeline_id, datastore_name=store.name, path_on_datastore="incoming",
        polling_interval=0.01, data_path_parameter_name="input_data",
    )  # fmt: skip
    record = schedule(ws, pipeline_id, **{
        f.name: getattr(draft, f.name) for f in dataclasses.fields(draft)
        if f.name not in ("id", "status", "created_time", "pipeline_id")
    } | {"data": {"watch": watch_listing(ws, draft)}})  # fmt: skip
    wait_for(lambda: (current(ws, record).next_fire_time or 0) > record.created_time + 0.6, timeout=20)
    assert fired_runs(ws, record) == []  # polled: nothing new, nothing fired
    new = tmp_path / "new"
    new.mkdir()
    (new / "fresh.csv").write_text("1,2,3")
    store.upload(str(new), target_path="incoming/today", show_progress=False)
    runs = wait_for(lambda: fired_runs(ws, record), timeout=20)
    done = ended(ws, runs[0].run_id)
    assert done.status == RunStatus.COMPLETED
    assert done.data["parameters"]["input_data"] == {
        "datapath": {"datastore": store.name, "path": "incoming/today/fresh.csv"}
    }
    run = PipelineRun(Experiment(ws, record.experiment_name), runs[0].run_id)
    assert "FILE fresh.csv 1,2,3" in str(run.find_step_run("read")[0].get_job_log())
    assert "fresh.csv" in str(current(ws, record).data["watch"])
    time.sleep(1.5)
    assert len(fired_runs(ws, record)) == 1  # the change fired once


def test_a_file_written_right_after_a_watch_is_created_fires_once(
    service: SchedulerService, src: SourceDir, tmp_path: Path
) -> None:
    """Schedule.create takes the watch's first listing itself: a file that lands before the scheduler
    first looks is a change, not part of the baseline."""
    ws = service.ws
    store = ws.get_default_datastore()
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "seen.csv").write_text("old")
    store.upload(str(tmp_path / "old"), target_path="landing", show_progress=False)
    created = Schedule.create(
        ws, name="landing", pipeline_id=publish(ws, src), experiment_name="landing", datastore=store,
        polling_interval=0.01, path_on_datastore="landing",
    )  # fmt: skip
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "fresh.csv").write_text("1,2,3")
    store.upload(str(tmp_path / "new"), target_path="landing", show_progress=False)  # right away
    record = current(ws, ws.store.get_schedule(created.id))  # type: ignore[attr-defined]
    runs = wait_for(lambda: fired_runs(ws, record), timeout=20)
    assert ended(ws, runs[0].run_id).status == RunStatus.COMPLETED
    assert current(ws, record).data["firing"]["dataPath"] == "landing/fresh.csv"
    assert len(fired_runs(ws, record)) == 1  # polled meanwhile (every 0.6 s): nothing new, nothing more


# -- who a firing runs as -------------------------------------------------------------------------
def test_firings_run_as_the_schedule_creator_and_a_revoked_creator_is_refused(
    service: SchedulerService, src: SourceDir
) -> None:
    ws = service.ws
    pipeline_id = publish(ws, src)
    _, granted = create_token(ws.store, "write", compute=("local",))  # type: ignore[arg-type]
    _, revoked = create_token(ws.store, "write", compute=("local",))  # type: ignore[arg-type]
    ok = schedule(ws, pipeline_id, recurrence=minutely(None), data={"createdBy": {"token": granted.token_id}})
    ws.store.revoke_token(revoked.token_id)  # type: ignore[attr-defined]
    refused = schedule(
        ws, pipeline_id, recurrence=minutely(None), data={"createdBy": {"token": revoked.token_id}}
    )
    good = ended(ws, wait_for(lambda: fired_runs(ws, ok), timeout=20)[0].run_id)
    bad = ended(ws, wait_for(lambda: fired_runs(ws, refused), timeout=20)[0].run_id)
    assert good.status == RunStatus.COMPLETED and good.data["submittedBy"] == {"token": granted.token_id}
    assert bad.status == RunStatus.FAILED and bad.data["submittedBy"] == {"token": revoked.token_id}
    assert "was revoked" in bad.data["error"]["message"], bad.data["error"]


def test_a_watch_on_s3_sees_new_and_rewritten_objects_once_each(
    sqlite_workspace: Workspace, src: SourceDir, s3_bucket: tuple[str, str]
) -> None:
    """Through the fsspec backend (moto on 127.0.0.1): the ETag tells a rewritten object; on the ticker's clock."""
    ws = sqlite_workspace
    endpoint, bucket = s3_bucket
    store = s3_datastore(ws, "lake", endpoint, bucket)
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="data/in/a.csv", Body=b"1")
    draft = ScheduleRecord(
        id="draft", name="lake-watch", status=ACTIVE, experiment_name="lake", created_time=time.time(),
        pipeline_id="draft", datastore_name=store.name, path_on_datastore="in", polling_interval=1,
        data_path_parameter_name=None,
    )  # fmt: skip
    baseline = watch_listing(ws, draft)
    assert list(baseline) == ["in/a.csv"]
    record = schedule(
        ws, publish(ws, src), name="lake-watch", experiment_name="lake", datastore_name=store.name,
        path_on_datastore="in", polling_interval=1, data={"watch": baseline},
    )  # fmt: skip
    ticker, now = ScheduleTicker(ws, print), time.time()
    ticker.tick(now)
    assert fired_runs(ws, record) == [] and current(ws, record).next_fire_time == pytest.approx(now + 60)
    client.put_object(Bucket=bucket, Key="data/in/a.csv", Body=b"1,2")  # rewritten
    client.put_object(Bucket=bucket, Key="data/other.csv", Body=b"x")  # outside the watched path
    ticker.tick(now + 30)  # not yet time to poll
    assert fired_runs(ws, record) == []
    ticker.tick(now + 61)
    ticker.tick(now + 122)  # nothing changed since
    assert len(fired_runs(ws, record)) == 1
    assert current(ws, record).data["firing"]["dataPath"] == "in/a.csv"


def test_an_endpoint_schedule_runs_its_default_version_and_failures_never_stop_the_ticker(
    sqlite_workspace: Workspace, src: SourceDir
) -> None:
    ws = sqlite_workspace
    step = PythonScriptStep("mark.py", name="mark", source_directory=src)
    endpoint = PipelineEndpoint.publish(ws, "nightly-endpoint", "for schedules", Pipeline(ws, [step]))
    record = schedule(ws, None, recurrence=minutely(None), pipeline_endpoint_id=endpoint.id)
    broken = schedule(ws, None, datastore_name="nope", polling_interval=1, pipeline_endpoint_id=endpoint.id)
    lines: list[str] = []
    ticker = ScheduleTicker(ws, lines.append)
    ticker.tick(time.time())
    (run,) = fired_runs(ws, record)
    props = ws.store.get_properties(run.run_id)
    assert props["azureml.pipelineEndpointId"] == endpoint.id
    assert props["azureml.pipelineid"] == endpoint.get_pipeline().id
    watch_error = current(ws, broken).data["watchError"]["message"]
    assert "Could not list the watched path: No datastore 'nope'" in watch_error, watch_error
    endpoint.disable()
    ticker.tick(time.time() + 61)
    failed = current(ws, record)
    assert "is Disabled" in failed.data["lastError"]["message"] and len(fired_runs(ws, record)) == 1
    assert failed.next_fire_time is not None and failed.next_fire_time > time.time() + 61  # it goes on
    assert not [line for line in lines if "Traceback" in line], lines
