"""A real `runyard server` subprocess on 127.0.0.1 for the server tests.

`ServerProcess` starts `python -m runyard -w WORKSPACE server --port PORT [--auth]`, waits for /health,
and keeps everything the server prints in a log file. If the server dies (before it is ready, or while
a test runs) the test fails with that output, and `check_healthy()` also fails a test when the server
logged a traceback (a 500 the client may not have noticed).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from conftest import free_port

_USED_PORTS: set[int] = set()


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without a developer's RUNYARD_*/AZUREML_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNYARD_", "AZUREML_"))}
    env.update(extra or {})
    return env


class ServerProcess:
    def __init__(
        self, workspace: Path, log: Path, *, auth: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.workspace = workspace
        self.log = log
        self.auth = auth
        self.env = clean_env(env)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, timeout: float = 90.0) -> None:
        for _attempt in range(3):  # a free port can be taken by someone else before the server binds it
            self.port = free_port()
            while self.port in _USED_PORTS:  # a new server gets a new URL: runyard caches per-URL clients
                self.port = free_port()
            _USED_PORTS.add(self.port)
            self._launch("")
            if self._wait_ready(timeout):
                return
            if "address already in use" not in self.output().lower():
                break
        raise AssertionError(f"runyard server did not start; its output:\n{self.output()}")

    def _launch(self, note: str) -> None:
        """Start `runyard server` on self.port (the log gets the command line, marked with `note`)."""
        argv = [
            sys.executable,
            "-m",
            "runyard",
            "-w",
            str(self.workspace),
            "server",
            "--port",
            str(self.port),
        ]
        if self.auth:
            argv.append("--auth")
        with self.log.open("ab") as out:
            out.write(f"${note} {' '.join(argv)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env
            )

    def _wait_ready(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        return False

    def check_healthy(self) -> None:
        """Fail with the server's output if it died or logged an unhandled exception."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(
                f"runyard server exited with {self.proc.returncode}; its output:\n{self.output()}"
            )
        text = self.output()
        if "Traceback (most recent call last)" in text or "Exception in ASGI application" in text:
            raise AssertionError(f"runyard server logged an unhandled exception:\n{text}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


@contextmanager
def running_server(
    workspace: Path, log: Path, *, auth: bool = False, env: dict[str, str] | None = None
) -> Iterator[ServerProcess]:
    """A started server; on the way out, fails if it died or crashed meanwhile, then stops it."""
    server = ServerProcess(workspace, log, auth=auth, env=env)
    server.start()
    try:
        yield server
        server.check_healthy()
    finally:
        server.stop()
