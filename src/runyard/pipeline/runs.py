"""PipelineRun and StepRun: Run subclasses with v1's pipeline methods and status words.

Internally every run uses one status machine (runyard.status). v1 shows pipelines and steps with
other words ("Finished" for Completed); those translations happen here, at the edge, and nowhere else.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from runyard.core.context import end_orphan
from runyard.core.run import RUN_CLASSES, Run
from runyard.core.run_files import DRIVER_LOG
from runyard.engine.execution import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.engine.service import ensure_running
from runyard.errors import InvalidInputError, RunFailedError
from runyard.status import TERMINAL_STATUSES, RunStatus

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.pipeline.pipeline import Pipeline

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


class StepRun(Run):
    @property
    def pipeline_run_id(self) -> str | None:
        return self._record.parent_id

    def get_status(self) -> str:
        """v1's step vocabulary: NotStarted, Queued, Running, Finished, Failed, Canceled."""
        return STEP_STATUS.get(self._refresh().status, "Running")  # type: ignore[call-overload]

    @property
    def _is_reused(self) -> bool:
        return self._refresh().data.get("reusedFrom") is not None

    @property
    def _reused_run_id(self) -> str | None:
        return self._refresh().data.get("reusedFrom")

    def get_reuse_decision(self) -> dict[str, Any]:
        """Whether this step was reused, and in words why (not)."""
        return dict(self._refresh().data.get("reuse", {}))

    def get_job_log(self) -> str:
        return self._decode(self.read_log(DRIVER_LOG))

    get_stdout_log = get_job_log

    def get_stderr_log(self) -> str:
        """stderr is merged into the driver log, in order, so this returns the same text as get_stdout_log()."""
        return self.get_job_log()

    def get_outputs(self) -> dict[str, PortDataReference]:
        return {
            name: PortDataReference(name, info)
            for name, info in self._refresh().data.get("outputs", {}).items()
        }

    def get_output_data(self, name: str) -> PortDataReference:
        outputs = self.get_outputs()
        if name not in outputs:
            raise InvalidInputError(
                f"Step {self.name!r} has no output {name!r}; it has {sorted(outputs) or 'none'}."
            )
        return outputs[name]

    get_output = get_output_data


class PortDataReference:
    """Where a step's output lives, and a way to copy it out."""

    def __init__(self, name: str, info: dict[str, Any]) -> None:
        self.name = name
        self.path_on_datastore = info["path"]
        self.datastore_name = "workspaceblobstore"
        self.size, self.file_count, self.content_hash = info.get("size"), info.get("files"), info.get("hash")

    def download(
        self, local_path: str = ".", overwrite: bool | None = None, show_progress: bool | None = None
    ) -> str:
        dest = Path(local_path) / self.name
        if dest.exists() and not overwrite:
            raise InvalidInputError(f"{dest} exists; pass overwrite=True to replace it.")
        shutil.copytree(self.path_on_datastore, dest, symlinks=True, dirs_exist_ok=True)  # links stay links
        return str(dest)

    def __repr__(self) -> str:
        return f"PortDataReference(name={self.name!r}, path={self.path_on_datastore!r})"


