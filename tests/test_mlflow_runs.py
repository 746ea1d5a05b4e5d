"""MLflow runs through the real `mlflow` client against one real `runyard server --auth`: generated
names, user_id, delete/restore, end_time and resuming a finished run, MLflow's refusals (missing tags,
duplicate batch keys, param changes, limits) in MLflow's wording, job runs that MLflow cannot end, and
what a read token and a job's run token may not do.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest

from mlflow_served import Served, refused, served_with_tokens, token_clients
from runyard.server.auth import create_token
from runyard.store import RunRecord

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Param, RunTag  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_with_tokens(tmp_path_factory, "mlflow-runs") as served:
        yield served


@pytest.fixture
def client(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], MlflowClient]]:
    yield from token_clients(served, monkeypatch)


def test_a_run_without_a_name_gets_one_like_mlflow_gives(client: Callable[[str], MlflowClient]) -> None:
    c = client("write")
    exp = c.create_experiment("runs-names")
    run = c.create_run(exp, tags={"mlflow.user": "alice"})
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{1,4}", run.info.run_name), run.info.run_name
    assert run.data.tags["mlflow.runName"] == run.info.run_name
    assert run.info.user_id == "alice"
    named = c.create_run(exp, run_name="given")
    assert (named.info.run_name, named.data.tags["mlflow.runName"]) == ("given", "given")
    message = refused(
        lambda: c.create_run(exp, run_name="a", tags={"mlflow.runName": "b"}), "INVALID_PARAMETER_VALUE"
    )
    assert "(run_name='a', mlflow.runName='b')" in message


def test_delete_and_restore_a_run(served: Served, client: Callable[[str], MlflowClient]) -> None:
    c = client("write")
    run_id = c.create_run(c.create_experiment("runs-delete")).info.run_id
    c.delete_run(run_id)
    assert c.get_run(run_id).info.lifecycle_stage == "deleted"
    deleted = served.store.get_run(run_id)
    assert deleted.lifecycle_stage == "deleted" and deleted.deleted_time is not None
    message = refused(lambda: c.log_param(run_id, "lr", "0.1"), "INVALID_PARAMETER_VALUE")
    assert f"The run {run_id} must be in the 'active' state. Current state is deleted." in message
    c.restore_run(run_id)
    restored = served.store.get_run(run_id)
    assert (restored.lifecycle_stage, restored.deleted_time) == ("active", None)
    c.log_param(run_id, "lr", "0.1")
    assert refused(lambda: c.delete_run("no-such-run"), "RESOURCE_DOES_NOT_EXIST") == (
        "Run with id=no-such-run not found"
    )


def test_end_time_and_resuming_a_finished_run(served: Served, client: Callable[[str], MlflowClient]) -> None:
    client("write")
    mlflow.set_experiment("runs-resume")
    with mlflow.start_run() as active:
        run_id = active.info.run_id
    end = int(time.time() * 1000) + 5000
    MlflowClient().set_terminated(run_id, "FINISHED", end_time=end)
    assert MlflowClient().get_run(run_id).info.end_time == end
    assert served.store.get_run(run_id).status == "Completed"
    with mlflow.start_run(run_id=run_id):  # MLflow resumes a finished run
        assert MlflowClient().get_run(run_id).info.status == "RUNNING"
        assert served.store.get_run(run_id).status == "Running"
        mlflow.log_metric("after", 1.0)
    info = MlflowClient().get_run(run_id).info
    assert info.status == "FINISHED" and info.end_time is not None


def test_mlflow_cannot_end_a_job_run(served: Served, client: Callable[[str], MlflowClient]) -> None:
    c = client("write")
    exp = served.store.get_or_create_experiment("runs-job")
    job = served.store.create_run(
        RunRecord(
            run_id=f"job_{int(time.time() * 1e6)}",
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Running",
            run_type="azureml.scriptrun",
            created_time=time.time(),
            start_time=time.time(),
        )
    )
    c.set_terminated(job.run_id, "FINISHED")
    assert c.get_run(job.run_id).info.status == "RUNNING"
    assert served.store.get_run(job.run_id).status == "Running"
    c.set_tag(job.run_id, "note", "tags still work")
    assert served.store.get_tags(job.run_id)["note"] == "tags still work"


def test_refusals_use_mlflow_wording(client: Callable[[str], MlflowClient]) -> None:
    c = client("write")
    run_id = c.create_run(c.create_experiment("runs-refusals")).info.run_id
    assert refused(lambda: c.delete_tag(run_id, "nope"), "RESOURCE_DOES_NOT_EXIST") == (
        f"No tag with name: nope in run with id {run_id}"
    )
    message = refused(
        lambda: c.log_batch(run_id, params=[Param("a", "1"), Param("a", "2")]), "INVALID_PARAMETER_VALUE"
    )
    assert "Duplicate parameter keys have been submitted: ['a']." in message
    c.log_batch(run_id, tags=[RunTag("t", "1"), RunTag("t", "2")])  # a repeated tag keeps its last value
    assert c.get_run(run_id).data.tags["t"] == "2"
    c.log_param(run_id, "p", "1")
    assert (
        f"Changing param values is not allowed. Param with key='p' was already logged with value='1' for "
        f"run ID='{run_id}'. Attempted logging new value '2'."
    ) in refused(lambda: c.log_param(run_id, "p", "2"), "INVALID_PARAMETER_VALUE")
    assert "Params were already logged=" in refused(
        lambda: c.log_batch(run_id, params=[Param("p", "3")]), "INVALID_PARAMETER_VALUE"
    )
    assert "'Param key' exceeds the maximum length of 250 characters" in refused(
        lambda: c.log_param(run_id, "k" * 251, "1"), "INVALID_PARAMETER_VALUE"
    )
    assert "Names may only contain alphanumerics" in refused(
        lambda: c.set_tag(run_id, "bad*key", "1"), "INVALID_PARAMETER_VALUE"
    )
    c.log_param(run_id, "long", "x" * 7000)  # MLflow's server cuts a long value to its limit
    assert c.get_run(run_id).data.params["long"] == "x" * 6000


def test_tokens_keep_their_scope(served: Served, client: Callable[[str], MlflowClient]) -> None:
    writer = client("write")
    exp = writer.create_experiment("runs-tokens")
    mine = writer.create_run(exp).info.run_id
    other = writer.create_run(exp).info.run_id
    reader = client("read")
    assert reader.get_run(mine).info.run_id == mine
    refused(lambda: reader.delete_run(mine), "PERMISSION_DENIED")
    refused(lambda: reader.set_tag(mine, "k", "v"), "PERMISSION_DENIED")
    served.tokens["run"] = create_token(served.store, "run", run_id=mine)[0]
    job = client("run")
    job.set_tag(mine, "from", "job")
    assert "may not write to run" in refused(lambda: job.set_tag(other, "k", "v"), "PERMISSION_DENIED")
    refused(lambda: job.delete_tag(other, "mlflow.runName"), "PERMISSION_DENIED")
    refused(lambda: job.create_run(exp), "PERMISSION_DENIED")
    child = job.create_run(exp, tags={"mlflow.parentRunId": mine})  # a nested run under its own run
    assert served.store.get_run(child.info.run_id).parent_id == mine
