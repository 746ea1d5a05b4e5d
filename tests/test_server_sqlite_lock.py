"""A SQLite workspace's server while another process holds the database's write lock (issue 10).

A real `runyard server` serves a real runyard.db; a second real process opens the same file and holds
the write lock (BEGIN IMMEDIATE, then sleeps). Meanwhile many threads send writes, and /health and a
read are timed. Reads and health must not queue behind the blocked writers, writes answer 2xx or a
JSON 503 with Retry-After (never a text/plain 500), and a RestStore client, which retries 503, ends
with every one of its writes stored once the lock is free.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import Request

from runyard import Workspace
from runyard.errors import StoreBusy
from runyard.server.errors import HTTPError
from runyard.server.write_gate import WriteGate
from runyard.store import SqlStore
from runyard.store.rest_store import RestStore
from server_process import ServerProcess, running_server
from store_suite import make_run

#: the server's write wait (RUNYARD_SERVER_WRITE_WAIT_SECONDS), kept short so the test stays fast
WRITE_WAIT = 1.5
LOCK_SECONDS = 6.0
WRITERS = 24

_HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held(db: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holds `db`'s write lock for `seconds` (from when this yields)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(db), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.wait(timeout=seconds + 30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, Workspace, str]]:
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    assert isinstance(ws.store, SqlStore)
    run_id = make_run(ws.store, "locked").run_id
    env = {"RUNYARD_SERVER_WRITE_WAIT_SECONDS": str(WRITE_WAIT)}
    with running_server(ws.path, tmp_path / "server.log", env=env) as server:
        yield server, ws, run_id


def _timed_get(client: httpx.Client, path: str) -> tuple[int, float]:
    started = time.monotonic()
    response = client.get(path)
    return response.status_code, time.monotonic() - started


def test_reads_and_health_do_not_wait_for_writes_blocked_by_another_process(
    served: tuple[ServerProcess, Workspace, str],
) -> None:
    server, ws, run_id = served
    # writer number -> (status, content type, headers, body, seconds)
    answers: dict[int, tuple[int, str, dict[str, str], str, float]] = {}

    def write(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=90) as client:
            started = time.monotonic()
            response = client.put(f"/api/v1/runs/{run_id}/tags", json={"tags": {f"k{i}": f"v{i}"}})
            elapsed = time.monotonic() - started
        content_type = response.headers.get("content-type", "")
        answers[i] = (response.status_code, content_type, dict(response.headers), response.text, elapsed)

    rest_errors: list[BaseException] = []

    def rest_client_writes() -> None:  # retries 503 + Retry-After (store/rest_http.py)
        try:
            store = RestStore(server.url)
            store.set_tags(run_id, {"rest": "done"})
            store.add_properties(run_id, {"rest-property": "done"})
        except BaseException as exc:  # reported by the main thread
            rest_errors.append(exc)

    with write_lock_held(ws.path / "runyard.db", LOCK_SECONDS):
        lock_start = time.monotonic()
        writers = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        writers.append(threading.Thread(target=rest_client_writes))
        for thread in writers:
            thread.start()
        time.sleep(0.5)  # the writers are in, and blocked
        reads = []
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(4):
                reads.append(("/health", *_timed_get(client, "/health")))
                reads.append(("run", *_timed_get(client, f"/api/v1/runs/{run_id}")))
                reads.append(("tags", *_timed_get(client, f"/api/v1/runs/{run_id}/tags")))
                time.sleep(0.3)
        for what, status, seconds in reads:
            assert status == 200, (what, status)
            assert seconds < 1.0, f"{what} took {seconds:.1f} s while another process held the write lock"
        assert time.monotonic() - lock_start < LOCK_SECONDS, (
            "the reads must be measured while the lock is held"
        )
    for thread in writers:
        thread.join(timeout=120)

    assert len(answers) == WRITERS
    for status, content_type, headers, body, _seconds in answers.values():
        assert status in (204, 503), (status, content_type, body)
        if status == 503:
            assert content_type.startswith("application/json"), body
            assert httpx.Response(503, content=body).json()["error"]["code"] == "StoreBusy"
            assert float(headers["retry-after"]) >= 1
    busy = [a for a in answers.values() if a[0] == 503]
    assert busy, "with the lock held longer than the write wait, some writes must be turned away"
    # a turned-away write is answered after the write wait, not after minutes
    assert max(a[4] for a in busy) < 2 * WRITE_WAIT + 2
    assert not rest_errors, rest_errors

    tags = ws.store.get_tags(run_id)
    for i, (status, *_rest) in answers.items():  # a 2xx write is stored, a 503 one was not done
        assert (tags.get(f"k{i}") == f"v{i}") == (status == 204), (i, status)
    assert tags["rest"] == "done"
    assert ws.store.get_properties(run_id)["rest-property"] == "done"


def test_writes_blocked_for_less_than_the_write_wait_are_done_once_the_lock_frees(
    served: tuple[ServerProcess, Workspace, str],
) -> None:
    server, ws, run_id = served
    statuses: dict[int, int] = {}

    def write(i: int) -> None:
        rows = [{"run_id": run_id, "name": f"m{i}", "kind": "scalar", "timestamp": time.time(), "value": i}]
        with httpx.Client(base_url=server.url, timeout=90) as client:
            statuses[i] = client.post("/api/v1/metrics", json={"rows": rows}).status_code

    with write_lock_held(ws.path / "runyard.db", WRITE_WAIT / 2):
        writers = [threading.Thread(target=write, args=(i,)) for i in range(12)]
        for thread in writers:
            thread.start()
    for thread in writers:
        thread.join(timeout=60)

    assert set(statuses.values()) <= {200, 503}, statuses
    done = {i for i, status in statuses.items() if status == 200}
    assert done, "a write whose wait outlasts the lock is carried out"
    assert {row.name for row in ws.store.get_metric_rows([run_id])} == {f"m{i}" for i in done}


def _request(method: str, path: str) -> Request:
    return Request({"type": "http", "method": method, "path": path, "headers": [], "query_string": b""})


def test_the_write_gate_bounds_running_and_waiting_writes_and_turns_away_the_rest() -> None:
    """One write at a time, one more may wait: a third is turned away at once, a waiter whose wait runs
    out is turned away, a waiter gets its turn when the running write ends, and reads never wait."""

    async def scenario() -> list[str]:
        gate = WriteGate(wait_seconds=0.3, at_once=1, waiting=1)
        seen: list[str] = []

        async def write(name: str, hold: float) -> None:
            entry = gate(_request("POST", "/api/v1/metrics"))
            try:
                await entry.__anext__()
            except HTTPError as exc:
                assert exc.status == 503 and exc.headers["Retry-After"] == "1"
                assert exc.body["error"]["code"] == "StoreBusy"
                seen.append(f"{name}:503")
                return
            seen.append(f"{name}:in")
            await asyncio.sleep(hold)
            await entry.aclose()

        async def read() -> None:
            entry = gate(_request("GET", "/api/v1/runs/x"))
            await asyncio.wait_for(entry.__anext__(), 0.05)  # no waiting, whatever the writes do
            seen.append("read:in")

        first = asyncio.create_task(write("first", 0.2))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(write("second", 0.5))  # waits 0.19 s: in time
        await asyncio.sleep(0.01)
        await asyncio.gather(write("third", 0), read())  # the queue is full: turned away at once
        await asyncio.gather(first, second)
        # a waiter that outlives the wait: the running write holds its turn for 0.5 s
        hog = asyncio.create_task(write("hog", 0.5))
        await asyncio.sleep(0.01)
        await write("late", 0)
        await hog
        await write("after", 0)  # every turn was given back
        return seen

    assert asyncio.run(scenario()) == [
        "first:in",
        "third:503",
        "read:in",
        "second:in",
        "hog:in",
        "late:503",
        "after:in",
    ]


def test_a_store_turns_a_lock_held_too_long_into_store_busy_and_reads_go_on(tmp_path: Path) -> None:
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    store = ws.store
    assert isinstance(store, SqlStore)
    run_id = make_run(store, "locked").run_id
    store.lock_wait_seconds = 0.3
    with write_lock_held(ws.path / "runyard.db", 3.0):
        started = time.monotonic()
        with pytest.raises(StoreBusy, match=r"stayed locked by another writer .* was not done"):
            store.set_tags(run_id, {"k": "v"})
        assert time.monotonic() - started < 2.0
        assert store.get_run(run_id).run_id == run_id  # a WAL reader does not wait for the lock
    store.set_tags(run_id, {"k": "v"})
    assert store.get_tags(run_id)["k"] == "v"
