"""The driver's worker processes ("agents", v1's processNNN): start, handshake, stop.

Kept apart from the driver's scheduling loop (driver.py) because this is the part a remote node would
replace: a worker anywhere that can reach the listener and knows the authkey joins the same way, by
sending ("hello", agent) after multiprocessing's challenge handshake. The driver trusts a connection
only for the agent name it started and only once.

Anyone on the machine can connect to 127.0.0.1, so a connection's handshake runs in a short-lived
thread with a hard deadline (Listener): a stranger that connects and says nothing, or sends garbage,
is dropped without ever holding up the driver's loop.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, answer_challenge, deliver_challenge
from pathlib import Path
from typing import Any

import psutil

from runyard.parallel import worker as worker_env
from runyard.parallel._user.azureml_user import parallel_run as entry_env
from runyard.parallel.joblogs import AgentPaths
from runyard.parallel.partition import MiniBatch

__all__ = [
    "Agent",
    "Listener",
    "kill_tree",
    "spawn",
    "stop_all",
    "worker_environment",
    "worker_plumbing",
]

STOP_GRACE = 3.0
HANDSHAKE_SECONDS = 10.0
MAX_HANDSHAKES = 64  # connections being authenticated at once; more are dropped at once


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


def is_identity_variable(key: str) -> bool:
    """The variables that say which run a process belongs to, where it reports and with which token:
    runyard sets them, a step's environment_variables may not (graph_parallel refuses them too)."""
    return key.startswith("RUNYARD_") or key == "AZUREML_RUN_ID" or key.startswith("AZUREML_ARM_")


def worker_plumbing(
    name: str,
    address: tuple[str, int],
    authkey: bytes,
    entry_script: Path,
    arguments: list[str],
    results: Path | None,
    level: str,
    preload: bool = False,
) -> dict[str, Any]:
    """What a worker needs to join (worker.py reads it from its stdin, never from its environment:
    /proc/<pid>/environ would show the authkey to the entry script and its children)."""
    return {
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


def worker_environment(
    name: str, paths: AgentPaths, level: str, output_dir: str, cwd: Path, extra: dict[str, str]
) -> dict[str, str]:
    """The worker's environment: the driver's, the step's environment_variables, what EntryScript reads
    (AZUREML_PARALLEL_*). The driver's own identity (RUNYARD_*, AZUREML_RUN_ID, AZUREML_ARM_*: run id,
    token, tracking URI) wins over environment_variables, as ProcessJob.environment() does for a job: a
    worker told it is another run would log to it and be canceled with it instead of this one."""
    env = {**os.environ, **extra}
    for key in extra:
        if is_identity_variable(key):
            if key in os.environ:
                env[key] = os.environ[key]
            else:
                env.pop(key, None)
    env.update(
        {
            entry_env.ENV_AGENT: name,
            entry_env.ENV_LOG_DIR: str(paths.entry_log.parent),
            entry_env.ENV_LOG_FILE: str(paths.entry_log),
            entry_env.ENV_OUTPUT_DIR: output_dir,
            entry_env.ENV_WORKING_DIR: str(cwd),
            entry_env.ENV_LEVEL: level,
        }
    )
    return env


def spawn(name: str, paths: AgentPaths, env: dict[str, str], cwd: Path, plumbing: dict[str, Any]) -> Agent:
    """Start a worker (by path: see worker.py) with its stdout/stderr in the agent's log files and its
    plumbing written to its stdin (which it then replaces with /dev/null)."""
    with open(paths.stdout, "ab") as out, open(paths.stderr, "ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-P", worker_env.__file__],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=err,
        )
    assert proc.stdin is not None
    with contextlib.suppress(OSError):  # a worker dead at once: the driver sees it exit
        proc.stdin.write(json.dumps(plumbing).encode())
    with contextlib.suppress(OSError):
        proc.stdin.close()
    return Agent(name, proc)


