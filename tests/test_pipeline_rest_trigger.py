"""v1's REST door to published pipelines and endpoints, against a real `runyard server --auth` started as
compute: a POST with a token starts a run of the frozen graph, with the body's parameter values, as that
token; every refusal has the server's JSON shape (401/403/404/409/400/422)."""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SourceDir, kill_strays
from runyard import Workspace
from runyard.core.run_values import PIPELINE_RUN_TYPE
from runyard.errors import InvalidInputError
from runyard.pipeline import Pipeline, PipelineParameter, PythonScriptStep
from runyard.pipeline.endpoint import PipelineEndpoint
from runyard.pipeline.published import (
    ENDPOINT_SUBMIT_BY_NAME_PATH,
    ENDPOINT_SUBMIT_PATH,
    PUBLISHED_SUBMIT_PATH,
    PublishedPipeline,
)
from runyard.server.app import create_app
from runyard.server.auth import create_token
from runyard.server.errors import AUTH_FAILED_BODY, INVALID_TOKEN_BODY
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import SqlStore
from server_process import ServerProcess, running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

STEP = """
import pathlib, sys
out, msg, n = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
out.mkdir(parents=True, exist_ok=True)
(out / f"{msg}-{n}.txt").write_text("CODE")
"""


@dataclass
class Door:
    ws: Workspace
    server: ServerProcess
    tokens: dict[str, str]
    ids: dict[str, str]
    out: Path
    first: str  # published pipeline id (the script wrote "A" when it was published)
    second: str  # published pipeline id ("B")
    endpoint: str  # versions {"0": first, "1": second}, default "0"

    @property
    def store(self) -> SqlStore:
        assert isinstance(self.ws.store, SqlStore)
        return self.ws.store

    def post(self, path: str, body: Any, token: str | None = "runner", **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.post(self.server.url + path, json=body, headers=headers, timeout=60, **kw)


def publish(ws: Workspace, src: Path, out: Path, name: str) -> PublishedPipeline:
    """Pipeline.publish: the graph and a snapshot of `src` as it is now."""
    msg, n = PipelineParameter("msg", default_value="hello"), PipelineParameter("n", default_value=1)
    step = PythonScriptStep("step.py", name="write", source_directory=str(src), arguments=[str(out), msg, n])
    return Pipeline(ws, [step]).publish(name=name, version="1")


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Door]:
    root = tmp_path_factory.mktemp("door")
    ws = Workspace.create(root / "ws")
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, scope, compute in [
        ("read", "read", ()),
        ("write", "write", ()),
        ("runner", "write", ("local",)),
        ("admin", "admin", ("*",)),
    ]:
        tokens[name], record = create_token(ws.store, scope, name=name, compute=compute)  # type: ignore[arg-type]
        ids[name] = record.token_id
    src, out = root / "src", root / "out"
    SourceDir(src).gen({"step.py": STEP.replace("CODE", "A")})
    first = publish(ws, src, out, "first")
    assert first.endpoint == ws.studio_url + PUBLISHED_SUBMIT_PATH.format(id=first.id)  # the door's path
    SourceDir(src).gen({"step.py": STEP.replace("CODE", "B")})  # edited after publishing: first keeps A
    second = publish(ws, src, out, "second")
    ep = PipelineEndpoint.publish(ws, "door", "versions 0 and 1", first)
    ep.add(second)  # version "1"; the default stays "0"
    env = {"RUNYARD_SERVER_COMPUTE": "1", "RUNYARD_SCHEDULER_IDLE_SECONDS": "3"}
    with running_server(ws.path, root / "server.log", auth=True, env=env) as server:
        yield Door(ws, server, tokens, ids, out, first.id, second.id, ep.id)
    kill_strays(root)


