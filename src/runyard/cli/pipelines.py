"""`runyard pipeline ...` and `runyard up`."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from runyard import Workspace
from runyard.cli.render import console, duration, print_json, status_text, table, when
from runyard.core.run_values import PIPELINE_RUN_TYPE
from runyard.engine.graph_order import dependencies, topological_order
from runyard.engine.service import ensure_running
from runyard.errors import ConflictError, InvalidInputError
from runyard.parallel.progress import ProgressSnapshot, read_progress
from runyard.pipeline import PipelineRun
from runyard.pipeline.data import parameter_from_text
from runyard.pipeline.wait_output import parallel_steps, short
from runyard.status import TERMINAL_STATUSES, RunStatus

pipeline_app = typer.Typer(help="Pipeline runs: steps, reuse, graph, cancel, rerun.", no_args_is_help=True)
workspace_path: str | None = None


def _workspace() -> Workspace:
    return Workspace.get(workspace_path) if workspace_path else Workspace.from_config()


def _pipeline_run(run_id: str) -> PipelineRun:
    run = PipelineRun.get(_workspace(), run_id)
    _keep_scheduled([run._record.status], run.workspace)
    return run


def _keep_scheduled(statuses: list[str], ws: Workspace) -> None:
    """Looking at an unfinished pipeline also makes sure a scheduler owns it: if the last one was killed,
    a new one recovers its runs, so nothing shows Running forever."""
    if any(s not in TERMINAL_STATUSES for s in statuses):
        ensure_running(ws)


def _size(n: int | None) -> str:
    if n is None:
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return ""


def steps_table(run: PipelineRun) -> Table:
    """One row per step; a pipeline with ParallelRunStep steps also gets their progress column."""
    parallel = parallel_steps(run.get_graph())
    columns = ["Step", "Status", "Reuse", "Duration", "Outputs", "Step run"]
    if parallel:
        columns.insert(2, "Progress")
    out = table(*columns, title=f"Pipeline run {run.id}")
    for step in run._step_runs():
        rec = step._record
        reused = rec.data.get("reusedFrom")
        reuse = (
            f"reused {reused}"
            if reused
            else ("ran" if rec.status in TERMINAL_STATUSES and rec.data.get("reuse") else "")
        )
        outputs = ", ".join(
            f"{name}: {o.get('files', 0)} files, {_size(o.get('size'))}"
            for name, o in rec.data.get("outputs", {}).items()
        )
        cells: list[str | Table] = [
            step.name or "",
            status_text(rec.status),
            reuse,
            duration(rec.start_time, rec.end_time) if not reused else "",
            outputs,
            step.id,
        ]
        if parallel:
            snap = read_progress(step) if step.name in parallel and not reused else None
            cells.insert(2, _progress_cell(snap) if snap else "")
        out.add_row(*cells)
    return out


def _progress_cell(snap: ProgressSnapshot) -> Table:
    """A Rich bar of mini-batches done (completed or failed) over the total, above the one-line summary."""
    counts = snap.mini_batches
    cell = Table.grid()
    cell.add_row(
        ProgressBar(total=max(counts.total, 1), completed=counts.completed + counts.failed, width=24)
    )
    cell.add_row(Text(short(snap), no_wrap=True))
    return cell


def watch(run: PipelineRun) -> None:
    """Redraw the steps table until the pipeline ends."""
    with Live(steps_table(run), console=console, refresh_per_second=4) as live:
        while run._refresh().status not in TERMINAL_STATUSES:
            time.sleep(0.25)
            live.update(steps_table(run))
        live.update(steps_table(run))
    if not console.is_terminal:
        console.line()  # a non-terminal Live leaves the cursor after the table's last border
    console.print(
        f"Pipeline {run.id}: {status_text(run._record.status)}. Why each step ran: `runyard pipeline why {run.id}`"
    )


@pipeline_app.command("list")
def list_pipelines(
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    limit: int = typer.Option(50, "--limit", "-n", help="Show at most this many."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Pipeline runs, newest first."""
    ws = _workspace()
    records = ws.store.list_runs(experiment_name=experiment, run_type=PIPELINE_RUN_TYPE, limit=limit)
    _keep_scheduled([r.status for r in records], ws)
    rows = []
    for r in records:
        steps = ws.store.list_descendants(r.run_id, recursive=False)
        rows.append(
            {
                "runId": r.run_id,
                "experiment": r.experiment_name,
                "status": r.status,
                "steps": len(steps),
                "completed": sum(s.status == "Completed" for s in steps),
                "reused": sum(bool(s.data.get("reusedFrom")) for s in steps),
                "startTime": r.start_time,
                "endTime": r.end_time,
                "parameters": r.data.get("parameters", {}),
            }
        )
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print("No pipeline runs yet. Submit one with Pipeline(ws, steps).submit('experiment').")
        return
    out = table(
        "Pipeline run", "Experiment", "Status", "Steps done", "Reused", "Started", "Duration", "Parameters"
    )
    for row, r in zip(rows, records, strict=True):
        params = escape(", ".join(f"{k}={v}" for k, v in row["parameters"].items()))
        out.add_row(
            row["runId"],
            row["experiment"],
            status_text(row["status"]),
            f"{row['completed']}/{row['steps']}",
            str(row["reused"]),
            when(r.start_time),
            duration(r.start_time, r.end_time),
            params,
        )
    console.print(out)


