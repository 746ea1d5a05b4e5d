"""What a run's folder says once its process has ended, however it ended.

The supervisor and the scheduler write it when a process exits (through ProcessJob.wrap_up), and the
orphan reaper in core/context.py writes it for a run whose supervisor died. Keeping this in core means
every way a run can end keeps the same promise: the metric spool is drained a last time (so no logged
value is lost), process_status.json and 75_job_post.txt are written, and the working copy is removed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.core.metric_spool import RECORD_BYTES
from runyard.core.run_files import LOG_DIR

if TYPE_CHECKING:
    from runyard.core.metric_drain import SpoolDrain
    from runyard.core.workspace import Workspace

CONTROL_LOG = "60_control_log.txt"

#: The spool's file system has less room than this: a failed run says the disk was full, and where.
DISK_FULL_BYTES = 64 * 1024


def utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def disk_full_reason(spool: Path, exc: BaseException | None = None, unallocated: bool = False) -> str | None:
    """'disk full while spooling metrics in <path>' when `exc` is ENOSPC, the spool's disk is full, or
    (`unallocated`) a process's spool ring could not be given its disk space, so that process wrote its
    metrics to the store directly."""
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not full:
        try:
            free = shutil.disk_usage(spool if spool.exists() else spool.parent).free
        except OSError:
            return None
        full = free < DISK_FULL_BYTES or (unallocated and free < config.metric_spool_records() * RECORD_BYTES)
    if not full:
        return None
    return (
        f"disk full while spooling metrics in {spool}: free space on that file system "
        "(or set RUNYARD_WORK_DIR to a folder on a larger disk) and submit the run again."
    )


@dataclass
class JobEnd:
    """What finishing a run's files did: the state written to process_status.json, the metrics recovered,
    and a problem met on the way (a full disk), for the run's error message."""

    state: str
    replayed: int = 0
    problems: list[str] = field(default_factory=list)


def control_log(workspace: Workspace, run_id: str) -> Callable[[str], None]:
    """A function that appends a line to the run's 60_control_log.txt (what its supervisor says)."""
    path = workspace.artifacts.local_path(f"runs/{run_id}/{LOG_DIR}/{CONTROL_LOG}")

    def say(line: str) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"{utc_now()} runyard: {line}\n")
        except OSError:
            pass  # a full disk: the line is lost, the values are not

    return say


def job_store(workspace: Workspace, run_id: str, token: str | None = None) -> Any:
    """The store a job's metrics are written with: the job's own rights, never the supervisor's. Against
    a server that is a client with the run's token (`token`: the one the job got; else a new one);
    a database workspace has no tokens, and the drain's family check is the limit there."""
    create_run_token = getattr(workspace.store, "create_run_token", None)
    if create_run_token is None:
        return workspace.store
    from runyard.store.rest_store import RestStore

    return RestStore(workspace.tracking_uri, token or create_run_token(run_id))


def spool_drain(workspace: Workspace, run_id: str, spool: Path, token: str | None = None) -> SpoolDrain:
    """The drain of a job's spool folder: into the store with the job's rights, problems to its control log."""
    from runyard.core.metric_drain import SpoolDrain

    return SpoolDrain(
        job_store(workspace, run_id, token), spool, root_run=run_id, report=control_log(workspace, run_id)
    )


def write_job_end(
    workspace: Workspace,
    run_id: str,
    work: Path,
    code: int | None,
    ended: str,
    started: float,
    extra: list[str] | None = None,
    keep_work: bool = False,
    drain: SpoolDrain | None = None,
) -> JobEnd:
    """Drain the spool a last time, write process_status.json and 75_job_post.txt, remove the working copy.

    `ended` is how the process ended: 'exited', 'canceled', 'timeout', 'interrupted' or 'orphaned'.
    `drain`: the job's drain, when its supervisor ran one (else one is made here, e.g. for an orphan).
    A full disk does not stop the rest: what could not be written is said in `problems`. A StoreError
    (the database or server away) is raised before anything is removed: the spool stays for a retry."""
    spool = work / "spool"
    state = {"exited": "Completed" if code == 0 else "Failed", "canceled": "Canceled"}.get(ended, "Failed")
    result = JobEnd(state)
    post = [f"{utc_now()} Process ended: {ended}, exit code {code}"]
    if spool.exists():
        drain = drain if drain is not None else spool_drain(workspace, run_id, spool)
        # what the process logged that was not stored yet when it ended (all of it after a crash of the
        # supervisor; the values in flight otherwise); gaps and torn lines of a killed writer are skipped
        result.replayed = drain.drain_once(final=True)
        reason = disk_full_reason(spool, unallocated=bool(drain.unallocated))
        if reason:
            result.problems.append(reason)
            post.append(f"{utc_now()} {reason}")
    post.append(
        f"{utc_now()} Metrics recovered from the spool (logged but not yet written when the process "
        f"ended): {result.replayed}"
    )
    outputs_dir = workspace.artifacts.local_path(f"runs/{run_id}/outputs")
    outputs = [p for p in outputs_dir.rglob("*") if p.is_file()]
    post.append(
        f"{utc_now()} Kept {len(outputs)} files in outputs/ ({sum(p.stat().st_size for p in outputs)} bytes)"
    )
    post.extend(f"{utc_now()} {line}" for line in extra or [])
    status = {"processes": [{"rank": 0, "status": state, "exitCode": code}]}
    post.append(f"{utc_now()} Took {time.time() - started:.3f}s")
    if keep_work or os.environ.get("RUNYARD_KEEP_WORK") == "1":
        post.append(f"{utc_now()} Kept the working copy {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    for name, data in (
        ("process_status.json", json.dumps(status, indent=2).encode()),
        ("75_job_post.txt", ("\n".join(post) + "\n").encode()),
    ):
        try:
            workspace.artifacts.put_bytes(f"runs/{run_id}/{LOG_DIR}/{name}", data)
        except OSError as exc:
            result.problems.append(f"could not write {LOG_DIR}/{name}: {exc}")
    return result
