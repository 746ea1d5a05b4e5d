"""What Microsoft's v1 publishing notebooks do, against runyard: submitting a published pipeline or an
endpoint with parameter names it does not have (ignored, with a warning), a schedule without start_time
whose run exists when create returns (DP-100 lists the experiment's runs next), and the HTML the
objects show in a notebook."""

from __future__ import annotations

import json
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.compat import V1ParameterIgnored
from runyard.core.experiment import Experiment
from runyard.data.datastore import Datastore
from runyard.engine.submission import IGNORED_PARAMETERS_PROPERTY
from runyard.errors import InvalidInputError
from runyard.pipeline import (
    Pipeline,
    PipelineEndpoint,
    PublishedPipeline,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
)
from runyard.server.app import create_app
from runyard.server.auth import create_token
from runyard.store import SqlStore
from runyard.store.rest_store import RestStore

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def no_parameters(ws: Workspace, tmp_path: Path, name: str = "plain") -> PublishedPipeline:
    source = SourceDir(tmp_path / "src").gen({"step.py": "print('hi')\n"})
    step = PythonScriptStep("step.py", name="step", source_directory=str(source))
    return Pipeline(ws, [step]).publish(name=name)


def test_unknown_parameter_names_are_ignored_with_a_warning_as_v1_ignores_them(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    published = no_parameters(ws, tmp_path)
    sent = {"1": "united", "2": "city"}  # v1's versioned-endpoint notebook sends these to such a pipeline
    with pytest.warns(
        UserWarning, match=r"names '1', '2', which this pipeline does not have \(known: none\); ignored"
    ):
        run = published.submit(ws, "samples", pipeline_parameters=sent, show_output=False)
    assert json.loads(run.get_properties()[IGNORED_PARAMETERS_PROPERTY]) == ["1", "2"]
    endpoint = PipelineEndpoint.publish(ws, "NewName", "versioned", published)
    with pytest.warns(UserWarning, match=r"names '2', which"):
        by_endpoint = endpoint.submit("samples", pipeline_parameters={"2": "city"}, show_output=False)
    assert json.loads(by_endpoint.get_properties()[IGNORED_PARAMETERS_PROPERTY]) == ["2"]
    assert by_endpoint.get_properties()["azureml.pipelineEndpointId"] == endpoint.id


def test_a_schedule_without_start_time_has_fired_when_create_returns(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    published = no_parameters(ws, tmp_path)
    schedule = Schedule.create(
        ws,
        name="hourly",
        pipeline_id=published.id,
        experiment_name="dp100-schedule",
        recurrence=ScheduleRecurrence(frequency="Hour", interval=1),
    )
    runs = list(Experiment(ws, "dp100-schedule").get_runs())  # DP-100's next cell
    assert len(runs) == 1
    record = ws.store.get_schedule(schedule.id)
    assert record.last_run_id == runs[0].id
    assert record.next_fire_time is not None and record.last_fire_time is not None
    assert record.next_fire_time > record.last_fire_time + 3500
    assert runs[0].get_properties()["azureml.scheduleId"] == schedule.id
    schedule.disable()


def test_schedule_update_as_the_sample_calls_it(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    published = no_parameters(ws, tmp_path)
    later = ScheduleRecurrence(frequency="Day", interval=1, start_time="2099-01-05T09:00:00")
    schedule = Schedule.create(ws, "My_Schedule", published.id, "upd", recurrence=later)
    fetched_schedule = Schedule.get(ws, schedule.id)
    fetched_schedule.disable()
    with warnings.catch_warnings():  # v1's wait_for_provisioning: runyard says once that it ignores it
        warnings.simplefilter("ignore", V1ParameterIgnored)
        fetched_schedule.update(
            name="My_Updated_Schedule",
            description="Updated_Schedule_Run",
            status="Active",
            wait_for_provisioning=True,
            recurrence=ScheduleRecurrence(frequency="Hour", interval=2),
        )
    assert fetched_schedule.name == "My_Updated_Schedule" and fetched_schedule.status == "Active"
    assert fetched_schedule.description == "Updated_Schedule_Run"
    assert fetched_schedule.recurrence.frequency == "Hour" and fetched_schedule.recurrence.interval == 2
    again = Schedule.get(ws, schedule.id)
    assert again.name == "My_Updated_Schedule" and again.recurrence.interval == 2
    due = ws.store.get_schedule(schedule.id).next_fire_time  # not 2099's any more: recomputed from now
    assert due is None or due < time.time() + 2 * 3600 + 5
    with pytest.raises(InvalidInputError, match=r"Status must be either 'Active' or 'Disabled'"):
        again.update(status="Paused")
    with pytest.raises(InvalidInputError, match=r"polling_interval.*for a recurrence schedule"):
        again.update(polling_interval=5)
    watch = Schedule.create(
        ws,
        "watch",
        published.id,
        "upd",
        datastore=Datastore.get(ws, "workspaceblobstore"),
        polling_interval=5,
    )
    with pytest.raises(ValueError, match=r"^Can not specify a recurrence for a Datastore schedule\.$"):
        watch.update(recurrence=ScheduleRecurrence(frequency="Hour", interval=2))
    before = time.time()
    watch.update(polling_interval=10, description="slower")
    stored = ws.store.get_schedule(watch.id)
    assert stored.polling_interval == 10 and stored.description == "slower"
    assert stored.next_fire_time is None or stored.next_fire_time >= before + 599  # not the 5-minute one
    for made in (again, watch):
        made.disable()


def test_patch_schedule_needs_its_creator_or_an_admin_unless_it_only_disables(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    assert isinstance(ws.store, SqlStore)
    tokens = {
        name: create_token(ws.store, scope, name=name)[0]
        for name, scope in [("owner", "write"), ("other", "write"), ("admin", "admin")]
    }
    pipeline_id = no_parameters(ws, tmp_path).id
    hourly = {"frequency": "Hour", "interval": 1, "start_time": "2099-01-05T09:00:00"}
    body = {"id": str(uuid.uuid4()), "name": "sched", "status": "Active", "experiment_name": "rest",
            "created_time": time.time(), "pipeline_id": pipeline_id, "recurrence": hourly}  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    with TestClient(create_app(ws, auth=True), raise_server_exceptions=False) as client:

        def call(method: str, path: str, who: str, json: Any) -> Any:
            headers = {"Authorization": f"Bearer {tokens[who]}"}
            return client.request(method, "/api/v1" + path, json=json, headers=headers)

        made = call("POST", "/schedules", "owner", body)
        assert made.status_code == 200, made.text
        path = f"/schedules/{body['id']}"
        refused = call("PATCH", path, "other", {"description": "mine now"})
        assert refused.status_code == 403 and "token that created it" in refused.text
        assert call("PATCH", path, "other", {"status": "Disabled"}).status_code == 200
        assert call("PATCH", path, "other", {"status": "Active"}).status_code == 403
        assert call("PATCH", path, "owner", {"pipeline_id": "x"}).status_code == 422  # strict body
        renamed = call("PATCH", path, "owner", {"name": "renamed", "status": "Active"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "renamed", renamed.text
        bad = call("PATCH", path, "admin", {"recurrence": {"frequency": "Fortnight", "interval": 1}})
        assert bad.status_code == 400 and "Fortnight" in bad.text
        by_admin = call("PATCH", path, "admin", {"recurrence": {**hourly, "interval": 3}})
        assert by_admin.status_code == 200 and by_admin.json()["recurrence"]["interval"] == 3
        assert by_admin.json()["next_fire_time"] is None  # recomputed by the scheduler from now
        rest = RestStore(str(client.base_url), tokens["owner"], client=client)  # the RestStore side
        updated = rest.update_schedule(body["id"], description="via RestStore", status="Disabled")
        assert (updated.description, updated.status) == ("via RestStore", "Disabled")
        with pytest.raises(InvalidInputError, match="Fortnight"):
            rest.update_schedule(body["id"], recurrence={"frequency": "Fortnight", "interval": 1})


def test_notebook_html_escapes_names_and_links_the_studio(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    evil = '<img src=x onerror="alert(1)">'
    published = no_parameters(ws, tmp_path, name=evil)
    endpoint = PipelineEndpoint.publish(ws, "ep-html", evil, published)
    later = ScheduleRecurrence(frequency="Day", interval=1, start_time="2099-01-05T09:00:00")
    schedule = Schedule.create(ws, "sched-html", published.id, "html", recurrence=later, description=evil)
    schedule.update(name="a&b<c>")
    for shown, page in [
        (published._repr_html_(), published.get_portal_url()),
        (endpoint._repr_html_(), endpoint.get_portal_url()),
        (schedule._repr_html_(), ws.studio_url + "/schedules"),
    ]:
        assert "<img" not in shown and '"alert' not in shown  # no live tag, no attribute broken out of
        assert f'<a href="{page}"' in shown and "runyard up" in shown and "RUNYARD_STUDIO_URL" in shown
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in published._repr_html_()
    assert (
        "a&amp;b&lt;c&gt;" in schedule._repr_html_() and "frequency=&#x27;Day&#x27;" in schedule._repr_html_()
    )
    assert f"<td>{endpoint.endpoint}</td>" in endpoint._repr_html_()
    schedule.disable()
