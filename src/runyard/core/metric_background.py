"""The background threads that move metrics into the store.

- DrainThread runs a spool drain (core/metric_drain.py): in a job's supervisor (or the pipeline scheduler)
  for the job's spool, and in an interactive process for its own ring. It builds the drain in its own
  thread, so that starting a job never waits for the drain's imports (numpy).
- StoreWriter: a job whose spool cannot be written (its disk is full) still logs: its values go from a
  queue in memory straight to the store (they are lost if the process is killed before they are
  written, and it says so). `append_row_by_row` also serves the drain for a batch the store refuses.

No numpy here: a job imports this module when its spool fails.
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.errors import RunyardError, StoreError
from runyard.store.records import MetricRow

if TYPE_CHECKING:
    from runyard.core.metric_drain import SpoolDrain

#: Seconds between a supervisor's looks at its job's rings' headers (did a writer ask for a drain?).
POLL_SECONDS = 0.02

#: Most rows handed to the store in one call: a RestStore's request size (store/rest_store.py
#: METRIC_BATCH), so that each call is one acknowledged request and a failure re-queues only what was
#: not stored.
STORE_CALL_ROWS = 5000
BATCH_SIZE = 1000


def _stderr(line: str) -> None:
    print(f"runyard: {line}", file=sys.stderr, flush=True)


class StoreWriter:
    """Queues rows and writes them to `store` in batches from a daemon thread. `seqs` numbers them
    (the spool's counter when the spool failed part way, so that every seq of the writer stays unique)."""

    def __init__(self, store: Any, writer_id: str, next_seq: Callable[[], int] | None = None) -> None:
        self.store = store
        self.writer_id = writer_id
        self._next_seq = next_seq or _counter()
        self._pending: list[MetricRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._loop, name="runyard-metric-writer", daemon=True)
        self._thread.start()

    def add(self, run_id: str, name: str, kind: str, fields: dict[str, Any], step: int | None = None) -> None:
        with self._lock:
            row = MetricRow(
                run_id=run_id,
                name=name,
                kind=kind,
                timestamp=time.time(),
                step=step,
                writer=self.writer_id,
                seq=self._next_seq(),
                **fields,
            )
            self._pending.append(row)
            if len(self._pending) >= BATCH_SIZE:
                self._wake.set()

    def flush(self, timeout: float = 300.0) -> None:
        """Block until every row added so far is in the store."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        with self._lock:
            while self._pending or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RunyardError(
                        f"Metrics could not be written within {timeout:.0f}s"
                        + (f" (last error: {self._last_error})" if self._last_error else "")
                        + ". They are kept and retried in the background."
                    )
                self._wake.set()
                self._idle.wait(min(remaining, 0.1))

    def _loop(self) -> None:
        interval = config.metric_flush_interval()
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            with self._lock:
                batch, self._pending = self._pending, []
                self._in_flight = len(batch)
            if batch:
                unwritten = self._write(batch)
                if unwritten:
                    with self._lock:
                        self._pending[:0] = unwritten
                    time.sleep(min(interval, 1.0))
            with self._lock:
                self._in_flight = 0
                self._idle.notify_all()

    def _write(self, batch: list[MetricRow]) -> list[MetricRow]:
        """Write `batch` in store calls of at most STORE_CALL_ROWS rows; returns the rows to try again.

        Each call is acknowledged on its own (RestStore sends it as one request), so after a failure only
        the failed call's rows and those after it are returned: rows already acknowledged are not sent
        again. (Were they, the store would skip them by writer and seq; this just saves the resend.)"""
        for start in range(0, len(batch), STORE_CALL_ROWS):
            chunk = batch[start : start + STORE_CALL_ROWS]
            try:
                self.store.append_metrics(chunk)
            except StoreError as exc:  # the database or server is busy or away: keep the rows for later
                self._last_error = str(exc)
                _stderr(f"could not write {len(batch) - start} metrics yet ({exc}); retrying")
                return batch[start:]
            except Exception:
                # Not an outage: the store refuses something in this chunk. Retrying it would hold back
                # every later metric (and make flush() wait out its timeout), so write its rows one by
                # one and drop only those refused.
                unwritten = append_row_by_row(self.store, chunk)
                if unwritten:
                    return unwritten + batch[start + len(chunk) :]
        self._last_error = None
        return []


def _counter() -> Callable[[], int]:
    import itertools

    return itertools.count().__next__


def append_row_by_row(
    store: Any, rows: list[MetricRow], report: Callable[[str], None] = _stderr
) -> list[MetricRow]:
    """Append `rows` one at a time, dropping (and reporting, once) those the store refuses. Returns the rows
    left unwritten because the store became unreachable (StoreError) part way."""
    refused: list[tuple[MetricRow, Exception]] = []
    unwritten: list[MetricRow] = []
    for index, row in enumerate(rows):
        try:
            store.append_metrics([row])
        except StoreError:
            unwritten = rows[index:]
            break
        except Exception as exc:
            refused.append((row, exc))
    if refused:
        names = sorted({f"{row.name!r:.100} of run {row.run_id!r:.100}" for row, _ in refused})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        report(
            f"the store refused {len(refused)} metric value(s) ({shown}) and they were dropped: {refused[0][1]}"
        )
    return unwritten


class DrainThread:
    """Runs a SpoolDrain (made by `make_drain`, in the thread) in the background: every `interval` seconds,
    and at once when a writer asks (a flush, a full ring) or its ring is half full. A supervisor learns
    that by reading the rings' headers every `poll` seconds; an in-process flusher (`poll=None`) is woken
    by its writer instead (`wake`)."""

    def __init__(
        self,
        make_drain: Callable[[], SpoolDrain],
        interval: float,
        name: str = "runyard-metric-drain",
        poll: float | None = POLL_SECONDS,
    ) -> None:
        self._make_drain = make_drain
        #: the drain, once the thread has made it (None before: a final drain then makes its own)
        self.drain: SpoolDrain | None = None
        self.interval = interval
        self.poll = poll
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> DrainThread:
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            drain = self.drain = self._make_drain()
        except Exception:  # the values stay in the spool: whoever ends the run drains them
            _stderr("could not start the metric drain:\n" + traceback.format_exc())
            return
        due = time.monotonic() + self.interval
        while True:
            self._wake.wait(self.interval if self.poll is None else self.poll)
            woken = self._wake.is_set()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.poll is not None and not woken and time.monotonic() < due and not drain.urgent():
                    continue
                drain.drain_once()
                if self.last_error is not None:
                    drain.report("metrics reach the store again")
                self.last_error = None
            except StoreError as exc:
                if self.last_error is None:
                    drain.report(
                        f"could not write metrics yet ({exc}); they stay in the spool and are retried"
                    )
                self.last_error = str(exc)
                self._stop.wait(min(self.interval, 1.0))
            except Exception:  # a bug must not end the thread: the values stay in the spool for the next pass
                drain.report("the metric drain failed; retrying:\n" + traceback.format_exc())
                self._stop.wait(min(self.interval, 1.0))
            due = time.monotonic() + self.interval
