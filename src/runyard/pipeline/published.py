"""PublishedPipeline and PipelineEndpoint: v1's frozen, re-runnable pipelines and their named, versioned doors.

Publishing stores the compiled graph with every step's source snapshot pinned (content-addressed), so a
published pipeline runs the files as they were when it was published, whatever happens on disk later.
Submitting one, from Python, over REST (server/routes_pipeline_submit.py) or from a schedule, goes
through engine/submission.py, which builds the run from that stored graph alone.
"""

from __future__ import annotations

import builtins
import hashlib
import html
import json
import time
import uuid
import warnings
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runyard.compat import check_keywords, v1_ignores, v1_keywords, warn_ignored
from runyard.core.experiment import Experiment
from runyard.core.run_values import PIPELINE_RUN_TYPE
from runyard.engine.service import ensure_running
from runyard.engine.submission import (
    check_graph,
    ignored_parameters_warning,
    submit_published,
    unknown_parameters,
)
from runyard.pipeline.data import parameter_json
from runyard.pipeline.pipeline import _submitter
from runyard.store import SqlStore
from runyard.store.publish_rules import check_published_pipeline
from runyard.store.records import ACTIVE, DISABLED, PublishedPipelineRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.pipeline.runs import PipelineRun

#: The REST doors a runyard server opens for published pipelines and endpoints (v1's URL shapes).
PUBLISHED_SUBMIT_PATH = "/pipelines/v1.0/PipelineRuns/PipelineSubmit/{id}"
ENDPOINT_SUBMIT_PATH = "/pipelines/v1.0/PipelineRuns/PipelineEndpointSubmit/Id/{id}"
#: v1 also submits an endpoint found by name: `PipelineEndpointSubmit/Name?name=…&pipelineVersion=…`.
ENDPOINT_SUBMIT_BY_NAME_PATH = "/pipelines/v1.0/PipelineRuns/PipelineEndpointSubmit/Name"
#: The studio pages of one published pipeline and one endpoint (studio/published_pages.py).
PUBLISHED_PAGE_PATH = "/published/{id}"
ENDPOINT_PAGE_PATH = "/endpoints/{id}"

PROVIDER = "runyard reads and writes the workspace's own store; there is no service client to pass"
EMAIL = "runyard sends no e-mail"
#: What `Experiment.submit(published_pipeline_or_endpoint, ...)` accepts besides tags.
SUBMIT_KEYWORDS = (
    "pipeline_parameters",
    "parent_run_id",
    "continue_on_step_failure",
    "pipeline_params",
    "pipeline_version",
    "show_output",
)


def _who() -> dict[str, Any] | None:
    return _submitter.get()


def _start(ws: Workspace, experiment_name: str, run_id: str, show_output: bool) -> PipelineRun:
    """What every Python submit does after the records exist: print as v1 does, start the scheduler."""
    from runyard.pipeline.runs import PipelineRun

    run = PipelineRun(Experiment(ws, experiment_name), run_id)
    if show_output:
        print(f"Submitted PipelineRun {run_id}\nLink to runyard studio: {run.get_portal_url()}")
    ensure_running(ws, accept_unauthenticated=(_who() or {}).get("auth") == "off")
    return run


def _parameters(values: dict[str, Any] | None) -> dict[str, Any]:
    """pipeline_parameters in JSON form: a dataset travels as {"dataset": …}, a DataPath as {"datapath": …}."""
    return {name: parameter_json(value) for name, value in (values or {}).items()}


def html_table(ws: Workspace, cells: Mapping[str, Any], links: Mapping[str, str]) -> str:
    """v1's notebook view of a published object: a one-row table, every value escaped; `links` are the
    columns shown as links (text -> URL). When this process holds the workspace's database, nothing may
    be serving the REST endpoint yet: the caption says what does (v1's publish prints nothing, so the
    hint lives here and in docs/publishing.md rather than in a print)."""
    head = "".join(f"<th>{html.escape(k)}</th>" for k in [*cells, *links])
    row = "".join(f"<td>{html.escape(str(v) if v is not None else '')}</td>" for v in cells.values())
    row += "".join(
        f'<td><a href="{html.escape(url)}" target="_blank" rel="noopener">{html.escape(text)}</a></td>'
        for text, url in links.items()
    )
    caption = ""
    if isinstance(ws.store, SqlStore):
        caption = (
            "<caption>Its REST endpoint is served by <code>runyard up</code> (or <code>runyard server "
            f"--compute</code>) at {html.escape(ws.studio_url)}; a server on another address needs "
            "<code>RUNYARD_STUDIO_URL</code>.</caption>"
        )
    return f"<table>{caption}<tr>{head}</tr><tr>{row}</tr></table>"


def _warn_ignored(record: PublishedPipelineRecord, values: dict[str, Any], stacklevel: int = 3) -> None:
    """v1 ignores names a published pipeline does not declare; runyard ignores them too, but says so."""
    ignored = unknown_parameters(record.graph, values)
    if ignored:
        warnings.warn(ignored_parameters_warning(record.graph, ignored), UserWarning, stacklevel=stacklevel)


