"""The scheduler's side of the trust model (docs/security.md), with real schedulers, servers and steps.

Issue 10: a scheduler runs only pipeline runs placed on its own workspace and target, submitted by a
principal allowed to use that target; a crafted graph (`script: "-c"`, a script outside its snapshot,
a tampered snapshot) runs nothing; a malformed record fails that one run while the others go on; and a
scheduler never starts, recovers or kills another workspace folder's steps, even on the same host and
database.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir, free_port, insert_pipeline, run_cli, wait_for
from runyard import Workspace
from runyard.core.compute_target import AmlCompute, ComputeTarget
from runyard.core.snapshot import snapshot_files
from runyard.engine.service import INFO_FILE, SchedulerService
from runyard.errors import AuthError, InvalidInputError
from runyard.pipeline import Pipeline, PipelineRun, PythonScriptStep
from runyard.server.auth import create_token
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord
from runyard.store.snapshots import SnapshotStore
from server_process import running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")

MARK = """
    import pathlib, sys, time
    pathlib.Path(sys.argv[1]).write_text("ran")
    time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def crafted_graph(ws: Workspace, src: SourceDir, script: str, arguments: list[str]) -> dict[str, Any]:
    """A graph as an attacker writes it into the store: a real snapshot, any script and arguments."""
    graph = Pipeline(ws, [PythonScriptStep("mark.py", name="step", source_directory=src)]).graph
    snap = SnapshotStore(ws.artifacts).save(src.path, snapshot_files(src.path))
    step = graph["steps"][0]
    step.update(script=script, arguments=[{"literal": a} for a in arguments])
    step["source"].update(snapshot=snap.id, files=len(snap.files))
    return graph


def ended(ws: Workspace, run_id: str, timeout: float = 60) -> RunRecord:
    return wait_for(
        lambda: (r := ws.store.get_run(run_id)).status in TERMINAL_STATUSES and r, timeout=timeout
    )


def message(record: RunRecord) -> str:
    return str((record.data.get("error") or {}).get("message", ""))


def step_statuses(ws: Workspace, run_id: str) -> set[str]:
    return {r.status for r in ws.store.list_descendants(run_id, recursive=False)}


def mark_pipeline(ws: Workspace, src: SourceDir, marker: Path, seconds: float = 0) -> Pipeline:
    step = PythonScriptStep(
        "mark.py", name="mark", arguments=[str(marker), seconds], source_directory=src, allow_reuse=False
    )
    return Pipeline(ws, [step])


@pytest.fixture
def src(tmp_path: Path) -> SourceDir:
    return SourceDir(tmp_path / "src").gen({"mark.py": MARK})


@pytest.fixture
def scheduler(sqlite_workspace: Workspace) -> Iterator[SchedulerService]:
    """A SchedulerService on a thread, as `runyard up` runs it (without its studio)."""
    lines: list[str] = []
    service = SchedulerService(sqlite_workspace, idle_seconds=600, echo=lines.append)
    service.lines = lines  # type: ignore[attr-defined]
    worker = threading.Thread(target=service.serve, daemon=True)
    worker.start()
    yield service
    service.stop()
    worker.join(timeout=30)
    assert not worker.is_alive()


