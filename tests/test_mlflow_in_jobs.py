"""MLflow inside runyard jobs: every submitted run's process gets MLFLOW_TRACKING_URI, MLFLOW_RUN_ID and
MLFLOW_EXPERIMENT_NAME (and, against a server, MLFLOW_TRACKING_TOKEN = its run token), so a script's
`mlflow.log_metric` lands in its own run, as in Azure ML; `mlflow.end_run()` does not end the job.
Both are submitted from what looks like a Jupyter kernel (its inline MPLBACKEND, JPY_PARENT_PID): a job
does not inherit those (`import matplotlib` would die on the inline backend), unless its run sets them.

The script run and the pipeline of the embedded workspace are submitted together and run side by side.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import clean_settings
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.compute.process_job import ProcessJob
from runyard.pipeline import Pipeline, PipelineRun, PythonScriptStep
from runyard.server.auth import create_token
from runyard.store import SqlStore
from server_process import running_server

pytest.importorskip("mlflow")

#: A job's script: MLflow with no set-up at all, then mlflow.end_run() while the job still runs.
TRAIN = """
import os, sys
import mlflow

print("MLFLOW_TRACKING_URI", os.environ["MLFLOW_TRACKING_URI"])
print("MPLBACKEND", os.environ.get("MPLBACKEND"), "JPY_PARENT_PID", os.environ.get("JPY_PARENT_PID"))
own = os.environ["MLFLOW_RUN_ID"]  # mlflow.end_run() removes it from the environment
mlflow.log_param("lr", "0.5")
for step in range(3):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
mlflow.set_tag("where", "job")
mlflow.log_text("written by mlflow", "mlflow_note.txt")
active = mlflow.active_run()
print("MLFLOW RUN", active.info.run_id, "EXPERIMENT", active.info.experiment_id)
mlflow.end_run()
print("AFTER END_RUN", mlflow.get_run(own).info.status)
for other in sys.argv[1:]:  # against a server: the run token must not reach another run
    try:
        mlflow.MlflowClient().log_metric(other, "hijacked", 1.0)
        print("LOGGED TO THE OTHER RUN")
    except mlflow.exceptions.MlflowException as exc:
        print("OTHER RUN REFUSED", exc.error_code)
"""


def source(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.py").write_text(textwrap.dedent(TRAIN))
    return folder


def driver_log(ws: Workspace, run_id: str) -> str:
    return ws.artifacts.local_path(f"runs/{run_id}/azureml-logs/70_driver_log.txt").read_text()


def check_logged(ws: Workspace, run_id: str, experiment: str) -> str:
    """The job's MLflow calls landed in its own run; the run stayed Running after mlflow.end_run()."""
    run = ws.get_run(run_id)
    log = driver_log(ws, run_id)
    assert run.get_status() in ("Completed", "Finished"), log  # a step run says Finished
    assert run.get_metrics()["loss"] == [1.0, 0.5, 1.0 / 3]
    assert run.get_properties()["lr"] == "0.5"
    assert run.get_tags()["where"] == "job"
    assert "mlflow_note.txt" in run.get_file_names()
    assert f"MLFLOW RUN {run_id} " in log
    assert "AFTER END_RUN RUNNING" in log
    assert run.experiment.name == experiment
    return log


#: What ipykernel and jupyter_client set in a kernel's process.
KERNEL_VARIABLES = {
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    "JPY_PARENT_PID": "4242",
    "JPY_SESSION_NAME": "/home/me/train.ipynb",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "CLICOLOR": "1",
}


@dataclass
class Submitted:
    ws: Workspace
    script_run_id: str
    pipeline_run: PipelineRun


@pytest.fixture(scope="module")
def submitted(tmp_path_factory: pytest.TempPathFactory, env_cache: Path) -> Iterator[Submitted]:
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_settings(monkeypatch, env_cache)
        for name, value in KERNEL_VARIABLES.items():
            monkeypatch.setenv(name, value)
        root = tmp_path_factory.mktemp("mlflow-jobs")
        ws = Workspace.create(root / ".runyard")
        config = ScriptRunConfig(source(root / "script"), "train.py")
        config.run_config.environment_variables = {"MPLBACKEND": "module://chosen_by_the_run"}
        run = Experiment(ws, "mlflow-job").submit(config)
        step = PythonScriptStep("train.py", name="train", source_directory=source(root / "step"))
        pipeline_run = Pipeline(ws, [step]).submit("mlflow-pipeline", show_output=False)
        yield Submitted(ws, run.id, pipeline_run)
        run.wait_for_completion(raise_on_error=False)  # nothing of the module outlives it
        pipeline_run.wait_for_completion(show_output=False, timeout_seconds=90, raise_on_error=False)


