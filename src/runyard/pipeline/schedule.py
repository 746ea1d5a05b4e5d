"""Schedule, ScheduleRecurrence and TimeZone: v1's way to submit a published pipeline on a timetable or when
files on a datastore change.

This module only records schedules (checked by store/publish_rules.py, the rules the store and the REST
server apply too). The workspace's scheduler service fires them (engine/schedules.py): creating or enabling
a schedule starts that service as `Pipeline.submit` does, and it stays up while any schedule is Active.
"""

from __future__ import annotations

import builtins
import dataclasses
import time
import uuid
from typing import TYPE_CHECKING, Any

from runyard.compat import v1_ignores, v1_keywords
from runyard.engine.schedules import fire_now, watch_listing
from runyard.engine.service import ensure_running
from runyard.engine.submission import SCHEDULE_ID_PROPERTY, published_for_endpoint
from runyard.errors import InvalidInputError, NotFoundError, RunyardError
from runyard.pipeline.published import PROVIDER, _parameters, _who, html_table, runs_with_property
from runyard.pipeline.recurrence import ScheduleRecurrence
from runyard.store import SqlStore
from runyard.store.publish_rules import check_schedule
from runyard.store.records import ACTIVE, DISABLED, ScheduleRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.pipeline.runs import PipelineRun

PROVISIONING = "a runyard schedule is ready when the call returns; there is nothing to wait for"


def _start_scheduler(ws: Workspace) -> None:
    """The workspace's own scheduler fires schedules and stays up while one is Active. Only one that holds the
    database does: for a workspace opened by URL the server's scheduler fires them, not one started here."""
    if isinstance(ws.store, SqlStore):
        ensure_running(ws)


def _datastore_name(datastore: Any) -> str:
    name = datastore if isinstance(datastore, str) else getattr(datastore, "name", None)
    if not isinstance(name, str) or not name:
        raise InvalidInputError(
            f"datastore must be a Datastore (Datastore.get(ws, 'name')) or its name, got {type(datastore).__name__}."
        )
    return name


def _check_kind(
    recurrence: Any, datastore: Any, data_path_parameter_name: Any, path_on_datastore: Any
) -> dict[str, Any] | None:
    """v1's either-or: a recurrence, or a datastore watch; the watch's settings only with a datastore."""
    if recurrence is not None:
        if datastore is not None:
            raise InvalidInputError(
                "Can not specify both a Recurrence and a Datastore: a schedule either fires on a timetable "
                "(recurrence=...) or when files change (datastore=...); create two schedules for both."
            )
        for what, value in (
            ("data_path_parameter_name", data_path_parameter_name),
            ("path_on_datastore", path_on_datastore),
        ):
            if value is not None:
                raise InvalidInputError(
                    f"{what} can only be specified for Datastore schedules (datastore=...); leave it out of a "
                    "schedule with a recurrence."
                )
        if not isinstance(recurrence, ScheduleRecurrence):
            raise InvalidInputError(
                f"recurrence must be a ScheduleRecurrence, e.g. ScheduleRecurrence(frequency='Day', interval=1), "
                f"got {type(recurrence).__name__}."
            )
        return recurrence.validate_json()
    if datastore is None:
        raise InvalidInputError(
            "A schedule needs recurrence=ScheduleRecurrence(frequency=..., interval=...) or datastore=... "
            "(fire when files under path_on_datastore change)."
        )
    return None


def _check_data_path_parameter(
    ws: Workspace, target: tuple[str | None, str | None], name: str | None
) -> None:
    """The parameter a watch fills with the changed path must be a DataPath parameter of what it submits."""
    if name is None:
        return
    pipeline_id, endpoint_id = target
    if pipeline_id is not None:
        record = ws.store.get_published_pipeline(pipeline_id)
    else:
        record = published_for_endpoint(ws.store, ws.store.get_pipeline_endpoint(endpoint_id))
    params = record.graph.get("parameters") or {}
    default = (params.get(name) or {}).get("default")
    if not (isinstance(default, dict) and "datapath" in default):
        raise InvalidInputError(
            f"data_path_parameter_name {name!r} must name a DataPath parameter of published pipeline "
            f"{record.name!r}, e.g. PipelineParameter({name!r}, default_value=DataPath(datastore, 'path')); "
            f"its DataPath parameters: "
            f"{', '.join(n for n, p in params.items() if isinstance(p.get('default'), dict) and 'datapath' in p['default']) or 'none'}."
        )