# -- High 3: malformed records fail alone ----------------------------------------------------------
def test_malformed_pipeline_records_fail_alone_and_good_ones_run(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    flag = tmp_path / "flag-ran"
    here = {"workspace": ws.identity, "target": "local"}
    good_graph = crafted_graph(ws, src, "mark.py", [str(tmp_path / "crafted-ran")])
    bad = {
        "empty data": (insert_pipeline(ws, {}, ["step"]), "its graph is invalid"),
        "graph not an object": (
            insert_pipeline(ws, {"graph": "x", "placement": here}, ["step"]),
            "its graph is invalid",
        ),
        "missing step run": (
            insert_pipeline(ws, {"graph": good_graph, "placement": here}, []),
            "has no step run",
        ),
        "python -c": (
            insert_pipeline(
                ws,
                {
                    "graph": crafted_graph(ws, src, "-c", [f"open({str(flag)!r}, 'w').write('x')"]),
                    "placement": here,
                },
                ["step"],
            ),
            "interpreter option",
        ),
        "script outside snapshot": (
            insert_pipeline(
                ws, {"graph": crafted_graph(ws, src, "other.py", [str(flag)]), "placement": here}, ["step"]
            ),
            "is not a file of its snapshot",
        ),
        "missing parameter value": (
            insert_pipeline(
                ws,
                {
                    "graph": {**good_graph, "parameters": {"p": {"default": 1}}},
                    "parameters": {},
                    "placement": here,
                },
                ["step"],
            ),
            "parameter 'p' has no usable value",
        ),
    }
    good = mark_pipeline(ws, src, tmp_path / "good-ran").submit(
        "good", show_output=False
    )  # starts a scheduler
    assert good.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
    assert (tmp_path / "good-ran").read_text() == "ran"
    for what, (run_id, words) in bad.items():
        record = ended(ws, run_id)
        assert record.status == RunStatus.FAILED, what
        assert words in message(record), (what, message(record))
        assert step_statuses(ws, run_id) <= {RunStatus.CANCELED}, what
    assert not flag.exists()
    assert not (tmp_path / "crafted-ran").exists()
    log = (ws.path / "scheduler.log").read_text()
    assert "Traceback" not in log, log


# -- Critical: who may run code -------------------------------------------------------------------
def test_a_write_token_record_over_rest_does_not_run_on_the_server_host(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 "Critical": a write token (no compute) POSTs a pipeline naming an uploaded script; the
    server now refuses it, and if such a record reaches the store anyway, the scheduler on the server's
    folder (`runyard up`) marks it Failed, names the token, and runs nothing. The same record from a
    token granted `local` does run: the check is the grant, not the route."""
    ws = sqlite_workspace
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    writer, writer_record = create_token(ws.store, "write")  # type: ignore[arg-type]
    _, runner_record = create_token(ws.store, "write", compute=("local",))  # type: ignore[arg-type]
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        client = Workspace.get(server.url, token=writer)
        graph = crafted_graph(client, src, "mark.py", [str(tmp_path / "writer-ran")])
        with pytest.raises(AuthError, match="placement"):  # the server refuses it first (H1's layer)
            insert_pipeline(client, {"graph": graph, "parameters": {}}, ["step"])
    # Defense in depth: the same records as the server would have stamped them, written into the store
    # directly. The writer leaves placement out: an old record counts as the server folder's own.
    runs = {}
    for name, record in (("writer", writer_record), ("runner", runner_record)):
        graph = crafted_graph(ws, src, "mark.py", [str(tmp_path / f"{name}-ran")])
        data = {"graph": graph, "parameters": {}, "submittedBy": {"token": record.token_id}}
        if name == "runner":
            data["placement"] = {"workspace": ws.identity, "target": "local"}
        runs[name] = insert_pipeline(ws, data, ["step"])
    done = run_cli("-w", str(ws.path), "up", "--no-studio", "--idle-seconds", "3", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    refused = ended(ws, runs["writer"])
    assert refused.status == RunStatus.FAILED
    text = message(refused)
    assert writer_record.token_id in text and "'local'" in text, text
    assert "runyard token create --scope write --compute local" in text, text
    assert step_statuses(ws, runs["writer"]) == {RunStatus.CANCELED}
    assert not (tmp_path / "writer-ran").exists()
    assert ended(ws, runs["runner"]).status == RunStatus.COMPLETED
    assert (tmp_path / "runner-ran").read_text() == "ran"


def test_a_token_granted_local_only_runs_no_step_on_a_named_target(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, scheduler: SchedulerService
) -> None:
    """Issue 15 review: the scheduler checked the submitter's grant for the pipeline's placement target
    ("local") only, so a token granted "local" alone ran a step on a named compute target (a server with
    --compute stores such a run as sent; the record is written here as it would have stamped it).
    Every step's target is checked too: the pipeline is refused, naming the step, the target, the token
    and the grant that would allow it; nothing runs."""
    ws = sqlite_workspace
    cfg = AmlCompute.provisioning_configuration(max_nodes=1)
    ComputeTarget.create(ws, "gpu-cluster", cfg).wait_for_completion(show_output=False)
    _, record = create_token(ws.store, "write", compute=("local",))  # type: ignore[arg-type]
    graph = crafted_graph(ws, src, "mark.py", [str(tmp_path / "ran")])
    graph["steps"][0]["compute_target"] = "gpu-cluster"
    data = {
        "graph": graph,
        "parameters": {},
        "submittedBy": {"token": record.token_id},
        "placement": {"workspace": ws.identity, "target": "local"},
    }
    refused = ended(ws, insert_pipeline(ws, data, ["step"]))
    assert refused.status == RunStatus.FAILED
    assert refused.data["error"]["code"] == "NotAuthorized"
    text = message(refused)
    assert "compute target 'gpu-cluster' (step 'step')" in text and record.token_id in text, text
    assert "its compute targets: local" in text and "--compute gpu-cluster" in text, text
    assert step_statuses(ws, refused.run_id) == {RunStatus.CANCELED}
    assert not (tmp_path / "ran").exists()


def test_unauthenticated_submissions_run_only_under_runyard_up(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path
) -> None:
    """{"auth": "off"} is what a server without --auth stamps: any local process could have sent it."""
    ws = sqlite_workspace
    graph = crafted_graph(ws, src, "mark.py", [str(tmp_path / "ran")])
    data = {
        "graph": graph,
        "submittedBy": {"auth": "off"},
        "placement": {"workspace": ws.identity, "target": "local"},
    }
    first = insert_pipeline(ws, data, ["step"])
    done = run_cli("-w", str(ws.path), "up", "--no-studio", "--idle-seconds", "2")  # the scheduler alone
    assert done.returncode == 0, done.stdout + done.stderr
    refused = ended(ws, first)
    assert refused.status == RunStatus.FAILED and "without --auth" in message(refused)
    assert not (tmp_path / "ran").exists()
    second = insert_pipeline(ws, data, ["step"])
    port = str(free_port())
    done = run_cli("-w", str(ws.path), "up", "--port", port, "--idle-seconds", "2")  # with its own studio
    assert done.returncode == 0, done.stdout + done.stderr
    assert "This machine is compute" in done.stdout  # its studio may start clones here
    assert ended(ws, second).status == RunStatus.COMPLETED
    assert (tmp_path / "ran").read_text() == "ran"


def test_a_client_of_a_server_without_auth_runs_its_own_pipelines_only(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without --auth is loopback-only: its tokenless client's scheduler (on this machine) runs
    what is placed on the client's folder, and the server folder's own scheduler still runs none of it."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    with running_server(sqlite_workspace.path, tmp_path / "server.log") as server:
        client = Workspace.get(server.url)
        run = mark_pipeline(client, src, tmp_path / "ran").submit("open", show_output=False)
        assert run.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
        assert sqlite_workspace.store.get_run(run.id).data["submittedBy"] == {"auth": "off"}
        graph = crafted_graph(client, src, "mark.py", [str(tmp_path / "server-ran")])
        placed = {"workspace": sqlite_workspace.identity, "target": "local"}
        with pytest.raises(AuthError, match="--compute"):  # the server refuses it first (H1's layer)
            insert_pipeline(client, {"graph": graph, "placement": placed}, ["step"])
        # defense in depth: the record as that server would have stamped it, written into the store
        data = {"graph": graph, "placement": placed, "submittedBy": {"auth": "off"}}
        forged = insert_pipeline(sqlite_workspace, data, ["step"])
        done = run_cli("-w", str(sqlite_workspace.path), "up", "--no-studio", "--idle-seconds", "2")
        assert done.returncode == 0, done.stdout + done.stderr
    assert "without --auth" in message(ended(sqlite_workspace, forged))
    assert not (tmp_path / "server-ran").exists()


# -- snapshots are content-addressed on the way out -------------------------------------------------
def test_a_tampered_snapshot_blob_or_manifest_runs_nothing(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    marker, evil = tmp_path / "ran", tmp_path / "evil-ran"
    first = mark_pipeline(ws, src, marker).submit("snap", show_output=False)
    assert first.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
    marker.unlink()
    snap_id = first.get_graph()["steps"][0]["source"]["snapshot"]
    store = SnapshotStore(ws.artifacts)
    (sha,) = store.load(snap_id).files.values()
    blob = Path(ws.artifacts.local_path(f"snapshots/blobs/{sha[:2]}/{sha}"))
    blob.write_text(f"open({str(evil)!r}, 'w').write('x')\n")  # a write token can PUT this file
    second = mark_pipeline(ws, src, marker).submit("snap", show_output=False)
    details = second.wait_for_completion(show_output=False, timeout_seconds=120, raise_on_error=False)
    assert details == "Failed"
    (step,) = ws.store.list_descendants(second.id, recursive=False)
    assert step.status == RunStatus.FAILED and "was changed after it was saved" in message(step), message(
        step
    )
    assert not evil.exists() and not marker.exists()

    manifest = Path(ws.artifacts.local_path(f"snapshots/manifests/{snap_id}.json"))
    manifest.write_text(json.dumps({"mark.py": "0" * 64}))
    third = mark_pipeline(ws, src, marker).submit("snap", show_output=False)
    record = ended(ws, third.id)
    assert record.status == RunStatus.FAILED
    assert "manifest no longer matches its id" in message(record), message(record)
    assert not evil.exists() and not marker.exists()


def started_after_recovery(ws: Workspace, run_id: str) -> None:
    """Wait until `ws`'s scheduler has recovered (its first act) and started pipeline `run_id`."""
    log = ws.path / "scheduler.log"
    wait_for(lambda: log.exists() and f"pipeline {run_id}: started" in log.read_text(), timeout=60)


# -- High 1: two folders, one database --------------------------------------------------------------
def test_two_folders_on_one_postgres_each_run_only_their_own(
    postgres_uri: str, src: SourceDir, tmp_path: Path
) -> None:
    """Folder 2's scheduler starting (and recovering) while folder 1's step runs on the same host must
    neither fail nor kill it, and neither scheduler may pick up the other's pipeline."""
    one = Workspace.create(tmp_path / "one", tracking_uri=postgres_uri)
    two = Workspace.create(tmp_path / "two", tracking_uri=postgres_uri)
    assert one.identity != two.identity
    first = mark_pipeline(one, src, tmp_path / "one-ran", seconds=10).submit("shared", show_output=False)
    wait_for(lambda: (tmp_path / "one-ran").exists(), timeout=60)  # folder 1's step is running
    second = mark_pipeline(two, src, tmp_path / "two-ran").submit("shared", show_output=False)
    started_after_recovery(two, second.id)
    (running,) = one.store.list_descendants(first.id, recursive=False)
    assert running.status == RunStatus.RUNNING, message(running)
    assert second.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
    assert first.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
    for ws, run in ((one, first), (two, second)):
        instance = json.loads((ws.path / INFO_FILE).read_text())["instance"]
        assert ws.store.get_run(run.id).data["supervisor"]["scheduler"] == instance
        (step,) = ws.store.list_descendants(run.id, recursive=False)
        assert step.data["process"]["scheduler"] == instance
    assert "interrupted" not in (two.path / "scheduler.log").read_text()


def test_two_clients_of_one_server_each_run_only_their_own(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 High 1 as reported: machine 1's scheduler must not start client 2's step, and machine 2's
    scheduler starting must not fail or SIGTERM machine 1's running step (both on this one host)."""
    tokens = [create_token(sqlite_workspace.store, "write", compute=("local",))[0] for _ in range(2)]  # type: ignore[arg-type]
    with running_server(sqlite_workspace.path, tmp_path / "server.log", auth=True) as server:
        clients = []
        for n, token in enumerate(tokens):
            monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / f"machine{n}"))
            clients.append(Workspace.get(server.url, token=token))
        one, two = clients
        assert one.path != two.path and one.identity != two.identity
        monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "machine0"))
        first = mark_pipeline(one, src, tmp_path / "one-ran", seconds=10).submit("shared", show_output=False)
        wait_for(lambda: (tmp_path / "one-ran").exists(), timeout=60)
        monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "machine1"))
        second = mark_pipeline(two, src, tmp_path / "two-ran").submit("shared", show_output=False)
        started_after_recovery(two, second.id)
        (running,) = sqlite_workspace.store.list_descendants(first.id, recursive=False)
        assert running.status == RunStatus.RUNNING, message(running)
        assert second.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
        assert first.wait_for_completion(show_output=False, timeout_seconds=120) == "Finished"
        for ws, run in ((one, first), (two, second)):
            instance = json.loads((ws.path / INFO_FILE).read_text())["instance"]
            assert sqlite_workspace.store.get_run(run.id).data["supervisor"]["scheduler"] == instance
        assert "interrupted" not in (two.path / "scheduler.log").read_text()


