"""The scheduler's side of the issue 10 security review: what a write token writes into the store must not
steer another user's pipeline, reuse or processes (defense in depth: the server may be wrong).

Each test writes forged records straight into the store (what a write token can do over REST) and runs
a real scheduler with real steps: a forged child named like a step is ignored (pinned step runs), a step
ended by someone else fails its pipeline instead of feeding its claimed outputs downstream, inputs must
lie in this workspace's datastores, a forged or edited Completed step run is never reused, and a
recorded pid is signalled only when that process provably belongs to the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, Workspace, config
from runyard.core.processes import identity, stop_run_processes
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.core.snapshot import snapshot_files
from runyard.engine.data_paths import describe_output, manifest_location
from runyard.engine.placement import Placement
from runyard.engine.recovery import recover_steps
from runyard.engine.service import SchedulerService
from runyard.errors import ConflictError
from runyard.pipeline import Pipeline, PipelineData, PythonScriptStep
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord
from runyard.store.snapshots import SnapshotStore

pytestmark = pytest.mark.usefixtures("no_stray_processes")

PREP = """
    import pathlib, sys, time
    out = pathlib.Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
    (out / "data.txt").write_text("real")
    time.sleep(float(sys.argv[2]))
"""
TRAIN = """
    import pathlib, sys
    pathlib.Path(sys.argv[2]).write_text((pathlib.Path(sys.argv[1]) / "data.txt").read_text())
"""


@pytest.fixture
def src(tmp_path: Path) -> SourceDir:
    return SourceDir(tmp_path / "src").gen({"prep.py": PREP, "train.py": TRAIN})


@pytest.fixture
def scheduler(sqlite_workspace: Workspace) -> Iterator[SchedulerService]:
    service = SchedulerService(sqlite_workspace, idle_seconds=600, echo=lambda _line: None)
    worker = threading.Thread(target=service.serve, daemon=True)
    worker.start()
    yield service
    service.stop()
    worker.join(timeout=30)
    assert not worker.is_alive()


def two_step_graph(ws: Workspace, src: SourceDir, marker: Path, seconds: float = 0) -> dict[str, Any]:
    """prep writes data.txt ("real") to its output; train copies what its input holds to `marker`."""
    data = PipelineData("prepared")
    PythonScriptStep(  # reached through train's input
        "prep.py", name="prep", arguments=[data, seconds], outputs=[data], source_directory=src
    )
    train = PythonScriptStep(
        "train.py",
        name="train",
        arguments=[data, str(marker)],
        inputs=[data],
        source_directory=src,
        allow_reuse=False,
    )
    graph = Pipeline(ws, [train]).graph
    snap = SnapshotStore(ws.artifacts).save(src.path, snapshot_files(src.path))
    for step in graph["steps"]:
        step["source"].update(snapshot=snap.id, files=len(snap.files))
    return graph


def insert(
    ws: Workspace,
    graph: dict[str, Any],
    *,
    pins: dict[str, str] | None = None,
    status: str = RunStatus.NOT_STARTED,
) -> tuple[str, dict[str, str]]:
    """A pipeline run as Pipeline.submit writes it (placed here, step runs pinned); returns (id, step ids)."""
    exp = Experiment(ws, "holes")
    run_id, now = str(uuid.uuid4()), time.time()
    ids = {s["name"]: str(uuid.uuid4()) for s in graph["steps"]}
    data = {"graph": graph, "parameters": {}, "placement": {"workspace": ws.identity, "target": "local"}}
    data["stepRuns"] = ids if pins is None else pins
    records = [RunRecord(run_id, exp.id, exp.name, status, PIPELINE_RUN_TYPE, now, data=data)]
    records += [
        RunRecord(
            i,
            exp.id,
            exp.name,
            status,
            STEP_RUN_TYPE,
            now,
            parent_id=run_id,
            display_name=n,
            data={"step": n},
        )
        for n, i in ids.items()
    ]
    ws.store.create_runs(records)
    return run_id, ids


def forge_step(ws: Workspace, parent_id: str | None, name: str, status: str, **fields: Any) -> str:
    exp = Experiment(ws, "holes")
    run_id = str(uuid.uuid4())
    created = fields.pop("created_time", 0.0)
    ws.store.create_run(
        RunRecord(
            run_id,
            exp.id,
            exp.name,
            status,
            STEP_RUN_TYPE,
            created,
            parent_id=parent_id,
            display_name=name,
            **fields,
        )
    )
    return run_id


def planted(ws: Workspace, folder: Path, manifest: Path) -> dict[str, Any]:
    """Attacker data with a valid file manifest: it passes verify_output wherever it lies."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.txt").write_text("evil")
    return describe_output(folder, manifest)


