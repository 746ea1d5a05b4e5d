"""A workspace database runyard cannot use is named in one line, through the CLI and the Python API:
a garbage or truncated runyard.db, a 0-byte one (never silently re-created as an empty workspace), and
a database a newer runyard wrote (which `runyard db upgrade` cannot fix, and says so without a
traceback).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from conftest import invoke_cli
from runyard import Experiment, Workspace
from runyard.errors import StoreError, StoreMigrationRequired, StoreTooNew
from runyard.store import SqlStore, upgrade_store
from runyard.store.sql_base import dispose_engine


@pytest.fixture
def ws_path(tmp_path: Path) -> Path:
    """A workspace with one recorded run, its database closed (WAL folded back into runyard.db)."""
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    run = Experiment(ws, "exp").start_logging()
    for i in range(200):
        run.log("m", float(i))
    run.complete()
    dispose_engine(ws.tracking_uri)
    db = ws.path / "runyard.db"
    assert db.stat().st_size > 8192 and not (ws.path / "runyard.db-wal").exists()
    return ws.path


def one_line_error(*args: str) -> str:
    done = invoke_cli(*args)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    assert "Traceback" not in done.stderr and "sqlalchemy" not in done.stderr.lower()
    return lines[0]


def test_a_garbage_database_is_not_a_runyard_database(ws_path: Path) -> None:
    db = ws_path / "runyard.db"
    db.write_bytes(b"this is a text file that someone saved over the database\n" * 200)
    for command in (("runs", "list"), ("db", "upgrade")):
        line = one_line_error("-w", str(ws_path), *command)
        assert f"{db} is not a runyard database (file is not a database)" in line
        assert "restore it from a backup" in line
    with pytest.raises(StoreError, match="is not a runyard database"):
        Workspace.get(ws_path).store.list_runs()


def test_a_truncated_database_is_not_a_runyard_database(ws_path: Path) -> None:
    db = ws_path / "runyard.db"
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])  # a copy cut short: the header survives, pages are missing
    line = one_line_error("-w", str(ws_path), "runs", "list")
    assert f"{db} is not a runyard database (database disk image is malformed)" in line
    with pytest.raises(StoreError, match="is not a runyard database"):
        store = Workspace.get(ws_path).store
        store.list_runs()
        store.get_metric_rows([r.run_id for r in store.list_runs()])


def test_an_empty_database_file_is_refused_not_recreated(ws_path: Path) -> None:
    db = ws_path / "runyard.db"
    db.write_bytes(b"")  # what a crash or a full disk can leave
    for command in (("runs", "list"), ("db", "upgrade")):
        line = one_line_error("-w", str(ws_path), *command)
        assert f"{db} is empty (0 bytes)" in line and "delete it to start over" in line
    with pytest.raises(StoreError, match="is empty"):
        Workspace.get(ws_path).store  # noqa: B018 - opening is what fails
    assert db.stat().st_size == 0  # nothing was created over it
    # the way out the message gives
    db.unlink()
    assert Workspace.get(ws_path).store.list_runs() == []


def test_a_database_from_a_newer_runyard_names_its_schema(ws_path: Path) -> None:
    db = ws_path / "runyard.db"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999'")
    conn.close()
    line = one_line_error("-w", str(ws_path), "runs", "list")
    assert "schema version 9999, which this runyard does not know" in line
    assert "a newer runyard wrote it" in line and "pip install --upgrade runyard" in line
    upgrade_line = one_line_error("-w", str(ws_path), "db", "upgrade")  # no alembic traceback
    assert "schema version 9999" in upgrade_line and "never downgrades" in upgrade_line
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999",)]
    conn.close()
    with pytest.raises(StoreTooNew):
        Workspace.get(ws_path).store  # noqa: B018


def test_an_older_database_still_asks_for_db_upgrade(ws_path: Path) -> None:
    """Only unknown schema versions get the newer-runyard message; a known older one is upgraded."""
    with sqlite3.connect(ws_path / "runyard.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0006'")
    conn.close()
    line = one_line_error("-w", str(ws_path), "runs", "list")
    assert "schema version 0006" in line and "Upgrade it with `runyard db upgrade`" in line
    with pytest.raises(StoreMigrationRequired) as info:
        Workspace.get(ws_path).store  # noqa: B018
    assert not isinstance(info.value, StoreTooNew)


@pytest.mark.postgres
def test_postgres_database_from_a_newer_runyard(postgres_uri: str) -> None:
    with SqlStore(postgres_uri).engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    dispose_engine(postgres_uri)
    with pytest.raises(StoreTooNew, match="schema version 9999"):
        SqlStore(postgres_uri)
    with pytest.raises(StoreTooNew, match="never downgrades"):
        upgrade_store(postgres_uri)
