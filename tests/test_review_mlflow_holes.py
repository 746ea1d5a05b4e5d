"""Review (issue 16): attacks on the MLflow surface of a real `runyard server --auth`.

Every test asserts the SAFE behaviour (docs/security.md: a token or a job does only what its scope says),
so a test that fails documents a hole. The attackers are real tokens over HTTP: two write tokens, a read
token, and the run tokens of two unrelated runs and of a pipeline step. One server serves the module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from runyard import Workspace
from runyard.compute.job_environment import mlflow_variables
from runyard.server.auth import create_token
from runyard.store import RunRecord
from server_process import ServerProcess, running_server

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
SECRET = b"run B's private bytes\n"
UPLOAD_LIMIT = 256 * 1024


@dataclass
class Setup:
    ws: Workspace
    server: ServerProcess
    tokens: dict[str, str]
    runs: dict[str, str]
    experiment_id: str

    def http(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def call(self, who: str, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        with self.http(who) as client:
            if method == "GET":
                return client.get(API + "/" + path, params=body or {})
            return client.request(method, API + "/" + path, json=body or {})


def _run(ws: Workspace, exp: Any, run_type: str, stamp: dict[str, Any], parent: str | None = None) -> str:
    now = time.time()
    record = ws.store.create_run(
        RunRecord(
            run_id=uuid.uuid4().hex,
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Running",
            run_type=run_type,
            created_time=now,
            start_time=now,
            parent_id=parent,
            data={"submittedBy": stamp},
        )
    )
    return record.run_id


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("mlflow-holes")
    ws = Workspace.create(root / "ws" / ".runyard")
    store = ws.store
    tokens: dict[str, str] = {}
    tokens["writeA"], rec_a = create_token(store, "write")  # type: ignore[arg-type]
    tokens["writeB"], _rec_b = create_token(store, "write")  # type: ignore[arg-type]
    tokens["read"], _ = create_token(store, "read")  # type: ignore[arg-type]
    exp = store.get_or_create_experiment("holes")
    stamp_a = {"token": rec_a.token_id, "scope": "write"}
    runs = {
        "A": _run(ws, exp, "mlflow.run", stamp_a),
        "B": _run(ws, exp, "mlflow.run", stamp_a),
        "P": _run(ws, exp, "azureml.PipelineRun", stamp_a),
    }
    runs["S"] = _run(ws, exp, "azureml.StepRun", stamp_a, parent=runs["P"])
    for name in ("A", "B", "S"):
        tokens["run" + name], _ = create_token(store, "run", run_id=runs[name])  # type: ignore[arg-type]
    with running_server(
        ws.path, root / "server.log", auth=True, env={"RUNYARD_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT)}
    ) as server:
        s = Setup(ws, server, tokens, runs, exp.id)
        with s.http("writeA") as client:
            assert client.put(f"{PROXY}/runs/{runs['B']}/secret.txt", content=SECRET).status_code == 200
        yield s


def _refused(response: httpx.Response) -> bool:
    return response.status_code in (401, 403) and response.json().get("error_code") in (
        "PERMISSION_DENIED",
        "UNAUTHENTICATED",
    )


# -- run tokens against the workspace and other runs ----------------------------------------------------
def test_run_token_cannot_manage_experiments(setup: Setup) -> None:
    eid = setup.experiment_id
    attempts = [
        ("experiments/create", {"name": "from-a-job"}),
        ("experiments/update", {"experiment_id": eid, "new_name": "hijacked"}),
        ("experiments/delete", {"experiment_id": eid}),
        ("experiments/restore", {"experiment_id": eid}),
        ("experiments/set-experiment-tag", {"experiment_id": eid, "key": "k", "value": "v"}),
    ]
    for path, body in attempts:
        answer = setup.call("runA", "POST", path, body)
        assert _refused(answer), (path, answer.status_code, answer.text)
    assert setup.ws.store.get_experiment_by_id(eid).name == "holes"


def test_run_token_cannot_touch_another_run(setup: Setup) -> None:
    b = setup.runs["B"]
    attempts = [
        ("runs/delete", {"run_id": b}),
        ("runs/restore", {"run_id": b}),
        ("runs/update", {"run_id": b, "run_name": "renamed-by-a"}),
        ("runs/set-tag", {"run_id": b, "key": "mlflow.runName", "value": "x"}),
        ("runs/log-metric", {"run_id": b, "key": "m", "value": 1.0, "timestamp": 1, "step": 0}),
        ("runs/log-batch", {"run_id": b, "params": [{"key": "p", "value": "1"}]}),
    ]
    for path, body in attempts:
        answer = setup.call("runA", "POST", path, body)
        assert _refused(answer), (path, answer.status_code, answer.text)
    record = setup.ws.store.get_run(b)
    assert record.lifecycle_stage == "active" and record.display_name != "renamed-by-a"


def test_run_token_reads_nothing_outside_its_family(setup: Setup) -> None:
    a, b = setup.runs["A"], setup.runs["B"]
    found = setup.call("runA", "POST", "runs/search", {"experiment_ids": [setup.experiment_id]}).json()
    assert {r["info"]["run_id"] for r in found.get("runs", [])} <= {a}
    crafted = {"experiment_ids": [setup.experiment_id], "filter": f"attributes.run_id = '{b}'"}
    assert "runs" not in setup.call("runA", "POST", "runs/search", crafted).json()
    assert _refused(setup.call("runA", "GET", "runs/get", {"run_id": b}))
    assert _refused(setup.call("runA", "GET", "metrics/get-history", {"run_id": b, "metric_key": "m"}))
    bulk = {"run_ids": [a, b], "metric_key": "m"}
    assert _refused(setup.call("runA", "GET", "metrics/get-history-bulk-interval", bulk))


def test_run_token_of_a_step_cannot_create_runs_outside_its_family(setup: Setup) -> None:
    """A nested run under the job's own step run must stay in the job's family (or be refused): a run
    token may not create top-level runs (runs.py `_parent`)."""
    s = setup.runs["S"]
    body = {
        "experiment_id": setup.experiment_id,
        "tags": [{"key": "mlflow.parentRunId", "value": s}],
        "start_time": int(time.time() * 1000),
    }
    answer = setup.call("runS", "POST", "runs/create", body)
    if _refused(answer):
        return
    assert answer.status_code == 200, answer.text
    created = answer.json()["run"]["info"]["run_id"]
    record = setup.ws.store.get_run(created)
    assert record.parent_id == s, f"a run token created top-level run {created} (parent {record.parent_id})"


def test_a_steps_own_token_cannot_finish_its_step_through_mlflow(setup: Setup) -> None:
    """Contract 7 / docs/security.md rule 5: a job's run keeps the status its own process gives it, so
    `mlflow.end_run()` (runs/update FINISHED) from the step's token changes nothing."""
    s = setup.runs["S"]
    body = {"run_id": s, "status": "FINISHED", "end_time": int(time.time() * 1000)}
    answer = setup.call("runS", "POST", "runs/update", body)
    assert answer.status_code in (200, 403), answer.text
    record = setup.ws.store.get_run(s)
    assert record.status == "Running" and record.end_time is None