# -- the workspace identity -----------------------------------------------------------------------
def test_workspace_identity_is_stable_and_kept_for_url_workspaces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = Workspace.create(tmp_path / "ws")
    assert Workspace.get(ws.path).identity == ws.identity
    cfg = json.loads((ws.path / "config.json").read_text())
    del cfg["id"]  # a folder made by an older runyard gets one on first use, then keeps it
    (ws.path / "config.json").write_text(json.dumps(cfg))
    made = Workspace.get(ws.path).identity
    assert made != ws.identity and Workspace.get(ws.path).identity == made
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    remote = Workspace.get("http://127.0.0.1:9/").identity
    assert Workspace.get("http://127.0.0.1:9/").identity == remote != made


def test_creating_a_workspace_on_a_file_says_so(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="it is a file, not a folder"):
        Workspace.create(tmp_path / "file")
    with pytest.raises(InvalidInputError, match="is a file, not a folder"):
        Workspace.create(tmp_path / "file" / "ws")


def test_pipeline_runs_record_their_placement(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path
) -> None:
    run: PipelineRun = mark_pipeline(sqlite_workspace, src, tmp_path / "ran").submit("p", show_output=False)
    data = sqlite_workspace.store.get_run(run.id).data
    assert data["placement"] == {"workspace": sqlite_workspace.identity, "target": "local"}
    run.wait_for_completion(show_output=False, timeout_seconds=120)


def test_cloning_a_crafted_run_reports_its_graph_instead_of_submitting(
    sqlite_workspace: Workspace, src: SourceDir, tmp_path: Path
) -> None:
    """The studio's clone reads the stored graph: it is checked the way the scheduler checks it."""
    ws = sqlite_workspace
    graph = crafted_graph(ws, src, "-c", ["import os"])
    run_id = insert_pipeline(
        ws, {"graph": graph, "placement": {"workspace": "elsewhere", "target": "local"}}, ["step"]
    )
    draft = PipelineRun.get(ws, run_id).clone()
    errors = draft.validate()
    assert len(errors) == 1 and "interpreter option" in errors[0], errors
    with pytest.raises(InvalidInputError, match="interpreter option"):
        draft.submit("clone", show_output=False)
