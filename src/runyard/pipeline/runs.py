"""PipelineRun and StepRun: Run subclasses with v1's pipeline methods and status words.

Internally every run uses one status machine (runyard.status). v1 shows pipelines and steps with
other words ("Finished" for Completed); those translations (pipeline/status_words.py) happen at this
edge and in the wait output, nowhere else.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.compat import v1_ignores, v1_keywords
from runyard.core.context import end_orphan
from runyard.core.run import RUN_CLASSES, Run
from runyard.core.run_files import DRIVER_LOG
from runyard.core.run_values import PIPELINE_ID_PROPERTY, PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.errors import InvalidInputError, RunFailedError
from runyard.pipeline.status_words import PIPELINE_STATUS, STEP_STATUS

# The engine, the wait display (rich), the data classes and the progress model (pydantic) are imported in
# the methods that use them: a step's job makes its StepRun with Run.get_context() and must stay light
# (tests/test_job_imports.py).
from runyard.status import TERMINAL_STATUSES, RunStatus

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.workspace import Workspace
    from runyard.pipeline.pipeline import Pipeline
    from runyard.pipeline.port_data import PortDataReference, StepRunOutput
    from runyard.pipeline.published import PublishedPipeline


@v1_keywords
class StepRun(Run):
    @v1_ignores(node_id="a step run is found by its run id; runyard's graph has no node ids")
    def __init__(
        self,
        experiment: Experiment,
        step_run_id: str,
        pipeline_run_id: str | None = None,
        node_id: str | None = None,
    ) -> None:
        super().__init__(experiment, step_run_id)
        if pipeline_run_id is not None and pipeline_run_id != self._record.parent_id:
            raise InvalidInputError(
                f"Step run {step_run_id} belongs to pipeline run {self._record.parent_id}, not {pipeline_run_id}."
            )

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

    def complete(self, _set_status: bool = True) -> None:
        """Write pending metrics; in the step's own process, leave the ending to the scheduler.

        v1 step scripts (the DP-100 labs) end with `run.complete()`. The step is not over then: its
        process still exits and its outputs are recorded when it does, so in that process this only
        flushes metrics, and the scheduler marks the step Completed after the process exits (issue
        11, bug 1). Anywhere else it ends the run as `Run.complete` does."""
        if os.environ.get(config.ENV_RUN_ID) == self.id:
            self.flush()
            return
        super().complete(_set_status)

    def fail(  # type: ignore[override]  # v1's StepRun.fail() takes no arguments: runyard's are keywords
        self, *, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        super().fail(error_details=error_details, error_code=error_code, _set_status=_set_status)

    def get_reuse_decision(self) -> dict[str, Any]:
        """Whether this step was reused, and in words why (not)."""
        return dict(self._refresh().data.get("reuse", {}))

    def wait_for_completion(  # type: ignore[override]  # v1 returns the final status word here
        self, show_output: bool = True, timeout_seconds: float = sys.maxsize, raise_on_error: bool = True
    ) -> str:
        """Block until the step ends; with show_output, print its driver log as it grows, and for a
        ParallelRunStep its progress (a bar on a terminal, a line every 10 s elsewhere)."""
        from runyard.parallel.progress import read_progress
        from runyard.pipeline import wait_output as w

        deadline = time.monotonic() + timeout_seconds
        offset = 0
        display = w.ProgressDisplay(sys.stdout) if show_output else None
        parallel = show_output and self._is_parallel()
        changes = w.ChangeWatch(self)  # the record is read again only when the step's marker moved
        ended = False
        try:
            while True:
                ended = ended or (changes.moved() and self._ended())
                if display is not None:
                    data = self.read_log(DRIVER_LOG, offset)
                    offset += len(data)
                    display.write(self._decode(data))
                    if parallel and (ended or display.due(self.id)):
                        display.update(self.id, self.name or self.id, read_progress(self), ended)
                    sys.stdout.flush()
                if ended:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Step run {self.id} did not finish within {timeout_seconds}s.")
                time.sleep(w.POLL_INTERVAL)
        finally:
            if display is not None:
                display.close()
        if raise_on_error and self._record.status == RunStatus.FAILED:
            raise RunFailedError(self.id, self._record.data.get("error"))
        return self.get_status()

    def _is_parallel(self) -> bool:
        """Whether this step is a ParallelRunStep of its pipeline's graph."""
        from runyard.pipeline import wait_output as w

        parent = self._record.parent_id
        if not parent:
            return False
        graph = self.workspace.store.get_run(parent).data.get("graph")
        return (self.name or "") in w.parallel_steps(graph)

    def get_job_log(self) -> str:
        return self._decode(self.read_log(DRIVER_LOG))

    get_stdout_log = get_job_log

    def get_stderr_log(self) -> str:
        """stderr is merged into the driver log, in order, so this returns the same text as get_stdout_log()."""
        return self.get_job_log()

    def get_outputs(self) -> dict[str, StepRunOutput]:
        """Every output this step recorded, by name (v1: StepRunOutput values)."""
        from runyard.pipeline.port_data import StepRunOutput

        return {
            name: StepRunOutput(self.workspace, self.pipeline_run_id, self, name, info)
            for name, info in self._refresh().data.get("outputs", {}).items()
        }

    def get_output(self, name: str) -> StepRunOutput:
        """v1: `step_run.get_output(name).get_port_data_reference()`."""
        outputs = self.get_outputs()
        if name not in outputs:
            status = RunStatus(self._record.status)
            if status in (RunStatus.FAILED, RunStatus.CANCELED) and name in self._declared_outputs():
                raise InvalidInputError(
                    f"Step {self.name!r} {STEP_STATUS[status]} before recording output {name!r}; see its "
                    f"logs: `runyard runs show {self.id}`"
                )
            raise InvalidInputError(
                f"Step {self.name!r} has no output {name!r}; it has {sorted(outputs) or 'none'}."
            )
        return outputs[name]

    def _declared_outputs(self) -> set[str]:
        """The outputs this step's entry in its pipeline's graph declares (recorded or not)."""
        parent = self._record.parent_id
        graph = self.workspace.store.get_run(parent).data.get("graph") if parent else None
        for step in (graph or {}).get("steps") or []:
            if isinstance(step, dict) and step.get("name") == self.name:
                return {str(o.get("name")) for o in step.get("outputs") or [] if isinstance(o, dict)}
        return set()

    def get_output_data(self, name: str) -> PortDataReference:
        return self.get_output(name).get_port_data_reference()


