"""Environments used by jobs: script runs and pipeline steps build their environment once, reuse it, say so
in their log folder, run with its interpreter and variables, fail cleanly when it cannot be built, and
explain an import that failed. Real runs, real subprocesses, real builds with uv from the package index
(skipped with the reason when the index is unreachable), on real SQLite (and PostgreSQL) workspaces."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.core.runconfig import RunConfiguration
from runyard.environments import CondaDependencies, Environment
from runyard.environments.cache import lock_now, trusted_root
from runyard.environments.plan import plan_environment
from runyard.errors import EnvironmentNotFound
from runyard.pipeline import Pipeline, PipelineRun, PythonScriptStep

JOB = """
import importlib.metadata, os, sys
import runyard
from azureml.core import Run
run = Run.get_context()
print("TABULATE", importlib.metadata.version("tabulate"))
print("PYTHON", sys.executable)
print("RUN", run.id)
print("GREETING", os.environ.get("GREETING"))
"""


@pytest.fixture(scope="module")
def index() -> None:
    from runyard.environments.build import index_reachable

    problem = index_reachable()
    if problem:
        pytest.skip(f"the package index is unreachable, so no environment can be built: {problem}")


@pytest.fixture(scope="module")
def own_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build cache of this module's own: its first run must build, whatever other tests built before."""
    return tmp_path_factory.mktemp("env-jobs-cache")


def table_env(version: str = "0.9.0", name: str = "table-env") -> Environment:
    env = Environment(name)
    # azureml-defaults, as v1 samples list it: provided by runyard, never installed from the index
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=[f"tabulate=={version}", "azureml-defaults"]
    )
    return env


def submit(ws: Workspace, config: ScriptRunConfig) -> tuple[str, dict[str, Any]]:
    run = Experiment(ws, "env-jobs").submit(config)
    run.wait_for_completion(raise_on_error=False)
    return run.id, ws.store.get_run(run.id).data


def log(ws: Workspace, run_id: str, name: str) -> str:
    path = ws.artifacts.local_path(f"runs/{run_id}/azureml-logs/{name}")
    return path.read_text() if path.exists() else ""


def driver(ws: Workspace, run_id: str) -> str:
    return log(ws, run_id, "70_driver_log.txt")


def test_a_script_run_builds_its_environment_once_and_then_reuses_it(
    sqlite_workspace: Workspace,
    source_dir: SourceDir,
    index: None,
    own_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(own_cache))
    source_dir.gen({"job.py": JOB})
    env = table_env()
    env.environment_variables = {"GREETING": "hello from the environment"}
    expected = plan_environment(env.to_definition()).hash

    first, data = submit(sqlite_workspace, ScriptRunConfig(source_dir, "job.py", environment=env))
    assert sqlite_workspace.store.get_run(first).status == "Completed", data.get("error")
    assert data["runDefinition"]["environment"] == "table-env"
    assert data["runDefinition"]["environmentDefinition"]["name"] == "table-env"
    built = log(sqlite_workspace, first, "20_image_build_log.txt")
    assert "tabulate" in built
    prep = log(sqlite_workspace, first, "65_job_prep.txt")
    assert f"Environment 'table-env' (hash {expected[:12]}" in prep and "built in" in prep
    assert prep.count("azureml-defaults") == 1 and "azureml-defaults: provided by runyard" in prep
    out = driver(sqlite_workspace, first)
    assert "TABULATE 0.9.0" in out and f"RUN {first}" in out
    assert "GREETING hello from the environment" in out
    python = next(line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("PYTHON "))
    assert python != sys.executable and Path(python).is_relative_to(own_cache)

    second, data = submit(sqlite_workspace, ScriptRunConfig(source_dir, "job.py", environment=env))
    assert sqlite_workspace.store.get_run(second).status == "Completed", data.get("error")
    assert log(sqlite_workspace, second, "20_image_build_log.txt") == ""  # not built again
    prep = log(sqlite_workspace, second, "65_job_prep.txt")
    assert f"Environment 'table-env' (hash {expected[:12]}" in prep and "reused the build in" in prep
    # a reused build is told in two lines (which, where; requirements): its notes are in the build's log
    told = [line for line in prep.splitlines() if "Environment 'table-env'" in line]
    assert len(told) == 2 and "requirements tabulate==0.9.0" in told[1], told
    assert "azureml-defaults" not in prep
    assert f"PYTHON {python}" in driver(sqlite_workspace, second)