def publish_graph(
    ws: Workspace,
    graph: dict[str, Any],
    name: str | None,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool | None,
    *,
    source_run_id: str | None = None,
) -> PublishedPipeline:
    """Store `graph` (compiled, snapshots pinned) as an Active published pipeline.

    The graph is checked as a submit would check it first: PipelineRun.publish_pipeline publishes a run's
    stored graph, and a run record may be a crafted one (docs/security.md), so a junk graph is refused
    here, in words, instead of being stored for every later submit, schedule and studio page to trip on."""
    check_graph(graph)
    who = _who()
    record = PublishedPipelineRecord(
        id=str(uuid.uuid4()),
        name=name if name is not None else f"Pipeline-{datetime.now():%m-%d-%Y-%H-%M}",
        status=ACTIVE,
        created_time=time.time(),
        graph=graph,
        description=description,
        version=None if version is None else str(version),
        continue_on_step_failure=bool(continue_on_step_failure),
        data={
            **({"createdBy": dict(who)} if who else {}),
            **({"sourceRunId": source_run_id} if source_run_id else {}),
        },
    )
    return PublishedPipeline._from_record(
        ws, ws.store.create_published_pipeline(check_published_pipeline(record))
    )


def runs_with_property(ws: Workspace, key: str, value: str) -> builtins.list[PipelineRun]:
    """The pipeline runs whose property `key` is `value` (where they came from), newest first."""
    from runyard.pipeline.runs import PipelineRun

    records = ws.store.list_runs(run_type=PIPELINE_RUN_TYPE, property_key=key, property_value=value)
    experiments: dict[str, Experiment] = {}
    runs: builtins.list[PipelineRun] = []
    for record in records:  # handles built from the listed records: no query per run
        if record.experiment_name not in experiments:
            experiments[record.experiment_name] = Experiment._existing(ws, record.experiment_name)
        run = PipelineRun.__new__(PipelineRun)
        run._experiment, run.workspace, run._id = experiments[record.experiment_name], ws, record.run_id
        run._record, run._writable_checked = record, False
        runs.append(run)
    return runs


def publish_run(
    run: PipelineRun,
    name: str,
    description: str | None,
    version: str | None,
    continue_on_step_failure: bool | None,
    **kwargs: Any,
) -> PublishedPipeline:
    """PipelineRun.publish_pipeline: the graph that run executed (its snapshots, not today's files)."""
    check_keywords("publish_pipeline", kwargs, ["enable_email_notification"])
    if kwargs.get("enable_email_notification") is not None:
        warn_ignored("PipelineRun.publish_pipeline", "enable_email_notification", EMAIL)
    graph = run.get_graph()
    return publish_graph(
        run.workspace, graph, name, description, version, continue_on_step_failure, source_run_id=run.id
    )


