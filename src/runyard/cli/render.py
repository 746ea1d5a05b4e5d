"""One place that turns results into terminal output: Rich tables on a terminal, JSON with --json."""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table


def _width() -> int | None:
    """Terminal width on a terminal; 160 columns when piped (Rich's default 80 folds run ids)."""
    return None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160


console = Console(highlight=False, width=_width())
err_console = Console(stderr=True, highlight=False, width=_width())

STATUS_STYLE = {
    "Completed": "green",
    "Failed": "bold red",
    "Canceled": "yellow",
    "CancelRequested": "yellow",
    "Running": "cyan",
    "Queued": "blue",
    "Preparing": "blue",
    "Starting": "blue",
    "Finalizing": "cyan",
    "NotStarted": "dim",
}


def status_text(status: str) -> str:
    style = STATUS_STYLE.get(status, "")
    return f"[{style}]{status}[/]" if style else status


def when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def duration(start: float | None, end: float | None) -> str:
    if start is None:
        return ""
    seconds = (end or time.time()) - start
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def table(*columns: str, title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for index, column in enumerate(columns):
        t.add_column(column, overflow="fold", no_wrap=index == 0)
    return t


def number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.6g}"