def test_a_registered_name_is_resolved_at_submit_and_an_unknown_one_refused(
    sqlite_workspace: Workspace, source_dir: SourceDir, index: None
) -> None:
    source_dir.gen({"job.py": JOB})
    table_env().register(sqlite_workspace)
    run_id, data = submit(sqlite_workspace, ScriptRunConfig(source_dir, "job.py", environment="table-env"))
    assert sqlite_workspace.store.get_run(run_id).status == "Completed", data.get("error")
    assert data["runDefinition"]["environmentDefinition"]["version"] == "1"
    assert "TABULATE 0.9.0" in driver(sqlite_workspace, run_id)
    with pytest.raises(EnvironmentNotFound, match="no-such-env"):
        Experiment(sqlite_workspace, "env-jobs").submit(
            ScriptRunConfig(source_dir, "job.py", environment="no-such-env")
        )


def test_a_build_that_fails_fails_the_run_with_its_log_and_starts_nothing(
    sqlite_workspace: Workspace, source_dir: SourceDir, index: None
) -> None:
    source_dir.gen({"job.py": "print('must not run')\n"})
    env = Environment("broken-env")
    env.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["runyard-test-no-such-package-4c1e==1.0"]
    )
    run_id, data = submit(sqlite_workspace, ScriptRunConfig(source_dir, "job.py", environment=env))
    assert sqlite_workspace.store.get_run(run_id).status == "Failed"
    error = data["error"]
    assert error["code"] == "EnvironmentError"
    assert "'broken-env' could not be prepared" in error["message"]
    assert "runyard-test-no-such-package-4c1e" in error["message"]  # the build log's tail
    assert "runyard-test-no-such-package-4c1e" in log(sqlite_workspace, run_id, "20_image_build_log.txt")
    assert "No process was started" in log(sqlite_workspace, run_id, "65_job_prep.txt")
    assert "must not run" not in driver(sqlite_workspace, run_id)


def test_an_environment_that_cannot_be_built_as_written_fails_the_run(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    """A conda-only package needs no index to be refused."""
    source_dir.gen({"job.py": "print('must not run')\n"})
    env = Environment("conda-only")
    env.python.conda_dependencies = CondaDependencies.create(conda_packages=["cudatoolkit=11.3"])
    run_id, data = submit(sqlite_workspace, ScriptRunConfig(source_dir, "job.py", environment=env))
    assert sqlite_workspace.store.get_run(run_id).status == "Failed"
    assert data["error"]["code"] == "EnvironmentError" and "cudatoolkit" in data["error"]["message"]
    assert "must not run" not in driver(sqlite_workspace, run_id)


def test_the_environments_variables_reach_the_job_and_the_run_configs_win(
    workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen(
        {
            "vars.py": "import os, sys\nprint('VARS', os.environ['GREETING'], os.environ['WHO'], sys.executable)\n"
        }
    )
    env = Environment("vars-env")
    env.python.user_managed_dependencies = True  # nothing built: the submitting interpreter
    env.environment_variables = {"GREETING": "hello", "WHO": "environment"}
    rc = RunConfiguration()
    rc.environment_variables = {"WHO": "run-config"}
    run_id, data = submit(workspace, ScriptRunConfig(source_dir, "vars.py", run_config=rc, environment=env))
    assert workspace.store.get_run(run_id).status == "Completed", data.get("error")
    assert f"VARS hello run-config {sys.executable}" in driver(workspace, run_id)
    assert "user-managed" in log(workspace, run_id, "65_job_prep.txt")


def test_without_an_environment_the_job_runs_with_the_submitting_interpreter(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"plain.py": "import sys\nprint('PYTHON', sys.executable)\n"})
    run_id, data = submit(sqlite_workspace, ScriptRunConfig(source_dir, "plain.py"))
    assert sqlite_workspace.store.get_run(run_id).status == "Completed", data.get("error")
    assert data["runDefinition"]["environmentDefinition"] is None
    assert f"PYTHON {sys.executable}" in driver(sqlite_workspace, run_id)
    assert f"Interpreter: {sys.executable}" in log(sqlite_workspace, run_id, "65_job_prep.txt")


# -- pipeline steps ---------------------------------------------------------------------------------------
def pipeline_run(ws: Workspace, steps: list[PythonScriptStep]) -> PipelineRun:
    run = Pipeline(ws, steps).submit("env-steps", show_output=False)
    run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False)
    return run


