"""Published pipelines, pipeline endpoints and schedules: their rows.

The rules every record must follow are in store/publish_rules.py, checked here before each write. Records a
row points at (an endpoint's versions, a schedule's pipeline or endpoint) are looked up in the same write
transaction as the insert, and the foreign keys of the schedules table back that up.

An endpoint's versions live in its row as JSON; adding one reads and rewrites the row inside one write
transaction that holds it (SELECT … FOR UPDATE on PostgreSQL; on SQLite a write transaction holds the whole
database), so two concurrent adds never hand out the same version number.

`claim_schedule_firing` is how a scheduler takes a firing: one UPDATE that only matches while the schedule
is Active and its next_fire_time still is what the scheduler read. Two schedulers (two `runyard up`, a
restart racing a stop) reading the same due schedule both try; exactly one row changes, so the firing is
submitted once. It is SqlStore only: no client fires schedules over REST.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from runyard.errors import (
    ConflictError,
    InvalidInputError,
    PipelineEndpointNotFound,
    PublishedPipelineNotFound,
    ScheduleNotFound,
)
from runyard.store import publish_rules as rules
from runyard.store import schema as t
from runyard.store.records import ACTIVE, PipelineEndpointRecord, PublishedPipelineRecord, ScheduleRecord
from runyard.store.sql_base import SqlBase
from runyard.store.validation import check_json, check_run_id, check_text

_pp, _pe, _sc = t.published_pipelines, t.pipeline_endpoints, t.schedules
#: What Schedule.update may change (update_schedule's keywords); the last four belong to a datastore watch.
SCHEDULE_UPDATE_FIELDS = (
    "name",
    "description",
    "recurrence",
    "pipeline_parameters",
    "status",
    "continue_on_step_failure",
    "polling_interval",
    "data_path_parameter_name",
    "path_on_datastore",
    "datastore_name",
)
_WATCH_FIELDS = ("polling_interval", "path_on_datastore", "datastore_name")


def _columns(record: Any) -> dict[str, Any]:
    """A record's fields are its table's columns, one for one (schema.py)."""
    return dataclasses.asdict(record)


def _published_from_row(row: Any) -> PublishedPipelineRecord:
    return PublishedPipelineRecord(
        id=row.id,
        name=row.name,
        status=row.status,
        created_time=row.created_time,
        graph=dict(row.graph or {}),
        description=row.description,
        version=row.version,
        continue_on_step_failure=bool(row.continue_on_step_failure),
        data=dict(row.data or {}),
    )


def _endpoint_from_row(row: Any) -> PipelineEndpointRecord:
    return PipelineEndpointRecord(
        id=row.id,
        name=row.name,
        status=row.status,
        created_time=row.created_time,
        default_version=row.default_version,
        versions=dict(sorted((row.versions or {}).items(), key=lambda kv: int(kv[0]))),
        description=row.description,
        data=dict(row.data or {}),
    )


def _schedule_from_row(row: Any) -> ScheduleRecord:
    return ScheduleRecord(
        id=row.id,
        name=row.name,
        status=row.status,
        experiment_name=row.experiment_name,
        created_time=row.created_time,
        pipeline_id=row.pipeline_id,
        pipeline_endpoint_id=row.pipeline_endpoint_id,
        description=row.description,
        recurrence=dict(row.recurrence) if row.recurrence is not None else None,
        datastore_name=row.datastore_name,
        path_on_datastore=row.path_on_datastore,
        polling_interval=row.polling_interval,
        data_path_parameter_name=row.data_path_parameter_name,
        continue_on_step_failure=row.continue_on_step_failure,
        pipeline_parameters=dict(row.pipeline_parameters or {}),
        next_fire_time=row.next_fire_time,
        last_fire_time=row.last_fire_time,
        last_run_id=row.last_run_id,
        data=dict(row.data or {}),
    )


class SqlPublish(SqlBase):
    # -- published pipelines --------------------------------------------------------------------
    def _missing_published(self, pipeline_id: str, referrer: str = "") -> PublishedPipelineNotFound:
        return PublishedPipelineNotFound(
            f"{referrer}No published pipeline with id {pipeline_id!r} in workspace {self.where}. "
            "PublishedPipeline.list(ws) shows the published ones; publish one with pipeline.publish(name=...)."
        )

    def create_published_pipeline(self, record: PublishedPipelineRecord) -> PublishedPipelineRecord:
        rules.check_published_pipeline(record)
        with self._write() as conn:
            stmt = self._insert(_pp).values(**_columns(record))
            # RETURNING, not rowcount: PostgreSQL's driver reports a row for a skipped ON CONFLICT insert
            inserted = conn.execute(stmt.on_conflict_do_nothing().returning(_pp.c.id)).first()
        if inserted is None:
            raise ConflictError(
                f"A published pipeline with id {record.id!r} already exists in {self.where}; publish with a new id."
            )
        return record

    def get_published_pipeline(self, pipeline_id: str) -> PublishedPipelineRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(_pp).where(_pp.c.id == pipeline_id)).first()
        if row is None:
            raise self._missing_published(pipeline_id)
        return _published_from_row(row)

    def list_published_pipelines(self, active_only: bool = True) -> list[PublishedPipelineRecord]:
        query = sa.select(_pp).order_by(_pp.c.created_time.desc(), _pp.c.id.desc())
        if active_only:
            query = query.where(_pp.c.status == ACTIVE)
        with self._read() as conn:
            return [_published_from_row(r) for r in conn.execute(query)]

    def set_published_pipeline_status(self, pipeline_id: str, status: str) -> PublishedPipelineRecord:
        rules.check_status("Published pipeline", status)
        with self._write() as conn:
            changed = conn.execute(_pp.update().where(_pp.c.id == pipeline_id).values(status=status)).rowcount
        if not changed:
            raise self._missing_published(pipeline_id)
        return self.get_published_pipeline(pipeline_id)

    # -- pipeline endpoints ---------------------------------------------------------------------
    def _missing_endpoint(self, endpoint_id: str | None, name: str | None, referrer: str = "") -> Exception:
        what = f"id {endpoint_id!r}" if name is None else f"name {name!r}"
        if endpoint_id is not None and name is not None:
            what = f"id {endpoint_id!r} and name {name!r}"
        return PipelineEndpointNotFound(
            f"{referrer}No pipeline endpoint with {what} in workspace {self.where}. PipelineEndpoint.list(ws) "
            "shows the endpoints; create one with PipelineEndpoint.publish(ws, name, description, pipeline)."
        )

    def _require_published(self, conn: sa.Connection, pipeline_ids: list[str], referrer: str) -> None:
        found = set(conn.execute(sa.select(_pp.c.id).where(_pp.c.id.in_(pipeline_ids))).scalars())
        missing = [p for p in pipeline_ids if p not in found]
        if missing:
            raise self._missing_published(missing[0], referrer)

    def _endpoint_row(self, conn: sa.Connection, endpoint_id: str) -> Any:
        """The endpoint's row, held for the rest of the write transaction (FOR UPDATE; SQLite ignores it
        and needs it not: its write transactions hold the whole database)."""
        row = conn.execute(sa.select(_pe).where(_pe.c.id == endpoint_id).with_for_update()).first()
        if row is None:
            raise self._missing_endpoint(endpoint_id, None)
        return row

    def _name_taken(self, name: str) -> ConflictError:
        return ConflictError(
            f"A pipeline endpoint named {name!r} already exists in {self.where}; names are unique. Add a "
            f"version to it (PipelineEndpoint.get(ws, name={name!r}).add_default(pipeline)) or choose another name."
        )

    def create_pipeline_endpoint(self, record: PipelineEndpointRecord) -> PipelineEndpointRecord:
        rules.check_pipeline_endpoint(record)
        with self._write() as conn:
            self._require_published(
                conn, list(record.versions.values()), f"Pipeline endpoint {record.name!r} names a version: "
            )
            if conn.execute(sa.select(_pe.c.id).where(_pe.c.name == record.name)).first() is not None:
                raise self._name_taken(record.name)
            stmt = self._insert(_pe).values(**_columns(record))
            inserted = conn.execute(stmt.on_conflict_do_nothing().returning(_pe.c.id)).first()
        if inserted is None:  # the id is taken, or a concurrent create took the name first
            try:
                self.get_pipeline_endpoint(name=record.name)
            except PipelineEndpointNotFound:
                raise ConflictError(
                    f"A pipeline endpoint with id {record.id!r} already exists in {self.where}; use a new id."
                ) from None
            raise self._name_taken(record.name)
        return record

    def get_pipeline_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> PipelineEndpointRecord:
        if endpoint_id is None and name is None:
            raise InvalidInputError(
                "Give the pipeline endpoint's id or its name (PipelineEndpoint.get(ws, name=...))."
            )
        query = sa.select(_pe)
        if endpoint_id is not None:
            query = query.where(_pe.c.id == endpoint_id)
        if name is not None:
            query = query.where(_pe.c.name == name)
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise self._missing_endpoint(endpoint_id, name)
        return _endpoint_from_row(row)

    def list_pipeline_endpoints(self, active_only: bool = True) -> list[PipelineEndpointRecord]:
        query = sa.select(_pe).order_by(_pe.c.name)
        if active_only:
            query = query.where(_pe.c.status == ACTIVE)
        with self._read() as conn:
            return [_endpoint_from_row(r) for r in conn.execute(query)]

    def add_pipeline_endpoint_version(
        self, endpoint_id: str, pipeline_id: str, set_default: bool = False
    ) -> PipelineEndpointRecord:
        """The next version is one more than the highest; a pipeline the endpoint already has keeps its
        version (and becomes the default when `set_default`)."""
        rules.check_id("pipeline_id", pipeline_id)
        if not isinstance(set_default, bool):
            raise InvalidInputError(f"set_default must be True or False, got {set_default!r:.40}.")
        with self._write() as conn:
            row = self._endpoint_row(conn, endpoint_id)
            self._require_published(conn, [pipeline_id], f"Pipeline endpoint {row.name!r}: ")
            versions: dict[str, str] = dict(row.versions or {})
            version = next((k for k, v in versions.items() if v == pipeline_id), None)
            if version is None:
                version = str(max((int(k) for k in versions), default=-1) + 1)
                versions[version] = pipeline_id
            default = version if set_default else row.default_version
            conn.execute(
                _pe.update().where(_pe.c.id == endpoint_id).values(versions=versions, default_version=default)
            )
        return self.get_pipeline_endpoint(endpoint_id)

    def update_pipeline_endpoint(
        self,
        endpoint_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        status: str | None = None,
        default_version: str | None = None,
    ) -> PipelineEndpointRecord:
        """Change the given fields (None leaves a field as it is)."""
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = rules.check_name("Pipeline endpoint name", name)
        if description is not None:
            values["description"] = check_text("Pipeline endpoint description", description)
        if status is not None:
            values["status"] = rules.check_status("Pipeline endpoint", status)
        with self._write() as conn:
            row = self._endpoint_row(conn, endpoint_id)
            if default_version is not None:
                if default_version not in (row.versions or {}):
                    rules.check_version_key(default_version)
                    raise InvalidInputError(
                        f"Pipeline endpoint {row.name!r} has no version {default_version!r} (it has "
                        f"{', '.join(sorted(row.versions, key=int))}); add the pipeline first with "
                        "add(pipeline), or pick one of those."
                    )
                values["default_version"] = default_version
            if name is not None and name != row.name:
                taken = conn.execute(sa.select(_pe.c.id).where(_pe.c.name == name)).first()
                if taken is not None:
                    raise self._name_taken(name)
            if values:
                conn.execute(_pe.update().where(_pe.c.id == endpoint_id).values(**values))
        return self.get_pipeline_endpoint(endpoint_id)

    # -- schedules ------------------------------------------------------------------------------
    def _missing_schedule(self, schedule_id: str) -> ScheduleNotFound:
        return ScheduleNotFound(
            f"No schedule with id {schedule_id!r} in workspace {self.where}. Schedule.list(ws) shows the "
            "schedules; create one with Schedule.create(ws, name, pipeline_id, experiment_name, recurrence=...)."
        )

    def create_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        """Returns the record as stored (store/publish_rules.check_schedule normalises the recurrence)."""
        record = rules.check_schedule(record)
        referrer = f"Schedule {record.name!r} names a pipeline: "
        with self._write() as conn:
            if record.pipeline_id is not None:
                self._require_published(conn, [record.pipeline_id], referrer)
            if record.pipeline_endpoint_id is not None:
                found = conn.execute(
                    sa.select(_pe.c.id).where(_pe.c.id == record.pipeline_endpoint_id)
                ).first()
                if found is None:
                    raise self._missing_endpoint(record.pipeline_endpoint_id, None, referrer)
            stmt = self._insert(_sc).values(**_columns(record))
            inserted = conn.execute(stmt.on_conflict_do_nothing().returning(_sc.c.id)).first()
        if inserted is None:
            raise ConflictError(
                f"A schedule with id {record.id!r} already exists in {self.where}; use a new id."
            )
        return record

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(_sc).where(_sc.c.id == schedule_id)).first()
        if row is None:
            raise self._missing_schedule(schedule_id)
        return _schedule_from_row(row)

    def list_schedules(
        self,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
    ) -> list[ScheduleRecord]:
        query = sa.select(_sc).order_by(_sc.c.created_time.desc(), _sc.c.id.desc())
        if active_only:
            query = query.where(_sc.c.status == ACTIVE)
        if pipeline_id is not None:
            query = query.where(_sc.c.pipeline_id == pipeline_id)
        if pipeline_endpoint_id is not None:
            query = query.where(_sc.c.pipeline_endpoint_id == pipeline_endpoint_id)
        with self._read() as conn:
            return [_schedule_from_row(r) for r in conn.execute(query)]

    def set_schedule_status(self, schedule_id: str, status: str) -> ScheduleRecord:
        """Also clears next_fire_time: the scheduler then computes the next firing from now, so a schedule
        enabled after a long pause fires once at its next moment, not once for every moment it missed."""
        rules.check_status("Schedule", status)
        with self._write() as conn:
            changed = conn.execute(
                _sc.update().where(_sc.c.id == schedule_id).values(status=status, next_fire_time=None)
            ).rowcount
        if not changed:
            raise self._missing_schedule(schedule_id)
        return self.get_schedule(schedule_id)

    def update_schedule(self, schedule_id: str, **given: Any) -> ScheduleRecord:
        """Schedule.update's fields (None: unchanged; keywords as in the Store protocol), checked on the
        merged record. A changed recurrence, watch or status clears next_fire_time, so the scheduler
        computes the next firing from now (no burst); a changed watched place drops the old listing."""
        fields = {k: v for k, v in given.items() if v is not None}
        unknown = sorted(set(fields) - set(SCHEDULE_UPDATE_FIELDS))
        if unknown:
            raise InvalidInputError(f"update_schedule cannot change {', '.join(unknown)}.")
        current = self.get_schedule(schedule_id)
        if "recurrence" in fields and current.recurrence is None:
            raise InvalidInputError("Can not specify a recurrence for a Datastore schedule.")
        watch = [k for k in fields if k in _WATCH_FIELDS]
        if watch and current.recurrence is not None:
            raise InvalidInputError(
                f"Can not specify {', '.join(watch)} for a recurrence schedule: they belong to a Datastore "
                "schedule; create one with Schedule.create(..., datastore=...)."
            )
        data = dict(current.data)
        if {"datastore_name", "path_on_datastore"} & set(fields):
            data.pop("watch", None)  # the scheduler lists the new place first, as a new baseline
        merged = rules.check_schedule(dataclasses.replace(current, **fields, data=data))
        values = {k: getattr(merged, k) for k in fields}
        if {"recurrence", "status", *_WATCH_FIELDS} & set(fields):
            values["next_fire_time"] = None
        with self._write() as conn:
            changed = conn.execute(
                _sc.update().where(_sc.c.id == schedule_id).values(**values, data=merged.data)
            ).rowcount
        if not changed:
            raise self._missing_schedule(schedule_id)
        return self.get_schedule(schedule_id)

    def claim_schedule_firing(
        self,
        schedule_id: str,
        expected_next_fire_time: float | None,
        next_fire_time: float | None,
        *,
        fired_time: float | None = None,
        run_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> bool:
        """Move next_fire_time from `expected_next_fire_time` (None matches NULL) to `next_fire_time`, only
        while the schedule is Active. `fired_time` and `run_id` set last_fire_time/last_run_id; `data` is
        merged into the schedule's data (top-level keys replaced). True when this call took the firing."""
        for what, value in (
            ("expected_next_fire_time", expected_next_fire_time),
            ("next_fire_time", next_fire_time),
        ):
            rules.check_epoch(what, value, optional=True)
        rules.check_epoch("fired_time", fired_time, optional=True)
        if run_id is not None:
            check_run_id(run_id, "The firing's run id")
        if data is not None:
            check_json("The schedule's data", dict(data))
        values: dict[str, Any] = {"next_fire_time": next_fire_time}
        if fired_time is not None:
            values["last_fire_time"] = fired_time
        if run_id is not None:
            values["last_run_id"] = run_id
        with self._write() as conn:
            if data is not None:
                row = conn.execute(sa.select(_sc.c.data).where(_sc.c.id == schedule_id)).first()
                if row is None:
                    return False
                values["data"] = {**(row.data or {}), **data}
            changed = conn.execute(
                _sc.update()
                .where(
                    _sc.c.id == schedule_id,
                    _sc.c.status == ACTIVE,
                    _sc.c.next_fire_time.is_not_distinct_from(expected_next_fire_time),
                )
                .values(**values)
            ).rowcount
        return bool(changed)
