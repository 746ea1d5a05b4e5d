"""MLflow's client on an embedded workspace through runyard's tracking-store plugin (`runyard:` URIs):
no server, the same handlers as the server's door, artifacts written straight into the run's folder.

Everything is read back through runyard's own API (Run.get_metrics, get_file_names, ...), so the test
shows that MLflow and runyard see one workspace.
"""

from __future__ import annotations

import importlib.metadata as metadata
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard import Workspace
from runyard.errors import InvalidInputError, NotFoundError

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from runyard.mlflow_api import plugin  # noqa: E402  (imports mlflow)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace.create(tmp_path_factory.mktemp("plugin") / "project" / ".runyard")


@pytest.fixture
def tracking(ws: Workspace) -> Iterator[Workspace]:
    """A notebook's flow: point MLflow at the workspace, log, read back with runyard."""
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    yield ws
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def test_the_uri_names_the_workspace_folder(ws: Workspace) -> None:
    uri = ws.get_mlflow_tracking_uri()
    assert uri == f"runyard:{ws.path}"
    assert plugin.tracking_uri_of(ws.path) == uri
    store = plugin.tracking_store(uri)
    assert store.workspace.path == ws.path
    assert store.context.artifact_uri("runs/abc") == (Path(ws.artifact_root).as_uri() + "/runs/abc")
    # the project folder holding .runyard/ names the same workspace, as Workspace.get takes it
    assert plugin.tracking_store(f"runyard:{ws.path.parent}").workspace.path == ws.path
    # a folder name MLflow would misread is percent-encoded, and decoded back
    assert plugin.tracking_uri_of("/data/my ws#1") == "runyard:/data/my%20ws%231"
    assert plugin.workspace_folder("runyard:/data/my%20ws%231") == Path("/data/my ws#1")
    assert plugin.workspace_folder("runyard:///data/ws") == Path("/data/ws")  # file-URI style
    # what MLflow itself picks for the scheme: the entry point in runyard's metadata
    (entry,) = [e for e in metadata.entry_points(group="mlflow.tracking_store") if e.name == "runyard"]
    assert entry.load() is plugin.tracking_store
    assert isinstance(MlflowClient(uri)._tracking_client.store, plugin.RunyardStore)


def test_malformed_uris_and_other_folders_are_refused(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"relative folder.*runyard:/absolute/path"):
        plugin.tracking_store("runyard:some/where")
    with pytest.raises(InvalidInputError, match=r"names a host.*http://HOST:PORT"):
        plugin.tracking_store(f"runyard://host{ws.path}")
    with pytest.raises(NotFoundError, match=r"is not a runyard workspace folder.*runyard init"):
        plugin.tracking_store(f"runyard:{tmp_path}")
    with pytest.raises(NotFoundError, match="not a runyard workspace folder"):
        MlflowClient(f"runyard:{tmp_path / 'missing'}").get_experiment("0")


