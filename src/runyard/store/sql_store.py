"""SqlStore: the Store protocol on SQLAlchemy Core, for SQLite files and PostgreSQL.

Split by concern: engine and transactions in sql_base.py, metrics in sql_metrics.py, models in
sql_models.py, named compute targets in sql_compute.py, datastores/datasets/lineage in sql_data.py,
published pipelines/endpoints/schedules in sql_publish.py, tokens in sql_tokens.py, the studio's
queries (SqlStore only) in sql_studio.py; experiments, runs, tags and properties here. Every write
checks its input first (store/validation.py), so both databases, the REST server and the Python API
accept exactly the same records.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import ConflictError, ExperimentNotFound, InvalidInputError, RunFinishedError, RunNotFound
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import schema as t
from runyard.store import validation as v
from runyard.store.records import (
    SUBMISSION_KEYS,
    ExperimentRecord,
    KeyFilter,
    KeyFilterLike,
    MetricRow,
    RunRecord,
)
from runyard.store.sql_base import _retry_on_conflict, engine_for, run_from_row
from runyard.store.sql_compute import SqlCompute
from runyard.store.sql_data import SqlData
from runyard.store.sql_env import SqlEnv
from runyard.store.sql_metrics import SqlMetrics
from runyard.store.sql_mlflow_models import SqlMlflowModels
from runyard.store.sql_mlflow_runs import SqlMlflowRuns, experiment_from_row
from runyard.store.sql_mlflow_search import SqlMlflowSearch
from runyard.store.sql_models import SqlModels
from runyard.store.sql_publish import SqlPublish
from runyard.store.sql_studio import SqlStudio
from runyard.store.sql_tokens import SqlTokens

__all__ = ["SqlStore", "engine_for"]


def _as_json(value: Any) -> Any:
    """What `value` reads back as after a trip through a JSON column (tuples become lists, …)."""
    return json.loads(json.dumps(value))


def check_submission_unchanged(run: RunRecord, patch: Mapping[str, Any]) -> None:
    """Once a run records what it executes and who submitted it (SUBMISSION_KEYS), those keys keep their
    values: a token that may edit records must not swap the code a scheduler runs (docs/security.md).
    Sending the same value again is fine."""
    if not any(key in run.data for key in SUBMISSION_KEYS):
        return
    changed = [
        key
        for key in SUBMISSION_KEYS
        if key in patch and (key not in run.data or _as_json(run.data[key]) != _as_json(patch[key]))
    ]
    if changed:
        raise ConflictError(
            f"Run {run.run_id!r} cannot change {', '.join(changed)}: what a run executes and who submitted it "
            "are fixed when it is submitted. Submit a new run (or clone this one) with the new values."
        )


class SqlStore(
    SqlMetrics,
    SqlModels,
    SqlCompute,
    SqlData,
    SqlEnv,
    SqlPublish,
    SqlTokens,
    SqlStudio,
    SqlMlflowRuns,
    SqlMlflowSearch,
    SqlMlflowModels,
):
    # -- experiments ----------------------------------------------------------------------------
    def get_or_create_experiment(self, name: str) -> ExperimentRecord:
        v.check_experiment_name(name)
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
        return experiment_from_row(row)

    def list_experiments(self) -> list[ExperimentRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.experiments).order_by(t.experiments.c.name)).all()
        return [experiment_from_row(r) for r in rows]

    # -- runs -----------------------------------------------------------------------------------
    _run_columns = (t.runs, t.experiments.c.name.label("experiment_name"))

    def _run_select(self) -> sa.Select[Any]:
        return sa.select(*self._run_columns).join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)

    _to_run = staticmethod(run_from_row)

    @_retry_on_conflict
    def _insert_runs(self, runs: Sequence[RunRecord]) -> list[int]:
        with self._write() as conn:
            ids = [r.run_id for r in runs]
            taken = conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id.in_(ids))).scalars().first()
            if taken is not None or len(set(ids)) != len(ids):
                raise ConflictError(
                    f"A run with id {taken or ids[0]!r} already exists; choose another run_id."
                )
            # A child of a missing parent would be an orphan no listing shows and no cancel reaches.
            parents = {r.parent_id for r in runs if r.parent_id is not None} - set(ids)
            found = set(
                conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id.in_(parents))).scalars()
            )
            missing = sorted(parents - found)
            if missing:
                child = next(r.run_id for r in runs if r.parent_id == missing[0])
                raise InvalidInputError(
                    f"Run {child!r} names parent run {missing[0]!r}, which does not exist in {self.where}. "
                    "Create the parent first (or in the same batch), or leave parent_id out."
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
        v.validate_runs(runs)
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
        property_key: str | None = None,
        property_value: str | None = None,
        tags: KeyFilterLike | None = None,
        properties: KeyFilterLike | None = None,
        target: str | None = None,
    ) -> list[RunRecord]:
        query = self._run_select().where(*run_conditions(run_type, status, tags, properties, target))
        if property_key is not None or property_value is not None:
            query = query.where(
                *_key_conditions(t.run_properties, _property_filter(property_key, property_value))
            )
        if display_name is not None:
            query = query.where(t.runs.c.display_name == display_name)
        if fingerprint is not None:
            query = query.where(t.runs.c.fingerprint == fingerprint)
        if exclude_parent is not None:
            query = query.where(sa.or_(t.runs.c.parent_id.is_(None), t.runs.c.parent_id != exclude_parent))
        if experiment_name is not None:
            query = query.where(t.experiments.c.name == experiment_name)
        if parent_id is not None:
            query = query.where(t.runs.c.parent_id == parent_id)
        if top_level_only:
            query = query.where(t.runs.c.parent_id.is_(None))
        query = query.order_by(t.runs.c.created_time.desc(), t.runs.c.number.desc())
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [self._to_run(r) for r in conn.execute(query)]

    def list_descendants(
        self,
        run_id: str,
        recursive: bool,
        *,
        run_type: str | None = None,
        status: Sequence[str] | None = None,
        tags: KeyFilterLike | None = None,
        properties: KeyFilterLike | None = None,
    ) -> list[RunRecord]:
        """One query per generation: each reads every child (the next generation's parents) and, as a
        column, whether it passes the filters."""
        conditions = run_conditions(run_type, status, tags, properties)
        passes = sa.and_(*conditions) if conditions else sa.true()
        found: list[RunRecord] = []
        frontier = [run_id]
        while frontier:
            with self._read() as conn:
                rows = conn.execute(
                    sa.select(*self._run_columns, passes.label("passes"))
                    .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
                    .where(t.runs.c.parent_id.in_(frontier))
                    .order_by(t.runs.c.created_time, t.runs.c.number)
                ).all()
            found.extend(self._to_run(r) for r in rows if r.passes)
            frontier = [r.run_id for r in rows] if recursive else []
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
        v.check_status(status)
        if data:
            v.validate_data_patch(data)
        if error is not None:
            v.check_json("The run's error", dict(error))
        if fingerprint is not None:
            v.check_text("Fingerprint", fingerprint, limit=64, controls=False)
        now = time.time()
        with self._write() as conn:
            row = conn.execute(self._run_select().where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFound(run_id, self.where)
            run = self._to_run(row)
            if run.status in TERMINAL_STATUSES:
                # An ended run never moves again. A late, unforced update from a dying process is dropped
                # quietly; forcing it elsewhere is a request to reopen the run, and is refused.
                if force and status != run.status:
                    raise RunFinishedError(run_id, run.status, f"set the status to {status} on")
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
                check_submission_unchanged(run, data)
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
        v.validate_data_patch(patch)
        with self._write() as conn:
            row = conn.execute(self._run_select().where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFound(run_id, self.where)
            run = self._to_run(row)
            check_submission_unchanged(run, patch)
            run.data.update(patch)
            values: dict[str, Any] = {"data": run.data}
            if "display_name" in patch:
                values["display_name"] = run.display_name = patch["display_name"]
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))
            return run

    # -- metrics (stored by SqlMetrics; checked here, where every write enters) -------------------
    def append_metrics(self, rows: Sequence[MetricRow]) -> None:
        v.validate_metric_rows(rows)
        super().append_metrics(rows)

    # -- tags and properties --------------------------------------------------------------------
    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        if not tags:
            return
        v.validate_tags(tags)
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
        v.validate_tags({k: str(val) for k, val in properties.items()}, "Property")
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


def run_conditions(
    run_type: str | None,
    status: Sequence[str] | None,
    tags: KeyFilterLike | None,
    properties: KeyFilterLike | None,
    target: str | None = None,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions of v1's run filters on t.runs (tags and properties as EXISTS subqueries)."""
    runs = t.runs
    conditions: list[sa.ColumnElement[bool]] = []
    if run_type is not None:
        conditions.append(runs.c.run_type == run_type)
    if status:
        conditions.append(runs.c.status.in_(list(status)))
    if target is not None:
        conditions.append(runs.c.target == target)
    for table, what, wanted in ((t.run_tags, "tags", tags), (t.run_properties, "properties", properties)):
        key_filter = KeyFilter.of(what, wanted)
        if key_filter is not None:
            conditions.extend(_key_conditions(table, key_filter))
    return conditions


def _key_conditions(table: sa.Table, wanted: KeyFilter) -> list[sa.ColumnElement[bool]]:
    """EXISTS per key on run_tags or run_properties for the run of the outer query: one query, however
    many runs. A None value matches a key that is absent or holds no value (what v1 filters did here)."""

    def rows_of(key: str) -> sa.Select[Any]:
        return sa.select(table.c.run_id).where(table.c.run_id == t.runs.c.run_id, table.c.key == key)

    conditions: list[sa.ColumnElement[bool]] = [rows_of(key).exists() for key in wanted.has]
    for key, value in wanted.equal.items():
        if value is None:
            conditions.append(~rows_of(key).where(table.c.value.is_not(None)).exists())
        else:
            conditions.append(rows_of(key).where(table.c.value == value).exists())
    return conditions


def _property_filter(key: str | None, value: str | None) -> KeyFilter:
    """list_runs's property_key/property_value as a KeyFilter."""
    if key is None:
        raise InvalidInputError("property_value needs property_key: name the property whose value to match.")
    return KeyFilter(has=(key,)) if value is None else KeyFilter(equal={key: value})
