"""Named compute targets (v1's AmlCompute / ComputeInstance) on real workspaces, a real server and real runs.

The v1 sample pattern (look the cluster up, create it on ComputeTargetException, wait) must work as
written; a target's max_nodes must bound how many of its runs run at once; bad input must say what to fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conftest import SourceDir, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.compat import V1ParameterIgnored
from runyard.core.compute_target import AmlCompute, ComputeInstance, ComputeTarget, compute_targets, slots_for
from runyard.core.processes import identity
from runyard.core.targets import launcher_for
from runyard.errors import AuthError, ComputeTargetException, RunyardError
from runyard.server.auth import create_token
from runyard.status import RunStatus
from runyard.store import RunRecord, SqlStore
from server_process import ServerProcess, running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")


def sample_pattern(ws: Workspace, name: str, max_nodes: int = 4) -> ComputeTarget:
    """Microsoft's documented pattern, unchanged but for the import."""
    try:
        cpu_cluster = ComputeTarget(workspace=ws, name=name)
    except ComputeTargetException:
        cfg = AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2", max_nodes=max_nodes)
        cpu_cluster = ComputeTarget.create(ws, name, cfg)
    cpu_cluster.wait_for_completion(show_output=True)
    return cpu_cluster


@pytest.fixture(autouse=True)
def _quiet_v1_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", V1ParameterIgnored)
        yield


def test_sample_pattern_creates_once_then_finds(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ComputeTargetException, match=r"no compute target 'cpu-cluster'.*known: 'local'"):
        ComputeTarget(workspace=workspace, name="cpu-cluster")
    first = sample_pattern(workspace, "cpu-cluster")
    assert "Succeeded" in capsys.readouterr().out
    again = sample_pattern(workspace, "cpu-cluster")
    assert type(first) is type(again) is AmlCompute
    assert again == first and again.vm_size == "STANDARD_D2_V2" and again.provisioning_state == "Succeeded"
    assert [t.name for t in ComputeTarget.list(workspace)] == ["cpu-cluster"]
    assert list(compute_targets(workspace)) == ["cpu-cluster"]
    # a second workspace object (another process) sees the same record
    assert isinstance(ComputeTarget(Workspace.get(workspace.path), "cpu-cluster"), AmlCompute)


def test_create_get_list_delete(workspace: Workspace) -> None:
    cluster = ComputeTarget.create(
        workspace, "gpu", AmlCompute.provisioning_configuration(vm_size="NC6", min_nodes=1, max_nodes=2)
    )
    box = ComputeTarget.create(workspace, "my-box", ComputeInstance.provisioning_configuration("DS3"))
    assert isinstance(ComputeTarget(workspace, "my-box"), ComputeInstance)
    assert isinstance(AmlCompute(workspace, "gpu"), AmlCompute)
    with pytest.raises(ComputeTargetException, match="is a ComputeInstance, not a AmlCompute"):
        AmlCompute(workspace, "my-box")
    assert [(t.name, t.type) for t in ComputeTarget.list(workspace)] == [
        ("gpu", "AmlCompute"),
        ("my-box", "ComputeInstance"),
    ]
    assert box.slots == 1 and cluster.scale_settings.minimum_node_count == 1
    with pytest.raises(ComputeTargetException, match="use delete"):
        cluster.detach()
    cluster.delete()
    cluster.wait_for_completion(is_delete_operation=True)
    with pytest.raises(ComputeTargetException, match=r"no compute target 'gpu'.*'my-box'"):
        ComputeTarget(workspace, "gpu")
    with pytest.raises(ComputeTargetException, match="no compute target 'gpu'"):
        cluster.delete()
    local = ComputeTarget(workspace, "local")  # always there, never a record
    with pytest.raises(ComputeTargetException, match="cannot be deleted"):
        local.delete()
    assert slots_for(workspace, "local") >= 1


