"""Metric values in, metric dicts out, and the per-process writer behind run.log().

run.log() validates the value and packs it into this process's metric spool, a memory-mapped ring
(core/metric_spool.py): no lock, no syscall, and the value survives a SIGKILL a moment later. In a
submitted job (RUNYARD_SPOOL_DIR set) the job's supervisor drains the spool into the store
(core/metric_drain.py, started by compute/process_job.py), so the job never writes the store for its
metrics. An interactive run uses the same ring in a private temporary file, drained by a thread of its
own process. A spool that cannot be written (a full disk) falls back to writing the store from a
background thread (core/metric_background.py), and says so once.

Module imports stay light (stdlib, config, errors, store.records/validation): a job that only logs must
not load the database client, HTTP client or numpy.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import math
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.core.metric_spool import INT64_MAX, INT64_MIN, T_BOOL, T_INT, T_NONE, SpoolFull, SpoolRing
from runyard.errors import InvalidInputError, MetricValueError, RunyardError
from runyard.store.records import MetricRow
from runyard.store.validation import check_metric_name

if TYPE_CHECKING:
    from runyard.core.metric_background import DrainThread, StoreWriter
    from runyard.core.metric_drain import SpoolDrain
    from runyard.core.workspace import Workspace

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


# -- the per-process writer ---------------------------------------------------------------------
def new_writer_id() -> str:
    return f"{socket.gethostname()[:24]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def job_spool_dir() -> Path | None:
    """The spool folder of a submitted job (set by its supervisor); None in an interactive process."""
    spool = os.environ.get(config.ENV_SPOOL_DIR)
    return Path(spool) if spool else None


class MetricWriter:
    """One per workspace (database and credential) per process: its ring, its series ids, and whoever
    drains the ring (the job's supervisor, or for an interactive process a thread of its own)."""

    def __init__(self, workspace: Workspace, spool_dir: Path | None) -> None:
        self.workspace = workspace
        #: a supervisor drains this spool (a submitted job); otherwise this process does
        self.supervised = spool_dir is not None
        self._spool_dir = spool_dir
        self._lock = threading.Lock()
        self._begin()

    def _begin(self) -> None:
        """A fresh writer: its own id, seqs and (at the first value) ring. Also what a forked child does."""
        self.writer_id = new_writer_id()
        self._seqs = itertools.count()
        self.ring: SpoolRing | None = None
        self._ids: dict[str, dict[str, int]] = {}
        self._direct: StoreWriter | None = None
        self._drain: SpoolDrain | None = None
        self._flusher: DrainThread | None = None
        self._spool_failed = False

    # -- series -----------------------------------------------------------------------------------
    def series_ids(self, run_id: str) -> dict[str, int]:
        """name -> series id for `run_id`: the dict Run.log() reads on its fast path (cleared on fork)."""
        ids = self._ids.get(run_id)
        if ids is None:
            with self._lock:
                ids = self._ids.setdefault(run_id, {})
        return ids

    def series(self, run_id: str, name: str) -> int | None:
        """The ring's id of (run_id, name), defined now if new; None when values go to the store directly."""
        ids = self.series_ids(run_id)
        sid = ids.get(name)
        if sid is not None:
            return sid
        with self._lock:
            ring = self._open_ring()
            if ring is None:
                return None
            sid = ids.get(name)
            if sid is None:
                try:
                    sid = ring.define(run_id, name)
                except SpoolFull as exc:
                    self._say_spool_failed(str(exc))
                    return None
                ids[name] = sid
            return sid

    def _open_ring(self) -> SpoolRing | None:
        """The ring, created at the first value (a process that never logs leaves no file). Called under
        the lock. An interactive process drains it itself: the files are unlinked once open, so nothing
        is left behind whatever way the process ends."""
        if self.ring is not None or self._spool_failed:
            return self.ring
        capacity = config.metric_spool_records()  # a bad setting is said before any folder is made
        folder = self._spool_dir or Path(tempfile.mkdtemp(prefix="runyard-spool-"))
        try:
            ring = SpoolRing(folder, self.writer_id, capacity, self._seqs)
        except SpoolFull as exc:
            self._say_spool_failed(str(exc))
            return None
        if not self.supervised:
            from runyard.core.metric_background import DrainThread
            from runyard.core.metric_drain import SpoolDrain
            from runyard.core.metric_spool_reader import RingReader

            reader = RingReader.open(ring.path)
            assert reader is not None  # the header is written
            reader.side_fd()
            self._drain = SpoolDrain(self.workspace.store, None, root_run=None)
            self._drain.add(reader)
            shutil.rmtree(folder, ignore_errors=True)
            drain = self._drain
            self._flusher = DrainThread(
                lambda: drain, config.metric_flush_interval(), "runyard-metric-flusher", poll=None
            ).start()
            ring.on_request = self._flusher.wake
        self.ring = ring
        return ring

    def _say_spool_failed(self, problem: str) -> None:
        """Write the store directly from now on (where the spool cannot take a value), and say so once."""
        if not self._spool_failed:
            self._spool_failed = True
            print(
                f"runyard: {problem}; metrics are now sent to the store directly, and those not yet written "
                "are lost if this process is killed",
                file=sys.stderr,
                flush=True,
            )

    # -- values -----------------------------------------------------------------------------------
    def put_scalar(self, ring: SpoolRing, sid: int, fields: dict[str, Any], step: int | None) -> bool:
        """Pack a checked scalar (scalar_fields) into the ring; False if the fixed layout cannot hold it."""
        payload = fields["payload"]
        if fields["text"] is not None:
            return False
        if payload is not None:
            if not INT64_MIN <= payload <= INT64_MAX:
                return False
            ring.put_int(sid, int(payload), step, T_BOOL if isinstance(payload, bool) else T_INT)
        elif fields["value"] is None:
            ring.put_int(sid, 0, step, T_NONE)
        else:
            ring.put_float(sid, fields["value"], step)
        return True

    def add(self, run_id: str, name: str, kind: str, fields: dict[str, Any], step: int | None = None) -> None:
        """Any checked value (scalar_fields' columns): a scalar into the ring, anything else into the side
        file, or to the store directly when the spool cannot take it."""
        if kind == "scalar":
            sid = self.series(run_id, name)
            if sid is not None and self.ring is not None and self.put_scalar(self.ring, sid, fields, step):
                return
        ring = self.ring
        if ring is None and not self._spool_failed:
            with self._lock:
                ring = self._open_ring()
        if ring is not None and not self._spool_failed:
            row = {"r": run_id, "n": name, "k": kind, "t": time.time(), "s": step}
            row.update(v=fields["value"], x=fields["text"], p=fields["payload"])
            try:
                ring.put_row(row)
                return
            except SpoolFull as exc:
                self._say_spool_failed(str(exc))
        self._store_writer().add(run_id, name, kind, fields, step)

    def _store_writer(self) -> StoreWriter:
        with self._lock:
            if self._direct is None:
                from runyard.core.metric_background import StoreWriter

                self._direct = StoreWriter(self.workspace.store, self.writer_id, self._seqs.__next__)
            return self._direct

    # -- flushing ---------------------------------------------------------------------------------
    def flush(self, timeout: float = 300.0) -> None:
        """Block until every value logged so far in this process is in the store."""
        ring = self.ring
        if ring is not None:
            upto = ring.logged()
            if self._drain is None:
                if not ring.wait_consumed(upto, timeout):
                    raise RunyardError(
                        f"The metrics this process logged were not stored within {timeout:.0f}s: nothing drained "
                        f"its spool {ring.path} (the job's supervisor does, for a script submitted with "
                        f"runyard). Is {config.ENV_SPOOL_DIR} set outside a submitted run? Unset it to log "
                        "interactively."
                    )
            else:
                self._drain.drain_until(ring.consumed, upto, timeout)
        if self._direct is not None:
            self._direct.flush(timeout)

    def flush_at_exit(self, timeout: float) -> None:
        """A job leaves what is not stored yet to its supervisor's final drain (nothing is lost): it
        waits only while the supervisor makes progress. An interactive process stores everything."""
        ring = self.ring
        if ring is not None and self._drain is None:
            upto = ring.logged()
            if not ring.wait_consumed(upto, timeout, stall=10.0):
                left = upto - ring.consumed()
                print(
                    f"runyard: {left} metric values are left in the spool for the job's supervisor",
                    file=sys.stderr,
                )
            if self._direct is not None:
                self._direct.flush(timeout)
            return
        self.flush(timeout)

    def _after_fork(self) -> None:
        """In a forked child: drop the parent's ring (the child's copy of its mapping) and series ids (in
        place: Run handles hold these dicts, so their next log() defines the series in the child's ring)."""
        if self.ring is not None:
            self.ring.close()
        if self._drain is not None:
            for reader in self._drain.readers.values():
                reader.close()
        for ids in self._ids.values():
            ids.clear()
        self._lock = threading.Lock()
        self._begin()


_writers: dict[str, MetricWriter] = {}
_writers_lock = threading.Lock()


def writer_key(workspace: Workspace) -> str:
    """One writer per database and credential: two server workspaces opened with different tokens in one
    process must not send each other's metrics with the wrong token."""
    token = getattr(workspace, "token", None)
    digest = hashlib.sha256(token.encode()).hexdigest()[:12] if token else ""
    return f"{workspace.tracking_uri}#{digest}"


def writer_for(workspace: Workspace) -> MetricWriter:
    key = writer_key(workspace)
    writer = _writers.get(key)
    if writer is None:
        with _writers_lock:
            writer = _writers.get(key)
            if writer is None:
                writer = _writers[key] = MetricWriter(workspace, job_spool_dir())
    return writer


def flush_all(timeout: float = 300.0) -> None:
    for writer in list(_writers.values()):
        try:
            writer.flush_at_exit(timeout)
        except RunyardError as exc:
            print(f"runyard: {exc}", file=sys.stderr)


atexit.register(flush_all)


def _after_fork_in_child() -> None:
    """A forked child (multiprocessing's default on Linux) inherits the parent's writers without their
    threads: its values would reuse the parent's writer id, seqs and ring, and at exit it would wait for
    the parent's values. Each writer starts over in the child, with fresh database connection pools too:
    a connection must not be shared between two processes."""
    global _writers_lock
    _writers_lock = threading.Lock()
    for writer in _writers.values():
        writer._after_fork()
        engine = getattr(getattr(writer.workspace, "_store", None), "engine", None)
        if engine is not None and hasattr(engine, "dispose"):
            engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)
