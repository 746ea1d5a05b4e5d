"""Reading one process's metric spool (core/metric_spool.py) from outside it: the consumer side.

The files were written by a job, so they are data from an untrusted process: a bad header, record or
side-file line is reported and skipped, never trusted. Nothing here maps the ring: it is read with
pread, so a job that truncates its file cannot make the reader fault (SIGBUS), and `consumed` is
written back with pwrite (the page cache is shared with the job's mapping).

A record is read twice: its seq first, then the whole range again. The writer packs the seq last, so a
record whose seq was already right on the first read is complete on the second (x86's store order and
the kernel's in-order copy; a torn record cannot be taken).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from runyard.core.metric_spool import (
    CONSUMED_AT,
    COUNTER,
    HEADER,
    HEADER_BYTES,
    MAGIC,
    RECORD_BYTES,
    T_SKIP,
    VERSION,
    WANTED_AT,
)

#: The record layout of metric_spool.FLOAT_RECORD ('@IB3xqddQ'); INT_RECORDS views `value` as an int.
RECORDS = np.dtype(
    {
        "names": ["sid", "tag", "step", "value", "ts", "seq"],
        "formats": ["=u4", "u1", "=i8", "=f8", "=f8", "=u8"],
        "offsets": [0, 4, 8, 16, 24, 32],
        "itemsize": RECORD_BYTES,
    }
)
INT_RECORDS = np.dtype(
    {
        "names": ["sid", "tag", "step", "value", "ts", "seq"],
        "formats": ["=u4", "u1", "=i8", "=i8", "=f8", "=u8"],
        "offsets": [0, 4, 8, 16, 24, 32],
        "itemsize": RECORD_BYTES,
    }
)
#: A seq taken but never written while later ones were (a thread stopped between the two) is waited for
#: this long while the writer may still be alive; then it is given up. After the writer died, at once.
GAP_SECONDS = 5.0
#: Longest side-file line read (a log_table row or a confusion matrix may be large, not this large).
MAX_LINE_BYTES = 64 * 1024 * 1024
SIDE_READ_BYTES = 1 << 20


class SpoolCorrupt(Exception):
    """This spool file cannot be read as a spool; the message says why (for the run's control log)."""


@dataclass
class Taken:
    """What one read found, in seq order: fixed-size records, side rows, and the seq to mark consumed
    once both are stored. `skipped`: seqs given up (never written)."""

    records: np.ndarray[Any, Any]
    rows: list[tuple[int, dict[str, Any]]]
    upto: int
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.records) + len(self.rows)