def test_run_token_cannot_claim_a_logged_model_of_another_run(setup: Setup) -> None:
    body = {"experiment_id": setup.experiment_id, "name": "m", "source_run_id": setup.runs["B"]}
    assert _refused(setup.call("runA", "POST", "logged-models", body))
    no_source = {"experiment_id": setup.experiment_id, "name": "m2"}
    assert _refused(setup.call("runA", "POST", "logged-models", no_source))


def test_run_token_cannot_read_the_model_artifacts_of_another_run(setup: Setup) -> None:
    body = {"experiment_id": setup.experiment_id, "name": "b-model", "source_run_id": setup.runs["B"]}
    made = setup.call("writeA", "POST", "logged-models", body)
    assert made.status_code == 200, made.text
    model_id = made.json()["model"]["info"]["model_id"]
    with setup.http("writeA") as client:
        assert client.put(f"{PROXY}/logged_models/{model_id}/model.pkl", content=SECRET).status_code == 200
    with setup.http("runA") as client:
        got = client.get(f"{PROXY}/logged_models/{model_id}/model.pkl")
        assert got.status_code == 403 and SECRET not in got.content
        assert client.put(f"{PROXY}/logged_models/{model_id}/model.pkl", content=b"x").status_code == 403
        sneaky = client.get(f"{PROXY}/runs/{setup.runs['A']}/../../logged_models/{model_id}/model.pkl")
        assert sneaky.status_code >= 400 and SECRET not in sneaky.content
    assert _refused(setup.call("runA", "GET", f"logged-models/{model_id}"))


