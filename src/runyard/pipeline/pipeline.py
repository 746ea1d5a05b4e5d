"""Pipeline: a set of steps, validated and compiled to one graph, then submitted as a PipelineRun."""

from __future__ import annotations

import contextlib
import copy
import sys
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compat import check_keywords, v1_ignores, v1_keywords, warn_ignored
from runyard.core.experiment import Experiment
from runyard.core.snapshot import snapshot_files
from runyard.engine.graph_spec import GraphError, parse_graph
from runyard.engine.service import ensure_running
from runyard.engine.submission import create_pipeline_run, parameter_kind_errors, parameter_name_errors
from runyard.errors import InvalidInputError
from runyard.pipeline.data import parameter_json
from runyard.pipeline.graph import collect_steps, compile_graph
from runyard.store.snapshots import SnapshotStore

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.pipeline.published import PublishedPipeline
    from runyard.pipeline.runs import PipelineRun


#: Who submits pipelines in this context, when it is not the local user: the studio sets it to the
#: signed-in token, so the scheduler can check that token may run code on the target (docs/security.md).
_submitter: ContextVar[dict[str, Any] | None] = ContextVar("runyard_submitter", default=None)


@contextlib.contextmanager
def submitted_as(principal: dict[str, Any]) -> Iterator[None]:
    """Pipelines submitted inside this block are recorded as submitted by `principal` (e.g. a token)."""
    reset = _submitter.set(dict(principal))
    try:
        yield
    finally:
        _submitter.reset(reset)


#: What `Experiment(ws, name).submit(pipeline, ...)` and `Pipeline.submit` accept besides tags: v1's
#: keywords, v1's older `pipeline_params`, and runyard's `show_output`.
SUBMIT_KEYWORDS = (
    "pipeline_parameters",
    "continue_on_step_failure",
    "regenerate_outputs",
    "parent_run_id",
    "credential_passthrough",
    "pipeline_params",
    "show_output",
)
CREDENTIAL_PASSTHROUGH = "steps run as the local user who submits; there are no cloud identities to pass"