class PipelineRun(Run):
    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> PipelineRun:
        run = Run.get(workspace, run_id)
        if not isinstance(run, PipelineRun):
            raise InvalidInputError(f"Run {run_id} is a {run.type}, not a pipeline run.")
        return run

    def get_status(self) -> str:
        """v1's pipeline vocabulary: NotStarted, Running, Finished, Failed, Canceled."""
        return PIPELINE_STATUS.get(self._refresh().status, "Running")  # type: ignore[call-overload]

    def cancel(self) -> None:
        """Ask the scheduler to stop the pipeline. A run no live scheduler owns (not picked up yet, or its
        scheduler died) ends here: its step processes are stopped and its steps canceled."""
        super().cancel()
        status = self._refresh().status
        if status == RunStatus.CANCEL_REQUESTED:
            ensure_running(self.workspace)  # the recorded scheduler may be gone: one must act on the request
        if status != RunStatus.CANCELED:
            return  # a live scheduler owns the run and stops its steps
        store = self.workspace.store
        for step in store.list_descendants(self.id, recursive=False):
            if step.status in TERMINAL_STATUSES:
                continue
            end_orphan(
                self.workspace,
                step.run_id,
                RunStatus.CANCELED,
                {"code": "Canceled", "message": "Pipeline canceled."},
            )

    def get_graph(self) -> dict[str, Any]:
        """The graph this run executes (plain dict, the same JSON the scheduler and studio read)."""
        return dict(self._record.data["graph"])

    def get_parameters(self) -> dict[str, Any]:
        return dict(self._record.data.get("parameters", {}))

    def _step_runs(self) -> list[StepRun]:
        order = {s["name"]: i for i, s in enumerate(self.get_graph()["steps"])}
        runs = [r for r in self.get_children() if isinstance(r, StepRun)]
        return sorted(runs, key=lambda r: order.get(r.name or "", 0))

    def get_steps(self) -> Iterator[StepRun]:
        """Step runs that started or finished (reused and canceled steps included), in graph order."""
        yield from (r for r in self._step_runs() if r._record.status != RunStatus.NOT_STARTED)

    def find_step_run(self, name: str) -> list[StepRun]:
        return [r for r in self._step_runs() if r.name == name]

    def get_reuse_report(self) -> list[dict[str, Any]]:
        """Per step: reused or not, and why. The same record `runyard pipeline why` prints."""
        report = []
        for step in self._step_runs():
            data = step._record.data
            decision = data.get("reuse", {})
            report.append(
                {
                    "step": step.name,
                    "runId": step.id,
                    "status": step._record.status,
                    "reused": bool(data.get("reusedFrom")),
                    "reusedFrom": data.get("reusedFrom"),
                    "reason": decision.get("reason")
                    or (data.get("error") or {}).get("message", "not decided yet"),
                    "changed": decision.get("changed", []),
                    "details": decision.get("details", []),
                }
            )
        return report

    def clone(self) -> Pipeline:
        """A draft pipeline from this run's snapshot: same graph, same files; submit it with new parameters."""
        from runyard.pipeline.pipeline import Pipeline

        return Pipeline._from_graph(self.workspace, self.get_graph())

    def wait_for_completion(  # type: ignore[override]  # v1 returns the final status string here
        self,
        show_output: bool = True,
        timeout_seconds: float = sys.maxsize,
        raise_on_error: bool = True,
    ) -> str:
        """Block until the pipeline ends; with show_output, stream each step's driver log prefixed by its name."""
        deadline = time.monotonic() + timeout_seconds
        watcher = _StepLogWatcher(self, sys.stdout) if show_output else None
        if watcher:
            print(f"PipelineRunId: {self.id}\nLink to runyard studio: {self.get_portal_url()}")
        last_check = time.monotonic()
        while True:
            status = self._refresh().status
            if watcher:
                watcher.poll()
            if status in TERMINAL_STATUSES:
                break
            if time.monotonic() - last_check > 2.0:
                ensure_running(self.workspace)  # a crashed scheduler comes back and recovers this run
                last_check = time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"Pipeline run {self.id} did not finish within {timeout_seconds}s.")
            time.sleep(0.1)
        if watcher:
            watcher.poll()
            print(
                f"\nPipelineRun Execution Summary\n{'=' * 29}\nPipelineRun {self.id} Status: {self.get_status()}"
            )
            for item in self.get_reuse_report():
                how = f"reused {item['reusedFrom']}" if item["reused"] else item["reason"].splitlines()[0]
                print(f"  {item['step']:<20} {item['status']:<10} {how}")
        if raise_on_error and self._record.status == RunStatus.FAILED:
            failed = [r for r in self._step_runs() if r._record.status == RunStatus.FAILED]
            error = failed[0]._record.data.get("error") if failed else None
            raise RunFailedError(
                self.id,
                {
                    "message": f"step {failed[0].name!r} failed: " + (error or {}).get("message", "")
                    if failed
                    else "pipeline failed"
                },
            )
        return self.get_status()


class _StepLogWatcher:
    """Prints new lines of every step's driver log, prefixed by the step name, and status changes."""

    def __init__(self, run: PipelineRun, out: TextIO) -> None:
        self.run, self.out = run, out
        self.offsets: dict[str, int] = {}
        self.partial: dict[str, bytes] = {}
        self.statuses: dict[str, str] = {}

    def poll(self) -> None:
        for step in self.run._step_runs():
            status = step._record.status
            name = step.name or step.id
            if self.statuses.get(step.id) != status:
                self.statuses[step.id] = status
                extra = (
                    f" (reused {step._record.data['reusedFrom']})"
                    if step._record.data.get("reusedFrom")
                    else ""
                )
                shown = STEP_STATUS.get(status, "Running")  # type: ignore[call-overload]
                self.out.write(f"StepRun({name}) Status: {shown}{extra}\n")
            data = step.read_log(DRIVER_LOG, self.offsets.get(step.id, 0))
            if not data:
                continue
            self.offsets[step.id] = self.offsets.get(step.id, 0) + len(data)
            lines = (self.partial.pop(step.id, b"") + data).split(b"\n")
            self.partial[step.id] = lines.pop()
            for line in lines:
                self.out.write(f"[{name}] {line.decode('utf-8', errors='replace')}\n")
        self.out.flush()


RUN_CLASSES[PIPELINE_RUN_TYPE] = PipelineRun
RUN_CLASSES[STEP_RUN_TYPE] = StepRun