@v1_keywords
class Schedule:
    """Submits a published pipeline (or an endpoint's default version) on a recurrence or a datastore change."""

    @v1_ignores(_schedule_provider=PROVIDER)
    def __init__(
        self,
        workspace: Workspace,
        id: str,
        name: str,
        description: str | None,
        pipeline_id: str | None,
        status: str,
        recurrence: ScheduleRecurrence | None,
        datastore_name: str | None,
        polling_interval: float | None,
        data_path_parameter_name: str | None,
        continue_on_step_failure: bool | None,
        path_on_datastore: str | None,
        _schedule_provider: Any = None,
        pipeline_endpoint_id: str | None = None,
    ) -> None:
        self._workspace = workspace
        self._id, self._name, self._description, self._status = id, name, description, status
        self._pipeline_id, self._pipeline_endpoint_id = pipeline_id, pipeline_endpoint_id
        self._recurrence, self._datastore_name = recurrence, datastore_name
        self._polling_interval, self._path_on_datastore = polling_interval, path_on_datastore
        self._data_path_parameter_name = data_path_parameter_name
        self._continue_on_step_failure = continue_on_step_failure
        self._stored: ScheduleRecord | None = None

    @classmethod
    def _from_record(cls, ws: Workspace, record: ScheduleRecord) -> Schedule:
        schedule = cls(
            ws,
            record.id,
            record.name,
            record.description,
            record.pipeline_id,
            record.status,
            ScheduleRecurrence._from_json(record.recurrence) if record.recurrence else None,
            record.datastore_name,
            record.polling_interval,
            record.data_path_parameter_name,
            record.continue_on_step_failure,
            record.path_on_datastore,
            pipeline_endpoint_id=record.pipeline_endpoint_id,
        )
        schedule._stored = record
        return schedule

    id = property(lambda self: self._id, doc="The schedule's id.")
    name = property(lambda self: self._name, doc="The schedule's name.")
    description = property(lambda self: self._description, doc="The description given at create.")
    pipeline_id = property(lambda self: self._pipeline_id, doc="The published pipeline it submits.")
    pipeline_endpoint_id = property(
        lambda self: self._pipeline_endpoint_id, doc="Or the endpoint it submits."
    )
    status = property(lambda self: self._status, doc="'Active' or 'Disabled' (as last read).")
    recurrence = property(lambda self: self._recurrence, doc="None for a datastore watch.")
    datastore_name = property(lambda self: self._datastore_name, doc="The watched datastore.")
    polling_interval = property(lambda self: self._polling_interval, doc="Minutes between two looks.")
    data_path_parameter_name = property(lambda self: self._data_path_parameter_name, doc="Gets the new path.")
    continue_on_step_failure = property(
        lambda self: self._continue_on_step_failure, doc="None: the pipeline's."
    )
    path_on_datastore = property(lambda self: self._path_on_datastore, doc="The watched folder.")

    @staticmethod
    def _create(
        ws: Workspace, name: str, experiment_name: str, target: tuple[str | None, str | None], **given: Any
    ) -> Schedule:
        data_path, path = given["data_path_parameter_name"], given["path_on_datastore"]
        recurrence = _check_kind(given["recurrence"], given["datastore"], data_path, path)
        watch = recurrence is None
        _check_data_path_parameter(ws, target, data_path)
        who = _who()
        record = ScheduleRecord(
            id=str(uuid.uuid4()),
            name=name,
            status=ACTIVE,
            experiment_name=experiment_name,
            created_time=time.time(),
            description=given["description"],
            recurrence=recurrence,
            datastore_name=_datastore_name(given["datastore"]) if watch else None,
            path_on_datastore=path,
            polling_interval=given["polling_interval"] if watch else None,
            data_path_parameter_name=data_path,
            continue_on_step_failure=given["continue_on_step_failure"],
            pipeline_parameters=_parameters(given["pipeline_parameters"]),
            data={"createdBy": dict(who)} if who else {},
            pipeline_id=target[0],
            pipeline_endpoint_id=target[1],
        )
        record = check_schedule(record)
        if watch:
            record = _with_first_listing(ws, record)
        stored = ws.store.create_schedule(record)
        if not watch and not (recurrence or {}).get("start_time") and isinstance(ws.store, SqlStore):
            # v1 fires such a schedule at once: its run exists when create returns (the ticker's claim)
            fire_now(ws, stored, time.time())
            stored = ws.store.get_schedule(stored.id)
        _start_scheduler(ws)
        return Schedule._from_record(ws, stored)

    @staticmethod
    @v1_ignores(
        wait_for_provisioning=PROVISIONING,
        wait_timeout=PROVISIONING,
        _workflow_provider=PROVIDER,
        _service_endpoint=PROVIDER,
    )
    def create(
        workspace: Workspace,
        name: str,
        pipeline_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> Schedule:
        """A schedule that submits published pipeline `pipeline_id` to `experiment_name` on `recurrence`, or
        when files under `path_on_datastore` of `datastore` change (checked every `polling_interval` minutes)."""
        return Schedule._create(
            workspace, name, experiment_name, (pipeline_id, None), recurrence=recurrence,
            description=description, pipeline_parameters=pipeline_parameters, datastore=datastore,
            polling_interval=polling_interval, data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure, path_on_datastore=path_on_datastore,
        )  # fmt: skip

    @staticmethod
    @v1_ignores(
        wait_for_provisioning=PROVISIONING,
        wait_timeout=PROVISIONING,
        _workflow_provider=PROVIDER,
        _service_endpoint=PROVIDER,
    )
    def create_for_pipeline_endpoint(
        workspace: Workspace,
        name: str,
        pipeline_endpoint_id: str,
        experiment_name: str,
        recurrence: ScheduleRecurrence | None = None,
        description: str | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float = 5,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> Schedule:
        """As create(), submitting the default version of pipeline endpoint `pipeline_endpoint_id` each time."""
        return Schedule._create(
            workspace, name, experiment_name, (None, pipeline_endpoint_id),
            recurrence=recurrence, description=description, pipeline_parameters=pipeline_parameters,
            datastore=datastore, polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure, path_on_datastore=path_on_datastore,
        )  # fmt: skip

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get(
        workspace: Workspace, id: str, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> Schedule:
        """The schedule with this id (ScheduleNotFound if there is none)."""
        return Schedule._from_record(workspace, workspace.store.get_schedule(id))

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def list(
        workspace: Workspace,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> builtins.list[Schedule]:
        """The workspace's schedules, newest first; only those of a pipeline or endpoint when one is given."""
        records = workspace.store.list_schedules(
            active_only=active_only, pipeline_id=pipeline_id, pipeline_endpoint_id=pipeline_endpoint_id
        )
        return [Schedule._from_record(workspace, r) for r in records]

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get_all(
        workspace: Workspace,
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> builtins.list[Schedule]:
        """v1's older name for list()."""
        return Schedule.list(workspace, active_only, pipeline_id, pipeline_endpoint_id)

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get_schedules_for_pipeline_id(
        workspace: Workspace, pipeline_id: str, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> builtins.list[Schedule]:
        """Every schedule (active or not, as in v1) of published pipeline `pipeline_id`."""
        return Schedule.list(workspace, active_only=False, pipeline_id=pipeline_id)

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get_schedules_for_pipeline_endpoint_id(
        workspace: Workspace,
        pipeline_endpoint_id: str,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> builtins.list[Schedule]:
        """Every schedule (active or not, as in v1) of pipeline endpoint `pipeline_endpoint_id`."""
        return Schedule.list(workspace, active_only=False, pipeline_endpoint_id=pipeline_endpoint_id)

    def _set_status(self, status: str) -> None:
        record = self._workspace.store.set_schedule_status(self._id, status)
        self._status, self._stored = record.status, record
        if status == ACTIVE:
            _start_scheduler(self._workspace)

    @v1_ignores(wait_for_provisioning=PROVISIONING, wait_timeout=PROVISIONING)
    def enable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        """Make it Active: it fires again, next from now (missed firings are not made up)."""
        self._set_status(ACTIVE)

    @v1_ignores(wait_for_provisioning=PROVISIONING, wait_timeout=PROVISIONING)
    def disable(self, wait_for_provisioning: bool = False, wait_timeout: int = 3600) -> None:
        """Make it Disabled: it does not fire until enable()."""
        self._set_status(DISABLED)

    @v1_ignores(wait_for_provisioning=PROVISIONING, wait_timeout=PROVISIONING)
    def update(
        self,
        name: str | None = None,
        description: str | None = None,
        recurrence: ScheduleRecurrence | None = None,
        pipeline_parameters: dict[str, Any] | None = None,
        status: str | None = None,
        wait_for_provisioning: bool = False,
        wait_timeout: int = 3600,
        datastore: Any = None,
        polling_interval: float | None = None,
        data_path_parameter_name: str | None = None,
        continue_on_step_failure: bool | None = None,
        path_on_datastore: str | None = None,
    ) -> None:
        """Change the given settings (None: unchanged), checked as a whole, as v1 does. A new recurrence,
        watch or status takes effect from now (missed firings are not made up); a recurrence on a
        Datastore schedule is refused with v1's message."""
        if recurrence is not None and not isinstance(recurrence, ScheduleRecurrence):
            raise InvalidInputError(
                f"recurrence must be a ScheduleRecurrence, e.g. ScheduleRecurrence(frequency='Hour', interval=2), "
                f"got {type(recurrence).__name__}."
            )
        if status is not None and status not in (ACTIVE, DISABLED):
            raise InvalidInputError(f"Status must be either {ACTIVE!r} or {DISABLED!r}, got {status!r}.")
        if data_path_parameter_name is not None:
            target = (self._pipeline_id, self._pipeline_endpoint_id)
            _check_data_path_parameter(self._workspace, target, data_path_parameter_name)
        record = self._workspace.store.update_schedule(
            self._id,
            name=name,
            description=description,
            recurrence=None if recurrence is None else recurrence.validate_json(),
            pipeline_parameters=None if pipeline_parameters is None else _parameters(pipeline_parameters),
            status=status,
            polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter_name,
            continue_on_step_failure=continue_on_step_failure,
            path_on_datastore=path_on_datastore,
            datastore_name=None if datastore is None else _datastore_name(datastore),
        )
        fresh = Schedule._from_record(self._workspace, record)
        self.__dict__.update(fresh.__dict__)
        if record.status == ACTIVE:
            _start_scheduler(self._workspace)

    def get_pipeline_runs(self) -> builtins.list[PipelineRun]:
        """The runs this schedule submitted (property azureml.scheduleId), newest first."""
        return runs_with_property(self._workspace, SCHEDULE_ID_PROPERTY, self._id)

    def get_last_pipeline_run(self) -> PipelineRun | None:
        """The run of the latest firing, or None when it has not fired yet."""
        from runyard.pipeline.runs import PipelineRun

        record = self._workspace.store.get_schedule(self._id)
        self._stored, self._status = record, record.status
        if record.last_run_id is None:
            return None
        try:
            return PipelineRun.get(self._workspace, record.last_run_id)
        except NotFoundError:  # claimed, and the run is being created this moment: the one before
            runs = self.get_pipeline_runs()
            return runs[0] if runs else None

    def _repr_html_(self) -> str:
        cells = {
            "Name": self._name,
            "Id": self._id,
            "Status": self._status,
            "Pipeline Id": self._pipeline_id,
            "Pipeline endpoint Id": self._pipeline_endpoint_id,
            "Recurrence": repr(self._recurrence) if self._recurrence else None,
            "Datastore": self._datastore_name,
        }
        studio = self._workspace.studio_url + "/schedules"
        return html_table(self._workspace, cells, {"Link to runyard studio": studio})

    def __repr__(self) -> str:
        what = repr(self._recurrence) if self._recurrence else f"watching datastore {self._datastore_name!r}"
        target = self._pipeline_id or f"endpoint {self._pipeline_endpoint_id}"
        return f"Schedule(Name: {self._name}, Id: {self._id}, Status: {self._status}, Pipeline: {target}, {what})"


def _with_first_listing(ws: Workspace, record: ScheduleRecord) -> ScheduleRecord:
    """The watch's baseline taken now, so a file written before the scheduler first looks fires; a store
    that cannot be listed now leaves the baseline to the scheduler (it reports watchError)."""
    try:
        listing = watch_listing(ws, record)
    except RunyardError:
        return record
    return dataclasses.replace(record, data={**record.data, "watch": listing})