@v1_keywords
class Pipeline:
    @v1_ignores(
        default_datastore="each output names its own datastore folder (default 'workspaceblobstore')",
    )
    def __init__(
        self,
        workspace: Workspace,
        steps: list[Any],
        description: str | None = None,
        default_datastore: Any = None,
        default_source_directory: str | None = None,
        resolve_closure: bool = True,
    ) -> None:
        self.workspace = workspace
        self.description = description
        self.default_source_directory = default_source_directory
        self.steps = collect_steps(list(steps), resolve_closure)
        self._graph: dict[str, Any] | None = None  # set for drafts cloned from a run

    @classmethod
    def _from_graph(cls, workspace: Workspace, graph: dict[str, Any]) -> Pipeline:
        draft = cls(workspace, [], description=graph.get("description"))
        draft._graph = copy.deepcopy(graph)
        return draft

    def _compile(
        self, parameter_values: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[str], list[str]]:
        if self._graph is not None:  # a clone: the stored graph is input, checked as the scheduler will
            graph = copy.deepcopy(self._graph)
            try:
                parse_graph(graph)
            except GraphError as exc:
                return graph, [f"The pipeline's graph is not valid: {exc}."], []
            return graph, parameter_name_errors(graph, parameter_values or {}), []
        if not self.steps:
            return {}, ["The pipeline has no steps; pass steps=[...]."], []
        return compile_graph(
            self.steps,
            description=self.description,
            default_source_directory=self.default_source_directory,
            parameter_values=parameter_values,
            workspace=self.workspace,
        )

    def validate(self, *, pipeline_parameters: dict[str, Any] | None = None) -> list[str]:
        """Every problem that would stop the pipeline, as sentences; [] when it can run. Warnings are issued too."""
        _graph, errors, notes = self._compile(pipeline_parameters)
        for note in notes:
            warnings.warn(note, stacklevel=_user_frame())
        return errors

    @property
    def graph(self) -> dict[str, Any]:
        graph, errors, _ = self._compile(None)
        if errors:
            raise InvalidInputError("The pipeline is not valid:\n- " + "\n- ".join(errors))
        return graph

    def publish(
        self,
        name: str | None = None,
        description: str | None = None,
        version: str | None = None,
        continue_on_step_failure: bool | None = None,
    ) -> PublishedPipeline:
        """Freeze this pipeline (graph and source snapshots) as a PublishedPipeline that can be submitted again,
        over REST too; later edits of the files on disk do not change it."""
        from runyard.pipeline.published import publish_graph

        graph, errors, notes = self._compile(None)
        for note in notes:
            warnings.warn(note, stacklevel=_user_frame())
        if errors:
            raise InvalidInputError("The pipeline cannot be published:\n- " + "\n- ".join(errors))
        _snapshot_sources(self.workspace, graph)
        return publish_graph(self.workspace, graph, name, description, version, continue_on_step_failure)

    def service_endpoint(self) -> str:
        """v1: the URL of the pipelines service; here the workspace's server (the REST doors live under it)."""
        return str(self.workspace.studio_url)

    @v1_ignores(credential_passthrough=CREDENTIAL_PASSTHROUGH)
    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        parent_run_id: str | None = None,
        credential_passthrough: Any = None,
        *,
        tags: dict[str, Any] | None = None,
        show_output: bool = True,
    ) -> PipelineRun:
        """Submit as a new PipelineRun of experiment `experiment_name` (runyard: show_output=False keeps it quiet)."""
        return self._submit(
            Experiment(self.workspace, experiment_name),
            tags,
            pipeline_parameters=pipeline_parameters,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            parent_run_id=parent_run_id,
            credential_passthrough=credential_passthrough,
            show_output=show_output,
        )

    def _submit_to(self, experiment: Experiment, tags: dict[str, Any] | None, **kwargs: Any) -> PipelineRun:
        """What `experiment.submit(pipeline, ...)` calls: a mistyped keyword is a TypeError, not a default."""
        check_keywords("submit", kwargs, SUBMIT_KEYWORDS)
        return self._submit(experiment, tags, **kwargs)

    def _submit(
        self,
        experiment: Experiment,
        tags: dict[str, Any] | None,
        pipeline_parameters: dict[str, Any] | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        parent_run_id: str | None = None,
        credential_passthrough: Any = None,
        pipeline_params: dict[str, Any] | None = None,
        show_output: bool = True,
    ) -> PipelineRun:
        from runyard.pipeline.runs import PipelineRun

        if credential_passthrough is not None:
            warn_ignored("Pipeline.submit", "credential_passthrough", CREDENTIAL_PASSTHROUGH)
        values = dict(pipeline_parameters or pipeline_params or {})
        graph, errors, notes = self._compile(values)
        values = {n: parameter_json(v) for n, v in values.items()}  # datasets travel as {"dataset": payload}
        errors.extend(parameter_kind_errors(graph, values) if not errors else [])
        for note in notes:
            warnings.warn(note, stacklevel=_user_frame())
        if errors:
            raise InvalidInputError("The pipeline cannot be submitted:\n- " + "\n- ".join(errors))
        _snapshot_sources(experiment.workspace, graph)
        who = _submitter.get()
        record = create_pipeline_run(
            experiment.workspace,
            experiment.name,
            graph,
            parameter_values=values,
            continue_on_step_failure=continue_on_step_failure,
            regenerate_outputs=regenerate_outputs,
            parent_id=parent_run_id,
            submitter=who,
            tags=tags,
        )
        run_id = record.run_id
        run = PipelineRun(experiment, run_id)
        if show_output:
            for step in graph["steps"]:
                print(f"Created step {step['name']} [{step['source']['snapshot'][:8]}]")
            print(f"Submitted PipelineRun {run_id}\nLink to runyard studio: {run.get_portal_url()}")
        # A server without --auth submits as {"auth": "off"} only when it was started as compute (slice of
        # server/ that checks host_is_compute); the scheduler it starts may then run such pipelines.
        ensure_running(experiment.workspace, accept_unauthenticated=(who or {}).get("auth") == "off")
        return run


_PACKAGE = str(Path(__file__).resolve().parents[1])


def _user_frame() -> int:
    """The warnings.warn stacklevel of the first caller outside runyard: the v1 wrappers (compat.py)
    and Experiment.submit add frames, and a warning should point at the user's line."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _snapshot_sources(ws: Workspace, graph: dict[str, Any]) -> None:
    """Store each distinct source directory once (content-addressed) and pin its snapshot id in the graph."""
    store = SnapshotStore(ws.artifacts)
    done: dict[str, tuple[str, int]] = {}
    for step in graph["steps"]:
        source = step["source"]
        if "snapshot" in source:
            continue
        if source["dir"] not in done:
            folder = Path(source["dir"])
            snap = store.save(folder, snapshot_files(folder))
            done[source["dir"]] = (snap.id, len(snap.files))
        source["snapshot"], source["files"] = done[source["dir"]]