def test_run_token_cannot_log_metrics_onto_another_runs_model(setup: Setup) -> None:
    """A metric logged on the job's own run with `model_id` also lands on that model
    (logged_models.record_model_metrics): the model must be of the caller's own run family."""
    body = {"experiment_id": setup.experiment_id, "name": "b-model-2", "source_run_id": setup.runs["B"]}
    model_id = setup.call("writeA", "POST", "logged-models", body).json()["model"]["info"]["model_id"]
    metric = {"key": "planted", "value": 0.99, "timestamp": 1, "step": 0, "model_id": model_id}
    setup.call("runA", "POST", "runs/log-metric", {"run_id": setup.runs["A"], **metric})
    setup.call("runA", "POST", "runs/log-batch", {"run_id": setup.runs["A"], "metrics": [metric]})
    model = setup.call("writeA", "GET", f"logged-models/{model_id}").json()["model"]
    planted = [m for m in model.get("data", {}).get("metrics", []) if m.get("key") == "planted"]
    assert planted == [], f"run A's token wrote metrics onto run B's logged model: {planted}"
    found = setup.call("runA", "POST", "logged-models/search", {"experiment_ids": [setup.experiment_id]})
    assert model_id not in {m["info"]["model_id"] for m in found.json().get("models", [])}


# -- the artifact proxy ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path",
    [
        "runs/{B}/secret.txt",
        "runs/{A}/../{B}/secret.txt",
        "runs/{A}/%2E%2E/{B}/secret.txt",
        "runs%2F{B}%2Fsecret.txt",
        "runs/{A}/..%2F{B}%2Fsecret.txt",
        "runs/{A}/..\\{B}\\secret.txt",
        "runs\\{B}\\secret.txt",
        "/runs/{B}/secret.txt",
    ],
)
def test_proxy_paths_never_reach_another_run(setup: Setup, path: str) -> None:
    rel = path.format(A=setup.runs["A"], B=setup.runs["B"])
    with setup.http("runA") as client:
        got = client.get(f"{PROXY}/{rel}")
        assert got.status_code >= 400 and SECRET not in got.content, (rel, got.status_code)
        put = client.put(f"{PROXY}/{rel}", content=b"overwritten")
        assert put.status_code >= 400, (rel, put.status_code)
        listed = client.get(PROXY, params={"path": rel.rsplit("/", 1)[0].replace("%2F", "/")})
        assert listed.status_code >= 400 or "secret.txt" not in listed.text, rel
    with setup.http("writeA") as client:
        assert client.get(f"{PROXY}/runs/{setup.runs['B']}/secret.txt").content == SECRET


def test_multipart_upload_of_another_caller_is_unreachable(setup: Setup) -> None:
    a = setup.runs["A"]
    with setup.http("runA") as owner:
        created = owner.post(
            f"/api/2.0/mlflow-artifacts/mpu/create/runs/{a}", json={"path": "big.bin", "num_parts": 2}
        )
        assert created.status_code == 200, created.text
        upload_id = created.json()["upload_id"]
    for thief in ("runB", "writeB"):
        with setup.http(thief) as client:
            part = client.put(f"/api/2.0/mlflow-artifacts/mpu/part/{upload_id}/1", content=b"x")
            assert part.status_code == 404, (thief, part.status_code)
            done = client.post(
                f"/api/2.0/mlflow-artifacts/mpu/complete/runs/{setup.runs['B']}",
                json={"path": "big.bin", "upload_id": upload_id, "parts": [{"part_number": 1}]},
            )
            assert done.status_code == 404, (thief, done.status_code)
    with setup.http("runA") as owner:
        # an upload into its own run cannot be completed into another run's folder
        owner.put(f"/api/2.0/mlflow-artifacts/mpu/part/{upload_id}/1", content=b"1")
        owner.put(f"/api/2.0/mlflow-artifacts/mpu/part/{upload_id}/2", content=b"2")
        done = owner.post(
            f"/api/2.0/mlflow-artifacts/mpu/complete/runs/{setup.runs['B']}/secret.txt",
            json={
                "path": "secret.txt",
                "upload_id": upload_id,
                "parts": [{"part_number": 1}, {"part_number": 2}],
            },
        )
        assert done.status_code == 200
    with setup.http("writeA") as client:
        assert client.get(f"{PROXY}/runs/{setup.runs['B']}/secret.txt").content == SECRET
        assert client.get(f"{PROXY}/runs/{a}/big.bin").content == b"12"