def ended(ws: Workspace, run_id: str, timeout: float = 60) -> RunRecord:
    return wait_for(
        lambda: (r := ws.store.get_run(run_id)).status in TERMINAL_STATUSES and r, timeout=timeout
    )


def error_of(record: RunRecord) -> dict[str, Any]:
    return dict(record.data.get("error") or {})


# -- a) pinned step runs ----------------------------------------------------------------------------
def test_submit_pins_its_step_runs_and_the_pins_cannot_change(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    step = PythonScriptStep("prep.py", name="only", arguments=[str(tmp_path / "o"), 0], source_directory=src)
    run = Pipeline(ws, [step]).submit("holes", show_output=False)
    record = ws.store.get_run(run.id)
    children = ws.store.list_descendants(run.id, recursive=False)
    assert record.data["stepRuns"] == {c.display_name: c.run_id for c in children}
    with pytest.raises(ConflictError, match="stepRuns"):
        ws.store.update_run_data(run.id, {"stepRuns": {"only": str(uuid.uuid4())}})
    run.wait_for_completion(show_output=False, timeout_seconds=60)


def test_a_forged_child_named_like_a_step_is_ignored(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, scheduler: SchedulerService
) -> None:
    """atk_child/atk_race: a Completed "prep" created at time 0 used to win the by-name lookup."""
    ws = sqlite_workspace
    marker = tmp_path / "train-read"
    graph = two_step_graph(ws, src, marker)
    evil = ws.artifacts.local_path("datastores/workspaceblobstore/evil")
    outputs = {"prepared": planted(ws, evil, tmp_path / "m.json")}
    exp = Experiment(ws, "holes")
    run_id, forged = str(uuid.uuid4()), str(uuid.uuid4())
    ids = {s["name"]: str(uuid.uuid4()) for s in graph["steps"]}
    data = {"graph": graph, "parameters": {}, "placement": {"workspace": ws.identity, "target": "local"}}
    data["stepRuns"] = ids
    now = time.time()
    records = [RunRecord(run_id, exp.id, exp.name, RunStatus.NOT_STARTED, PIPELINE_RUN_TYPE, now, data=data)]
    records += [
        RunRecord(
            i, exp.id, exp.name, RunStatus.NOT_STARTED, STEP_RUN_TYPE, now, parent_id=run_id, display_name=n
        )
        for n, i in ids.items()
    ]
    # in the same batch, so the scheduler never sees the pipeline without it (atk_race won in 2.6 s)
    records.append(
        RunRecord(
            forged,
            exp.id,
            exp.name,
            RunStatus.COMPLETED,
            STEP_RUN_TYPE,
            0.0,
            parent_id=run_id,
            display_name="prep",
            data={"outputs": outputs},
        )
    )
    ws.store.create_runs(records)
    assert ended(ws, run_id).status == RunStatus.COMPLETED
    assert marker.read_text() == "real"  # train read the real prep's output, not the forged child's
    assert ws.store.get_run(ids["prep"]).status == RunStatus.COMPLETED
    assert ws.store.get_run(forged).data["outputs"] == outputs  # untouched, unused


def test_a_missing_pinned_step_run_fails_the_pipeline(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, scheduler: SchedulerService
) -> None:
    ws = sqlite_workspace
    graph = two_step_graph(ws, src, tmp_path / "train-read")
    ghost = str(uuid.uuid4())
    run_id, _ = insert(ws, graph, pins={"prep": ghost, "train": str(uuid.uuid4())})
    refused = ended(ws, run_id)
    assert refused.status == RunStatus.FAILED
    assert "pinned step run" in error_of(refused)["message"] and ghost in error_of(refused)["message"]
    assert not (tmp_path / "train-read").exists()


# -- b) a step ended by someone else -----------------------------------------------------------------
def test_a_running_step_completed_by_someone_else_fails_the_pipeline(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, scheduler: SchedulerService
) -> None:
    """atk_status: POST /runs/{prep}/status Completed with outputs while prep runs. The path is even inside
    the datastores (the input check alone would not stop it): the forged outputs are never read."""
    ws = sqlite_workspace
    marker = tmp_path / "train-read"
    run_id, ids = insert(ws, two_step_graph(ws, src, marker, seconds=2))
    wait_for(lambda: ws.store.get_run(ids["prep"]).status == RunStatus.RUNNING, timeout=60)
    evil = ws.artifacts.local_path("datastores/workspaceblobstore/evil")
    outputs = {"prepared": planted(ws, evil, tmp_path / "m.json")}
    ws.store.set_run_status(ids["prep"], RunStatus.COMPLETED, data={"outputs": outputs})
    failed = ended(ws, run_id)
    assert failed.status == RunStatus.FAILED
    assert error_of(failed)["code"] == "StepTampered"
    assert "'prep'" in error_of(failed)["message"] and ids["prep"] in error_of(failed)["message"]
    assert ws.store.get_run(ids["train"]).status == RunStatus.CANCELED
    assert not marker.exists()


def test_a_waiting_step_completed_by_someone_else_fails_the_pipeline(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, scheduler: SchedulerService
) -> None:
    """The same for a step that has not started yet: when the scheduler starts it, the store answers
    Completed to its Running write; the pipeline fails naming that step, and its process is stopped."""
    ws = sqlite_workspace
    marker = tmp_path / "train-read"
    run_id, ids = insert(ws, two_step_graph(ws, src, marker, seconds=1))
    wait_for(lambda: ws.store.get_run(ids["prep"]).status == RunStatus.RUNNING, timeout=60)
    ws.store.set_run_status(ids["train"], RunStatus.COMPLETED, data={"outputs": {}})
    failed = ended(ws, run_id)
    assert failed.status == RunStatus.FAILED
    assert error_of(failed)["code"] == "StepTampered"
    assert "'train'" in error_of(failed)["message"] and "Running" in error_of(failed)["message"]
    assert ws.store.get_run(ids["prep"]).status == RunStatus.COMPLETED


# -- c) inputs only from this workspace's datastores -----------------------------------------------------
@pytest.mark.parametrize("where", ["outside", "link"])
def test_an_input_outside_the_datastores_fails_the_step(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, where: str
) -> None:
    """A Completed upstream record (kept from before a scheduler restart) whose output names a host folder,
    or a link in the datastores to one: the reading step fails with the reason and runs nothing."""
    ws = sqlite_workspace
    marker = tmp_path / "train-read"
    secret = tmp_path / "client_private"
    outputs = {"prepared": planted(ws, secret, tmp_path / "m.json")}
    if where == "link":
        link = ws.artifacts.local_path("datastores/workspaceblobstore/link")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(secret)
        outputs["prepared"]["path"] = str(link)
    run_id, ids = insert(ws, two_step_graph(ws, src, marker))
    ws.store.set_run_status(ids["prep"], RunStatus.COMPLETED, data={"outputs": outputs})
    service = SchedulerService(ws, idle_seconds=600, echo=lambda _line: None)
    worker = threading.Thread(target=service.serve, daemon=True)
    worker.start()
    try:
        assert ended(ws, run_id).status == RunStatus.FAILED
    finally:
        service.stop()
        worker.join(timeout=30)
    train = ws.store.get_run(ids["train"])
    assert train.status == RunStatus.FAILED and error_of(train)["code"] == "UntrustedInput"
    assert "not inside this workspace's datastores" in error_of(train)["message"]
    assert not marker.exists()


# -- d) reuse only what a scheduler of this workspace recorded --------------------------------------------
def test_forged_or_edited_completed_step_runs_are_never_reused(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, scheduler: SchedulerService
) -> None:
    """atk_reuse: a Completed StepRun with the owner's fingerprint, created later, under the owner's own
    pipeline, with a valid manifest in its own run folder; then the same via editing a legit step's outputs."""
    ws = sqlite_workspace
    graph = two_step_graph(ws, src, tmp_path / "train-read")
    first, first_ids = insert(ws, graph)
    assert ended(ws, first).status == RunStatus.COMPLETED
    legit = ws.store.get_run(first_ids["prep"])
    forged = str(uuid.uuid4())
    evil = ws.artifacts.local_path("datastores/workspaceblobstore/evil")
    outputs = {"prepared": planted(ws, evil, manifest_location(ws, forged, "prepared"))}
    exp = Experiment(ws, "holes")
    ws.store.create_run(
        RunRecord(
            forged,
            exp.id,
            exp.name,
            RunStatus.COMPLETED,
            STEP_RUN_TYPE,
            time.time() + 3600,
            parent_id=first,
            display_name="prep",
            data={"outputs": outputs},
            fingerprint=legit.fingerprint,
        )
    )
    second, second_ids = insert(ws, graph)
    assert ended(ws, second).status == RunStatus.COMPLETED
    reused = ws.store.get_run(second_ids["prep"])
    assert reused.data.get("reusedFrom") == legit.run_id  # the legit run, never the forgery
    assert (tmp_path / "train-read").read_text() == "real"

    # PATCH the legit step's outputs to planted files outside the datastores: not reused, run again
    outside = {"prepared": planted(ws, tmp_path / "outside", tmp_path / "outside.json")}
    ws.store.update_run_data(legit.run_id, {"outputs": outside})
    third, third_ids = insert(ws, graph)
    assert ended(ws, third).status == RunStatus.COMPLETED
    rerun = ws.store.get_run(third_ids["prep"])
    assert "reusedFrom" not in rerun.data, rerun.data.get("reuse")
    assert (tmp_path / "train-read").read_text() == "real"


# -- e/f) processes: only provably the run's ---------------------------------------------------------------
def sleeper(run_id: str | None = None) -> subprocess.Popen[bytes]:
    """A process of the same user, its own group leader (like a shell job), maybe carrying a run id."""
    env = {k: v for k, v in os.environ.items() if k != config.ENV_RUN_ID}
    if run_id:
        env[config.ENV_RUN_ID] = run_id
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=env, start_new_session=True
    )
    wait_for(
        lambda: config.ENV_RUN_ID not in env or psutil.Process(proc.pid).environ().get(config.ENV_RUN_ID)
    )
    return proc


