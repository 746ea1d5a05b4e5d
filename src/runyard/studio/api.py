"""Data behind the studio's pages: chart series, and each page's one event stream (Server-Sent
Events) of change notices and, on a log view, the log's new lines (studio/streams.py).

The stream polls the store and the file from worker threads and pushes only what changed, so an
open page costs one cheap query a second and nothing is resent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from runyard.errors import InvalidInputError, NotFoundError
from runyard.server.auth import Principal
from runyard.server.errors import HTTPError
from runyard.store import ArtifactStore, SqlStore
from runyard.store.artifacts import clean_relpath
from runyard.studio.auth import LoginRequired, StudioForbidden, studio_principal
from runyard.studio.streams import ChangeWatch, LogTail, ProgressWatch, event

POLL_SECONDS = 1.0
LOG_POLL_SECONDS = 0.4
MAX_CHART_POINTS = 5000
RECHECK_SECONDS = 5.0  # an open stream re-checks its token this often, so revoking it ends the stream


def studio_api_router(store: SqlStore, artifacts: ArtifactStore, auth: bool) -> APIRouter:
    router = APIRouter(prefix="/studio/api", include_in_schema=False)
    principal = studio_principal(store, auth)

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

    @router.get("/live")
    async def live(
        request: Request,
        run: str | None = None,
        log_run: str | None = None,
        log: str | None = None,
        progress_run: str | None = None,
        who: Principal = Depends(principal),
    ) -> Any:
        """The page's one event stream: "change" whenever what it shows may have changed (statuses, new
        runs, metric values, names, tags, and with `progress_run` that step's parallel progress file), and
        with `log_run` and `log` that file's tail, live."""
        watch = ChangeWatch(store, run)
        progress = None
        if progress_run is not None:
            await run_in_threadpool(store.get_run, progress_run)
            progress = ProgressWatch(store, artifacts, progress_run)
        tail = None
        if log_run is not None and log is not None:
            await run_in_threadpool(store.get_run, log_run)
            rel = f"runs/{log_run}/{clean_relpath(log)}"
            if not await run_in_threadpool(artifacts.exists, rel):
                raise NotFoundError(f"Run {log_run} has no file {log!r}.")
            tail = LogTail(store, artifacts, log_run, rel)

        async def events() -> AsyncIterator[dict[str, str]]:
            session = Session(request)
            await watch.poll()  # the baselines the stream compares against
            if progress is not None:
                await progress.poll()
            if tail is not None:
                yield await tail.start()
            # The page was rendered before this stream began: whatever changed in between is caught by
            # one refresh the page makes on "ready" (sent after the baselines above, on every reconnect).
            yield event("ready")
            next_check = time.monotonic()
            while not await request.is_disconnected():
                if await session.ended():
                    yield SIGNED_OUT
                    return
                if tail is not None:
                    for item in await tail.poll():
                        yield item
                if time.monotonic() >= next_check:
                    changes = await watch.poll()
                    moved = await progress.poll() if progress is not None else []
                    for item in changes or moved:  # one "change" re-renders the page for both
                        yield item
                    next_check = time.monotonic() + POLL_SECONDS
                following = tail is not None and not tail.done
                await asyncio.sleep(LOG_POLL_SECONDS if following else POLL_SECONDS)

        return EventSourceResponse(events(), ping=15)

    return router
