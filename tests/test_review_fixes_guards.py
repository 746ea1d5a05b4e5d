"""The fixes for tests/test_review_v1_holes.py's slot, snapshot and compute-name holes, from the other side:
what must keep working (a job's own take_snapshot, the creator's writes, live runs holding slots) and the
rules one level down (who holds a slot, who waits first, what a step counts).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard import Experiment, Workspace
from runyard.compute.slots import _waiting_before
from runyard.core.compute_slots import holds_slot
from runyard.core.compute_target import AmlCompute, ComputeTarget
from runyard.core.processes import identity
from runyard.core.run_snapshots import OUTPUTS_KEY, remember_outputs
from runyard.engine.step_slots import slot_refusal
from runyard.errors import ComputeTargetException
from runyard.server.auth import create_token
from runyard.status import RunStatus
from runyard.store import RunRecord, SqlStore
from runyard.store.sql_compute import check_compute_name
from server_process import ServerProcess, running_server


def _record(status: str = RunStatus.RUNNING, target: str = "one", **data: Any) -> RunRecord:
    return RunRecord(
        run_id=str(uuid.uuid4()),
        experiment_id="e",
        experiment_name="e",
        run_type="azureml.scriptrun",
        status=status,
        target=target,
        created_time=time.time(),
        data=dict(data),
    )


@pytest.fixture
def later_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process on this host started after this test process (a later supervisor)."""
    time.sleep(0.05)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


# -- who holds a slot -----------------------------------------------------------------------------------


def test_only_a_run_with_a_live_supervisor_or_process_here_holds_a_slot() -> None:
    me = identity()
    assert holds_slot(_record(supervisor=me))
    assert holds_slot(_record(status=RunStatus.PREPARING, process=me))
    assert not holds_slot(_record(status=RunStatus.QUEUED, supervisor=me))
    assert not holds_slot(_record())  # a crafted record: nothing supervises it
    assert not holds_slot(_record(owner=me))  # a child run shares its parent's node
    assert not holds_slot(_record(supervisor={**me, "host": "elsewhere"}))
    assert not holds_slot(_record(supervisor={**me, "createTime": 1.0}))  # the pid is another process now


def test_the_queue_follows_supervisor_start_times_not_created_time(
    later_process: subprocess.Popen[bytes],
) -> None:
    """A client chooses created_time; a live supervisor's start time is checked against the process."""
    mine = _record(status=RunStatus.QUEUED, supervisor=identity(later_process.pid))
    mine.created_time = 2e9
    earlier = _record(status=RunStatus.QUEUED, supervisor=identity())  # started before `later_process`
    earlier.created_time = 3e9
    forged = _record(status=RunStatus.QUEUED, supervisor=identity(later_process.pid) | {"pid": 0})
    forged.created_time = 0.0
    unsupervised = _record(status=RunStatus.QUEUED)
    unsupervised.created_time = 0.0
    runs = [mine, earlier, forged, unsupervised]
    assert _waiting_before(runs, mine.run_id) == [earlier]
    assert _waiting_before(runs, earlier.run_id) == []


def test_a_step_counts_the_slots_script_runs_hold(sqlite_workspace: Workspace) -> None:
    ws = sqlite_workspace
    ComputeTarget.create(ws, "one", AmlCompute.provisioning_configuration(max_nodes=1))
    exp = ws.store.get_or_create_experiment("steps")
    assert slot_refusal(ws, 4, [], "one") is None
    crafted = _record()
    crafted.experiment_id, crafted.experiment_name = exp.id, exp.name
    ws.store.create_run(crafted)
    assert slot_refusal(ws, 4, [], "one") is None  # nobody supervises it: it holds nothing
    live = _record(supervisor=identity())
    live.experiment_id, live.experiment_name = exp.id, exp.name
    ws.store.create_run(live)
    assert slot_refusal(ws, 4, [], "one") is not None
    assert slot_refusal(ws, 4, [], "local") is None


