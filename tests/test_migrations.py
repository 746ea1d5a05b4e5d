"""The Alembic migrations agree with store/schema.py, and SqlStore refuses databases it must not touch."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from runyard.errors import StoreMigrationRequired
from runyard.store import schema
from runyard.store.migrations.runner import SCRIPT_LOCATION, current_revision, upgrade
from runyard.store.records import MetricRow
from runyard.store.sql_metrics import rollup_rows
from runyard.store.sql_store import SqlStore, engine_for
from store_suite import make_run


def _script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return ScriptDirectory.from_config(config)


def _sa_url(uri: str) -> str:
    return uri.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/m.db"
    return str(request.getfixturevalue("postgres_uri"))


@pytest.fixture
def raw_sql(db_uri: str) -> Iterator[Callable[[str], None]]:
    """Run SQL on the database outside runyard, the way another tool or an older runyard would."""
    engine = sa.create_engine(_sa_url(db_uri))

    def execute(sql: str) -> None:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)

    yield execute
    engine.dispose()


def _table_at(conn: sa.Connection, name: str) -> sa.Table:
    """A table as it is in this database now (reflected), not as today's schema.py has it: data written
    to an older revision must use that revision's columns."""
    return sa.Table(name, sa.MetaData(), autoload_with=conn)


def _table_names(uri: str) -> set[str]:
    engine = sa.create_engine(_sa_url(uri))
    try:
        with engine.connect() as conn:
            return set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_schema_head_is_alembic_head() -> None:
    script = _script_directory()
    heads = script.get_heads()
    assert len(heads) == 1, f"the migrations have several heads {heads}; merge them"
    assert heads[0] == schema.SCHEMA_HEAD
    # every revision chains back to the first one
    revisions = list(script.walk_revisions())
    assert revisions[-1].down_revision is None
    assert revisions[0].revision == schema.SCHEMA_HEAD


def assert_matches_schema(engine: sa.Engine) -> None:
    """The live database has exactly the tables, columns, keys and indexes of store/schema.py."""
    assert current_revision(engine) == schema.SCHEMA_HEAD
    with engine.connect() as conn:
        inspector = sa.inspect(conn)
        assert set(inspector.get_table_names()) == set(schema.metadata.tables) | {"alembic_version"}
        for name, table in schema.metadata.tables.items():
            columns = {c["name"]: c for c in inspector.get_columns(name)}
            assert list(columns) == [c.name for c in table.columns], name
            for column in table.columns:
                assert columns[column.name]["nullable"] == column.nullable, f"{name}.{column.name}"
            pk = inspector.get_pk_constraint(name)["constrained_columns"]
            assert pk == [c.name for c in table.primary_key.columns], name
            indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes(name)}
            for index in table.indexes:
                assert indexes.get(index.name) == [c.name for c in index.columns], f"{name}: {index.name}"
            fks = sorted(
                (fk["referred_table"], tuple(fk["constrained_columns"]))
                for fk in inspector.get_foreign_keys(name)
            )
            assert fks == sorted((fk.column.table.name, (fk.parent.name,)) for fk in table.foreign_keys), name

        # Alembic's own comparison: nothing to autogenerate between the migrated database and schema.py
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, schema.metadata)
        assert diff == [], diff


def test_migrated_tables_match_schema_metadata(db_uri: str) -> None:
    store = SqlStore(db_uri)
    try:
        assert_matches_schema(store.engine)
    finally:
        store.engine.dispose()


OLDER_REVISIONS = [
    r.revision for r in _script_directory().walk_revisions() if r.revision != schema.SCHEMA_HEAD
]


