"""REST routes for published pipelines, pipeline endpoints and schedules (the Store protocol's methods).

Reading needs 'read'. Publishing, creating endpoints and schedules, and changing their status need 'write',
and never a run token: a job must not be able to publish code or schedule it (a schedule's firings run as
the principal that created it, so that would let a job outlive its run). On create the server records who
asked in `data["createdBy"]` (its own stamp, whatever the client sent): the scheduler submits firings as
that principal and trusts nothing else.

A change that widens what runs, or whom it runs as, needs the record's creator or an admin token
(`_creator_or_admin`): adding a version to an endpoint, changing its name, default version or description,
and setting an endpoint, a published pipeline or a schedule Active. Otherwise any write token could point
the owner's schedule at its own graph (which then fires as the owner), take over an endpoint's name, or
re-enable what the owner switched off. Records made with direct database access have no `createdBy`: over
REST only an admin may change them. Setting Disabled stays open to any write token, as cancelling a run is.

A schedule's firing fields (next_fire_time, last_fire_time, last_run_id and the scheduler's own data keys)
belong to the ticker: a create that sets them is refused or has them dropped, so a forged `last_run_id`
cannot look like a claimed firing. A published graph is checked as the scheduler would check it
(engine.submission.check_graph) before it is stored, so a junk graph is a 400, not a broken studio page.

Bodies are read strictly (pydantic strict mode): lax mode would turn `"5"` into a polling interval or `1`
into True before store/publish_rules.py sees it, so REST would store what the Python API refuses. The
rules themselves are the store's (SqlStore checks every write), so messages are the same on every path.

claim_schedule_firing has no route: only the workspace's own scheduler fires schedules. On a server
started as compute, a schedule created or set Active here starts that scheduler (as a pipeline submitted
over REST does); elsewhere it fires once a scheduler runs for the workspace (`runyard up`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from runyard.core.workspace import Workspace
from runyard.engine.service import ensure_running
from runyard.engine.submission import check_graph
from runyard.errors import InvalidInputError
from runyard.server.auth import Principal
from runyard.server.errors import ERROR_RESPONSES, forbidden
from runyard.store import PipelineEndpointRecord, PublishedPipelineRecord, ScheduleRecord, SqlStore
from runyard.store.records import ACTIVE, DISABLED

#: Keys of a schedule's data that only the workspace's scheduler writes (engine/schedules.py); a create
#: over REST drops them ("watch" stays: Schedule.create sends a datastore watch's first listing there).
SCHEDULER_DATA_KEYS = ("firing", "lastError", "seenTime", "firstFireTime", "watchError")
#: ScheduleRecord fields the ticker owns; RestStore sends them as None, which is the only value accepted.
SCHEDULER_FIELDS = ("next_fire_time", "last_fire_time", "last_run_id")


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class PublishedPipelineIn(_Strict):
    id: str
    name: str
    status: str
    created_time: float
    graph: dict[str, Any]
    description: str | None = None
    version: str | None = None
    continue_on_step_failure: bool = False
    data: dict[str, Any] = Field(default_factory=dict)


class PipelineEndpointIn(_Strict):
    id: str
    name: str
    status: str
    created_time: float
    default_version: str
    versions: dict[str, str]
    description: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class ScheduleIn(_Strict):
    id: str
    name: str
    status: str
    experiment_name: str
    created_time: float
    pipeline_id: str | None = None
    pipeline_endpoint_id: str | None = None
    description: str | None = None
    recurrence: dict[str, Any] | None = None
    datastore_name: str | None = None
    path_on_datastore: str | None = None
    polling_interval: float | None = None
    data_path_parameter_name: str | None = None
    continue_on_step_failure: bool | None = None
    pipeline_parameters: dict[str, Any] = Field(default_factory=dict)
    next_fire_time: float | None = None
    last_fire_time: float | None = None
    last_run_id: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class SchedulePatch(_Strict):
    """Schedule.update's fields (store.update_schedule); null or absent: unchanged."""

    name: str | None = None
    description: str | None = None
    recurrence: dict[str, Any] | None = None
    pipeline_parameters: dict[str, Any] | None = None
    status: str | None = None
    polling_interval: float | None = None
    data_path_parameter_name: str | None = None
    continue_on_step_failure: bool | None = None
    path_on_datastore: str | None = None
    datastore_name: str | None = None


class StatusIn(_Strict):
    status: str


class VersionIn(_Strict):
    pipeline_id: str
    set_default: bool = False


class EndpointPatch(_Strict):
    name: str | None = None
    description: str | None = None
    status: str | None = None
    default_version: str | None = None


