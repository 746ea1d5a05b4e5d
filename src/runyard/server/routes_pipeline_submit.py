"""v1's REST door to published pipelines and pipeline endpoints: a POST with a bearer token starts a run.

`PublishedPipeline.endpoint` and `PipelineEndpoint.endpoint` are these URLs, so the v1 recipe
`requests.post(published.endpoint, headers=auth, json={"ExperimentName": …, "ParameterAssignments": …})`
works against a runyard server unchanged (with a runyard token in place of the Azure AD header).

Submitting starts code on the server's machine, so it follows the studio clone's trust rules
(docs/security.md): the server must have been started as compute (`runyard server --compute`,
`runyard up`), the token needs the 'write' scope and a compute grant for every step's target, and the
run is recorded as submitted by that token, which the scheduler checks again when it picks the run up.
The body is read only after the token was checked (these paths are outside /api/, where the app's
AuthBeforeBody middleware does that), so a stranger's body is never parsed.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError
from starlette.concurrency import run_in_threadpool

from runyard.core.workspace import Workspace
from runyard.data.abstract_dataset import get_by_id, get_by_name
from runyard.data.datastore import Datastore
from runyard.engine.service import ensure_running
from runyard.engine.submission import (
    ENDPOINT_ID_PROPERTY,
    IGNORED_PARAMETERS_PROPERTY,
    ignored_parameters_warning,
    published_for_endpoint,
    submit_published,
    unknown_parameters,
)
from runyard.errors import InvalidInputError, NotFoundError, PipelineDisabled, RunyardError
from runyard.pipeline.data import parameter_from_text, parameter_json

# the URL paths PublishedPipeline.endpoint and PipelineEndpoint.endpoint are built from
from runyard.pipeline.published import (
    ENDPOINT_SUBMIT_BY_NAME_PATH,
    ENDPOINT_SUBMIT_PATH,
    PUBLISHED_SUBMIT_PATH,
    graph_id_of,
)
from runyard.server.auth import Principal
from runyard.server.errors import ERROR_RESPONSES, forbidden, runyard_error_response
from runyard.store import SqlStore
from runyard.store.records import ACTIVE, PipelineEndpointRecord, PublishedPipelineRecord

PlainValue = StrictStr | StrictBool | StrictInt | StrictFloat


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataPathAssignment(_Body):
    """v1's LegacyDataPath: a file or folder on a registered datastore."""

    DataStoreName: StrictStr
    RelativePath: StrictStr = ""


class SavedRef(_Body):
    """v1's SavedDataSetReference."""

    Id: StrictStr


class RegisteredRef(_Body):
    """v1's RegisteredDataSetReference."""

    Id: StrictStr | None = None
    Name: StrictStr | None = None
    Version: StrictStr | StrictInt | None = None


class DataSetDefinitionValue(_Body):
    """v1's DataSetDefinitionValue: a registered dataset by id (or by name and version)."""

    SavedDataSetReference: SavedRef | None = None
    DataSetReference: RegisteredRef | None = None


class PipelineSubmission(_Body):
    """v1's PipelineSubmissionInfo (the fields runyard acts on; RunType and EnableNotification are
    accepted and ignored, as a local run has no notification service)."""

    ExperimentName: StrictStr
    Description: StrictStr | None = None
    RunSource: StrictStr | None = None
    RunType: StrictStr | None = None
    ParameterAssignments: dict[str, PlainValue] = {}
    DataPathAssignments: dict[str, DataPathAssignment] = {}
    DataSetDefinitionValueAssignments: dict[str, DataSetDefinitionValue] = {}
    ContinueRunOnStepFailure: StrictBool | None = None
    EnableNotification: StrictBool | None = None
    tags: dict[str, StrictStr] = {}


class EndpointSubmission(PipelineSubmission):
    PipelineVersion: StrictStr | StrictInt | None = None


def _openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}
    return {"requestBody": schema}


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The pipeline run was created (v1's PipelineRunEntity)"},
    **ERROR_RESPONSES,
}


