"""Engine set-up and the transaction helpers every SQL store part shares.

SQLite notes: every connection runs in WAL mode, and write transactions start with BEGIN IMMEDIATE so
that concurrent writers queue on the lock instead of failing with "database is locked" when a read
turns into a write. Reads and writes draw from separate connection pools: in WAL mode a reader never
waits for the write lock, so writers blocked on a lock that another process holds must not be able to
take every pooled connection and make the readers queue behind them. A write waits for the lock for
the store's `lock_wait_seconds` (60 s; a server sets a few seconds) and then raises StoreBusy.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_random

from runyard.errors import ConflictError, InvalidInputError, RunNotFound, RunyardError, StoreBusy, StoreError
from runyard.store import schema as t
from runyard.store.migrations.runner import SCHEMA_HEAD, current_revision, ensure_schema
from runyard.store.records import RunRecord

_engines: dict[str, sa.Engine] = {}
_write_engines: dict[str, sa.Engine] = {}
_engines_lock = threading.Lock()

#: How long a SQLite write waits for the database's write lock unless its store says otherwise.
DEFAULT_LOCK_WAIT_SECONDS = 60.0
# A reader's pool is as large as the server's threadpool (40) can use, so a read never waits for a
# connection; the write pool is smaller, as SQLite lets one writer in at a time anyway.
_SQLITE_READ_POOL = {"pool_size": 5, "max_overflow": 60, "pool_timeout": 30}
_SQLITE_WRITE_POOL = {"pool_size": 5, "max_overflow": 10, "pool_timeout": DEFAULT_LOCK_WAIT_SECONDS}


def _make_engine(uri: str, pool: dict[str, Any] | None = None) -> sa.Engine:
    if uri.startswith("sqlite"):
        engine = sa.create_engine(uri, connect_args={"timeout": DEFAULT_LOCK_WAIT_SECONDS}, **(pool or {}))

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
            options = conn.get_execution_options()
            if options.get("runyard_write", False):
                wait_ms = int(1000 * options.get("runyard_lock_wait", DEFAULT_LOCK_WAIT_SECONDS))
                conn.exec_driver_sql(f"PRAGMA busy_timeout={wait_ms}")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    if uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri[len("postgresql://") :]
    return sa.create_engine(uri, pool_pre_ping=True)


def _is_sqlite_file(uri: str) -> bool:
    return sqlite_path(uri) is not None and "mode=memory" not in uri


def engine_for(uri: str) -> sa.Engine:
    """One engine (and connection pool) per database per process; for a SQLite file, the one for reads."""
    with _engines_lock:
        if uri not in _engines:
            _engines[uri] = _make_engine(uri, _SQLITE_READ_POOL if _is_sqlite_file(uri) else None)
        return _engines[uri]


def write_engine_for(uri: str) -> sa.Engine:
    """The engine writes use: for a SQLite file its own pool (see the module docstring), otherwise the
    one engine_for gives."""
    if not _is_sqlite_file(uri):
        return engine_for(uri)
    with _engines_lock:
        if uri not in _write_engines:
            _write_engines[uri] = _make_engine(uri, _SQLITE_WRITE_POOL)
        return _write_engines[uri]


def dispose_engine(uri: str) -> None:
    """Close this process's pools for `uri` (a later engine_for opens new ones)."""
    with _engines_lock:
        engines = [_engines.pop(uri, None), _write_engines.pop(uri, None)]
    for engine in engines:
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


#: The database file a workspace creates (core/workspace.py). runyard never leaves it empty: the first
#: connection switches it to WAL mode, which writes the file's header, before anything else happens.
WORKSPACE_DB_NAME = "runyard.db"
_NOT_A_DATABASE = ("file is not a database", "database disk image is malformed")
_LOCKED = ("database is locked", "database is busy", "database table is locked")


def sqlite_path(uri: str) -> Path | None:
    """The file behind a sqlite:/// URI (None for PostgreSQL and in-memory databases)."""
    if not uri.startswith("sqlite"):
        return None
    database = sa.engine.make_url(uri).database
    return Path(database) if database and database != ":memory:" else None