@pytest.mark.parametrize("revision", OLDER_REVISIONS)
def test_older_database_is_refused_then_upgraded(db_uri: str, revision: str) -> None:
    """A database left at an older revision: SqlStore refuses it, `runyard db upgrade` brings it to head."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    old_engine = sa.create_engine(_sa_url(db_uri))
    try:
        with old_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        with old_engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO experiments (id, name, created_time) VALUES ('e1', 'old-exp', 1.0)"
            )
    finally:
        old_engine.dispose()

    with pytest.raises(StoreMigrationRequired) as info:
        SqlStore(db_uri)
    message = str(info.value)
    assert f"schema version {revision}," in message
    assert "runyard db upgrade" in message

    upgrade(engine_for(db_uri))  # exactly what `runyard db upgrade` runs
    store = SqlStore(db_uri)
    try:
        assert_matches_schema(store.engine)
        assert store.get_experiment("old-exp").id == "e1"
        run = make_run(store, "old-exp")
        assert run.number == 1
    finally:
        store.engine.dispose()


def _rollups(engine: sa.Engine) -> list[tuple[object, ...]]:
    mr = schema.metric_rollups
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(mr).order_by(*mr.primary_key.columns))]


def test_upgrade_backfills_metric_rollups(db_uri: str, tmp_path: Path) -> None:
    """0005 fills metric_rollups from the metrics already logged, exactly as append_metrics builds them."""
    rng = random.Random(11)
    rows: list[MetricRow] = []
    # more scalar rows than the migration reads per page (10,000), so a page ends inside a series
    for run_id, name, n in [("r1", "loss", 9000), ("r1", "acc", 500), ("r2", "loss", 2600)]:
        for i in range(n):
            step = i * 2 if rng.random() < 0.5 else None
            rows.append(MetricRow(run_id, name, "scalar", 1.0, value=round(rng.uniform(-1, 1), 1), step=step))
            if i % 97 == 0:
                rows.append(MetricRow(run_id, name, "scalar", 1.0, text="not a number"))
                rows.append(MetricRow(run_id, name, "list", 1.0, value=-5.0))
    rng.shuffle(rows)  # series interleave in log order, as when several metrics are logged together

    reference = SqlStore(f"sqlite:///{tmp_path}/reference.db")
    old_engine = sa.create_engine(_sa_url(db_uri))
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    try:
        with old_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0004")
        with old_engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO experiments (id, name, created_time) VALUES ('e1', 'old', 1.0)")
        for number, run_id in enumerate(["r1", "r2"], 1):
            make_run(reference, "old", run_id)
            with old_engine.begin() as conn:
                conn.execute(
                    _table_at(conn, "runs")
                    .insert()
                    .values(
                        run_id=run_id,
                        experiment_id="e1",
                        number=number,
                        status="Completed",
                        run_type="azureml.scriptrun",
                        target="local",
                        created_time=1.0,
                        data={},
                    )
                )
        with old_engine.begin() as conn:
            conn.execute(
                _table_at(conn, "metrics").insert(),
                [
                    {
                        "run_id": r.run_id,
                        "name": r.name,
                        "kind": r.kind,
                        "value": r.value,
                        "text": r.text,
                        "step": r.step,
                        "timestamp": r.timestamp,
                    }
                    for r in rows
                ],
            )
            series: dict[tuple[str, str], list[float]] = {}
            for r in rows:
                if r.kind == "scalar" and r.value is not None:
                    series.setdefault((r.run_id, r.name), []).append(r.value)
            conn.execute(  # what the older append_metrics kept alongside
                _table_at(conn, "metric_summaries").insert(),
                [
                    {
                        "run_id": run_id,
                        "name": name,
                        "count": len(values),
                        "last_value": values[-1],
                        "min_value": min(values),
                        "max_value": max(values),
                    }
                    for (run_id, name), values in series.items()
                ],
            )
        for start in range(0, len(rows), 1234):  # uneven batches
            reference.append_metrics(rows[start : start + 1234])
    finally:
        old_engine.dispose()

    upgrade(engine_for(db_uri))
    store = SqlStore(db_uri)
    try:
        expected = _rollups(reference.engine)
        assert len(expected) == 141 + 8 + 41 + 3 + 1 + 1  # buckets of 64, then of 4096, per series
        assert _rollups(store.engine) == expected
        chart = store.get_metric_chart("r1", "loss", max_points=100)
        assert chart.downsampled
        assert chart.count == 9000
        # and appending after the upgrade carries on from where the backfill ended
        more = [MetricRow("r2", "loss", "scalar", 1.0, value=float(v)) for v in (-9, 9, 0)]
        store.append_metrics(more)
        reference.append_metrics(more)
        assert _rollups(store.engine) == _rollups(reference.engine)
    finally:
        store.engine.dispose()
        reference.engine.dispose()


def test_upgrade_is_a_no_op_at_head(db_uri: str) -> None:
    store = SqlStore(db_uri)
    try:
        store.get_or_create_experiment("kept")
        upgrade(store.engine)  # what `runyard db upgrade` runs on a current database
        assert current_revision(store.engine) == schema.SCHEMA_HEAD
        assert [e.name for e in SqlStore(db_uri).list_experiments()] == ["kept"]
    finally:
        store.engine.dispose()


@pytest.mark.parametrize("revision", ["0000", "ffffdeadbeef"])
def test_other_revision_requires_migration(
    db_uri: str, raw_sql: Callable[[str], None], revision: str
) -> None:
    raw_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    raw_sql(f"INSERT INTO alembic_version (version_num) VALUES ('{revision}')")
    with pytest.raises(StoreMigrationRequired) as info:
        SqlStore(db_uri)
    message = str(info.value)
    assert "runyard db upgrade" in message
    assert revision in message
    assert schema.SCHEMA_HEAD in message
    assert db_uri in message
    assert _table_names(db_uri) == {"alembic_version"}  # runyard created nothing


def test_non_empty_database_without_version_requires_migration(
    db_uri: str, raw_sql: Callable[[str], None]
) -> None:
    raw_sql("CREATE TABLE somebody_elses (id INTEGER PRIMARY KEY, note TEXT)")
    raw_sql("INSERT INTO somebody_elses (id, note) VALUES (1, 'keep me')")
    with pytest.raises(StoreMigrationRequired) as info:
        SqlStore(db_uri)
    message = str(info.value)
    assert "runyard db upgrade" in message
    assert "schema version none" in message
    assert _table_names(db_uri) == {"somebody_elses"}  # runyard created nothing


def test_existing_empty_sqlite_file_gets_schema(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()  # a zero-table database file, e.g. made by `touch`-like tools
    store = SqlStore(f"sqlite:///{path}")
    try:
        assert current_revision(store.engine) == schema.SCHEMA_HEAD
        assert store.list_experiments() == []
    finally:
        store.engine.dispose()
    assert _table_names(f"sqlite:///{path}") == set(schema.metadata.tables) | {"alembic_version"}


#: metric_summaries' columns before 0012 added MLflow's latest_*
_SUMMARY_0006 = ("run_id", "name", "count", "last_value", "min_value", "max_value", "last_step")


def _summaries(engine: sa.Engine, columns: tuple[str, ...] | None = None) -> list[tuple[object, ...]]:
    """Every summary row: all of today's columns, or just `columns` (those an older revision has)."""
    ms = schema.metric_summaries
    picked = [ms.c[c] for c in columns] if columns else list(ms.columns)
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*picked).order_by(ms.c.run_id, ms.c.name))]


