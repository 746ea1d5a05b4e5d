"""Review of ParallelRunStep (issue 14) for security and robustness holes: the graph's `parallel` entry,
the driver's job file, the worker <-> driver channel and the checkpoint folder taken as untrusted input,
and the faults a real job meets (a stranger on the listener, a full disk, run() that exits).

Every test uses the real parts: the driver (in this process, as tests/test_parallel_runtime.py does, or
as `python -m runyard.parallel.driver`), real worker processes and entry scripts, real checkpoint folders.
A test that fails names a hole; its docstring says the attack or fault and what should happen instead.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import ValidationError

import parallel_helpers as helpers
from parallel_helpers import driver_settings
from runyard.core.workspace import Workspace
from runyard.engine.graph_parallel import ParallelSettings, ParallelSpec
from runyard.engine.step_parallel import OUTPUT_NOTE, carry_output, open_checkpoint, remove_checkpoint
from runyard.errors import InvalidInputError
from runyard.parallel.accounting import Accounting
from runyard.parallel.checkpoint import Checkpoint
from runyard.parallel.driver import Driver
from runyard.parallel.job import ENV_JOB, ParallelJob
from runyard.parallel.partition import Plan, plan_mini_batches

SECRET = "SECRET-ssh-key-material"


def settings(**changes: Any) -> dict[str, Any]:
    """parallel_helpers.driver_settings with one worker and two tries (what these tests count on), as JSON."""
    return driver_settings(**{"process_count_per_node": 1, "run_max_try": 2, **changes}).to_json()


def make_job(root: Path, script: str, names: list[str], **changes: Any) -> Path:
    """A job folder: data/<name>.txt per name, the entry script score.py, job.json."""
    return helpers.make_job(root, script, names, settings(**changes))


def run_in_process(job: Path) -> tuple[int, str, str]:
    """The driver in this process (its workers are real processes): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = Driver(ParallelJob.load(job), job.parent).run()
    return code, out.getvalue(), err.getvalue()


def output_lines(root: Path) -> list[str]:
    return (root / "out/parallel_run_step.txt").read_text().splitlines()


def one_plan_key() -> str:
    plan = Plan()
    plan.add("data", "file", ("/x/0",), None, 1)
    return plan.key()


ECHO = """
import os

def init():
    pass

def run(mini_batch):
    return [os.path.basename(p) for p in mini_batch]
"""


# -- the worker <-> driver channel -------------------------------------------------------------------
SLOW_INIT = """
import os, time

def init():
    time.sleep(1.0)

def run(mini_batch):
    time.sleep(0.2)
    return [os.path.basename(p) for p in mini_batch]
"""


def _listening_port(pid: int, timeout: float = 15) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(psutil.Error):
            for conn in psutil.Process(pid).net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.ip == "127.0.0.1":
                    return int(conn.laddr.port)
        time.sleep(0.02)
    raise AssertionError("the driver never listened for its workers")


