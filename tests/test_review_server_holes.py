"""The security review's holes at the REST boundary (issue 10, slice H1), against real `runyard server`s.

Each test replays one of the reviewer's attacks (/tmp/review/atk_*.py) over HTTP with a token that
should not be able to do it, and checks the owner's own way of doing the same thing still works.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard import Experiment, Workspace
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.errors import InvalidInputError
from runyard.server.auth import create_token
from runyard.store import ModelRecord, RunRecord, SqlStore
from server_process import ServerProcess, running_server

FP = "f" * 64


@dataclass
class Holes:
    ws: Workspace
    server: ServerProcess  # --auth, not --compute
    tokens: dict[str, str]
    ids: dict[str, str]

    @property
    def store(self) -> SqlStore:
        assert isinstance(self.ws.store, SqlStore)
        return self.ws.store

    def client(self, name: str, url: str | None = None) -> httpx.Client:
        token = self.tokens[name]
        return httpx.Client(
            base_url=url or self.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )


@pytest.fixture(scope="module")
def holes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Holes]:
    root = tmp_path_factory.mktemp("holes")
    ws = Workspace.create(root / "ws")
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, scope, compute in [
        ("owner", "write", ("local",)),
        ("attacker", "write", ()),
        ("admin", "admin", ()),
        ("admin_local", "admin", ("local",)),
        ("admin_all", "admin", ("*",)),
    ]:
        token, record = create_token(ws.store, scope, name=name, compute=compute)  # type: ignore[arg-type]
        tokens[name], ids[name] = token, record.token_id
    with running_server(ws.path, root / "server.log", auth=True) as server:
        yield Holes(ws, server, tokens, ids)


def record(ws: Workspace, run_type: str = "azureml.scriptrun", **fields: Any) -> dict[str, Any]:
    exp = ws.store.get_or_create_experiment("holes")
    fields.setdefault("status", "NotStarted")
    run = RunRecord(
        run_id=str(uuid.uuid4()),
        experiment_id=exp.id,
        experiment_name=exp.name,
        run_type=run_type,
        created_time=time.time(),
        **fields,
    )
    return json.loads(json.dumps(run.__dict__, default=list))


def pipeline_records(ws: Workspace, placement: Any = "elsewhere") -> tuple[dict[str, Any], dict[str, Any]]:
    """A pipeline run and its step, as Pipeline.submit sends them (placed on a client folder's id)."""
    pipeline = record(ws, PIPELINE_RUN_TYPE)
    step = record(ws, STEP_RUN_TYPE, parent_id=pipeline["run_id"], display_name="prep")
    step["data"] = {"step": "prep"}
    pipeline["data"] = {"graph": {"steps": []}, "parameters": {}, "stepRuns": {"prep": step["run_id"]}}
    if placement is not None:
        where = uuid.uuid4().hex if placement == "elsewhere" else placement
        pipeline["data"]["placement"] = {"workspace": where, "target": "local"}
    return pipeline, step


def submitted(holes: Holes) -> tuple[str, str]:
    """The owner submits a pipeline with its step; returns (pipeline id, step id)."""
    pipeline, step = pipeline_records(holes.ws)
    with holes.client("owner") as owner:
        made = owner.post("/api/v1/runs", json=[pipeline, step])
    assert made.status_code == 200, made.text
    return pipeline["run_id"], step["run_id"]


def assert_403(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 403, (response.status_code, response.text[:500])
    for word in words:
        assert word in response.text, (word, response.text[:1000])


# -- finding 1: another user's pipeline -----------------------------------------------------------
def test_a_stranger_cannot_complete_a_step_or_point_it_at_other_files(holes: Holes) -> None:
    """atk_status.py: a write token completed the owner's running step with outputs of its choosing."""
    pipeline_id, step_id = submitted(holes)
    outputs = {"outputs": {"ds": {"path": "/tmp/review/client_private"}}}
    with holes.client("attacker") as attacker:
        assert_403(
            attacker.post(f"/api/v1/runs/{step_id}/status", json={"status": "Completed", "data": outputs}),
            f"belongs to the scheduler of pipeline {pipeline_id}",
        )
        assert_403(
            attacker.post(f"/api/v1/runs/{step_id}/status", json={"status": "Running"}), "only the token"
        )
        assert_403(attacker.patch(f"/api/v1/runs/{step_id}/data", json={"patch": outputs}), "Others may only")
        assert_403(attacker.patch(f"/api/v1/runs/{pipeline_id}/data", json={"patch": {"note": 1}}))
        assert_403(  # canceling with data attached is not a plain cancel
            attacker.post(f"/api/v1/runs/{step_id}/status", json={"status": "Canceled", "data": outputs})
        )
    assert holes.store.get_run(step_id).status == "NotStarted"
    assert "outputs" not in holes.store.get_run(step_id).data
    with holes.client("owner") as owner:  # the submitter's token is the scheduler's: it records as before
        running = owner.post(
            f"/api/v1/runs/{step_id}/status",
            json={
                "status": "Running",
                "data": {"material": {"a": 1}, "process": {"pid": 1}},
                "fingerprint": FP,
            },
        )
        assert running.status_code == 200, running.text
        done = owner.post(f"/api/v1/runs/{step_id}/status", json={"status": "Completed", "data": outputs})
        assert done.status_code == 200 and done.json()["data"]["outputs"] == outputs["outputs"]


def test_anyone_who_may_write_can_still_cancel_someone_elses_pipeline(holes: Holes) -> None:
    """A teammate cancels a pipeline whose scheduler died (PipelineRun.cancel: CancelRequested, then
    Canceled on the pipeline and its steps, with no data)."""
    pipeline_id, step_id = submitted(holes)
    with holes.client("attacker") as teammate:
        asked = teammate.post(f"/api/v1/runs/{pipeline_id}/status", json={"status": "CancelRequested"})
        assert asked.status_code == 200 and asked.json()["status"] == "CancelRequested", asked.text
        error = {"code": "Canceled", "message": "Pipeline canceled."}
        step = teammate.post(f"/api/v1/runs/{step_id}/status", json={"status": "Canceled", "error": error})
        assert step.status_code == 200 and step.json()["status"] == "Canceled", step.text
        assert_403(
            teammate.post(f"/api/v1/runs/{step_id}/status", json={"status": "Canceled", "force": True})
        )
        ended = teammate.post(f"/api/v1/runs/{pipeline_id}/status", json={"status": "Canceled"})
        assert ended.status_code == 200 and ended.json()["status"] == "Canceled", ended.text


def test_steps_are_created_only_with_their_pipeline_and_blank(holes: Holes) -> None:
    """atk_child.py / atk_race.py / atk_kill.py: a forged child (Completed, created_time 0, or Running
    with a pid) added to the owner's pipeline later."""
    pipeline_id, _ = submitted(holes)
    forged = record(holes.ws, STEP_RUN_TYPE, parent_id=pipeline_id, display_name="prep", status="Completed")
    forged["created_time"] = 0
    killer = record(holes.ws, STEP_RUN_TYPE, parent_id=pipeline_id, status="Running")
    killer["data"] = {"process": {"pid": 1}}
    plain = record(holes.ws, parent_id=pipeline_id)
    for name in ("attacker", "owner"):  # not even the owner adds steps afterwards
        with holes.client(name) as client:
            assert_403(client.post("/api/v1/runs", json=[forged]), "created NotStarted and blank")
            assert_403(client.post("/api/v1/runs", json=[killer]), "data keys process")
            late = record(holes.ws, STEP_RUN_TYPE, parent_id=pipeline_id, display_name="prep")
            assert_403(client.post("/api/v1/runs", json=[late]), "same request as its pipeline run")
    with holes.client("attacker") as attacker:
        assert_403(
            attacker.post("/api/v1/runs", json=[plain]), f"only the submitter of pipeline {pipeline_id}"
        )
    assert [r.run_id for r in holes.store.list_descendants(pipeline_id, False)] != [forged["run_id"]]
    assert len(holes.store.list_descendants(pipeline_id, False)) == 1

    with holes.client("owner") as owner:
        pipeline, step = pipeline_records(holes.ws)
        pipeline["data"]["stepRuns"] = {"prep": str(uuid.uuid4())}  # a step the pipeline does not list
        assert_403(owner.post("/api/v1/runs", json=[pipeline, step]), "data.stepRuns")
        for change in ({"status": "Completed"}, {"fingerprint": FP}, {"start_time": 1.0}):
            pipeline, step = pipeline_records(holes.ws)
            step.update(change)
            assert_403(owner.post("/api/v1/runs", json=[pipeline, step]), "created NotStarted and blank")
        pipeline, step = pipeline_records(holes.ws)
        step["data"]["outputs"] = {"ds": {"path": "/etc"}}
        assert_403(owner.post("/api/v1/runs", json=[pipeline, step]), "data keys outputs")


# -- findings 2, 3 and 6: keys that steer processes and reuse -----------------------------------------
def test_reuse_and_process_keys_are_written_only_by_the_runs_creator(holes: Holes) -> None:
    """atk_reuse.py (outputs and a fingerprint on someone's run), atk_reap.py (a supervisor and a
    process pid on someone's run), finding 6 (a run token fingerprinting its own run)."""
    with holes.client("owner") as owner:
        made = owner.post("/api/v1/runs", json=[record(holes.ws)])
        assert made.status_code == 200, made.text
        run_id = made.json()[0]["run_id"]
        token = owner.post(f"/api/v1/runs/{run_id}/token").json()["token"]
    with holes.client("attacker") as attacker:
        for key in ("outputs", "material", "reuse", "reusedFrom", "process", "supervisor", "owner"):
            assert_403(attacker.patch(f"/api/v1/runs/{run_id}/data", json={"patch": {key: {"pid": 1}}}), key)
        assert_403(
            attacker.post(f"/api/v1/runs/{run_id}/status", json={"status": "Running", "fingerprint": FP}),
            "fingerprint",
        )
        assert attacker.patch(f"/api/v1/runs/{run_id}/data", json={"patch": {"note": "x"}}).status_code == 200
    job = httpx.Client(base_url=holes.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    with job:  # the run's own token: its supervisor records itself and its process, nothing else
        supervisor = {"supervisor": {"pid": 2, "host": "h"}}
        assert job.patch(f"/api/v1/runs/{run_id}/data", json={"patch": supervisor}).status_code == 200
        process = job.post(
            f"/api/v1/runs/{run_id}/status", json={"status": "Running", "data": {"process": {}}}
        )
        assert process.status_code == 200, process.text
        assert_403(job.patch(f"/api/v1/runs/{run_id}/data", json={"patch": {"outputs": {}}}), "outputs")
        assert_403(
            job.post(f"/api/v1/runs/{run_id}/status", json={"status": "Running", "fingerprint": FP}),
            "never a run token",
        )
    assert holes.store.get_run(run_id).fingerprint is None
    with holes.client("owner") as owner:
        fp = owner.post(f"/api/v1/runs/{run_id}/status", json={"status": "Completed", "fingerprint": FP})
        assert fp.status_code == 200 and fp.json()["fingerprint"] == FP, fp.text


def test_a_new_run_cannot_name_processes_for_someone_else_to_stop(holes: Holes) -> None:
    """atk_reap.py: a Running run whose data.supervisor is a dead pid on the victim's host and whose
    data.process is a pid to kill; a teammate's `runyard logs -f` would reap it and stop that pid."""
    for key in ("supervisor", "process"):
        forged = record(holes.ws, status="Running")
        forged["data"] = {key: {"pid": 1, "host": "victim"}}
        with holes.client("attacker") as attacker:
            assert_403(attacker.post("/api/v1/runs", json=[forged]), f"data keys {key}")
    child = record(holes.ws, status="Running")
    child["data"] = {"owner": {"pid": 1, "host": "h"}}  # what start_logging/child_run send is fine
    with holes.client("attacker") as attacker:
        assert attacker.post("/api/v1/runs", json=[child]).status_code == 200


# -- finding 4: code on the server's host ---------------------------------------------------------
def test_a_pipeline_placed_on_the_servers_folder_needs_a_compute_server(holes: Holes, tmp_path: Path) -> None:
    """atk_pipeline.py: a compute token placed a pipeline on the server folder's identity; the next
    scheduler on that folder would run it although the server was not started with --compute."""
    on_server = pipeline_records(holes.ws, holes.ws.identity)
    unplaced = pipeline_records(holes.ws, None)
    with holes.client("owner") as owner:
        assert_403(owner.post("/api/v1/runs", json=list(on_server)), "not started with --compute")
        assert_403(owner.post("/api/v1/runs", json=list(unplaced)), "no data.placement.workspace")
    pipelines = holes.store.list_runs(run_type=PIPELINE_RUN_TYPE)
    assert all(r.data["placement"]["workspace"] != holes.ws.identity for r in pipelines)
    env = {"RUNYARD_SERVER_COMPUTE": "1", "RUNYARD_SCHEDULER_IDLE_SECONDS": "3"}
    with (
        running_server(holes.ws.path, tmp_path / "compute.log", auth=True, env=env) as server,
        holes.client("owner", server.url) as owner,
    ):
        pipeline, step = pipeline_records(holes.ws, holes.ws.identity)
        made = owner.post("/api/v1/runs", json=[pipeline, step])
        assert made.status_code == 200, made.text
        holes.store.set_run_status(pipeline["run_id"], "Canceled")  # nothing to run here


# -- finding 5: compute grants ---------------------------------------------------------------------
def test_a_token_grants_only_the_compute_it_holds(holes: Holes) -> None:
    cases = [
        ("admin", ["local"], 403),
        ("admin_local", ["local"], 200),
        ("admin_local", ["gpu"], 403),
        ("admin_local", ["*"], 403),
        ("admin_all", ["*"], 200),
        ("admin_all", ["gpu"], 200),
        ("admin", ["a,b"], 400),
    ]
    for name, compute, code in cases:
        with holes.client(name) as admin:
            made = admin.post("/api/v1/tokens", json={"scope": "write", "compute": compute})
        assert made.status_code == code, (name, compute, made.text)
        if code == 200:
            assert made.json()["compute"] == compute
        if code == 403:
            assert "runyard token create --scope write --compute TARGET" in made.text


# -- finding 6: sibling records, model paths -------------------------------------------------------
def test_a_run_token_lists_only_its_own_family(holes: Holes) -> None:
    parent = Experiment(holes.ws, "family").start_logging()
    mine, sibling = parent.child_run("mine"), parent.child_run("sibling")
    grandchild = mine.child_run("grandchild")
    token, _ = create_token(holes.store, "run", run_id=mine.id)  # type: ignore[arg-type]
    job = httpx.Client(base_url=holes.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    with job:
        for recursive in ("false", "true"):
            listed = job.get(f"/api/v1/runs/{parent.id}/descendants", params={"recursive": recursive})
            assert listed.status_code == 200, listed.text
            ids = {r["run_id"] for r in listed.json()}
            assert sibling.id not in ids and mine.id in ids
            assert (grandchild.id in ids) == (recursive == "true")
        by_parent = job.get("/api/v1/runs", params={"parent_id": parent.id})
        assert [r["run_id"] for r in by_parent.json()] == [mine.id]
        assert job.get(f"/api/v1/runs/{mine.id}/descendants").json()[0]["run_id"] == grandchild.id
    with holes.client("owner") as owner:  # workspace tokens still see every child
        ids = {r["run_id"] for r in owner.get(f"/api/v1/runs/{parent.id}/descendants").json()}
        assert {mine.id, sibling.id} <= ids
    for run in (grandchild, mine, sibling, parent):
        run.complete()


@pytest.mark.parametrize(
    "path",
    [
        "snapshots/manifests/x.json",
        "/etc/passwd",
        "../../x",
        "models/other/{version}/m.pkl",
        "models/m/../../snapshots/x",
        "models/m",
        "models/m//x",
        "models/m/{version}/./x",
        "models\\m\\1\\x",
    ],
)
def test_model_paths_stay_in_the_models_folder(holes: Holes, path: str) -> None:
    model = {"name": "m", "version": 0, "path": path, "created_time": time.time()}
    with holes.client("owner") as owner:
        refused = owner.post("/api/v1/models", json=model)
    assert refused.status_code == 400 and "models/m/<version>/" in refused.text, refused.text
    with pytest.raises(InvalidInputError, match="not allowed"):  # every store, not only the server
        holes.store.register_model(ModelRecord(name="m", version=0, path=path, created_time=time.time()))


def test_a_model_path_in_its_own_folder_registers(holes: Holes) -> None:
    model = {
        "name": "ok",
        "version": 0,
        "path": "models/ok/{version}/sub/model.pkl",
        "created_time": time.time(),
    }
    with holes.client("owner") as owner:
        made = owner.post("/api/v1/models", json=model)
    assert made.status_code == 200 and made.json()["path"].startswith("models/ok/"), made.text


def test_the_mlflow_routes_cannot_end_or_rename_someone_elses_step(holes: Holes) -> None:
    """The same hole through the MLflow-compatible API: runs/update and the mlflow.runName tag."""
    pipeline_id, step_id = submitted(holes)
    with holes.client("attacker") as attacker:
        done = attacker.post("/api/2.0/mlflow/runs/update", json={"run_id": step_id, "status": "FINISHED"})
        assert_403(done, f"belongs to the scheduler of pipeline {pipeline_id}")
        assert done.json()["error_code"] == "PERMISSION_DENIED"  # MLflow's shape under MLflow's routes
        tag = {"run_id": step_id, "key": "mlflow.runName", "value": "other"}
        refused = attacker.post("/api/2.0/mlflow/runs/set-tag", json=tag)
        assert_403(refused)
        assert refused.json()["error_code"] == "PERMISSION_DENIED"
        # MLflow's status changes on a step (not an mlflow.run) are answered with the run as it is and change
        # nothing: the step's status belongs to its own process (contract §7); canceling is runyard's route
        canceled = attacker.post("/api/2.0/mlflow/runs/update", json={"run_id": step_id, "status": "KILLED"})
        assert canceled.status_code == 200, canceled.text
        info = canceled.json()["run_info"]
        assert (info["run_id"], info["status"], info["run_name"]) == (step_id, "SCHEDULED", "prep"), info
    step = holes.store.get_run(step_id)
    assert (step.status, step.display_name) == ("NotStarted", "prep")
