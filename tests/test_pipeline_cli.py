"""`runyard pipeline list | show | graph | why | cancel | rerun` through the real `main()` in this process
(conftest.invoke_cli: ~2 s less per command than a fresh interpreter); `runyard up` runs as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SourceDir, clean_settings, invoke_cli, kill_strays, wait_for
from runyard import Workspace
from runyard.engine.service import service_info
from runyard.pipeline import (
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PipelineRun,
    PythonScriptStep,
)
from runyard.status import RunStatus

pytestmark = pytest.mark.usefixtures("no_stray_processes")


@pytest.fixture(autouse=True)
def _wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # wide tables: no folded ids or paths


PREP = """
    import sys, pathlib
    out = pathlib.Path(sys.argv[1])
    (out / "a.txt").write_text("abc")
    (out / "b.txt").write_text("defg")
"""
TRAIN = """
    import sys, pathlib
    VERSION = 1
    data, lr, model = pathlib.Path(sys.argv[1]), sys.argv[3], pathlib.Path(sys.argv[4])
    (model / "model.txt").write_text(f"v{VERSION} lr={lr}")
    print("trained with lr", lr)
"""
EVALUATE = """
    import sys, pathlib
    print("score of", (pathlib.Path(sys.argv[1]) / "model.txt").read_text())
