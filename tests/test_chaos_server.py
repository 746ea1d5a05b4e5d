"""A real `runyard server` that is killed and restarted under its clients: they carry on, and the
database holds exactly what was logged, with no row twice and none lost.

The server is SIGKILLed (no graceful shutdown: requests in flight lose their answers, some after the
rows were committed) and started again on the same port, as a supervisor such as systemd would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import wait_for
from runyard import Experiment, Workspace
from runyard.errors import StoreError
from runyard.server.auth import create_token
from runyard.store import SqlStore
from server_process import ServerProcess, clean_env


class RestartableServer(ServerProcess):
    """ServerProcess that can be killed and started again at the same address."""

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=15)

    def restart(self, timeout: float = 60.0) -> None:
        self._launch(" (restart)")
        if not self._wait_ready(timeout):
            raise AssertionError(f"runyard server did not restart; its output:\n{self.output()}")


@pytest.fixture
def auth() -> bool:
    return False


@pytest.fixture
def served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: bool
) -> Iterator[tuple[RestartableServer, Workspace]]:
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    ws = Workspace.create(tmp_path / "served" / ".runyard")
    server = RestartableServer(ws.path, tmp_path / "server.log", auth=auth)
    server.start()
    try:
        yield server, ws
        server.check_healthy()
    finally:
        server.stop()


def assert_stored_exactly(store: SqlStore, run_id: str, count: int) -> None:
    """The run holds the values 0..count-1 of metric "m", each once, in log order."""
    rows = store.get_metric_rows([run_id], name="m")
    assert len(rows) == count, f"{run_id}: {len(rows)} rows for {count} values logged"
    assert [r.value for r in rows] == [float(i) for i in range(count)]
    assert len({(r.writer, r.seq) for r in rows}) == count
    (summary,) = store.get_metric_summaries([run_id])
    assert (summary.count, summary.min, summary.max, summary.last) == (count, 0, count - 1, count - 1)


def test_client_carries_on_through_a_3_second_server_restart(
    served: tuple[RestartableServer, Workspace], tmp_path: Path
) -> None:
    """Medium 9: a client logging, reading and uploading while its server is away for 3 s sees no error."""
    server, served_ws = served
    ws = Workspace.get(server.url)
    run = Experiment(ws, "restart").start_logging()
    errors: list[BaseException] = []
    logged = 0
    reads = 0
    stop = threading.Event()
    (tmp_path / "notes.txt").write_text("uploaded while the server was away\n")

    def client() -> None:
        nonlocal logged, reads
        try:
            while not stop.is_set() or logged < 4000:
                for _ in range(100):
                    run.log("m", float(logged))
                    logged += 1
                assert ws.get_run(run.id).get_status() == "Running"  # a read, as wait_for_completion does
                reads += 1
                time.sleep(0.02)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    wait_for(lambda: logged >= 1000 or errors, timeout=30)
    server.kill()
    reads_before = reads
    time.sleep(3)
    # reads and uploads made while the server is away wait for it, then succeed
    uploader = threading.Thread(
        target=lambda: run.upload_file("outputs/notes.txt", str(tmp_path / "notes.txt"))
    )
    uploader.start()
    server.restart()
    uploader.join(timeout=60)
    stop.set()
    thread.join(timeout=90)
    assert not errors, errors
    assert reads > reads_before  # the client kept going after the restart
    run.complete()

    assert ws.get_run(run.id).get_status() == "Completed"
    assert_stored_exactly(served_ws.store, run.id, logged)  # type: ignore[arg-type]
    assert (
        (served_ws.path / "artifacts" / "runs" / run.id / "outputs" / "notes.txt")
        .read_text()
        .startswith("uploaded")
    )


def test_client_gives_up_with_a_clear_error_when_the_server_stays_away(
    served: tuple[RestartableServer, Workspace], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, _ = served
    monkeypatch.setenv("RUNYARD_SERVER_RETRY_SECONDS", "2")
    ws = Workspace.get(server.url)
    run = Experiment(ws, "gone").start_logging()
    server.kill()
    started = time.monotonic()
    with pytest.raises(
        StoreError, match=rf"server at {server.url} was unreachable for 1?[0-9]\.[0-9] s"
    ) as info:
        ws.get_run(run.id)
    assert 1.5 < time.monotonic() - started < 10
    assert "RUNYARD_SERVER_RETRY_SECONDS" in str(info.value)
    server.restart()  # for the fixture's health check


CLIENT = """
    import os, sys, time
    from runyard import Experiment, Workspace

    url, barrier, stop = sys.argv[1:4]
    run = Experiment(Workspace.get(url), "chaos").start_logging()
    print("run", run.id, flush=True)
    while not os.path.exists(barrier):
        time.sleep(0.01)
    logged = 0
    while not os.path.exists(stop):  # about 1,000 values a second, for as long as the server is killed
        for _ in range(50):
            run.log("m", float(logged))
            logged += 1
        time.sleep(0.05)
    print("logged", logged, flush=True)
    run.complete()  # flushes every value first
    print("done", flush=True)