def test_a_silent_connection_to_the_listener_does_not_stall_the_driver(tmp_path: Path) -> None:
    """Attack: any local process (any user: the listener is 127.0.0.1, no authkey needed to connect)
    opens a TCP connection to the driver's worker listener and sends nothing. agents.accept() runs
    multiprocessing's deliver_challenge, which waits for the answer without a time limit, inside the
    driver's only loop: no message, timeout or SIGTERM is handled any more, and the job never ends.
    Expected: the handshake of a connection has a deadline (or runs off the loop), the stranger is
    dropped, and the job completes as usual."""
    job = make_job(tmp_path, SLOW_INIT, [f"f{i}" for i in range(4)])
    proc = subprocess.Popen(
        [sys.executable, "-m", "runyard.parallel.driver"],
        cwd=tmp_path,
        env={**os.environ, ENV_JOB: str(job)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stranger = None
    try:
        stranger = socket.create_connection(("127.0.0.1", _listening_port(proc.pid)))
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail("one silent connection to the worker listener stalled the driver for 10 s")
        assert proc.returncode == 0, err
        assert sorted(output_lines(tmp_path)) == [f"f{i}.txt" for i in range(4)]
    finally:
        if stranger is not None:
            stranger.close()
        if proc.poll() is None:  # its workers die with it (PR_SET_PDEATHSIG)
            proc.send_signal(signal.SIGKILL)
            proc.communicate()


PROC_ENVIRON = """
import os

def init():
    pass

def run(mini_batch):
    with open("/proc/self/environ", "rb") as fh:
        raw = fh.read()
    return [f"proc={b'RUNYARD_PARALLEL_WORKER=' in raw} env={'RUNYARD_PARALLEL_WORKER' in os.environ}"]
"""


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_the_entry_script_cannot_read_the_authkey_in_proc_environ(tmp_path: Path) -> None:
    """Exposure: the worker pops RUNYARD_PARALLEL_WORKER (address + authkey) from os.environ so that
    "the entry script never sees the authkey" (worker.py). But unsetenv() does not touch the process's
    initial environment block, which /proc/<pid>/environ shows: the entry script (and any child it starts,
    via /proc/<ppid>/environ) reads the authkey there. Expected: the plumbing reaches the worker by a
    channel that leaves nothing behind (an inherited pipe or fd, stdin, or a 0600 file deleted once read),
    so /proc/self/environ holds no RUNYARD_PARALLEL_WORKER."""
    job = make_job(tmp_path, PROC_ENVIRON, ["f0"])
    code, _, err = run_in_process(job)
    assert code == 0, err
    assert output_lines(tmp_path) == ["proc=False env=False"]


FORGED_DONE = """
import os, sys

def init():
    pass

def run(mini_batch):
    caller = sys._getframe(1).f_locals  # Worker.run_one: self, mini-batch id, attempt
    worker = caller["self"]
    worker.conn.send(("done", caller["mb_id"], caller["attempt"], 1, os.environ["SECRET_FILE"], 0.0, 0.0))
    return [os.path.basename(p) for p in mini_batch]
"""


def test_a_worker_cannot_name_a_results_file_outside_the_checkpoint(tmp_path: Path) -> None:
    """Attack: a worker (the contract designs for one on another machine, holding only the authkey)
    reports ("done", id, attempt, n, "/abs/path/of/a/secret", ...) for the mini-batch it was handed.
    The driver stores the name as given and Checkpoint.assemble() opens `results / name` - an absolute
    name replaces the folder - so the driver copies any file it can read into the step's output.
    Expected: the driver accepts only the name it expects (`<id:08d>.<attempt>.txt` in results/,
    Checkpoint.result_name) and treats anything else as a failed try."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    job = make_job(tmp_path, FORGED_DONE, ["f0"], environment_variables={"SECRET_FILE": str(secret)})
    run_in_process(job)
    out = tmp_path / "out/parallel_run_step.txt"
    assert not (out.exists() and SECRET in out.read_text()), "the driver copied a file the worker named"


ENV_ECHO = """
import os

def init():
    pass

def run(mini_batch):
    return [
        f"{name}={os.environ.get(name)}"
        for name in ("RUNYARD_RUN_ID", "AZUREML_RUN_ID", "RUNYARD_TOKEN", "RUNYARD_TRACKING_URI")
    ]
"""


def test_environment_variables_cannot_tell_the_workers_they_are_another_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forged setting: the graph's `parallel.environment_variables` sets RUNYARD_RUN_ID / AZUREML_RUN_ID /
    RUNYARD_TOKEN / RUNYARD_TRACKING_URI. agents.worker_environment() lays them over the driver's
    environment, so the workers run as another run: they log to it with another token, and since cancel
    and orphan reaping find a run's processes by RUNYARD_RUN_ID (core/processes.py), this run's cancel
    misses them while the other run's cancel kills them. ProcessJob.environment() keeps runyard's own
    variables over the run's ("a job must not be told it is another run, nor get another tracking URI or
    token"); the workers should get the same rule (or the graph should refuse such names)."""
    monkeypatch.setenv("AZUREML_RUN_ID", "my-step-run")
    monkeypatch.setenv("RUNYARD_TOKEN", "ry_mine")
    monkeypatch.setenv("RUNYARD_TRACKING_URI", "http://127.0.0.1:1/mine")
    forged = {
        "RUNYARD_RUN_ID": "someone-else",
        "AZUREML_RUN_ID": "someone-else",
        "RUNYARD_TOKEN": "ry_forged",
        "RUNYARD_TRACKING_URI": "http://attacker.invalid",
    }
    job = make_job(tmp_path, ENV_ECHO, ["f0"], environment_variables=forged)
    code, _, err = run_in_process(job)
    assert code == 0, err
    seen = dict(line.split("=", 1) for line in output_lines(tmp_path))
    assert seen["RUNYARD_RUN_ID"] != "someone-else"
    assert seen["AZUREML_RUN_ID"] == "my-step-run"
    assert seen["RUNYARD_TOKEN"] == "ry_mine"
    assert seen["RUNYARD_TRACKING_URI"] == "http://127.0.0.1:1/mine"


# -- the checkpoint folder ---------------------------------------------------------------------------
def test_a_forged_done_record_cannot_pull_a_file_from_outside_results(tmp_path: Path) -> None:
    """Attack: another job of the workspace (same OS user: the 0700 folder does not stop it) appends a
    line to a checkpoint's done.jsonl naming a file outside results/ (absolute, or with ../). completed()
    trusts any record whose `results / file` exists, and assemble() copies it into the output of the
    next run of that work. Expected: a record counts only when its file is exactly
    Checkpoint.result_name(id, n) inside results/."""
    secret = tmp_path / "home/.ssh/id_rsa"
    secret.parent.mkdir(parents=True)
    secret.write_text(SECRET + "\n")
    ck = Checkpoint(tmp_path / "ws/parallel/key")
    ck.open(one_plan_key())
    with open(ck.root / "done.jsonl", "a") as fh:
        fh.write(json.dumps({"id": 0, "items": 1, "succeeded": 1, "file": str(secret)}) + "\n")
        fh.write(
            json.dumps({"id": 1, "items": 1, "succeeded": 1, "file": "../../../home/.ssh/id_rsa"}) + "\n"
        )
    records = ck.completed()
    ck.assemble(records.values(), tmp_path / "out.txt")
    ck.close()
    assert records == {}
    assert SECRET not in (tmp_path / "out.txt").read_text()


def test_a_symlink_planted_in_results_is_not_followed(tmp_path: Path) -> None:
    """Attack: results/00000000.1.txt is replaced by a symlink to a private file (done.jsonl's record is
    genuine). completed() checks is_file() (follows links) and assemble() opens it following the link:
    the secret lands in the step output, which a server publishes to every read token. Expected: results
    files are opened with O_NOFOLLOW (or lstat-checked); a link makes the record invalid (rerun it)."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n")
    ck = Checkpoint(tmp_path / "ws/parallel/key")
    ck.open(one_plan_key())
    name = ck.result_name(0, 1)
    (ck.results / name).symlink_to(secret)
    with open(ck.root / "done.jsonl", "a") as fh:
        fh.write(json.dumps({"id": 0, "items": 1, "succeeded": 1, "file": name}) + "\n")
    records = ck.completed()
    with contextlib.suppress(OSError):  # refusing to open the link is a fine answer too
        ck.assemble(records.values(), tmp_path / "out.txt")
    ck.close()
    assert not (tmp_path / "out.txt").exists() or SECRET not in (tmp_path / "out.txt").read_text()


def test_a_results_symlink_does_not_make_the_checkpoint_delete_files_elsewhere(tmp_path: Path) -> None:
    """Attack/fault: `<checkpoint>/results` is a symlink to another folder. On a new plan open() tries
    rmtree(results) - which refuses a link, silently (ignore_errors) - keeps the link, and completed()
    then unlinks every file of the linked folder that is not a recorded result: the driver deletes a
    folder's files outside the checkpoint. Expected: open() replaces a results link with a real folder
    (unlink the link, mkdir) or refuses the checkpoint; nothing outside it is removed."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work\n")
    root = tmp_path / "ws/parallel/key"
    root.mkdir(parents=True)
    (root / "results").symlink_to(precious)
    ck = Checkpoint(root)
    with contextlib.suppress(InvalidInputError):  # refusing the folder is fine
        ck.open(one_plan_key())
        ck.completed()
    ck.close()
    assert (precious / "thesis.tex").exists(), "the checkpoint deleted a file outside itself"


def test_a_record_for_a_mini_batch_outside_the_plan_is_not_assembled(tmp_path: Path) -> None:
    """Attack: a forged done.jsonl line with a negative id ({"id": -1, "file": "99999999.1.txt"}) and a
    results file to match. Driver.prepare() keeps records with `id < len(plan)`, so -1 stays, and the
    resumed job's output starts with the injected rows. Expected: only records whose id is one of the
    plan's mini-batches (0 <= id < len) are assembled."""
    job = make_job(tmp_path, ECHO, ["f0", "f1"])
    code, _, err = run_in_process(job)
    assert code == 0, err
    results = tmp_path / "ckpt/results"
    (results / "99999999.1.txt").write_text("INJECTED row\n")
    with open(tmp_path / "ckpt/done.jsonl", "a") as fh:
        fh.write(json.dumps({"id": -1, "items": 0, "succeeded": 0, "file": "99999999.1.txt"}) + "\n")
    code, _, err = run_in_process(job)
    assert code == 0, err
    assert output_lines(tmp_path) == ["f0.txt", "f1.txt"]


def test_a_half_written_assembly_is_not_carried_into_the_next_output(tmp_path: Path) -> None:
    """Fault: the driver is SIGKILLed while assembling `<output>/.parallel_run_step.txt.<pid>.tmp`
    (Checkpoint.assemble: temp + rename, so the real file is never half-written - that part holds). The
    next run of the same work calls carry_output(), which copies every file of the earlier output except
    the append_row file itself: the half-written temp file is carried into the new output and published
    with it. Expected: carry_output leaves the assembly's temp files (and other dot-temp leftovers) behind."""
    ckpt = tmp_path / "ws/parallel/key"
    ckpt.mkdir(parents=True)
    earlier, now = tmp_path / "ws/out-run1", tmp_path / "ws/out-run2"
    earlier.mkdir()
    now.mkdir()
    (earlier / "scores-0.npy").write_text("written by the entry script\n")
    (earlier / ".parallel_run_step.txt.4242.tmp").write_text("row 1\nrow 2 (half")
    (ckpt / OUTPUT_NOTE).write_text(json.dumps({"output": str(earlier)}))
    carry_output(ckpt, now, "parallel_run_step.txt")
    assert (now / "scores-0.npy").exists()  # what the entry script wrote itself is carried (holds)
    assert not (now / ".parallel_run_step.txt.4242.tmp").exists()


def test_carry_output_does_not_copy_a_folder_outside_the_workspace(tmp_path: Path) -> None:
    """Attack: engine-output.json in a checkpoint (written by the scheduler, but writable by any job of
    the workspace's user) is rewritten to {"output": "/home/user/.ssh"}. The next run of that work makes
    the *scheduler* copy that folder's files into the step's output (start_step -> carry_output), which
    is published to the datastore and readable by every read token of a server. Expected: carry_output
    copies only from a folder inside the workspace (its work folder or its datastores), and better from
    the output the scheduler recorded itself (the last step run's data), not from a file in the folder."""
    home = tmp_path / "home/.ssh"
    home.mkdir(parents=True)
    (home / "id_rsa").write_text(SECRET + "\n")
    ws = tmp_path / "ws"
    ckpt = ws / "parallel/key"
    ckpt.mkdir(parents=True)
    now = ws / "artifacts/datastores/workspaceblobstore/azureml/run2/out"
    now.mkdir(parents=True)
    (ckpt / OUTPUT_NOTE).write_text(json.dumps({"output": str(home)}))
    carry_output(ckpt, now, "parallel_run_step.txt")
    assert not (now / "id_rsa").exists(), "the scheduler copied a folder named in the checkpoint"


def test_a_checkpoint_key_planted_as_a_symlink_is_not_followed(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """Attack: `<workspace>/parallel/<key>` is made a symlink to another folder (a shared project folder,
    the datastores) before the step starts. open_checkpoint() accepts it (mkdir exist_ok follows the
    link), chmods the *target* to 0700, the driver then works (and deletes unrecorded files under
    results/) there, and regenerate_outputs / remove_checkpoint cannot remove it (rmtree refuses a link,
    silently). Expected: open_checkpoint replaces a link (or anything that is not a real folder) with a
    fresh private folder, and leaves the link's target, and its mode, alone."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    key = "k" * 64
    (sqlite_workspace.path / "parallel").mkdir(exist_ok=True)
    (sqlite_workspace.path / "parallel" / key).symlink_to(shared)
    with contextlib.suppress(InvalidInputError):  # refusing it is fine too
        folder = open_checkpoint(sqlite_workspace, key, fresh=True)
        assert not folder.is_symlink(), "the checkpoint is a link to another folder"
        remove_checkpoint(folder)
    assert shared.stat().st_mode & 0o777 == 0o755, "the scheduler chmodded a folder outside the workspace"


# -- the job file and the graph, as untrusted input ---------------------------------------------------
@pytest.mark.parametrize(
    "change",
    [
        {"append_row_file_name": "../escape.txt"},
        {"append_row_file_name": "/tmp/escape.txt"},
        {"process_count_per_node": 0},  # no worker: the driver's loop waits forever
    ],
    ids=["dotdot-name", "absolute-name", "no-workers"],
)
def test_the_driver_checks_the_job_files_settings(tmp_path: Path, change: dict[str, Any]) -> None:
    """Forged job file: ParallelJob.load() checks only the settings' field names (ParallelSettings(**d)),
    not their values, though graph_parallel's docstring says the driver checks them as the scheduler does.
    An append_row_file_name with a path writes outside the output folder (`Path(output) / "/tmp/x"` is
    /tmp/x); process_count_per_node=0 leaves the driver's loop waiting forever with no worker (checked by
    hand: "1 to run on 0 workers", then nothing). Expected: load() refuses the values resolve_settings/append_row_file_problem
    refuse, with InvalidInputError naming the setting."""
    job = make_job(tmp_path, ECHO, ["f0"], **change)
    with pytest.raises(InvalidInputError, match=next(iter(change))):
        ParallelJob.load(job)


@pytest.mark.parametrize(
    "change",
    [
        {"append_row_file_name": "../escape.txt"},
        {"append_row_file_name": "sub/x.txt"},
        {"append_row_file_name": "..\\x.txt"},
        {"append_row_file_name": ".."},
        {"output": "../elsewhere"},
        {"output": ".hidden"},
        {"inputs": ["../../etc"]},
        {"environment_variables": {"A=B": "x"}},
        {"environment_variables": {"A": "x\x00y"}},
        {"error_threshold": -2},
        {"allowed_failed_percent": 101},
    ],
)
def test_the_graph_refuses_paths_and_impossible_values(change: dict[str, Any]) -> None:
    """Holds: the graph's `parallel` entry refuses file names with separators or '..', output and input
    names that are paths, environment variables no process can hold, and out-of-range budgets."""
    base = {
        "kind": "file",
        "inputs": ["images"],
        "output": "scores",
        "output_action": "append_row",
        "error_threshold": 10,
    }
    with pytest.raises(ValidationError):
        ParallelSpec.model_validate({**base, **change})


# -- faults ------------------------------------------------------------------------------------------
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_while_assembling_fails_the_job_with_one_sentence(tmp_path: Path) -> None:
    """Fault: the output folder's disk is full when the driver assembles the append_row file (here the
    assembly's temp file is /dev/full, which fails every write with ENOSPC). finish() does not catch the
    OSError: the driver dies with a traceback, progress.json stays "running", job_result.txt is never
    written and the step's error has no "ParallelRunStep failed: ..." sentence. Expected: exit 1 with a
    last line such as "ParallelRunStep failed: the output file ... cannot be written: No space left on
    device ...", the checkpoint kept for a rerun, progress state "failed"."""
    job = make_job(tmp_path, ECHO, ["f0", "f1"])
    out = tmp_path / "out"
    out.mkdir()
    (out / f".parallel_run_step.txt.{os.getpid()}.tmp").symlink_to("/dev/full")
    try:
        code, _, err = run_in_process(job)
    except OSError as exc:
        pytest.fail(f"the driver crashed instead of failing the job: {exc!r}")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("ParallelRunStep failed:")
    assert json.loads((tmp_path / "logs/sys/progress.json").read_text())["state"] == "failed"


EXITS = """
import os, sys
from pathlib import Path

def init():
    pass

def run(mini_batch):
    for path in mini_batch:
        marker = Path(path + ".tried")
        name = os.path.basename(path)
        if not marker.exists():
            marker.write_text("x")
            if name.startswith("exit"):
                sys.exit(0)
            if name.startswith("kbd"):
                raise KeyboardInterrupt
    return ({"file": os.path.basename(p), "n": 1} for p in mini_batch)  # a generator of non-strings
"""


def test_sys_exit_and_keyboard_interrupt_in_run_fail_only_that_try(tmp_path: Path) -> None:
    """Holds: run() calling sys.exit(0) or raising KeyboardInterrupt (BaseExceptions the worker does not
    catch) ends that worker; the driver fails the try, starts a replacement, and the retry succeeds. A
    generator of dicts is a valid result (one str() line per element). error_threshold=0: no item lost."""
    job = make_job(tmp_path, EXITS, ["exit1", "kbd1", "ok1"], error_threshold=0)
    code, _, err = run_in_process(job)
    assert code == 0, err
    assert sorted(output_lines(tmp_path)) == [
        f"{{'file': '{n}.txt', 'n': 1}}" for n in ("exit1", "kbd1", "ok1")
    ]


DELETES_NEXT = """
import os

def init():
    pass

def run(df):
    gone = os.path.join(os.environ["DATA_DIR"], "b.csv")
    if os.path.exists(gone):
        os.remove(gone)  # the next mini-batch's file, planned already
    return df
"""


def test_a_table_file_deleted_after_planning_fails_only_its_mini_batch(tmp_path: Path) -> None:
    """Holds: a tabular file removed between planning and loading (here by the first mini-batch's run())
    fails its own mini-batch's tries with the OS error in the error log, its rows count as failed, and
    the other file's rows are written once."""
    job = make_job(tmp_path, DELETES_NEXT, [], kind="tabular", mini_batch_size=1 << 20)
    data = tmp_path / "data"
    (data / "a.csv").write_text("id,v\n1,x\n2,y\n")
    (data / "b.csv").write_text("id,v\n3,z\n")
    spec = json.loads(job.read_text())
    spec["inputs"][0]["kind"] = "tabular"
    spec["settings"]["environment_variables"] = {"DATA_DIR": str(data)}
    job.write_text(json.dumps(spec))
    code, _, err = run_in_process(job)
    assert code == 0, err  # error_threshold=-1
    assert output_lines(tmp_path) == ["1 x", "2 y"]
    snap = json.loads((tmp_path / "logs/sys/progress.json").read_text())
    assert snap["items"] == {"total": 3, "succeeded": 2, "failed": 1}
    assert "No such file or directory" in (tmp_path / "logs/user/error.txt").read_text()


def test_error_budget_edges() -> None:
    """Holds: error_threshold and allowed_failed_count stop the job only when *exceeded* (v1: "greater
    than"); -1 ignores any number; allowed_failed_percent with no mini-batches at all divides by nothing."""
    at = Accounting(ParallelSettings.from_json(settings(error_threshold=2)), 4, 4)
    at.fail(2)
    assert at.exceeded(all_scheduled=True) is None  # exactly at the threshold
    at.fail(1)
    assert "3 of 4 files failed, more than error_threshold 2" in (at.exceeded(False) or "")
    ignore = Accounting(
        ParallelSettings.from_json(settings(error_threshold=-1, allowed_failed_count=-1)), 9, 9
    )
    for _ in range(9):
        ignore.fail(1)
    assert ignore.exceeded(all_scheduled=True) is None
    count = Accounting(ParallelSettings.from_json(settings(allowed_failed_count=1)), 3, 3)
    count.fail(1)
    assert count.exceeded(False) is None
    count.fail(1)
    assert "allowed_failed_count 1" in (count.exceeded(False) or "")
    empty = Accounting(ParallelSettings.from_json(settings(allowed_failed_percent=0)), 0, 0)
    assert empty.exceeded(all_scheduled=True) is None
    more = Accounting(ParallelSettings.from_json(settings(error_threshold=0)), 1, 2)
    assert more.complete(items=2, returned=5) == 0 and more.items_succeeded == 2  # more rows than given


def test_csv_with_bom_only_a_header_and_a_corrupt_row(tmp_path: Path) -> None:
    """Holds: a UTF-8 BOM is not part of the first column's name; a header-only file adds no mini-batch
    (and is no error while another file has rows); a ragged row is a failed record named "file:line"."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.csv").write_bytes(b"\xef\xbb\xbfid,name\n1,x\n2,y,EXTRA\n3,z\n")
    (data / "b.csv").write_text("id,name\n")
    entry = ParallelJob(
        step="s",
        entry_script="s.py",
        settings=settings(kind="tabular"),
        inputs=[{"name": "t", "kind": "tabular", "source": "path", "path": str(data)}],
        checkpoint=str(tmp_path / "ck"),
    ).inputs
    plan = plan_mini_batches(
        entry, ParallelSettings.from_json(settings(kind="tabular", mini_batch_size=1 << 20)), tmp_path
    )
    assert [mb.files for mb in plan.mini_batches] == [(str(data / "a.csv"),)]
    assert [p.item for p in plan.problems] == [f"{data / 'a.csv'}:3"]
    from runyard.parallel.partition import load_mini_batch

    frame = load_mini_batch(plan.mini_batches[0])
    assert list(frame.columns) == ["id", "name"] and list(frame["id"]) == [1, 3]


# -- over a server workspace ---------------------------------------------------------------------------
PROBE = """
import os
import httpx

def init():
    pass

def run(mini_batch):
    me = os.environ["AZUREML_RUN_ID"]
    other = os.environ["OTHER_RUN"]
    url = os.environ["RUNYARD_TRACKING_URI"].rstrip("/") + "/api/v1"
    headers = {"Authorization": "Bearer " + os.environ["RUNYARD_TOKEN"]}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as c:
        parent = c.get(f"/runs/{me}").json()["parent_id"]
        probes = {
            "own": c.get(f"/runs/{me}"),
            "parent": c.get(f"/runs/{parent}"),
            "other-read": c.get(f"/runs/{other}"),
            "other-progress": c.put(
                "/artifacts/file", params={"path": f"runs/{other}/logs/sys/progress.json"}, content=b"{}"
            ),
            "other-status": c.post(f"/runs/{other}/status", json={"status": "Failed"}),
        }
    return [f"{name} {r.status_code}" for name, r in probes.items()]
"""


@pytest.mark.usefixtures("no_stray_processes")
def test_over_a_server_the_workers_hold_only_the_step_runs_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Holds (step "probe", its input downloaded by the scheduler): over a server workspace with auth,
    the driver and its workers run with the step run's own run token: they read their own run and its
    ancestors, and cannot read another run, forge its progress.json (what the CLI, studio and wait show)
    or end it; the driver's progress and metrics reach the server through that token.

    Hole (step "direct", the same FileDataset as a direct input, v1's default): the driver reads the
    dataset's files through the server with its run token, which may read only inputs recorded in the
    lineage table - and the scheduler records a step's lineage when it *completes*
    (service._record_lineage), not before it starts as docs/security.md says ("written before the job
    starts ... by the scheduler for a step"). The driver gets 403 on every file and the step fails.
    Expected: the scheduler records the step's input uses before spawning it (or the step completes).

    Hole (read_progress over the server): the driver replaces logs/sys/progress.json every second
    (temp + rename); the client's mirror sync (store/rest_artifacts.py) sends a file that grew as an
    append of its new bytes at the old size, as if it were a log. A replaced file is not a grown one: the
    server's copy becomes a torn mix of two snapshots ('...,"failures":[]}0,"failures":[]}'), so
    read_progress() (CLI, studio, wait) gets None, and the final "completed" snapshot never arrives.
    Expected: a file whose inode changed (or whose sent prefix changed) is sent whole."""
    from runyard import Experiment
    from runyard.core.workspace import Workspace as W
    from runyard.data.dataset import Dataset
    from runyard.environments.environment import Environment
    from runyard.parallel import ParallelRunConfig, ParallelRunStep
    from runyard.parallel.progress import read_progress
    from runyard.pipeline import OutputFileDatasetConfig, Pipeline
    from runyard.server.auth import create_token
    from server_process import running_server

    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    served = W.create(tmp_path / "server" / ".runyard")
    token, _ = create_token(served.store, "write", name="prs")  # type: ignore[arg-type]
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        ws = W.get(server.url, token=token)
        other = Experiment(ws, "someone-else").start_logging()
        data = tmp_path / "items"
        data.mkdir()
        for i in range(2):
            (data / f"i{i}.txt").write_text(str(i))
        store = ws.get_default_datastore()
        store.upload(str(data), target_path="prs-items", show_progress=False)
        items = Dataset.File.from_files((store, "prs-items")).register(ws, "prs-items")
        for name in ("probe", "direct"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "probe.py").write_text(PROBE)
        env = Environment("prs-as-is")
        env.python.user_managed_dependencies = True

        def step(name: str, given: Any) -> ParallelRunStep:
            config = ParallelRunConfig(
                environment=env,
                entry_script="probe.py",
                source_directory=str(tmp_path / name),
                compute_target="local",
                node_count=1,
                mini_batch_size="2",
                error_threshold=-1,
                output_action="append_row",
                process_count_per_node=1,
                run_invocation_timeout=30,
                environment_variables={"OTHER_RUN": other.id},
            )
            return ParallelRunStep(
                name=name, parallel_run_config=config, inputs=[given], output=OutputFileDatasetConfig(name)
            )

        steps = [
            step("probe", items.as_named_input("items").as_download()),
            step("direct", items.as_named_input("items")),
        ]
        run = Experiment(ws, "prs-server").submit(Pipeline(ws, steps))
        run.wait_for_completion(show_output=False, timeout_seconds=90, raise_on_error=False)
        probe, direct = run.find_step_run("probe")[0], run.find_step_run("direct")[0]
        assert probe.get_status() in ("Completed", "Finished"), probe.get_details().get("error")
        lines = (Path(probe.get_output_data("probe").local_path) / "parallel_run_step.txt").read_text()
        seen = dict(line.split() for line in lines.splitlines())
        assert seen["own"] == "200" and seen["parent"] == "200"
        assert seen["other-read"] == "403" and seen["other-progress"] == "403"
        assert seen["other-status"] == "403"
        assert other.get_status() == "Running"
        succeeded = probe.get_metrics().get(
            "items_succeeded"
        )  # a series: logged while it ran, then at the end
        assert (succeeded[-1] if isinstance(succeeded, list) else succeeded) == 2
        other.complete()
        holes = []
        snap = read_progress(probe)
        if snap is None or snap.state != "completed":
            raw = probe.read_log("logs/sys/progress.json")
            holes.append(f"progress.json on the server is not the final snapshot: ...{raw[-80:]!r}")
        if direct.get_status() not in ("Completed", "Finished"):
            holes.append(f"a direct FileDataset input fails: {direct.get_details().get('error')}")
        assert not holes, holes
