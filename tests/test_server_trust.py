"""The server's side of the trust model (docs/security.md), against real `runyard server` processes.

Who submitted a run is the server's word; submission keys never change after creation; running code
needs a compute grant on the token and a server started as compute; run tokens cannot schedule code or
read other families' snapshots and step outputs.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SourceDir, invoke_cli
from runyard import Experiment, Workspace
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.pipeline import Pipeline, PythonScriptStep
from runyard.server.auth import create_token
from runyard.store import RunRecord, SqlStore
from runyard.store.snapshots import manifest_id
from server_process import ServerProcess, running_server


@dataclass
class Trust:
    ws: Workspace
    server: ServerProcess  # --auth, not --compute
    tokens: dict[str, str]  # name -> token
    ids: dict[str, str]  # name -> token id

    @property
    def store(self) -> SqlStore:
        assert isinstance(self.ws.store, SqlStore)
        return self.ws.store

    def client(self, name: str, url: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[name]}"}
        return httpx.Client(base_url=url or self.server.url, headers=headers, timeout=60)


def _token(
    ws: Workspace, tokens: dict[str, str], ids: dict[str, str], name: str, scope: str, **kw: Any
) -> None:
    token, record = create_token(ws.store, scope, name=name, **kw)  # type: ignore[arg-type]
    tokens[name], ids[name] = token, record.token_id


@pytest.fixture(scope="module")
def trust(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trust]:
    root = tmp_path_factory.mktemp("trust")
    ws = Workspace.create(root / "ws")
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, scope, compute in [
        ("read", "read", ()),
        ("write", "write", ()),
        ("admin", "admin", ()),
        ("runner", "write", ("local",)),
    ]:
        _token(ws, tokens, ids, name, scope, compute=compute)
    with running_server(ws.path, root / "server.log", auth=True) as server:
        yield Trust(ws, server, tokens, ids)


def _record(ws: Workspace, run_type: str = "azureml.scriptrun", **fields: Any) -> dict[str, Any]:
    exp = ws.store.get_or_create_experiment("trust")
    run = RunRecord(
        run_id=str(uuid.uuid4()),
        experiment_id=exp.id,
        experiment_name=exp.name,
        status="NotStarted",
        run_type=run_type,
        created_time=time.time(),
        **fields,
    )
    return json.loads(json.dumps(run.__dict__, default=list))


def attack_pipeline(ws: Workspace, client: httpx.Client, marker: Path, tmp_path: Path) -> str:
    """What an attacker with a write token and HTTP access does: a script uploaded as a snapshot and
    a pipeline run (with its step) whose graph names it. Returns the pipeline run id."""
    script = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    sha = hashlib.sha256(script).hexdigest()
    manifest = {"evil.py": sha}
    snap = manifest_id(manifest)
    for path, body in [
        (f"snapshots/blobs/{sha[:2]}/{sha}", script),
        (f"snapshots/manifests/{snap}.json", json.dumps(manifest).encode()),
    ]:
        assert client.put("/api/v1/artifacts/file", params={"path": path}, content=body).status_code == 204
    src = SourceDir(tmp_path / "evil").gen({"evil.py": script.decode()})
    graph, errors, _ = Pipeline(
        ws, [PythonScriptStep("evil.py", name="evil", source_directory=src)]
    )._compile({})
    assert not errors
    graph["steps"][0]["source"].update(snapshot=snap, files=1)
    pipeline = _record(ws, PIPELINE_RUN_TYPE, target="local")
    elsewhere = {"workspace": uuid.uuid4().hex, "target": "local"}  # the server's own folder is refused
    pipeline["data"] = {
        "graph": graph,
        "parameters": {},
        "submittedBy": {"auth": "off"},
        "placement": elsewhere,
    }
    step = _record(ws, STEP_RUN_TYPE, parent_id=pipeline["run_id"], display_name="evil", target="local")
    step["data"] = {"step": "evil"}
    made = client.post("/api/v1/runs", json=[pipeline, step])
    assert made.status_code == 200, made.text
    return str(pipeline["run_id"])


def assert_403(response: httpx.Response, *words: str) -> None:
    assert response.status_code == 403, (response.status_code, response.text[:500])
    text = response.text.replace("&#39;", "'")
    for word in words:
        assert word in text, (word, text[:2000])


# -- who submitted ------------------------------------------------------------------------------------
def test_the_server_stamps_who_submitted_over_what_the_client_claims(trust: Trust) -> None:
    forged = _record(trust.ws, data={"submittedBy": {"token": trust.ids["admin"], "scope": "admin"}})
    with trust.client("write") as client:
        made = client.post("/api/v1/runs", json=[forged])
    assert made.status_code == 200, made.text
    stamp = {"token": trust.ids["write"], "scope": "write"}
    assert made.json()[0]["data"]["submittedBy"] == stamp
    assert trust.store.get_run(forged["run_id"]).data["submittedBy"] == stamp
    with trust.client("read") as reader:  # MLflow clients still get a string user id
        mlflow = reader.get("/api/2.0/mlflow/runs/get", params={"run_id": forged["run_id"]})
    assert (
        mlflow.status_code == 200 and mlflow.json()["run"]["info"]["user_id"] == f"token:{trust.ids['write']}"
    )


def test_submission_keys_cannot_be_patched_over_rest(trust: Trust) -> None:
    run = _record(trust.ws)
    with trust.client("admin") as client:
        assert client.post("/api/v1/runs", json=[run]).status_code == 200
        for key, value in [("graph", {"steps": []}), ("submittedBy", {"auth": "off"}), ("placement", "x")]:
            patched = client.patch(f"/api/v1/runs/{run['run_id']}/data", json={"patch": {key: value}})
            assert_403(patched, key, "cannot change after a run is created")
        status = client.post(
            f"/api/v1/runs/{run['run_id']}/status",
            json={"status": "Running", "data": {"parameters": {"a": 1}}},
        )
        assert_403(status, "parameters")
        fine = client.patch(f"/api/v1/runs/{run['run_id']}/data", json={"patch": {"description": "ok"}})
        assert fine.status_code == 200
    after = trust.store.get_run(run["run_id"])
    assert after.status == "NotStarted" and "graph" not in after.data
    assert after.data["submittedBy"] == {"token": trust.ids["admin"], "scope": "admin"}


# -- compute on tokens --------------------------------------------------------------------------------
def test_token_compute_is_created_listed_and_limited(trust: Trust) -> None:
    ws = str(trust.ws.path)
    made = invoke_cli(
        "-w", ws, "token", "create", "--scope", "write", "--compute", "local", "--compute", "gpu", "--json"
    )
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    assert created["compute"] == ["local", "gpu"]
    listed = {t["token_id"]: t for t in json.loads(invoke_cli("-w", ws, "token", "list", "--json").stdout)}
    assert listed[created["token_id"]]["compute"] == ["local", "gpu"]
    assert listed[trust.ids["admin"]]["compute"] == []
    table = invoke_cli("-w", ws, "token", "list").stdout
    assert "local, gpu" in table

    refused = invoke_cli("-w", ws, "token", "create", "--scope", "read", "--compute", "local")
    assert refused.returncode == 1 and "--compute needs a 'write' or 'admin' token" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    with pytest.raises(Exception, match="Run tokens can never hold compute"):
        create_token(trust.store, "run", run_id="r", compute=("local",))

    with trust.client("admin") as admin:
        # finding 5: an admin without compute cannot mint compute over HTTP ("admin alone never runs code")
        over_api = admin.post("/api/v1/tokens", json={"scope": "write", "compute": ["*"]})
        assert_403(over_api, "can only grant compute targets it holds itself", "runyard token create")
        assert admin.post("/api/v1/tokens", json={"scope": "write"}).status_code == 200
        bad = admin.post("/api/v1/tokens", json={"scope": "write", "compute": ["a,b"]})
        assert bad.status_code == 400 and "not a valid name" in bad.text


# -- run tokens ---------------------------------------------------------------------------------------
def test_a_run_token_cannot_create_pipeline_or_step_runs(trust: Trust) -> None:
    job = Experiment(trust.ws, "jobs").start_logging()
    token, _ = create_token(trust.store, "run", run_id=job.id)  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {token}"}
    for run_type in (PIPELINE_RUN_TYPE, STEP_RUN_TYPE):
        child = _record(trust.ws, run_type, parent_id=job.id)
        response = httpx.post(f"{trust.server.url}/api/v1/runs", json=[child], headers=headers)
        assert_403(response, "cannot create pipeline or step runs", "--compute")
        assert not trust.store.list_runs(parent_id=job.id, run_type=run_type)
    plain = _record(trust.ws, parent_id=job.id)  # an ordinary child run is still fine
    assert httpx.post(f"{trust.server.url}/api/v1/runs", json=[plain], headers=headers).status_code == 200
    job.complete()


def test_a_run_token_reads_only_its_own_familys_step_outputs(trust: Trust) -> None:
    arts = trust.ws.artifacts
    mine, other = Experiment(trust.ws, "mine").start_logging(), Experiment(trust.ws, "other").start_logging()
    arts.put_bytes("snapshots/manifests/abc.json", b"{}")
    arts.put_bytes(f"datastores/workspaceblobstore/azureml/{other.id}/out/secret.csv", b"secret")
    arts.put_bytes(f"datastores/workspaceblobstore/azureml/{mine.id}/out/data.csv", b"mine")
    arts.put_bytes("datastores/workspaceblobstore/custom/shared.csv", b"shared")
    token, _ = create_token(trust.store, "run", run_id=mine.id)  # type: ignore[arg-type]
    with httpx.Client(base_url=trust.server.url, headers={"Authorization": f"Bearer {token}"}) as job:
        for prefix in ("snapshots", "snapshots/manifests", "datastores", "datastores/workspaceblobstore"):
            assert_403(job.get("/api/v1/artifacts", params={"prefix": prefix}), "own run family")
        assert_403(job.get("/api/v1/artifacts/file", params={"path": "snapshots/manifests/abc.json"}))
        theirs = f"datastores/workspaceblobstore/azureml/{other.id}/out/secret.csv"
        assert_403(job.get("/api/v1/artifacts/file", params={"path": theirs}), other.id)
        assert_403(
            job.get(
                "/api/v1/artifacts/file", params={"path": "datastores/workspaceblobstore/custom/shared.csv"}
            )
        )
        own = f"datastores/workspaceblobstore/azureml/{mine.id}"
        assert job.get("/api/v1/artifacts", params={"prefix": own}).json() == ["out/data.csv"]
        assert job.get("/api/v1/artifacts/file", params={"path": f"{own}/out/data.csv"}).content == b"mine"
        written = job.put("/api/v1/artifacts/file", params={"path": f"{own}/out/new.csv"}, content=b"n")
        assert written.status_code == 204
    with trust.client("read") as reader:  # workspace tokens still see everything
        assert reader.get("/api/v1/artifacts", params={"prefix": "snapshots"}).status_code == 200
    mine.complete()
    other.complete()


# -- code execution over HTTP -------------------------------------------------------------------------
def test_the_write_token_attack_runs_nothing(trust: Trust, tmp_path: Path) -> None:
    """Issue 10 "Critical": a write token uploads a script, POSTs a pipeline run naming it, and POSTs
    the studio's clone with a Bearer header and no Origin. Nothing may run."""
    marker = tmp_path / "ran.txt"
    with trust.client("write") as client:
        run_id = attack_pipeline(trust.ws, client, marker, tmp_path)
        assert trust.store.get_run(run_id).data["submittedBy"] == {
            "token": trust.ids["write"],
            "scope": "write",
        }
        cloned = client.post(f"/runs/{run_id}/clone", data={"experiment": "pwned"})
    assert_403(cloned, "started without --compute")
    for name in ("runner", "admin"):  # even a token with compute cannot make a non-compute host run code
        with trust.client(name) as client:
            assert_403(client.post(f"/runs/{run_id}/clone", data={}), "runyard server --compute")
    time.sleep(1)
    assert not marker.exists()
    assert not trust.store.list_runs(experiment_name="pwned")
    assert not (trust.ws.path / "scheduler.json").exists()  # no scheduler was started on the server host


