"""What the templates show, worked out in Python so templates stay plain markup.

Everything here reads records through the store and turns them into display values: times,
durations, the status word a person expects ("Reused" for a step that reused a result), the file
tree of a run's folder, and which metrics are charts and which are single values or tables.
"""

from __future__ import annotations

import posixpath
import time
from dataclasses import dataclass, field
from typing import Any

from runyard.core.run_files import DRIVER_LOG
from runyard.store import ArtifactStore, MetricRow, RunRecord, SqlStore

TEXT_SUFFIXES = (".txt", ".log", ".json", ".py", ".yaml", ".yml", ".csv", ".md", ".cfg", ".ini", ".toml")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")  # images a browser shows but cannot run


def fmt_time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def run_duration(run: RunRecord) -> float | None:
    if run.start_time is None:
        return None
    return (run.end_time or time.time()) - run.start_time


def shown_status(run: RunRecord) -> str:
    """The word on a badge: a completed step that took an earlier result is "Reused"."""
    if run.data.get("reusedFrom"):
        return "Reused"
    return run.status


def fmt_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


@dataclass
class FileEntry:
    path: str
    name: str
    depth: int
    is_dir: bool
    size: int | None = None


def file_tree(artifacts: ArtifactStore, run_id: str) -> list[FileEntry]:
    """The run's folder as an indented list: folders first at each level, then files."""
    prefix = f"runs/{run_id}/"
    paths = artifacts.list(f"runs/{run_id}")  # relative to the run's folder
    entries: list[FileEntry] = []
    seen: set[str] = set()
    for path in sorted(paths, key=lambda p: (p.split("/")[:-1], p.count("/") == 0, p)):
        parts = path.split("/")
        for depth in range(len(parts) - 1):
            folder = "/".join(parts[: depth + 1])
            if folder not in seen:
                seen.add(folder)
                entries.append(FileEntry(folder, parts[depth], depth, True))
        try:
            size: int | None = artifacts.size(prefix + path)
        except OSError:
            size = None
        entries.append(FileEntry(path, parts[-1], len(parts) - 1, False, size))
    return entries


def default_log(paths: list[str]) -> str | None:
    """The file a person looks at first: the driver log, else any log, else nothing."""
    if DRIVER_LOG in paths:
        return DRIVER_LOG
    logs = [p for p in paths if p.endswith((".txt", ".log"))]
    return logs[0] if logs else None


def file_kind(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith(RASTER_SUFFIXES):  # SVG can carry script: it downloads instead
        return "image"
    if lowered.endswith(TEXT_SUFFIXES) or "." not in posixpath.basename(lowered):
        return "text"
    return "binary"


def fmt_size(size: int | None) -> str:
    if size is None:
        return ""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


@dataclass
class MetricView:
    charts: list[str] = field(default_factory=list)  # scalar series with more than one value
    values: list[tuple[str, Any]] = field(default_factory=list)  # logged once
    tables: list[tuple[str, list[str], list[list[Any]]]] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)  # (name, path in the run's folder)


def metric_view(store: SqlStore, run_id: str) -> MetricView:
    view = MetricView()
    for summary in store.get_metric_summaries([run_id]):
        if summary.count > 1:
            view.charts.append(summary.name)
        else:
            view.values.append((summary.name, summary.last))
    rows = store.get_metric_rows([run_id], kinds=("list", "row", "image"))
    grouped: dict[str, list[MetricRow]] = {}
    for row in rows:
        grouped.setdefault(row.name, []).append(row)
    for name, items in grouped.items():
        kind = items[0].kind
        if kind == "image":
            for item in items:
                payload = item.payload or {}
                view.images.append((name, str(payload.get("path", item.text or ""))))
        elif kind == "row":
            columns = list(dict.fromkeys(k for item in items for k in (item.payload or {})))
            view.tables.append(
                (name, columns, [[(item.payload or {}).get(c) for c in columns] for item in items])
            )
        else:  # list: one column of values
            view.tables.append(
                (name, [name], [[item.value if item.value is not None else item.text] for item in items])
            )
    return view
