"""The job side of the metric spool: a memory-mapped ring of fixed-size records, one file per process.

run.log() must cost a training loop next to nothing, yet a value it accepted must survive a SIGKILL a
microsecond later. A MAP_SHARED mapping gives both: a record packed into it is in the page cache at
once (the kernel keeps it when the process dies), and packing it is one `Struct.pack_into` call with
no lock, no syscall and no object left behind. The job's supervisor reads the ring (core/metric_drain.py)
and writes the store; the job never opens the database for its metrics.

Files, in the spool folder (`<work>/spool` of a submitted run):

- `<writer>.ring`: a HEADER_BYTES header (magic, version, record size, capacity, `consumed`, `wanted`)
  then `capacity` records. Record `seq` lives in slot `seq % capacity` and stores `seq + 1`, so a zeroed
  slot reads as empty; `seq` is the record's last field, so a record cut short by a kill never looks
  whole (pack_into zeroes the record, then writes its fields in order). `consumed` is written only by the
  consumer: every seq below it is stored (or refused). A writer never overwrites an unconsumed slot: it
  waits, so memory and disk stay flat however many values are logged. `wanted` is the writer's request
  to be drained now (a flush, or a full ring).
- `<writer>.jsonl`: appended with one os.write per line: series definitions (`{"d": id, "r": run, "n":
  name}`, written before the first record that uses the id) and the values the fixed layout cannot hold
  (strings, log_list/log_row/log_table/log_image, ints beyond 64 bits) as whole rows with a seq from the
  same counter. The reader merges both by seq; a line without its newline was never acknowledged.

Both files hold native-endian data: they are read on the machine that wrote them, by design.
Imports: stdlib and runyard.errors only (a job must not load the database client for logging).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import mmap
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard.errors import RunyardError

MAGIC = b"RYSPOOL1"
VERSION = 1
#: magic, version, record size, capacity, consumed, wanted (native order: the spool never leaves its machine)
HEADER = struct.Struct("@8sIIQQQ")
HEADER_BYTES = 4096  # one page, so that records start page-aligned
CONSUMED_AT, WANTED_AT = 24, 32
COUNTER = struct.Struct("@Q")
#: series id, tag, (3 pad), step, value, timestamp, seq + 1 — seq last, see the module docstring
FLOAT_RECORD = struct.Struct("@IB3xqddQ")
INT_RECORD = struct.Struct("@IB3xqqdQ")
RECORD_BYTES = FLOAT_RECORD.size
#: A record's tag: the value's type, | HAS_STEP when a step was given. SKIP marks a seq whose value went
#: elsewhere (the side file could not be written), so that the reader does not wait for it.
T_FLOAT, T_INT, T_BOOL, T_NONE, T_SKIP = 1, 2, 3, 4, 5
HAS_STEP = 0x10
T_STEP_FLOAT = T_FLOAT | HAS_STEP
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Seconds a writer waits for room before it says, once, that nothing seems to drain its spool.
STALL_NOTICE_SECONDS = 60.0

assert RECORD_BYTES == INT_RECORD.size == 40


class SpoolFull(RunyardError):
    """The spool's disk has no room (or the spool cannot be written): the caller falls back to the store."""


def next_value(counter: itertools.count[int]) -> int:
    """The value `next(counter)` would return, without taking it (a taken seq that is never written is a
    gap the reader has to wait out)."""
    text = repr(counter)  # "count(17)"
    return int(text[text.index("(") + 1 : -1])