@v1_keywords
class PipelineRun(Run):
    def __init__(self, experiment: Experiment, run_id: str) -> None:
        super().__init__(experiment, run_id)

    def fail(  # type: ignore[override]  # v1's PipelineRun.fail() takes no arguments: runyard's are keywords
        self, *, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        super().fail(error_details=error_details, error_code=error_code, _set_status=_set_status)

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
        from runyard.engine.service import ensure_running

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

    def get_pipeline_output(self, pipeline_output_name: str) -> PortDataReference:
        """The output declared with PipelineData(..., pipeline_output_name=...), once its step completed."""
        for step in self.get_graph()["steps"]:
            for output in step["outputs"]:
                if output.get("pipeline_output") == pipeline_output_name:
                    found = self.find_step_run(step["name"])
                    if not found or output["name"] not in found[0].get_outputs():
                        raise InvalidInputError(
                            f"Pipeline output {pipeline_output_name!r} (output {output['name']!r} of step "
                            f"{step['name']!r}) has not been written yet; wait_for_completion() first."
                        )
                    return found[0].get_output_data(output["name"])
        names = sorted(
            o["pipeline_output"]
            for s in self.get_graph()["steps"]
            for o in s["outputs"]
            if o.get("pipeline_output")
        )
        raise InvalidInputError(
            f"Pipeline run {self.id} has no pipeline output {pipeline_output_name!r}; it has {names or 'none'}. "
            "Declare one with PipelineData(name, pipeline_output_name=...)."
        )

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

    def get_data_lineage(self) -> list[dict[str, Any]]:
        """runyard's own: what each step read and wrote, from the store's lineage rows, in graph order:
        {"step", "runId", "direction" ("input"/"output"), "name", "datasetId", "contentHash", "detail"}.
        A reused step lists what its original read and wrote, recorded again under its own run id."""
        rows = []
        for step in self._step_runs():
            for use in self.workspace.store.list_dataset_uses(run_id=step.id):
                rows.append(
                    {
                        "step": step.name,
                        "runId": step.id,
                        "direction": use.direction,
                        "name": use.name,
                        "datasetId": use.dataset_id,
                        "contentHash": use.content_hash,
                        "detail": dict(use.detail),
                    }
                )
        return rows

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

    def publish_pipeline(
        self,
        name: str,
        description: str | None,
        version: str | None,
        continue_on_step_failure: bool | None = None,
        **kwargs: Any,
    ) -> PublishedPipeline:
        """Publish the graph this run executed (its source snapshots, not today's files) as a PublishedPipeline."""
        from runyard.pipeline.published import publish_run

        return publish_run(self, name, description, version, continue_on_step_failure, **kwargs)

    @staticmethod
    @v1_ignores(
        _service_endpoint="runyard reads and writes the workspace's own store; there is no service client to pass"
    )
    def get_pipeline_runs(
        workspace: Workspace, pipeline_id: str, _service_endpoint: Any = None
    ) -> list[PipelineRun]:
        """The runs submitted from published pipeline `pipeline_id` (property azureml.pipelineid), newest first."""
        from runyard.pipeline.published import runs_with_property

        workspace.store.get_published_pipeline(pipeline_id)  # PublishedPipelineNotFound for a wrong id
        return runs_with_property(workspace, PIPELINE_ID_PROPERTY, pipeline_id)

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
        from runyard.engine.service import ensure_running
        from runyard.pipeline import wait_output as w

        deadline = time.monotonic() + timeout_seconds
        watcher = w.StepLogWatcher(self, sys.stdout) if show_output else None
        if watcher:
            print(f"PipelineRunId: {self.id}\nLink to runyard studio: {self.get_portal_url()}")
        last_check = time.monotonic()
        changes = w.ChangeWatch(self)  # the run and its steps are read again only when its marker moved
        status = self._record.status
        try:
            while True:
                if changes.moved():
                    status = self._refresh().status
                    if watcher:
                        watcher.steps = self._step_runs()
                if watcher:
                    watcher.poll()
                if status in TERMINAL_STATUSES:
                    break
                if time.monotonic() - last_check > 2.0:
                    ensure_running(self.workspace)  # a crashed scheduler comes back and recovers this run
                    last_check = time.monotonic()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"Pipeline run {self.id} did not finish within {timeout_seconds}s.")
                time.sleep(w.POLL_INTERVAL)
            if watcher:
                watcher.steps = self._step_runs()
                watcher.poll(final=True)
        finally:
            if watcher:
                watcher.close()  # ends a progress bar, also when the wait times out or is interrupted
        if watcher:
            print(
                f"\nPipelineRun Execution Summary\n{'=' * 29}\nPipelineRun {self.id} Status: {self.get_status()}"
            )
            errors = {s.id: s._record.data.get("error") or {} for s in self._step_runs()}
            for item in self.get_reuse_report():
                if item["status"] == RunStatus.FAILED:  # how it ended, not why it ran
                    message = str(errors.get(item["runId"], {}).get("message") or "").strip()
                    how = "failed: " + (
                        message.splitlines()[0] if message else "no error message was recorded"
                    )
                elif item["reused"]:
                    how = f"reused {item['reusedFrom']}"
                else:
                    how = item["reason"].splitlines()[0]
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


RUN_CLASSES[PIPELINE_RUN_TYPE] = PipelineRun
RUN_CLASSES[STEP_RUN_TYPE] = StepRun
