"""Data behind the studio's pages: chart series, log tails and change notices (Server-Sent Events).

Both streams poll the store or the file from a worker thread and push only what changed, so an
open page costs one cheap query a second and nothing is resent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from runyard.core.workspace import Workspace
from runyard.errors import InvalidInputError, NotFoundError
from runyard.server.auth import Principal
from runyard.status import TERMINAL_STATUSES
from runyard.store import SqlStore
from runyard.store.artifacts import clean_relpath
from runyard.studio.auth import studio_principal

POLL_SECONDS = 1.0
LOG_POLL_SECONDS = 0.4
TAIL_BYTES = 512 * 1024  # a log opens at its last 512 KB; the rest is a download away
CHUNK_BYTES = 256 * 1024
MAX_CHART_POINTS = 5000


def _decode(data: bytes, final: bool) -> tuple[str, int]:
    """Text up to the last complete line (or everything when `final`), and how many bytes that used."""
    if not final:
        cut = data.rfind(b"\n") + 1
        data = data[:cut]
    return data.decode("utf-8", errors="replace"), len(data)


def studio_api_router(workspace: Workspace, store: SqlStore, auth: bool) -> APIRouter:
    router = APIRouter(prefix="/studio/api", include_in_schema=False)
    principal = studio_principal(store, auth)
    artifacts = workspace.artifacts

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
            last = await run_in_threadpool(store.change_marker, run)
            while not await request.is_disconnected():
                await asyncio.sleep(POLL_SECONDS)
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

        async def events() -> AsyncIterator[dict[str, str]]:
            size = await run_in_threadpool(artifacts.size, rel)
            offset = max(size - TAIL_BYTES, 0)
            yield {"event": "start", "data": json.dumps({"skipped": offset, "size": size})}
            while not await request.is_disconnected():
                ended = (await run_in_threadpool(store.get_run, run_id)).status in TERMINAL_STATUSES
                size = await run_in_threadpool(artifacts.size, rel)
                while size > offset:
                    length = min(size - offset, CHUNK_BYTES)
                    data = await run_in_threadpool(artifacts.read_bytes, rel, offset, length)
                    text, used = _decode(data, final=ended and offset + length >= size)
                    if used == 0:
                        if length < CHUNK_BYTES:
                            break  # a line still being written: wait for its end
                        text, used = _decode(data, final=True)  # one very long line
                    offset += used
                    yield {"event": "append", "data": json.dumps({"text": text, "offset": offset})}
                if ended:
                    yield {"event": "end", "data": json.dumps({"offset": offset})}
                    return
                await asyncio.sleep(LOG_POLL_SECONDS)

        return EventSourceResponse(events(), ping=15)

    return router
