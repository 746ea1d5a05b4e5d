"""SqlStore: the Store protocol on SQLAlchemy Core, for SQLite files and PostgreSQL.

SQLite notes: every connection runs in WAL mode with a long busy timeout, and write transactions
start with BEGIN IMMEDIATE so that concurrent writers queue on the lock instead of failing with
"database is locked" when a read turns into a write.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_random

from runyard.errors import ConflictError, ExperimentNotFound, ModelNotFound, RunNotFound, StoreError
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import schema as t
from runyard.store.migrations.runner import SCHEMA_HEAD, current_revision, ensure_schema
from runyard.store.records import ExperimentRecord, MetricRow, MetricSummary, ModelRecord, RunRecord

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


_retry_on_conflict = retry(
    retry=retry_if_exception_type(sa.exc.IntegrityError),
    stop=stop_after_attempt(20),
    wait=wait_random(0.001, 0.05),
    reraise=True,
)


class SqlStore:
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
        except sa.exc.IntegrityError:
            raise
        except sa.exc.OperationalError as exc:
            raise StoreError(f"The database at {self.uri} refused a write: {exc.orig}") from exc

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.OperationalError as exc:
            raise StoreError(f"The database at {self.uri} refused a read: {exc.orig}") from exc

    # -- experiments ----------------------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> ExperimentRecord:
        with self._write() as conn:
            stmt = self._insert(t.experiments).values(
                id=uuid.uuid4().hex, name=name, created_time=time.time()
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        return self.get_experiment(name)

    def get_experiment(self, name: str) -> ExperimentRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(t.experiments).where(t.experiments.c.name == name)).first()
        if row is None:
            raise ExperimentNotFound(name, self.where)
        return ExperimentRecord(id=row.id, name=row.name, created_time=row.created_time)

    def list_experiments(self) -> list[ExperimentRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.experiments).order_by(t.experiments.c.name)).all()
        return [ExperimentRecord(id=r.id, name=r.name, created_time=r.created_time) for r in rows]

    # -- runs -----------------------------------------------------------------------------------
    _run_columns = (t.runs, t.experiments.c.name.label("experiment_name"))

    def _run_select(self) -> sa.Select[Any]:
        return sa.select(*self._run_columns).join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)

    @staticmethod
    def _to_run(row: Any) -> RunRecord:
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

    @_retry_on_conflict
    def _insert_runs(self, runs: Sequence[RunRecord]) -> list[int]:
        with self._write() as conn:
            ids = [r.run_id for r in runs]
            taken = conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id.in_(ids))).scalars().first()
            if taken is not None or len(set(ids)) != len(ids):
                raise ConflictError(
                    f"A run with id {taken or ids[0]!r} already exists; choose another run_id."
                )
            numbers: list[int] = []
            next_number: dict[str, int] = {}
            for run in runs:
                if run.experiment_id not in next_number:
                    next_number[run.experiment_id] = conn.execute(
                        sa.select(sa.func.coalesce(sa.func.max(t.runs.c.number), 0) + 1).where(
                            t.runs.c.experiment_id == run.experiment_id
                        )
                    ).scalar_one()
                numbers.append(next_number[run.experiment_id])
                next_number[run.experiment_id] += 1
            conn.execute(
                t.runs.insert(),
                [
                    {
                        "run_id": run.run_id,
                        "experiment_id": run.experiment_id,
                        "parent_id": run.parent_id,
                        "number": number,
                        "status": run.status,
                        "run_type": run.run_type,
                        "display_name": run.display_name,
                        "target": run.target,
                        "created_time": run.created_time,
                        "start_time": run.start_time,
                        "end_time": run.end_time,
                        "data": run.data,
                        "fingerprint": run.fingerprint,
                    }
                    for run, number in zip(runs, numbers, strict=True)
                ],
            )
            return numbers

    def create_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        for run, number in zip(runs, self._insert_runs(runs), strict=True):
            run.number = number
        return list(runs)

    def create_run(self, run: RunRecord) -> RunRecord:
        return self.create_runs([run])[0]

    def get_run(self, run_id: str) -> RunRecord:
        with self._read() as conn:
            row = conn.execute(self._run_select().where(t.runs.c.run_id == run_id)).first()
        if row is None:
            raise RunNotFound(run_id, self.where)
        return self._to_run(row)

    def list_runs(
        self,
        experiment_name: str | None = None,
        status: Sequence[str] | None = None,
        parent_id: str | None = None,
        top_level_only: bool = False,
        limit: int | None = None,
        run_type: str | None = None,
        display_name: str | None = None,
        fingerprint: str | None = None,
        exclude_parent: str | None = None,
    ) -> list[RunRecord]:
        query = self._run_select()
        if run_type is not None:
            query = query.where(t.runs.c.run_type == run_type)
        if display_name is not None:
            query = query.where(t.runs.c.display_name == display_name)
        if fingerprint is not None:
            query = query.where(t.runs.c.fingerprint == fingerprint)
        if exclude_parent is not None:
            query = query.where(sa.or_(t.runs.c.parent_id.is_(None), t.runs.c.parent_id != exclude_parent))
        if experiment_name is not None:
            query = query.where(t.experiments.c.name == experiment_name)
        if status:
            query = query.where(t.runs.c.status.in_(list(status)))
        if parent_id is not None:
            query = query.where(t.runs.c.parent_id == parent_id)
        if top_level_only:
            query = query.where(t.runs.c.parent_id.is_(None))
        query = query.order_by(t.runs.c.created_time.desc(), t.runs.c.number.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [self._to_run(r) for r in conn.execute(query)]

    def list_descendants(self, run_id: str, recursive: bool) -> list[RunRecord]:
        found: list[RunRecord] = []
        frontier = [run_id]
        while frontier:
            with self._read() as conn:
                rows = conn.execute(
                    self._run_select()
                    .where(t.runs.c.parent_id.in_(frontier))
                    .order_by(t.runs.c.created_time, t.runs.c.number)
                ).all()
            children = [self._to_run(r) for r in rows]
            found.extend(children)
            frontier = [c.run_id for c in children] if recursive else []
        return found

    def set_run_status(
        self,
        run_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        force: bool = False,
        data: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> RunRecord:
        now = time.time()
        with self._write() as conn:
            row = conn.execute(self._run_select().where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFound(run_id, self.where)
            run = self._to_run(row)
            if run.status in TERMINAL_STATUSES and not force:
                return run
            if run.status == RunStatus.CANCEL_REQUESTED and status not in TERMINAL_STATUSES and not force:
                return run  # a cancel request only ends in a terminal status
            values: dict[str, Any] = {"status": status}
            if status == RunStatus.RUNNING and run.start_time is None:
                values["start_time"] = run.start_time = now
            if status in TERMINAL_STATUSES:
                values["end_time"] = run.end_time = now
                if run.start_time is None:
                    values["start_time"] = run.start_time = now
            if data:
                run.data.update(data)
                values["data"] = run.data
            if error is not None:
                run.data["error"] = dict(error)
                values["data"] = run.data
            if fingerprint is not None:
                values["fingerprint"] = run.fingerprint = fingerprint
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))
            run.status = status
            return run

    def update_run_data(self, run_id: str, patch: Mapping[str, Any]) -> RunRecord:
        with self._write() as conn:
            row = conn.execute(self._run_select().where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFound(run_id, self.where)
            run = self._to_run(row)
            run.data.update(patch)
            values: dict[str, Any] = {"data": run.data}
            if "display_name" in patch:
                values["display_name"] = run.display_name = patch["display_name"]
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))
            return run

    def _require_run(self, conn: sa.Connection, run_id: str) -> None:
        if conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id == run_id)).first() is None:
            raise RunNotFound(run_id, self.where)

    # -- tags and properties --------------------------------------------------------------------
    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        if not tags:
            return
        with self._write() as conn:
            self._require_run(conn, run_id)
            for key, value in tags.items():
                stmt = self._insert(t.run_tags).values(
                    run_id=run_id, key=str(key), value=None if value is None else str(value)
                )
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "key"], set_={"value": stmt.excluded.value}
                    )
                )

    def remove_tags(self, run_id: str, keys: Iterable[str]) -> None:
        with self._write() as conn:
            conn.execute(
                t.run_tags.delete().where(t.run_tags.c.run_id == run_id, t.run_tags.c.key.in_(list(keys)))
            )

    def get_tags(self, run_id: str) -> dict[str, Any]:
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.run_tags).where(t.run_tags.c.run_id == run_id).order_by(t.run_tags.c.key)
            )
            return {r.key: r.value for r in rows}

    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        if not properties:
            return
        with self._write() as conn:
            self._require_run(conn, run_id)
            existing = {
                r.key: r.value
                for r in conn.execute(sa.select(t.run_properties).where(t.run_properties.c.run_id == run_id))
            }
            for key, value in properties.items():
                key, value = str(key), str(value)
                if key in existing:
                    if existing[key] != value:
                        raise ConflictError(
                            f"Run {run_id!r} already has property {key!r}={existing[key]!r}; properties "
                            "cannot change once set. Use a tag (run.tag) for values that change."
                        )
                    continue
                conn.execute(t.run_properties.insert().values(run_id=run_id, key=key, value=value))

    def get_properties(self, run_id: str) -> dict[str, str]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.run_properties).where(t.run_properties.c.run_id == run_id))
            return {r.key: r.value for r in rows}

    # -- metrics --------------------------------------------------------------------------------
    def append_metrics(self, rows: Sequence[MetricRow]) -> None:
        if not rows:
            return
        summaries: dict[tuple[str, str], dict[str, Any]] = {}
        for r in rows:
            if r.kind != "scalar" or r.value is None:
                continue
            s = summaries.setdefault((r.run_id, r.name), {"count": 0, "min": r.value, "max": r.value})
            s["count"] += 1
            s["last"], s["step"] = r.value, r.step
            s["min"], s["max"] = min(s["min"], r.value), max(s["max"], r.value)
        with self._write() as conn:
            conn.execute(
                t.metrics.insert(),
                [
                    {
                        "run_id": r.run_id,
                        "name": r.name,
                        "kind": r.kind,
                        "step": r.step,
                        "value": r.value,
                        "text": r.text,
                        "payload": r.payload,
                        "timestamp": r.timestamp,
                        "writer": r.writer,
                        "seq": r.seq,
                    }
                    for r in rows
                ],
            )
            ms = t.metric_summaries
            # Upsert in one fixed order so that concurrent batches naming the same metrics in different
            # orders lock the summary rows in the same order (PostgreSQL would otherwise deadlock).
            for (run_id, name), s in sorted(summaries.items()):
                stmt = self._insert(ms).values(
                    run_id=run_id,
                    name=name,
                    count=s["count"],
                    last_value=s["last"],
                    min_value=s["min"],
                    max_value=s["max"],
                    last_step=s["step"],
                )
                ex = stmt.excluded
                conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["run_id", "name"],
                        set_={
                            "count": ms.c["count"] + ex["count"],
                            "last_value": ex.last_value,
                            "last_step": ex.last_step,
                            "min_value": sa.case(
                                (ex.min_value < ms.c.min_value, ex.min_value), else_=ms.c.min_value
                            ),
                            "max_value": sa.case(
                                (ex.max_value > ms.c.max_value, ex.max_value), else_=ms.c.max_value
                            ),
                        },
                    )
                )

    def get_metric_rows(self, run_ids: Sequence[str], name: str | None = None) -> list[MetricRow]:
        query = sa.select(t.metrics).where(t.metrics.c.run_id.in_(list(run_ids)))
        if name is not None:
            query = query.where(t.metrics.c.name == name)
        with self._read() as conn:
            return [
                MetricRow(
                    run_id=r.run_id,
                    name=r.name,
                    kind=r.kind,
                    timestamp=r.timestamp,
                    value=r.value,
                    text=r.text,
                    payload=r.payload,
                    step=r.step,
                    writer=r.writer,
                    seq=r.seq,
                )
                for r in conn.execute(query.order_by(t.metrics.c.id))
            ]

    def get_metric_summaries(self, run_ids: Sequence[str]) -> list[MetricSummary]:
        ms = t.metric_summaries
        with self._read() as conn:
            rows = conn.execute(
                sa.select(ms).where(ms.c.run_id.in_(list(run_ids))).order_by(ms.c.run_id, ms.c.name)
            )
            return [
                MetricSummary(
                    run_id=r.run_id,
                    name=r.name,
                    count=r._mapping["count"],
                    last=r.last_value,
                    min=r.min_value,
                    max=r.max_value,
                    last_step=r.last_step,
                )
                for r in rows
            ]

    def last_metric_seq(self, run_id: str, writer: str) -> int:
        m = t.metrics
        with self._read() as conn:
            value = conn.execute(
                sa.select(sa.func.max(m.c.seq)).where(m.c.run_id == run_id, m.c.writer == writer)
            ).scalar()
        return -1 if value is None else int(value)

    def count_metric_rows(self, run_id: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.metrics)
        if run_id is not None:
            query = query.where(t.metrics.c.run_id == run_id)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    # -- models ---------------------------------------------------------------------------------
    @staticmethod
    def _to_model(row: Any) -> ModelRecord:
        data = dict(row.data or {})
        return ModelRecord(
            name=row.name,
            version=row.version,
            path=row.path,
            created_time=row.created_time,
            run_id=row.run_id,
            tags=data.get("tags", {}),
            properties=data.get("properties", {}),
            description=data.get("description"),
            framework=data.get("framework"),
        )

    @_retry_on_conflict
    def register_model(self, model: ModelRecord) -> ModelRecord:
        with self._write() as conn:
            version = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(t.models.c.version), 0) + 1).where(
                    t.models.c.name == model.name
                )
            ).scalar_one()
            path = model.path.replace("{version}", str(version))
            conn.execute(
                t.models.insert().values(
                    name=model.name,
                    version=version,
                    path=path,
                    created_time=model.created_time,
                    run_id=model.run_id,
                    data={
                        "tags": model.tags,
                        "properties": model.properties,
                        "description": model.description,
                        "framework": model.framework,
                    },
                )
            )
        return ModelRecord(
            name=model.name,
            version=int(version),
            path=path,
            created_time=model.created_time,
            tags=model.tags,
            properties=model.properties,
            description=model.description,
            run_id=model.run_id,
            framework=model.framework,
        )

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        query = sa.select(t.models).where(t.models.c.name == name)
        query = (
            query.where(t.models.c.version == version)
            if version is not None
            else query.order_by(t.models.c.version.desc())
        )
        with self._read() as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            raise ModelNotFound(name, version, self.where)
        return self._to_model(row)

    def list_models(self, name: str | None = None, latest: bool = False) -> list[ModelRecord]:
        query = sa.select(t.models).order_by(t.models.c.name, t.models.c.version.desc())
        if name is not None:
            query = query.where(t.models.c.name == name)
        with self._read() as conn:
            records = [self._to_model(r) for r in conn.execute(query)]
        if latest:
            seen: set[str] = set()
            records = [m for m in records if not (m.name in seen or seen.add(m.name))]  # type: ignore[func-returns-value]
        return records
