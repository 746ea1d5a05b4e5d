"""Shared fixtures: real SQLite files, a real PostgreSQL server, real subprocesses.

`workspace` is parametrized over both databases, so every test that takes it runs twice. The
PostgreSQL server is started once per test process (xdist worker) and each test gets its own database.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runyard import Workspace

pytest_plugins = ["s3_fixture"]  # s3_server / s3_bucket: moto in server mode (tests/s3_fixture.py)

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def env_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One environment build cache for the whole test session, shared by the xdist workers (the folder above
    each worker's base temp), so an environment several tests use is built once. Builds lock per hash."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    folder = shared / "env-cache"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, env_cache: Path) -> None:
    """Tests must not see a developer's own runyard settings, nor build into the user's cache."""
    clean_settings(monkeypatch, env_cache)
    forget_mlflow_state()


def forget_mlflow_state() -> None:
    """MLflow's fluent API remembers the active experiment and runs per process: a test module's server
    is gone when the next module runs in the same worker, and its experiment ids mean nothing there."""
    fluent = sys.modules.get("mlflow.tracking.fluent")
    if fluent is not None:
        fluent._active_experiment_id = None  # type: ignore[attr-defined]
        fluent._active_run_stack.get().clear()  # type: ignore[attr-defined]


#: The variables that point MLflow at a server, run or experiment (a developer's own must not leak in).
MLFLOW_TARGET_VARIABLES = frozenset(
    {
        "MLFLOW_TRACKING_URI",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_RUN_ID",
        "MLFLOW_EXPERIMENT_ID",
        "MLFLOW_EXPERIMENT_NAME",
    }
)


def clean_settings(monkeypatch: pytest.MonkeyPatch, env_cache: Path) -> None:
    """What every test runs under (also for module-scoped fixtures, which run before `_clean_env`)."""
    for key in list(os.environ):
        if key.startswith(("RUNYARD_", "AZUREML_")) or key in MLFLOW_TARGET_VARIABLES:
            monkeypatch.delenv(key)
    monkeypatch.setenv("RUNYARD_CANCEL_GRACE_SECONDS", "2")
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(env_cache))


@pytest.fixture
def no_stray_processes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """For pipeline tests: background schedulers exit soon when idle, and whatever a test started (its
    scheduler, step processes working under its tmp_path) is killed at teardown."""
    monkeypatch.setenv("RUNYARD_SCHEDULER_IDLE_SECONDS", "3")
    yield
    kill_strays(tmp_path)


def kill_strays(folder: Path) -> None:
    """Kill the schedulers of the workspaces below `folder` and every process working below it."""
    for info in folder.rglob("scheduler.json"):
        pid = json.loads(info.read_text()).get("pid")
        try:
            if pid and b"runyard.engine" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
    # and a scheduler that has not written scheduler.json yet (ensure_running just spawned it): its
    # command line names the workspace, though its working folder is the caller's
    needle = str(folder).encode()
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if os.readlink(proc / "cwd").startswith(str(folder)) or (
                    b"runyard.engine" in (cmdline := (proc / "cmdline").read_bytes()) and needle in cmdline
                ):
                    os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="session", autouse=True)
def _no_scheduler_outlives_the_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Schedulers stay up while a schedule is Active; whatever a test left behind ends with the session."""
    yield
    kill_strays(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """Start PostgreSQL 15 from Debian's package in a temporary folder; yields postgresql://runyard@127.0.0.1:PORT."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("PostgreSQL binaries not installed (apt-get install postgresql; .ci/run does this)")
    root = Path(tempfile.mkdtemp(prefix="runyard-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    data = root / "data"
    subprocess.run(
        [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "runyard"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_postgres,
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            f"-k {root} -h 127.0.0.1 -p {port} -F -c max_connections=300",
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://runyard@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def postgres_uri(postgres_server: str) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped afterwards with its connections (pools
    in this process and in whatever processes the test left behind), so the server never runs out."""
    import psycopg

    from runyard.store.sql_base import dispose_engine

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{postgres_server}/{name}"
    dispose_engine(f"{postgres_server}/{name}")
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None means the embedded default (a SQLite file inside the workspace folder)."""
    if request.param == "sqlite":
        return None
    return str(request.getfixturevalue("postgres_uri"))


@pytest.fixture
def workspace(tmp_path: Path, tracking_uri: str | None) -> Workspace:
    return Workspace.create(tmp_path / "ws" / ".runyard", tracking_uri=tracking_uri)


@pytest.fixture
def sqlite_workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "ws" / ".runyard")


class SourceDir:
    """A folder of scripts written by the test: `src.gen({"train.py": "..."})`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)

    def gen(self, files: dict[str, str | bytes]) -> SourceDir:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(textwrap.dedent(content))
        return self

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


@pytest.fixture
def source_dir(tmp_path: Path) -> SourceDir:
    return SourceDir(tmp_path / "src")


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the real `runyard` command line in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runyard", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invoke_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `runyard` command line in this process, as `python -m runyard` would: through `main()` (the
    one place errors become exit codes), output through the same Rich consoles sized as for a pipe, and an
    uncaught exception printed as a traceback with exit code 1. A fresh interpreter costs ~2 s importing
    runyard; tests of what the commands print use this, and test_cli.py keeps real subprocesses for the
    entry point itself. Environment, working folder and argv are restored afterwards."""
    from runyard.cli import render
    from runyard.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    saved_widths = (render.console._width, render.err_console._width)
    code: int | str | None = 0
    try:
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["runyard", *args]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            columns = os.environ.get("COLUMNS", "")
            width = render._width() or (int(columns) if columns.isdigit() else 80)  # as Rich sizes a new one
            render.console.width = render.err_console.width = width
            try:
                main()
            except SystemExit as exc:
                code = exc.code
            except Exception:  # what the interpreter does with an uncaught exception
                traceback.print_exc()
                code = 1
            if isinstance(code, str):
                print(code, file=sys.stderr)
                code = 1
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        render.console._width, render.err_console._width = saved_widths
    return subprocess.CompletedProcess(["runyard", *args], code or 0, out.getvalue(), err.getvalue())


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# -- headless Chromium for the studio tests (Debian's, never a downloaded one)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from runyard.studio.headless import CHROMIUM, launch_chromium

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = launch_chromium(p)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def insert_pipeline(
    ws: Workspace, data: dict[str, Any], steps: list[str], step_ids: dict[str, str] | None = None
) -> str:
    """A NotStarted pipeline run and its step runs, written with the store directly (no submit): for
    tests of what a scheduler or a reader does with a run it did not make. `step_ids` pins a step's run id
    (by step name); the others get fresh ones."""
    from runyard import Experiment
    from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
    from runyard.status import RunStatus
    from runyard.store import RunRecord

    exp = Experiment(ws, "crafted")
    run_id = str(uuid.uuid4())
    now = time.time()
    ids = step_ids or {}
    records = [RunRecord(run_id, exp.id, exp.name, RunStatus.NOT_STARTED, PIPELINE_RUN_TYPE, now, data=data)]
    records += [
        RunRecord(
            ids.get(name) or str(uuid.uuid4()),
            exp.id,
            exp.name,
            RunStatus.NOT_STARTED,
            STEP_RUN_TYPE,
            now,
            parent_id=run_id,
            display_name=name,
            data={"step": name},
        )
        for name in steps
    ]
    ws.store.create_runs(records)
    return run_id