def pipeline_submit_router(workspace: Workspace, store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(tags=["pipelines"])

    @router.post(
        PUBLISHED_SUBMIT_PATH.format(id="{pipeline_id}"),
        responses=RESPONSES,
        openapi_extra=_openapi_body(PipelineSubmission),
        summary="Submit a published pipeline (v1's PublishedPipeline REST endpoint)",
    )
    async def submit_pipeline(
        request: Request, pipeline_id: str, who: Principal = Depends(principal)
    ) -> Response:
        try:
            _may_submit(request, who)
            body = await _read_body(request, PipelineSubmission)
            made = await run_in_threadpool(_submit, workspace, store, who, body, pipeline_id, None, None)
        except RunyardError as exc:  # JSON, not the studio's HTML error page (these paths are not /api/)
            return runyard_error_response(exc)
        return JSONResponse(_answer(request, made))

    for suffix in ("", "/{version}"):  # v1's client puts pipeline_version in the path and in the query

        @router.post(
            ENDPOINT_SUBMIT_PATH.format(id="{endpoint_id}") + suffix,
            responses=RESPONSES,
            openapi_extra=_openapi_body(EndpointSubmission),
            summary="Submit a pipeline endpoint's default or given version (v1's PipelineEndpoint REST endpoint)",
        )
        async def submit_endpoint(
            request: Request,
            endpoint_id: str,
            version: str | None = None,
            pipelineVersion: str | None = None,  # v1's query parameter name
            who: Principal = Depends(principal),
        ) -> Response:
            try:
                _may_submit(request, who)
                body = await _read_body(request, EndpointSubmission)
                assert isinstance(body, EndpointSubmission)
                chosen = _one_version(version, pipelineVersion, body.PipelineVersion)
                made = await run_in_threadpool(
                    _submit, workspace, store, who, body, None, endpoint_id, chosen
                )
            except RunyardError as exc:
                return runyard_error_response(exc)
            return JSONResponse(_answer(request, made))

    @router.post(
        ENDPOINT_SUBMIT_BY_NAME_PATH,
        responses=RESPONSES,
        openapi_extra=_openapi_body(EndpointSubmission),
        summary="Submit a pipeline endpoint found by name (v1's PipelineEndpointSubmit/Name?name=…)",
    )
    async def submit_endpoint_by_name(
        request: Request,
        name: str,
        pipelineVersion: str | None = None,  # v1's query parameter name
        who: Principal = Depends(principal),
    ) -> Response:
        try:
            _may_submit(request, who)
            body = await _read_body(request, EndpointSubmission)
            assert isinstance(body, EndpointSubmission)
            chosen = _one_version(pipelineVersion, body.PipelineVersion)
            endpoint = await run_in_threadpool(lambda: store.get_pipeline_endpoint(name=name))
            made = await run_in_threadpool(_submit, workspace, store, who, body, None, endpoint.id, chosen)
        except RunyardError as exc:
            return runyard_error_response(exc)
        return JSONResponse(_answer(request, made))

    return router


def _one_version(*given: str | int | None) -> str | None:
    """The endpoint version asked for, wherever the client put it (body, path or query): at most one."""
    asked = {str(v) for v in given if v not in (None, "")}
    if len(asked) > 1:
        raise InvalidInputError(
            f"PipelineVersion: the request names versions {', '.join(sorted(asked))}; "
            "give one (in the body, the path or ?pipelineVersion=)."
        )
    return asked.pop() if asked else None


def _may_submit(request: Request, who: Principal) -> None:
    """A write token (or above), on a server that may run code (checked before the body is read)."""
    who.require("write")
    who.require_not_run_token("Submitting a published pipeline")
    if not getattr(request.app.state, "host_is_compute", False):
        raise forbidden(
            "This server does not run pipelines: it was started without --compute, so nothing submitted "
            "over HTTP may start code on its machine. Start it with `runyard server --compute` (or "
            "`runyard up`) if this machine is meant to be compute, or submit from a machine that is "
            "(PublishedPipeline.get(ws, id).submit(ws, experiment_name))."
        )


async def _read_body(request: Request, model: type[PipelineSubmission]) -> PipelineSubmission:
    raw = await request.body()
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as exc:
        errors = json.loads(exc.json(include_url=False, include_context=False, include_input=False))
        for error in errors:
            error["loc"] = ["body", *error.get("loc", ())]
        raise RequestValidationError(errors) from None


def _check_compute(who: Principal, record: PublishedPipelineRecord) -> None:
    steps = (record.graph or {}).get("steps") or []
    targets = sorted({str(s.get("compute_target") or "local") for s in steps if isinstance(s, dict)})
    missing = [t for t in targets if not who.may_run_on(t)]
    if missing:
        raise forbidden(
            f"This token may not run code on {', '.join(missing)} (its compute: "
            f"{', '.join(who.compute) or 'none'}); reading, writing and admin scopes do not run code. "
            f"Use a token made by `runyard token create --scope write "
            f"{' '.join('--compute ' + t for t in missing)}`."
        )


def _submit(
    workspace: Workspace,
    store: SqlStore,
    who: Principal,
    body: PipelineSubmission,
    pipeline_id: str | None,
    endpoint_id: str | None,
    version: str | None,
) -> dict[str, Any]:
    """Create the run (as `who`) and start this host's scheduler; returns what the answer needs."""
    endpoint: PipelineEndpointRecord | None = None
    properties: dict[str, str] = {}
    if endpoint_id is not None:
        endpoint = store.get_pipeline_endpoint(endpoint_id)
        if endpoint.status != ACTIVE:
            raise PipelineDisabled(
                f"Pipeline endpoint {endpoint.name!r} ({endpoint.id}) is {endpoint.status}, so it cannot be "
                f"submitted; enable it first: PipelineEndpoint.get(ws, id={endpoint.id!r}).enable()."
            )
        record = published_for_endpoint(store, endpoint, version)
        properties[ENDPOINT_ID_PROPERTY] = endpoint.id
    else:
        assert pipeline_id is not None
        record = store.get_published_pipeline(pipeline_id)
    if record.status != ACTIVE:
        raise PipelineDisabled(
            f"Published pipeline {record.name!r} ({record.id}) is {record.status}, so it cannot be submitted; "
            f"enable it first: PublishedPipeline.get(ws, {record.id!r}).enable()."
        )
    _check_compute(who, record)
    values = parameter_values(workspace, record.graph, body)
    ignored = unknown_parameters(record.graph, _assigned(body))
    if ignored:  # parameter_values left them out; the run still says which were ignored
        properties[IGNORED_PARAMETERS_PROPERTY] = json.dumps(ignored)
    run = submit_published(
        workspace,
        record,
        body.ExperimentName,
        values,
        submitter=who.stamp(),
        continue_on_step_failure=body.ContinueRunOnStepFailure,
        properties=properties,
    )
    if body.tags:
        store.set_tags(run.run_id, dict(body.tags))
    if body.Description:
        run = store.update_run_data(run.run_id, {"description": body.Description})
    ensure_running(workspace, accept_unauthenticated=who.auth_off)
    return {
        "run": run,
        "record": record,
        "body": body,
        "who": who,
        "endpoint": endpoint,
        "warnings": [ignored_parameters_warning(record.graph, ignored)] if ignored else [],
        "version": next(
            (v for v, p in (endpoint.versions if endpoint else {}).items() if p == record.id), None
        ),
    }


def _assigned(body: PipelineSubmission) -> dict[str, Any]:
    """Every name the body assigns, in any of v1's three maps."""
    return {
        **body.ParameterAssignments,
        **body.DataPathAssignments,
        **body.DataSetDefinitionValueAssignments,
    }


def parameter_values(workspace: Workspace, graph: dict[str, Any], body: PipelineSubmission) -> dict[str, Any]:
    """v1's three assignment maps as one dict of parameter values in the graph's JSON form (plain
    values typed as each parameter's default; DataPaths as {"datapath": …}; datasets as {"dataset": …}).

    A name the graph does not declare is left out, as v1's REST door ignores it (the answer's
    "Warnings" and the run's `ignoredParameters` property say so)."""
    declared: dict[str, Any] = graph.get("parameters") or {}
    values: dict[str, Any] = {}
    fields: dict[str, dict[str, Any]] = {
        "ParameterAssignments": body.ParameterAssignments,
        "DataPathAssignments": body.DataPathAssignments,
        "DataSetDefinitionValueAssignments": body.DataSetDefinitionValueAssignments,
    }
    for field, assigned in fields.items():
        for name, given in assigned.items():
            where = f"{field}[{name!r}]"
            if name in values:
                raise InvalidInputError(f"{where}: parameter {name!r} is assigned twice; give it once.")
            if name not in declared:
                continue
            default = declared[name].get("default")
            if field == "ParameterAssignments":
                values[name] = _plain(where, given, default)
            elif field == "DataPathAssignments":
                values[name] = _datapath(workspace, where, given)
            else:
                values[name] = _dataset(workspace, where, given)
    return values


def _plain(where: str, given: Any, default: Any) -> Any:
    if isinstance(default, dict):
        kind = "DataSetDefinitionValueAssignments" if "dataset" in default else "DataPathAssignments"
        raise InvalidInputError(
            f"{where}: this parameter takes {kind.removesuffix('Assignments')}; send it in {kind}."
        )
    try:
        if isinstance(given, str) and default is not None and not isinstance(default, str):
            return parameter_from_text(given, default)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    if default is None or type(given) is type(default):
        return given
    if isinstance(default, float) and type(given) is int:
        return float(given)
    raise InvalidInputError(
        f"{where}: expected {type(default).__name__} like the default {default!r}, got {given!r}."
    )


def _datapath(workspace: Workspace, where: str, given: DataPathAssignment) -> dict[str, Any]:
    try:
        datastore = Datastore(workspace, given.DataStoreName)  # a built-in one or a registered one
    except NotFoundError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    return {"datapath": {"datastore": datastore.name, "path": given.RelativePath}}


def _dataset(workspace: Workspace, where: str, given: DataSetDefinitionValue) -> dict[str, Any]:
    saved, registered = given.SavedDataSetReference, given.DataSetReference
    try:
        if saved is not None and registered is None:
            return dict(parameter_json(get_by_id(workspace, saved.Id)))
        if registered is not None and saved is None:
            if registered.Id:
                return dict(parameter_json(get_by_id(workspace, registered.Id)))
            if registered.Name:
                version = registered.Version if registered.Version not in (None, "") else "latest"
                return dict(parameter_json(get_by_name(workspace, registered.Name, version)))
    except NotFoundError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    raise InvalidInputError(
        f'{where}: give one dataset, as {{"SavedDataSetReference": {{"Id": "<dataset id>"}}}} or '
        '{"DataSetReference": {"Name": "<name>", "Version": "<version>"}}.'
    )


def _iso(seconds: float | None) -> str | None:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat() if seconds is not None else None


def _answer(request: Request, made: dict[str, Any]) -> dict[str, Any]:
    """v1's PipelineRunEntity for the new run (runyard adds RunUrl, CreatedBy, endpoint and version)."""
    run, record, body, who = made["run"], made["record"], made["body"], made["who"]
    created = _iso(run.created_time)
    endpoint = made["endpoint"]
    plain = {n: str(v) for n, v in run.data.get("parameters", {}).items() if not isinstance(v, dict)}
    return {
        "Id": run.run_id,
        "Description": body.Description,
        "Status": {"StatusCode": run.status, "StatusDetail": None, "CreationTime": created, "EndTime": None},
        "GraphId": graph_id_of(record.graph),
        "IsSubmitted": True,
        "HasErrors": False,
        "HasWarnings": False,
        "ParameterAssignments": plain,
        "DataPathAssignments": {n: a.model_dump() for n, a in body.DataPathAssignments.items()},
        "DataSetDefinitionValueAssignments": {
            n: a.model_dump(exclude_none=True) for n, a in body.DataSetDefinitionValueAssignments.items()
        },
        "RunHistoryExperimentName": run.experiment_name,
        "PipelineId": record.id,
        "PipelineEndpointId": endpoint.id if endpoint else None,
        "PipelineVersion": made["version"],
        "RunSource": body.RunSource or "API",
        "RunType": "HTTP",
        "TotalRunSteps": len((record.graph or {}).get("steps") or []),
        "ScheduleId": None,
        "tags": dict(body.tags),
        "EntityStatus": "Active",
        "CreatedDate": created,
        "LastModifiedDate": created,
        "CreatedBy": {
            "UserObjectId": who.token_id,
            "UserTenantId": None,
            "UserName": f"token {who.token_id} ({who.scope})" if who.token_id else "local (no --auth)",
        },
        "RunUrl": f"{str(request.base_url).rstrip('/')}/runs/{run.run_id}",
        "Warnings": made["warnings"],
    }
