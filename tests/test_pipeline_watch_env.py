"""What PipelineRun.wait_for_completion prints: a step building its environment shows Preparing, and the
summary row of a failed step says how it failed (not why it ran)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Workspace
from runyard.environments import CondaDependencies, Environment
from runyard.environments.cache import lock_now, trusted_root
from runyard.environments.plan import plan_environment
from runyard.pipeline import Pipeline, PythonScriptStep


def test_the_watcher_shows_preparing_and_the_summary_a_failed_steps_error(
    sqlite_workspace: Workspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path / "cache"))
    env = Environment("watch-env")  # nothing to install: built without the package index
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["azureml-defaults"])
    lock = lock_now(trusted_root(), plan_environment(env.to_definition()).hash)
    assert lock is not None
    src = SourceDir(tmp_path / "job").gen({"job.py": "raise SystemExit('boom: no data')\n"})
    step = PythonScriptStep("job.py", name="job", source_directory=src, environment=env)
    run = Pipeline(sqlite_workspace, [step]).submit("watch", show_output=False)

    def release() -> None:  # once the step waits for the build lock, i.e. is Preparing
        record = wait_for(lambda: run.find_step_run("job") and run.find_step_run("job")[0]._refresh())
        log = sqlite_workspace.artifacts.local_path(f"runs/{record.run_id}/azureml-logs/65_job_prep.txt")
        wait_for(lambda: log.exists() and "waiting for" in log.read_text())
        os.close(lock)

    releaser = threading.Thread(target=release)
    releaser.start()
    assert run.wait_for_completion(show_output=True, raise_on_error=False, timeout_seconds=60) == "Failed"
    releaser.join()
    out = capsys.readouterr().out
    assert "StepRun(job) Status: Preparing" in out
    summary = out[out.index("PipelineRun Execution Summary") :]
    assert "failed: The script exited with code 1." in summary
    assert "no earlier run" not in summary
