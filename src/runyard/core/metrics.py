"""Metric values in, metric dicts out, and the background writer that keeps run.log() off the hot path.

run.log() validates the value, appends one JSON line to this process's spool file when the run was
submitted (a plain os.write on an O_APPEND file: it survives os._exit and SIGKILL), and puts the
row on a queue. A daemon thread writes queued rows to the store in batches. When the process dies
before a batch reaches the store, the job supervisor replays the spool lines the store lacks
(`replay_spool`), so nothing that was logged is lost.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import math
import os
import socket
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from runyard import config
from runyard.errors import InvalidInputError, MetricValueError, RunyardError, StoreError
from runyard.store import MetricRow, Store
from runyard.store.rest_store import METRIC_BATCH
from runyard.store.validation import check_metric_name

BATCH_SIZE = 1000
#: Most rows the writer hands the store in one call: RestStore's request size, so that each call is one
#: acknowledged request and a failure re-queues only what was not stored.
STORE_CALL_ROWS = METRIC_BATCH
#: Steps are stored as 64-bit integers (BIGINT on both databases, like MLflow's steps).
MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1


# -- validation ---------------------------------------------------------------------------------
def check_name(name: Any) -> str:
    """The store's rule (store/validation.py), checked when run.log() is called rather than later in
    the background writer, so a mistake surfaces at the line that made it."""
    return check_metric_name(name)


def check_step(name: str, step: Any) -> None:
    if step is None:
        return
    if not isinstance(step, int) or isinstance(step, bool):
        raise InvalidInputError(f"run.log({name!r}): step must be an int, got {step!r}.")
    if not MIN_STEP <= step <= MAX_STEP:
        raise InvalidInputError(
            f"run.log({name!r}): step {step} is outside the range runyard stores ({MIN_STEP} to {MAX_STEP})."
        )


def _plain(value: Any) -> Any:
    """numpy scalars become Python scalars; everything else is returned as is."""
    item = getattr(value, "item", None)
    if item is not None and type(value).__module__ == "numpy" and getattr(value, "ndim", 0) == 0:
        return item()
    return value


def scalar_fields(name: str, value: Any, *, where: str = "run.log") -> dict[str, Any]:
    """Split a scalar into the store's columns: `value` (float) for numbers, `text`, and `payload`
    holding the original when float() would lose its type (ints, bools), so get_metrics returns what was logged."""
    value = _plain(value)
    if value is None:
        return {"value": None, "text": None, "payload": None}
    if isinstance(value, bool):
        return {"value": float(value), "text": None, "payload": value}
    if isinstance(value, int):
        if abs(value) > 2**63:
            raise MetricValueError(f"{where}({name!r}): {value} is too large to store as a metric.")
        return {"value": float(value), "text": None, "payload": value}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MetricValueError(
                f"{where}({name!r}): {value} is not a finite number. Log finite numbers only; "
                "check for a division by zero or a diverging loss before logging."
            )
        return {"value": value, "text": None, "payload": None}
    if isinstance(value, str):
        if "\x00" in value:
            raise MetricValueError(
                f"{where}({name!r}): the string contains a NUL character (\\x00), which databases cannot store; "
                "remove it (or log repr(value))."
            )
        return {"value": None, "text": value, "payload": None}
    if isinstance(value, (list, tuple, range, set)) or hasattr(value, "__next__"):
        raise MetricValueError(
            f"{where}({name!r}): got a {type(value).__name__}; use run.log_list for a list of values."
        )
    raise MetricValueError(
        f"{where}({name!r}): cannot log a value of type {type(value).__name__}; "
        "log a number, bool, string or None (or use log_table / log_image)."
    )


def numeric_fields(name: str, value: Any, *, where: str) -> dict[str, Any]:
    fields = scalar_fields(name, value, where=where)
    if fields["value"] is None:
        raise MetricValueError(f"{where}({name!r}): {value!r} is not a number; this metric needs numbers.")
    return fields


def row_value(name: str, value: Any) -> Any:
    """A table cell: checked like a scalar, stored as the plain Python value."""
    scalar_fields(name, value, where="run.log_row")
    return _plain(value)


# -- reading back -------------------------------------------------------------------------------
def _original(row: MetricRow) -> Any:
    if row.payload is not None and row.kind in ("scalar", "list"):
        return row.payload
    if row.text is not None:
        return row.text
    return row.value


def shape_metrics(rows: Iterable[MetricRow], *, lists: bool = False) -> dict[str, Any]:
    """Azure ML's get_metrics() shape: a scalar logged once is a bare value, N times a list; tables are
    column → list (a one-row table has bare values); images are aml:// references.
    With `lists=True` every series is a list and every table column a list (the typed alternative)."""
    grouped: dict[str, list[MetricRow]] = defaultdict(list)
    for row in rows:
        grouped[row.name].append(row)
    out: dict[str, Any] = {}
    for name, items in grouped.items():
        kind = items[-1].kind
        if kind == "row":
            columns: dict[str, list[Any]] = {}
            for item in items:
                for key, val in (item.payload or {}).items():
                    columns.setdefault(key, []).append(val)
            out[name] = columns if lists or len(items) > 1 else {k: v[0] for k, v in columns.items()}
        elif kind == "image":
            refs = [
                f"aml://artifactId/ExperimentRun/dcid.{i.run_id}/{(i.payload or {}).get('path')}"
                for i in items
            ]
            out[name] = refs if lists or len(refs) > 1 else refs[0]
        else:
            values = [_original(i) for i in items]
            out[name] = values if lists or kind == "list" or len(values) > 1 else values[0]
    return out


# -- the background writer ----------------------------------------------------------------------
class MetricWriter:
    """One per store per process. Batches rows into the store from a daemon thread."""

    def __init__(self, store: Store, spool_dir: Path | None) -> None:
        self.store = store
        self.writer_id = f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._pending: list[MetricRow] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(self._lock)
        self._in_flight = 0
        self._seq = 0
        self._spool_fd: int | None = None
        self._last_error: str | None = None
        self._spool_path: Path | None = None
        if spool_dir is not None:
            self._spool_path = spool_dir / f"{self.writer_id}.jsonl"
            try:
                spool_dir.mkdir(parents=True, exist_ok=True)
                self._spool_fd = os.open(self._spool_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                self._spool_failed(exc)
        self._thread = threading.Thread(target=self._loop, name="runyard-metric-writer", daemon=True)
        self._thread.start()

    def add(self, run_id: str, name: str, kind: str, fields: dict[str, Any], step: int | None = None) -> None:
        with self._lock:
            seq = self._seq
            self._seq += 1
            row = MetricRow(
                run_id=run_id,
                name=name,
                kind=kind,
                timestamp=time.time(),
                step=step,
                writer=self.writer_id,
                seq=seq,
                **fields,
            )
            if self._spool_fd is not None:
                line = json.dumps(
                    {
                        "r": run_id,
                        "n": name,
                        "k": kind,
                        "t": row.timestamp,
                        "v": row.value,
                        "x": row.text,
                        "p": row.payload,
                        "s": step,
                        "q": seq,
                    },
                    separators=(",", ":"),
                )
                try:
                    os.write(self._spool_fd, line.encode() + b"\n")
                except OSError as exc:  # a full disk must not crash the script: the store still gets rows
                    self._spool_failed(exc)
            self._pending.append(row)
            if len(self._pending) >= BATCH_SIZE:
                self._wake.set()

    def _spool_failed(self, exc: OSError) -> None:
        """Stop spooling, say so once, and carry on: rows still go to the store from memory."""
        if self._spool_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._spool_fd)
            self._spool_fd = None
        what = "disk full" if exc.errno == errno.ENOSPC else "cannot write"
        print(
            f"runyard: {what} while spooling metrics in {self._spool_path} ({exc.strerror or exc}); metrics "
            "are still sent to the store, but those not yet written are lost if this process is killed",
            file=sys.stderr,
            flush=True,
        )

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
                print(
                    f"runyard: could not write {len(batch) - start} metrics yet ({exc}); retrying",
                    file=sys.stderr,
                )
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


def append_row_by_row(store: Store, rows: list[MetricRow]) -> list[MetricRow]:
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
        names = sorted({f"{row.name!r} of run {row.run_id}" for row, _ in refused})
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        print(
            f"runyard: the store refused {len(refused)} metric value(s) ({shown}) and they were dropped: "
            f"{refused[0][1]}",
            file=sys.stderr,
        )
    return unwritten


_writers: dict[str, MetricWriter] = {}
_writers_lock = threading.Lock()


def writer_for(store: Store) -> MetricWriter:
    """One writer per database and credential: two server workspaces opened with different tokens in one
    process must not send each other's metrics with the wrong token."""
    key = getattr(store, "identity", store.uri)
    with _writers_lock:
        if key not in _writers:
            spool = os.environ.get(config.ENV_SPOOL_DIR)
            _writers[key] = MetricWriter(store, Path(spool) if spool else None)
        return _writers[key]