"""


def sources(root: Path, name: str, files: dict[str, str]) -> SourceDir:
    """The step's folder; written on first use only, so a test's later edits stay."""
    folder = root / name
    return SourceDir(folder) if folder.exists() else SourceDir(folder).gen(files)


def build(ws: Workspace, root: Path) -> Pipeline:
    prepared = PipelineData("prepared")
    model = OutputFileDatasetConfig("model")
    lr = PipelineParameter("lr", 0.1)
    prep = PythonScriptStep(
        "prep.py",
        name="prep",
        arguments=[prepared],
        outputs=[prepared],
        source_directory=sources(root, "prep", {"prep.py": PREP}),
    )
    train = PythonScriptStep(
        "train.py",
        name="train",
        arguments=[prepared, "--lr", lr, model],
        inputs=[prepared],
        source_directory=sources(root, "train", {"train.py": TRAIN}),
    )
    evaluate = PythonScriptStep(
        "evaluate.py",
        name="evaluate",
        arguments=[model.as_input()],
        source_directory=sources(root, "evaluate", {"evaluate.py": EVALUATE}),
    )
    return Pipeline(ws, [prep, train, evaluate])


def finished(ws: Workspace, root: Path, **submit: object) -> PipelineRun:
    run = build(ws, root).submit("cli-pipe", show_output=False, **submit)  # type: ignore[arg-type]
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    return run


def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return invoke_cli("-w", str(ws.path), "pipeline", *args)


def ok(ws: Workspace, *args: str) -> str:
    result = cli(ws, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def finished_sqlite(
    tmp_path_factory: pytest.TempPathFactory, env_cache: Path
) -> Iterator[tuple[Workspace, PipelineRun]]:
    """One finished pipeline on SQLite for the tests that only read it or are refused (graph, rerun with
    bad settings), instead of the same three steps run again for each of them."""
    root = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_settings(monkeypatch, env_cache)
        monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
        ws = Workspace.create(root / "ws" / ".runyard")
        run = finished(ws, root / "project")
    yield ws, run
    kill_strays(root)


def test_list_and_show(workspace: Workspace, tmp_path: Path) -> None:
    run = finished(workspace, tmp_path / "project")
    rows = json.loads(ok(workspace, "list", "--json"))
    assert len(rows) == 1
    row = rows[0]
    assert row["runId"] == run.id and row["experiment"] == "cli-pipe" and row["status"] == "Completed"
    assert (row["steps"], row["completed"], row["reused"]) == (3, 3, 0)
    assert row["parameters"] == {"lr": 0.1}
    text = ok(workspace, "list")
    assert run.id in text and "3/3" in text and "lr=0.1" in text
    assert json.loads(ok(workspace, "list", "--experiment", "other", "--json")) == []

    shown = json.loads(ok(workspace, "show", run.id, "--json"))
    assert shown["status"] == "Completed" and shown["parameters"] == {"lr": 0.1}
    assert [(s["name"], s["status"]) for s in shown["steps"]] == [
        ("prep", "Completed"),
        ("train", "Completed"),
        ("evaluate", "Completed"),
    ]
    prepared = shown["steps"][0]["outputs"]["prepared"]
    assert (prepared["size"], prepared["files"]) == (7, 2)
    assert prepared["path"] == run.find_step_run("prep")[0].get_output_data("prepared").local_path
    assert sorted(p.name for p in Path(prepared["path"]).iterdir()) == ["a.txt", "b.txt"]

    table = ok(workspace, "show", run.id)
    assert f"prep.prepared → {prepared['path']}" in table
    assert "prepared: 2 files, 7 B" in table
    assert "Parameters: lr=0.1" in table
    for step in run.get_steps():
        assert step.id in table


def test_graph_as_text_json_and_dot(finished_sqlite: tuple[Workspace, PipelineRun]) -> None:
    sqlite_workspace, run = finished_sqlite
    assert json.loads(ok(sqlite_workspace, "graph", run.id, "--format", "json")) == run.get_graph()
    lines = ok(sqlite_workspace, "graph", run.id).splitlines()
    assert [line.split()[0] for line in lines] == ["prep", "train", "evaluate"]
    assert "← train.model" in lines[2] and "Completed" in lines[2]
    assert "← prep.prepared" in lines[1] and "→ model" in lines[1]
    dot = ok(sqlite_workspace, "graph", run.id, "--format", "dot")
    assert dot.startswith("digraph pipeline {")
    assert '"prep" -> "train" [label="prepared"];' in dot
    assert '"train" -> "evaluate" [label="model"];' in dot
    bad = cli(sqlite_workspace, "graph", run.id, "--format", "svg")
    assert bad.returncode == 1 and "--format 'svg' is not one of text, json, dot." in bad.stderr


def test_why_prints_the_reason_for_every_step(workspace: Workspace, tmp_path: Path) -> None:
    first = finished(workspace, tmp_path / "project")
    SourceDir(tmp_path / "project" / "train").gen({"train.py": TRAIN.replace("VERSION = 1", "VERSION = 2")})
    second = finished(workspace, tmp_path / "project", pipeline_parameters={"lr": 0.2})
    prep_id = first.find_step_run("prep")[0].id
    text = ok(workspace, "why", second.id)
    assert f"prep: reused {prep_id}" in text
    assert "train ran: file train.py changed; argument --lr changed from 0.1 to 0.2" in text
    assert "    - argument --lr changed from 0.1 to 0.2" in text
    assert "evaluate ran: input from step 'train' changed" in text
    assert "no earlier run of step 'prep'" in ok(workspace, "why", first.id)
    report = json.loads(ok(workspace, "why", second.id, "--json"))
    assert report == json.loads(json.dumps(second.get_reuse_report()))
    assert {r["step"]: r["reused"] for r in report} == {"prep": True, "train": False, "evaluate": False}


def test_cancel_stops_a_running_pipeline(workspace: Workspace, tmp_path: Path) -> None:
    src = SourceDir(tmp_path / "sleep").gen(
        {"sleep.py": "import time\nprint('started', flush=True)\ntime.sleep(60)\n"}
    )
    step = PythonScriptStep("sleep.py", name="sleeper", source_directory=src, allow_reuse=False)
    run = Pipeline(workspace, [step]).submit("cli-cancel", show_output=False)
    wait_for(lambda: run.find_step_run("sleeper")[0]._refresh().status == RunStatus.RUNNING, timeout=30)
    assert f"Cancel requested for pipeline {run.id}." in ok(workspace, "cancel", run.id)
    assert run.wait_for_completion(show_output=False, timeout_seconds=30) == "Canceled"
    assert run.find_step_run("sleeper")[0].get_status() == "Canceled"
    again = ok(workspace, "cancel", run.id)  # canceling a finished pipeline is harmless
    assert "Cancel requested" in again
    assert run.get_status() == "Canceled"


def test_rerun_with_new_parameter_values(workspace: Workspace, tmp_path: Path) -> None:
    first = finished(workspace, tmp_path / "project")
    out = ok(workspace, "rerun", first.id, "--set", "lr=0.2")  # waits, showing live status
    assert f"(from {first.id})" in out
    new_id = out.split("Submitted pipeline run ")[1].split()[0]
    new = PipelineRun.get(workspace, new_id)
    assert new.get_status() == "Finished"
    assert new.get_parameters() == {"lr": 0.2}  # coerced to the parameter's type
    assert new.experiment.name == "cli-pipe"
    assert new.get_graph()["steps"] == first.get_graph()["steps"]  # the stored graph and snapshot
    reasons = {r["step"]: r["reason"] for r in new.get_reuse_report()}
    assert reasons["train"] == "argument --lr changed from 0.1 to 0.2"
    assert reasons["prep"].startswith(f"reused run {first.find_step_run('prep')[0].id}")
    assert "trained with lr 0.2" in new.find_step_run("train")[0].get_job_log()

    detached = ok(workspace, "rerun", first.id, "--set", "lr=0.5", "--experiment", "other", "--detach")
    third = PipelineRun.get(workspace, detached.split("Submitted pipeline run ")[1].split()[0])
    assert third.experiment.name == "other"
    assert third.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    assert third.get_parameters() == {"lr": 0.5}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("nope=1", "has no parameter 'nope'; it has ['lr']"),
        ("lr=fast", "'fast' is not a number"),
        ("lr", "--set 'lr' is not name=value"),
    ],
)
def test_rerun_rejects_bad_settings(
    finished_sqlite: tuple[Workspace, PipelineRun], setting: str, message: str
) -> None:
    sqlite_workspace, first = finished_sqlite
    result = cli(sqlite_workspace, "rerun", first.id, "--set", setting)
    assert result.returncode == 1
    assert message in " ".join(result.stderr.split())
    assert len(json.loads(ok(sqlite_workspace, "list", "--json"))) == 1  # nothing was submitted


def test_show_explains_a_failed_step(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    src = SourceDir(tmp_path / "bad").gen(
        {"bad.py": "raise SystemExit('cannot read [/data/input] [bold]')\n"}
    )
    step = PythonScriptStep("bad.py", name="broken", source_directory=src)
    run = Pipeline(sqlite_workspace, [step]).submit("cli-fail", show_output=False)
    assert run.wait_for_completion(show_output=False, raise_on_error=False) == "Failed"
    text = ok(sqlite_workspace, "show", run.id)
    step_id = run.find_step_run("broken")[0].id
    assert "broken failed: The script exited with code 1." in text
    assert "cannot read [/data/input] [bold]" in text  # the script's words, not Rich markup
    assert f"Log: `runyard logs {step_id}`" in text
    why = ok(sqlite_workspace, "why", run.id)
    assert "broken ran: no earlier run of step 'broken'" in why  # why it ran, then how it ended
    assert "    failed: The script exited with code 1." in why
    missing = cli(sqlite_workspace, "show", "no-such-run")
    assert missing.returncode == 1 and "no-such-run" in missing.stderr


def test_up_runs_the_scheduler_in_the_foreground(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    ws = sqlite_workspace
    up = subprocess.Popen(
        [sys.executable, "-m", "runyard", "-w", str(ws.path), "up", "--no-studio", "--idle-seconds", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        info = wait_for(lambda: (service_info(ws) or {}).get("pid") and service_info(ws), timeout=20)
        assert info["pid"] == up.pid  # submit finds it and starts no background service
        src = SourceDir(tmp_path / "echo").gen({"echo.py": "import sys; print(sys.argv[1:])\n"})
        for value in ("[/a]", "[/b]"):  # reasons with brackets are printed as they are, not as Rich markup
            step = PythonScriptStep("echo.py", name="echo", arguments=[value], source_directory=src)
            run = Pipeline(ws, [step]).submit("cli-up", show_output=False)
            assert run.wait_for_completion(show_output=False, timeout_seconds=30) == "Finished"
        out, _ = up.communicate(timeout=30)
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    assert up.returncode == 0, out
    assert f"runyard scheduler for {ws.path} (pid {up.pid}" in out
    assert "step echo: started (argument 1 changed from [/a] to [/b])" in out
    assert out.rstrip().endswith("idle; exiting")


def test_a_step_is_preparing_while_its_environment_is_built(
    sqlite_workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """v1's Preparing: the step's environment is being built and no process of it runs yet. The test holds
    the build lock of the step's environment (as another job building it would), so the step stays
    Preparing until the lock is let go; `runyard pipeline show` says so, then the step runs."""
    from runyard.environments import CondaDependencies, Environment
    from runyard.environments.cache import lock_now, trusted_root
    from runyard.environments.plan import plan_environment

    monkeypatch.setenv(
        "RUNYARD_ENV_CACHE", str(tmp_path / "cache")
    )  # nothing built yet; the scheduler inherits it
    env = Environment("prep-env")  # nothing to install: built without the package index
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["azureml-defaults"])
    lock = lock_now(trusted_root(), plan_environment(env.to_definition()).hash)
    assert lock is not None
    src = SourceDir(tmp_path / "job").gen({"job.py": "print('ran in', __import__('sys').prefix)\n"})
    step = PythonScriptStep("job.py", name="job", source_directory=src, environment=env)
    try:
        run = Pipeline(sqlite_workspace, [step]).submit("cli-prep", show_output=False)
        record = wait_for(lambda: run.find_step_run("job") and run.find_step_run("job")[0]._refresh())
        prep_log = sqlite_workspace.artifacts.local_path(f"runs/{record.run_id}/azureml-logs/65_job_prep.txt")
        wait_for(lambda: prep_log.exists() and "waiting for" in prep_log.read_text())
        assert run.find_step_run("job")[0]._refresh().status == RunStatus.PREPARING
        shown = json.loads(ok(sqlite_workspace, "show", run.id, "--json"))
        assert [(s["name"], s["status"]) for s in shown["steps"]] == [("job", "Preparing")]
        assert "Preparing" in ok(sqlite_workspace, "show", run.id)
    finally:
        os.close(lock)
    assert run.wait_for_completion(show_output=False, timeout_seconds=60) == "Finished"
    lines = prep_log.read_text().splitlines()
    started = next(i for i, line in enumerate(lines) if "Started process" in line)
    assert started > next(i for i, line in enumerate(lines) if "Environment 'prep-env'" in line)