def wait_done(ws: Workspace, run_id: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while ws.store.get_run(run_id).status not in TERMINAL_STATUSES:
        assert time.monotonic() < deadline, f"run {run_id} did not finish: {ws.store.get_run(run_id)}"
        time.sleep(0.1)
    assert ws.store.get_run(run_id).status == RunStatus.COMPLETED, ws.store.get_run(run_id)


def test_published_and_endpoint_doors_run_the_frozen_graph_as_the_token(door: Door) -> None:
    direct = door.post(
        PUBLISHED_SUBMIT_PATH.format(id=door.first),
        {
            "ExperimentName": "rest-door",
            "ParameterAssignments": {"msg": "direct", "n": "3"},  # v1 sends text; n's default is an int
            "Description": "from curl",
            "RunSource": "API",
            "tags": {"via": "rest"},
        },
    )
    assert direct.status_code == 200, direct.text
    answer = direct.json()
    assert answer["PipelineId"] == door.first and answer["RunHistoryExperimentName"] == "rest-door"
    assert answer["Status"]["StatusCode"] == RunStatus.NOT_STARTED and answer["TotalRunSteps"] == 1
    assert answer["ParameterAssignments"] == {"msg": "direct", "n": "3"}
    assert answer["RunUrl"] == f"{door.server.url}/runs/{answer['Id']}"
    default = door.post(
        ENDPOINT_SUBMIT_PATH.format(id=door.endpoint),
        {"ExperimentName": "rest-door", "ParameterAssignments": {"msg": "default"}},
    )
    assert default.status_code == 200, default.text
    assert default.json()["PipelineId"] == door.first and default.json()["PipelineVersion"] == "0"
    chosen = door.post(
        ENDPOINT_SUBMIT_PATH.format(id=door.endpoint),
        {
            "ExperimentName": "rest-door",
            "ParameterAssignments": {"msg": "chosen", "n": 7},
            "PipelineVersion": "1",
        },
        token="admin",
    )
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["PipelineId"] == door.second
    # GraphId is the same content hash the Python API calls graph_id
    assert chosen.json()["GraphId"] == PublishedPipeline.get(door.ws, door.second).graph_id
    in_path = door.post(
        ENDPOINT_SUBMIT_PATH.format(id=door.endpoint) + "/1",
        {"ExperimentName": "rest-door", "ParameterAssignments": {"msg": "path"}},
    )
    assert in_path.status_code == 200 and in_path.json()["PipelineId"] == door.second, in_path.text

    runs = [r.json()["Id"] for r in (direct, default, chosen, in_path)]
    for run_id in runs:
        wait_done(door.ws, run_id)
    # the published graph is frozen: the first pipeline still runs the code it was published with
    assert (door.out / "direct-3.txt").read_text() == "A"
    assert (door.out / "default-1.txt").read_text() == "A"
    assert (door.out / "chosen-7.txt").read_text() == "B"
    assert (door.out / "path-1.txt").read_text() == "B"
    record = door.store.get_run(runs[0])
    assert record.run_type == PIPELINE_RUN_TYPE and record.data["parameters"] == {"msg": "direct", "n": 3}
    assert record.data["submittedBy"] == {"token": door.ids["runner"], "scope": "write"}
    assert record.data["description"] == "from curl" and door.store.get_tags(runs[0]) == {"via": "rest"}
    assert door.store.get_properties(runs[0])["azureml.pipelineid"] == door.first
    assert door.store.get_run(runs[2]).data["submittedBy"] == {"token": door.ids["admin"], "scope": "admin"}
    endpoint_props = door.store.get_properties(runs[1])
    assert endpoint_props["azureml.pipelineEndpointId"] == door.endpoint
    assert endpoint_props["azureml.pipelineid"] == door.first


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["error"]["message"])