def flush_all(timeout: float = 300.0) -> None:
    for writer in list(_writers.values()):
        try:
            writer.flush(timeout)
        except RunyardError as exc:
            print(f"runyard: {exc}", file=sys.stderr)


atexit.register(flush_all)


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's default on Linux) inherits the parent's writers without their
    threads: its flush() would wait forever, its rows would reuse the parent's writer id and sequence
    numbers (so the spool replay would skip them), and at exit it would write the parent's pending rows a
    second time. The child starts over with writers of its own, and with fresh database connection pools:
    a connection must not be shared between two processes."""
    global _writers_lock
    inherited = list(_writers.values())
    _writers.clear()
    _writers_lock = threading.Lock()
    for writer in inherited:
        if writer._spool_fd is not None:
            os.close(writer._spool_fd)
        engine = getattr(writer.store, "engine", None)
        if engine is not None and hasattr(engine, "dispose"):
            engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def replay_spool(store: Store, spool_dir: Path) -> int:
    """Insert the spooled rows the store does not hold yet; returns how many. Used after a process ends."""
    added = 0
    for path in sorted(spool_dir.glob("*.jsonl")):
        writer = path.stem
        rows: list[MetricRow] = []
        last_seen: dict[str, int] = {}
        with path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break  # a line cut off by a kill: it was never acknowledged to the caller
                try:
                    rec = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                run_id = rec["r"]
                if run_id not in last_seen:
                    last_seen[run_id] = store.last_metric_seq(run_id, writer)
                if rec["q"] > last_seen[run_id]:
                    rows.append(
                        MetricRow(
                            run_id=run_id,
                            name=rec["n"],
                            kind=rec["k"],
                            timestamp=rec["t"],
                            value=rec["v"],
                            text=rec["x"],
                            payload=rec["p"],
                            step=rec["s"],
                            writer=writer,
                            seq=rec["q"],
                        )
                    )
        for start in range(0, len(rows), BATCH_SIZE):
            chunk = rows[start : start + BATCH_SIZE]
            try:
                store.append_metrics(chunk)
            except StoreError:
                raise
            except Exception:  # one refused row must not cost the others
                if append_row_by_row(store, chunk):
                    raise StoreError(f"The store at {store.uri} went away while replaying metrics.") from None
        added += len(rows)
    return added
