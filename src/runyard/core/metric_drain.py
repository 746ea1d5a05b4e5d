"""Moving metric spools into the store: the supervisor's half of run.log() (and an interactive run's flusher).

A SpoolDrain reads each process's ring and side file (core/metric_spool_reader.py) from `consumed` on,
hands the values to the store in seq order — fixed-size records as column-wise MetricBatches per run
(`Store.append_metric_batch`), side rows as MetricRows — and only then advances `consumed`. The store
keeps each (run, writer, seq) once, so a pass cut short by a crash is simply repeated: exactly once.

What the drain writes, it writes with the job's rights, not the supervisor's: `root_run` limits it to
the job's run and that run's descendants (each run id's parent chain is checked once); values for any
other run are dropped with a line in the control log. Against a server the drain's store carries the
job's own run token (compute/process_job.py), so the server applies the same rule.

A value the store refuses (its validation) is dropped and reported once; a StoreError (the database or
server away) leaves everything in the spool for the next pass.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from runyard.core.metric_background import append_row_by_row
from runyard.core.metric_spool import HAS_STEP, T_BOOL, T_FLOAT, T_INT, T_NONE
from runyard.core.metric_spool_reader import INT_RECORDS, RingReader, SpoolCorrupt, Taken, rings_in
from runyard.errors import RunyardError, StoreError
from runyard.store.records import MetricBatch, MetricRow
from runyard.store.validation import check_metric_name, check_run_id

#: Values per store call: large for a database (one transaction, so one commit, each; half the default ring,
#: so that the job fills one half while the other is stored), one request's worth for a server.
SQL_CHUNK = 131072
MAX_PARENT_DEPTH = 1000

Report = Callable[[str], None]


def print_report(line: str) -> None:
    print(f"runyard: {line}", file=sys.stderr, flush=True)


class SpoolDrain:
    """Drains every ring in `folder` (found again on each pass: forked processes add theirs), or the
    readers handed to `add`. One pass at a time (a lock): a flush and the background thread may both ask."""

    def __init__(
        self,
        store: Any,
        folder: Path | None,
        *,
        root_run: str | None,
        report: Report = print_report,
        chunk: int | None = None,
    ) -> None:
        self.store = store
        self.folder = folder
        self.root_run = root_run
        self.report = report
        self.chunk = chunk or _chunk_for(store)
        self.readers: dict[Path, RingReader] = {}
        #: rings that exist but were never allocated (the job's disk was full when it started logging)
        self.unallocated: list[Path] = []
        self._broken: set[Path] = set()
        self._finished: set[Path] = set()
        self._family: dict[str, bool] = {}
        self._said: set[str] = set()
        self._lock = threading.Lock()

    # -- finding rings ----------------------------------------------------------------------------
    def add(self, reader: RingReader) -> None:
        self.readers[reader.path] = reader

    def _discover(self, final: bool) -> None:
        if self.folder is None:
            return
        for path in rings_in(self.folder):
            if path in self.readers or path in self._broken or path in self._finished:
                continue
            try:
                reader = RingReader.open(path)
            except SpoolCorrupt as exc:
                self._broken.add(path)
                self._say(f"ignored the metric spool file {path}: {exc}")
                continue
            if reader is not None:
                self.readers[path] = reader
            elif final and path not in self.unallocated:
                try:
                    if path.stat().st_size == 0:
                        self.unallocated.append(path)
                except OSError:
                    pass

    def urgent(self) -> bool:
        with self._lock:
            self._discover(final=False)
            return any(self._safely(reader.urgent, False) for reader in list(self.readers.values()))

    def _safely(self, call: Callable[[], bool], default: bool) -> bool:
        try:
            return call()
        except OSError:
            return default

    # -- passes -----------------------------------------------------------------------------------
    def drain_once(self, final: bool = False) -> int:
        """Store what the rings hold now; returns how many values reached the store. `final`: the
        writers are gone, so gaps are skipped and a torn side-file line is ignored."""
        with self._lock:
            self._discover(final)
            total = 0
            for reader in list(self.readers.values()):
                try:
                    total += self._drain_reader(reader, final)
                    if not final and writer_gone(reader.writer):
                        # a forked worker that ended: take its last values (gaps and all) and let go of
                        # its files, so a job that forks many short-lived loggers does not run out of fds
                        total += self._drain_reader(reader, final=True)
                        self.readers.pop(reader.path, None)
                        self._finished.add(reader.path)
                        reader.close()
                except (SpoolCorrupt, OSError) as exc:
                    self.readers.pop(reader.path, None)
                    self._broken.add(reader.path)
                    self._say(f"stopped reading the metric spool {reader.path}: {exc}")
            return total

    def drain_until(self, consumed: Callable[[], int], upto: int, timeout: float) -> None:
        """Drain in the calling thread until `consumed()` reaches `upto` (an interactive run's flush)."""
        deadline = time.monotonic() + timeout
        last_error = None
        while consumed() < upto:
            try:
                if not self.drain_once():
                    time.sleep(0.0005)  # a thread is packing a value it took a seq for
            except StoreError as exc:
                last_error = str(exc)
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RunyardError(
                    f"Metrics could not be written within {timeout:.0f}s"
                    + (f" (last error: {last_error})" if last_error else "")
                    + ". They are kept and retried in the background."
                )

    def _drain_reader(self, reader: RingReader, final: bool) -> int:
        total = 0
        for _ in range(reader.capacity // self.chunk + 2):  # bounded: a busy writer does not keep us here
            first = reader.consumed()
            taken = reader.take(self.chunk, final)
            for problem in reader.problems:
                self._say(problem)
            reader.problems.clear()
            if taken.upto <= first:
                break
            total += self._store(reader, taken)
            reader.mark_consumed(taken.upto)
            if taken.skipped:
                self._say(
                    f"{taken.skipped} value(s) of {reader.writer} were never completely written (a thread or "
                    "process stopped while logging) and were skipped"
                )
            if final or taken.upto - first < self.chunk:
                break
        return total

    def _store(self, reader: RingReader, taken: Taken) -> int:
        """Store records and side rows in seq order: a run's values keep their logging order."""
        records, rows = taken.records, taken.rows
        seqs = records["seq"].astype(np.int64) - 1
        cuts = np.searchsorted(seqs, [seq for seq, _ in rows]).tolist() if rows else []
        stored, at, i = 0, 0, 0
        while i < len(rows):
            cut = cuts[i]
            if cut > at:
                stored += self._store_records(reader, records[at:cut])
                at = cut
            j = i
            while j < len(rows) and cuts[j] == cut:
                j += 1
            stored += self._store_rows(reader, rows[i:j])
            i = j
        for start in range(at, len(records), self.chunk):
            stored += self._store_records(reader, records[start : start + self.chunk])
        return stored

    def _store_records(self, reader: RingReader, records: np.ndarray[Any, Any]) -> int:
        if not len(records):
            return 0
        sids, inverse = np.unique(records["sid"], return_inverse=True)
        by_run: dict[str, list[int]] = {}
        for index, sid in enumerate(sids.tolist()):
            definition = reader.series.get(sid)
            if definition is None:
                self._say(f"{reader.writer}: values of an undefined series ({sid}) were dropped")
                continue
            try:  # checked here once per series, not by the store once per value
                check_run_id(definition[0])
                check_metric_name(definition[1])
            except RunyardError as exc:
                self._say(f"{reader.writer}: the values of a series were dropped: {exc}")
                continue
            if self._allowed(definition[0]):
                by_run.setdefault(definition[0], []).append(index)
        stored = 0
        for run_id, members in by_run.items():
            local = np.full(len(sids), -1, dtype=np.int64)
            local[members] = np.arange(len(members))
            ids = local[inverse]
            chosen = ids >= 0
            names = [reader.series[int(sids[m])][1] for m in members]
            batch = self._batch(reader, run_id, names, records[chosen], ids[chosen])
            if batch is not None:
                self._append(batch)
                stored += len(batch)
        return stored

    def _batch(
        self, reader: RingReader, run_id: str, names: list[str], recs: np.ndarray[Any, Any], ids: Any
    ) -> MetricBatch | None:
        base = recs["tag"] & 0x0F
        known = (base >= T_FLOAT) & (base <= T_NONE)
        finite = np.isfinite(recs["ts"]) & ((base != T_FLOAT) | np.isfinite(recs["value"]))
        if not (known & finite).all():
            # a job's own check refuses these; finding them means the ring was written by something else
            unknown, infinite = int((~known).sum()), int((known & ~finite).sum())
            if unknown:
                self._say(f"{reader.writer}: {unknown} record(s) of an unknown type were dropped")
            if infinite:
                self._say(f"{reader.writer}: {infinite} value(s) that are not finite were dropped")
            keep = known & finite
            recs, ids, base = recs[keep], ids[keep], base[keep]
        count = len(recs)
        if not count:
            return None
        payloads: list[Any] = [None] * count
        if (base == T_FLOAT).all():
            values: list[Any] = recs["value"].tolist()
        else:
            ints = np.ascontiguousarray(recs).view(INT_RECORDS)["value"]
            values = np.where(base == T_FLOAT, recs["value"], ints.astype(np.float64)).tolist()
            for where, kind in ((np.flatnonzero(base == T_INT), int), (np.flatnonzero(base == T_BOOL), bool)):
                for i, v in zip(where.tolist(), ints[where].tolist(), strict=True):
                    payloads[i] = kind(v)
                    values[i] = float(payloads[i])
            for i in np.flatnonzero(base == T_NONE).tolist():
                values[i] = None
        has_step = (recs["tag"] & HAS_STEP) != 0
        if has_step.all():
            steps: list[Any] = recs["step"].tolist()
        elif not has_step.any():
            steps = [None] * count
        else:
            stepped = recs["step"].astype(object)
            stepped[~has_step] = None
            steps = stepped.tolist()
        return MetricBatch(
            run_id=run_id,
            writer=reader.writer,
            names=names,
            name_ids=ids.tolist(),
            steps=steps,
            values=values,
            payloads=payloads,
            timestamps=recs["ts"].tolist(),
            seqs=(recs["seq"].astype(np.int64) - 1).tolist(),
        )

    def _store_rows(self, reader: RingReader, rows: list[tuple[int, dict[str, Any]]]) -> int:
        by_run: dict[str, list[MetricRow]] = {}
        for seq, item in rows:
            try:
                row = MetricRow(
                    run_id=item["r"],
                    name=item["n"],
                    kind=item["k"],
                    timestamp=item["t"],
                    value=item.get("v"),
                    text=item.get("x"),
                    payload=item.get("p"),
                    step=item.get("s"),
                    writer=reader.writer,
                    seq=seq,
                )
            except KeyError as exc:
                self._say(f"{reader.writer}: a spooled row without {exc} was dropped")
                continue
            if isinstance(row.run_id, str) and self._allowed(row.run_id):
                by_run.setdefault(row.run_id, []).append(row)
        for run_rows in by_run.values():
            self._append(run_rows)
        return sum(len(r) for r in by_run.values())

    def _append(self, values: MetricBatch | list[MetricRow]) -> None:
        """Write; when the store refuses something (not an outage), write row by row and drop only what
        it refuses. A StoreError leaves the values in the spool: the pass ends here."""
        try:
            if isinstance(values, MetricBatch):
                self.store.append_metric_batch(values)
            else:
                self.store.append_metrics(values)
        except StoreError:
            raise
        except RunyardError:
            rows = values.rows() if isinstance(values, MetricBatch) else values
            if append_row_by_row(self.store, rows, self._say):
                raise StoreError(
                    f"The store at {self.store.uri} went away while metrics were written."
                ) from None

    # -- rights -----------------------------------------------------------------------------------
    def _allowed(self, run_id: str) -> bool:
        if self.root_run is None:
            return True
        known = self._family.get(run_id)
        if known is None:
            known = self._family[run_id] = self._in_family(run_id)
            if not known:
                self.report(
                    f"dropped the metric values this job logged for run {run_id!r:.300}: a job may write to "
                    f"its own run ({self.root_run}) and that run's descendants only"
                )
        return known

    def _in_family(self, run_id: str) -> bool:
        current: str | None = run_id
        for _ in range(MAX_PARENT_DEPTH):
            if current is None:
                return False
            if current == self.root_run:
                return True
            try:
                current = self.store.get_run(current).parent_id
            except StoreError:
                raise
            except RunyardError:  # no such run, a token that may not read it, an id that is not one
                return False
        return False

    def _say(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            self.report(line)


def writer_gone(writer: str) -> bool:
    """Has the process that wrote this ring ended? Its id is `<host>-<pid>-<random>` (metrics.new_writer_id);
    only a writer of this host is judged, and a pid that exists counts as alive (even if reused)."""
    host, _, rest = writer.rpartition("-")[0].rpartition("-")
    if host != socket.gethostname()[:24] or not rest.isdigit():
        return False
    try:
        os.kill(int(rest), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _chunk_for(store: Any) -> int:
    from runyard.store.rest_store import METRIC_BATCH, RestStore

    return METRIC_BATCH if isinstance(store, RestStore) else SQL_CHUNK
