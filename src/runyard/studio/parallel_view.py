"""The "Parallel run" card of a ParallelRunStep's step page: progress, speed, ETA and failed mini-batches.

The driver keeps `logs/sys/progress.json` (runyard.parallel.progress) current while it runs. The page reads
it from the artifact store; the page's event stream watches the same file (streams.ProgressWatch), so the
card moves every second or so while the step runs, not only when metrics are logged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runyard.parallel.progress import PROGRESS_FILE, Failure, ProgressSnapshot
from runyard.pipeline.wait_output import eta_text, parallel_steps, rate_text
from runyard.status import TERMINAL_STATUSES
from runyard.store import ArtifactStore, RunRecord

#: Failed mini-batches listed on the page; the rest are in logs/user/error.txt (linked below the table).
SHOWN_FAILURES = 50


@dataclass(frozen=True)
class ParallelCard:
    snap: ProgressSnapshot
    done: int
    total: int
    speed: str
    eta: str
    failures: list[Failure] = field(default_factory=list)
    more_failures: int = 0


def progress_of(artifacts: ArtifactStore, run_id: str) -> ProgressSnapshot | None:
    """The step's last progress snapshot, or None (no file yet, another format version, or unreadable)."""
    rel = f"runs/{run_id}/{PROGRESS_FILE}"
    try:
        if not artifacts.exists(rel):
            return None
        return ProgressSnapshot.parse(artifacts.read_bytes(rel))
    except OSError:
        return None


def is_parallel_step(run: RunRecord, parent: RunRecord | None) -> bool:
    """Whether the step run is a ParallelRunStep of its pipeline's graph."""
    graph = parent.data.get("graph") if parent is not None else None
    return bool(run.display_name) and run.display_name in parallel_steps(graph)


def card(artifacts: ArtifactStore, run: RunRecord, parent: RunRecord | None) -> ParallelCard | None:
    """What the card shows, or None for a step that is not a parallel one (or has not reported yet)."""
    snap = progress_of(artifacts, run.run_id)
    if snap is None:
        return None
    mb = snap.mini_batches
    running = snap.state == "running" and run.status not in TERMINAL_STATUSES
    return ParallelCard(
        snap=snap,
        done=mb.completed + mb.failed,
        total=max(mb.total, mb.completed + mb.failed),
        speed=rate_text(snap.items_per_second) if running else "",
        eta=eta_text(snap.eta_seconds) if running else "",
        failures=snap.failures[:SHOWN_FAILURES],
        more_failures=max(len(snap.failures), mb.failed) - min(len(snap.failures), SHOWN_FAILURES),
    )


def live_progress_run(run: RunRecord, parent: RunRecord | None, shown: ParallelCard | None) -> str | None:
    """The step run whose progress file the page's event stream should watch (a running parallel step)."""
    if run.status in TERMINAL_STATUSES:
        return None
    return run.run_id if shown is not None or is_parallel_step(run, parent) else None


def context(artifacts: ArtifactStore, run: RunRecord, parent: RunRecord | None) -> dict[str, Any]:
    shown = card(artifacts, run, parent)
    return {"parallel": shown, "progress_run": live_progress_run(run, parent, shown)}


def node_progress(
    artifacts: ArtifactStore, graph: dict[str, Any], steps: dict[str, RunRecord]
) -> dict[str, str]:
    """'120/200' for each parallel step of the graph that has reported, shown in its graph node."""
    shown = {}
    for name in sorted(parallel_steps(graph)):
        step = steps.get(name)
        snap = (
            progress_of(artifacts, step.run_id)
            if step is not None and not step.data.get("reusedFrom")
            else None
        )
        if snap is not None:
            mb = snap.mini_batches
            shown[name] = f"{mb.completed + mb.failed:,}/{mb.total:,}"
    return shown