@pipeline_app.command("show")
def show(
    run_id: str,
    watch_: bool = typer.Option(False, "--watch", help="Keep the table live until the pipeline ends."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Steps of a pipeline run: status, reuse, duration, outputs (path, size, file count)."""
    run = _pipeline_run(run_id)
    if as_json:
        print_json(
            {
                "runId": run.id,
                "status": run._record.status,
                "parameters": run.get_parameters(),
                "steps": [
                    {
                        "name": s.name,
                        "runId": s.id,
                        "status": s._record.status,
                        "reusedFrom": s._record.data.get("reusedFrom"),
                        "outputs": s._record.data.get("outputs", {}),
                        "error": s._record.data.get("error"),
                    }
                    for s in run._step_runs()
                ],
            }
        )
        return
    if watch_:
        watch(run)
        return
    console.print(steps_table(run))
    params = run.get_parameters()
    if params:
        console.print("Parameters: " + escape(", ".join(f"{k}={v!r}" for k, v in params.items())))
    for step in run._step_runs():
        for name, out in step._record.data.get("outputs", {}).items():
            console.print(f"  {step.name}.{name} → {escape(out['path'])}")
        error = step._record.data.get("error")
        if error and step._record.status == "Failed":
            console.print(f"[bold red]{step.name} failed:[/] {escape(error.get('message', ''))}", markup=True)
            console.print(f"  Log: `runyard logs {step.id}`")


@pipeline_app.command("graph")
def graph(
    run_id: str,
    fmt: str = typer.Option("text", "--format", help="text, json (the run's graph) or dot (Graphviz)."),
) -> None:
    """The steps and the data between them."""
    run = _pipeline_run(run_id)
    g = run.get_graph()
    statuses = {s.name: s._record.status for s in run._step_runs()}
    if fmt == "json":
        print_json(g)
        return
    if fmt == "dot":
        print("digraph pipeline {\n  rankdir=LR;")
        for step in g["steps"]:
            print(f'  "{step["name"]}" [label="{step["name"]}\\n{statuses.get(step["name"], "")}"];')
            for i in step["inputs"]:
                print(f'  "{i["step"]}" -> "{step["name"]}" [label="{i["output"]}"];')
            for after in step["run_after"]:
                print(f'  "{after}" -> "{step["name"]}" [style=dashed];')
        print("}")
        return
    if fmt != "text":
        raise InvalidInputError(f"--format {fmt!r} is not one of text, json, dot.")
    deps = dependencies(g)
    by_name = {s["name"]: s for s in g["steps"]}
    for name in topological_order(g):
        step = by_name[name]
        feeds = [f"{i['step']}.{i['output']}" for i in step["inputs"]]
        after = [a for a in step["run_after"] if a not in {i["step"] for i in step["inputs"]}]
        needs = ", ".join(feeds + [f"{a} (run_after)" for a in after]) or "-"
        outs = ", ".join(o["name"] for o in step["outputs"]) or "-"
        console.print(f"{name:<20} {status_text(statuses.get(name, '')):<12} ← {needs}   → {outs}")
    if not deps:
        console.print("(empty pipeline)")


@pipeline_app.command("why")
def why(run_id: str, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """For every step: reused, or why it ran (what changed since the step's last run), and for a step that
    failed, its error's first line (the whole error: `runyard pipeline show`)."""
    run = _pipeline_run(run_id)
    report = run.get_reuse_report()
    if as_json:
        print_json(report)
        return
    failures = {step.id: failure_line(step._record.status, step._record.data) for step in run._step_runs()}
    for item in report:
        if item["reused"]:
            console.print(f"[green]{item['step']}[/]: reused {item['reusedFrom']}")
            continue
        console.print(f"[bold]{item['step']}[/] ran: {escape(item['reason'])}")
        for line in item["details"][1:] if len(item["details"]) > 1 else []:
            console.print(f"    - {escape(line)}")
        if failures.get(item["runId"]):
            console.print(f"    [red]failed:[/] {escape(failures[item['runId']] or '')}")


def failure_line(status: str, data: dict[str, Any]) -> str | None:
    """A failed step's error, first line: what a summary row shows for it instead of why it ran (a step
    whose environment could not be built says so, not "no earlier run of step 'x'")."""
    if status != RunStatus.FAILED:
        return None
    message = str((data.get("error") or {}).get("message") or "").strip()
    return message.splitlines()[0] if message else "failed (no error message was recorded)"


@pipeline_app.command("cancel")
def cancel(run_id: str) -> None:
    """Cancel a pipeline run: running steps are stopped, steps not started are canceled."""
    run = _pipeline_run(run_id)
    run.cancel()
    console.print(f"Cancel requested for pipeline {run.id}.")


@pipeline_app.command("rerun")
def rerun(
    run_id: str,
    set_: list[str] = typer.Option([], "--set", help="New parameter value: --set name=value (repeatable)."),
    experiment: str | None = typer.Option(None, "--experiment", "-e", help="Experiment for the new run."),
    detach: bool = typer.Option(
        False, "--detach", "-d", help="Return at once instead of showing live status."
    ),
) -> None:
    """Submit a pipeline run again from its snapshot, optionally with new parameter values."""
    old = _pipeline_run(run_id)
    defaults = old.get_parameters()
    values: dict[str, Any] = {}
    for item in set_:
        name, sep, raw = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--set {item!r} is not name=value.")
        if name not in defaults:
            raise InvalidInputError(
                f"Pipeline run {run_id} has no parameter {name!r}; it has {sorted(defaults) or 'none'}."
            )
        values[name] = parameter_from_text(raw, defaults[name])
    new = old.clone().submit(
        experiment or old.experiment.name, pipeline_parameters={**defaults, **values}, show_output=False
    )
    console.print(f"Submitted pipeline run [bold]{new.id}[/] (from {old.id}).")
    if not detach:
        watch(new)
        if new._record.status != "Completed":
            raise typer.Exit(1)


def up(
    idle_seconds: float = typer.Option(
        0, "--idle-seconds", help="Exit after this long without work (0: never)."
    ),
    port: int = typer.Option(8765, "--port", help="Port of the studio on 127.0.0.1."),
    studio: bool = typer.Option(True, "--studio/--no-studio", help="Also serve the studio in the browser."),
) -> None:
    """Run the workspace's scheduler in the foreground and serve the studio on http://127.0.0.1:8765."""
    import threading

    from runyard.cli.schedules import served_lines
    from runyard.cli.server import check_port, serve
    from runyard.engine.service import SchedulerService

    check_port(port)  # before anything starts, so a bad port is one line and nothing else
    ws = _workspace()
    for line in served_lines(ws):  # the schedules this scheduler fires, and when each fires next
        console.print(line, markup=False)
    # `runyard up` is the workspace owner's own scheduler and studio on 127.0.0.1 without auth: this
    # machine is compute, and pipelines its studio submits ({"auth": "off"}) may run (docs/security.md).
    service = SchedulerService(
        ws,
        idle_seconds=idle_seconds or float("inf"),
        echo=lambda line: console.print(line, markup=False),
        accept_unauthenticated=studio,
    )
    if not studio:
        service.serve()
        return

    def schedule() -> None:
        try:
            service.serve()
        except ConflictError as exc:  # a background scheduler already does the work; the studio still serves
            console.print(str(exc), markup=False)

    worker = threading.Thread(target=schedule, name="runyard-scheduler", daemon=True)
    worker.start()
    try:  # with --idle-seconds the whole command ends when the scheduler goes idle
        serve(
            ws,
            "127.0.0.1",
            port,
            auth=False,
            until=(lambda: not worker.is_alive()) if idle_seconds else None,
            host_is_compute=True,
        )
    finally:
        service.stop()
        worker.join(timeout=10)
