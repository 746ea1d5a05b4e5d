"""Lazy but correct: what `import runyard` leaves unloaded is loaded when first needed.

- The pipeline Run classes: a run of their type looked up in a process that never imported
  runyard.pipeline still comes back as a PipelineRun / StepRun.
- The local launcher: registered by `import runyard`, imported when a run launches.
- A job's run (Run.get_context() with its supervisor's variables): its record is read on first use,
  and a run that ended refuses metrics as before. Without the run type in the environment (a job
  started by an older supervisor) the record is read at once, as it used to be.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from conftest import insert_pipeline
from runyard import Experiment, Run, Workspace, config
from runyard.core import context
from runyard.errors import RunFinishedError
from runyard.status import TERMINAL_STATUSES, RunStatus


def fresh_python(code: str) -> dict[str, object]:
    """Run `code` in a new interpreter; it prints one JSON object, returned here."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    result: dict[str, object] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_a_pipeline_run_looked_up_without_importing_pipeline_is_a_pipeline_run(
    sqlite_workspace: Workspace,
) -> None:
    run_id = insert_pipeline(sqlite_workspace, {}, ["a"])
    (step_id,) = [r.run_id for r in sqlite_workspace.store.list_descendants(run_id, recursive=False)]
    code = f"""
import json, sys
from runyard import Workspace
ws = Workspace({str(sqlite_workspace.path)!r})
before = "runyard.pipeline" in sys.modules
print(json.dumps({{
    "before": before,
    "run": type(ws.get_run({run_id!r})).__name__,
    "step": type(ws.get_run({step_id!r})).__name__,
    "listed": sorted(type(r).__name__ for r in ws.iter_runs("crafted")),
}}))
"""
    seen = fresh_python(code)
    assert seen == {
        "before": False,
        "run": "PipelineRun",
        "step": "StepRun",
        "listed": ["PipelineRun", "StepRun"],
    }


def test_the_local_launcher_is_registered_by_import_and_loaded_when_a_run_launches() -> None:
    code = """
import json, sys
import runyard
from runyard.core.targets import launcher_for
before = "runyard.compute.local" in sys.modules
launcher = launcher_for("local")
print(json.dumps({"before": before, "launcher": type(launcher).__module__ + "." + type(launcher).__name__}))
"""
    assert fresh_python(code) == {"before": False, "launcher": "runyard.compute.local.LocalLauncher"}


@pytest.fixture
def job_environment(sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """An interactive run, and this process's environment made to look like a job of it (the variables
    compute/process_job.py sets); the context run is forgotten before and after."""
    run = Experiment(sqlite_workspace, "in-job").start_logging(outputs=None, snapshot_directory=None)
    monkeypatch.setenv(config.ENV_RUN_ID, run.id)
    monkeypatch.setenv(config.ENV_WORKSPACE, str(sqlite_workspace.path))
    monkeypatch.setenv(config.ENV_EXPERIMENT, "in-job")
    monkeypatch.setenv(config.ENV_RUN_TYPE, run.type)
    monkeypatch.setattr(context, "_context_run", None)
    yield run
    if run.get_status() not in TERMINAL_STATUSES:
        run.complete()


def test_a_jobs_run_reads_its_record_on_first_use(job_environment: Run) -> None:
    run = Run.get_context()
    assert run is Run.get_context()  # one run object per process
    assert "_record" not in vars(run)  # nothing read yet
    assert (run.id, run.experiment.name) == (job_environment.id, "in-job")
    run.log("loss", 0.5)  # a job's run is writable without a store read first
    assert run.get_status() == RunStatus.RUNNING  # read now
    assert run.type == job_environment.type
    run.flush()
    assert run.get_metrics() == {"loss": 0.5}


def test_a_jobs_run_that_ended_refuses_metrics(job_environment: Run) -> None:
    run = Run.get_context()
    run.complete()
    assert run.get_status() == RunStatus.COMPLETED
    with pytest.raises(RunFinishedError):
        run.log("late", 1.0)


def test_without_the_run_type_a_job_reads_its_record(
    job_environment: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(config.ENV_RUN_TYPE)
    run = Run.get_context()
    assert "_record" in vars(run)
    assert (run.id, run.type, run.experiment.name) == (job_environment.id, job_environment.type, "in-job")
