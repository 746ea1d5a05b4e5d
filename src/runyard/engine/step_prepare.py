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
from dataclasses import dataclass
from typing import Any

from runyard.compute.process_job import ProcessJob
from runyard.engine.step_runner import StepEnvironmentFailed, prepare_step_environment


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
