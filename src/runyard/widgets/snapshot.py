"""What the RunDetails widget shows, read from the store in one pass: the widget's whole state as JSON.

The same dict is the anywidget's `snapshot` trait, the text summary's input and the return value of
`RunDetails.get_widget_data()`. Its top-level keys are v1's (`status`, `workbench_run_details_uri`,
`run_id`, `run_properties`, `child_runs`, `children_metrics`, `run_metrics`, `run_logs`, `graph`,
`widget_settings`), so v1 code that reads them finds them; the values are runyard's shapes, below.
`logs_by_run` holds the log tail of the run and of each child, so the front-end switches logs on a click
without asking the kernel; `run_logs` is the selected (or default) one.

`change_marker` is the cheap question the poller asks every second (a few small queries, no metric rows,
no log bytes): only when it changes is the snapshot rebuilt and sent to the front-end.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TypedDict

from runyard.core.run_files import DRIVER_LOG
from runyard.core.run_values import PIPELINE_RUN_TYPE
from runyard.parallel.progress import PROGRESS_FILE, describe, read_progress
from runyard.pipeline.wait_output import parallel_steps
from runyard.status import TERMINAL_STATUSES
from runyard.store import MetricRow, RunRecord
from runyard.studio.graph_layout import layout
from runyard.studio.views import fmt_duration, run_duration, shown_status

if TYPE_CHECKING:
    from runyard.core.run import Run
    from runyard.core.workspace import Workspace

#: Lines of the selected run's log the widget shows, read from at most this many trailing bytes.
LOG_LINES = 80
LOG_BYTES = 64 * 1024
#: Children whose logs travel with every snapshot, so a click on one is answered by the browser alone
#: (no round trip to a kernel that may be busy); a child past these is read when selected.
MAX_LOGGED_CHILDREN = 50
#: Rows of a list or table metric sent to the front-end (the studio's Metrics tab has them all).
TABLE_ROWS = 200


class RunProperties(TypedDict):
    run_id: str
    display_name: str | None
    experiment: str
    type: str
    status: str  # the word on the badge: "Reused" for a step that took an earlier result
    start_time: float | None  # epoch seconds; the front-end ticks the duration of an active run itself
    end_time: float | None
    duration: str
    active: bool
    error: str | None
    tags: dict[str, Any]


class Metric(TypedDict, total=False):
    name: str
    kind: str  # "line" (a scalar series: a chart), "value" (logged once), "table" (lists, rows, tables)
    categories: list[Any]  # line: the x values (step, or 1..n)
    series: list[dict[str, Any]]  # line: [{"data": [y, ...]}], as v1's widget has it
    value: Any  # value
    columns: list[str]  # table
    rows: list[list[Any]]  # table
    more_rows: int  # table: rows left out


class ChildRun(TypedDict):
    run_id: str
    name: str
    type: str
    status: str
    duration: str
    reused_from: str | None


class Logs(TypedDict):
    run_id: str  # the run whose log this is (the selected step or child, else the run itself)
    name: str  # e.g. "azureml-logs/70_driver_log.txt"; "" when the run has no log yet
    text: str  # the last LOG_LINES lines
    reused_from: str | None  # a reused step's log is the one of the run it reused (this id)
    progress: str | None  # a ParallelRunStep's "120/200 mini-batches, …" line (parallel/progress.describe)
    progress_fraction: float | None


def is_active(record: RunRecord) -> bool:
    return record.status not in TERMINAL_STATUSES


def _error_text(record: RunRecord) -> str | None:
    error = record.data.get("error")
    if isinstance(error, dict):
        inner = error.get("error")
        found = inner if isinstance(inner, dict) else error
        return str(found.get("message") or found.get("code") or error)
    return str(error) if error else None


def run_properties(record: RunRecord) -> RunProperties:
    return RunProperties(
        run_id=record.run_id,
        display_name=record.display_name,
        experiment=record.experiment_name,
        type=record.run_type,
        status=shown_status(record),
        start_time=record.start_time,
        end_time=record.end_time,
        duration=fmt_duration(run_duration(record)),
        active=is_active(record),
        error=_error_text(record),
        tags=dict(record.data.get("tags") or {}),
    )


def _cell(row: MetricRow) -> Any:
    return (
        row.payload
        if row.payload is not None and row.kind == "list"
        else (row.value if row.value is not None else row.text)
    )


def metrics_view(rows: list[MetricRow]) -> list[Metric]:
    """Scalar series of two or more numbers become lines, single values stay values, and lists, rows and
    tables become tables (v1's widget drew them as charts or grids the same way)."""
    grouped: dict[str, list[MetricRow]] = {}
    for row in rows:
        grouped.setdefault(row.name, []).append(row)
    out: list[Metric] = []
    for name, items in grouped.items():
        kind = items[-1].kind
        if kind == "scalar":
            numbers = [i for i in items if i.value is not None and i.text is None]
            if len(numbers) >= 2 and len(numbers) == len(items):
                stepped = all(i.step is not None for i in items)
                x = [i.step for i in items] if stepped else list(range(1, len(items) + 1))
                out.append(
                    Metric(name=name, kind="line", categories=x, series=[{"data": [i.value for i in items]}])
                )
            else:
                out.append(Metric(name=name, kind="value", value=_cell(items[-1])))
        elif kind == "row":
            columns = list(dict.fromkeys(k for i in items for k in (i.payload or {})))
            table = [[(i.payload or {}).get(c) for c in columns] for i in items]
            out.append(_table(name, columns, table))
        elif kind == "list":
            out.append(_table(name, [name], [[_cell(i)] for i in items]))
        else:  # images: the studio shows them; the widget names them
            out.append(Metric(name=name, kind="value", value=f"{len(items)} image(s): see the studio"))
    return out


def _table(name: str, columns: list[str], rows: list[list[Any]]) -> Metric:
    return Metric(
        name=name,
        kind="table",
        columns=columns,
        rows=rows[-TABLE_ROWS:],
        more_rows=max(0, len(rows) - TABLE_ROWS),
    )


def graph_view(record: RunRecord, steps: dict[str, RunRecord], progress: dict[str, str]) -> dict[str, Any]:
    """The studio's graph layout (studio/graph_layout.py) with each node's status word and step run id."""
    graph = record.data.get("graph") or {"steps": []}
    if not graph.get("steps"):
        return {}
    drawn = layout(graph)
    nodes = []
    for n in drawn.nodes:
        step = steps.get(n.name)
        word = shown_status(step) if step else "NotStarted"
        detail = progress.get(n.name) or (
            fmt_duration(run_duration(step)) if step is not None and step.start_time else ""
        )
        nodes.append(
            {
                "name": n.name,
                "x": n.x,
                "y": n.y,
                "w": n.w,
                "h": n.h,
                "status": word,
                "detail": detail,
                "run_id": step.run_id if step else None,
            }
        )
    edges = [
        {"path": e.path, "label": e.label, "label_x": e.label_x, "label_y": e.label_y} for e in drawn.edges
    ]
    return {"width": drawn.width, "height": drawn.height, "nodes": nodes, "edges": edges}


def child_view(child: RunRecord) -> ChildRun:
    return ChildRun(
        run_id=child.run_id,
        name=child.display_name or child.run_id,
        type=child.run_type,
        status=shown_status(child),
        duration=fmt_duration(run_duration(child)),
        reused_from=child.data.get("reusedFrom"),
    )


def default_selection(record: RunRecord, children: list[RunRecord]) -> str:
    """Whose log to show when nobody clicked: a running child, else the last failed one, else the last
    one that started; the run itself when it has no children."""
    if not children:
        return record.run_id
    for wanted in (lambda c: is_active(c) and c.start_time, lambda c: c.status == "Failed"):
        picked = [c for c in children if wanted(c)]
        if picked:
            return max(picked, key=lambda c: c.start_time or 0).run_id
    started = [c for c in children if c.start_time]
    return max(started, key=lambda c: c.start_time or 0).run_id if started else record.run_id


def log_size(ws: Workspace, run_id: str) -> int:
    rel = f"runs/{run_id}/{DRIVER_LOG}"
    return ws.artifacts.size(rel) if ws.artifacts.exists(rel) else -1


def log_tail(run: Run, lines: int = LOG_LINES) -> str:
    size = log_size(run.workspace, run.id)
    if size < 0:
        return ""
    data = run.read_log(DRIVER_LOG, max(0, size - LOG_BYTES))
    text = data.decode("utf-8", errors="replace")
    tail = text.splitlines()[-lines:]
    return "\n".join(tail)


def _progress_bytes(ws: Workspace, run_id: str) -> bytes:
    """A ParallelRunStep driver's progress file (small; its `updated` time moves on every write)."""
    rel = f"runs/{run_id}/{PROGRESS_FILE}"
    return ws.artifacts.read_bytes(rel) if ws.artifacts.exists(rel) else b""


def logs_of(run: Run, record: RunRecord) -> Logs:
    """A run's log tail and, for a ParallelRunStep step, its progress line. A reused step ran nothing:
    its log is the one of the run it reused."""
    from runyard.core.run import Run as RunClass

    snap = read_progress(run)
    log_run, reused_from = run, record.data.get("reusedFrom")
    if reused_from and log_size(run.workspace, run.id) < 0:
        log_run = RunClass.get(run.workspace, reused_from)
    fraction = None
    if snap is not None and snap.mini_batches.total:
        mb = snap.mini_batches
        fraction = (mb.completed + mb.failed) / mb.total
    return Logs(
        run_id=run.id,
        name=DRIVER_LOG if log_size(run.workspace, log_run.id) >= 0 else "",
        text=log_tail(log_run),
        reused_from=reused_from,
        progress=describe(snap) if snap is not None else None,
        progress_fraction=fraction,
    )


def change_marker(run: Run, selected: str | None) -> tuple[Any, ...]:
    """What changes when anything the widget shows changes: statuses, metric row count, log sizes."""
    ws = run.workspace
    record = ws.store.get_run(run.id)
    children = ws.store.list_descendants(run.id, recursive=False)
    shown = selected or default_selection(record, children)
    return (
        record.status,
        record.end_time,
        tuple((c.run_id, c.status, c.start_time) for c in children),
        ws.store.count_metric_rows(run.id),
        shown,
        tuple(log_size(ws, r.run_id) for r in [record, *children[:MAX_LOGGED_CHILDREN]]),
        tuple(_progress_bytes(ws, r.run_id) for r in [record, *children] if is_active(r)),
    )


def collect(
    run: Run, selected: str | None = None, widget_settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The snapshot: everything the widget shows, as JSON-ready values (see the module docstring)."""
    from runyard.core.run import Run as RunClass

    ws = run.workspace
    record = ws.store.get_run(run.id)
    children = ws.store.list_descendants(run.id, recursive=False)
    by_name = {c.display_name or c.run_id: c for c in children}
    parallel = parallel_steps(record.data.get("graph")) if record.run_type == PIPELINE_RUN_TYPE else set()
    node_progress: dict[str, str] = {}
    for name in sorted(parallel):
        step = by_name.get(name)
        if step is not None and not step.data.get("reusedFrom"):
            snap = read_progress(RunClass.get(ws, step.run_id))
            if snap is not None:
                mb = snap.mini_batches
                node_progress[name] = f"{mb.completed + mb.failed:,}/{mb.total:,}"
    ids = {record.run_id, *(c.run_id for c in children)}
    shown = selected if selected in ids else default_selection(record, children)
    selectable = [record, *children[:MAX_LOGGED_CHILDREN]]
    logs = {
        r.run_id: logs_of(run if r.run_id == run.id else RunClass.get(ws, r.run_id), r) for r in selectable
    }
    if shown not in logs:
        shown_record = next(c for c in children if c.run_id == shown)
        logs[shown] = logs_of(RunClass.get(ws, shown), shown_record)
    summaries = ws.store.get_metric_summaries([c.run_id for c in children]) if children else []
    children_metrics: dict[str, dict[str, Any]] = {}
    for s in summaries:
        children_metrics.setdefault(s.run_id, {})[s.name] = s.last
    properties = run_properties(record)
    return {
        "status": properties["status"],
        "workbench_run_details_uri": run.get_portal_url(),
        "run_id": record.run_id,
        "run_properties": properties,
        "child_runs": [child_view(c) for c in sorted(children, key=lambda c: (c.created_time, c.number))],
        "children_metrics": children_metrics,
        "run_metrics": metrics_view(ws.store.get_metric_rows([record.run_id])),
        "run_logs": logs[shown],
        "logs_by_run": logs,
        "graph": graph_view(record, by_name, node_progress) if record.run_type == PIPELINE_RUN_TYPE else {},
        "widget_settings": dict(widget_settings or {}),
        "updated": time.time(),
    }