def test_multipart_parts_are_held_to_the_file_limit_as_they_arrive(setup: Setup) -> None:
    """num_parts may be 10,000 and each part may reach the per-file limit, and `complete` checks the total
    only after every part is on disk: one caller could park 10,000 x the limit. The server here runs with
    RUNYARD_MAX_UPLOAD_BYTES=UPLOAD_LIMIT; parts that together pass it must be refused as they arrive."""
    with setup.http("runA") as client:
        created = client.post(
            f"/api/2.0/mlflow-artifacts/mpu/create/runs/{setup.runs['A']}",
            json={"path": "huge.bin", "num_parts": 3},
        )
        upload_id = created.json()["upload_id"]
        answers = [
            client.put(f"/api/2.0/mlflow-artifacts/mpu/part/{upload_id}/{n}", content=b"x" * UPLOAD_LIMIT)
            for n in (1, 2, 3)
        ]
        client.post(
            f"/api/2.0/mlflow-artifacts/mpu/abort/runs/{setup.runs['A']}",
            json={"path": "huge.bin", "upload_id": upload_id},
        )
    assert [a.status_code for a in answers][1:] != [200, 200], "3 x the per-file limit was stored"


# -- write tokens and pipeline runs ------------------------------------------------------------------------
def test_write_token_cannot_delete_or_rename_someone_elses_pipeline_step(setup: Setup) -> None:
    """Pipeline and step runs belong to their submitter (server/run_guard.py): another write token may
    not hide them (runs/delete) nor rename them."""
    s = setup.runs["S"]
    renamed = setup.call("writeB", "POST", "runs/update", {"run_id": s, "run_name": "not-yours"})
    assert _refused(renamed), renamed.text
    tagged = setup.call(
        "writeB", "POST", "runs/set-tag", {"run_id": s, "key": "mlflow.runName", "value": "x"}
    )
    assert _refused(tagged), tagged.text
    deleted = setup.call("writeB", "POST", "runs/delete", {"run_id": s})
    assert _refused(deleted), deleted.text
    assert setup.ws.store.get_run(s).lifecycle_stage == "active"


def test_write_token_cannot_delete_the_files_of_someone_elses_pipeline_step(setup: Setup) -> None:
    """runyard's own artifact routes cannot delete; the proxy's DELETE on a pipeline's step run follows
    the owner rule (server/run_guard.py ACTION_KEYS): only the submitter's token."""
    s = setup.runs["S"]
    with setup.http("writeA") as owner:
        assert owner.put(f"{PROXY}/runs/{s}/step-out.txt", content=b"step").status_code == 200
    with setup.http("writeB") as other:
        gone = other.delete(f"{PROXY}/runs/{s}/step-out.txt")
        assert _refused(gone), gone.text
        assert _refused(other.delete(f"{PROXY}/runs/{s}"))
    with setup.http("runS") as own_token:  # the step's own job does not own its pipeline either
        assert _refused(own_token.delete(f"{PROXY}/runs/{s}/step-out.txt"))
    with setup.http("writeA") as owner:
        assert owner.get(f"{PROXY}/runs/{s}/step-out.txt").content == b"step"
        assert owner.delete(f"{PROXY}/runs/{s}/step-out.txt").status_code == 200
        assert owner.get(f"{PROXY}/runs/{s}/step-out.txt").status_code == 404


def test_metrics_naming_an_unknown_model_still_land_on_the_run(setup: Setup) -> None:
    """As on MLflow's server: a model_id that names no model does not fail the metric."""
    a = setup.runs["A"]
    metric = {"key": "orphan", "value": 0.5, "timestamp": 1, "step": 0, "model_id": "m-" + "0" * 32}
    assert setup.call("runA", "POST", "runs/log-metric", {"run_id": a, **metric}).status_code == 200
    run = setup.call("runA", "GET", "runs/get", {"run_id": a}).json()["run"]
    assert {m["key"] for m in run["data"].get("metrics", [])} >= {"orphan"}


