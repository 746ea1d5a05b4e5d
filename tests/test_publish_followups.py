"""Follow-ups to publishing and schedules (issue 15): the runs a published pipeline, an endpoint or a
schedule produced are found in one query however many runs the workspace holds, on SqlStore and over
REST; a schedule created over REST on a compute server gets the workspace's scheduler running;
Experiment.submit takes published pipelines and endpoints, and its refusal names them."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from conftest import SourceDir, kill_strays, wait_for
from runyard import Experiment, Workspace
from runyard.core.run_values import PIPELINE_RUN_TYPE
from runyard.engine.service import service_info
from runyard.errors import InvalidInputError
from runyard.pipeline import Pipeline, PipelineEndpoint, PipelineRun, PythonScriptStep
from runyard.pipeline.published import PublishedPipeline, runs_with_property
from runyard.server.app import create_app
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord, ScheduleRecord, SqlStore
from runyard.store.records import ACTIVE, DISABLED
from runyard.store.rest_store import RestStore
from runyard.studio import published_pages
from server_process import running_server

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

KEY = "azureml.pipelineid"


@contextmanager
def counted(store: SqlStore) -> Iterator[list[str]]:
    """The SQL statements sent on the store's engine while the block runs (a SQLAlchemy event hook)."""
    statements: list[str] = []

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", hook)
    try:
        yield statements
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", hook)


def add_runs(store: SqlStore, count: int, value: str, run_type: str = PIPELINE_RUN_TYPE) -> list[str]:
    """`count` runs with property KEY = value, created in one transaction, oldest first."""
    exp = store.get_or_create_experiment("published-runs")
    now = time.time()
    records = [
        RunRecord(
            run_id=f"run-{uuid.uuid4().hex[:10]}",
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Completed",
            run_type=run_type,
            created_time=now + i / 1000,
        )
        for i in range(count)
    ]
    store.create_runs(records)
    for record in records:
        store.add_properties(record.run_id, {KEY: value, "azureml.runsource": "azureml.PipelineRun"})
    return [r.run_id for r in records]


def sql_store(ws: Workspace) -> SqlStore:
    assert isinstance(ws.store, SqlStore)
    return ws.store


def test_runs_by_property_take_one_query_however_many_runs(workspace: Workspace) -> None:
    store = sql_store(workspace)
    add_runs(store, 5, "other")
    add_runs(store, 3, "p1", run_type="azureml.scriptrun")  # not pipeline runs: never listed below
    first = add_runs(store, 2, "p1")

    def queries() -> tuple[int, int, int]:
        with counted(store) as listed:
            records = store.list_runs(run_type=PIPELINE_RUN_TYPE, property_key=KEY, property_value="p1")
        with counted(store) as handles:
            runs = runs_with_property(workspace, KEY, "p1")
        with counted(store) as page:
            shown = published_pages.runs_with_property(store, KEY, "p1")
        assert [r.run_id for r in records] == [r.id for r in runs] == [r.run_id for r in shown]
        return len(listed), len(handles), len(page)

    few = queries()
    assert [r.id for r in runs_with_property(workspace, KEY, "p1")] == first[::-1]  # newest first
    later = add_runs(store, 30, "p1")
    assert queries() == few  # 2 matching runs or 32: the same statements
    assert max(few) <= 4  # a transaction start, maybe an experiment look-up, the one list query
    found = runs_with_property(workspace, KEY, "p1")
    assert [r.id for r in found] == (first + later)[::-1]
    assert found[0].get_status() == "Finished" and found[0].experiment.name == "published-runs"
    assert found[0].get_properties()[KEY] == "p1"
    shown = published_pages.runs_with_property(store, KEY, "p1")
    assert [r.run_id for r in shown] == [r.id for r in found][: published_pages.RUNS_SHOWN]
    has_key = store.list_runs(property_key=KEY)  # any value: all 40 runs, script runs included
    assert len(has_key) == 40
    with pytest.raises(InvalidInputError, match="property_key"):
        store.list_runs(property_value="p1")


