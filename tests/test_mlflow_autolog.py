"""`mlflow.sklearn.autolog()` with its defaults against a real `runyard server`, and MLflow 3's logged
models, run inputs and outputs through the real `mlflow` client.

Why autolog used to log no metrics: MLflow 3's autolog logs the fitted model first (logged-models
routes, then the model's files through the artifact proxy) and the training metrics after it, with the
new model's id. The model step failed on the missing routes, so the metrics were never sent. Now the
model, its files, the run's metrics and params, and the run's outputs all land, and the model loads
back by `runs:/<id>/model` and by `models:/<model id>`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from runyard import Experiment, Workspace
from runyard.mlflow_api.caller import LocalCaller
from runyard.mlflow_api.dispatch import MlflowContext
from runyard.mlflow_api.logged_models import record_model_metrics
from runyard.store import SqlStore
from runyard.store.sql_mlflow_models import LoggedModelNotFound, LoggedModelRecord
from server_process import ServerProcess, running_server

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import LoggedModelOutput  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

X = np.array([[1.0], [2.0], [3.0], [4.0]])
Y = np.array([2.0, 4.0, 6.1, 8.0])


@dataclass
class Autologged:
    server: ServerProcess
    ws: Workspace
    run_id: str
    predictions: np.ndarray


@pytest.fixture(scope="module")
def autologged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Autologged]:
    """One server, one autologged fit shared by the tests of this file."""
    root = tmp_path_factory.mktemp("mlflow-autolog")
    ws = Workspace.create(root / "ws" / ".runyard")
    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT")
    }
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    # MLflow infers a model's pip requirements in a subprocess that imports mlflow and sklearn again
    # (~15 s on a busy machine); a short bound makes it fall back to the flavor's default list. It is
    # client-side work that never reaches the server.
    os.environ["MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT"] = "1"
    try:
        with running_server(ws.path, root / "server.log") as server:
            mlflow.set_tracking_uri(server.url)
            mlflow.sklearn.autolog()  # defaults: params, metrics, the model, datasets
            try:
                with mlflow.start_run() as active:
                    model = LinearRegression().fit(X, Y)
            finally:
                mlflow.sklearn.autolog(disable=True)
            yield Autologged(server, Workspace.get(ws.path), active.info.run_id, model.predict(X))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _model_of(run_id: str) -> str:
    outputs = mlflow.get_run(run_id).outputs
    assert outputs is not None and len(outputs.model_outputs) == 1
    return outputs.model_outputs[0].model_id


def test_autolog_records_params_metrics_and_model(autologged: Autologged) -> None:
    run = mlflow.get_run(autologged.run_id)
    assert run.info.status == "FINISHED"
    assert {"training_score", "training_r2_score", "training_mean_squared_error"} <= set(run.data.metrics)
    assert run.data.metrics["training_score"] == pytest.approx(0.99965, abs=1e-4)
    assert run.data.params["fit_intercept"] == "True"
    # the training set is recorded as the run's input
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["dataset"]

    model = MlflowClient().get_logged_model(_model_of(autologged.run_id))
    assert (model.name, model.source_run_id, str(model.status)) == ("model", autologged.run_id, "READY")
    assert model.artifact_location == f"mlflow-artifacts:/logged_models/{model.model_id}"
    assert model.params["fit_intercept"] == "True"
    # the model's files are in the workspace's artifact store, next to the runs
    assert autologged.ws.artifacts.exists(f"logged_models/{model.model_id}/MLmodel")
    assert autologged.ws.artifacts.exists(f"logged_models/{model.model_id}/model.pkl")
    # and the metrics are runyard metrics of the run
    assert autologged.ws.get_run(autologged.run_id).get_metrics()["training_score"] == pytest.approx(
        run.data.metrics["training_score"]
    )


def test_model_loads_back_by_run_and_by_model_id(autologged: Autologged) -> None:
    by_run = mlflow.sklearn.load_model(f"runs:/{autologged.run_id}/model")
    np.testing.assert_allclose(by_run.predict(X), autologged.predictions)
    by_id = mlflow.pyfunc.load_model(f"models:/{_model_of(autologged.run_id)}")
    np.testing.assert_allclose(by_id.predict(X), autologged.predictions)


def test_training_metrics_show_on_the_logged_model(autologged: Autologged) -> None:
    model = MlflowClient().get_logged_model(_model_of(autologged.run_id))
    assert {"training_score", "training_r2_score"} <= {m.key for m in model.metrics or []}
    assert all(m.dataset_name == "dataset" and m.run_id == autologged.run_id for m in model.metrics or [])


def test_metrics_logged_with_a_model_id_are_recorded_on_it(autologged: Autologged) -> None:
    """record_model_metrics (what the metric handlers call for metrics carrying a model_id)."""
    client = MlflowClient()
    run_id = client.create_run("0").info.run_id
    model = client.create_logged_model("0", name="scored", source_run_id=run_id)
    ctx = MlflowContext(autologged.ws.store, LocalCaller(), lambda folder: f"mlflow-artifacts:/{folder}")  # type: ignore[arg-type]
    sent = {
        "key": "acc",
        "value": 0.75,
        "timestamp": 1_700_000_000_000,
        "step": 2,
        "model_id": model.model_id,
    }
    record_model_metrics(
        ctx,
        run_id,
        [{**sent, "dataset_name": "eval", "dataset_digest": "d1"}, {"key": "plain", "value": 1.0}],
    )
    record_model_metrics(
        ctx, run_id, [{**sent, "dataset_name": "eval", "dataset_digest": "d1"}]
    )  # resent: kept once
    metrics = client.get_logged_model(model.model_id).metrics
    assert [(m.key, m.value, m.step, m.dataset_name, m.run_id) for m in metrics or []] == [
        ("acc", 0.75, 2, "eval", run_id)
    ]
    found = client.search_logged_models(["0"], filter_string="metrics.acc > 0.7 AND name = 'scored'")
    assert [m.model_id for m in found] == [model.model_id]
    on_other = client.search_logged_models(
        ["0"], filter_string="metrics.acc > 0.7", datasets=[{"dataset_name": "other"}]
    )
    assert on_other == []
    record_model_metrics(ctx, run_id, [{**sent, "key": "loss", "value": float("nan")}])  # JSON-safe
    loss = [m for m in client.get_logged_model(model.model_id).metrics or [] if m.key == "loss"]
    assert len(loss) == 1 and np.isnan(loss[0].value)


def test_logged_model_lifecycle_tags_params_and_search(autologged: Autologged) -> None:
    client = MlflowClient()
    exp_id = mlflow.set_experiment("logged-models").experiment_id
    run_id = client.create_run(exp_id).info.run_id
    made = [
        client.create_logged_model(
            exp_id, name=name, source_run_id=run_id, tags={"team": team}, params={"lr": lr}
        )
        for name, team, lr in [("alpha", "red", "0.1"), ("beta", "blue", "0.2"), ("gamma", "red", "0.3")]
    ]
    assert all(str(m.status) == "PENDING" for m in made)
    alpha = made[0].model_id
    client.set_logged_model_tags(alpha, {"stage": "dev"})
    client.delete_logged_model_tag(alpha, "team")
    client.log_model_params(alpha, {"epochs": "5"})
    assert str(client.finalize_logged_model(alpha, "READY").status) == "READY"
    got = client.get_logged_model(alpha)
    assert got.tags == {"stage": "dev"} and got.params == {"lr": "0.1", "epochs": "5"}
    assert got.experiment_id == exp_id and got.source_run_id == run_id

    reds = client.search_logged_models([exp_id], filter_string="tags.team = 'red'")
    assert [m.name for m in reds] == ["gamma"]
    by_name = client.search_logged_models([exp_id], order_by=[{"field_name": "name", "ascending": False}])
    assert [m.name for m in by_name] == ["gamma", "beta", "alpha"]
    ready = client.search_logged_models([exp_id], filter_string="status = 'READY' AND params.lr LIKE '0.%'")
    assert [m.name for m in ready] == ["alpha"]
    first = client.search_logged_models([exp_id], max_results=2, order_by=[{"field_name": "name"}])
    rest = client.search_logged_models(
        [exp_id], max_results=2, order_by=[{"field_name": "name"}], page_token=first.token
    )
    assert [m.name for m in first] + [m.name for m in rest] == [
        "alpha",
        "beta",
        "gamma",
    ] and rest.token is None
    with pytest.raises(MlflowException, match="Invalid logged model search key 'colour'"):
        client.search_logged_models([exp_id], filter_string="colour = 'red'")

    with pytest.raises(MlflowException) as no_tag:
        client.delete_logged_model_tag(alpha, "team")
    assert no_tag.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert str(no_tag.value).endswith(f"No tag with key 'team' found for model with ID '{alpha}'.")
    client.delete_logged_model(made[1].model_id)
    with pytest.raises(MlflowException) as gone:
        client.get_logged_model(made[1].model_id)
    assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert f"Logged model with ID '{made[1].model_id}' not found." in str(gone.value)
    assert [m.name for m in client.search_logged_models([exp_id], order_by=[{"field_name": "name"}])] == [
        "alpha",
        "gamma",
    ]


def test_run_inputs_and_outputs(autologged: Autologged) -> None:
    client = MlflowClient()
    mlflow.set_experiment("Default")
    with mlflow.start_run() as active:
        train = mlflow.data.from_numpy(X, targets=Y, name="train")
        mlflow.log_input(train, context="training")
        mlflow.log_input(train, context="training")  # the same dataset is recorded once
        model = client.create_logged_model("0", name="out", source_run_id=active.info.run_id)
        client.log_outputs(active.info.run_id, [LoggedModelOutput(model.model_id, step=3)])
    run = mlflow.get_run(active.info.run_id)
    inputs = run.inputs.dataset_inputs
    assert [(d.dataset.name, d.dataset.digest) for d in inputs] == [("train", train.digest)]
    assert {t.key: t.value for t in inputs[0].tags}["mlflow.data.context"] == "training"
    assert [(o.model_id, o.step) for o in run.outputs.model_outputs] == [(model.model_id, 3)]


def test_legacy_log_model_history_tag(autologged: Autologged) -> None:
    """runs/log-model: the pre-3.0 `mlflow.log-model.history` tag, one entry per call."""
    from mlflow.models import Model

    client = MlflowClient()
    run_id = client.create_run("0").info.run_id
    for path in ("first", "second"):
        client._record_logged_model(
            run_id, Model(artifact_path=path, run_id=run_id, flavors={"python_function": {}})
        )
    history = json.loads(mlflow.get_run(run_id).data.tags["mlflow.log-model.history"])
    assert [(h["artifact_path"], h["run_id"]) for h in history] == [("first", run_id), ("second", run_id)]


def test_logged_model_store_on_each_database(workspace: Workspace) -> None:
    """The store's half, on SQLite and PostgreSQL: JSON data merged in one transaction, metrics kept
    once, soft delete, newest-first listing, run input lists without duplicates."""
    store = workspace.store
    assert isinstance(store, SqlStore)
    exp = store.get_or_create_experiment("models")
    run = Experiment(workspace, "models").start_logging()
    now = time.time()
    for i, model_id in enumerate(["m-a", "m-b"]):
        store.create_logged_model(
            LoggedModelRecord(
                model_id, exp.id, f"n{i}", "PENDING", f"x:/{model_id}", now + i, now + i, run.id
            )
        )
    store.update_logged_model("m-a", tags={"k": "v", "gone": "1"}, params={"p": "1"})
    store.update_logged_model("m-a", remove_tags=["gone"], status="READY", status_message="ok")
    metric = {"key": "acc", "value": 0.5, "timestamp": 1, "step": 0, "run_id": run.id}
    store.add_logged_model_metrics("m-a", [metric, metric])
    store.add_logged_model_metrics("m-missing", [metric])  # skipped: no error
    got = store.get_logged_model("m-a")
    assert (got.status, got.tags, got.params, got.data["status_message"]) == (
        "READY",
        {"k": "v"},
        {"p": "1"},
        "ok",
    )
    assert got.metrics == [{**metric, "model_id": "m-a"}]
    assert [m.model_id for m in store.list_logged_models([exp.id])] == ["m-b", "m-a"]
    store.update_logged_model("m-b", lifecycle_stage="deleted")
    with pytest.raises(LoggedModelNotFound, match="Logged model with ID 'm-b' not found"):
        store.get_logged_model("m-b")
    assert store.get_logged_model("m-b", allow_deleted=True).lifecycle_stage == "deleted"
    assert [m.model_id for m in store.list_logged_models([exp.id], source_run_id=run.id)] == ["m-a"]
    item = {"dataset": {"name": "d", "digest": "1"}, "tags": []}
    store.append_run_data_items(run.id, "mlflowInputs", [item, item], ("dataset.name", "dataset.digest"))
    store.append_run_data_items(run.id, "mlflowInputs", [item], ("dataset.name", "dataset.digest"))
    assert store.get_run(run.id).data["mlflowInputs"] == [item]