class Listener:
    """The workers' listener (127.0.0.1, a random port) and their handshakes.

    `accept()` (the loop calls it when `server` is readable) takes the connection and authenticates it
    in a thread: multiprocessing's challenge both ways, then ("hello", agent), all within
    HANDSHAKE_SECONDS, after which the socket is shut down. Finished handshakes wake the loop through
    `ready` (also in its wait set); `take()` then attaches each to its agent, in the loop's thread."""

    def __init__(self, authkey: bytes) -> None:
        self.authkey = authkey
        self.server = socket.create_server(("127.0.0.1", 0))
        self.ready, self._notify = socket.socketpair()
        self.ready.setblocking(False)
        self._notify.setblocking(False)
        self._done: queue.SimpleQueue[tuple[Connection | None, str, str]] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(MAX_HANDSHAKES)
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.getsockname()[:2]
        return str(host), int(port)

    def accept(self) -> None:
        try:
            sock, peer = self.server.accept()
        except OSError:
            return
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        if not self._slots.acquire(blocking=False):
            sock.close()
            self._report(None, "", f"a connection from {where} was dropped: {MAX_HANDSHAKES} handshakes busy")
            return
        threading.Thread(target=self._handshake, args=(sock, where), daemon=True).start()

    def _handshake(self, sock: socket.socket, where: str) -> None:
        lock, state = threading.Lock(), {"done": False, "expired": False}

        def expire() -> None:
            with lock:
                if not state["done"]:
                    state["expired"] = True
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)  # unblocks the handshake's reads

        timer = threading.Timer(HANDSHAKE_SECONDS, expire)
        timer.daemon = True
        conn: Connection | None = None
        try:
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small messages: no Nagle delay
            conn = Connection(os.dup(sock.fileno()))
            timer.start()
            deliver_challenge(conn, self.authkey)
            answer_challenge(conn, self.authkey)
            hello = conn.recv()
            with lock:
                state["done"] = True
                expired = state["expired"]
            if expired:
                raise TimeoutError(f"no handshake within {HANDSHAKE_SECONDS:g} s")
            if not (isinstance(hello, tuple) and len(hello) == 2 and hello[0] == "hello"):
                raise ValueError("its first message was not a worker's hello")
            if not isinstance(hello[1], str):
                raise ValueError("it named no agent")
            self._report(conn, hello[1], "")
            conn = None
        except Exception as exc:  # a wrong key (AuthenticationError), silence, garbage, a dying worker
            reason = f"no handshake within {HANDSHAKE_SECONDS:g} s" if state["expired"] else repr(exc)
            self._report(None, "", f"a connection from {where} was dropped: {reason[:200]}")
        finally:
            timer.cancel()
            if conn is not None:
                conn.close()
            sock.close()  # the accepted Connection holds its own descriptor
            self._slots.release()

    def _report(self, conn: Connection | None, agent: str, note: str) -> None:
        if self._closed and conn is not None:
            conn.close()  # the job ended while this handshake ran
            return
        self._done.put((conn, agent, note))
        with contextlib.suppress(OSError):  # full: the loop is awake already
            self._notify.send(b"!")

    def take(self, agents: dict[str, Agent]) -> list[str]:
        """Attach finished handshakes to their agents; the sentences for the master log (dropped
        connections: strangers, wrong keys, an agent that is unknown or connected already)."""
        with contextlib.suppress(OSError):
            while self.ready.recv(4096):
                pass
        notes: list[str] = []
        while True:
            try:
                conn, name, note = self._done.get_nowait()
            except queue.Empty:
                return notes
            if conn is None:
                notes.append(note)
                continue
            agent = agents.get(name)
            if agent is None or agent.conn is not None:
                conn.close()
                why = "no such worker" if agent is None else "that worker is connected already"
                notes.append(f"a connection naming worker {name[:40]!r} was dropped: {why}")
                continue
            agent.conn = conn

    def close(self) -> None:
        self._closed = True
        self.server.close()
        self.ready.close()
        self._notify.close()
        with contextlib.suppress(queue.Empty):
            while True:
                conn, _, _ = self._done.get_nowait()
                if conn is not None:
                    conn.close()


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