def test_runs_by_property_over_rest_take_one_query(sqlite_workspace: Workspace) -> None:
    store = sql_store(sqlite_workspace)
    client = TestClient(create_app(sqlite_workspace))
    client.__enter__()  # one event loop for every request, as `with TestClient(...)` does
    try:
        rest = RestStore(f"http://testserver-{uuid.uuid4().hex[:8]}", client=client)
        first = add_runs(store, 2, "p1")
        add_runs(store, 4, "p2")

        def listed() -> tuple[list[str], int]:
            with counted(store) as statements:
                records = rest.list_runs(run_type=PIPELINE_RUN_TYPE, property_key=KEY, property_value="p1")
            return [r.run_id for r in records], len(statements)

        ids, few = listed()
        assert ids == first[::-1]
        more = add_runs(store, 25, "p1")
        ids, many = listed()
        assert ids == (first + more)[::-1]
        assert many == few  # the route's checks and one list query, whatever the number of runs
        assert len(rest.list_runs(property_key=KEY, property_value="p2", limit=3)) == 3
        with pytest.raises(InvalidInputError, match="property_key"):
            rest.list_runs(property_value="p1")
    finally:
        client.__exit__(None, None, None)


def publish_one_step(ws: Workspace, src: SourceDir, name: str) -> str:
    src.gen({"mark.py": "import sys\nprint('scheduled step ran', sys.argv[1:])\n"})
    step = PythonScriptStep("mark.py", name="mark", arguments=["hi"], source_directory=src, allow_reuse=False)
    return str(Pipeline(ws, [step]).publish(name=name).id)


def test_a_schedule_created_or_enabled_over_rest_on_a_compute_server_starts_the_scheduler(
    tmp_path: Path,
) -> None:
    """A server started as compute (`runyard up`, `runyard server --compute`) starts the scheduler
    when a schedule becomes Active through it, as it does for a pipeline submitted over REST."""
    ws = Workspace.create(tmp_path / "ws")
    pipeline_id = publish_one_step(ws, SourceDir(tmp_path / "src"), "rest-scheduled")
    env = {"RUNYARD_SERVER_COMPUTE": "1", "RUNYARD_SCHEDULER_IDLE_SECONDS": "2"}
    try:
        with running_server(ws.path, tmp_path / "server.log", env=env) as server:
            rest = RestStore(server.url)
            assert service_info(ws) is None
            draft = ScheduleRecord(
                id=str(uuid.uuid4()), name="at-once", status=ACTIVE, experiment_name="rest-sched",
                created_time=time.time(), pipeline_id=pipeline_id,
                recurrence={"frequency": "Hour", "interval": 1},  # no start time: fires at once
            )  # fmt: skip
            created = rest.create_schedule(draft)
            assert created.data["createdBy"].get("auth") == "off"  # the server's stamp of its caller
            runs = wait_for(
                lambda: ws.store.list_runs(experiment_name="rest-sched", top_level_only=True), timeout=30
            )
            log = (ws.path / "scheduler.log").read_text
            done = wait_for(
                lambda: (r := ws.store.get_run(runs[0].run_id)).status in TERMINAL_STATUSES and r, timeout=30
            )
            assert done.status == RunStatus.COMPLETED, log()  # run as the server's unauthenticated caller
            assert ws.store.get_properties(done.run_id)["azureml.scheduleId"] == created.id
            # Disabled, the scheduler has nothing left and exits; set Active again, it is started again.
            rest.set_schedule_status(created.id, DISABLED)
            wait_for(lambda: service_info(ws) is None, timeout=30)
            assert rest.set_schedule_status(created.id, ACTIVE).next_fire_time is None
            wait_for(lambda: service_info(ws) is not None, timeout=10)
            later = wait_for(lambda: ws.store.get_schedule(created.id).next_fire_time, timeout=30)
            assert later > time.time() + 60  # seen by the new scheduler: the next hour, not a burst
            rest.set_schedule_status(created.id, DISABLED)
    finally:
        kill_strays(tmp_path)


@pytest.mark.usefixtures("no_stray_processes")
def test_experiment_submit_takes_published_pipelines_and_endpoints_and_names_them(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    published = PublishedPipeline.get(ws, publish_one_step(ws, SourceDir(tmp_path / "src"), "via-experiment"))
    endpoint = PipelineEndpoint.publish(ws, "via-experiment", "for Experiment.submit", published)
    exp = Experiment(ws, "via-experiment")
    direct = exp.submit(published, tags={"via": "published"})
    routed = exp.submit(endpoint, tags={"via": "endpoint"})
    assert [r.id for r in PipelineRun.get_pipeline_runs(ws, published.id)] == [routed.id, direct.id]
    assert direct.get_tags()["via"] == "published" and routed.get_tags()["via"] == "endpoint"
    with pytest.raises(InvalidInputError, match="a PublishedPipeline or a PipelineEndpoint"):
        exp.submit("train.py")  # type: ignore[arg-type]
