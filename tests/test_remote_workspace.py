"""A workspace served by `runyard server --auth`, used through runyard's own API: the Run API, and a
submitted ScriptRunConfig run whose process gets a run token of its own.

RUNYARD_CACHE_DIR keeps the local side of the server workspace (working copies, the mirror of files
a job writes) in the test's tmp folder.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.errors import AuthError, RunNotFound
from runyard.server.auth import create_token
from runyard.store import SqlStore
from server_process import ServerProcess, running_server

SERVER_LOGS = {
    "azureml-logs/65_job_prep.txt",
    "azureml-logs/70_driver_log.txt",
    "azureml-logs/75_job_post.txt",
}


@dataclass
class Remote:
    server: ServerProcess
    workspace: Path  # the server's own folder
    token: str  # write scope

    def open(self) -> Workspace:
        return Workspace.get(self.server.url, token=self.token)

    def on_disk(self, run_id: str, name: str) -> Path:
        return self.workspace / "artifacts" / "runs" / run_id / name


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    root = tmp_path_factory.mktemp("remote")
    ws = Workspace.create(root / "ws" / ".runyard")
    assert isinstance(ws.store, SqlStore)
    token, _ = create_token(ws.store, "write", name="remote-tests")  # (the CLI's own path: test_server_auth)
    with running_server(ws.path, root / "server.log", auth=True) as server:
        yield Remote(server, ws.path, token)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(cache))
    return cache


def test_workspace_get_needs_a_valid_token(remote: Remote) -> None:
    with pytest.raises(AuthError, match="Authentication failed"):
        Workspace.get(remote.server.url).experiments  # noqa: B018
    with pytest.raises(AuthError, match="invalid or expired"):
        Workspace.get(remote.server.url, token="ry_0123456789ab_" + "x" * 43).experiments  # noqa: B018


def test_run_api_against_the_server(remote: Remote, tmp_path: Path, _cache_in_tmp: Path) -> None:
    ws = remote.open()
    assert ws.is_remote and _cache_in_tmp in ws.path.parents
    run = Experiment(ws, "remote-api").start_logging(display_name="interactive")
    for loss in (0.9, 0.4, 0.1):
        run.log("loss", loss)
    run.log("epochs", 3)
    run.log_list("scores", [1, 2, 3])
    run.log_row("table", epoch=1, acc=0.5)
    run.tag("owner", "tests")
    run.add_properties({"seed": "42"})
    (tmp_path / "notes.txt").write_text("remote notes\n")
    run.upload_file("outputs/notes.txt", str(tmp_path / "notes.txt"))
    child = run.child_run(name="child")
    child.log("child_metric", 1.5)
    child.complete()
    run.complete()

    # read back over HTTP, through a second client
    again = remote.open().get_run(run.id)
    assert again.get_status() == "Completed"
    assert again.get_metrics() == {
        "loss": [0.9, 0.4, 0.1],
        "epochs": 3,
        "scores": [1, 2, 3],
        "table": {"epoch": 1, "acc": 0.5},
    }
    assert again.get_tags()["owner"] == "tests"
    assert again.get_properties()["seed"] == "42"
    assert "outputs/notes.txt" in again.get_file_names()
    assert [c.id for c in again.get_children()] == [child.id]
    again.download_file("outputs/notes.txt", tmp_path / "downloaded.txt")
    assert (tmp_path / "downloaded.txt").read_text() == "remote notes\n"

    # and it is all in the server's own workspace
    local = Workspace.get(remote.workspace).get_run(run.id)
    assert local.get_metrics()["loss"] == [0.9, 0.4, 0.1]
    assert local.get_metrics(recursive=True)[child.id] == {"child_metric": 1.5}
    assert remote.on_disk(run.id, "outputs/notes.txt").read_text() == "remote notes\n"
    with pytest.raises(RunNotFound):
        ws.get_run("no-such-run-anywhere")


def test_submitted_run_reports_to_the_server_with_its_own_token(
    remote: Remote, source_dir: SourceDir, tmp_path: Path
) -> None:
    ws = remote.open()
    exp = Experiment(ws, "remote-submit")
    other = exp.start_logging(display_name="bystander")
    other.complete()
    source_dir.gen(
        {
            "train.py": """
                import os, sys
                import httpx
                from runyard import Run
                from runyard.errors import AuthError

                run = Run.get_context()
                for step in range(5):
                    run.log("loss", 1.0 / (step + 1), step=step)
                print("DRIVER says hello from", run.id)
                token = os.environ["RUNYARD_TOKEN"]
                print("TOKEN ID", token.split("_")[1])

                child = run.child_run(name="from-the-job")
                child.log("child_loss", 0.5)
                child.tag("made_by", "job")
                child.complete()

                other = sys.argv[1]
                try:
                    run.workspace.store.set_tags(other, {"hijacked": "yes"})
                    print("TAGGED THE OTHER RUN")
                except AuthError as exc:
                    print("TAG REFUSED:", exc)
                try:
                    Run.get(run.workspace, other)
                    print("READ THE OTHER RUN")
                except AuthError as exc:
                    print("READ REFUSED:", exc)
                url = os.environ["RUNYARD_TRACKING_URI"]
                made = httpx.post(url + "/api/v1/tokens", json={"scope": "admin"},
                                  headers={"Authorization": "Bearer " + token})
                print("TOKEN CREATION", made.status_code, made.json()["error"]["code"])
            """
        }
    )
    run = exp.submit(ScriptRunConfig(source_dir, "train.py", arguments=[other.id]))
    wait_for(lambda: run.get_status() in ("Completed", "Failed", "Canceled"), timeout=240, interval=0.5)
    details = run.wait_for_completion(raise_on_error=False)
    log = remote.on_disk(run.id, "azureml-logs/70_driver_log.txt").read_text()
    assert details["status"] == "Completed", (details, log)

    # the driver log reached the server's folder, and the script saw each refusal
    assert f"DRIVER says hello from {run.id}" in log
    assert "TAG REFUSED:" in log and "HTTP 403" in log and f"may not write to run {other.id}" in log
    assert "READ REFUSED:" in log
    assert "TOKEN CREATION 403 AuthorizationFailed" in log
    assert "TAGGED THE OTHER RUN" not in log and "READ THE OTHER RUN" not in log
    server_files = set(Workspace.get(remote.workspace).get_run(run.id).get_file_names())
    assert server_files >= SERVER_LOGS

    # the job held a run token for its own run, not the submitter's write token
    token_id = re.search(r"TOKEN ID ([0-9a-f]{12})", log).group(1)  # type: ignore[union-attr]
    assert token_id != remote.token.split("_")[1]
    with sqlite3.connect(remote.workspace / "runyard.db") as conn:
        scope, token_run = conn.execute(
            "SELECT scope, run_id FROM tokens WHERE token_id = ?", (token_id,)
        ).fetchone()
    assert (scope, token_run) == ("run", run.id)

    # the script's metrics and its child run are on the server; the other run is untouched
    fresh = remote.open().get_run(run.id)
    assert fresh.get_metrics()["loss"] == [1.0, 0.5, 1.0 / 3, 0.25, 0.2]
    (child,) = fresh.get_children()
    assert child.get_metrics() == {"child_loss": 0.5} and child.get_tags()["made_by"] == "job"
    assert Workspace.get(remote.workspace).get_run(other.id).get_tags() == {}
    assert fresh.read_log().decode() == log  # read back over HTTP


PRODUCE = """
import sys, pathlib
(pathlib.Path(sys.argv[1]) / "numbers.txt").write_text("1 2 3")
print("produced")
"""
CONSUME = """
import sys, pathlib
from runyard import Run
numbers = (pathlib.Path(sys.argv[1]) / "numbers.txt").read_text().split()
Run.get_context().log("total", sum(int(n) for n in numbers))
print("consumed", numbers)
"""


def test_a_pipeline_runs_against_the_server_and_is_reused(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runyard.pipeline import Pipeline, PipelineData, PythonScriptStep

    monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
    produce_dir = SourceDir(tmp_path / "produce").gen({"produce.py": PRODUCE})
    consume_dir = SourceDir(tmp_path / "consume").gen({"consume.py": CONSUME})

    def pipeline(ws: Workspace) -> Pipeline:
        data = PipelineData("numbers")
        produce = PythonScriptStep(
            "produce.py", name="produce", arguments=[data], outputs=[data], source_directory=produce_dir
        )
        consume = PythonScriptStep(
            "consume.py", name="consume", arguments=[data], inputs=[data], source_directory=consume_dir
        )
        return Pipeline(ws, [produce, consume])

    ws = remote.open()
    first = pipeline(ws).submit("remote-pipeline", show_output=False)
    assert first.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
    consume_run = first.find_step_run("consume")[0]
    assert consume_run.get_metrics() == {"total": 6}
    # The step's driver log reached the server's own folder.
    wait_for(
        lambda: (
            "consumed" in remote.on_disk(consume_run.id, "azureml-logs/70_driver_log.txt").read_text()
            if remote.on_disk(consume_run.id, "azureml-logs/70_driver_log.txt").exists()
            else False
        ),
        timeout=30,
    )

    second = pipeline(ws).submit("remote-pipeline", show_output=False)
    assert second.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
    assert [item["reused"] for item in second.get_reuse_report()] == [True, True]
