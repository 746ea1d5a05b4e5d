"""The driver's worker processes ("agents", v1's processNNN): start, handshake, stop.

Kept apart from the driver's scheduling loop (driver.py) because this is the part a remote node would
replace: a worker anywhere that can reach the listener and knows the authkey joins the same way, by
sending ("hello", agent) after multiprocessing's challenge handshake. The driver trusts a connection
only for the agent name it started and only once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path

import psutil

from runyard.parallel import worker as worker_env
from runyard.parallel._user.azureml_user import parallel_run as entry_env
from runyard.parallel.joblogs import AgentPaths
from runyard.parallel.partition import MiniBatch

__all__ = ["Agent", "accept", "kill_tree", "spawn", "stop_all", "worker_environment"]

STOP_GRACE = 3.0
HANDSHAKE_SECONDS = 10.0


@dataclass
class Agent:
    """One worker process as the driver sees it. `queue`: mini-batches handed to it (the head runs,
    since `head_started`; the rest wait in its connection)."""

    name: str
    proc: subprocess.Popen[bytes]
    conn: Connection | None = None
    ready: bool = False
    queue: deque[tuple[MiniBatch, int]] = field(default_factory=deque)
    head_started: float = 0.0
    started: float = field(default_factory=time.monotonic)


def worker_environment(
    name: str,
    paths: AgentPaths,
    address: tuple[str, int],
    authkey: bytes,
    entry_script: Path,
    arguments: list[str],
    results: Path | None,
    level: str,
    output_dir: str,
    cwd: Path,
    extra: dict[str, str],
    preload: bool = False,
) -> dict[str, str]:
    """The worker's environment: the driver's, the step's environment_variables, the worker's plumbing
    (worker.py's ENV_WORKER) and what EntryScript reads (AZUREML_PARALLEL_*)."""
    plumbing = {
        "address": list(address),
        "authkey": authkey.hex(),
        "agent": name,
        "driver_pid": os.getpid(),
        "entry_script": str(entry_script),
        "arguments": arguments,
        "results": str(results) if results is not None else None,
        "level": level,
        "preload": preload,
    }
    env = {**os.environ, **extra}
    env.update(
        {
            worker_env.ENV_WORKER: json.dumps(plumbing),
            entry_env.ENV_AGENT: name,
            entry_env.ENV_LOG_DIR: str(paths.entry_log.parent),
            entry_env.ENV_LOG_FILE: str(paths.entry_log),
            entry_env.ENV_OUTPUT_DIR: output_dir,
            entry_env.ENV_WORKING_DIR: str(cwd),
            entry_env.ENV_LEVEL: level,
        }
    )
    return env


def spawn(name: str, paths: AgentPaths, env: dict[str, str], cwd: Path) -> Agent:
    """Start a worker (by path: see worker.py) with its stdout/stderr in the agent's log files."""
    with open(paths.stdout, "ab") as out, open(paths.stderr, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-P", worker_env.__file__],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
    return Agent(name, proc)


def accept(server: socket.socket, authkey: bytes, agents: dict[str, Agent]) -> Agent | None:
    """Take one connection from the listener: authenticate it and attach it to the agent it names.
    None (connection closed) for a stranger, a wrong key, or an agent that is already connected."""
    sock, _ = server.accept()
    sock.setblocking(True)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small messages: no Nagle delay
    conn = Connection(sock.detach())
    try:
        deliver_challenge(conn, authkey)
        answer_challenge(conn, authkey)
        hello = conn.recv() if conn.poll(HANDSHAKE_SECONDS) else None
    except Exception:  # a wrong key (AuthenticationError), a dying worker, garbage
        conn.close()
        return None
    agent = agents.get(hello[1]) if isinstance(hello, tuple) and len(hello) == 2 else None
    if agent is None or agent.conn is not None:
        conn.close()
        return None
    agent.conn = conn
    return agent


def kill_tree(proc: subprocess.Popen[bytes]) -> None:
    """Kill a worker and every process it started (the entry script's children too)."""
    try:
        parent = psutil.Process(proc.pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        family = []
    for p in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)
    psutil.wait_procs(family, timeout=2)


def stop_all(agents: dict[str, Agent]) -> None:
    """Ask idle workers to stop (they exit at once); kill busy or starting ones, and stragglers."""
    for agent in agents.values():
        if agent.conn is not None:
            with contextlib.suppress(OSError):
                agent.conn.send(("stop",))
    end = time.monotonic() + STOP_GRACE
    for agent in list(agents.values()):
        with contextlib.suppress(subprocess.TimeoutExpired):
            idle = agent.ready and agent.conn is not None and not agent.queue  # it reads the stop now
            agent.proc.wait(max(0.0, end - time.monotonic()) if idle else 0)
        kill_tree(agent.proc)
        if agent.conn is not None:
            agent.conn.close()
    agents.clear()
