"""Studio pages for published pipelines, pipeline endpoints and schedules.

The Pipelines page lists what was published (v1's PublishedPipeline and PipelineEndpoint); a published
pipeline's page shows its frozen parameters and steps, the runs it produced and a curl line that starts
one through the server's REST door (server/routes_pipeline_submit.py); an endpoint's page its versions
and runs; the Schedules page each schedule's recurrence in words, its next firing and its last run.
Pages only read: publishing, enabling and scheduling stay in the Python API and the CLI.

A stored graph is input (docs/security.md): a record made over REST, or by hand in the database, may hold
anything JSON allows. So what the templates show of a graph (step counts, steps, parameters) is computed
here with isinstance checks, and templates never walk the graph themselves; a page must render for
every user whatever one record holds.
"""

from __future__ import annotations

import json
import shlex
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates

from runyard.core.experiment import check_experiment_name
from runyard.core.run_values import PIPELINE_ID_PROPERTY, PIPELINE_RUN_TYPE
from runyard.core.workspace import Workspace
from runyard.engine.schedules import next_fire_time
from runyard.engine.submission import ENDPOINT_ID_PROPERTY
from runyard.errors import NotFoundError, RunyardError
from runyard.pipeline.published import ENDPOINT_SUBMIT_PATH, PUBLISHED_SUBMIT_PATH
from runyard.server.auth import Principal
from runyard.store import RunRecord, SqlStore
from runyard.store.records import ACTIVE, PipelineEndpointRecord, PublishedPipelineRecord, ScheduleRecord
from runyard.studio.auth import studio_principal

RUNS_SHOWN = 50  # the newest runs a pipeline or endpoint page lists


