"""The per-workspace scheduler service.

One service per workspace, guarded by an flock on <workspace>/scheduler.lock (the kernel releases it
if the service dies, even by SIGKILL). `submit` and `Schedule.create` start one when none holds the
lock; it exits after RUNYARD_SCHEDULER_IDLE_SECONDS without work, and never while a schedule is Active;
`runyard up` runs it in the foreground. Where the store is the workspace's own database it also fires
the schedules, about once a second (engine/schedules.py).

Threads: the main thread owns all scheduling state and every store write; one waiter thread per
running step blocks in wait() and posts the exit to the main thread's queue, so a finished step is
noticed at once instead of at the next poll.

Trust (docs/security.md): a scheduler touches only pipeline runs placed on its own workspace identity
and a target it serves, runs them only when their submitter may use that target, and fails a run it
cannot parse instead of dying on it (engine/placement.py, engine/execution.py). Any other fault while
handling one pipeline run fails that run alone, with the traceback in its control log
(engine/containment.py).
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runyard import config
from runyard.compute.job_environment import failure as environment_failure
from runyard.compute.process_job import ProcessJob, describe_exit
from runyard.core.processes import identity, stop_tree
from runyard.core.workspace import Workspace
from runyard.engine.containment import contain
from runyard.engine.dataset_inputs import InputUnavailable
from runyard.engine.execution import (
    PIPELINE_RUN_TYPE,
    InvalidPipeline,
    PipelineExecution,
    StepTampered,
    UntrustedInput,
)
from runyard.engine.placement import Placement, Submitters
from runyard.engine.recovery import recover_steps, refuse_pipeline
from runyard.engine.reuse import fingerprint
from runyard.engine.schedules import ScheduleTicker
from runyard.engine.service_lock import (  # noqa: F401 - ensure_running/service_info are imported from here
    INFO_FILE,
    LOCK_FILE,
    LOG_FILE,
    UNAUTHENTICATED_FLAG,
    _try_lock,
    ensure_running,
    service_info,
)
from runyard.engine.step_data import lineage
from runyard.engine.step_parallel import InvalidParallelSetting, same_work
from runyard.engine.step_prepare import StepPreparer, prepare_in_background, start_prepared
from runyard.engine.step_runner import StartedStep, StepEnvironmentFailed, finish_step, start_step
from runyard.engine.step_slots import slot_refusal, step_target
from runyard.errors import ConflictError, EnvironmentDefinitionError, RunyardError
from runyard.status import ACTIVE_STATUSES, TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord, SqlStore

POLL_SECONDS = 0.05
#: How often the schedules are looked at: a firing is at most this late.
TICK_SECONDS = 1.0


class SchedulerService:
    def __init__(
        self,
        ws: Workspace,
        idle_seconds: float | None = None,
        slots: int | None = None,
        echo: Callable[[str], None] | None = None,
        *,
        accept_unauthenticated: bool = False,
    ) -> None:
        """accept_unauthenticated: also run pipelines a server without --auth stamped {"auth": "off"}
        (only `runyard up`, whose studio is that server; see engine/placement.py)."""
        self.ws = ws
        self.store = ws.store
        self.idle_seconds = config.scheduler_idle_seconds() if idle_seconds is None else idle_seconds
        self.slots = slots or config.local_slots()
        self.events: queue.Queue[tuple[str, int | None]] = queue.Queue()
        self.executions: dict[str, PipelineExecution] = {}
        self.running: dict[str, StartedStep] = {}
        self.preparer = StepPreparer()  # steps whose environment is being built (engine/step_prepare.py)
        self.echo = echo or (lambda line: print(line, flush=True))
        self._stop = False
        self.instance = uuid.uuid4().hex
        self.placement = Placement(ws)
        self.submitters = Submitters(ws, accept_unauthenticated=accept_unauthenticated)
        self.not_ours: set[str] = set()  # placement never changes (store/records.py SUBMISSION_KEYS)
        self.given_up: set[str] = set()  # runs a fault ended (engine/containment.py): never touched again
        #: ParallelRunSteps queued behind another step run of the same work (`_checkpoint_refusal`)
        self.checkpoint_waits: set[tuple[str, str]] = set()
        #: Only the workspace's own database fires schedules; a client of a server leaves that to it.
        self.ticker = ScheduleTicker(ws, self.echo) if isinstance(self.store, SqlStore) else None

    # -- lifecycle ------------------------------------------------------------------------------
    def serve(self) -> None:
        lock = _try_lock(self.ws)
        if lock is None:
            info = service_info(self.ws) or {}
            raise ConflictError(
                f"A scheduler already runs for workspace {self.ws.path} (pid {info.get('pid')}). "
                "Stop it first, or let it do the work."
            )
        try:
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.time(),
                "instance": self.instance,
                "workspace": self.placement.identity,
            }
            (self.ws.path / INFO_FILE).write_text(json.dumps(info))
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, lambda *_: self.stop())
            self.echo(f"runyard scheduler for {self.ws.path} (pid {os.getpid()}, {self.slots} local slots)")
            self.recover()
            self._loop()
        finally:
            lock.close()

    def stop(self) -> None:
        """Ask the loop to end after its current pass (SIGTERM, or `runyard up` shutting down)."""
        self._stop = True

    def _loop(self) -> None:
        idle_since = time.monotonic()
        last_poll = last_tick = 0.0
        while not self._stop:
            now = time.monotonic()
            if self.ticker is not None and now - last_tick >= TICK_SECONDS:
                self.ticker.tick(time.time())  # before the poll, so a fired run is picked up at once
                last_tick = now
            if now - last_poll >= POLL_SECONDS:
                self.poll_store()
                last_poll = now
            self.advance()
            if self.executions or self.running or (self.ticker is not None and self.ticker.active()):
                idle_since = now
            elif now - idle_since > self.idle_seconds:
                self.echo("idle; exiting")
                return
            try:
                event = self.events.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            self.on_exit(*event)
            while True:
                try:
                    self.on_exit(*self.events.get_nowait())
                except queue.Empty:
                    break

    # -- discovering work -------------------------------------------------------------------------
    def poll_store(self) -> None:
        listed = self.store.list_runs(run_type=PIPELINE_RUN_TYPE, status=sorted(ACTIVE_STATUSES))
        self.not_ours &= {r.run_id for r in listed}  # forget the ones that ended
        self.given_up &= {r.run_id for r in listed}
        for record in listed:
            if record.run_id not in self.not_ours and record.run_id not in self.given_up:
                with contain(self, record.run_id):
                    self._pick_up(record)

    def _pick_up(self, record: RunRecord) -> None:
        execution = self.executions.get(record.run_id)
        if execution is None:
            if not self.placement.is_ours(record):
                self.not_ours.add(record.run_id)
                return
            target = self.placement.target_of(record)
            refusal = self.submitters.pipeline_refusal(record, target)  # its steps' targets too
            if refusal is not None:
                self.refuse(record, "NotAuthorized", f"Not run on {refusal[0]}: {refusal[1]}")
                return
            try:
                execution = PipelineExecution(self.ws, record, self.submitters)
            except InvalidPipeline as exc:
                self.refuse(record, "InvalidPipeline", f"Not run: {exc}.")
                return
            self.executions[record.run_id] = execution
            claimed = self.store.set_run_status(
                record.run_id,
                RunStatus.RUNNING,
                data={"supervisor": {**identity(), "scheduler": self.instance}},
            )
            if claimed.status in TERMINAL_STATUSES:  # canceled between the listing and the claim
                del self.executions[record.run_id]
                return
            self.echo(f"pipeline {record.run_id}: started ({len(execution.states)} steps)")
        if record.status == RunStatus.CANCEL_REQUESTED and not execution.canceling:
            self.cancel(execution)

    def refuse(self, record: RunRecord, code: str, message: str) -> None:
        """Fail a pipeline run this scheduler will not execute, and cancel its steps; nothing starts."""
        refuse_pipeline(self.ws, record, code, message)
        self.echo(f"pipeline {record.run_id}: refused: {message}")

    def recover(self) -> None:
        """After a crash: this workspace's steps that were mid-flight are marked Failed (engine/recovery.py)."""
        recover_steps(self.ws, self.placement, self.echo)

    # -- scheduling -------------------------------------------------------------------------------
    def advance(self) -> None:
        start_prepared(self)
        for execution in list(self.executions.values()):
            with contain(self, execution.run_id):  # one pipeline's fault must not stop the others
                self._advance(execution)

    def _advance(self, ex: PipelineExecution) -> None:
        if (
            not ex.canceling
            and ex.ready()
            and self.store.get_run(ex.run_id).status == RunStatus.CANCEL_REQUESTED
        ):
            self.cancel(ex)  # a cancel that arrived since the last poll wins over starting the next step
        progressed = True
        while progressed and not ex.canceling:
            progressed = False
            for name, reason in ex.blocked():
                self._set_step(ex, name, RunStatus.CANCELED, error={"code": "NotRun", "message": reason})
                progressed = True
            for name in ex.ready():
                if self._try_reuse(ex, name):
                    progressed = True
                elif (why := self._slot_refusal(ex, name)) is None:
                    self._start(ex, name)
                elif ex.states[name].status != RunStatus.QUEUED:
                    self._set_step(ex, name, RunStatus.QUEUED, data={"queuedBecause": why})
        for name in ex.order:  # queued steps take free slots in graph order
            if ex.canceling or len(self.running) + len(self.preparer.waiting) >= self.slots:
                break
            if ex.states[name].status == RunStatus.QUEUED and self._slot_refusal(ex, name) is None:
                self._start(ex, name)
        if ex.finished():
            status = ex.final_status()
            self.store.set_run_status(ex.run_id, status)  # CancelRequested ends without force
            self.echo(f"pipeline {ex.run_id}: {status}")
            del self.executions[ex.run_id]
            self.checkpoint_waits = {w for w in self.checkpoint_waits if w[0] != ex.run_id}

    def _slot_refusal(self, ex: PipelineExecution, name: str) -> str | None:
        same_work = self._checkpoint_refusal(ex, name)
        if same_work is not None:
            return same_work
        target = step_target(ex.steps_by_name[name])
        busy = [*(s.target for s in self.running.values()), *self.preparer.targets()]
        return slot_refusal(self.ws, self.slots, busy, target)

    def _checkpoint_refusal(self, ex: PipelineExecution, name: str) -> str | None:
        """A ParallelRunStep waits while another step run works in its checkpoint (engine/step_parallel.py
        `same_work`); when it may start, `_start` decides its reuse again."""
        pending = ex.pending.get(name)
        if ex.steps_by_name[name].get("parallel") is None or pending is None:
            return None
        busy: list[tuple[str, Any]] = [
            (s.run_id, s.checkpoint.name) for s in self.running.values() if s.checkpoint is not None
        ]
        busy += [(i.job.run_id, i.data.get("material")) for i in self.preparer.waiting.values()]
        why = same_work(pending[0]["material"], busy)
        if why is not None:
            self.checkpoint_waits.add((ex.run_id, name))
        return why

    def forget(self, run_id: str) -> None:
        """Drop a pipeline run this scheduler gives up on, and stop its step processes."""
        ex = self.executions.pop(run_id, None)
        if ex is not None:
            self._stop_processes(ex)

    def _set_step(self, ex: PipelineExecution, name: str, status: str, **kwargs: Any) -> None:
        """Write a step's status; only this scheduler's own writes move the pipeline on (issue 10).

        The store drops a write to an ended run, so its answer shows whether someone else ended the
        step first. Completed by someone else is tampering (StepTampered): its outputs are never read.
        Canceled or Failed by someone else (a user canceling one step) only ends that step. The outputs
        downstream steps read are the ones written here, not what the record holds."""
        state = ex.states[name]
        data = kwargs.get("data") or {}
        record = self.store.set_run_status(state.run_id, status, **kwargs)
        if record.status == RunStatus.COMPLETED:
            ours = json.loads(json.dumps(data.get("outputs")))
            if status != RunStatus.COMPLETED:
                raise StepTampered(name, state.run_id, f"was found Completed when it was to become {status}")
            if record.data.get("outputs") != ours:
                raise StepTampered(name, state.run_id, "was found Completed with outputs it did not write")
        state.status = record.status
        if record.status == RunStatus.COMPLETED:
            state.outputs = dict(data.get("outputs") or {})

    def _try_reuse(self, ex: PipelineExecution, name: str) -> bool:
        """Decide reuse for a ready step; a reused step completes here, at no process cost."""
        try:
            material = ex.material(name)
        except (
            UntrustedInput,
            InputUnavailable,
            EnvironmentDefinitionError,
            InvalidParallelSetting,
        ) as exc:  # a dataset changed, a PipelineParameter gave mini_batch_size 'ten', ...
            error = {"code": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, EnvironmentDefinitionError):  # cannot be built here as written
                error = environment_failure(exc, str(ex.steps_by_name[name]["environment"].get("name") or ""))
            self._set_step(ex, name, RunStatus.FAILED, error=error)
            self.echo(f"step {name}: failed: {exc}")
            return True
        fp = fingerprint(material)
        decision = ex.decide_reuse(name, material, fp)
        data: dict[str, Any] = {"material": material, "reuse": decision.as_dict()}
        if decision.reused and decision.reused_run_id:
            data["reusedFrom"] = decision.reused_run_id
            data["outputs"] = ex.reuse_outputs(decision.reused_run_id)
            self._set_step(ex, name, RunStatus.COMPLETED, data=data, fingerprint=fp)
            self._record_lineage(ex, name, data["outputs"])
            self.echo(f"step {name}: reused {decision.reused_run_id}")
            return True
        ex.pending[name] = (data, fp)
        return False

    def _start(self, ex: PipelineExecution, name: str) -> None:
        if (ex.run_id, name) in self.checkpoint_waits:  # the same work ran meanwhile: decide reuse again
            self.checkpoint_waits.discard((ex.run_id, name))
            ex.pending.pop(name, None)
        if name not in ex.pending and self._try_reuse(ex, name):  # queued before a restart: decide again
            return
        data, fp = ex.pending.pop(name)
        if prepare_in_background(self, ex, name, data, fp):  # built beside the scheduler
            return
        self._launch(ex, name, data, fp)

    def _not_started(
        self, ex: PipelineExecution, name: str, data: Any, fp: str, error: dict[str, Any]
    ) -> None:
        self._set_step(ex, name, RunStatus.FAILED, data=data, fingerprint=fp, error=error)
        self.echo(f"step {name}: failed: {error['message'].splitlines()[0]}")

    def _launch(
        self, ex: PipelineExecution, name: str, data: dict[str, Any], fp: str, job: ProcessJob | None = None
    ) -> None:
        state, step = ex.states[name], ex.steps_by_name[name]
        # Before the process starts: over a server its run token may read the datastore files recorded as
        # its inputs (docs/security.md), so a job that reads a direct dataset input needs them now.
        self._record_lineage(ex, name, {})
        try:
            started = start_step(
                self.ws, ex.experiment_name, step, state.run_id, ex.params, ex.input_paths(name),
                ex.datasets.get(name), ex.plans.get(name), job, data["material"], ex.regenerate,
            )  # fmt: skip
        except Exception as exc:
            error = (
                exc.error
                if isinstance(exc, StepEnvironmentFailed)
                else {"code": "SystemError", "message": f"Could not start step {name!r}: {exc}"}
            )
            self._not_started(ex, name, data, fp, error)
            return
        data["process"] = {**started.job.process, "scheduler": self.instance}  # pid, host, start time
        if started.checkpoint is not None:  # a ParallelRunStep: where a rerun of the same work resumes
            data["parallelCheckpoint"] = str(started.checkpoint)
        # Tracked before the status write: if that finds the step tampered with, the process is stopped.
        self.running[state.run_id] = started
        started.execution_id = ex.run_id
        started.target = step_target(step)
        threading.Thread(target=self._wait, args=(started,), daemon=True, name=f"wait-{name}").start()
        # As in v1, a run with regenerate_outputs=True is not offered for reuse later: no fingerprint.
        self._set_step(ex, name, RunStatus.RUNNING, data=data, fingerprint=None if ex.regenerate else fp)
        self.echo(f"step {name}: started ({data['reuse']['reason']})")

    def _wait(self, started: StartedStep) -> None:
        code = started.proc.wait()
        self.events.put((started.run_id, code))

    def on_exit(self, run_id: str, code: int | None) -> None:
        started = self.running.pop(run_id, None)
        if started is None:
            return
        with contain(self, started.execution_id):
            ended = "canceled" if started.canceled else "exited"
            error, outputs = finish_step(started, code, ended)
            ex = self.executions.get(started.execution_id)
            if ex is not None:
                self._record_exit(ex, started, code, ended, error, outputs)

    def _record_exit(
        self,
        ex: PipelineExecution,
        started: StartedStep,
        code: int | None,
        ended: str,
        error: dict[str, Any] | None,
        outputs: dict[str, Any],
    ) -> None:
        if started.canceled:
            self._set_step(ex, started.name, RunStatus.CANCELED)
        elif error is None:
            self._set_step(ex, started.name, RunStatus.COMPLETED, data={"outputs": outputs})
            self._record_lineage(ex, started.name, outputs, inputs=False)  # inputs: recorded at launch
        else:
            self._set_step(ex, started.name, RunStatus.FAILED, error=error, data={"exitCode": code})
        self.echo(
            f"step {started.name}: {ex.states[started.name].status} "
            f"({describe_exit(code, ended) if code else 'ok'})"
        )
        self._advance(ex)

    def _record_lineage(
        self, ex: PipelineExecution, name: str, outputs: dict[str, Any], inputs: bool = True
    ) -> None:
        """What a step read (recorded before it starts, or when it is reused) and wrote (when it
        completed), for the datasets' lineage and for what its run token may read."""
        uses = lineage(ex.states[name].run_id, ex.datasets.get(name, {}) if inputs else {}, outputs)
        try:
            if uses:
                self.store.record_dataset_uses(uses)
        except (RunyardError, NotImplementedError) as exc:  # the step's result stands; the gap is logged
            self.echo(f"step {name}: lineage not recorded: {exc}")

    def cancel(self, ex: PipelineExecution) -> None:
        ex.canceling = True
        for name, state in ex.states.items():
            if state.status in (RunStatus.NOT_STARTED, RunStatus.QUEUED):
                self._set_step(
                    ex, name, RunStatus.CANCELED, error={"code": "Canceled", "message": "Pipeline canceled."}
                )
        self._stop_processes(ex)
        self.echo(f"pipeline {ex.run_id}: cancel requested")

    def _stop_processes(self, ex: PipelineExecution) -> None:
        for started in list(self.running.values()):
            if started.execution_id == ex.run_id:
                started.canceled = True
                threading.Thread(
                    target=stop_tree, args=(started.proc,), kwargs={"run_ids": [started.run_id]}, daemon=True
                ).start()


def main(argv: list[str]) -> None:
    """`python -m runyard.engine WORKSPACE [--accept-unauthenticated]`."""
    ws = Workspace.get(Path(argv[0]))
    try:
        SchedulerService(ws, accept_unauthenticated=UNAUTHENTICATED_FLAG in argv[1:]).serve()
    except ConflictError as exc:
        print(f"runyard scheduler: {exc}", flush=True)
