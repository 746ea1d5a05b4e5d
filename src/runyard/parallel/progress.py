"""A ParallelRunStep's progress as one small JSON file, and the one reader every face uses.

The driver replaces `logs/sys/progress.json` at most once a second (joblogs.JobLogs.progress). The CLI,
the studio and `wait_for_completion` read it through the run's file API (`Run.read_log`), so the same code
works for an embedded workspace and for a client talking to a server. A file written by another version of
the format (`v` differs) or a half-written one reads as None: a progress display must never crash a wait.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runyard.errors import RunyardError

if TYPE_CHECKING:
    from runyard.core.run import Run

__all__ = [
    "FORMAT_VERSION",
    "MAX_FAILURES",
    "PROGRESS_FILE",
    "Failure",
    "ItemCounts",
    "MiniBatchCounts",
    "ProgressSnapshot",
    "describe",
    "read_progress",
]

FORMAT_VERSION = 1
#: Where the driver keeps the snapshot, relative to the run's stored files.
PROGRESS_FILE = "logs/sys/progress.json"
#: The snapshot lists the first failures only; the full list is logs/user/error.txt.
MAX_FAILURES = 100


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MiniBatchCounts(_Model):
    total: int = 0
    scheduled: int = 0
    completed: int = 0
    failed: int = 0
    resumed: int = 0


class ItemCounts(_Model):
    total: int = 0
    succeeded: int = 0
    failed: int = 0


class Failure(_Model):
    """One finally failed mini-batch: what went wrong and which log file has the traceback."""

    mini_batch: int
    input: str
    message: str
    log: str


class ProgressSnapshot(_Model):
    """The contract's `sys/progress.json`: counts, speed, ETA and the first failures of one job."""

    v: Literal[1] = 1
    state: Literal["running", "completed", "failed"] = "running"
    step: str = ""
    updated: float = Field(default_factory=time.time)
    started: float = Field(default_factory=time.time)
    mini_batches: MiniBatchCounts = Field(default_factory=MiniBatchCounts)
    items: ItemCounts = Field(default_factory=ItemCounts)
    items_per_second: float = 0.0
    eta_seconds: float | None = None
    workers: int = 0
    failures: list[Failure] = Field(default_factory=list)

    @classmethod
    def parse(cls, text: str | bytes) -> ProgressSnapshot | None:
        """The snapshot in `text`, or None when it is not one of this version (or is cut short)."""
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            return None

    def add_failure(self, failure: Failure) -> None:
        """Keep the first MAX_FAILURES failures (the snapshot stays small for a huge failing job)."""
        if len(self.failures) < MAX_FAILURES:
            self.failures.append(failure)

    @property
    def finished(self) -> bool:
        return self.state != "running"


def read_progress(run: Run) -> ProgressSnapshot | None:
    """The progress a step run's driver last wrote, or None when there is none (yet) or it is unreadable.

    Goes through `run.read_log`, the run's file API: an embedded workspace reads its artifact store, a
    client connected to a server reads over REST."""
    try:
        data = run.read_log(PROGRESS_FILE)
    except (RunyardError, OSError):  # a progress display never fails the caller (e.g. a wait loop)
        return None
    if not data:
        return None
    return ProgressSnapshot.parse(data)


def _duration(seconds: float) -> str:
    return str(timedelta(seconds=max(0, round(seconds))))


def describe(snap: ProgressSnapshot) -> str:
    """One line: '120/200 mini-batches, 3 failed, 1,234 items/s, ETA 0:00:42'."""
    mb = snap.mini_batches
    parts = [f"{mb.completed + mb.failed:,}/{mb.total:,} mini-batches"]
    if mb.failed:
        parts.append(f"{mb.failed:,} failed")
    if snap.items.failed:
        parts.append(f"{snap.items.failed:,} items failed")
    if mb.resumed:
        parts.append(f"{mb.resumed:,} resumed")
    if snap.state == "running":
        rate = snap.items_per_second
        parts.append(f"{rate:,.0f} items/s" if rate >= 10 else f"{rate:,.2g} items/s")
        if snap.eta_seconds is not None:
            parts.append(f"ETA {_duration(snap.eta_seconds)}")
    else:
        parts.append(f"{snap.state} in {_duration(snap.updated - snap.started)}")
    return ", ".join(parts)
