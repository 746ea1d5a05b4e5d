"""Data behind the studio's pages: chart series, log tails and change notices (Server-Sent Events).

Both streams poll the store or the file from a worker thread and push only what changed, so an
open page costs one cheap query a second and nothing is resent.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from runyard.core.workspace import Workspace
from runyard.errors import InvalidInputError, NotFoundError
from runyard.server.auth import Principal
from runyard.server.errors import HTTPError
from runyard.status import TERMINAL_STATUSES
from runyard.store import SqlStore
from runyard.store.artifacts import clean_relpath
from runyard.studio.auth import LoginRequired, StudioForbidden, studio_principal

POLL_SECONDS = 1.0
LOG_POLL_SECONDS = 0.4
TAIL_BYTES = 512 * 1024  # a log opens at its last 512 KB; the rest is a download away
CHUNK_BYTES = 256 * 1024
MAX_CHART_POINTS = 5000
RECHECK_SECONDS = 5.0  # an open stream re-checks its token this often, so revoking it ends the stream


def _decode(data: bytes, final: bool) -> tuple[str, int]:
    """Text up to the last complete line (everything when `final`), and how many bytes that used."""
    if not final:
        data = data[: data.rfind(b"\n") + 1]
    return data.decode("utf-8", errors="replace"), len(data)


def _whole_characters(data: bytes) -> int:
    """How many bytes of `data` end on a UTF-8 character boundary (a very long line goes in pieces)."""
    lead = len(data) - 1
    while lead > 0 and lead > len(data) - 4 and (data[lead] & 0xC0) == 0x80:
        lead -= 1  # step back over continuation bytes to the last character's first byte
    first = data[lead] if data else 0
    needed = 4 if first >= 0xF0 else 3 if first >= 0xE0 else 2 if first >= 0xC0 else 1
    complete = lead + needed <= len(data)
    return len(data) if complete or lead == 0 else lead


def studio_api_router(workspace: Workspace, store: SqlStore, auth: bool) -> APIRouter:
    router = APIRouter(prefix="/studio/api", include_in_schema=False)
    principal = studio_principal(store, auth)
    artifacts = workspace.artifacts

    class Session:
        """Whether the token that opened a stream still works, asked at most every RECHECK_SECONDS."""

        def __init__(self, request: Request) -> None:
            self.request = request
            self.checked = time.monotonic()

        async def ended(self) -> bool:
            if not auth or time.monotonic() - self.checked < RECHECK_SECONDS:
                return False
            self.checked = time.monotonic()
            try:
                await run_in_threadpool(principal, self.request)
            except (HTTPError, StudioForbidden, LoginRequired):
                return True
            return False

    SIGNED_OUT = {"event": "signed-out", "data": "{}"}

    @router.get("/metrics")
    def chart(
        run: list[str] = Query(...),
        name: str = Query(...),
        points: int = Query(2000),
        who: Principal = Depends(principal),
    ) -> dict[str, Any]:
        if not 10 <= points <= MAX_CHART_POINTS:
            raise InvalidInputError(f"points={points}: ask for between 10 and {MAX_CHART_POINTS} points.")
        series = []
        for run_id in list(dict.fromkeys(run))[:20]:
            record = store.get_run(run_id)
            data = store.get_metric_chart(run_id, name, max_points=points)
            series.append(
                {
                    "run": run_id,
                    "label": record.display_name or f"{record.experiment_name} #{record.number}",
                    "x": data.x,
                    "y": data.y,
                    "count": data.count,
                    "downsampled": data.downsampled,
                }
            )
        return {"name": name, "series": series}

    @router.get("/changes")
    async def changes(request: Request, run: str | None = None, who: Principal = Depends(principal)) -> Any:
        """An event whenever what the page shows may have changed: statuses, new runs, new metric values."""

        async def events() -> AsyncIterator[dict[str, str]]:
            session = Session(request)
            last = await run_in_threadpool(store.change_marker, run)
            while not await request.is_disconnected():
                await asyncio.sleep(POLL_SECONDS)
                if await session.ended():
                    yield SIGNED_OUT
                    return
                marker = await run_in_threadpool(store.change_marker, run)
                if marker != last:
                    last = marker
                    yield {"event": "change", "data": json.dumps({"marker": marker})}

        return EventSourceResponse(events(), ping=15)

    @router.get("/runs/{run_id}/log")
    async def log_stream(
        request: Request, run_id: str, path: str, who: Principal = Depends(principal)
    ) -> Any:
        """The file's last TAIL_BYTES, then every line appended to it until the run ends."""
        await run_in_threadpool(store.get_run, run_id)
        rel = f"runs/{run_id}/{clean_relpath(path)}"
        if not await run_in_threadpool(artifacts.exists, rel):
            raise NotFoundError(f"Run {run_id} has no file {path!r}.")

        async def read(offset: int, length: int) -> bytes:
            return await run_in_threadpool(artifacts.read_bytes, rel, offset, length)

        async def events() -> AsyncIterator[dict[str, str]]:
            size = await run_in_threadpool(artifacts.size, rel)
            offset = max(size - TAIL_BYTES, 0)
            if offset:  # start after a line break, so the first line shown is whole
                newline = (await read(offset, min(size - offset, CHUNK_BYTES))).find(b"\n")
                offset += newline + 1 if newline >= 0 else 0
            yield {"event": "start", "data": json.dumps({"skipped": offset, "size": size})}
            session = Session(request)
            while not await request.is_disconnected():
                if await session.ended():
                    yield SIGNED_OUT
                    return
                ended = (await run_in_threadpool(store.get_run, run_id)).status in TERMINAL_STATUSES
                size = await run_in_threadpool(artifacts.size, rel)
                if size < offset:  # rewritten from the start (open(..., "w")): show it again from the top
                    offset = 0
                    yield {"event": "reset", "data": json.dumps({"size": size})}
                while size > offset:
                    data = await read(offset, min(size - offset, CHUNK_BYTES))
                    if not data:
                        break  # shrank while we looked; the next pass sees the new size
                    text, used = _decode(data, final=ended and offset + len(data) >= size)
                    if used == 0:
                        if len(data) < CHUNK_BYTES:
                            break  # a line still being written: wait for its end
                        used = _whole_characters(data)  # one very long line: send what is whole
                        text = data[:used].decode("utf-8", errors="replace")
                    offset += used
                    yield {"event": "append", "data": json.dumps({"text": text, "offset": offset})}
                if ended:
                    yield {"event": "end", "data": json.dumps({"offset": offset})}
                    return
                await asyncio.sleep(LOG_POLL_SECONDS)

        return EventSourceResponse(events(), ping=15)

    return router