def test_who_may_knock(door: Door) -> None:
    path, body = PUBLISHED_SUBMIT_PATH.format(id=door.first), {"ExperimentName": "refused"}
    missing = door.post(path, body, token=None)
    assert missing.status_code == 401 and missing.json() == AUTH_FAILED_BODY
    bad = httpx.post(
        door.server.url + path, json=body, headers={"Authorization": "Bearer ry_0123456789ab_" + "x" * 40}
    )
    assert bad.status_code == 401 and bad.json() == INVALID_TOKEN_BODY
    assert "needs a token with the 'write' scope" in error_of(door.post(path, body, token="read"), 403)
    no_compute = error_of(door.post(path, body, token="write"), 403)
    assert "may not run code on local" in no_compute and "--compute local" in no_compute
    assert not door.store.list_runs(experiment_name="refused")


def test_unknown_disabled_and_malformed(door: Door) -> None:
    body = {"ExperimentName": "refused"}
    unknown = door.post(PUBLISHED_SUBMIT_PATH.format(id="no-such-id"), body)
    assert "No published pipeline with id 'no-such-id'" in error_of(unknown, 404)
    assert error_of(door.post(ENDPOINT_SUBMIT_PATH.format(id="nope"), body), 404)
    off = publish(door.ws, door.out.parent / "src", door.out, "off")
    via_off = PipelineEndpoint.publish(door.ws, "via-off", None, off)  # active; its pipeline will not be
    off.disable()
    assert "Disabled" in error_of(door.post(PUBLISHED_SUBMIT_PATH.format(id=off.id), body), 409)
    assert "Disabled" in error_of(door.post(ENDPOINT_SUBMIT_PATH.format(id=via_off.id), body), 409)
    closed = PipelineEndpoint.publish(door.ws, "closed", None, PublishedPipeline.get(door.ws, door.first))
    closed.disable()
    message = error_of(door.post(ENDPOINT_SUBMIT_PATH.format(id=closed.id), body), 409)
    assert "Pipeline endpoint 'closed'" in message and "enable()" in message

    path = PUBLISHED_SUBMIT_PATH.format(id=door.first)
    assert "body.ExperimentName: Field required" in error_of(door.post(path, {}), 422)
    assert "body.Colour" in error_of(door.post(path, {**body, "Colour": "red"}), 422)
    assert "'many' is not an integer" in error_of(
        door.post(path, {**body, "ParameterAssignments": {"n": "many"}}), 400
    )
    datapath = {**body, "DataPathAssignments": {"msg": {"DataStoreName": "nowhere", "RelativePath": "x"}}}
    assert "DataPathAssignments['msg']" in error_of(door.post(path, datapath), 400)
    twice = error_of(
        door.post(ENDPOINT_SUBMIT_PATH.format(id=door.endpoint) + "/1", {**body, "PipelineVersion": "0"}), 400
    )
    assert "give one" in twice
    unknown_version = door.post(
        ENDPOINT_SUBMIT_PATH.format(id=door.endpoint), {**body, "PipelineVersion": "9"}
    )
    assert "has no version '9'" in error_of(unknown_version, 400)
    assert not door.store.list_runs(experiment_name="refused")
    door.server.check_healthy()


def test_endpoint_by_name_and_unknown_names_are_ignored_as_v1_does(door: Door) -> None:
    """v1's versioned-endpoint notebook posts to PipelineEndpointSubmit/Name?name=…&pipelineVersion=0 with
    parameter names the pipeline does not have, and reads ["Id"]: both work, the answer warns."""
    body = {"ExperimentName": "by-name", "ParameterAssignments": {"1": "united", "msg": "named"}}
    by_name = door.post(ENDPOINT_SUBMIT_BY_NAME_PATH, body, params={"name": "door", "pipelineVersion": "1"})
    assert by_name.status_code == 200, by_name.text
    answer = by_name.json()
    assert answer["PipelineId"] == door.second and answer["PipelineEndpointId"] == door.endpoint
    assert answer["PipelineVersion"] == "1" and answer["ParameterAssignments"] == {"msg": "named", "n": "1"}
    assert (
        len(answer["Warnings"]) == 1
        and "'1'" in answer["Warnings"][0]
        and "known: msg, n" in answer["Warnings"][0]
    )
    assert door.store.get_properties(answer["Id"])["ignoredParameters"] == '["1"]'
    default = door.post(ENDPOINT_SUBMIT_BY_NAME_PATH, {"ExperimentName": "by-name"}, params={"name": "door"})
    assert default.status_code == 200 and default.json()["PipelineId"] == door.first, default.text
    assert default.json()["Warnings"] == []
    assert "ignoredParameters" not in door.store.get_properties(default.json()["Id"])
    assert error_of(door.post(ENDPOINT_SUBMIT_BY_NAME_PATH, body, params={"name": "no-such"}), 404)
    assert error_of(door.post(ENDPOINT_SUBMIT_BY_NAME_PATH, body), 422)  # name is required
    for run_id in (answer["Id"], default.json()["Id"]):
        wait_done(door.ws, run_id)
    assert (door.out / "named-1.txt").read_text() == "B"