def test_create_again_returns_updates_or_refuses(workspace: Workspace) -> None:
    cfg = AmlCompute.provisioning_configuration(vm_size="D2", max_nodes=3)
    made = ComputeTarget.create(workspace, "cpu", cfg)
    same = ComputeTarget.create(workspace, "cpu", cfg)
    assert same.created_on == made.created_on
    # v1's create is a PUT: new scale settings apply to the existing cluster
    bigger = ComputeTarget.create(workspace, "cpu", AmlCompute.provisioning_configuration("D2", max_nodes=5))
    assert bigger.get_status().scale_settings.maximum_node_count == 5
    assert bigger.created_on == made.created_on
    with pytest.raises(ComputeTargetException, match=r"vm_size 'D2'.*Delete it first"):
        ComputeTarget.create(workspace, "cpu", AmlCompute.provisioning_configuration("NC24", max_nodes=5))
    with pytest.raises(ComputeTargetException, match="cannot become a ComputeInstance"):
        ComputeTarget.create(workspace, "cpu", ComputeInstance.provisioning_configuration("D2"))
    assert isinstance(bigger, AmlCompute)
    bigger.update(max_nodes=2)
    assert AmlCompute(workspace, "cpu").scale_settings.maximum_node_count == 2


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("1cluster", {}, "starting with a letter"),
        ("c", {}, "2 to 16"),
        ("a-very-long-cluster-name", {}, "2 to 16"),
        ("under_score", {}, "letters, digits or '-'"),
        ("local", {}, "built-in"),
        ("cpu", {"min_nodes": 3, "max_nodes": 2}, r"max_nodes \(2\) is smaller than min_nodes \(3\)"),
        ("cpu", {"max_nodes": 0}, "at least 1"),
        ("cpu", {"min_nodes": -1}, "from 0 to"),
        ("cpu", {"vm_priority": "spot"}, "'dedicated' or 'lowpriority'"),
    ],
)
def test_bad_input_is_refused_with_the_fix(
    sqlite_workspace: Workspace, name: str, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ComputeTargetException, match=message):
        cfg = AmlCompute.provisioning_configuration(**kwargs)  # type: ignore[arg-type]
        ComputeTarget.create(sqlite_workspace, name, cfg)
    assert ComputeTarget.list(sqlite_workspace) == []


def test_v1_keywords_and_ignored_parameters(sqlite_workspace: Workspace) -> None:
    with pytest.raises(TypeError, match="Did you mean 'max_nodes'"):
        AmlCompute.provisioning_configuration(max_node=4)  # type: ignore[call-arg]
    with pytest.warns(V1ParameterIgnored, match="vnet_name"):
        warnings.simplefilter("always", V1ParameterIgnored)
        AmlCompute.provisioning_configuration(max_nodes=2, vnet_name="corp-vnet")
    with pytest.raises(ComputeTargetException, match="needs a provisioning configuration"):
        ComputeTarget.create(sqlite_workspace, "cpu", {"max_nodes": 2})  # type: ignore[arg-type]
    with pytest.raises(ComputeTargetException, match="create a named local target"):
        ComputeTarget.attach(sqlite_workspace, "vm", object())
    # ComputeInstance names follow the instance rule (3-24 characters)
    ComputeTarget.create(
        sqlite_workspace, "a-twenty-char-box-01", ComputeInstance.provisioning_configuration()
    )
    with pytest.raises(ComputeTargetException, match="3 to 24"):
        ComputeTarget.create(sqlite_workspace, "ab", ComputeInstance.provisioning_configuration())


def test_status_slots_and_wait(
    sqlite_workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "2")
    cluster = ComputeTarget.create(
        sqlite_workspace, "big", AmlCompute.provisioning_configuration(max_nodes=8)
    )
    assert isinstance(cluster, AmlCompute)
    assert cluster.slots == slots_for(sqlite_workspace, "big") == 2  # max_nodes, capped by the machine
    status = cluster.get_status()
    assert (status.provisioning_state, status.current_node_count, status.allocation_state) == (
        "Succeeded",
        2,
        "Steady",
    )
    assert status.node_state_counts.idle_node_count == 2
    serialized = status.serialize()
    assert serialized["scaleSettings"]["maxNodeCount"] == 8 and json.dumps(serialized)
    assert cluster.serialize()["properties"]["computeType"] == "AmlCompute"
    assert ComputeTarget.deserialize(sqlite_workspace, cluster.serialize()) == cluster
    cluster.wait_for_completion(show_output=True, min_node_count=2, timeout_in_minutes=20)
    assert "AmlCompute wait for completion finished" in capsys.readouterr().out
    with pytest.raises(ComputeTargetException, match="min_node_count=3 can never be reached"):
        cluster.wait_for_completion(min_node_count=3)
    with pytest.raises(ComputeTargetException, match="still exists"):
        cluster.wait_for_completion(is_delete_operation=True)
    with pytest.raises(ComputeTargetException, match=r"no compute target 'nope'.*'big'"):
        slots_for(sqlite_workspace, "nope")


