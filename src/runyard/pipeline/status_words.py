"""The words v1 shows for pipeline and step statuses ("Finished" for Completed). Internally every run uses
one status machine (runyard.status); these translations are for the v1 faces only (pipeline/runs.py and
the wait output), and live in this small module so a step's job can read them without the wait display.
"""

from __future__ import annotations

from runyard.status import RunStatus

PIPELINE_STATUS = {
    RunStatus.NOT_STARTED: "NotStarted",
    RunStatus.QUEUED: "NotStarted",
    RunStatus.COMPLETED: "Finished",
    RunStatus.FAILED: "Failed",
    RunStatus.CANCELED: "Canceled",
}
STEP_STATUS = {
    RunStatus.NOT_STARTED: "NotStarted",
    RunStatus.QUEUED: "Queued",
    RunStatus.COMPLETED: "Finished",
    RunStatus.FAILED: "Failed",
    RunStatus.CANCELED: "Canceled",
}