@pytest.fixture
def victims() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        proc.kill()
        proc.wait()


def test_a_recorded_pid_is_signalled_only_when_it_provably_belongs_to_the_run(
    victims: list[subprocess.Popen[bytes]],
) -> None:
    """atk_kill/atk_reap: a record naming someone's pid. Not on this host, no start time, another run's
    or no run id in its environment: left alone. The run's own process is still stopped."""
    other, plain = sleeper("another-run"), sleeper()
    victims += [other, plain]
    claims = [
        identity(other.pid),
        identity(plain.pid),
        {"pid": plain.pid, "host": identity()["host"]},  # no createTime
        {"pid": plain.pid},  # no host
    ]
    for claim in claims:
        assert stop_run_processes("the-run", {"process": claim}, grace=1.0) is False
    assert other.poll() is None and plain.poll() is None
    own = sleeper("the-run")
    victims.append(own)
    assert stop_run_processes("the-run", {"process": identity(own.pid)}, grace=1.0) is True
    assert own.wait(timeout=10) is not None


def test_recovery_ignores_a_forged_running_child_and_spares_its_pid(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, victims: list[subprocess.Popen[bytes]]
) -> None:
    """A forged Running StepRun under a finished pipeline placed here, naming a victim's pid: the next
    scheduler's recovery neither kills the pid nor touches the record; the pinned step is still recovered."""
    ws = sqlite_workspace
    run_id, ids = insert(ws, two_step_graph(ws, src, tmp_path / "train-read"), status=RunStatus.NOT_STARTED)
    victim = sleeper()
    victims.append(victim)
    forged = forge_step(ws, run_id, "prep", RunStatus.RUNNING, data={"process": identity(victim.pid)})
    ws.store.set_run_status(ids["prep"], RunStatus.RUNNING)
    ws.store.set_run_status(ids["train"], RunStatus.CANCELED)
    ws.store.set_run_status(run_id, RunStatus.FAILED)
    recover_steps(ws, Placement(ws), lambda _line: None)
    assert victim.poll() is None
    assert ws.store.get_run(forged).status == RunStatus.RUNNING
    assert ws.store.get_run(ids["prep"]).status == RunStatus.FAILED  # the pinned one is recovered