def _stamped(body: BaseModel, who: Principal) -> dict[str, Any]:
    """The body's fields, with data["createdBy"] set to the server's own stamp of the caller."""
    fields = body.model_dump()
    fields["data"] = {**fields["data"], "createdBy": who.stamp()}
    return fields


def _creator_or_admin(who: Principal, data: dict[str, Any], what: str) -> None:
    """Raise 403 unless `who` created the record whose data is `data`, is admin, or auth is off."""
    if who.scope == "admin" or who.auth_off:
        return
    created_by = data.get("createdBy")
    if isinstance(created_by, dict) and who.token_id is not None and created_by.get("token") == who.token_id:
        return
    raise forbidden(
        f"{what} is allowed only to the token that created it, or to an admin token: it changes what runs "
        "or whom it runs as, and this token did not create it. Ask its creator, or use a token with the "
        "'admin' scope (runyard token create --scope admin). Setting it Disabled needs only 'write'."
    )


def _schedule_fields(body: ScheduleIn, who: Principal) -> dict[str, Any]:
    """A new schedule's fields: the ticker's fields refused unless None, its data keys dropped."""
    sent = [name for name in SCHEDULER_FIELDS if getattr(body, name) is not None]
    if sent:
        raise InvalidInputError(
            f"A new schedule cannot set {', '.join(sent)}: only the workspace's scheduler writes these "
            "(when it fires the schedule). Leave them out or send null."
        )
    fields = _stamped(body, who)
    fields["data"] = {k: v for k, v in fields["data"].items() if k not in SCHEDULER_DATA_KEYS}
    return fields


