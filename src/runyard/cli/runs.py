"""`runyard submit`, `runyard runs ...`, `runyard logs`, `runyard metrics`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from runyard import Experiment, Run, ScriptRunConfig, Workspace
from runyard.cli.render import console, duration, err_console, number, print_json, status_text, table, when
from runyard.core.run_files import DRIVER_LOG
from runyard.core.streaming import follow_log
from runyard.environments.diagnosis import diagnosis_rows
from runyard.environments.display import environment_rows
from runyard.errors import InvalidInputError, NotFoundError
from runyard.parallel.progress import ProgressSnapshot, describe, read_progress
from runyard.status import RunStatus

runs_app = typer.Typer(help="List, inspect and cancel runs.", no_args_is_help=True)
workspace_path: str | None = None


def _workspace() -> Workspace:
    return Workspace.get(workspace_path) if workspace_path else Workspace.from_config()


def _run(run_id: str) -> Run:
    return _workspace().get_run(run_id)


def submit(
    ctx: typer.Context,
    script: Path = typer.Argument(..., help="The script to run; arguments for it go after `--`."),
    experiment: str = typer.Option("default", "--experiment", "-e", help="Experiment to record the run in."),
    source_dir: Path | None = typer.Option(
        None, "--source-dir", "-s", help="Folder copied for the run (default: the script's folder)."
    ),
    tag: list[str] = typer.Option([], "--tag", help="Tag the run: --tag key=value (repeatable)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Return at once instead of streaming the log."),
) -> None:
    """Run a script as a tracked run: `runyard submit train.py -- --lr 0.1`."""
    if workspace_path:
        ws = Workspace.get(workspace_path)
    else:
        ws, created = Workspace.find_or_create()
        if created:
            err_console.print(f"Created workspace {ws.path}")
    source = (source_dir or script.parent).resolve()
    script_abs = script.resolve()
    if not script_abs.is_relative_to(source):
        raise InvalidInputError(f"{script} is not inside the source directory {source}; pass --source-dir.")
    tags = {}
    for item in tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--tag {item!r} is not key=value.")
        tags[key] = value
    config = ScriptRunConfig(str(source), str(script_abs.relative_to(source)), arguments=list(ctx.args))
    run = Experiment(ws, experiment).submit(config, tags=tags or None)
    if detach:
        console.print(f"Submitted run [bold]{run.id}[/] (experiment {experiment}).")
        console.print(
            f"Follow it with `runyard logs {run.id} -f`; details with `runyard runs show {run.id}`."
        )
        return
    details = run.wait_for_completion(show_output=True, raise_on_error=False)
    console.print(f"Metrics: `runyard metrics {run.id}`   Details: `runyard runs show {run.id}`")
    if details["status"] != RunStatus.COMPLETED:
        message = details.get("error", {}).get("message", details["status"]).splitlines()[0]
        err_console.print(f"Run {run.id} ended {status_text(details['status'])}: {message}")
        raise typer.Exit(1)


submit.context_settings = {"allow_extra_args": True, "ignore_unknown_options": True}  # type: ignore[attr-defined]


@runs_app.command("list")
def list_runs(
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    status: list[str] = typer.Option([], "--status", help="Only runs with this status (repeatable)."),
    limit: int = typer.Option(50, "--limit", "-n", help="Show at most this many runs."),
    children: bool = typer.Option(False, "--children", help="Include child runs."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List runs, newest first."""
    valid = {s.value for s in RunStatus}
    for s in status:
        if s not in valid:
            raise InvalidInputError(f"Unknown status {s!r}; use one of {', '.join(sorted(valid))}.")
    ws = _workspace()
    if experiment is not None:
        ws.store.get_experiment(experiment)  # ExperimentNotFound with a hint, instead of an empty table
    records = ws.store.list_runs(
        experiment_name=experiment, status=status or None, top_level_only=not children, limit=limit
    )
    if as_json:
        print_json(
            [
                {
                    "runId": r.run_id,
                    "experiment": r.experiment_name,
                    "status": r.status,
                    "type": r.run_type,
                    "number": r.number,
                    "parentId": r.parent_id,
                    "createdTime": r.created_time,
                    "startTime": r.start_time,
                    "endTime": r.end_time,
                    "target": r.target,
                }
                for r in records
            ]
        )
        return
    if not records:
        console.print("No runs yet. Start one with `runyard submit train.py`.")
        return
    out = table("Run", "Experiment", "#", "Status", "Started", "Duration", "Target")
    for r in records:
        out.add_row(
            r.run_id,
            r.experiment_name,
            str(r.number),
            status_text(r.status),
            when(r.start_time),
            duration(r.start_time, r.end_time),
            r.target,
        )
    console.print(out)


