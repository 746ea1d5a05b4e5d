"""Security/robustness review of issue 11's new surfaces (compute targets and their slots, script-run
settings, Azure config.json, `runyard port`, the v1 launcher, script outputs).

Each test demonstrates one hole found in review: it FAILS on the code as reviewed, and its docstring
says what the behaviour should be.
"""

from __future__ import annotations

import json
import stat
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SourceDir, invoke_cli, wait_for
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.core.compute_target import AmlCompute, ComputeTarget
from runyard.errors import ComputeTargetException, RunyardError
from runyard.server.auth import create_token
from runyard.status import RunStatus
from runyard.store import RunRecord, SqlStore
from server_process import ServerProcess, running_server

pytestmark = pytest.mark.usefixtures("no_stray_processes")


@pytest.fixture(autouse=True)
def _quiet_v1_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _settle(ws: Workspace, run_id: str, timeout: float = 20.0) -> str:
    """The run's status once it ended, or its last status after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    status = ws.store.get_run(run_id).status
    while time.monotonic() < deadline and status not in ("Completed", "Failed", "Canceled"):
        time.sleep(0.2)
        status = ws.store.get_run(run_id).status
    return status


def _cancel_and_wait(ws: Workspace, run_id: str) -> None:
    record = ws.store.get_run(run_id)
    if record.status not in ("Completed", "Failed", "Canceled"):
        ws.store.set_run_status(run_id, RunStatus.CANCEL_REQUESTED)
        wait_for(lambda: ws.store.get_run(run_id).status in ("Canceled", "Failed", "Completed"), timeout=30)


# -- compute/slots.py ---------------------------------------------------------------------------------


def test_a_child_run_left_running_does_not_hold_its_targets_slot_forever(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    """A script on a 1-node target that calls `run.child_run()` and ends without completing the child
    leaves the child Running (target inherited, no supervisor/process recorded, its owner process dead).
    compute/slots.py `_holds_slot` counts it as busy because `process_state(None)` is 'unknown', so the
    target's only slot is taken forever and every later run on it waits in Queued indefinitely.

    Expected: a run whose slot holder cannot be proven alive (no supervisor/process, or a dead `owner`)
    does not hold a slot (and child runs, which share their parent's node in v1, never take one), so
    the next run on the target starts."""
    ws = sqlite_workspace
    ComputeTarget.create(ws, "one", AmlCompute.provisioning_configuration(max_nodes=1))
    source_dir.gen(
        {
            "kid.py": "from runyard import Run\nRun.get_context().child_run('kid').log('x', 1)\n",
            "ok.py": "print('ok')\n",
        }
    )
    exp = Experiment(ws, "slots")
    parent = exp.submit(ScriptRunConfig(str(source_dir), "kid.py", compute_target="one"))
    assert parent.wait_for_completion()["status"] == "Completed"
    second = exp.submit(ScriptRunConfig(str(source_dir), "ok.py", compute_target="one"))
    try:
        status = _settle(ws, second.id, timeout=20)
        assert status == "Completed", (
            f"the next run on 'one' is still {status}: "
            f"{ws.store.get_run(second.id).data.get('queuedBecause')}"
        )
    finally:
        _cancel_and_wait(ws, second.id)


# -- through a server: tokens without admin must not reshape a target --------------------------------


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Workspace, ServerProcess]]:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace.create(tmp_path / "server-ws" / ".runyard")
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        yield ws, server


def _script_record(ws: Workspace, **fields: Any) -> dict[str, Any]:
    exp = ws.store.get_or_create_experiment("crafted")
    run = RunRecord(
        run_id=str(uuid.uuid4()),
        experiment_id=exp.id,
        experiment_name=exp.name,
        run_type="azureml.scriptrun",
        created_time=time.time(),
        **fields,
    )
    return json.loads(json.dumps(run.__dict__, default=list))


def test_a_write_token_without_compute_cannot_starve_a_named_target(
    served: tuple[Workspace, ServerProcess], source_dir: SourceDir
) -> None:
    """A write token with no compute grant (and no admin) POSTs /runs a script run with
    target='srv-one' and status 'Running' and no data. Nothing runs it, but compute/slots.py counts it
    as holding one of srv-one's slots (no supervisor recorded -> 'unknown' -> busy), forever: the
    owner's runs on that target never leave Queued. Changing how many runs a target runs at once is an
    admin's power (routes_compute.py); a crafted record must not take it.

    Expected: a record whose supervisor/process is not provably alive does not hold a slot (or the
    server refuses script runs created already started), so the owner's run completes."""
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    ComputeTarget.create(ws, "srv-one", AmlCompute.provisioning_configuration(max_nodes=1))
    owner, _ = create_token(ws.store, "write", compute=["*"])
    attacker, _ = create_token(ws.store, "write")
    crafted = _script_record(ws, status="Running", target="srv-one")
    answer = httpx.post(
        f"{server.url}/api/v1/runs",
        json=[crafted],
        headers={"Authorization": f"Bearer {attacker}"},
        timeout=30,
    )
    if answer.status_code >= 400:
        return  # refusing the crafted record is one way to hold
    source_dir.gen({"ok.py": "print('ok')\n"})
    as_owner = Workspace.get(server.url, token=owner)
    run = Experiment(as_owner, "victim").submit(
        ScriptRunConfig(str(source_dir), "ok.py", compute_target="srv-one")
    )
    try:
        status = _settle(ws, run.id, timeout=20)
        assert status == "Completed", (
            f"the owner's run is still {status}: {ws.store.get_run(run.id).data.get('queuedBecause')}"
        )
    finally:
        _cancel_and_wait(ws, run.id)


def test_a_write_token_cannot_swap_the_snapshot_of_someone_elses_run(
    served: tuple[Workspace, ServerProcess],
) -> None:
    """A script run records the code it ran as data.snapshotId (ScriptRunConfig, take_snapshot), and
    `run.restore_snapshot()` hands that code back to the user. `snapshotId` is neither a SUBMISSION_KEY
    nor a steering key, so any write token may PATCH /runs/{id}/data on a run it did not create and
    point it at a snapshot of its own: the victim's restore_snapshot() then returns the attacker's code.

    Expected: 403 (or 409) for a token that neither created the run nor is its own run token."""
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    owner, _ = create_token(ws.store, "write", compute=["*"])
    attacker, _ = create_token(ws.store, "write")
    mine = _script_record(ws, status="NotStarted", target="local", data={"snapshotId": "a" * 64})
    made = httpx.post(
        f"{server.url}/api/v1/runs", json=[mine], headers={"Authorization": f"Bearer {owner}"}, timeout=30
    )
    assert made.status_code == 200, made.text
    swap = httpx.patch(
        f"{server.url}/api/v1/runs/{mine['run_id']}/data",
        json={"patch": {"snapshotId": "b" * 64}},
        headers={"Authorization": f"Bearer {attacker}"},
        timeout=30,
    )
    assert swap.status_code in (403, 409), (swap.status_code, swap.text)
    assert ws.store.get_run(mine["run_id"]).data["snapshotId"] == "a" * 64


def test_a_write_token_cannot_make_someone_elses_run_upload_a_folder_of_their_machine(
    served: tuple[Workspace, ServerProcess], tmp_path: Path
) -> None:
    """HIGH. `Experiment.start_logging(outputs=...)` (and `child_run(outputs=...)`) record the local
    folder to upload as data.outputsDirectory, and `Run.complete()`/`fail()` (also run at interpreter
    exit) upload whatever folder the *refreshed* record names (run_snapshots.py `_upload_outputs`).
    `outputsDirectory` is not a steering key, so any write token may PATCH it on a run it did not create:
    pointed at the victim's ~/.ssh (or any folder), the victim's own process uploads that folder into
    the run's outputs/ on the server when it completes, where the attacker reads it back.

    Expected: only the run's creator (or its own run token) may set outputsDirectory (403 otherwise),
    or complete() uploads only the folder its own process recorded; the secret never reaches the server."""
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    victim, _ = create_token(ws.store, "write")
    attacker, _ = create_token(ws.store, "write")
    secret = tmp_path / "victim-home" / ".ssh"
    secret.mkdir(parents=True)
    (secret / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\n")
    outputs = tmp_path / "victim-project" / "outputs"
    as_victim = Workspace.get(server.url, token=victim)
    run = Experiment(as_victim, "interactive").start_logging(outputs=str(outputs), snapshot_directory=None)
    httpx.patch(
        f"{server.url}/api/v1/runs/{run.id}/data",
        json={"patch": {"outputsDirectory": str(secret)}},
        headers={"Authorization": f"Bearer {attacker}"},
        timeout=30,
    )
    run.log("loss", 0.5)
    run.get_status()  # any refresh of the record (at exit, _end_with_interpreter refreshes too)
    run.complete()
    leaked = Path(ws.artifacts.local_path(f"runs/{run.id}/outputs/id_rsa"))
    assert not leaked.exists(), "the victim's run uploaded a folder the attacker chose"


@pytest.mark.parametrize("endpoint", ["data", "status"])
def test_a_write_token_cannot_rewrite_the_run_definition_of_someone_elses_run(
    served: tuple[Workspace, ServerProcess], endpoint: str
) -> None:
    """CRITICAL at commit dcfe376 (closed only by the uncommitted change that adds "runDefinition" to
    store/records.py SUBMISSION_KEYS): the supervisor reads a script run's runDefinition (script,
    arguments, command, environmentVariables) from the store when it starts, on the SUBMITTER's machine.
    Without runDefinition in SUBMISSION_KEYS any write token, with no compute grant, can PATCH it on a
    run it did not create between creation and the supervisor's start (Queued; the supervisor's
    interpreter takes ~1 s to start) and set command=[...] / environmentVariables={"LD_PRELOAD": ...,
    "PYTHONPATH": ...}: its code runs on the victim's machine as the victim.

    Expected: 403/409 and the record unchanged, over PATCH /data and POST /status alike. This test
    guards the pending fix; it fails at dcfe376."""
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    owner, _ = create_token(ws.store, "write", compute=["*"])
    attacker, _ = create_token(ws.store, "write")
    definition: dict[str, Any] = {
        "script": "train.py",
        "arguments": [],
        "environmentVariables": {},
        "command": None,
    }
    mine = _script_record(ws, status="Queued", target="local", data={"runDefinition": definition})
    made = httpx.post(
        f"{server.url}/api/v1/runs", json=[mine], headers={"Authorization": f"Bearer {owner}"}, timeout=30
    )
    assert made.status_code == 200, made.text
    evil = {
        **definition,
        "command": ["sh", "-c", "touch /tmp/pwned"],
        "environmentVariables": {"LD_PRELOAD": "/tmp/x.so"},
    }
    headers = {"Authorization": f"Bearer {attacker}"}
    if endpoint == "data":
        answer = httpx.patch(
            f"{server.url}/api/v1/runs/{mine['run_id']}/data",
            json={"patch": {"runDefinition": evil}},
            headers=headers,
            timeout=30,
        )
    else:
        answer = httpx.post(
            f"{server.url}/api/v1/runs/{mine['run_id']}/status",
            json={"status": "Queued", "data": {"runDefinition": evil}},
            headers=headers,
            timeout=30,
        )
    assert answer.status_code in (403, 409), (answer.status_code, answer.text)
    assert ws.store.get_run(mine["run_id"]).data["runDefinition"] == definition


# -- store/sql_compute.py: the same name rules everywhere ---------------------------------------------


@pytest.mark.parametrize("name", ["cpu\n", "local\n"])
def test_a_target_name_with_a_trailing_newline_is_refused(sqlite_workspace: Workspace, name: str) -> None:
    """NAME_RULES use `^...$`, and `$` also matches before a trailing newline, so 'cpu\\n' is a valid
    AmlCompute name, and 'local\\n' slips past the "'local' is built in" check (it is not == 'local').
    Such a target shows up in ws.compute_targets next to 'local' and can't be told apart in the studio.

    Expected: ComputeTargetException (use re.fullmatch or \\Z)."""
    with pytest.raises(ComputeTargetException):
        ComputeTarget.create(sqlite_workspace, name, AmlCompute.provisioning_configuration(max_nodes=1))


def test_a_target_name_with_a_trailing_newline_is_refused_over_rest(
    served: tuple[Workspace, ServerProcess],
) -> None:
    """Same rule at the REST boundary: POST /api/v1/compute {"name": "local\\n"} must be a 400, as
    {"name": "x_y"} is."""
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    admin, _ = create_token(ws.store, "admin")
    answer = httpx.post(
        f"{server.url}/api/v1/compute",
        json={"name": "local\n", "kind": "AmlCompute", "max_nodes": 1},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert answer.status_code == 400, (answer.status_code, answer.text)


@pytest.mark.parametrize("max_nodes", [True, "2", 2.0])
def test_rest_refuses_the_max_nodes_the_python_api_refuses(
    served: tuple[Workspace, ServerProcess], max_nodes: Any
) -> None:
    """`validate_compute_target` refuses max_nodes=True, '2' and 2.0 from the Python API and from a
    SQLite/PostgreSQL store ("must be a whole number"), but over REST pydantic's lax mode coerces them to
    1 / 2 before the rule sees them, so POST /api/v1/compute stores a target the other two refuse.

    Expected: 400/422 over REST too (strict ints in ComputeTargetRecord's request model)."""
    ws, server = served
    assert isinstance(ws.store, SqlStore)
    admin, _ = create_token(ws.store, "admin")
    answer = httpx.post(
        f"{server.url}/api/v1/compute",
        json={"name": "lax", "kind": "AmlCompute", "max_nodes": max_nodes},
        headers={"Authorization": f"Bearer {admin}"},
        timeout=30,
    )
    assert answer.status_code in (400, 422), (answer.status_code, answer.text)


# -- core/workspace_config.py, core/azure_identity.py: Azure config.json -------------------------------


def test_an_azure_config_cannot_link_to_a_workspace_outside_its_project(tmp_path: Path) -> None:
    """`locate()` follows the `runyard_workspace` key of an Azure config.json (`_linked`) to ANY existing
    workspace folder: an absolute path or '../..' works. A project (a cloned sample, a colleague's repo)
    whose .azureml/config.json names Azure workspace 'sample' and carries
    "runyard_workspace": "/home/me/other-project/.runyard" makes `Workspace.from_config()` open that
    other project's workspace: the sample's runs, models and compute targets land there (only a
    mismatch warning is printed).

    Expected: the link is honoured only when it stays inside the config's project folder, or when the
    linked workspace records the same Azure identity (what write_config(path=elsewhere) writes);
    otherwise from_config opens `<project>/.runyard`."""
    other = Workspace.create(tmp_path / "other" / ".runyard")
    other.write_config(path=tmp_path / "scratch")  # records ('local', 'local', <name>) on `other`
    project = tmp_path / "cloned-sample"
    (project / ".azureml").mkdir(parents=True)
    (project / ".azureml" / "config.json").write_text(
        json.dumps(
            {
                "subscription_id": "sub",
                "resource_group": "rg",
                "workspace_name": "sample",
                "runyard_workspace": str(other.path),
            }
        )
    )
    ws = Workspace.from_config(path=project)
    assert ws.path != other.path, "a config.json in the project opened a workspace outside it"
    assert ws.path == (project / ".runyard").resolve()


@pytest.mark.parametrize(
    "content",
    [
        b'{"tracking_uri": 5, "artifact_root": "artifacts"}',
        b'{"tracking_uri": "sqlite:///runyard.db", "artifact_root": 7}',
        b'["tracking_uri", "artifact_root"]',
        b'"tracking_uri artifact_root"',
        b'\xff\xfe{"tracking_uri": "x"}',
    ],
    ids=["uri-int", "root-int", "list", "string", "not-utf8"],
)
def test_a_malformed_workspace_config_is_a_runyard_error(tmp_path: Path, content: bytes) -> None:
    """`read_config` (core/workspace_config.py) checks only that the two keys are `in` the parsed value:
    wrong types (a number, a list, a string holding the key names) or non-UTF-8 bytes end in a raw
    AttributeError / TypeError / UnicodeDecodeError traceback from Workspace.get / from_config.

    Expected: InvalidInputError (a RunyardError) naming the file and the fix, as for invalid JSON."""
    folder = tmp_path / "proj" / ".runyard"
    folder.mkdir(parents=True)
    (folder / "config.json").write_bytes(content)
    with pytest.raises(RunyardError):
        Workspace.get(str(folder)).store  # noqa: B018  (opening it is the point)


# -- porting/ and cli/port.py ------------------------------------------------------------------------


def test_port_write_on_a_folder_leaves_files_outside_it_alone(tmp_path: Path) -> None:
    """`runyard port --write proj/` follows a symbolic link found while walking proj/ and rewrites its
    target (files.py write_atomic resolves the link), even when the target lies outside proj/: a port of
    one project edits another project's (or a shared library's) file. Black and ruff skip links that
    point outside the folder they walk.

    Expected: a file reached by walking a folder whose real path is outside that folder is skipped (or
    reported), never written; a link named explicitly on the command line may still be ported."""
    outside = tmp_path / "shared" / "lib.py"
    outside.parent.mkdir()
    outside.write_text("import azureml.core\n")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "train.py").write_text("import azureml.core\n")
    (project / "lib.py").symlink_to(outside)
    done = invoke_cli("port", "--write", "-q", str(project))
    assert done.returncode == 0, done.stderr
    assert (project / "train.py").read_text() == "import runyard.v1.core\n"
    assert outside.read_text() == "import azureml.core\n", "port --write proj/ rewrote a file outside proj/"


def test_port_write_leaves_a_read_only_file_unchanged(tmp_path: Path) -> None:
    """write_atomic renames a temporary file over the original, so a file the user made read-only
    (chmod 444) is rewritten anyway (and stays 0444, hiding that it changed): the write protection is
    bypassed whenever the folder is writable.

    Expected: a file without write permission is left as it is and reported as a problem (non-zero
    exit or a warning), as black/ruff fail on it."""
    source = tmp_path / "ro.py"
    source.write_text("import azureml.core\n")
    source.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    try:
        invoke_cli("port", "--write", "-q", str(source))
        assert source.read_text() == "import azureml.core\n", "a read-only file was rewritten"
    finally:
        source.chmod(0o644)


def test_port_reports_a_notebook_it_cannot_write_back_and_ports_the_rest(tmp_path: Path) -> None:
    """A notebook that is valid JSON but not quite nbformat-valid (a code cell without "outputs",
    which hand-written or tool-generated notebooks have) passes nbformat.reads, gets its cells ported,
    then `nbformat.writes` raises AttributeError('outputs') inside port_notebook_file. The CLI dies with
    a raw traceback in the middle of the folder: files sorted before it were already rewritten, files
    after it never are (a half-ported tree). Even a dry run / --check crashes the same way.

    Expected: that notebook is reported ("cannot be written back ...; left as it is"), every other file
    is ported, and the command ends with its summary and no traceback."""
    project = tmp_path / "proj"
    project.mkdir()
    cell: dict[str, Any] = {
        "cell_type": "code",
        "metadata": {},
        "execution_count": None,
        "source": "import azureml.core\n",
    }
    (project / "b_odd.ipynb").write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 4, "metadata": {}, "cells": [cell]})
    )
    (project / "c_train.py").write_text("import azureml.core\n")
    done = invoke_cli("port", "--write", "-q", str(project))
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert (project / "c_train.py").read_text() == "import runyard.v1.core\n"
    assert json.loads((project / "b_odd.ipynb").read_text())["cells"][0]["source"] in (
        "import azureml.core\n",
        ["import azureml.core\n"],
    )


