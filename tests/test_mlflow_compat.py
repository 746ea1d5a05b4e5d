"""The real `mlflow` client against a real `runyard server`; values are read back through runyard's API.

params → run properties, tags → tags, metrics → scalar metrics (steps kept), MLflow statuses → runyard's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from runyard import Experiment, Workspace
from server_process import ServerProcess, running_server

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("mlflow")
    ws = Workspace.create(root / "ws" / ".runyard")
    with running_server(ws.path, root / "server.log") as server:
        yield server


@pytest.fixture
def tracking(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """mlflow pointed at the server; yields the server's workspace opened locally (runyard's own API)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a 5xx fails at once instead of backing off
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    mlflow.set_tracking_uri(server.url)
    yield Workspace.get(server.workspace)
    while mlflow.active_run() is not None:
        mlflow.end_run()
    server.check_healthy()


def test_fluent_run_lands_in_runyard(tracking: Workspace) -> None:
    mlflow.set_experiment("mlflow-compat")
    with mlflow.start_run(run_name="first") as active:
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"epochs": 3, "optimizer": "adam"})
        for step, loss in enumerate([1.0, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.8}, step=7)
        mlflow.set_tag("team", "blue")
        mlflow.set_tags({"stage": "dev"})
        run_id = active.info.run_id
        assert tracking.get_run(run_id).get_status() == "Running"

    run = tracking.get_run(run_id)
    assert run.get_status() == "Completed"
    assert run.experiment.name == "mlflow-compat"
    assert run.type == "mlflow.run"
    assert run.display_name == "first"
    assert run.get_metrics() == {"loss": [1.0, 0.5, 0.25], "acc": 0.9, "f1": 0.8}
    assert run.get_properties() == {"lr": "0.1", "epochs": "3", "optimizer": "adam"}
    tags = run.get_tags()
    assert tags["team"] == "blue" and tags["stage"] == "dev"
    assert tags["mlflow.runName"] == "first"
    rows = tracking.store.get_metric_rows([run_id])
    assert [(r.name, r.kind, r.step) for r in rows] == [
        ("loss", "scalar", 0),
        ("loss", "scalar", 1),
        ("loss", "scalar", 2),
        ("acc", "scalar", 7),
        ("f1", "scalar", 7),
    ]
    assert all(abs(r.timestamp - time.time()) < 600 for r in rows)  # ms from mlflow became seconds
    assert "mlflow-compat" in tracking.experiments


def test_search_runs_and_filters(tracking: Workspace) -> None:
    experiment_id = mlflow.set_experiment("mlflow-search").experiment_id
    ids = {}
    for name, lr, acc in (("slow", "0.01", 0.95), ("fast", "0.1", 0.4)):
        with mlflow.start_run(run_name=name) as active:
            mlflow.log_param("lr", lr)
            mlflow.log_metric("acc", acc)
            mlflow.set_tag("speed", name)
            ids[name] = active.info.run_id

    def found(**kwargs: object) -> set[str]:
        runs = mlflow.search_runs(experiment_names=["mlflow-search"], output_format="list", **kwargs)
        return {r.info.run_id for r in runs}

    assert found() == set(ids.values())
    assert found(filter_string="metrics.acc > 0.5") == {ids["slow"]}
    assert found(filter_string="params.lr = '0.1'") == {ids["fast"]}
    assert found(filter_string="tags.speed = 'slow' AND metrics.acc >= 0.9") == {ids["slow"]}
    assert found(filter_string="attributes.status = 'FINISHED'") == set(ids.values())
    by_id = {r.info.run_id: r for r in MlflowClient().search_runs([experiment_id])}
    assert by_id[ids["fast"]].data.params == {"lr": "0.1"}
    assert by_id[ids["fast"]].data.metrics == {"acc": 0.4}
    assert by_id[ids["fast"]].data.tags["speed"] == "fast"
    # and runyard sees the same two runs in that experiment
    assert {r.id for r in tracking.iter_runs(experiment_name="mlflow-search")} == set(ids.values())


def test_metric_history(tracking: Workspace) -> None:
    mlflow.set_experiment("mlflow-history")
    with mlflow.start_run() as active:
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step * 10)
    history = MlflowClient().get_metric_history(active.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s * 10, 1.0 / (s + 1)) for s in range(5)]
    assert tracking.get_run(active.info.run_id).get_metrics()["loss"] == [1.0 / (s + 1) for s in range(5)]
    assert MlflowClient().get_metric_history(active.info.run_id, "never-logged") == []


def test_log_batch_and_client_api(tracking: Workspace) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment("mlflow-client")
    with pytest.raises(MlflowException, match="already exists"):
        client.create_experiment("mlflow-client")
    assert client.get_experiment_by_name("mlflow-client").experiment_id == experiment_id
    run = client.create_run(experiment_id, run_name="batched")
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric("m", float(i), now, i) for i in range(50)],
        params=[Param("p", "1")],
        tags=[RunTag("t", "x")],
    )
    client.set_terminated(run.info.run_id, status="KILLED")
    got = tracking.get_run(run.info.run_id)
    assert got.get_metrics()["m"] == [float(i) for i in range(50)]
    assert got.get_properties() == {"p": "1"} and got.get_tags()["t"] == "x"
    assert got.get_status() == "Canceled"
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_failed_run_and_params_are_write_once(tracking: Workspace) -> None:
    mlflow.set_experiment("mlflow-failures")
    with mlflow.start_run() as active:
        mlflow.log_param("lr", 0.1)
        mlflow.log_param("lr", 0.1)  # the same value again is fine
        with pytest.raises(MlflowException, match=r"INVALID_PARAMETER_VALUE|Changing param"):
            mlflow.log_param("lr", 0.2)
    mlflow.start_run()
    failed = mlflow.active_run().info.run_id  # type: ignore[union-attr]
    mlflow.end_run(status="FAILED")
    assert tracking.get_run(active.info.run_id).get_properties() == {"lr": "0.1"}
    assert tracking.get_run(failed).get_status() == "Failed"
    assert MlflowClient().get_run(failed).info.status == "FAILED"
    with pytest.raises(MlflowException, match=r"RESOURCE_DOES_NOT_EXIST|not found"):
        MlflowClient().get_run("no-such-run-id")


def test_runyard_runs_are_visible_to_mlflow(tracking: Workspace) -> None:
    run = Experiment(tracking, "native").start_logging()
    run.log("accuracy", 0.75)
    run.log("loss", 0.5)
    run.log("loss", 0.25)
    run.tag("owner", "me")
    run.add_properties({"seed": "7"})
    run.complete()
    seen = MlflowClient().get_run(run.id)
    assert seen.data.metrics == {"accuracy": 0.75, "loss": 0.25}
    assert seen.data.params == {"seed": "7"}
    assert seen.data.tags["owner"] == "me"
    assert seen.info.status == "FINISHED"
    assert [m.value for m in MlflowClient().get_metric_history(run.id, "loss")] == [0.5, 0.25]