def _metric_rows(engine: sa.Engine) -> list[tuple[object, ...]]:
    m = schema.metrics
    columns = [c for c in m.columns if c.name != "id"]
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.select(*columns).order_by(m.c.id))]


def test_upgrade_0007_removes_duplicate_metric_rows(db_uri: str, tmp_path: Path) -> None:
    """0007 keeps the first copy of each (run_id, writer, seq), rebuilds the summaries and rollups of the
    series that lost rows exactly as append_metrics builds them, and then refuses new duplicates."""
    rng = random.Random(7)
    logged: list[MetricRow] = []  # what the writers logged, in log order
    for run_id, writer, n in [("r1", "w1", 700), ("r1", "w2", 300), ("r2", "w1", 150)]:
        for seq in range(n):
            name = "loss" if seq % 3 else "acc"
            step = seq if rng.random() < 0.5 else None
            logged.append(
                MetricRow(
                    run_id, name, "scalar", 1.0, value=rng.uniform(-1, 1), step=step, writer=writer, seq=seq
                )
            )
    logged.append(MetricRow("r2", "label", "scalar", 1.0, text="hello", writer="w9", seq=0))
    logged.append(MetricRow("r2", "untouched", "scalar", 1.0, value=3.0, writer="w9", seq=1))
    logged.append(MetricRow("r2", "plain", "scalar", 1.0, value=1.0))  # no writer: never a duplicate
    # what older clients stored: stretches resent after a lost response, so copies follow their originals
    stored = list(logged)
    for start, end in ((0, 100), (200, 300), (650, 750), (1000, 1100), (len(logged) - 5, len(logged) - 2)):
        stored.extend(logged[start:end])
    stored.append(MetricRow("r2", "plain", "scalar", 1.0, value=1.0))  # a second un-numbered row stays
    assert len(stored) > len(logged) + 300

    old_engine = sa.create_engine(_sa_url(db_uri))
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    reference = SqlStore(f"sqlite:///{tmp_path}/reference.db")
    try:
        with old_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0006")
        with old_engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO experiments (id, name, created_time) VALUES ('e1', 'old', 1.0)")
            for number, run_id in enumerate(["r1", "r2"], 1):
                conn.execute(
                    _table_at(conn, "runs")
                    .insert()
                    .values(
                        run_id=run_id,
                        experiment_id="e1",
                        number=number,
                        status="Completed",
                        run_type="azureml.scriptrun",
                        target="local",
                        created_time=1.0,
                        data={},
                    )
                )
            conn.execute(
                _table_at(conn, "metrics").insert(),
                [
                    {
                        c: getattr(r, c)
                        for c in ("run_id", "name", "kind", "value", "text", "step", "timestamp")
                    }
                    | {"writer": r.writer, "seq": r.seq}
                    for r in stored
                ],
            )
            # the summaries and rollups the older append_metrics kept, duplicates counted
            series: dict[tuple[str, str], list[tuple[float, int | None]]] = {}
            for r in stored:
                if r.kind == "scalar" and r.value is not None:
                    series.setdefault((r.run_id, r.name), []).append((r.value, r.step))
            old_summaries, old_rollups = (
                _table_at(conn, "metric_summaries"),
                _table_at(conn, "metric_rollups"),
            )
            for (run_id, name), points in series.items():
                values = [v for v, _ in points]
                conn.execute(
                    old_summaries.insert().values(
                        run_id=run_id,
                        name=name,
                        count=len(values),
                        last_value=values[-1],
                        min_value=min(values),
                        max_value=max(values),
                        last_step=points[-1][1],
                    )
                )
                conn.execute(old_rollups.insert(), rollup_rows(run_id, name, 0, points))
        # the reference: the same values written once each through today's append_metrics
        make_run(reference, "old", "r1")
        make_run(reference, "old", "r2")
        once = [*logged, MetricRow("r2", "plain", "scalar", 1.0, value=1.0)]
        for start in range(0, len(once), 333):
            reference.append_metrics(once[start : start + 333])
        untouched_before = [s for s in _summaries(old_engine, _SUMMARY_0006) if s[1] == "untouched"]
    finally:
        old_engine.dispose()

    upgrade(engine_for(db_uri))
    store = SqlStore(db_uri)
    try:
        assert_matches_schema(store.engine)
        assert _metric_rows(store.engine) == _metric_rows(reference.engine)
        assert store.count_metric_rows() == len(logged) + 1
        assert _summaries(store.engine) == _summaries(reference.engine)
        assert [s for s in _summaries(store.engine, _SUMMARY_0006) if s[1] == "untouched"] == untouched_before
        assert _rollups(store.engine) == _rollups(reference.engine)
        # the unique index refuses a copy written behind runyard's back; un-numbered rows stay free
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
            conn.execute(
                schema.metrics.insert().values(
                    run_id="r1", name="acc", kind="scalar", timestamp=1.0, writer="w1", seq=0
                )
            )
        with store.engine.begin() as conn:
            conn.execute(schema.metrics.insert().values(run_id="r1", name="n", kind="scalar", timestamp=1.0))
            conn.execute(
                schema.metrics.insert().values(
                    run_id="r1", name="n", kind="scalar", timestamp=1.0, writer="w1"
                )
            )
            conn.execute(
                schema.metrics.insert().values(
                    run_id="r1", name="n", kind="scalar", timestamp=1.0, writer="w1"
                )
            )
        # appending after the upgrade skips a resent row and carries the rollups on from the rebuild
        more = [*logged[-5:], MetricRow("r1", "loss", "scalar", 1.0, value=-9.0, writer="w1", seq=700)]
        store.append_metrics(more)
        reference.append_metrics(more)
        assert _summaries(store.engine) == _summaries(reference.engine)
        assert _rollups(store.engine) == _rollups(reference.engine)
    finally:
        store.engine.dispose()
        reference.engine.dispose()