def test_a_server_that_is_not_compute_starts_nothing(tmp_path: Path) -> None:
    """Without --compute (and without --auth) the door is shut, before the body is even read."""
    ws = Workspace.create(tmp_path / "ws")
    with TestClient(create_app(ws)) as client:
        refused = client.post(PUBLISHED_SUBMIT_PATH.format(id="any"), json={"ExperimentName": "x"})
    assert refused.status_code == 403 and "started without --compute" in refused.json()["error"]["message"]
    assert not (ws.path / "scheduler.json").exists()


def test_datapath_and_dataset_assignments_become_the_graphs_parameter_values(tmp_path: Path) -> None:
    from runyard.data.dataset import Dataset
    from runyard.server.routes_pipeline_submit import PipelineSubmission, parameter_values

    ws = Workspace.create(tmp_path / "ws")
    SourceDir(tmp_path / "files").gen({"a.txt": "a"})
    store = ws.get_default_datastore()
    store.upload(str(tmp_path / "files"), target_path="inbox", overwrite=True, show_progress=False)
    registered = Dataset.File.from_files((store, "inbox/*")).register(ws, "inbox")
    graph = {
        "parameters": {
            "data": {"default": {"dataset": {"kind": "file"}}},
            "where": {"default": {"datapath": {"datastore": "workspaceblobstore", "path": "old"}}},
            "rate": {"default": 0.5},
        }
    }
    body = PipelineSubmission.model_validate(
        {
            "ExperimentName": "x",
            "ParameterAssignments": {"rate": 2},
            "DataPathAssignments": {"where": {"DataStoreName": "workspaceblobstore", "RelativePath": "new"}},
            "DataSetDefinitionValueAssignments": {"data": {"SavedDataSetReference": {"Id": registered.id}}},
        }
    )
    values = parameter_values(ws, graph, body)
    assert values["rate"] == 2.0 and isinstance(values["rate"], float)
    assert values["where"] == {"datapath": {"datastore": "workspaceblobstore", "path": "new"}}
    assert values["data"]["dataset"]["registered"]["id"] == registered.id
    by_name = PipelineSubmission.model_validate(
        {
            "ExperimentName": "x",
            "DataSetDefinitionValueAssignments": {"data": {"DataSetReference": {"Name": "inbox"}}},
        }
    )
    assert parameter_values(ws, graph, by_name)["data"]["dataset"]["registered"]["name"] == "inbox"
    wrong_field = PipelineSubmission.model_validate(
        {"ExperimentName": "x", "ParameterAssignments": {"data": "x"}}
    )
    with pytest.raises(
        InvalidInputError, match=r"ParameterAssignments\['data'\].*DataSetDefinitionValueAssignments"
    ):
        parameter_values(ws, graph, wrong_field)
    unknown = PipelineSubmission.model_validate(
        {
            "ExperimentName": "x",
            "DataSetDefinitionValueAssignments": {"data": {"SavedDataSetReference": {"Id": "nope"}}},
        }
    )
    with pytest.raises(InvalidInputError, match=r"DataSetDefinitionValueAssignments\['data'\]"):
        parameter_values(ws, graph, unknown)