def step_records(ws: Workspace, run: PipelineRun) -> dict[str, Any]:
    return {s.name: ws.store.get_run(s.id) for s in run.get_steps()}


def test_a_step_runs_in_its_environment_and_the_reuse_reason_names_the_changed_pin(
    sqlite_workspace: Workspace, tmp_path: Path, index: None
) -> None:
    source = SourceDir(tmp_path / "step").gen({"job.py": JOB})

    def submit_with(version: str) -> PipelineRun:
        step = PythonScriptStep(
            "job.py", name="tables", source_directory=source, environment=table_env(version)
        )
        return pipeline_run(sqlite_workspace, [step])

    old = submit_with("0.8.10")
    record = step_records(sqlite_workspace, old)["tables"]
    assert record.status == "Completed", record.data.get("error")
    assert "TABULATE 0.8.10" in driver(sqlite_workspace, record.run_id)
    assert record.data["material"]["environment"]["name"] == "table-env"
    new = submit_with("0.9.0")
    report = {item["step"]: item for item in new.get_reuse_report()}
    assert report["tables"]["reason"] == "environment 'table-env' changed: tabulate 0.8.10 → 0.9.0"
    record = step_records(sqlite_workspace, new)["tables"]
    assert "TABULATE 0.9.0" in driver(sqlite_workspace, record.run_id)
    again = submit_with("0.9.0")
    assert [item["reused"] for item in again.get_reuse_report()] == [True]


def test_a_step_whose_build_fails_fails_alone_and_a_missing_module_is_diagnosed(
    sqlite_workspace: Workspace, tmp_path: Path, index: None
) -> None:
    broken = Environment("broken-env")
    broken.python.conda_dependencies = CondaDependencies.create(
        pip_packages=["runyard-test-no-such-package-4c1e==1.0"]
    )
    scripts = {"broken": "print('must not run')\n", "ok": "print('fine')\n", "sk": "import sklearn\n"}
    source = {name: SourceDir(tmp_path / name).gen({"job.py": text}) for name, text in scripts.items()}
    steps = [
        PythonScriptStep("job.py", name="broken", source_directory=source["broken"], environment=broken),
        PythonScriptStep("job.py", name="ok", source_directory=source["ok"], environment=table_env()),
        PythonScriptStep("job.py", name="sk", source_directory=source["sk"], environment=table_env()),
    ]
    run = Pipeline(sqlite_workspace, steps).submit(
        "env-steps", show_output=False, continue_on_step_failure=True
    )
    run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False)
    records = step_records(sqlite_workspace, run)
    assert records["ok"].status == "Completed"
    assert records["broken"].status == "Failed"
    assert records["broken"].data["error"]["code"] == "EnvironmentError"
    assert "runyard-test-no-such-package-4c1e" in log(
        sqlite_workspace, records["broken"].run_id, "20_image_build_log.txt"
    )
    failed = records["sk"]
    assert failed.status == "Failed"
    diagnosis = failed.data["error"]["diagnosis"]
    assert (diagnosis["module"], diagnosis["package"], diagnosis["environment"]) == (
        "sklearn",
        "scikit-learn",
        "table-env",
    )
    assert diagnosis["inRequirements"] is False
    assert failed.data["error"]["message"].startswith(diagnosis["summary"])