def test_upgrade_0012_backfills_mlflow_latest_values(db_uri: str, tmp_path: Path) -> None:
    """0012 gives every existing summary MLflow's latest value (highest step, then latest timestamp, then
    largest value; no step counts as 0; the first stored wins a tie), the same as append_metrics keeps."""
    rng = random.Random(12)
    rows: list[MetricRow] = []
    for run_id, name, n in [("r1", "loss", 400), ("r1", "acc", 60), ("r2", "loss", 90), ("r2", "nostep", 30)]:
        for _ in range(n):
            step = None if name == "nostep" else rng.choice([None, *range(8)])
            ts = float(rng.choice([1, 2, 3]))
            rows.append(MetricRow(run_id, name, "scalar", ts, value=float(rng.randint(-3, 3)), step=step))
        rows.append(MetricRow(run_id, name, "scalar", 9.0, text="not a value", step=99))
        rows.append(MetricRow(run_id, name, "list", 9.0, value=100.0, step=99))

    def expected(run_id: str, name: str) -> tuple[float | None, int, float]:
        values = [
            r for r in rows if (r.run_id, r.name, r.kind) == (run_id, name, "scalar") and r.value is not None
        ]
        best = max(values, key=lambda r: (r.step or 0, r.timestamp, r.value))  # max keeps the first of equals
        return best.value, best.step or 0, best.timestamp

    old_engine = sa.create_engine(_sa_url(db_uri))
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    reference = SqlStore(f"sqlite:///{tmp_path}/reference.db")
    try:
        with old_engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0011")
        with old_engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO experiments (id, name, created_time) VALUES ('e1', 'old', 1.0)")
            runs = _table_at(conn, "runs")
            for number, run_id in enumerate(["r1", "r2"], 1):
                conn.execute(
                    runs.insert().values(
                        run_id=run_id,
                        experiment_id="e1",
                        number=number,
                        status="Completed",
                        run_type="azureml.scriptrun",
                        target="local",
                        created_time=1.0,
                        data={},
                    )
                )
                make_run(reference, "old", run_id)
            columns = ("run_id", "name", "kind", "value", "text", "step", "timestamp")
            conn.execute(
                _table_at(conn, "metrics").insert(), [{c: getattr(r, c) for c in columns} for r in rows]
            )
            series: dict[tuple[str, str], list[tuple[float, int | None]]] = {}
            for r in rows:
                if r.kind == "scalar" and r.value is not None:
                    series.setdefault((r.run_id, r.name), []).append((r.value, r.step))
            conn.execute(  # the summaries 0011's append_metrics kept
                _table_at(conn, "metric_summaries").insert(),
                [
                    {"run_id": run_id, "name": name, "count": len(points), "last_value": points[-1][0]}
                    | {"min_value": min(v for v, _ in points), "max_value": max(v for v, _ in points)}
                    | {"last_step": points[-1][1]}
                    for (run_id, name), points in series.items()
                ],
            )
        for start in range(0, len(rows), 97):
            reference.append_metrics(rows[start : start + 97])
    finally:
        old_engine.dispose()

    upgrade(engine_for(db_uri))
    store = SqlStore(db_uri)
    try:
        assert_matches_schema(store.engine)
        latest = {
            (run_id, m.key): (m.value, m.step, m.timestamp)
            for run_id, ms in store.mlflow_latest_metrics(["r1", "r2"]).items()
            for m in ms
        }
        assert latest == {key: expected(*key) for key in latest} and len(latest) == 4
        assert _summaries(store.engine) == _summaries(reference.engine)
        # appending after the upgrade moves the latest value on only for a higher (step, timestamp, value)
        more = [
            MetricRow("r1", "loss", "scalar", 0.5, value=50.0, step=7),
            MetricRow("r2", "nostep", "scalar", 10.0, value=-50.0),
        ]
        store.append_metrics(more)
        reference.append_metrics(more)
        assert _summaries(store.engine) == _summaries(reference.engine)
        after = {m.key: m.value for m in store.mlflow_latest_metrics(["r2"])["r2"]}
        assert after["nostep"] == -50.0
    finally:
        store.engine.dispose()
        reference.engine.dispose()
