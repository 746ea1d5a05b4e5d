"""Metric rows into the database: how close does the store's write path get to SQLite's own executemany?

Side by side in one run, the same training-loop rows (three metrics interleaved, a step and a float each,
one writer numbering them) in batches of --batch rows, each case into its own fresh database:

  (a)  raw sqlite3 executemany of ready-made tuples into the store's own schema (same table, same two
       indexes, same pragmas, foreign keys on): the ceiling for SQLite with this schema;
  (a1) the same with only ix_metrics_run_name, (a0) with neither index: what each index costs;
  (b)  SqlStore.append_metric_batch on SQLite: validation, dedupe by seq, summaries, rollups, insert;
  (c)  SqlStore.append_metrics with the same values as MetricRows (run.log's rows; the server's /metrics);
  (r)  the row path, which every metric batch took before (unnumbered rows; ROW_PATH_ROWS of them);
  (d)  SqlStore.append_metric_batch on PostgreSQL 15 (a throwaway cluster, default settings, COPY).

The batches are built before each call is timed. Cases take turns batch by batch, so that a load spike on
this machine hits them alike; rows/s is by wall clock, and by this process's CPU time beside it (for (d) the
server's CPU is not in it).

    python bench/bench_metric_ingest.py [--rows 1000000] [--batch 50000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import platform
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pg_cluster import PG_BIN, postgres_cluster

from runyard.store.records import MetricBatch, MetricRow, RunRecord
from runyard.store.sql_metric_batch import sqlite_insert
from runyard.store.sql_store import SqlStore

RUN_ID = "run_" + "7f3a9c" * 5  # as long as a generated run id
WRITER = "train-host-4242-1a2b3c4d"
NAMES = ["loss", "acc", "lr"]
ROW_PATH_ROWS = 200_000
#: The statement append_metric_batch sends for such a batch (kind, is_nan and payload as literals)
INSERT = sqlite_insert(("kind", "is_nan", "payload"))


@dataclass
class Case:
    label: str
    rows: int
    prepare: Callable[[int, int], Any]  # (first seq, count) -> what `send` takes, built before the timer
    send: Callable[[Any], None]  # one batch
    count: Callable[[], int]  # rows stored, checked at the end
    wall: float = 0.0
    cpu: float = 0.0


def _batch(start: int, n: int) -> MetricBatch:
    seqs = range(start, start + n)
    return MetricBatch(
        run_id=RUN_ID,
        writer=WRITER,
        names=NAMES,
        name_ids=[i % 3 for i in seqs],
        steps=[i // 3 for i in seqs],
        values=[1.0 / (1 + i) for i in seqs],
        payloads=[None] * n,
        timestamps=[1_700_000_000.0 + i * 1e-3 for i in seqs],
        seqs=list(seqs),
    )


def _tuples(start: int, n: int) -> list[tuple[Any, ...]]:
    """The batch's rows as the tuples INSERT takes: what append_metric_batch hands sqlite3 for it."""
    b = _batch(start, n)
    columns = zip(b.name_ids, b.steps, b.values, b.timestamps, b.seqs, strict=True)
    return [(RUN_ID, NAMES[k], step, v, ts, WRITER, seq) for k, step, v, ts, seq in columns]


def _unnumbered(start: int, n: int) -> list[MetricRow]:
    return [dataclasses.replace(r, writer=None, seq=None) for r in _batch(start, n).rows()]


def _store(uri: str) -> SqlStore:
    store = SqlStore(uri)
    exp = store.get_or_create_experiment("bench")
    store.create_run(RunRecord(RUN_ID, exp.id, exp.name, "Running", "azureml.scriptrun", time.time()))
    return store


def _raw_case(label: str, path: Path, rows: int, drop: tuple[str, ...]) -> Case:
    """executemany into the store's own schema (made by SqlStore, same pragmas), less the indexes in `drop`."""
    _store(f"sqlite:///{path}").engine.dispose()
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    for index in drop:
        conn.execute(f"DROP INDEX {index}")

    def send(tuples: list[tuple[Any, ...]]) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(INSERT, tuples)
        conn.execute("COMMIT")

    return Case(
        label, rows, _tuples, send, lambda: conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
    )


