"""Run statuses, with the Azure ML SDK v1 strings, and the groups code asks about."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    NOT_STARTED = "NotStarted"  # record exists, nothing scheduled yet
    QUEUED = "Queued"  # accepted, waiting for a free slot on its compute target
    PREPARING = "Preparing"  # snapshot being copied, environment being prepared
    STARTING = "Starting"  # process being launched
    RUNNING = "Running"  # user code running
    FINALIZING = "Finalizing"  # user code done; outputs and logs being collected
    CANCEL_REQUESTED = "CancelRequested"  # cancel() called; the process is being stopped
    COMPLETED = "Completed"  # success (terminal)
    FAILED = "Failed"  # failure; details["error"] says why (terminal)
    CANCELED = "Canceled"  # stopped on request (terminal)


TERMINAL_STATUSES = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED})
ACTIVE_STATUSES = frozenset(
    {
        RunStatus.NOT_STARTED,
        RunStatus.QUEUED,
        RunStatus.PREPARING,
        RunStatus.STARTING,
        RunStatus.RUNNING,
        RunStatus.FINALIZING,
        RunStatus.CANCEL_REQUESTED,
    }
)