class SpoolRing:
    """One process's ring and side file. Hot path: put_float / put_int (no lock: a seq comes from an
    itertools.count, atomic under the GIL, and each seq owns its slot until the consumer passes it)."""

    def __init__(self, folder: Path, writer_id: str, capacity: int, seqs: itertools.count[int]) -> None:
        self.folder = folder
        self.writer_id = writer_id
        self.capacity = capacity
        self.path = folder / f"{writer_id}.ring"
        self.side_path = folder / f"{writer_id}.jsonl"
        self._seqs = seqs
        self._lock = threading.Lock()  # series definitions only
        self._defined = 0
        size = HEADER_BYTES + capacity * RECORD_BYTES
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise SpoolFull(describe(exc, self.path)) from exc
        try:
            # Take the disk space now: a page of a sparse file that cannot be allocated later would kill the
            # process with SIGBUS in the middle of run.log(). A ring left at size 0 tells the supervisor why.
            os.posix_fallocate(fd, 0, size)
            self._mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        except OSError as exc:
            os.ftruncate(fd, 0)
            raise SpoolFull(describe(exc, self.path)) from exc
        finally:
            os.close(fd)
        HEADER.pack_into(self._mm, 0, MAGIC, VERSION, RECORD_BYTES, capacity, 0, 0)
        try:
            self._side = os.open(self.side_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            self._mm.close()
            raise SpoolFull(describe(exc, self.side_path)) from exc
        #: Seqs below this fit without waiting (refreshed from `consumed` when a writer reaches it).
        self._room = capacity
        self._stall_said = False
        #: called when the writer asks for a drain: an in-process consumer is woken this way
        self.on_request: Callable[[], None] | None = None
        self._hot_path()

    # -- the hot path -----------------------------------------------------------------------------
    def _hot_path(self) -> None:
        """put_float and put_int as closures over the ring's mapping and counter: a closure's variables
        cost less to reach than attributes, and these run once per logged value."""
        mm, capacity, take, now = self._mm, self.capacity, self._seqs.__next__, time.time
        pack_float, pack_int, wait = FLOAT_RECORD.pack_into, INT_RECORD.pack_into, self._wait_for_room
        ring = self

        def put_float(sid: int, value: float, step: int | None) -> None:
            seq = take()
            if seq >= ring._room:
                wait(seq)
            if step is None:
                pack_float(
                    mm, HEADER_BYTES + seq % capacity * RECORD_BYTES, sid, T_FLOAT, 0, value, now(), seq + 1
                )
            else:
                pack_float(
                    mm,
                    HEADER_BYTES + seq % capacity * RECORD_BYTES,
                    sid,
                    T_STEP_FLOAT,
                    step,
                    value,
                    now(),
                    seq + 1,
                )

        def put_int(sid: int, value: int, step: int | None, tag: int = T_INT) -> None:
            """An int in -2**63..2**63-1 (or a bool / None with their tags): stored as an int, given back as one."""
            seq = take()
            if seq >= ring._room:
                wait(seq)
            if step is None:
                pack_int(mm, HEADER_BYTES + seq % capacity * RECORD_BYTES, sid, tag, 0, value, now(), seq + 1)
            else:
                pack_int(
                    mm,
                    HEADER_BYTES + seq % capacity * RECORD_BYTES,
                    sid,
                    tag | HAS_STEP,
                    step,
                    value,
                    now(),
                    seq + 1,
                )

        self.put_float = put_float
        self.put_int = put_int

    def _wait_for_room(self, seq: int) -> None:
        """The slot of `seq` still holds a value the consumer has not taken: ask for a drain and wait.
        This is what keeps the spool bounded; it only happens when values arrive faster than the store
        takes them, or when nothing drains (then it says so once, and keeps waiting)."""
        started = time.monotonic()
        delay = 0.0002
        consumed = self.consumed()
        while seq >= consumed + self.capacity:
            self.request(seq + 1)
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
            consumed = self.consumed()
            if not self._stall_said and time.monotonic() - started > STALL_NOTICE_SECONDS:
                self._stall_said = True
                print(
                    f"runyard: the metric spool {self.path} is full and has not been drained for "
                    f"{STALL_NOTICE_SECONDS:.0f}s; run.log() waits for the job's supervisor to store its values",
                    file=sys.stderr,
                    flush=True,
                )
        self._room = consumed + self.capacity

    # -- series and side rows -------------------------------------------------------------------
    def define(self, run_id: str, name: str) -> int:
        """A new series id for (run_id, name), written to the side file before any record uses it."""
        with self._lock:
            sid = self._defined
            self._write_line({"d": sid, "r": run_id, "n": name})
            self._defined += 1
            return sid

    def put_row(self, row: dict[str, Any]) -> int:
        """Append a whole row (a value the fixed layout cannot hold) with the next seq; returns the seq.
        If the side file cannot take it, the seq's slot is marked SKIP and SpoolFull raised: the caller
        sends that value to the store itself."""
        seq = next(self._seqs)
        try:
            self._write_line({"q": seq, **row})
        except SpoolFull:
            self.skip(seq)
            raise
        return seq

    def skip(self, seq: int) -> None:
        if seq >= self._room:
            self._wait_for_room(seq)
        INT_RECORD.pack_into(
            self._mm, HEADER_BYTES + seq % self.capacity * RECORD_BYTES, 0, T_SKIP, 0, 0, time.time(), seq + 1
        )

    def _write_line(self, record: dict[str, Any]) -> None:
        data = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        try:
            written = os.write(self._side, data)
        except OSError as exc:
            raise SpoolFull(describe(exc, self.side_path)) from exc
        if written != len(data):  # a short write on a full disk: the line stays torn, so it never counts
            raise SpoolFull(describe(OSError(errno.ENOSPC, "short write"), self.side_path))

    # -- the header -----------------------------------------------------------------------------
    def consumed(self) -> int:
        value: int = COUNTER.unpack_from(self._mm, CONSUMED_AT)[0]
        return value

    def request(self, upto: int) -> None:
        """Ask the consumer to drain up to seq `upto` now (it drains all it can; this only wakes it)."""
        COUNTER.pack_into(self._mm, WANTED_AT, upto)
        if self.on_request is not None:
            self.on_request()

    def logged(self) -> int:
        """How many seqs this process has taken so far."""
        return next_value(self._seqs)

    def wait_consumed(self, upto: int, timeout: float, stall: float | None = None) -> bool:
        """Wait until the consumer has taken every seq below `upto`. False after `timeout` seconds, or
        after `stall` seconds in which `consumed` did not move."""
        deadline = time.monotonic() + timeout
        last, moved = self.consumed(), time.monotonic()
        delay = 0.0005
        while last < upto:
            now = time.monotonic()
            if now > deadline or (stall is not None and now - moved > stall):
                return False
            self.request(upto)
            time.sleep(delay)
            delay = min(delay * 1.5, 0.02)
            current = self.consumed()
            if current != last:
                last, moved = current, time.monotonic()
        return True

    def close(self) -> None:
        """Unmap and close (a forked child drops its parent's ring this way; the parent's file is untouched)."""
        for close in (self._mm.close, lambda: os.close(self._side)):
            with contextlib.suppress(OSError, ValueError):
                close()


def describe(exc: OSError, path: Path) -> str:
    what = "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "cannot write"
    return f"{what} while spooling metrics in {path.parent} ({exc.strerror or exc})"