def publish_router(workspace: Workspace, store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["publishing"])
    auth = Depends(principal)

    def serve(record: ScheduleRecord, request: Request, who: Principal) -> ScheduleRecord:
        """An Active schedule on a compute server gets this workspace's scheduler running to fire it."""
        if record.status == ACTIVE and getattr(request.app.state, "host_is_compute", False):
            ensure_running(workspace, accept_unauthenticated=who.auth_off)
        return record

    def writer(who: Principal, what: str) -> None:
        who.require_not_run_token(what)
        who.require("write")

    # -- published pipelines ----------------------------------------------------------------------
    @router.post("/published-pipelines", response_model=PublishedPipelineRecord)
    def create_published_pipeline(
        body: PublishedPipelineIn, who: Principal = auth
    ) -> PublishedPipelineRecord:
        writer(who, "Publishing a pipeline")
        check_graph(body.graph)
        return store.create_published_pipeline(PublishedPipelineRecord(**_stamped(body, who)))

    @router.get("/published-pipelines", response_model=list[PublishedPipelineRecord])
    def list_published_pipelines(
        active_only: bool = True, who: Principal = auth
    ) -> list[PublishedPipelineRecord]:
        who.require("read")
        return store.list_published_pipelines(active_only=active_only)

    @router.get("/published-pipelines/{pipeline_id}", response_model=PublishedPipelineRecord)
    def get_published_pipeline(pipeline_id: str, who: Principal = auth) -> PublishedPipelineRecord:
        who.require("read")
        return store.get_published_pipeline(pipeline_id)

    @router.put("/published-pipelines/{pipeline_id}/status", response_model=PublishedPipelineRecord)
    def set_published_pipeline_status(
        pipeline_id: str, body: StatusIn, who: Principal = auth
    ) -> PublishedPipelineRecord:
        writer(who, "Enabling or disabling a published pipeline")
        if body.status == ACTIVE:
            record = store.get_published_pipeline(pipeline_id)
            _creator_or_admin(who, record.data, f"Enabling published pipeline {pipeline_id}")
        return store.set_published_pipeline_status(pipeline_id, body.status)

    # -- pipeline endpoints -----------------------------------------------------------------------
    @router.post("/pipeline-endpoints", response_model=PipelineEndpointRecord)
    def create_pipeline_endpoint(body: PipelineEndpointIn, who: Principal = auth) -> PipelineEndpointRecord:
        writer(who, "Creating a pipeline endpoint")
        return store.create_pipeline_endpoint(PipelineEndpointRecord(**_stamped(body, who)))

    @router.get("/pipeline-endpoints", response_model=list[PipelineEndpointRecord])
    def list_pipeline_endpoints(
        active_only: bool = True, who: Principal = auth
    ) -> list[PipelineEndpointRecord]:
        who.require("read")
        return store.list_pipeline_endpoints(active_only=active_only)

    @router.get("/pipeline-endpoints/by-name/{name:path}", response_model=PipelineEndpointRecord)
    def get_pipeline_endpoint_by_name(name: str, who: Principal = auth) -> PipelineEndpointRecord:
        who.require("read")
        return store.get_pipeline_endpoint(name=name)

    @router.get("/pipeline-endpoints/{endpoint_id}", response_model=PipelineEndpointRecord)
    def get_pipeline_endpoint(
        endpoint_id: str, name: str | None = None, who: Principal = auth
    ) -> PipelineEndpointRecord:
        who.require("read")
        return store.get_pipeline_endpoint(endpoint_id=endpoint_id, name=name)

    @router.post("/pipeline-endpoints/{endpoint_id}/versions", response_model=PipelineEndpointRecord)
    def add_pipeline_endpoint_version(
        endpoint_id: str, body: VersionIn, who: Principal = auth
    ) -> PipelineEndpointRecord:
        writer(who, "Adding a pipeline to an endpoint")
        endpoint = store.get_pipeline_endpoint(endpoint_id)
        _creator_or_admin(who, endpoint.data, f"Adding a version to pipeline endpoint {endpoint.name!r}")
        return store.add_pipeline_endpoint_version(
            endpoint_id, body.pipeline_id, set_default=body.set_default
        )

    @router.patch("/pipeline-endpoints/{endpoint_id}", response_model=PipelineEndpointRecord)
    def update_pipeline_endpoint(
        endpoint_id: str, body: EndpointPatch, who: Principal = auth
    ) -> PipelineEndpointRecord:
        writer(who, "Changing a pipeline endpoint")
        changes = body.model_dump()
        widening = [k for k in ("name", "default_version", "description") if changes[k] is not None]
        if changes["status"] == ACTIVE:
            widening.append("status Active")
        if widening:
            endpoint = store.get_pipeline_endpoint(endpoint_id)
            _creator_or_admin(
                who, endpoint.data, f"Changing {', '.join(widening)} of pipeline endpoint {endpoint.name!r}"
            )
        return store.update_pipeline_endpoint(endpoint_id, **changes)

    @router.put("/pipeline-endpoints/{endpoint_id}/status", response_model=PipelineEndpointRecord)
    def set_pipeline_endpoint_status(
        endpoint_id: str, body: StatusIn, who: Principal = auth
    ) -> PipelineEndpointRecord:
        writer(who, "Enabling or disabling a pipeline endpoint")
        if body.status == ACTIVE:
            endpoint = store.get_pipeline_endpoint(endpoint_id)
            _creator_or_admin(who, endpoint.data, f"Enabling pipeline endpoint {endpoint.name!r}")
        return store.update_pipeline_endpoint(endpoint_id, status=body.status)

    # -- schedules --------------------------------------------------------------------------------
    @router.post("/schedules", response_model=ScheduleRecord)
    def create_schedule(body: ScheduleIn, request: Request, who: Principal = auth) -> ScheduleRecord:
        writer(who, "Creating a schedule")
        return serve(store.create_schedule(ScheduleRecord(**_schedule_fields(body, who))), request, who)

    @router.get("/schedules", response_model=list[ScheduleRecord])
    def list_schedules(
        active_only: bool = True,
        pipeline_id: str | None = None,
        pipeline_endpoint_id: str | None = None,
        who: Principal = auth,
    ) -> list[ScheduleRecord]:
        who.require("read")
        return store.list_schedules(
            active_only=active_only, pipeline_id=pipeline_id, pipeline_endpoint_id=pipeline_endpoint_id
        )

    @router.get("/schedules/{schedule_id}", response_model=ScheduleRecord)
    def get_schedule(schedule_id: str, who: Principal = auth) -> ScheduleRecord:
        who.require("read")
        return store.get_schedule(schedule_id)

    @router.put("/schedules/{schedule_id}/status", response_model=ScheduleRecord)
    def set_schedule_status(
        schedule_id: str, body: StatusIn, request: Request, who: Principal = auth
    ) -> ScheduleRecord:
        writer(who, "Enabling or disabling a schedule")
        if body.status == ACTIVE:
            record = store.get_schedule(schedule_id)
            _creator_or_admin(who, record.data, f"Enabling schedule {record.name!r} ({schedule_id})")
        return serve(store.set_schedule_status(schedule_id, body.status), request, who)

    @router.patch("/schedules/{schedule_id}", response_model=ScheduleRecord)
    def update_schedule(
        schedule_id: str, body: SchedulePatch, request: Request, who: Principal = auth
    ) -> ScheduleRecord:
        """Schedule.update. Anything but setting it Disabled changes what runs as the schedule's creator
        (or wakes it), so it needs that creator or an admin token."""
        writer(who, "Updating a schedule")
        fields = body.model_dump(exclude_none=True)
        if fields != {"status": DISABLED}:
            record = store.get_schedule(schedule_id)
            _creator_or_admin(who, record.data, f"Updating schedule {record.name!r} ({schedule_id})")
        return serve(store.update_schedule(schedule_id, **fields), request, who)

    return router