@runs_app.command("show")
def show(run_id: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show one run: status, times, error, tags, metrics summary and files."""
    run = _run(run_id)
    details = run.get_details()
    details["tags"] = run.get_tags()
    details["experiment"] = run.experiment.name
    details["parentRunId"] = run._record.parent_id
    details["files"] = run.get_file_names()
    summaries = run.workspace.store.get_metric_summaries([run.id])
    if as_json:
        details["metrics"] = run.get_metrics()
        progress = read_progress(run)
        if progress is not None:
            details["parallelProgress"] = progress.model_dump(mode="json")
        print_json(details)
        return
    record = run._record
    console.print(f"[bold]{run.id}[/]  {status_text(details['status'])}")
    console.print(
        f"Experiment {run.experiment.name}  •  run #{record.number}  •  type {record.run_type}  •  "
        f"target {record.target}"
    )
    console.print(
        f"Started {when(record.start_time) or '-'}  •  duration {duration(record.start_time, record.end_time) or '-'}"
    )
    if record.parent_id:
        console.print(f"Parent {record.parent_id}")
    if "error" in details:
        console.print(f"[bold red]Error:[/] {escape(details['error'].get('message', ''))}", markup=True)
        diagnosis = details["error"].get("diagnosis")
        if isinstance(diagnosis, dict):
            rows = diagnosis_rows(diagnosis)
            console.print(f"[bold]Why it failed:[/] {rows[0][1]}", markup=True)
            for label, value in rows[1:]:
                console.print(f"  {label}: {value}", markup=False, highlight=False)
    progress = read_progress(run)
    if progress is not None:
        _parallel_summary(progress)
    environment = environment_rows(record.data.get("environmentUsed"))
    if environment:
        console.print("[bold]Environment:[/]", markup=True)
        for label, value in environment:
            console.print(f"  {label}: {value}", markup=False, highlight=False)
    if details["tags"]:
        console.print("Tags: " + ", ".join(f"{k}={v}" for k, v in details["tags"].items()))
    if details["properties"]:
        console.print("Properties: " + ", ".join(f"{k}={v}" for k, v in details["properties"].items()))
    if summaries:
        out = table("Metric", "Count", "Last", "Min", "Max", title="Metrics")
        for s in summaries:
            out.add_row(s.name, str(s.count), number(s.last), number(s.min), number(s.max))
        console.print(out)
    console.print("Files:" if details["files"] else "Files: none yet")
    for name in details["files"]:
        console.print(f"  {name}")
    console.print(f"Logs: `runyard logs {run.id}`   Studio: {run.get_portal_url()}")


SHOWN_FAILURES = 10


def _parallel_summary(snap: ProgressSnapshot) -> None:
    """A ParallelRunStep's progress line and its first failed mini-batches with their traceback files."""
    console.print(f"[bold]Parallel run:[/] {escape(describe(snap))}", markup=True)
    if not snap.failures:
        return
    out = table("Mini-batch", "Input", "Error", "Traceback", title="Failed mini-batches")
    for failure in snap.failures[:SHOWN_FAILURES]:
        first = (failure.message.strip().splitlines() or [""])[0]
        out.add_row(str(failure.mini_batch), escape(failure.input), escape(first), escape(failure.log))
    console.print(out)
    more = max(len(snap.failures), snap.mini_batches.failed) - SHOWN_FAILURES
    if more > 0:
        console.print(f"… and {more:,} more failed mini-batches: logs/user/error.txt lists them all.")


@runs_app.command("cancel")
def cancel(run_id: str) -> None:
    """Stop a run: every process it started gets SIGTERM, then SIGKILL after a grace period."""
    run = _run(run_id)
    run.cancel()
    console.print(f"Cancel requested for {run.id}; status now {status_text(run.get_status())}.")


def logs(
    run_id: str,
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the run ends."),
    file: str = typer.Option("70_driver_log.txt", "--file", help="Log file name or path inside the run."),
) -> None:
    """Print a run's log (the driver log by default: the script's stdout and stderr)."""
    run = _run(run_id)
    names = run.get_file_names()
    matches = [n for n in names if n == file or n.rsplit("/", 1)[-1] == file]
    if not matches:
        if (
            file.endswith("70_driver_log.txt")
            and not follow
            and run.get_status()
            in (
                RunStatus.QUEUED,
                RunStatus.NOT_STARTED,
                RunStatus.PREPARING,
            )
        ):
            console.print(f"Run {run.id} is {run.get_status()}; no output yet. Use -f to wait for it.")
            return
        if not follow:
            logs_ = [n for n in names if n.startswith(("azureml-logs/", "logs/"))]
            raise NotFoundError(
                f"Run {run.id} has no log file {file!r}. Its logs: {', '.join(logs_) or 'none yet'}."
            )
        matches = [DRIVER_LOG if file == "70_driver_log.txt" else file]
    if follow:
        follow_log(run, sys.stdout, matches[0])
        return
    sys.stdout.write(run._decode(run.read_log(matches[0])))
    sys.stdout.flush()


def metrics(run_id: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print a run's metrics: a summary per series, and tables and lists as logged."""
    run = _run(run_id)
    values = run.get_metrics()
    if as_json:
        print_json(values)
        return
    if not values:
        console.print(f"Run {run.id} has no metrics yet.")
        return
    summaries = {s.name: s for s in run.workspace.store.get_metric_summaries([run.id])}
    out = table("Metric", "Count", "Last", "Min", "Max", "Values")
    for name, value in values.items():
        s = summaries.get(name)
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        if s:
            out.add_row(name, str(s.count), number(s.last), number(s.min), number(s.max), shown)
        else:
            out.add_row(name, "", "", "", "", shown)
    console.print(out)
