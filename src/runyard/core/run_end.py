"""What a run's folder says once its process has ended, however it ended.

The supervisor and the scheduler write it when a process exits (through ProcessJob.wrap_up), and the
orphan reaper in core/context.py writes it for a run whose supervisor died. Keeping this in core means
every way a run can end keeps the same promise: the metric spool is replayed (so no logged value is
lost), process_status.json and 75_job_post.txt are written, and the working copy is removed.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from runyard.core.metrics import replay_spool
from runyard.core.run_files import LOG_DIR

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: The spool's file system has less room than this: a failed run says the disk was full, and where.
DISK_FULL_BYTES = 64 * 1024


def utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def disk_full_reason(spool: Path, exc: BaseException | None = None) -> str | None:
    """'disk full while spooling metrics in <path>' when `exc` is ENOSPC or the spool's disk is full."""
    full = isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if not full:
        try:
            full = shutil.disk_usage(spool if spool.exists() else spool.parent).free < DISK_FULL_BYTES
        except OSError:
            return None
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


def write_job_end(
    workspace: Workspace,
    run_id: str,
    work: Path,
    code: int | None,
    ended: str,
    started: float,
    extra: list[str] | None = None,
    keep_work: bool = False,
) -> JobEnd:
    """Replay the spool, write process_status.json and 75_job_post.txt, remove the working copy.

    `ended` is how the process ended: 'exited', 'canceled', 'timeout', 'interrupted' or 'orphaned'.
    A full disk does not stop the rest: what could not be written is said in `problems`."""
    spool = work / "spool"
    state = {"exited": "Completed" if code == 0 else "Failed", "canceled": "Canceled"}.get(ended, "Failed")
    result = JobEnd(state)
    post = [f"{utc_now()} Process ended: {ended}, exit code {code}"]
    reason = disk_full_reason(spool) if spool.exists() else None
    if reason:
        result.problems.append(reason)
        post.append(f"{utc_now()} {reason}")
    result.replayed = replay_spool(workspace.store, spool) if spool.exists() else 0
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
