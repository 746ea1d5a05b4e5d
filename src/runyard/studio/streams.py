"""What a page's one event stream follows: the store's change marker, on a log view one file, and on a
running ParallelRunStep's page its progress file.

Both are polled from worker threads (the store and the files are blocking) and turn into
Server-Sent Events; api.py interleaves them in a single stream per page, because browsers allow
only six connections per host over HTTP/1.1.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from runyard.parallel.progress import PROGRESS_FILE
from runyard.status import TERMINAL_STATUSES
from runyard.store import ArtifactStore, SqlStore

TAIL_BYTES = 512 * 1024  # a log opens at its last 512 KB; the rest is a download away
CHUNK_BYTES = 256 * 1024

Event = dict[str, str]


def event(name: str, **data: Any) -> Event:
    return {"event": name, "data": json.dumps(data)}


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


class ChangeWatch:
    """Sends "change" when the store's change marker for the page (a run's family, or everything) moves."""

    def __init__(self, store: SqlStore, run_id: str | None) -> None:
        self.marker: Callable[[], str] = lambda: store.change_marker(run_id)
        self.last: str | None = None

    async def poll(self) -> list[Event]:
        marker = await run_in_threadpool(self.marker)
        moved, self.last = self.last is not None and marker != self.last, marker
        return [event("change", marker=marker)] if moved else []


class ProgressWatch:
    """Sends "change" when a running ParallelRunStep's progress file is replaced. Its driver does that
    at most once a second but logs metrics (which move the store's marker) only every 5 s; the card's
    bar should move with the file. Stops reading once the step run has ended and its last file was seen."""

    def __init__(self, store: SqlStore, artifacts: ArtifactStore, run_id: str) -> None:
        self.store, self.artifacts, self.run_id = store, artifacts, run_id
        self.rel = f"runs/{run_id}/{PROGRESS_FILE}"
        self.last: bytes | None = None
        self.done = False

    def _read(self) -> bytes:
        return self.artifacts.read_bytes(self.rel) if self.artifacts.exists(self.rel) else b""

    async def poll(self) -> list[Event]:
        if self.done:
            return []
        ended = (await run_in_threadpool(self.store.get_run, self.run_id)).status in TERMINAL_STATUSES
        data = await run_in_threadpool(self._read)
        moved, self.last = self.last is not None and data != self.last, data
        self.done = ended
        return [event("change", marker="progress")] if moved else []


class LogTail:
    """A run's file: its last TAIL_BYTES from a whole line ("start"), then each complete line appended
    ("append"), "reset" when it was rewritten from the top, and "end" once the run has ended."""

    def __init__(self, store: SqlStore, artifacts: ArtifactStore, run_id: str, rel: str) -> None:
        self.store, self.artifacts, self.run_id, self.rel = store, artifacts, run_id, rel
        self.offset = 0
        self.done = False

    async def _read(self, offset: int, length: int) -> bytes:
        return await run_in_threadpool(self.artifacts.read_bytes, self.rel, offset, length)

    async def start(self) -> Event:
        size = await run_in_threadpool(self.artifacts.size, self.rel)
        self.offset = max(size - TAIL_BYTES, 0)
        if self.offset:  # start after a line break, so the first line shown is whole
            newline = (await self._read(self.offset, min(size - self.offset, CHUNK_BYTES))).find(b"\n")
            self.offset += newline + 1 if newline >= 0 else 0
        return event("start", skipped=self.offset, size=size)

    async def poll(self) -> list[Event]:
        if self.done:
            return []
        ended = (await run_in_threadpool(self.store.get_run, self.run_id)).status in TERMINAL_STATUSES
        size = await run_in_threadpool(self.artifacts.size, self.rel)
        events = []
        if size < self.offset:  # rewritten from the start (open(..., "w")): show it again from the top
            self.offset = 0
            events.append(event("reset", size=size))
        while size > self.offset:
            data = await self._read(self.offset, min(size - self.offset, CHUNK_BYTES))
            if not data:
                break  # shrank while we looked; the next pass sees the new size
            text, used = _decode(data, final=ended and self.offset + len(data) >= size)
            if used == 0:
                if len(data) < CHUNK_BYTES:
                    break  # a line still being written: wait for its end
                used = _whole_characters(data)  # one very long line: send what is whole
                text = data[:used].decode("utf-8", errors="replace")
            self.offset += used
            events.append(event("append", text=text, offset=self.offset))
        if ended:
            self.done = True
            events.append(event("end", offset=self.offset))
        return events
