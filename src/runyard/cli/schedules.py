"""`runyard schedule list|show|disable|enable`: the workspace's schedules (docs/schedules.md)."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.markup import escape

from runyard import Workspace
from runyard.cli.render import console, print_json, status_text, table, when
from runyard.engine.schedules import describe_recurrence, next_fire_time, upcoming
from runyard.engine.service_lock import ensure_running
from runyard.errors import NotFoundError, ScheduleNotFound
from runyard.store import ScheduleRecord, SqlStore
from runyard.store.records import ACTIVE, DISABLED

schedule_app = typer.Typer(help="List, inspect, disable and enable pipeline schedules.", no_args_is_help=True)
workspace_path: str | None = None


def _workspace() -> Workspace:
    return Workspace.get(workspace_path) if workspace_path else Workspace.from_config()


def _get(ws: Workspace, schedule_id: str) -> ScheduleRecord:
    try:
        return ws.store.get_schedule(schedule_id)
    except NotFoundError as exc:  # the store's message, plus where to find the ids
        raise ScheduleNotFound(f"{exc} List the schedules with `runyard schedule list --all`.") from None


def _next(record: ScheduleRecord) -> float | None:
    """When an Active schedule fires next: the scheduler's time, or (not yet seen by one) the computed one."""
    if record.status != ACTIVE:
        return None
    if record.next_fire_time is not None:
        return record.next_fire_time
    return next_fire_time(record, time.time())


def _target(record: ScheduleRecord) -> str:
    if record.pipeline_endpoint_id is not None:
        return f"endpoint {record.pipeline_endpoint_id}"
    return str(record.pipeline_id)


def as_json(record: ScheduleRecord) -> dict[str, Any]:
    """v1's Schedule fields (camelCase as in its REST answers) plus what the scheduler keeps."""
    return {
        "id": record.id,
        "name": record.name,
        "status": record.status,
        "description": record.description,
        "pipelineId": record.pipeline_id,
        "pipelineEndpointId": record.pipeline_endpoint_id,
        "experimentName": record.experiment_name,
        "recurrence": record.recurrence,
        "datastoreName": record.datastore_name,
        "pathOnDatastore": record.path_on_datastore,
        "pollingInterval": record.polling_interval,
        "dataPathParameterName": record.data_path_parameter_name,
        "continueOnStepFailure": record.continue_on_step_failure,
        "pipelineParameters": record.pipeline_parameters,
        "createdTime": record.created_time,
        "nextFireTime": _next(record),
        "lastFireTime": record.last_fire_time,
        "lastRunId": record.last_run_id,
        "lastError": record.data.get("lastError"),
        "watchError": record.data.get("watchError"),
    }


@schedule_app.command("list")
def list_schedules(
    all_: bool = typer.Option(False, "--all", "-a", help="Include disabled schedules."),
    pipeline_id: str | None = typer.Option(
        None, "--pipeline-id", help="Only schedules of this published pipeline."
    ),
    endpoint_id: str | None = typer.Option(
        None, "--pipeline-endpoint-id", help="Only schedules of this pipeline endpoint."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List schedules, newest first: what each runs, how often, and when it fires next."""
    ws = _workspace()
    records = ws.store.list_schedules(
        active_only=not all_, pipeline_id=pipeline_id, pipeline_endpoint_id=endpoint_id
    )
    if json_out:
        print_json([as_json(r) for r in records])
        return
    if not records:
        hint = "" if all_ else " Disabled ones are listed with --all."
        console.print(f"No schedules.{hint} Create one with Schedule.create(ws, ...) (docs/schedules.md).")
        return
    out = table("Schedule", "Name", "Status", "Pipeline", "Experiment", "When", "Next firing", "Last run")
    for r in records:
        status = status_text(r.status) if r.status != DISABLED else "[dim]Disabled[/]"
        error = " [red](failed)[/]" if (r.data.get("lastError") or {}).get("runId") == r.last_run_id else ""
        out.add_row(
            r.id,
            escape(r.name),
            status,
            _target(r),
            escape(r.experiment_name),
            escape(describe_recurrence(r)),
            when(_next(r)) or "-",
            (r.last_run_id or "-") + (error if r.last_run_id else ""),
        )
    console.print(out)


@schedule_app.command("show")
def show(schedule_id: str, json_out: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one schedule: its pipeline, recurrence or watch, parameters, next and last firing."""
    ws = _workspace()
    record = _get(ws, schedule_id)
    if json_out:
        print_json(as_json(record))
        return
    console.print(f"[bold]{escape(record.name)}[/]  {record.id}  {status_text(record.status)}")
    if record.description:
        console.print(escape(record.description), markup=True)
    console.print(
        f"Runs {escape(_target(record))} in experiment {escape(record.experiment_name)}", markup=True
    )
    console.print(f"When: {describe_recurrence(record)}", markup=False)
    if record.data_path_parameter_name:
        console.print(f"Changed path passed as parameter {record.data_path_parameter_name!r}", markup=False)
    if record.pipeline_parameters:
        params = ", ".join(f"{k}={v}" for k, v in record.pipeline_parameters.items())
        console.print(f"Parameters: {params}", markup=False)
    nxt = _next(record)
    console.print(f"Next firing: {when(nxt) or ('-' if record.status == ACTIVE else 'none (disabled)')}")
    console.print(f"Last firing: {when(record.last_fire_time) or 'never'}")
    if record.last_run_id:
        console.print(
            f"Last run: {record.last_run_id} (`runyard runs show {record.last_run_id}`)", markup=False
        )
    for key, label in (("lastError", "Last error"), ("watchError", "Watch error")):
        error = record.data.get(key)
        if isinstance(error, dict):
            console.print(
                f"[bold red]{label}[/] ({when(error.get('time'))}): {escape(str(error.get('message')))}",
                markup=True,
            )


def _set_status(schedule_id: str, status: str) -> None:
    ws = _workspace()
    _get(ws, schedule_id)  # a clear error for an unknown id, whatever the store says
    record = ws.store.set_schedule_status(schedule_id, status)
    if status == DISABLED:
        console.print(f"Schedule {record.name} ({record.id}) is disabled: it will not fire.", markup=False)
        return
    started = False
    if isinstance(ws.store, SqlStore):  # the workspace's own scheduler fires it; a server fires its own
        started = ensure_running(ws)
    console.print(
        f"Schedule {record.name} ({record.id}) is enabled; next firing {when(_next(record)) or '-'}."
        + (" Started the workspace's scheduler." if started else ""),
        markup=False,
    )


@schedule_app.command("disable")
def disable(schedule_id: str) -> None:
    """Stop a schedule from firing (runs it already started go on)."""
    _set_status(schedule_id, DISABLED)


@schedule_app.command("enable")
def enable(schedule_id: str) -> None:
    """Let a disabled schedule fire again; its next firing is computed from now (no catch-up burst)."""
    _set_status(schedule_id, ACTIVE)


def served_lines(ws: Workspace) -> list[str]:
    """What `runyard up` prints: each Active schedule and when it fires next."""
    lines = []
    for record, nxt in upcoming(ws):
        lines.append(
            f"schedule {record.name} ({record.id}): {describe_recurrence(record)}; next firing {when(nxt) or '-'}"
        )
    return lines