def test_experiment_location_cannot_point_into_another_run(setup: Setup) -> None:
    """An experiment whose artifact_location is another run's folder would put every new run's artifacts
    (`<location>/<run id>/artifacts`) inside that run: refused, or new runs stay in their own folder."""
    victim = setup.runs["B"]
    body = {"name": f"squat-{uuid.uuid4().hex[:6]}", "artifact_location": f"mlflow-artifacts:/runs/{victim}"}
    made = setup.call("writeB", "POST", "experiments/create", body)
    if made.status_code == 400:
        return
    assert made.status_code == 200, made.text
    run = setup.call("writeB", "POST", "runs/create", {"experiment_id": made.json()["experiment_id"]}).json()
    uri = run["run"]["info"]["artifact_uri"]
    assert f"runs/{victim}/" not in uri, uri


# -- input bounds ------------------------------------------------------------------------------------------
def test_batch_and_body_limits(setup: Setup) -> None:
    a = setup.runs["A"]
    metrics = [{"key": f"m{i}", "value": 1.0, "timestamp": 1, "step": 0} for i in range(1001)]
    too_many = setup.call("runA", "POST", "runs/log-batch", {"run_id": a, "metrics": metrics})
    assert too_many.status_code == 400 and too_many.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    with setup.http("runA") as client:
        huge = client.post(
            f"{API}/runs/set-tag",
            content=b'{"run_id": "'
            + a.encode()
            + b'", "key": "k", "value": "'
            + b"v" * (65 * 1024 * 1024)
            + b'"}',
            headers={"content-type": "application/json"},
        )
    assert huge.status_code == 413, huge.status_code
    bad_step = setup.call(
        "runA",
        "POST",
        "runs/log-metric",
        {"run_id": a, "key": "m", "value": 1, "timestamp": 1, "step": "NaN"},
    )
    assert bad_step.status_code == 400
    bad_time = setup.call(
        "runA", "POST", "runs/log-metric", {"run_id": a, "key": "m", "value": 1, "timestamp": "NaN"}
    )
    assert bad_time.status_code == 400


@pytest.mark.parametrize(
    "where",
    [
        "tags.t = 'x'' OR ''1''=''1'",
        "params.`p` = '1' OR 1=1 --'",
        "params.`p``; DROP TABLE runs; --` = '1'",
        "attributes.run_name LIKE '%' UNION SELECT * FROM tokens --'",
        'metrics.`m"` > 0',
        "tags.\u2019x\u2019 = 'y'",
        "attributes.status IN ('RUNNING'); DELETE FROM runs; --')",
    ],
)
def test_search_filters_cannot_inject_sql(setup: Setup, where: str) -> None:
    answer = setup.call(
        "writeA", "POST", "runs/search", {"experiment_ids": [setup.experiment_id], "filter": where}
    )
    assert answer.status_code in (200, 400), (where, answer.status_code, answer.text)
    if answer.status_code == 200:
        assert "runs" not in answer.json(), where
    assert setup.ws.store.get_run(setup.runs["B"]).run_id == setup.runs["B"]
    setup.server.check_healthy()


def test_experiments_search_hides_deleted_experiments(setup: Setup) -> None:
    name = f"gone-{uuid.uuid4().hex[:6]}"
    eid = setup.call("writeA", "POST", "experiments/create", {"name": name}).json()["experiment_id"]
    assert setup.call("writeA", "POST", "experiments/delete", {"experiment_id": eid}).status_code == 200
    listed = setup.call("read", "POST", "experiments/search", {"max_results": 1000}).json()
    assert name not in {e["name"] for e in listed.get("experiments", [])}
    filtered = setup.call("read", "POST", "experiments/search", {"filter": f"name = '{name}'"}).json()
    assert "experiments" not in filtered
    assert _refused(setup.call("read", "POST", "experiments/restore", {"experiment_id": eid}))


def test_read_token_writes_nothing(setup: Setup) -> None:
    a = setup.runs["A"]
    for path, body in [
        ("runs/create", {"experiment_id": setup.experiment_id}),
        ("runs/set-tag", {"run_id": a, "key": "k", "value": "v"}),
        ("runs/delete", {"run_id": a}),
        ("experiments/create", {"name": "by-read"}),
    ]:
        assert _refused(setup.call("read", "POST", path, body)), path
    with setup.http("read") as client:
        assert client.put(f"{PROXY}/runs/{a}/r.txt", content=b"r").status_code == 403


# -- jobs of an embedded workspace -------------------------------------------------------------------------
def test_embedded_job_gets_no_tracking_token() -> None:
    found = mlflow_variables("runyard:///ws", "run-1", "exp", None, {})
    assert "MLFLOW_TRACKING_TOKEN" not in found
    assert found["MLFLOW_RUN_ID"] == "run-1"