# -- compute/process_job.py: a script whose name starts with '-' --------------------------------------


def test_a_script_named_like_an_option_runs_as_a_script_or_is_refused(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    """ScriptRunConfig accepts script='-mhttp.server' when such a file exists in source_dir
    (`_check_script` only checks that it is a file inside the folder). The supervisor's argv is
    [python, -u, '-mhttp.server'], `with_v1_imports` leaves argv[2] starting with '-' alone, and Python
    reads it as an option: the job runs the *module* http.server (or '-c...' code) instead of the file.
    Pipeline steps refuse such names (graph_spec); script runs do not.

    Expected: either InvalidInputError at submit ("a script name may not start with '-'"), or the
    file itself runs (e.g. as ./-name through the launcher)."""
    source_dir.gen(
        {"-mjson.tool": "open('ran-the-file', 'w').close()\n", "-x.py": "open('ran', 'w').close()\n"}
    )
    exp = Experiment(sqlite_workspace, "dashes")
    try:
        run = exp.submit(ScriptRunConfig(str(source_dir), "-x.py"))
    except RunyardError:
        return  # refused at submit: holds
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Completed", details.get("error")


# -- core/script_outputs.py ----------------------------------------------------------------------------


@pytest.mark.parametrize("destination", ["/", ".", "./", ""])
def test_a_script_outputs_destination_must_name_a_folder_inside_the_datastore(
    sqlite_workspace: Workspace, source_dir: SourceDir, destination: str
) -> None:
    """`resolve_outputs` turns OutputFileDatasetConfig(destination=(ds, '/')) (or '.', './', '') into the
    datastore's ROOT: the script is handed `datastores/workspaceblobstore/` itself, where every other
    run's and pipeline's outputs live, and with overwrite=True writes over them; the run records the
    whole datastore as its output. engine/graph_spec.py refuses exactly these destinations for pipeline
    steps ("is the datastore's root; name a folder inside it").

    Expected: InvalidInputError at submit, as for a pipeline step's output."""
    from runyard.v1.data import OutputFileDatasetConfig

    ds = sqlite_workspace.get_default_datastore()
    source_dir.gen({"w.py": "print('x')\n"})
    out = OutputFileDatasetConfig(name="out", destination=(ds, destination))
    exp = Experiment(sqlite_workspace, "outputs")
    with pytest.raises(RunyardError):
        run = exp.submit(ScriptRunConfig(str(source_dir), "w.py", arguments=["--out", out]))
        run.wait_for_completion()


# -- engine/step_slots.py: pipeline steps and script runs on one target -------------------------------

HOLD_SCRIPT = """
import os, sys, time
deadline = time.time() + 120
while not os.path.exists(sys.argv[1]) and time.time() < deadline:
    time.sleep(0.05)
"""


def test_a_pipeline_step_waits_for_a_slot_a_script_run_holds(
    sqlite_workspace: Workspace, source_dir: SourceDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    """engine/step_slots.py `slot_refusal` counts only the scheduler's own running steps on a target;
    compute/slots.py counts steps and script runs. So while a script run holds the only slot of a
    max_nodes=1 cluster, a pipeline step on that cluster starts at once beside it: the target runs two
    things at a time, and `max_nodes` (an admin's setting) is not the limit it says it is.

    Expected: the step waits (Queued, with queuedBecause) until the script run ends."""
    from runyard.pipeline import Pipeline, PythonScriptStep

    monkeypatch.setenv("RUNYARD_LOCAL_SLOTS", "4")
    ws = sqlite_workspace
    cluster = ComputeTarget.create(ws, "one", AmlCompute.provisioning_configuration(max_nodes=1))
    release = source_dir.path / "release"
    marker = source_dir.path / "step-started"
    source_dir.gen({"hold.py": HOLD_SCRIPT, "mark.py": f"open({str(marker)!r}, 'w').close()\n"})
    exp = Experiment(ws, "shared-slots")
    busy = exp.submit(
        ScriptRunConfig(str(source_dir), "hold.py", arguments=[str(release)], compute_target="one")
    )
    pipeline_run = None
    try:
        wait_for(lambda: ws.store.get_run(busy.id).status == RunStatus.RUNNING, timeout=30)
        step = PythonScriptStep(
            name="mark",
            script_name="mark.py",
            source_directory=str(source_dir),
            compute_target=cluster,
            allow_reuse=False,
        )
        pipeline_run = exp.submit(Pipeline(ws, [step]))
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not marker.exists():
            time.sleep(0.2)
        assert not marker.exists(), "a step on a 1-node cluster started while a script run held its slot"
    finally:
        release.touch()
        busy.wait_for_completion(raise_on_error=False)
        if pipeline_run is not None:
            pipeline_run.wait_for_completion(raise_on_error=False)