def _store_case(label: str, uri: str, rows: int, rows_api: Callable[[int, int], Any] | None = None) -> Case:
    """A case through SqlStore, warmed up first on a run of its own (numpy's import, the statements' first
    compilation): a supervisor pays those once, not per batch."""
    store = _store(uri)
    warm_up = store.create_run(dataclasses.replace(store.get_run(RUN_ID), run_id=f"{RUN_ID}-warm-up")).run_id
    store.append_metric_batch(dataclasses.replace(_batch(0, 100), run_id=warm_up))
    warm_rows = dataclasses.replace(_batch(100, 100), run_id=warm_up).rows()
    store.append_metrics(warm_rows)
    store.append_metrics([dataclasses.replace(r, writer=None, seq=None) for r in warm_rows])
    if rows_api is None:
        return Case(label, rows, _batch, store.append_metric_batch, lambda: store.count_metric_rows(RUN_ID))
    return Case(label, rows, rows_api, store.append_metrics, lambda: store.count_metric_rows(RUN_ID))


def _cases(tmp: Path, rows: int, pg_uri: str | None) -> list[Case]:
    cases = [
        _raw_case("(a) raw sqlite3 executemany, same schema and indexes (ceiling)", tmp / "a.db", rows, ()),
        _raw_case("(a1) raw, only ix_metrics_run_name", tmp / "a1.db", rows, ("uq_metrics_run_writer_seq",)),
        _raw_case(
            "(a0) raw, no secondary index",
            tmp / "a0.db",
            rows,
            ("uq_metrics_run_writer_seq", "ix_metrics_run_name"),
        ),
        _store_case("(b) append_metric_batch, SQLite", f"sqlite:///{tmp / 'b.db'}", rows),
        _store_case(
            "(c) append_metrics, run.log's numbered rows, SQLite",
            f"sqlite:///{tmp / 'c.db'}",
            rows,
            lambda s, n: _batch(s, n).rows(),
        ),
        _store_case(
            "(r) the row path (append_metrics, unnumbered rows), SQLite",
            f"sqlite:///{tmp / 'r.db'}",
            min(rows, ROW_PATH_ROWS),
            _unnumbered,
        ),
    ]
    if pg_uri is not None:
        cases.append(_store_case("(d) append_metric_batch, PostgreSQL 15 (COPY)", pg_uri, rows))
    return cases


def measure(rows: int, batch: int, pg_uri: str | None) -> list[Case]:
    with tempfile.TemporaryDirectory() as folder:
        cases = _cases(Path(folder), rows, pg_uri)
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            for case in cases:
                if start >= case.rows:
                    continue
                prepared = case.prepare(start, n)
                wall, cpu = time.perf_counter(), time.process_time()
                case.send(prepared)
                case.wall += time.perf_counter() - wall
                case.cpu += time.process_time() - cpu
        for case in cases:
            if case.count() != case.rows:
                raise SystemExit(f"{case.label}: {case.count():,} rows stored of {case.rows:,}")
        return cases


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args(argv)
    skipped = None
    if args.no_postgres:
        skipped = "--no-postgres"
    elif not (PG_BIN / "initdb").exists():
        skipped = f"no PostgreSQL 15 binaries in {PG_BIN} (apt-get install postgresql)"
    load = os.getloadavg()
    with contextlib.ExitStack() as stack:
        pg_uri = None if skipped else stack.enter_context(postgres_cluster())
        cases = measure(args.rows, args.batch, pg_uri)
    ceiling = cases[0].rows / cases[0].wall
    out = [
        f"### Metric rows into the database ({args.rows:,} rows per case, batches of {args.batch:,}) — "
        f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}; load average {load[0]:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after",
        "",
        "| case | rows | seconds | rows/s (wall) | rows/s (this process's CPU) | vs. (a) |",
        "|---|---|---|---|---|---|",
    ]
    for case in cases:
        rate = case.rows / case.wall
        out.append(
            f"| {case.label} | {case.rows:,} | {case.wall:.2f} | {rate:,.0f} | {case.rows / case.cpu:,.0f} "
            f"| {rate / ceiling:.2f}x |"
        )
    if skipped:
        out.append(f"| (d) append_metric_batch, PostgreSQL | skipped: {skipped} | | | | |")
    batch = next(c for c in cases if c.label.startswith("(b)"))
    rate = batch.rows / batch.wall
    verdict = "MET" if rate >= 500_000 else "NOT MET"
    out += [
        "",
        f"Target (b) >= 500,000 rows/s: **{verdict}** ({rate:,.0f} rows/s; the ceiling (a) is {ceiling:,.0f}).",
    ]
    return out


if __name__ == "__main__":
    print("\n".join(main()))
