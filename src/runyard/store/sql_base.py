"""Engine set-up and the transaction helpers every SQL store part shares.

SQLite notes: every connection runs in WAL mode with a long busy timeout, and write transactions
start with BEGIN IMMEDIATE so that concurrent writers queue on the lock instead of failing with
"database is locked" when a read turns into a write.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random

from runyard.errors import ConflictError, RunNotFound, StoreError
from runyard.store import schema as t
from runyard.store.migrations.runner import SCHEMA_HEAD, current_revision, ensure_schema
from runyard.store.records import RunRecord

_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()


def _make_engine(uri: str) -> sa.Engine:
    if uri.startswith("sqlite"):
        engine = sa.create_engine(uri, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            immediate = conn.get_execution_options().get("runyard_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://") :]
    return sa.create_engine(uri, pool_pre_ping=True)


def engine_for(uri: str) -> sa.Engine:
    """One engine (and connection pool) per database per process."""
    with _engines_lock:
        if uri not in _engines:
            _engines[uri] = _make_engine(uri)
        return _engines[uri]


def dispose_engine(uri: str) -> None:
    """Close this process's pool for `uri` (a later engine_for opens a new one)."""
    with _engines_lock:
        engine = _engines.pop(uri, None)
    if engine is not None:
        engine.dispose()


def _is_constraint_race(exc: BaseException) -> bool:
    return isinstance(exc.__cause__, sa.exc.IntegrityError)


# Run numbers and model versions are max+1 inside the write transaction; on PostgreSQL two writers can
# still pick the same number, and the unique constraint turns that into a retry.
_retry_on_conflict = retry(
    retry=retry_if_exception(_is_constraint_race),
    stop=stop_after_attempt(20),
    wait=wait_random(0.001, 0.05),
    reraise=True,
)


class SqlBase:
    def __init__(self, uri: str, *, workspace_label: str | None = None) -> None:
        self.uri = uri
        self.where = workspace_label or uri
        self.engine = engine_for(uri)
        self._insert = sqlite.insert if self.engine.dialect.name == "sqlite" else postgresql.insert
        try:
            ensure_schema(self.engine, uri)
        except sa.exc.OperationalError as exc:
            if current_revision(self.engine) != SCHEMA_HEAD:  # lost a creation race: fine if it now exists
                raise StoreError(f"Cannot open the database at {uri}: {exc.orig}") from exc

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect().execution_options(runyard_write=True) as conn, conn.begin():
                yield conn
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"The database at {self.uri} refused a write that breaks a constraint ({exc.orig}); "
                "check that the run or record it refers to exists."
            ) from exc
        except sa.exc.OperationalError as exc:
            raise StoreError(f"The database at {self.uri} refused a write: {exc.orig}") from exc

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"The database at {self.uri} refused a read: {exc.orig}") from exc

    def _require_run(self, conn: sa.Connection, run_id: str) -> None:
        if conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id == run_id)).first() is None:
            raise RunNotFound(run_id, self.where)


def run_from_row(row: Any) -> RunRecord:
    """A RunRecord from a runs row joined with its experiment's name (as `experiment_name`)."""
    return RunRecord(
        run_id=row.run_id,
        experiment_id=row.experiment_id,
        experiment_name=row.experiment_name,
        status=row.status,
        run_type=row.run_type,
        created_time=row.created_time,
        parent_id=row.parent_id,
        display_name=row.display_name,
        target=row.target,
        start_time=row.start_time,
        end_time=row.end_time,
        number=row.number,
        data=dict(row.data or {}),
        fingerprint=row.fingerprint,
    )