def graph_id_of(graph: dict[str, Any]) -> str:
    """v1's graph_id: here a content hash of the frozen graph (same graph, same id), so the Python API and
    the REST door's GraphId agree."""
    canonical = json.dumps(graph, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


@v1_keywords
class PublishedPipeline:
    """A pipeline frozen when it was published; submit it again with new parameters, from here or over REST."""

    @v1_ignores(_pipeline_provider=PROVIDER)
    def __init__(
        self,
        name: str,
        graph_id: str,
        description: str | None,
        version: str | None,
        published_pipeline_id: str,
        status: str,
        endpoint: str,
        total_run_steps: int,
        workspace: Workspace,
        continue_on_step_failure: bool | None = None,
        _pipeline_provider: Any = None,
        **kwargs: Any,
    ) -> None:
        check_keywords("PublishedPipeline", kwargs, ["enable_email_notification"])
        if kwargs.get("enable_email_notification") is not None:
            warn_ignored("PublishedPipeline", "enable_email_notification", EMAIL)
        self._name, self._graph_id, self._description, self._version = name, graph_id, description, version
        self._id, self._status, self._endpoint = published_pipeline_id, status, endpoint
        self._total_run_steps, self._continue_on_step_failure = total_run_steps, continue_on_step_failure
        self.workspace = workspace

    @classmethod
    def _from_record(cls, ws: Workspace, record: PublishedPipelineRecord) -> PublishedPipeline:
        return cls(
            name=record.name,
            graph_id=graph_id_of(record.graph),
            description=record.description,
            version=record.version,
            published_pipeline_id=record.id,
            status=record.status,
            endpoint=ws.studio_url + PUBLISHED_SUBMIT_PATH.format(id=record.id),
            total_run_steps=len(record.graph.get("steps") or []),
            workspace=ws,
            continue_on_step_failure=record.continue_on_step_failure,
        )

    def _record(self) -> PublishedPipelineRecord:
        record = self.workspace.store.get_published_pipeline(self._id)
        self._status = record.status
        return record

    name = property(lambda self: self._name, doc="The name given at publish.")
    description = property(lambda self: self._description, doc="The description given at publish.")
    version = property(lambda self: self._version, doc="The version text given at publish (v1: free text).")
    id = property(lambda self: self._id, doc="The published pipeline's id.")
    graph_id = property(lambda self: self._graph_id, doc="A content hash of the frozen graph.")
    status = property(lambda self: self._status, doc="'Active' or 'Disabled' (as last read).")
    endpoint = property(lambda self: self._endpoint, doc="The REST URL that starts a run of it.")
    total_run_steps = property(lambda self: self._total_run_steps, doc="How many steps the graph has.")
    continue_on_step_failure = property(
        lambda self: self._continue_on_step_failure, doc="Whether a run goes on after a step fails."
    )

    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def submit(
        self,
        workspace: Workspace,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
        parent_run_id: str | None = None,
        continue_on_step_failure: bool | None = None,
        *,
        show_output: bool = True,
    ) -> PipelineRun:
        """A new PipelineRun of the frozen graph in `workspace` (runyard: show_output=False keeps it quiet)."""
        record = workspace.store.get_published_pipeline(self._id)
        self._status = record.status
        values = _parameters(pipeline_parameters)
        created = submit_published(
            workspace,
            record,
            experiment_name,
            values,
            submitter=_who(),
            continue_on_step_failure=continue_on_step_failure,
            parent_id=parent_run_id,
        )
        _warn_ignored(record, values, stacklevel=4)  # past v1_ignores' wrapper, to the caller
        return _start(workspace, experiment_name, created.run_id, show_output)

    def _submit_to(self, experiment: Experiment, tags: dict[str, Any] | None, **kwargs: Any) -> PipelineRun:
        """What `experiment.submit(published_pipeline, ...)` calls (v1 allows that too)."""
        check_keywords("submit", kwargs, [k for k in SUBMIT_KEYWORDS if k != "pipeline_version"])
        params = kwargs.get("pipeline_parameters") or kwargs.get("pipeline_params")
        run = self.submit(
            experiment.workspace,
            experiment.name,
            params,
            parent_run_id=kwargs.get("parent_run_id"),
            continue_on_step_failure=kwargs.get("continue_on_step_failure"),
            show_output=kwargs.get("show_output", True),
        )
        if tags:
            run.set_tags(tags)
        return run

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get(
        workspace: Workspace, id: str, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> PublishedPipeline:
        """The published pipeline with this id (PublishedPipelineNotFound if there is none)."""
        return PublishedPipeline._from_record(workspace, workspace.store.get_published_pipeline(id))

    @staticmethod
    @v1_ignores(_service_endpoint=PROVIDER)
    def list(
        workspace: Workspace, active_only: bool = True, _service_endpoint: Any = None
    ) -> builtins.list[PublishedPipeline]:
        """Published pipelines of the workspace, newest first; active_only=False includes disabled ones."""
        records = workspace.store.list_published_pipelines(active_only=active_only)
        return [PublishedPipeline._from_record(workspace, r) for r in records]

    @staticmethod
    @v1_ignores(_service_endpoint=PROVIDER)
    def get_all(
        workspace: Workspace, active_only: bool = True, _service_endpoint: Any = None
    ) -> builtins.list[PublishedPipeline]:
        """v1's older name for list()."""
        return PublishedPipeline.list(workspace, active_only)

    def enable(self) -> None:
        """Make it Active: it can be submitted again."""
        self._status = self.workspace.store.set_published_pipeline_status(self._id, ACTIVE).status

    def disable(self) -> None:
        """Make it Disabled: submits (Python, REST, schedules) are refused with PipelineDisabled."""
        self._status = self.workspace.store.set_published_pipeline_status(self._id, DISABLED).status

    @v1_ignores(_workflow_provider=PROVIDER)
    def get_graph(self, _workflow_provider: Any = None) -> dict[str, Any]:
        """The frozen graph (plain dict, the JSON PipelineRun.get_graph returns too)."""
        return dict(self._record().graph)

    @v1_ignores(_workflow_provider=PROVIDER)
    def get_step_names(self, _workflow_provider: Any = None) -> builtins.list[str]:
        return [str(step["name"]) for step in self.get_graph().get("steps") or []]

    def get_portal_url(self) -> str:
        """The studio page of this published pipeline."""
        return self.workspace.studio_url + PUBLISHED_PAGE_PATH.format(id=self._id)

    @property
    def portal_url(self) -> str:
        return self.get_portal_url()

    def _repr_html_(self) -> str:
        cells = {"Name": self._name, "Id": self._id, "Status": self._status, "Endpoint": self._endpoint}
        return html_table(self.workspace, cells, {"Link to runyard studio": self.get_portal_url()})

    def __repr__(self) -> str:
        return (
            f"PublishedPipeline(Name: {self._name}, Id: {self._id}, Status: {self._status}, "
            f"Endpoint: {self._endpoint})"
        )
