"""Keeping a scheduler fault inside the one pipeline run it happened in.

Why this exists: an exception that escaped the scheduler's loop killed the service; the next
`wait_for_completion` started a new one, which recovered, met the same record and died again (issue
11, bug 1: one run logged 58 tracebacks while its pipeline hung). Now every piece of work the
scheduler does for one pipeline run (picking it up, advancing it, recording a step's exit, canceling
it) runs inside `contain`: the run ends Failed with the error in its record and the whole traceback in
its own control log (`azureml-logs/60_control_log.txt`), its step processes are stopped, and the
scheduler goes on serving the others. A run that cannot even be failed is never touched again by
this scheduler, so nothing loops.

A StoreError still stops the service: the store being down stalls every pipeline alike, and the next
scheduler recovers them.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from runyard.core.run_files import LOG_DIR
from runyard.core.workspace import Workspace
from runyard.engine.execution import STEP_TAMPERED, StepTampered
from runyard.engine.recovery import refuse_pipeline
from runyard.errors import NotFoundError, StoreError

#: A pipeline run's own log of what its scheduler did to it; v1 shows this name for control logs.
CONTROL_LOG = f"{LOG_DIR}/60_control_log.txt"
SYSTEM_ERROR = "SystemError"


class FaultHost(Protocol):
    """What `contain` needs from the scheduler service (engine/service.py implements it)."""

    ws: Workspace
    given_up: set[str]
    echo: Callable[[str], None]

    def forget(self, run_id: str) -> None:
        """Drop the run from the scheduler's state and stop its step processes."""
        ...


def append_control_log(ws: Workspace, run_id: str, text: str) -> str:
    """Append `text` to the pipeline run's control log; returns the log's name in the run's files."""
    rel = f"runs/{run_id}/{CONTROL_LOG}"
    try:
        before = ws.artifacts.fetch(rel).read_bytes()
    except (NotFoundError, OSError):
        before = b""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    ws.artifacts.put_bytes(rel, before + f"{stamp} {text.rstrip()}\n".encode())
    return CONTROL_LOG


@contextmanager
def contain(host: FaultHost, run_id: str) -> Iterator[None]:
    """Run one pipeline run's piece of scheduling; any fault in it ends that run, never the scheduler."""
    try:
        yield
    except StoreError:
        raise
    except StepTampered as exc:
        _give_up(host, run_id, STEP_TAMPERED, f"Stopped: {exc}", None)
    except Exception as exc:
        _give_up(
            host, run_id, SYSTEM_ERROR, f"The scheduler could not run it: {exc!r}.", traceback.format_exc()
        )


def _give_up(host: FaultHost, run_id: str, code: str, message: str, trace: str | None) -> None:
    host.given_up.add(run_id)  # whatever happens next, this scheduler does not try it again
    if trace is not None:
        host.echo(trace.rstrip())
    _attempt(host, run_id, lambda: host.forget(run_id))
    if trace is not None:
        where = f"{message}\n{trace}"
        if _attempt(host, run_id, lambda: append_control_log(host.ws, run_id, where)):
            message += (
                f" The traceback is in {CONTROL_LOG} of this pipeline run. This is a runyard bug: please "
                "report it with that log; resubmitting may work."
            )
    _attempt(host, run_id, lambda: refuse_pipeline(host.ws, host.ws.store.get_run(run_id), code, message))
    host.echo(f"pipeline {run_id}: failed: {message}")


def _attempt(host: FaultHost, run_id: str, action: Callable[[], object]) -> bool:
    """Failing the run is best effort: the scheduler itself must go on (unless the store is down)."""
    try:
        action()
    except StoreError:
        raise
    except Exception:
        host.echo(f"pipeline {run_id}: could not be failed cleanly:\n{traceback.format_exc().rstrip()}")
        return False
    return True