def test_without_auth_or_compute_a_clone_runs_nothing(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    marker = tmp_path / "ran.txt"
    with (
        running_server(ws.path, tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url) as client,
    ):
        run_id = attack_pipeline(ws, client, marker, tmp_path)
        assert ws.store.get_run(run_id).data["submittedBy"] == {"auth": "off"}
        assert_403(client.post(f"/runs/{run_id}/clone", data={}), "started without --compute")
    assert not marker.exists() and not (ws.path / "scheduler.json").exists()


@pytest.mark.usefixtures("no_stray_processes")
def test_a_compute_server_runs_clones_only_for_tokens_with_compute(trust: Trust, tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    with trust.client("write") as client:
        run_id = attack_pipeline(trust.ws, client, marker, tmp_path)
    env = {"RUNYARD_SERVER_COMPUTE": "1", "RUNYARD_SCHEDULER_IDLE_SECONDS": "3"}
    with running_server(trust.ws.path, tmp_path / "compute.log", auth=True, env=env) as server:
        for name in ("write", "admin"):
            with trust.client(name, server.url) as client:
                refused = client.post(f"/runs/{run_id}/clone", data={"experiment": "cloned"})
            assert_403(
                refused, "may not run code on local", "runyard token create --scope write --compute local"
            )
        assert not trust.store.list_runs(experiment_name="cloned")
        with trust.client("write", server.url) as client:  # the form says so before it is filled in
            form = client.get(f"/runs/{run_id}/clone").text.replace("&#39;", "'")
        assert "may not run code on local" in form and 'disabled title="Cannot run here"' in form
        with trust.client("runner", server.url) as client:
            assert "Cannot run here" not in client.get(f"/runs/{run_id}/clone").text
            done = client.post(f"/runs/{run_id}/clone", data={"experiment": "cloned"})
        assert done.status_code == 303, done.text
        new_id = done.headers["location"].rsplit("/", 1)[1]
        assert trust.store.get_run(new_id).data["submittedBy"] == {
            "token": trust.ids["runner"],
            "scope": "write",
        }
        from runyard.pipeline import PipelineRun

        PipelineRun.get(trust.ws, new_id).wait_for_completion(show_output=False, timeout_seconds=120)
    assert marker.read_text() == "ran"  # the granted clone did run, on this (compute) host


# -- the CLI ------------------------------------------------------------------------------------------
def test_an_impossible_port_is_one_line(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws")
    done = invoke_cli("-w", str(ws.path), "server", "--port", "99999")
    assert done.returncode == 1
    assert (
        done.stderr.strip()
        == "Error: --port 99999 is not a TCP port; use a number from 1 to 65535, e.g. 8765."
    )