def test_mlflow_in_a_submitted_script_logs_into_its_run(submitted: Submitted) -> None:
    ws = submitted.ws
    ws.get_run(submitted.script_run_id).wait_for_completion(raise_on_error=False)
    log = check_logged(ws, submitted.script_run_id, "mlflow-job")
    assert f"MLFLOW_TRACKING_URI {ws.get_mlflow_tracking_uri()}" in log
    # the run's own MPLBACKEND wins; the kernel's front-end ids are not inherited
    assert "MPLBACKEND module://chosen_by_the_run JPY_PARENT_PID None" in log


def test_mlflow_in_a_pipeline_step_logs_into_the_step_run(submitted: Submitted) -> None:
    run = submitted.pipeline_run
    assert run.wait_for_completion(show_output=False, timeout_seconds=90) == "Finished"
    (step,) = run.find_step_run("train")
    log = check_logged(submitted.ws, step.id, "mlflow-pipeline")
    assert "MPLBACKEND None JPY_PARENT_PID None" in log  # the kernel's inline backend stayed behind
    assert "loss" not in run.get_metrics()  # the pipeline's own run is not the step's


def test_the_run_variables_win_and_stale_mlflow_settings_are_dropped(
    submitted: Submitted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a job's process is given, without starting one: a submitting shell's MLflow settings (another
    run, experiment or token) are not inherited; the run's own environment_variables override runyard's."""
    ws = submitted.ws
    monkeypatch.setenv("MLFLOW_RUN_ID", "someone-elses-run")
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "42")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "personal")
    job = ProcessJob(ws, submitted.script_run_id, "mlflow-job", tmp_path / "work")
    env = job.environment()
    assert env["MLFLOW_TRACKING_URI"] == ws.get_mlflow_tracking_uri() == f"runyard:{ws.path}"
    assert env["MLFLOW_RUN_ID"] == submitted.script_run_id
    assert env["MLFLOW_EXPERIMENT_NAME"] == "mlflow-job"
    assert "MLFLOW_EXPERIMENT_ID" not in env and "MLFLOW_TRACKING_TOKEN" not in env
    # submitted from a kernel (the module's KERNEL_VARIABLES): its front-end variables stay behind
    assert not set(KERNEL_VARIABLES) & set(env)
    monkeypatch.setenv("MPLBACKEND", "Agg")  # a backend chosen by name is the user's own
    assert job.environment()["MPLBACKEND"] == "Agg"
    named = job.environment({"MLFLOW_EXPERIMENT_NAME": "chosen"})
    assert named["MLFLOW_EXPERIMENT_NAME"] == "chosen" and named["MLFLOW_RUN_ID"] == submitted.script_run_id
    # a job that logs to another MLflow gets none of this run's settings: they mean nothing there
    elsewhere = job.environment({"MLFLOW_TRACKING_URI": "http://mlflow.example:5000"})
    assert elsewhere["MLFLOW_TRACKING_URI"] == "http://mlflow.example:5000"
    assert not {"MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"} & set(elsewhere)


def test_mlflow_in_a_job_of_a_server_workspace_uses_its_run_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    server_ws = Workspace.create(tmp_path / "server" / ".runyard")
    assert isinstance(server_ws.store, SqlStore)
    token, _ = create_token(server_ws.store, "write", name="mlflow-jobs")
    with running_server(server_ws.path, tmp_path / "server.log", auth=True) as server:
        ws = Workspace.get(server.url, token=token)
        assert ws.get_mlflow_tracking_uri() == server.url
        exp = Experiment(ws, "mlflow-remote")
        other = exp.start_logging(display_name="bystander")
        other.complete()
        run = exp.submit(ScriptRunConfig(source(tmp_path / "script"), "train.py", arguments=[other.id]))
        run.wait_for_completion(raise_on_error=False)
        log = check_logged(server_ws, run.id, "mlflow-remote")
        assert f"MLFLOW_TRACKING_URI {server.url}" in log
        assert "OTHER RUN REFUSED PERMISSION_DENIED" in log and "LOGGED TO THE OTHER RUN" not in log
        assert "hijacked" not in server_ws.get_run(other.id).get_metrics()
