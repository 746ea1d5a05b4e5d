"""The error budget of a ParallelRunStep job: what counts as failed, and when the job must stop.

Kept apart from the driver so the rules (v1's, decided for issue 14) read in one place and do not depend
on how mini-batches are run: a worker on another machine reports the same counts. All counts are of
*final* outcomes: a try that fails and is retried counts nothing until the mini-batch's last try.

- Items failed = items of finally failed mini-batches + (given - returned) of completed ones (never
  negative) + items found broken while planning (corrupt CSV rows, unreadable files).
- error_threshold: failed items > threshold stops the job (-1 ignores).
- allowed_failed_count: finally failed mini-batches > count stops the job (-1 or None ignores).
- allowed_failed_percent: checked once every mini-batch has been scheduled (as v1 does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from runyard.engine.graph_parallel import ParallelSettings
from runyard.parallel.progress import Failure, ItemCounts, MiniBatchCounts, ProgressSnapshot

__all__ = ["Accounting"]


@dataclass
class Accounting:
    """Running totals of one job (resumed mini-batches included) and the budget they are held to."""

    settings: ParallelSettings
    total_mini_batches: int
    total_items: int
    completed: int = 0
    failed: int = 0
    resumed: int = 0
    items_succeeded: int = 0
    items_failed: int = 0
    resumed_items: int = 0  # items done before this driver started (not part of its speed)

    def planning_problems(self, items: int) -> None:
        """Items the planner could not turn into mini-batches (each counts as a failed item)."""
        self.items_failed += max(0, items)

    def complete(self, items: int, returned: int, resumed: bool = False) -> int:
        """A mini-batch finished: `returned` results for `items` inputs. Returns its failed items."""
        succeeded = min(max(returned, 0), items)
        lost = items - succeeded
        self.completed += 1
        self.resumed += int(resumed)
        self.resumed_items += items if resumed else 0
        self.items_succeeded += succeeded
        self.items_failed += lost
        return lost

    def fail(self, items: int) -> None:
        """A mini-batch failed its last try: all its items failed."""
        self.failed += 1
        self.items_failed += items

    @property
    def finished(self) -> int:
        return self.completed + self.failed

    def exceeded(self, all_scheduled: bool) -> str | None:
        """Why the job must stop now (one sentence), or None while the budget holds."""
        s = self.settings
        if s.error_threshold != -1 and self.items_failed > s.error_threshold:
            unit = "files" if s.kind == "file" else "records"
            return (
                f"{self.items_failed} of {self.total_items} {unit} failed, more than error_threshold "
                f"{s.error_threshold}"
            )
        count = s.allowed_failed_count
        if count is not None and count != -1 and self.failed > count:
            return (
                f"{self.failed} of {self.total_mini_batches} mini-batches failed, more than "
                f"allowed_failed_count {count}"
            )
        percent = s.allowed_failed_percent
        if percent is not None and all_scheduled and self.total_mini_batches:
            share = 100.0 * self.failed / self.total_mini_batches
            if share > percent:
                return (
                    f"{self.failed} of {self.total_mini_batches} mini-batches failed ({share:.1f}%), more "
                    f"than allowed_failed_percent {percent:g}"
                )
        return None

    def snapshot(
        self,
        step: str,
        started: float,
        state: Literal["running", "completed", "failed"],
        scheduled: int,
        workers: int,
        failures: list[Failure],
    ) -> ProgressSnapshot:
        """The counts as progress.json holds them; speed and ETA from this driver's own work."""
        now = time.time()
        done = self.items_succeeded + self.items_failed
        rate = max(0, done - self.resumed_items) / max(now - started, 1e-6)
        left = self.total_items - done
        return ProgressSnapshot(
            state=state,
            step=step,
            updated=now,
            started=started,
            mini_batches=MiniBatchCounts(
                total=self.total_mini_batches,
                scheduled=scheduled,
                completed=self.completed,
                failed=self.failed,
                resumed=self.resumed,
            ),
            items=ItemCounts(
                total=self.total_items, succeeded=self.items_succeeded, failed=self.items_failed
            ),
            items_per_second=rate,
            eta_seconds=left / rate if rate > 0 and state == "running" else None,
            workers=workers,
            failures=failures,
        )

    def metrics(self, items_per_second: float) -> dict[str, float]:
        """The run metrics the driver logs (names fixed by the issue's contract)."""
        return {
            "mini_batches_total": self.total_mini_batches,
            "mini_batches_completed": self.completed,
            "mini_batches_failed": self.failed,
            "items_succeeded": self.items_succeeded,
            "items_failed": self.items_failed,
            "items_per_second": round(items_per_second, 3),
        }
