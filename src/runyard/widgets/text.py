"""The RunDetails summary for a terminal or a log: one screen of plain text.

v1 scripts call `RunDetails(run).show()` outside a notebook too (in a script, under `runyard port`, in
CI). There is nothing to draw there, so show() prints this: status, duration, the studio link, the last
value of each metric, the steps with their status, and the tail of the selected run's log.
"""

from __future__ import annotations

from typing import Any

#: Log lines in the text summary (the widget shows more; `runyard runs logs` shows all).
TEXT_LOG_LINES = 15


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def metric_lines(metrics: list[dict[str, Any]]) -> list[str]:
    lines = []
    for m in metrics:
        if m["kind"] == "line":
            data = m["series"][0]["data"]
            lines.append(f"  {m['name']}: {_short(data[-1])} (last of {len(data)})")
        elif m["kind"] == "value":
            lines.append(f"  {m['name']}: {_short(m['value'])}")
        else:
            count = len(m["rows"]) + m.get("more_rows", 0)
            lines.append(f"  {m['name']}: table, {count} row(s) x {len(m['columns'])} column(s)")
    return lines


def summary(data: dict[str, Any], *, hint: str | None = None) -> str:
    """The text for a snapshot from snapshot.collect(); `hint` is a last line (e.g. how to get the widget)."""
    props = data["run_properties"]
    name = props["display_name"] or props["run_id"]
    lines = [
        f"Run {name} ({props['type']}, experiment {props['experiment']})",
        f"Status: {data['status']}   Duration: {props['duration']}",
        f"Studio: {data['workbench_run_details_uri']}",
    ]
    if props["error"]:
        lines.append(f"Error: {props['error']}")
    if data["run_metrics"]:
        lines += ["Metrics:", *metric_lines(data["run_metrics"])]
    if data["child_runs"]:
        label = "Steps:" if data["graph"] else "Child runs:"
        lines.append(label)
        for child in data["child_runs"]:
            lines.append(f"  {child['name']:<24} {child['status']:<12} {child['duration']}")
    logs = data["run_logs"]
    if logs["progress"]:
        lines.append(f"Progress: {logs['progress']}")
    if logs["text"]:
        whose = "" if logs["run_id"] == props["run_id"] else f" of {_child_name(data, logs['run_id'])}"
        reused = f", reused from run {logs['reused_from']}" if logs["reused_from"] else ""
        lines.append(f"Log{whose} ({logs['name']}{reused}, last lines):")
        lines += ["  " + line for line in logs["text"].splitlines()[-TEXT_LOG_LINES:]]
    if hint:
        lines.append(hint)
    return "\n".join(lines)


def _child_name(data: dict[str, Any], run_id: str) -> str:
    return next((c["name"] for c in data["child_runs"] if c["run_id"] == run_id), run_id)
