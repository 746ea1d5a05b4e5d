"""What a scheduler does with runs it finds but will not (or can no longer) run as planned.

`recover_steps`: after a scheduler died, its steps that were mid-flight are stopped and marked
Failed with the reason; queued ones go back to NotStarted. Only steps of pipelines placed on this
scheduler's own workspace identity are touched: another folder's scheduler (same database or server,
maybe the same host) owns its own, and its steps are alive (issue 10, High 1). Only the step runs the pipeline was submitted with
(`data["stepRuns"]`) are recovered: a child added to it later through the API is not this scheduler's
step, and the pid it records is not stopped (issue 10, review High 3; core/processes.py also refuses to
signal a process that does not provably belong to the run).

`refuse_pipeline`: a pipeline run this scheduler will not execute (its submitter may not use the
target, or its record is malformed) ends Failed with the reason, and its steps Canceled.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable

from runyard.compute.process_job import ProcessJob
from runyard.core.processes import stop_run_processes
from runyard.core.run_values import STEP_RUN_TYPE
from runyard.core.workspace import Workspace
from runyard.engine.execution import InvalidPipeline, pinned_steps
from runyard.engine.placement import Placement
from runyard.errors import StoreError
from runyard.status import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord


def refuse_pipeline(ws: Workspace, record: RunRecord, code: str, message: str) -> None:
    for child in ws.store.list_descendants(record.run_id, recursive=False):
        if child.status not in TERMINAL_STATUSES:
            ws.store.set_run_status(
                child.run_id, RunStatus.CANCELED, error={"code": "NotRun", "message": message}
            )
    ws.store.set_run_status(record.run_id, RunStatus.FAILED, error={"code": code, "message": message})


def recover_steps(ws: Workspace, placement: Placement, echo: Callable[[str], None]) -> None:
    """A step that cannot be recovered is reported and skipped: a fault here must not stop the
    scheduler before it serves anything (it would then be restarted into the same fault)."""
    for record in ws.store.list_runs(run_type=STEP_RUN_TYPE, status=sorted(ACTIVE_STATUSES)):
        try:
            _recover_step(ws, placement, echo, record)
        except StoreError:
            raise
        except Exception:
            echo(f"step {record.run_id}: not recovered:\n{traceback.format_exc().rstrip()}")


def _recover_step(
    ws: Workspace, placement: Placement, echo: Callable[[str], None], record: RunRecord
) -> None:
    store = ws.store
    parent = store.get_run(record.parent_id) if record.parent_id else None
    if parent is None or not placement.is_ours(parent) or not _pinned(parent, record):
        return
    pipeline_active = parent.status not in TERMINAL_STATUSES
    if record.status == RunStatus.NOT_STARTED and pipeline_active:
        return
    if record.status == RunStatus.QUEUED and pipeline_active:
        store.set_run_status(record.run_id, RunStatus.NOT_STARTED, force=True)
        return
    stop_run_processes(record.run_id, record.data, grace=1.0)  # checks host and start time
    if record.status == RunStatus.NOT_STARTED:
        store.set_run_status(
            record.run_id,
            RunStatus.CANCELED,
            error={"code": "Canceled", "message": "Not run: the pipeline ended."},
        )
        return
    job = ProcessJob(ws, record.run_id, record.experiment_name, ws.work_dir / record.run_id)
    error = job.wrap_up(None, "interrupted", record.start_time or time.time(), keep_work=True)
    if parent.status == RunStatus.CANCEL_REQUESTED:  # stopped as asked
        store.set_run_status(
            record.run_id,
            RunStatus.CANCELED,
            error={"code": "Canceled", "message": "Pipeline canceled."},
        )
        return
    store.set_run_status(record.run_id, RunStatus.FAILED, error=error)
    echo(f"step {record.display_name} ({record.run_id}): interrupted by a scheduler restart; marked Failed")


def _pinned(parent: RunRecord, step: RunRecord) -> bool:
    """Was `step` created with `parent` (pinned at submit)? A pre-pinning record: any child counts."""
    try:
        pins = pinned_steps(parent.data)
    except InvalidPipeline:
        return False
    return pins is None or step.run_id in pins.values()