"""


@pytest.mark.timeout(180)
def test_server_killed_three_times_under_eight_writing_clients(
    served: tuple[RestartableServer, Workspace], tmp_path: Path
) -> None:
    """High 2: eight processes log through a server that is SIGKILLed three times; afterwards the
    database holds exactly the logged rows: none twice, none lost."""
    server, served_ws = served
    clients = 8
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent(CLIENT))
    barrier, stop = tmp_path / "go", tmp_path / "stop"
    env = clean_env({"RUNYARD_CACHE_DIR": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1"})
    logs = [tmp_path / f"client-{i}.log" for i in range(clients)]
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(script), server.url, str(barrier), str(stop)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
    try:
        wait_for(lambda: all(b"run " in log.read_bytes() for log in logs), timeout=60, interval=0.1)
        barrier.touch()
        started = time.monotonic()
        for _ in range(3):
            before = served_ws.store.count_metric_rows()
            time.sleep(1.0)  # the clients reach this server (one that is backing off may sleep through it)
            wait_for(lambda before=before: served_ws.store.count_metric_rows() > before + 2000, timeout=30)
            server.kill()  # the clients are writing: some requests lose their answers after the commit
            server.restart()
        time.sleep(1.0)
        stop.touch()
        for proc in procs:
            proc.wait(timeout=120)
        outputs = [log.read_text(errors="replace") for log in logs]
        assert [p.returncode for p in procs] == [0] * clients, "\n---\n".join(o[-3000:] for o in outputs)
        assert all("done" in o for o in outputs)
        print(f"{clients} clients through 3 server kills in {time.monotonic() - started:.1f}s")
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
    # every client noticed the server going away, and carried on
    assert all("is not answering" in o for o in outputs), outputs[0][-3000:]

    store = served_ws.store
    assert isinstance(store, SqlStore)
    logged = {o.split("run ", 1)[1].split()[0]: int(o.split("logged ", 1)[1].split()[0]) for o in outputs}
    assert len(logged) == clients and min(logged.values()) > 3000
    assert store.count_metric_rows() == sum(logged.values())
    print(f"{sum(logged.values())} values logged, each stored once")
    for run_id, count in logged.items():
        assert_stored_exactly(store, run_id, count)
        assert store.get_run(run_id).status == "Completed"


STEP = """
import os, sys, time
from runyard import Run

go = sys.argv[1]
open(go + ".running", "w").close()
deadline = time.monotonic() + 90
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.05)
Run.get_context().log("survived", 1)
print("step done")
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("auth", [True])  # pipelines run only when submitted with a token for the target
def test_pipeline_survives_a_3_second_server_restart(
    served: tuple[RestartableServer, Workspace], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Medium 9: the server restarts while a server-mode pipeline's step runs. The client-side scheduler,
    the step and a client waiting on the pipeline all ride it out; the step and pipeline complete."""
    from conftest import SourceDir
    from runyard.pipeline import Pipeline, PythonScriptStep

    server, served_ws = served
    monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
    go = tmp_path / "go"
    source = SourceDir(tmp_path / "step").gen({"step.py": STEP})
    token, _ = create_token(served_ws.store, "write", name="chaos", compute=["local"])  # type: ignore[arg-type]
    ws = Workspace.get(server.url, token=token)
    step = PythonScriptStep("step.py", name="wait", arguments=[str(go)], source_directory=source)
    run = Pipeline(ws, [step]).submit("restart-pipeline", show_output=False)
    wait_for(lambda: Path(f"{go}.running").exists(), timeout=90, interval=0.1)

    outcome: list[object] = []
    waiter = threading.Thread(target=lambda: outcome.append(_wait(run)))
    waiter.start()
    server.kill()
    go.touch()  # the step logs, ends and is recorded while the server is away
    time.sleep(3)
    server.restart()
    waiter.join(timeout=120)
    assert outcome == ["Finished"], outcome
    (step_run,) = run.find_step_run("wait")
    assert step_run.get_status() == "Finished"
    assert step_run.get_metrics() == {"survived": 1}


def _wait(run: object) -> object:
    try:
        return run.wait_for_completion(show_output=False, timeout_seconds=120)  # type: ignore[attr-defined]
    except BaseException as exc:  # reported by the test
        return exc