def shown_uri(uri: str) -> str:
    """`uri` for a message: these reach HTTP clients, so a PostgreSQL password never appears in them."""
    try:
        return sa.engine.make_url(uri).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return uri


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_database_error(uri: str, exc: sa.exc.DBAPIError, action: str) -> RunyardError:
    """The RunyardError a database error means to the user; one place, so no route answers 500 for bad
    input and no command prints a SQLAlchemy traceback.

    - a constraint (unique, foreign key): ConflictError
    - a value the database cannot hold (PostgreSQL's DataError: NUL, over-long text): InvalidInputError
    - a file that is not a SQLite database, or a damaged one: StoreError naming the file
    - a SQLite write lock held elsewhere for longer than we wait: StoreBusy (a server answers 503)
    - anything else (unreachable, disk full): StoreError
    """
    reason, where = _first_line(exc), shown_uri(uri)
    if isinstance(exc, sa.exc.IntegrityError):
        return ConflictError(
            f"The database at {where} refused a write that breaks a constraint ({reason}); "
            "check that the run or record it refers to exists."
        )
    if isinstance(exc, sa.exc.DataError):
        return InvalidInputError(
            f"The database at {where} cannot store a value of this request ({reason}). Names are limited to "
            "255 characters and text cannot contain NUL characters (\\x00); shorten or clean the value."
        )
    path = sqlite_path(uri)
    if path is not None and any(text in reason for text in _NOT_A_DATABASE):
        return StoreError(
            f"{path} is not a runyard database ({reason}). Check that --workspace or RUNYARD_WORKSPACE "
            "points at the right folder; if the file was damaged, restore it from a backup, or move it "
            "away to start an empty workspace there."
        )
    if path is not None and any(text in reason for text in _LOCKED):
        return database_busy(uri, action, reason)
    return StoreError(f"The database at {where} refused a {action}: {reason}")


def database_busy(uri: str, action: str, reason: str) -> StoreBusy:
    return StoreBusy(
        f"The database at {shown_uri(uri)} stayed locked by another writer ({reason}); the {action} was not "
        "done. Try again in a moment. If this persists, look for a process that keeps the database open in a "
        "write transaction (a sqlite3 shell, a backup or sync tool)."
    )


def refuse_empty_workspace_file(uri: str) -> None:
    """A 0-byte runyard.db is a database that lost its contents (a crash, a full disk, a bad copy), not a
    new one: opening it would silently start an empty workspace over the lost one. A creator racing
    with us holds the file at 0 bytes for a moment only, so look again before refusing."""
    path = sqlite_path(uri)
    if path is None or path.name != WORKSPACE_DB_NAME:
        return
    deadline = time.monotonic() + 1.0
    while True:
        try:
            if os.stat(path).st_size > 0:
                return
        except FileNotFoundError:
            return  # a new workspace: the first connection creates the file
        if time.monotonic() > deadline:
            raise StoreError(
                f"{path} is empty (0 bytes), so it holds no runyard database; it may have lost its contents "
                "in a crash or a full disk. Restore it from a backup, or delete it to start over with an "
                "empty workspace (every run, metric and model recorded there is gone)."
            )
        time.sleep(0.05)


class SqlBase:
    def __init__(self, uri: str, *, workspace_label: str | None = None) -> None:
        self.uri = uri
        self.where = workspace_label or uri
        refuse_empty_workspace_file(uri)
        self.engine = engine_for(uri)
        self.write_engine = write_engine_for(uri)
        #: How long a write waits for SQLite's write lock before StoreBusy; a server sets a few seconds.
        self.lock_wait_seconds = DEFAULT_LOCK_WAIT_SECONDS
        self._insert = sqlite.insert if self.engine.dialect.name == "sqlite" else postgresql.insert
        try:
            ensure_schema(self.engine, uri)
        except sa.exc.OperationalError as exc:
            try:
                current = current_revision(self.engine)
            except sa.exc.DBAPIError:
                current = None
            if current != SCHEMA_HEAD:  # lost a creation race: fine if it now exists
                raise describe_database_error(uri, exc, "connection") from exc
        except sa.exc.DBAPIError as exc:
            raise describe_database_error(uri, exc, "connection") from exc

    # -- transactions -------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        options = {"runyard_write": True, "runyard_lock_wait": self.lock_wait_seconds}
        try:
            with self.write_engine.connect().execution_options(**options) as conn, conn.begin():
                yield conn
        except sa.exc.DBAPIError as exc:
            raise describe_database_error(self.uri, exc, "write") from exc
        except sa.exc.TimeoutError as exc:  # every pooled connection is held by a writer that waits
            raise database_busy(self.uri, "write", "no free connection") from exc

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.DBAPIError as exc:
            raise describe_database_error(self.uri, exc, "read") from exc
        except sa.exc.TimeoutError as exc:
            raise database_busy(self.uri, "read", "no free connection") from exc

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
        # MLflow's soft delete (0012); a row selected without these columns reads as active
        lifecycle_stage=getattr(row, "lifecycle_stage", None) or "active",
        deleted_time=getattr(row, "deleted_time", None),
    )