@dataclass
class RingReader:
    """One writer's ring and side file, opened for reading; keeps the series definitions and the side
    rows not yet consumed."""

    path: Path
    fd: int
    capacity: int
    writer: str
    series: dict[int, tuple[str, str]] = field(default_factory=dict)
    side_rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    _side_fd: int | None = None
    _side_at: int = 0
    _tail: bytes = b""
    _gap: tuple[int, float] | None = None

    @classmethod
    def open(cls, path: Path) -> RingReader | None:
        """None while the writer has not written the header yet (or could not allocate the ring: see
        `allocated`). Raises SpoolCorrupt for a file that is not a ring of this version."""
        try:
            fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise SpoolCorrupt(f"cannot open {path.name}: {exc.strerror or exc}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SpoolCorrupt(f"{path.name} is not a regular file")
            head = os.pread(fd, HEADER.size, 0)
            if len(head) < HEADER.size or head[:8] == b"\0" * 8:
                os.close(fd)
                return None
            magic, version, size, capacity, _, _ = HEADER.unpack(head)
            if magic != MAGIC or version != VERSION or size != RECORD_BYTES:
                raise SpoolCorrupt(
                    f"{path.name} is not a version-{VERSION} metric spool (header {head[:16]!r})"
                )
            if capacity < 1 or info.st_size != HEADER_BYTES + capacity * RECORD_BYTES:
                raise SpoolCorrupt(f"{path.name} claims {capacity} records but is {info.st_size} bytes long")
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, int(capacity), path.name[: -len(".ring")])

    def close(self) -> None:
        for fd in (self.fd, self._side_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._side_fd = None

    # -- the header ---------------------------------------------------------------------------------
    def consumed(self) -> int:
        value: int = COUNTER.unpack(os.pread(self.fd, COUNTER.size, CONSUMED_AT))[0]
        return value

    def wanted(self) -> int:
        value: int = COUNTER.unpack(os.pread(self.fd, COUNTER.size, WANTED_AT))[0]
        return value

    def mark_consumed(self, upto: int) -> None:
        os.pwrite(self.fd, COUNTER.pack(upto), CONSUMED_AT)
        for seq in [s for s in self.side_rows if s < upto]:
            del self.side_rows[seq]

    def holds(self, seq: int) -> bool:
        """Is the record of `seq` written (cheap: one 8-byte read)?"""
        at = HEADER_BYTES + (seq % self.capacity) * RECORD_BYTES + RECORD_BYTES - 8
        raw = os.pread(self.fd, 8, at)
        return len(raw) == 8 and COUNTER.unpack(raw)[0] == seq + 1

    def urgent(self) -> bool:
        """Drain now rather than at the next interval: the writer asked (a flush, a full ring), or the
        ring is half full."""
        consumed = self.consumed()
        return self.wanted() > consumed or self.holds(consumed + self.capacity // 2)

    def has_news(self) -> bool:
        consumed = self.consumed()
        return self.holds(consumed) or consumed in self.side_rows or self._side_grew()

    # -- reading ------------------------------------------------------------------------------------
    def _slots(self, first: int, count: int) -> np.ndarray[Any, Any]:
        """`count` records from seq `first` on, in seq order (the range may wrap around the ring's end)."""
        start = first % self.capacity
        head = min(count, self.capacity - start)
        raw = os.pread(self.fd, head * RECORD_BYTES, HEADER_BYTES + start * RECORD_BYTES)
        if count > head:
            raw += os.pread(self.fd, (count - head) * RECORD_BYTES, HEADER_BYTES)
        whole = (
            len(raw) // RECORD_BYTES * RECORD_BYTES
        )  # a file truncated under us reads short: use what is there
        return np.frombuffer(raw[:whole], RECORDS)

    def _extent(self, first: int) -> int:
        """About how many seqs from `first` on are written: a binary search on slots (values are written
        in seq order but for a few in flight, so the written ones form a prefix)."""
        low, high = (
            0,
            self.capacity,
        )  # holds(first + low - 1) is true or low == 0; the answer is in [low, high]
        while low < high:
            middle = (low + high + 1) // 2
            if self.holds(first + middle - 1):
                low = middle
            else:
                high = middle - 1
        return low

    def take(self, limit: int, final: bool = False) -> Taken:
        """What can be consumed from `consumed` on, at most `limit` seqs. While the writer lives, only the
        unbroken prefix (a gap is a value still being written); `final` (the writer is dead): everything
        in the ring, gaps and all."""
        first = self.consumed()
        if final:
            return self._take_all(first)
        count = min(self.capacity, limit, max(self._extent(first), 1) + 1024)
        seqs = self._slots(first, count)["seq"]
        count = len(seqs)
        self._read_side()  # after the ring: a definition is written before the records that use it
        expected = np.arange(first + 1, first + count + 1, dtype=np.uint64)
        in_ring = seqs == expected
        ok = in_ring.copy()
        for seq in self.side_rows:
            if first <= seq < first + count:
                ok[seq - first] = True
        skipped = 0
        end = count if ok.all() else int(np.argmin(ok))
        while end < count and ok[end + 1 :].any() and self._gap_given_up(first + end):
            ok[end] = True  # a seq that never came while later ones did: given up
            skipped += 1
            end = count if ok.all() else int(np.argmin(ok))
        records = self._slots(first, end) if end else np.empty(0, RECORDS)
        if len(records) != end:
            raise SpoolCorrupt(f"{self.path.name} became shorter while it was read")
        records = records[in_ring[:end]]
        records = records[records["tag"] != T_SKIP]
        rows = sorted((s, r) for s, r in self.side_rows.items() if first <= s < first + end)
        return Taken(records, rows, first + end, skipped)

    def _take_all(self, first: int) -> Taken:
        records = self._slots(0, self.capacity)
        self._read_side()
        seqs = records["seq"].astype(np.int64) - 1
        slots = np.arange(len(records), dtype=np.int64)
        valid = (seqs >= first) & (seqs < first + self.capacity) & (seqs % self.capacity == slots)
        records, seqs = records[valid], seqs[valid]
        order = np.argsort(seqs, kind="stable")
        records, seqs = records[order], seqs[order]
        rows = sorted((s, r) for s, r in self.side_rows.items() if s >= first)
        last = int(seqs[-1]) if len(seqs) else first - 1
        if rows:
            last = max(last, rows[-1][0])
        skipped = (last + 1 - first) - len(records) - len(rows)
        records = records[records["tag"] != T_SKIP]
        return Taken(records, rows, max(first, last + 1), max(skipped, 0))

    def _gap_given_up(self, seq: int) -> bool:
        now = time.monotonic()
        if self._gap is None or self._gap[0] != seq:
            self._gap = (seq, now)
            return False
        return now - self._gap[1] > GAP_SECONDS

    # -- the side file ------------------------------------------------------------------------------
    def _side_grew(self) -> bool:
        fd = self.side_fd()
        return fd is not None and os.fstat(fd).st_size > self._side_at

    def side_fd(self) -> int | None:
        if self._side_fd is None:
            side = self.path.with_suffix(".jsonl")
            try:
                fd = os.open(side, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            except OSError:
                return None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                self.problems.append(f"{side.name} is not a regular file; its values are ignored")
                self._side_at = -1
                return None
            self._side_fd = fd
        return self._side_fd if self._side_at >= 0 else None

    def _read_side(self) -> None:
        """Read the side file's new whole lines: definitions and rows. A last line without its newline
        is left for later (or, after the writer died, ignored: it was never acknowledged)."""
        fd = self.side_fd()
        if fd is None:
            return
        while True:
            chunk = os.pread(fd, SIDE_READ_BYTES, self._side_at)
            if not chunk:
                return
            self._side_at += len(chunk)
            *lines, self._tail = (self._tail + chunk).split(b"\n")
            for line in lines:
                self._parse(line)
            if len(self._tail) > MAX_LINE_BYTES:
                self.problems.append(
                    f"{self.path.stem}.jsonl has a line over {MAX_LINE_BYTES} bytes; skipped"
                )
                self._tail = b""
                self._skip_to_newline(fd)

    def _skip_to_newline(self, fd: int) -> None:
        while True:
            chunk = os.pread(fd, SIDE_READ_BYTES, self._side_at)
            if not chunk:
                return
            cut = chunk.find(b"\n")
            if cut >= 0:
                self._side_at += cut + 1
                return
            self._side_at += len(chunk)

    def _parse(self, line: bytes) -> None:
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("not an object")
            if "d" in item:
                sid, run_id, name = item["d"], item["r"], item["n"]
                if not (type(sid) is int and isinstance(run_id, str) and isinstance(name, str)):
                    raise ValueError("bad series definition")
                self.series.setdefault(sid, (run_id, name))
            else:
                seq = item["q"]
                if type(seq) is not int or seq < 0:
                    raise ValueError("bad seq")
                self.side_rows[seq] = item
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            self.problems.append(f"{self.path.stem}.jsonl: skipped a line that is not a spool record ({exc})")


def rings_in(folder: Path) -> Iterator[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return
    yield from (p for p in entries if p.name.endswith(".ring"))