def test_two_steps_needing_the_same_new_environment_build_it_once_and_the_other_waits(
    sqlite_workspace: Workspace, tmp_path: Path, index: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Builds run beside the scheduler, not in it: both steps are Preparing at once, one builds. The test
    holds the hash's build lock until both steps wait for it, so the two really meet (not by timing)."""
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path / "fresh-cache"))  # the scheduler inherits it
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "2")
    env = table_env(name="shared-env")
    lock = lock_now(trusted_root(), plan_environment(env.to_definition()).hash)
    assert lock is not None
    steps = [
        PythonScriptStep(
            "job.py",
            name=name,
            source_directory=SourceDir(tmp_path / name).gen({"job.py": JOB}),
            environment=env,
        )
        for name in ("one", "two")
    ]
    run = Pipeline(sqlite_workspace, steps).submit("env-steps", show_output=False)
    try:

        def both_wait() -> bool:
            found = list(run.get_steps())
            return len(found) == 2 and all(
                "waiting for" in log(sqlite_workspace, s.id, "65_job_prep.txt") for s in found
            )

        wait_for(both_wait, timeout=120)
    finally:
        os.close(lock)
    run.wait_for_completion(show_output=False, timeout_seconds=300, raise_on_error=False)
    records = step_records(sqlite_workspace, run)
    assert {name: r.status for name, r in records.items()} == {"one": "Completed", "two": "Completed"}
    built = [name for name, r in records.items() if log(sqlite_workspace, r.run_id, "20_image_build_log.txt")]
    assert len(built) == 1
    other = records["two" if built == ["one"] else "one"]
    prep = log(sqlite_workspace, other.run_id, "65_job_prep.txt")
    assert "waiting for" in prep and "waited for another job's build" in prep
    assert "TABULATE 0.9.0" in driver(sqlite_workspace, other.run_id)


def test_a_steps_environment_given_by_name_is_resolved_when_the_graph_is_compiled(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    from runyard.pipeline.graph import compile_graph

    env = Environment("named-env")
    env.python.user_managed_dependencies = True
    env.environment_variables = {"MODE": "named"}
    env.register(sqlite_workspace)
    source = SourceDir(tmp_path / "named").gen({"job.py": "print(1)\n"})
    steps = [
        PythonScriptStep("job.py", name="known", source_directory=source, environment="named-env"),
        PythonScriptStep("job.py", name="unknown", source_directory=source, environment="no-such-env"),
    ]
    graph, errors, _ = compile_graph(
        steps, description=None, default_source_directory=None, workspace=sqlite_workspace
    )
    known = graph["steps"][0]["environment"]
    assert (known["name"], known["definition"]["version"]) == ("named-env", "1")
    assert known["definition"]["environmentVariables"] == {"MODE": "named"}
    assert len(errors) == 1 and errors[0].startswith("Step 'unknown':") and "no-such-env" in errors[0]


def test_a_run_on_a_server_workspace_uses_an_environment_registered_there(
    tmp_path: Path, index: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Registry, build log and job prep log travel through a real `runyard server --auth`."""
    from runyard.server.auth import create_token
    from runyard.store import SqlStore
    from server_process import running_server

    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "client-cache"))
    local = Workspace.create(tmp_path / "server" / ".runyard")
    assert isinstance(local.store, SqlStore)
    token, _ = create_token(local.store, "write", name="env-jobs", compute=["local"])
    source = SourceDir(tmp_path / "src").gen({"job.py": JOB})
    with running_server(local.path, tmp_path / "server.log", auth=True) as server:
        ws = Workspace.get(server.url, token=token)
        table_env().register(ws)
        run_id, data = submit(ws, ScriptRunConfig(source, "job.py", environment="table-env"))
        assert ws.get_run(run_id).get_status() == "Completed", data.get("error")
        on_server = local.path / "artifacts" / "runs" / run_id / "azureml-logs"
        prep = (on_server / "65_job_prep.txt").read_text()
        assert "Environment 'table-env' (hash" in prep
        driver_log = (on_server / "70_driver_log.txt").read_text()
        assert "TABULATE 0.9.0" in driver_log and f"RUN {run_id}" in driver_log


def test_a_step_environment_that_cannot_be_built_as_written_is_refused_at_submit(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    from runyard.errors import InvalidInputError

    env = Environment("conda-only")
    env.python.conda_dependencies = CondaDependencies.create(conda_packages=["cudatoolkit=11.3"])
    source = SourceDir(tmp_path / "conda").gen({"job.py": "print(1)\n"})
    pipeline = Pipeline(
        sqlite_workspace, [PythonScriptStep("job.py", name="gpu", source_directory=source, environment=env)]
    )
    assert any(e.startswith("Step 'gpu':") and "cudatoolkit" in e for e in pipeline.validate())
    with pytest.raises(InvalidInputError, match="cudatoolkit"):
        pipeline.submit("env-steps", show_output=False)
