"""A bounded queue in front of the database writes of a server on a SQLite workspace.

SQLite lets one writer in at a time, and another process (a script logging locally, a sqlite3 shell, a
backup tool) can hold the write lock for seconds. Each write request runs in a worker thread of the
server's threadpool (40 threads); if every write went straight to the database, writers blocked on
the lock would take all of them, and reads and /health would queue behind the writes. So:

- at most WRITERS_AT_ONCE write requests run at a time (so at most that many threads wait on the lock,
  each for at most the write wait, see SqlBase.lock_wait_seconds);
- up to WRITES_WAITING more wait for their turn in the event loop, holding no thread, for at most the
  write wait (RUNYARD_SERVER_WRITE_WAIT_SECONDS);
- anything beyond that, or a wait that runs out, is answered 503 with Retry-After in runyard's JSON
  error shape: nothing was written, and clients (store/rest_http.py) send it again.

Reads never pass through the gate: they use their own connections, which in WAL mode never wait for
the write lock. The gate is a FastAPI dependency rather than ASGI middleware so that a request's body
is read before it takes a place: a slow upload cannot hold one.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from fastapi import Request

from runyard.server.errors import HTTPError, store_busy

WRITERS_AT_ONCE = 4
WRITES_WAITING = 64
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Routes that move file bytes (streamed, any size) and never write the database: runyard's own artifact
#: routes and MLflow's artifact proxy.
FILE_ROUTE_PREFIXES = ("/api/v1/artifacts", "/api/2.0/mlflow-artifacts/")


def is_database_write(request: Request) -> bool:
    """Whether a request may write to the database. File routes write files only, and MLflow's searches
    are POSTs that only read."""
    path = request.url.path
    return not (
        request.method in _READ_METHODS or path.startswith(FILE_ROUTE_PREFIXES) or path.endswith("/search")
    )


class WriteGate:
    """At most `at_once` writes run; up to `waiting` more wait up to `wait_seconds` for a turn."""

    def __init__(self, wait_seconds: float, at_once: int = WRITERS_AT_ONCE, waiting: int = WRITES_WAITING):
        self.wait_seconds, self.at_once, self.waiting = wait_seconds, at_once, waiting
        self._running = 0
        self._turns: deque[asyncio.Future[None]] = deque()  # waiting requests, first come first served

    async def __call__(self, request: Request) -> AsyncIterator[None]:
        """The dependency: holds a turn while the route runs (only for requests that write)."""
        if not is_database_write(request):
            yield
            return
        await self._enter()
        try:
            yield
        finally:
            self._leave()

    async def _enter(self) -> None:
        if self._running < self.at_once and not self._turns:
            self._running += 1
            return
        if len(self._turns) >= self.waiting:
            raise self._busy(f"{len(self._turns)} writes are already waiting for the database")
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._turns.append(turn)
        try:
            async with asyncio.timeout(self.wait_seconds):
                await turn
        except BaseException as exc:
            got_turn = turn.done() and not turn.cancelled()  # handed over just as the wait ended
            if got_turn and isinstance(exc, TimeoutError):
                return
            if got_turn:
                self._leave()  # the client went away: pass the turn on
            elif turn in self._turns:
                self._turns.remove(turn)
            if isinstance(exc, TimeoutError):
                raise self._busy(f"this write waited {self.wait_seconds:g} s for its turn") from None
            raise

    def _leave(self) -> None:
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():
                turn.set_result(None)  # the turn passes straight on; the count of running writes stays
                return
        self._running -= 1

    @staticmethod
    def _busy(why: str) -> HTTPError:
        return store_busy(
            f"The database is busy ({why}); the write was not done. Send it again after the Retry-After "
            "delay. Writes queue when another process holds the SQLite database's write lock; "
            "RUNYARD_SERVER_WRITE_WAIT_SECONDS on the server sets how long one waits."
        )