# -- compute names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"), [("cpu\n", "AmlCompute"), ("my-instance\n", "ComputeInstance"), ("\ncpu", "AmlCompute")]
)
def test_names_are_matched_whole(name: str, kind: str) -> None:
    with pytest.raises(ComputeTargetException):
        check_compute_name(name, kind)
    assert check_compute_name(name.strip(), kind) == name.strip()


# -- outputs folder and snapshot: in memory, and only the creator or the run itself over REST ------------


def test_complete_uploads_the_folder_its_process_chose(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    chosen, other = tmp_path / "chosen", tmp_path / "other"
    for folder in (chosen, other):
        folder.mkdir()
        (folder / f"{folder.name}.txt").write_text(folder.name)
    run = Experiment(sqlite_workspace, "mem").start_logging(outputs=str(chosen), snapshot_directory=None)
    remember_outputs(run.id, str(chosen))
    sqlite_workspace.store.update_run_data(run.id, {OUTPUTS_KEY: str(other)})
    run.get_status()
    run.complete()
    artifacts = sqlite_workspace.artifacts
    assert Path(artifacts.local_path(f"runs/{run.id}/outputs/chosen.txt")).exists()
    assert not Path(artifacts.local_path(f"runs/{run.id}/outputs/other.txt")).exists()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, ServerProcess]]:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace.create(tmp_path / "server-ws" / ".runyard")
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        yield ws, server


def test_creator_and_own_run_token_write_snapshot_and_outputs_others_do_not(
    served: tuple[Workspace, ServerProcess],
) -> None:
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    owner, _ = create_token(ws.store, "write")
    other, _ = create_token(ws.store, "write")
    exp = ws.store.get_or_create_experiment("guards")
    run = _record(status=RunStatus.NOT_STARTED, target="local")
    run.experiment_id, run.experiment_name = exp.id, exp.name
    body = json.loads(json.dumps(run.__dict__, default=list))
    url = f"{server.url}/api/v1/runs"
    made = httpx.post(url, json=[body], headers={"Authorization": f"Bearer {owner}"}, timeout=30)
    assert made.status_code == 200, made.text
    job, _ = create_token(ws.store, "run", run_id=run.run_id)

    def patch(token: str, data: dict[str, Any]) -> int:
        answer = httpx.patch(
            f"{url}/{run.run_id}/data",
            json={"patch": data},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        return answer.status_code

    def status(token: str, data: dict[str, Any]) -> int:
        answer = httpx.post(
            f"{url}/{run.run_id}/status",
            json={"status": "Queued", "data": data},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        return answer.status_code

    assert patch(other, {"snapshotId": "b" * 64}) == 403
    assert status(other, {"outputsDirectory": "/"}) == 403
    assert patch(owner, {"snapshotId": "a" * 64}) == 200
    assert patch(job, {"snapshotId": "c" * 64}) == 200  # a job's run.take_snapshot()
    assert patch(other, {"description": "still fine"}) == 200
    assert ws.store.get_run(run.run_id).data["snapshotId"] == "c" * 64


@pytest.mark.parametrize("field", ["min_nodes", "max_nodes"])
def test_rest_update_refuses_coerced_node_counts(served: tuple[Workspace, ServerProcess], field: str) -> None:
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    admin, _ = create_token(ws.store, "admin")
    headers = {"Authorization": f"Bearer {admin}"}
    body = {"name": "strict", "kind": "AmlCompute", "max_nodes": 2}
    made = httpx.post(f"{server.url}/api/v1/compute", json=body, headers=headers, timeout=30)
    assert made.status_code == 200, made.text
    answer = httpx.put(
        f"{server.url}/api/v1/compute/strict", json={**body, field: "1"}, headers=headers, timeout=30
    )
    assert answer.status_code in (400, 422), answer.text
    assert ws.store.get_compute_target("strict").max_nodes == 2
