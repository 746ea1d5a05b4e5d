"""MLflow experiments through the real `mlflow` client (and its `mlflow experiments` CLI) against one
real `runyard server --auth`: create with an artifact location and tags, tags set and removed, rename,
delete and restore (which take the experiment's runs along, as in MLflow), in MLflow's wording, and
what read and run tokens may not do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner

from mlflow_served import Served, refused, served_with_tokens, token_clients
from runyard.server.auth import create_token

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.experiments import commands as experiments_cli  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_with_tokens(tmp_path_factory, "mlflow-experiments") as served:
        yield served


@pytest.fixture
def client(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], MlflowClient]]:
    yield from token_clients(served, monkeypatch)


def test_create_with_artifact_location_and_tags(client: Callable[[str], MlflowClient]) -> None:
    c = client("write")
    exp_id = c.create_experiment("exp-create", artifact_location="s3://bucket/place", tags={"team": "blue"})
    exp = c.get_experiment(exp_id)
    assert (exp.name, exp.lifecycle_stage, exp.artifact_location) == (
        "exp-create",
        "active",
        "s3://bucket/place",
    )
    assert exp.tags == {"team": "blue"}
    assert exp.last_update_time >= exp.creation_time > 0
    assert c.get_experiment_by_name("exp-create").experiment_id == exp_id
    run = c.create_run(exp_id)
    assert run.info.artifact_uri == f"s3://bucket/place/{run.info.run_id}/artifacts"
    plain = c.create_run(c.create_experiment("exp-plain"))
    assert plain.info.artifact_uri == f"mlflow-artifacts:/runs/{plain.info.run_id}"
    assert refused(lambda: c.create_experiment("exp-create"), "RESOURCE_ALREADY_EXISTS") == (
        "Experiment(name=exp-create) already exists."
    )
    assert c.get_experiment_by_name("no-such-experiment") is None
    assert refused(lambda: c.get_experiment("nope"), "RESOURCE_DOES_NOT_EXIST") == (
        "No Experiment with id=nope exists"
    )


def test_experiment_tags(client: Callable[[str], MlflowClient]) -> None:
    c = client("write")
    exp_id = c.create_experiment("exp-tags")
    before = c.get_experiment(exp_id).last_update_time
    c.set_experiment_tag(exp_id, "stage", "dev")
    c.set_experiment_tag(exp_id, "stage", "prod")
    exp = c.get_experiment(exp_id)
    assert exp.tags == {"stage": "prod"} and exp.last_update_time >= before
    c.delete_experiment_tag(exp_id, "stage")
    assert c.get_experiment(exp_id).tags == {}
    assert refused(lambda: c.delete_experiment_tag(exp_id, "stage"), "RESOURCE_DOES_NOT_EXIST") == (
        f"No tag with name: stage in experiment with id {exp_id}"
    )


def test_rename_delete_restore_take_the_runs_along(
    served: Served, client: Callable[[str], MlflowClient]
) -> None:
    c = client("write")
    exp_id = c.create_experiment("exp-life")
    run_id = c.create_run(exp_id).info.run_id
    c.rename_experiment(exp_id, "exp-life-renamed")
    assert c.get_experiment(exp_id).name == "exp-life-renamed"
    c.create_experiment("exp-taken")
    refused(lambda: c.rename_experiment(exp_id, "exp-taken"), "RESOURCE_ALREADY_EXISTS")
    c.delete_experiment(exp_id)
    assert c.get_experiment(exp_id).lifecycle_stage == "deleted"
    assert c.get_run(run_id).info.lifecycle_stage == "deleted"
    assert served.store.get_run(run_id).deleted_time is not None
    assert refused(lambda: c.create_run(exp_id), "INVALID_PARAMETER_VALUE") == (
        f"The experiment {exp_id} must be in the 'active' state. Current state is deleted."
    )
    assert refused(lambda: c.rename_experiment(exp_id, "x"), "INVALID_STATE") == (
        "Cannot rename a non-active experiment."
    )
    c.restore_experiment(exp_id)
    assert c.get_experiment(exp_id).lifecycle_stage == "active"
    assert c.get_run(run_id).info.lifecycle_stage == "active"
    refused(lambda: c.restore_experiment(exp_id), "RESOURCE_DOES_NOT_EXIST")  # only a deleted one restores


def test_the_mlflow_experiments_cli(client: Callable[[str], MlflowClient]) -> None:
    c = client("write")
    exp_id = c.create_experiment("exp-cli")
    cli = CliRunner()
    for args in (
        ["rename", "--experiment-id", exp_id, "--new-name", "exp-cli-2"],
        ["delete", "--experiment-id", exp_id],
    ):
        result = cli.invoke(experiments_cli, args)
        assert result.exit_code == 0, result.output
    exp = c.get_experiment(exp_id)
    assert (exp.name, exp.lifecycle_stage) == ("exp-cli-2", "deleted")
    result = cli.invoke(experiments_cli, ["restore", "--experiment-id", exp_id])
    assert result.exit_code == 0, result.output
    assert c.get_experiment(exp_id).lifecycle_stage == "active"


def test_tokens_keep_their_scope(served: Served, client: Callable[[str], MlflowClient]) -> None:
    exp_id = client("write").create_experiment("exp-tokens")
    run_id = client("write").create_run(exp_id).info.run_id
    reader = client("read")
    assert reader.get_experiment(exp_id).name == "exp-tokens"
    refused(lambda: reader.delete_experiment(exp_id), "PERMISSION_DENIED")
    refused(lambda: reader.rename_experiment(exp_id, "stolen"), "PERMISSION_DENIED")
    refused(lambda: reader.set_experiment_tag(exp_id, "k", "v"), "PERMISSION_DENIED")
    refused(lambda: reader.create_experiment("exp-by-reader"), "PERMISSION_DENIED")
    served.tokens["run"] = create_token(served.store, "run", run_id=run_id)[0]
    job = client("run")
    refused(lambda: job.create_experiment("exp-by-job"), "PERMISSION_DENIED")
    refused(lambda: job.delete_experiment(exp_id), "PERMISSION_DENIED")
    assert client("write").get_experiment(exp_id).lifecycle_stage == "active"