def test_unknown_target_is_refused_at_submit(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    source_dir.gen({"s.py": "print('hi')\n"})
    with pytest.raises(
        ComputeTargetException, match=r"no compute target 'nope'.*known: 'local'.*ComputeTarget.create"
    ):
        launcher_for("nope", sqlite_workspace)
    with pytest.raises(ComputeTargetException, match="no compute target 'nope'"):
        Experiment(sqlite_workspace, "unknown-target").submit(
            ScriptRunConfig(str(source_dir), "s.py", compute_target="nope")
        )
    assert all(r.status != RunStatus.QUEUED for r in sqlite_workspace.store.list_runs())


OVERLAP_SCRIPT = """
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[1]))
os.makedirs("outputs", exist_ok=True)
json.dump({"start": start, "end": time.time()}, open("outputs/span.json", "w"))
"""


HOLD_SCRIPT = """
import os, sys, time
deadline = time.time() + 120
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.05)
"""


def _span(run: object) -> tuple[float, float]:
    ws = run.experiment.workspace  # type: ignore[attr-defined]
    path = ws.artifacts.local_path(f"runs/{run.id}/outputs/span.json")  # type: ignore[attr-defined]
    data = json.loads(Path(path).read_text())
    return data["start"], data["end"]


def test_one_node_cluster_runs_one_script_at_a_time(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    source_dir.gen({"span.py": OVERLAP_SCRIPT})
    cluster = sample_pattern(sqlite_workspace, "one", max_nodes=1)
    exp = Experiment(sqlite_workspace, "slots")
    first = exp.submit(ScriptRunConfig(str(source_dir), "span.py", arguments=["2"], compute_target=cluster))
    second = exp.submit(ScriptRunConfig(str(source_dir), "span.py", arguments=["0.2"], compute_target="one"))
    waiting = wait_for(
        lambda: sqlite_workspace.store.get_run(second.id).data.get("queuedBecause"), timeout=30
    )
    assert "All 1 slot(s) of compute target 'one' are in use" in waiting
    assert sqlite_workspace.store.get_run(second.id).status == RunStatus.QUEUED
    assert [r.id for r in cluster.get_active_runs()] and cluster.get_status().queued >= 1  # type: ignore[attr-defined]
    first.wait_for_completion(raise_on_error=True)
    second.wait_for_completion(raise_on_error=True)
    (_start1, end1), (start2, _end2) = _span(first), _span(second)
    assert start2 >= end1, "the second run started while the first still held the only slot"
    assert sqlite_workspace.store.get_run(second.id).data["queuedBecause"] is None
    # the 'local' target stays unlimited by named targets: two local runs overlap
    a = exp.submit(ScriptRunConfig(str(source_dir), "span.py", arguments=["2"]))
    b = exp.submit(ScriptRunConfig(str(source_dir), "span.py", arguments=["2"]))
    a.wait_for_completion(raise_on_error=True)
    b.wait_for_completion(raise_on_error=True)
    assert _span(b)[0] < _span(a)[1]


def test_a_crashed_run_does_not_hold_a_slot(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    """A run left Running by a supervisor that died must not block its target forever."""
    ComputeTarget.create(sqlite_workspace, "one", AmlCompute.provisioning_configuration(max_nodes=1))
    dead = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    ghost_supervisor = identity(dead.pid)
    dead.kill()
    dead.wait()
    exp = Experiment(sqlite_workspace, "slots")
    ghost = RunRecord(
        run_id="ghost_1",
        experiment_id=sqlite_workspace.store.get_or_create_experiment("slots").id,
        experiment_name="slots",
        status=RunStatus.RUNNING,
        run_type="azureml.scriptrun",
        created_time=time.time(),
        target="one",
        data={"supervisor": ghost_supervisor},
    )
    sqlite_workspace.store.create_run(ghost)
    source_dir.gen({"span.py": OVERLAP_SCRIPT})
    run = exp.submit(ScriptRunConfig(str(source_dir), "span.py", arguments=["0"], compute_target="one"))
    assert run.wait_for_completion(raise_on_error=True)["status"] == "Completed"


def test_deleting_a_target_fails_the_runs_waiting_for_it(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    cluster = ComputeTarget.create(
        sqlite_workspace, "one", AmlCompute.provisioning_configuration(max_nodes=1)
    )
    release = source_dir.path / "release"
    source_dir.gen({"hold.py": HOLD_SCRIPT})
    exp = Experiment(sqlite_workspace, "slots")
    busy = exp.submit(
        ScriptRunConfig(str(source_dir), "hold.py", arguments=[str(release)], compute_target="one")
    )
    wait_for(lambda: sqlite_workspace.store.get_run(busy.id).status == RunStatus.RUNNING, timeout=30)
    queued = exp.submit(
        ScriptRunConfig(str(source_dir), "hold.py", arguments=[str(release)], compute_target="one")
    )
    wait_for(lambda: sqlite_workspace.store.get_run(queued.id).data.get("queuedBecause"), timeout=30)
    cluster.delete()
    wait_for(lambda: sqlite_workspace.store.get_run(queued.id).status == RunStatus.FAILED, timeout=30)
    assert "no compute target 'one'" in sqlite_workspace.store.get_run(queued.id).data["error"]["message"]
    release.touch()
    busy.wait_for_completion(raise_on_error=True)  # a run that started finishes


def test_a_run_canceled_while_queued_never_starts(sqlite_workspace: Workspace, source_dir: SourceDir) -> None:
    ComputeTarget.create(sqlite_workspace, "one", AmlCompute.provisioning_configuration(max_nodes=1))
    release = source_dir.path / "release"
    source_dir.gen({"hold.py": HOLD_SCRIPT, "mark.py": "open('started', 'w').close()\n"})
    exp = Experiment(sqlite_workspace, "slots")
    busy = exp.submit(
        ScriptRunConfig(str(source_dir), "hold.py", arguments=[str(release)], compute_target="one")
    )
    wait_for(lambda: sqlite_workspace.store.get_run(busy.id).status == RunStatus.RUNNING, timeout=30)
    queued = exp.submit(ScriptRunConfig(str(source_dir), "mark.py", compute_target="one"))
    wait_for(lambda: sqlite_workspace.store.get_run(queued.id).data.get("queuedBecause"), timeout=30)
    queued.cancel()
    assert queued.wait_for_completion()["status"] == "Canceled"
    files = queued.get_file_names()
    assert not any(name.endswith("70_driver_log.txt") for name in files), files  # the script never ran
    prep = [n for n in files if "65_job_prep" in n]
    assert prep, files
    log = Path(sqlite_workspace.artifacts.local_path(f"runs/{queued.id}/{prep[0]}")).read_text()
    assert "canceled while it waited for a slot on 'one'" in log
    assert sqlite_workspace.store.get_run(busy.id).status == RunStatus.RUNNING
    release.touch()
    busy.wait_for_completion(raise_on_error=True)


# -- through a real server ---------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, ServerProcess]]:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace.create(tmp_path / "server-ws" / ".runyard")
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        yield ws, server


def test_targets_through_a_server_follow_its_auth_rules(
    served: tuple[Workspace, ServerProcess], source_dir: SourceDir
) -> None:
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    admin, _ = create_token(ws.store, "admin", compute=["*"])
    write, _ = create_token(ws.store, "write", compute=["*"])
    read, _ = create_token(ws.store, "read")
    as_admin = Workspace.get(server.url, token=admin)
    cluster = sample_pattern(as_admin, "srv-cpu", max_nodes=1)
    assert isinstance(cluster, AmlCompute) and cluster.slots == 1
    # the server's own workspace holds the record; readers see it, only admins change it
    assert [t.name for t in ComputeTarget.list(ws)] == ["srv-cpu"]
    assert isinstance(ComputeTarget(Workspace.get(server.url, token=read), "srv-cpu"), AmlCompute)
    as_writer = Workspace.get(server.url, token=write)
    with pytest.raises(AuthError, match="'admin' scope"):
        ComputeTarget.create(as_writer, "other", AmlCompute.provisioning_configuration(max_nodes=2))
    with pytest.raises(AuthError, match="'admin' scope"):
        ComputeTarget(as_writer, "srv-cpu").delete()
    with pytest.raises(ComputeTargetException, match="no compute target 'nope'"):
        ComputeTarget(as_writer, "nope")
    missing = httpx.get(f"{server.url}/api/v1/compute/nope", headers={"Authorization": f"Bearer {read}"})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "ComputeTargetNotFound"
    bad = httpx.post(
        f"{server.url}/api/v1/compute",
        json={"name": "x_y", "kind": "AmlCompute", "max_nodes": 1},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert bad.status_code == 400 and "letters, digits or '-'" in bad.text
    # a script run on the target, submitted through the server, runs on this machine
    source_dir.gen({"span.py": OVERLAP_SCRIPT})
    run = Experiment(as_writer, "remote-slots").submit(
        ScriptRunConfig(str(source_dir), "span.py", arguments=["0"], compute_target="srv-cpu")
    )
    run.wait_for_completion(raise_on_error=True)
    assert ws.store.get_run(run.id).target == "srv-cpu"
    server.check_healthy()


def test_studio_compute_page_lists_named_targets(tmp_path: Path, source_dir: SourceDir) -> None:
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    ComputeTarget.create(
        ws, "cpu-cluster", AmlCompute.provisioning_configuration("STANDARD_D2_V2", max_nodes=1)
    )
    ComputeTarget.create(ws, "dev-box", ComputeInstance.provisioning_configuration("STANDARD_DS3_V2"))
    release = source_dir.path / "release"
    source_dir.gen({"hold.py": HOLD_SCRIPT})
    exp = Experiment(ws, "studio-slots")
    hold = ScriptRunConfig(str(source_dir), "hold.py", arguments=[str(release)], compute_target="cpu-cluster")
    busy = exp.submit(hold)
    wait_for(lambda: ws.store.get_run(busy.id).status == RunStatus.RUNNING, timeout=30)
    queued = exp.submit(hold)
    wait_for(lambda: ws.store.get_run(queued.id).data.get("queuedBecause"), timeout=30)
    with running_server(ws.path, tmp_path / "server.log") as server:
        page = httpx.get(f"{server.url}/compute", timeout=30)
    assert page.status_code == 200
    text = page.text
    assert 'aria-label="Compute target local"' in text  # the built-in target stays
    section = text.split('aria-label="Compute target cpu-cluster"')[1].split("</section>")[0]
    assert "AmlCompute" in section and "STANDARD_D2_V2" in section and "min 0 / max 1 nodes" in section
    assert "1 running of 1 slots · 1 queued" in section
    assert busy.id in section and queued.id in section and "are in use" in section
    box = text.split('aria-label="Compute target dev-box"')[1].split("</section>")[0]
    assert "ComputeInstance" in box and "STANDARD_DS3_V2" in box and "Idle" in box
    release.touch()
    busy.wait_for_completion(raise_on_error=True)
    queued.wait_for_completion(raise_on_error=True)


def test_upgrade_from_0007_adds_the_table(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from runyard.store import upgrade_store
    from runyard.store.migrations.runner import SCRIPT_LOCATION
    from runyard.store.sql_base import engine_for

    uri = f"sqlite:///{tmp_path}/old.db"
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    with engine_for(uri).begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
    with pytest.raises(RunyardError, match="runyard db upgrade"):
        SqlStore(uri)
    upgrade_store(uri)
    store = SqlStore(uri)
    assert store.list_compute_targets() == []
    ws = Workspace.create(tmp_path / "ws", tracking_uri=uri)
    ComputeTarget.create(ws, "cpu", AmlCompute.provisioning_configuration(max_nodes=2))
    assert [t.name for t in store.list_compute_targets()] == ["cpu"]
    assert os.path.exists(tmp_path / "old.db")


def test_pipeline_steps_share_their_targets_slots(
    sqlite_workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two independent steps on a one-node cluster run one after the other; the scheduler's own pool
    (4 here) is not what holds the second back, the cluster's is."""
    from runyard.pipeline import Pipeline, PythonScriptStep

    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "4")
    source_dir.gen(
        {
            "span.py": "import sys, time\nfrom runyard import Run\nrun = Run.get_context()\n"
            "run.log('start', time.time())\ntime.sleep(float(sys.argv[1]))\nrun.log('end', time.time())\n"
        }
    )
    cluster = sample_pattern(sqlite_workspace, "one", max_nodes=1)
    steps = [
        PythonScriptStep(
            name=f"s{i}",
            script_name="span.py",
            arguments=["1.5"],
            source_directory=str(source_dir),
            compute_target=cluster,
            allow_reuse=False,
        )
        for i in range(2)
    ]
    run = Experiment(sqlite_workspace, "slot-steps").submit(Pipeline(sqlite_workspace, steps))
    run.wait_for_completion(raise_on_error=True)
    spans = sorted((m["start"], m["end"]) for m in (s.get_metrics() for s in run.get_steps()))
    assert spans[1][0] >= spans[0][1], f"steps on a one-node cluster overlapped: {spans}"