def published_page_router(
    workspace: Workspace, store: SqlStore, templates: Jinja2Templates, auth: bool
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    principal = studio_principal(store, auth)

    def render(
        request: Request, name: str, who: Principal, status_code: int = 200, **context: Any
    ) -> Response:
        context.update(principal=who, creator=creator)
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    @router.get("/published")
    def published(request: Request, who: Principal = Depends(principal)) -> Response:
        pipelines = store.list_published_pipelines(active_only=False)
        names = {p.id: p for p in pipelines}
        return render(
            request,
            "published.html",
            who,
            pipelines=pipelines,
            endpoints=store.list_pipeline_endpoints(active_only=False),
            names=names,
            step_counts={p.id: len(graph_steps(p.graph)) for p in pipelines},
            schedules=len(store.list_schedules(active_only=False)),
        )

    @router.get("/published/{pipeline_id}")
    def published_pipeline(
        request: Request, pipeline_id: str, who: Principal = Depends(principal)
    ) -> Response:
        record = store.get_published_pipeline(pipeline_id)
        endpoints = [
            (e, [v for v, p in e.versions.items() if p == record.id])
            for e in store.list_pipeline_endpoints(active_only=False)
            if record.id in e.versions.values()
        ]
        return render(
            request,
            "published_pipeline.html",
            who,
            title=f"Published pipeline {record.name}",
            record=record,
            parameters=graph_parameters(record.graph),
            steps=graph_steps(record.graph),
            runs=runs_with_property(store, PIPELINE_ID_PROPERTY, record.id),
            endpoints=endpoints,
            schedules=schedule_rows(store, store.list_schedules(active_only=False, pipeline_id=record.id)),
            curl=curl_line(request, PUBLISHED_SUBMIT_PATH.format(id=record.id), record),
        )

    @router.get("/endpoints/{endpoint_id}")
    def pipeline_endpoint(
        request: Request, endpoint_id: str, who: Principal = Depends(principal)
    ) -> Response:
        endpoint = store.get_pipeline_endpoint(endpoint_id)
        versions: list[tuple[str, PublishedPipelineRecord | None, str]] = []
        for version, pipeline_id in sorted(endpoint.versions.items(), key=lambda kv: _version_key(kv[0])):
            try:
                versions.append((version, store.get_published_pipeline(pipeline_id), pipeline_id))
            except NotFoundError:
                versions.append((version, None, pipeline_id))
        default = next((p for v, p, _ in versions if v == endpoint.default_version), None)
        schedules = store.list_schedules(active_only=False, pipeline_endpoint_id=endpoint.id)
        return render(
            request,
            "endpoint.html",
            who,
            title=f"Pipeline endpoint {endpoint.name}",
            endpoint=endpoint,
            versions=versions,
            runs=runs_with_property(store, ENDPOINT_ID_PROPERTY, endpoint.id),
            schedules=schedule_rows(store, schedules),
            curl=curl_line(request, ENDPOINT_SUBMIT_PATH.format(id=endpoint.id), default)
            if default
            else None,
        )

    @router.get("/schedules")
    def schedules(request: Request, who: Principal = Depends(principal)) -> Response:
        return render(
            request,
            "schedules.html",
            who,
            rows=schedule_rows(store, store.list_schedules(active_only=False)),
        )

    return router


def creator(stamp: Any) -> str:
    """Who published or scheduled something, from the principal stamp the server recorded."""
    if not isinstance(stamp, dict):
        return "this workspace's user"
    if stamp.get("auth") == "off":
        return "a server without --auth"
    if stamp.get("token"):
        return f"token {stamp['token']} ({stamp.get('scope', '?')})"
    return "this workspace's user"


def _version_key(version: str) -> tuple[int, str]:
    """Versions in numeric order ("2" before "10"); one that is not a number sorts last, by its text."""
    return (int(version), "") if version.isdigit() else (2**63, version)


def _text(value: Any) -> str:
    """A graph field shown on a page: strings as they are, anything else as nothing."""
    return value if isinstance(value, str) else ""


def graph_steps(graph: Any) -> list[dict[str, str]]:
    """The steps table of a published graph (name, type, script, compute, snapshot), read defensively:
    a list of step objects is what publish and check_graph produce; anything else shows no steps."""
    steps = graph.get("steps") if isinstance(graph, dict) else None
    if not isinstance(steps, list):
        return []
    rows = []
    for step in steps:
        if not isinstance(step, dict):
            continue
        source = step.get("source")
        rows.append(
            {
                "name": _text(step.get("name")),
                "type": _text(step.get("type")),
                "script": _text(step.get("script")),
                "compute_target": _text(step.get("compute_target")) or "local",
                "snapshot": _text(source.get("snapshot")) if isinstance(source, dict) else "",
            }
        )
    return rows


def graph_parameters(graph: Any) -> dict[str, Any]:
    """A published graph's parameters as name -> default (None when a spec has none)."""
    parameters = graph.get("parameters") if isinstance(graph, dict) else None
    if not isinstance(parameters, dict):
        return {}
    return {
        str(name): spec.get("default") if isinstance(spec, dict) else None
        for name, spec in parameters.items()
    }


def runs_with_property(store: SqlStore, key: str, value: str) -> list[RunRecord]:
    """The newest pipeline runs whose property `key` is `value` (e.g. azureml.pipelineid), one query."""
    return store.list_runs(
        run_type=PIPELINE_RUN_TYPE, property_key=key, property_value=value, limit=RUNS_SHOWN
    )


def example_body(record: PublishedPipelineRecord) -> dict[str, Any]:
    """A request body for the REST door with each parameter at its default (v1's field names)."""
    body: dict[str, Any] = {"ExperimentName": _experiment_for(record.name)}
    plain: dict[str, str] = {}
    datapaths: dict[str, Any] = {}
    datasets: dict[str, Any] = {}
    for name, default in graph_parameters(record.graph).items():
        if isinstance(default, dict) and isinstance(default.get("datapath"), dict):
            where = default["datapath"]
            datapaths[name] = {"DataStoreName": where.get("datastore"), "RelativePath": where.get("path", "")}
        elif isinstance(default, dict) and "dataset" in default:
            dataset = default.get("dataset")
            registered = dataset.get("registered") if isinstance(dataset, dict) else None
            dataset_id = registered.get("id") if isinstance(registered, dict) else None
            datasets[name] = {"SavedDataSetReference": {"Id": dataset_id or "<registered dataset id>"}}
        elif default is not None:
            plain[name] = str(default)
    for key, value in (
        ("ParameterAssignments", plain),
        ("DataPathAssignments", datapaths),
        ("DataSetDefinitionValueAssignments", datasets),
    ):
        if value:
            body[key] = value
    return body


def _experiment_for(name: str) -> str:
    """The pipeline's name when it is a valid experiment name (a placeholder otherwise)."""
    try:
        check_experiment_name(name)
    except RunyardError:
        return "my-experiment"
    return name


def curl_line(request: Request, path: str, record: PublishedPipelineRecord) -> str:
    """A copy-paste command that submits through this server, with the token from $RUNYARD_TOKEN."""
    url = str(request.base_url).rstrip("/") + path
    body = json.dumps(example_body(record))
    return (
        f"curl -X POST {shlex.quote(url)} \\\n"
        '  -H "Authorization: Bearer $RUNYARD_TOKEN" -H "Content-Type: application/json" \\\n'
        f"  -d {shlex.quote(body)}"
    )


DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
UNITS = {"Minute": "minute", "Hour": "hour", "Day": "day", "Week": "week", "Month": "month"}


def recurrence_words(record: ScheduleRecord) -> str:
    """A schedule's recurrence (or datastore watch) as a sentence: "Every 2 days at 09:30 (UTC)"."""
    if record.recurrence is None:
        where = f"{record.datastore_name}/{record.path_on_datastore or ''}".rstrip("/")
        every = float(record.polling_interval or 0)
        return f"When files change on {where} (looked at every {every:g} minute{'' if every == 1 else 's'})"
    r = record.recurrence
    interval = int(r.get("interval") or 1)
    unit = UNITS.get(str(r.get("frequency")), str(r.get("frequency")).lower())
    text = f"Every {unit}" if interval == 1 else f"Every {interval} {unit}s"
    days = [d for d in DAYS if d in (r.get("week_days") or [])]
    if days:
        text += " on " + _and(days)
    if r.get("time_of_day"):
        text += f" at {r['time_of_day']}"
    elif r.get("hours") or r.get("minutes"):
        hours = r.get("hours") or [0]
        minutes = r.get("minutes") or [0]
        text += " at " + _and([f"{h:02d}:{m:02d}" for h in hours for m in minutes])
    if r.get("start_time"):
        text += f", starting {r['start_time']}"
    return f"{text} ({r.get('time_zone') or 'UTC'})"


def _and(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def schedule_rows(store: SqlStore, records: list[ScheduleRecord]) -> list[dict[str, Any]]:
    """What a schedules table shows per schedule: its target, words, next firing and last run."""
    now = time.time()
    rows = []
    for record in records:
        target: PublishedPipelineRecord | PipelineEndpointRecord | None = None
        try:
            if record.pipeline_id:
                target = store.get_published_pipeline(record.pipeline_id)
            elif record.pipeline_endpoint_id:
                target = store.get_pipeline_endpoint(record.pipeline_endpoint_id)
        except NotFoundError:
            target = None
        last = None
        if record.last_run_id:
            try:
                last = store.get_run(record.last_run_id)
            except NotFoundError:
                last = None
        upcoming = record.next_fire_time if record.status == ACTIVE else None
        if record.status == ACTIVE and upcoming is None:
            try:
                upcoming = next_fire_time(record, now)
            except (RunyardError, ArithmeticError, ValueError, TypeError):
                upcoming = None  # a schedule that never fires shows "never"
        error = (record.data or {}).get("lastError")
        rows.append(
            {
                "record": record,
                "target": target,
                "is_endpoint": record.pipeline_endpoint_id is not None,
                "words": recurrence_words(record),
                "next": upcoming,
                "last": last,
                "error": (_text(error.get("message")) or "unknown") if isinstance(error, dict) else None,
            }
        )
    return rows