def test_fluent_logging_lands_in_the_runyard_run(tracking: Workspace, tmp_path: Path) -> None:
    mlflow.set_experiment("plugin-fluent")
    (tmp_path / "notes.txt").write_text("hello from mlflow\n")
    with mlflow.start_run(run_name="first") as active:
        run_id = active.info.run_id
        mlflow.log_param("lr", 0.1)
        mlflow.log_params({"epochs": 3, "optimizer": "adam"})
        for step, loss in enumerate([1.0, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.log_metrics({"acc": 0.9, "odd": float("nan")}, step=7)
        mlflow.set_tag("team", "blue")
        mlflow.set_tags({"stage": "dev"})
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_text("inside a folder", "texts/a.txt")
        mlflow.log_dict({"k": [1, 2]}, "config.json")
        assert tracking.get_run(run_id).get_status() == "Running"
        assert active.info.artifact_uri == tracking.artifacts.local_path(f"runs/{run_id}").as_uri()

    run = tracking.get_run(run_id)
    assert run.get_status() == "Completed"
    assert run.experiment.name == "plugin-fluent" and run.display_name == "first"
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 0.25] and metrics["acc"] == 0.9 and math.isnan(metrics["odd"])
    assert run.get_properties() == {"lr": "0.1", "epochs": "3", "optimizer": "adam"}
    assert {"team": "blue", "stage": "dev", "mlflow.runName": "first"}.items() <= run.get_tags().items()
    # artifacts are the run's own files, next to what runyard writes there
    assert {"notes.txt", "texts/a.txt", "config.json"} <= set(run.get_file_names())
    assert (
        tracking.artifacts.local_path(f"runs/{run_id}") / "texts" / "a.txt"
    ).read_text() == "inside a folder"
    # and MLflow reads them back the same way
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/notes.txt") == "hello from mlflow\n"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/config.json") == {"k": [1, 2]}
    listed = {f.path for f in MlflowClient().list_artifacts(run_id)}
    assert {"notes.txt", "texts", "config.json"} <= listed

    fetched = mlflow.get_run(run_id)
    assert fetched.info.status == "FINISHED" and fetched.info.run_name == "first"
    assert fetched.data.params == {"lr": "0.1", "epochs": "3", "optimizer": "adam"}
    assert fetched.data.metrics["loss"] == 0.25 and math.isnan(fetched.data.metrics["odd"])


def test_search_history_tags_and_lifecycle(tracking: Workspace) -> None:
    experiment_id = mlflow.set_experiment("plugin-search").experiment_id
    ids = {}
    for name, acc in (("low", 0.2), ("mid", 0.5), ("high", 0.8)):
        with mlflow.start_run(run_name=name) as active:
            mlflow.log_metric("acc", acc)
            mlflow.log_param("kind", name)
            ids[name] = active.info.run_id
    found = mlflow.search_runs(
        [experiment_id], filter_string="metrics.acc > 0.3", order_by=["metrics.acc DESC"]
    )
    assert list(found["run_id"]) == [ids["high"], ids["mid"]]
    assert list(found["params.kind"]) == ["high", "mid"]
    as_list = mlflow.search_runs([experiment_id], filter_string="params.kind = 'low'", output_format="list")
    assert [r.info.run_id for r in as_list] == [ids["low"]]

    client = MlflowClient()
    with mlflow.start_run(run_id=ids["low"]):
        mlflow.log_metric("acc", 0.3, step=1)
    history = client.get_metric_history(ids["low"], "acc")
    assert [(m.step, m.value) for m in history] == [(0, 0.2), (1, 0.3)]

    client.set_tag(ids["mid"], "note", "x")
    client.delete_tag(ids["mid"], "note")
    assert "note" not in tracking.get_run(ids["mid"]).get_tags()

    client.delete_run(ids["mid"])
    assert client.get_run(ids["mid"]).info.lifecycle_stage == "deleted"
    assert set(mlflow.search_runs([experiment_id])["run_id"]) == {ids["low"], ids["high"]}
    client.restore_run(ids["mid"])
    assert len(mlflow.search_runs([experiment_id])) == 3


def test_refusals_are_mlflow_exceptions_with_mlflow_codes(tracking: Workspace) -> None:
    client = MlflowClient()
    with pytest.raises(MlflowException) as missing:
        client.get_run("0123456789abcdef0123456789abcdef")
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "not found" in missing.value.message
    run = client.create_run(mlflow.set_experiment("plugin-refusals").experiment_id)
    client.log_param(run.info.run_id, "p", "1")
    with pytest.raises(MlflowException) as rewrite:
        client.log_param(run.info.run_id, "p", "2")
    assert rewrite.value.error_code == "INVALID_PARAMETER_VALUE"
    client.set_terminated(run.info.run_id)


