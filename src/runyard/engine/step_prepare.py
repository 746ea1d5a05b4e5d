"""Steps whose environment is being built, off the scheduler's thread.

A cold build takes seconds to minutes; the scheduler's main thread must go on starting, reusing and
finishing other steps meanwhile. Each such step is Preparing (v1's status while the image is built) and
holds one slot; a thread prepares its environment (ProcessJob.prepare_environment writes only the step's
log folder: 65_job_prep.txt and 20_image_build_log.txt) and reports back. The main thread, which owns every
store write, then starts the step's process (engine/service.py) or fails it with the build's error. Two
steps needing the same new environment build it once: the build lock (environments/build.py) makes the
second wait, and its 65_job_prep.txt says so.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from runyard.compute.process_job import ProcessJob
from runyard.engine.containment import FaultHost, contain
from runyard.engine.step_runner import StepEnvironmentFailed, prepare_step_environment
from runyard.engine.step_slots import step_target
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.engine.execution import PipelineExecution


@dataclass
class PreparingStep:
    execution_id: str
    name: str
    target: str
    data: dict[str, Any]  # the step's material and reuse decision, recorded when it starts or fails
    fingerprint: str
    job: ProcessJob
    error: dict[str, Any] | None = None  # set when the environment could not be prepared


class StepPreparer:
    def __init__(self) -> None:
        self.waiting: dict[str, PreparingStep] = {}  # step run id -> the step being prepared
        self._done: queue.Queue[str] = queue.Queue()

    def start(self, item: PreparingStep, step: dict[str, Any], plan: Any) -> None:
        self.waiting[item.job.run_id] = item
        threading.Thread(
            target=self._prepare, args=(item, step, plan), daemon=True, name=f"prepare-{item.name}"
        ).start()

    def _prepare(self, item: PreparingStep, step: dict[str, Any], plan: Any) -> None:
        try:
            prepare_step_environment(item.job, step, plan)
        except StepEnvironmentFailed as exc:
            item.error = exc.error
        except Exception as exc:  # a fault here fails this step, never the scheduler
            item.error = {
                "code": "SystemError",
                "message": f"Could not prepare the environment of step {item.name!r}: "
                f"{type(exc).__name__}: {exc}",
            }
        finally:
            self._done.put(item.job.run_id)

    def finished(self) -> list[PreparingStep]:
        """The steps whose preparation ended since the last call (with `error` set when it failed)."""
        done: list[PreparingStep] = []
        while True:
            try:
                run_id = self._done.get_nowait()
            except queue.Empty:
                return done
            item = self.waiting.pop(run_id, None)
            if item is not None:
                done.append(item)

    def targets(self) -> list[str]:
        """The compute targets of the steps being prepared: each holds one of its slots."""
        return [item.target for item in self.waiting.values()]


class PreparingHost(FaultHost, Protocol):
    """What the functions below need from the scheduler service (engine/service.py implements it)."""

    executions: dict[str, PipelineExecution]
    preparer: StepPreparer

    def _set_step(self, ex: PipelineExecution, name: str, status: str, **kwargs: Any) -> None: ...

    def _not_started(
        self, ex: PipelineExecution, name: str, data: Any, fp: str, error: dict[str, Any]
    ) -> None: ...

    def _launch(
        self, ex: PipelineExecution, name: str, data: dict[str, Any], fp: str, job: ProcessJob | None = None
    ) -> None: ...


def prepare_in_background(
    host: PreparingHost, ex: PipelineExecution, name: str, data: dict[str, Any], fp: str
) -> bool:
    """Send a step with an environment to be prepared (it becomes Preparing); False: it has none."""
    step = ex.steps_by_name[name]
    if step["environment"].get("definition") is None:
        return False
    run_id = ex.states[name].run_id
    host._set_step(ex, name, RunStatus.PREPARING)
    job = ProcessJob(host.ws, run_id, ex.experiment_name, host.ws.work_dir / run_id)
    host.preparer.start(
        PreparingStep(ex.run_id, name, step_target(step), data, fp, job), step, ex.plans.get(name)
    )
    return True


def start_prepared(host: PreparingHost) -> None:
    """Steps whose environment is ready start now; a failed build fails that step alone; a step of a
    pipeline canceled meanwhile ends Canceled without a process."""
    for item in host.preparer.finished():
        ex = host.executions.get(item.execution_id)
        if ex is None:  # the pipeline was given up on meanwhile
            item.job.close()
            continue
        with contain(host, ex.run_id):
            if ex.canceling:
                item.job.wrap_up(None, "canceled", time.time())
                error = {"code": "Canceled", "message": "Pipeline canceled."}
                host._set_step(ex, item.name, RunStatus.CANCELED, error=error)
            elif item.error is not None:
                host._not_started(ex, item.name, item.data, item.fingerprint, item.error)
            else:
                host._launch(ex, item.name, item.data, item.fingerprint, item.job)
