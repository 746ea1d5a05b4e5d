"""Follow-ups to publishing and schedules (issue 15): the runs a published pipeline, an endpoint or a
schedule produced are found in one query however many runs the workspace holds, on SqlStore and over
REST; a datastore watch's first listing is taken when the schedule is created."""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from runyard import Workspace
from runyard.engine.execution import PIPELINE_RUN_TYPE
from runyard.errors import InvalidInputError
from runyard.pipeline.published import runs_with_property
from runyard.server.app import create_app
from runyard.store import RunRecord, SqlStore
from runyard.store.rest_store import RestStore
from runyard.studio import published_pages

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