def test_logged_models_write_into_the_artifact_store(tracking: Workspace, tmp_path: Path) -> None:
    """The logged-model path log_model and autolog take (create, artifacts, finalize, search), without
    a flavor's requirement scan (seconds of package metadata reads that test MLflow, not runyard)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.txt").write_text("1 2 3")
    mlflow.set_experiment("plugin-models")
    client = MlflowClient()
    with mlflow.start_run() as active:
        model = mlflow.initialize_logged_model(name="net", tags={"kind": "toy"})
        client.log_model_artifacts(model.model_id, str(tmp_path / "model"))
        client.finalize_logged_model(model.model_id, "READY")
    folder = tracking.artifacts.local_path(f"logged_models/{model.model_id}")
    assert model.artifact_location == folder.as_uri()
    assert (folder / "weights.txt").read_text() == "1 2 3"
    got = client.get_logged_model(model.model_id)
    assert (got.name, got.source_run_id, got.status.to_int()) == ("net", active.info.run_id, 2)
    assert got.tags["kind"] == "toy"
    found = mlflow.search_logged_models(experiment_ids=[active.info.experiment_id], output_format="list")
    assert [m.model_id for m in found] == [model.model_id]
    listed = client.list_logged_model_artifacts(model.model_id)
    assert [f.path for f in listed] == ["weights.txt"]


def test_an_s3_artifact_root_takes_mlflow_artifacts_straight_to_s3(
    s3_bucket: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's artifact URI is its folder under the s3:// root, so MLflow's S3 repository writes it
    and runyard's artifact store lists it (both find moto through AWS_ENDPOINT_URL)."""
    endpoint, bucket = s3_bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    ws = Workspace.create(tmp_path / ".runyard", artifact_root=f"s3://{bucket}/art")
    mlflow.set_tracking_uri(ws.get_mlflow_tracking_uri())
    try:
        mlflow.set_experiment("plugin-s3")  # not the previous test's experiment, of another workspace
        with mlflow.start_run() as active:
            mlflow.log_text("on s3", "texts/a.txt")
    finally:
        mlflow.set_tracking_uri(None)
    run_id = active.info.run_id
    assert active.info.artifact_uri == f"s3://{bucket}/art/runs/{run_id}"
    assert ws.get_run(run_id).get_file_names() == ["texts/a.txt"]
    assert ws.artifacts.read_bytes(f"runs/{run_id}/texts/a.txt") == b"on s3"


def test_the_environment_layer_carries_the_entry_point(ws: Workspace) -> None:
    """Jobs in built environments import runyard through a .pth layer: MLflow finds the plugin there by
    scanning that folder for runyard's dist-info (importlib.metadata reads sys.path, not the venv)."""
    from runyard.environments.interpreters import current_version
    from runyard.environments.layer import layer_folder

    for python in (current_version(), "3.0"):  # the same-minor layer and the runyard-only one
        folder = layer_folder(python)
        found = [
            e
            for dist in metadata.distributions(path=[str(folder)])
            for e in dist.entry_points
            if e.group == "mlflow.tracking_store"
        ]
        assert [(e.name, e.value) for e in found] == [("runyard", "runyard.mlflow_api.plugin:tracking_store")]


def test_every_tracking_call_of_the_rest_store_has_a_handler() -> None:
    """Each experiments/runs/metrics/logged-models call MLflow's RestStore makes (read from its source,
    so a newer MLflow's additions are checked too) ends in one of runyard's handlers, in process."""
    import inspect
    import re

    from mlflow.store.tracking.rest_store import RestStore

    from runyard.mlflow_api.dispatch import find

    called = set(re.findall(r"_call_endpoint\(\s*(\w+)", inspect.getsource(RestStore)))
    checked = []
    for api, (endpoint, method) in RestStore._METHOD_TO_INFO.items():
        relative = endpoint.removeprefix(plugin.API_PREFIX)
        if api.__name__ not in called or relative.split("/")[0] not in TRACKING_GROUPS:
            continue
        relative = relative.replace("{model_id}", "m-1").replace("{tag_key}", "k")
        assert find(method, relative) is not None, f"{api.__name__}: {method} {endpoint} has no handler"
        checked.append(api.__name__)
    assert {"CreateRun", "SearchRuns", "LogBatch", "GetMetricHistory", "CreateLoggedModel"} <= set(checked)


#: The route groups issue 16 serves (traces, datasets, scorers, prompts... are other MLflow features).
TRACKING_GROUPS = {"experiments", "runs", "metrics", "logged-models"}
