"""What `wait_for_completion(show_output=True)` prints: step logs, status changes, and parallel progress.

A pipeline wait streams every step's driver log prefixed by the step name. For a ParallelRunStep it also
shows how far the job is (mini-batches done of total, failures, items/s, ETA) from the driver's
`logs/sys/progress.json` (runyard.parallel.progress). On a terminal that is a live bar that ends with one final line. Where output
is captured (a notebook cell, CI logs, a file) redrawing would leave hundreds of lines, so there it prints a
plain line at most every PLAIN_INTERVAL seconds, and the final line. Log lines keep flowing above the bar.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from runyard.core.run_files import DRIVER_LOG
from runyard.parallel.progress import ProgressSnapshot, describe, read_progress
from runyard.pipeline.status_words import STEP_STATUS
from runyard.status import TERMINAL_STATUSES, RunStatus

if TYPE_CHECKING:
    from runyard.core.run import Run
    from runyard.pipeline.runs import PipelineRun, StepRun

__all__ = [
    "CHECK_INTERVAL",
    "PLAIN_INTERVAL",
    "POLL_INTERVAL",
    "STEP_STATUS",
    "ChangeWatch",
    "ProgressDisplay",
    "StepLogWatcher",
    "eta_text",
    "parallel_steps",
    "rate_text",
    "short",
]

#: Seconds between plain progress lines when output is not a terminal.
PLAIN_INTERVAL = 10.0
#: Seconds between reads of a running step's progress file (the driver writes it at most once a second).
CHECK_INTERVAL = 0.5
#: Seconds between polls of a waited-for run's change marker.
POLL_INTERVAL = 0.1


class ChangeWatch:
    """Whether a run's family (the run and its children) changed since the last look, from the store's
    change marker: one query per poll, or one HTTP request against a server, however many steps the run
    has. A wait re-reads records only when it moved; the first look always counts as a change."""

    def __init__(self, run: Run) -> None:
        self.store, self.run_id = run.workspace.store, run.id
        self.last: str | None = None

    def moved(self) -> bool:
        marker = self.store.change_marker(self.run_id)
        moved, self.last = marker != self.last, marker
        return moved


def parallel_steps(graph: dict[str, Any] | None) -> set[str]:
    """Names of the graph's ParallelRunStep steps (the ones with a `parallel` entry)."""
    steps = (graph or {}).get("steps") or []
    return {str(s["name"]) for s in steps if isinstance(s, dict) and s.get("parallel") and s.get("name")}


def eta_text(seconds: float | None) -> str:
    """'0:42', '12:05' or '1:02:03'; '' when unknown."""
    if seconds is None:
        return ""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def rate_text(value: float) -> str:
    """'1,234 items/s', or two significant digits below 10 ('0.5 items/s')."""
    return f"{value:,.0f} items/s" if value >= 10 else f"{value:,.2g} items/s"


def short(snap: ProgressSnapshot) -> str:
    """A table cell: '120/200 · 3 failed · 1,234 items/s · ETA 0:42', or '200/200 · completed in 1:05'."""
    mb = snap.mini_batches
    parts = [f"{mb.completed + mb.failed:,}/{mb.total:,}"]
    if mb.failed:
        parts.append(f"{mb.failed:,} failed")
    if snap.state == "running":
        parts.append(rate_text(snap.items_per_second))
        if snap.eta_seconds is not None:
            parts.append(f"ETA {eta_text(snap.eta_seconds)}")
    else:
        parts.append(f"{snap.state} in {eta_text(snap.updated - snap.started)}")
    return " · ".join(parts)


class ProgressDisplay:
    """Progress of the parallel steps one wait follows, keyed by step run id, and the log text around it.

    While a bar is shown, text goes through the bar's console so it prints above the bar instead of
    through it; otherwise it is written to `out` unchanged (the plain log stream stays byte for byte)."""

    def __init__(
        self, out: TextIO, *, tty: bool | None = None, plain_interval: float = PLAIN_INTERVAL
    ) -> None:
        self.out = out
        self.tty = bool(out.isatty()) if tty is None else tty
        self.plain_interval = plain_interval
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._last_plain: dict[str, float] = {}
        self._last_check: dict[str, float] = {}
        self._done: set[str] = set()
        self._partial = ""

    def due(self, key: str) -> bool:
        """Whether to read this step's progress file now (at most every CHECK_INTERVAL seconds)."""
        if key in self._done:
            return False
        now = time.monotonic()
        if now - self._last_check.get(key, float("-inf")) < CHECK_INTERVAL:
            return False
        self._last_check[key] = now
        return True

    def finished(self, key: str) -> bool:
        return key in self._done

    def update(self, key: str, name: str, snap: ProgressSnapshot | None, ended: bool) -> None:
        """Show `snap` for the step; `ended` (the step run ended) or a final snapshot prints the last line."""
        if key in self._done:
            return
        if snap is None:
            if ended:  # the step ended before its driver wrote any progress: nothing to show
                self._done.add(key)
                self._drop_task(key)
            return
        final = ended or snap.finished
        if final:
            self._done.add(key)
            self._drop_task(key)
            if snap.finished:  # describe() ends with "completed in 0:01:02" or "failed in …"
                self._line(f"[{name}] ParallelRunStep: {describe(snap)}")
            else:
                self._line(f"[{name}] ParallelRunStep ended; its last progress report: {describe(snap)}")
            return
        if self.tty:
            self._show_bar(key, name, snap)
            return
        now = time.monotonic()
        if now - self._last_plain.get(key, float("-inf")) >= self.plain_interval:
            self._last_plain[key] = now
            self._line(f"[{name}] Progress: {describe(snap)}")

    def write(self, text: str) -> None:
        """Log text: straight to `out`, or whole lines above the bar while one is shown."""
        if self._progress is None:
            self.out.write(text)
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._progress.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)

    def close(self) -> None:
        """End the bar (a wait that timed out or was interrupted leaves no half-drawn display)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
            self._tasks.clear()
        if self._partial:
            self.out.write(self._partial)
            self._partial = ""
        self.out.flush()

    def _line(self, text: str) -> None:
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False, emoji=False, soft_wrap=True)
        else:
            self.out.write(text + "\n")
            self.out.flush()

    def _show_bar(self, key: str, name: str, snap: ProgressSnapshot) -> None:
        if self._progress is None:
            console = Console(file=self.out, force_terminal=True, highlight=False)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("mini-batches"),
                TextColumn("{task.fields[failed]}"),
                TextColumn("{task.fields[speed]}"),
                TextColumn("{task.fields[eta]}"),
                console=console,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
                refresh_per_second=4,
            )
            self._progress.start()
        mb = snap.mini_batches
        fields: dict[str, Any] = {
            "failed": f"[red]{mb.failed:,} failed[/]" if mb.failed else "",
            "speed": rate_text(snap.items_per_second),
            "eta": f"ETA {eta_text(snap.eta_seconds)}" if snap.eta_seconds is not None else "",
        }
        done = mb.completed + mb.failed
        if key not in self._tasks:
            self._tasks[key] = self._progress.add_task(name, total=max(mb.total, 1), completed=done, **fields)
        else:
            self._progress.update(self._tasks[key], total=max(mb.total, 1), completed=done, **fields)

    def _drop_task(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if self._progress is None or task is None:
            return
        self._progress.remove_task(task)
        if not self._tasks:  # the last bar ended: text goes straight to `out` again
            self._progress.stop()
            self._progress = None
            if self._partial:
                self.out.write(self._partial)
                self._partial = ""


class StepLogWatcher:
    """Prints new lines of every step's driver log, prefixed by the step name, and status changes; for
    ParallelRunStep steps also their progress (ProgressDisplay).

    The wait loop hands it the step runs it read (`steps`) when the pipeline's change marker moved; a
    poll reads the logs of steps that started and have not been read to the end since they ended, so
    a quiet round costs no query and no file read per finished or waiting step."""

    def __init__(self, run: PipelineRun, out: TextIO) -> None:
        self.run, self.out = run, out
        self.steps: list[StepRun] = []
        self.offsets: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}
        self.statuses: dict[str, str] = {}
        self.drained: set[str] = set()  # ended steps whose log was read after they ended
        self.display = ProgressDisplay(out)
        self.parallel = parallel_steps(run.get_graph())

    def poll(self, final: bool = False) -> None:
        """Print what is new; `final` reads every started step's log once more (the wait is over)."""
        for step in self.steps:
            status = step._record.status
            name = step.name or step.id
            if self.statuses.get(step.id) != status:
                self.statuses[step.id] = status
                extra = (
                    f" (reused {step._record.data['reusedFrom']})"
                    if step._record.data.get("reusedFrom")
                    else ""
                )
                # v1's Preparing (the environment is being built, no process yet) is shown as such here;
                # get_status() keeps v1's step vocabulary, where it is Running
                shown = (
                    "Preparing" if status == RunStatus.PREPARING else STEP_STATUS.get(status, "Running")  # type: ignore[call-overload]
                )
                self.display.write(f"StepRun({name}) Status: {shown}{extra}\n")
            ended = status in TERMINAL_STATUSES
            if status == RunStatus.NOT_STARTED or (step.id in self.drained and not final):
                continue
            self._print_log(step, name)
            if ended:  # a step's process has exited before its run ends: its log is complete
                self.drained.add(step.id)
            watched = step.name in self.parallel and not step._record.data.get("reusedFrom")
            if watched and not self.display.finished(step.id) and (ended or self.display.due(step.id)):
                self.display.update(step.id, name, read_progress(step), ended)
        self.out.flush()

    def _print_log(self, step: StepRun, name: str) -> None:
        data = step.read_log(DRIVER_LOG, self.offsets.get(step.id, 0))
        if data:
            self.offsets[step.id] = self.offsets.get(step.id, 0) + len(data)
            lines = (self.partial.pop(step.id, b"") + data).split(b"\n")
            self.partial[step.id] = lines.pop()
            for line in lines:
                self.display.write(f"[{name}] {line.decode('utf-8', errors='replace')}\n")

    def close(self) -> None:
        self.display.close()
