"""PipelineEndpoint: one named REST door in front of numbered versions of published pipelines (v1's class).

Callers keep one URL while the pipeline behind it changes: `add_default(new_published)` makes the next
version ("0", "1", … as text, as v1 numbers them) the one a submit without `pipeline_version` runs. The
store keeps the versions (adding one is one transaction, so two writers never get the same number).
"""

from __future__ import annotations

import builtins
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from runyard.compat import check_keywords, v1_ignores, v1_keywords
from runyard.core.experiment import Experiment
from runyard.engine.submission import ENDPOINT_ID_PROPERTY, published_for_endpoint, submit_published
from runyard.errors import ConflictError, InvalidInputError, NotFoundError, PipelineDisabled
from runyard.pipeline.published import (
    ENDPOINT_PAGE_PATH,
    ENDPOINT_SUBMIT_PATH,
    PROVIDER,
    SUBMIT_KEYWORDS,
    PublishedPipeline,
    _parameters,
    _start,
    _warn_ignored,
    _who,
    html_table,
)
from runyard.store.publish_rules import check_pipeline_endpoint
from runyard.store.records import ACTIVE, DISABLED, PipelineEndpointRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.pipeline.runs import PipelineRun


@dataclass(frozen=True)
class PipelineIdVersion:
    """One version of an endpoint: its number (text) and the published pipeline's id (v1's class)."""

    version: str
    pipeline_id: str


@dataclass(frozen=True)
class PipelineVersion:
    """One version of an endpoint with its PublishedPipeline (what list_versions returns, as in v1)."""

    version: str
    pipeline: PublishedPipeline


def _published(pipeline: Any, where: str) -> PublishedPipeline:
    if not isinstance(pipeline, PublishedPipeline):
        raise InvalidInputError(
            f"PipelineEndpoint.{where} takes a PublishedPipeline, got {type(pipeline).__name__}; publish a "
            "Pipeline first: pipeline.publish(name=...)."
        )
    return pipeline


def _by_number(versions: dict[str, str]) -> builtins.list[tuple[str, str]]:
    return sorted(versions.items(), key=lambda item: int(item[0]))


@v1_keywords
class PipelineEndpoint:
    """A named, versioned door to published pipelines; `endpoint` is its REST URL on the workspace's server."""

    @v1_ignores(
        _pipeline_endpoint_provider=PROVIDER,
        _published_pipeline_provider=PROVIDER,
        _swaggerurl="a runyard server documents its routes at /docs, not per endpoint",
    )
    def __init__(
        self,
        workspace: Workspace,
        id: str,
        name: str,
        description: str | None,
        status: str,
        default_version: str,
        endpoint: str,
        pipeline_version_list: builtins.list[PipelineIdVersion],
        _pipeline_endpoint_provider: Any = None,
        _published_pipeline_provider: Any = None,
        _swaggerurl: str | None = None,
    ) -> None:
        self._workspace, self._id, self._name, self._description = workspace, id, name, description
        self._status, self._default_version, self._endpoint = status, default_version, endpoint
        self._pipeline_version_list = list(pipeline_version_list)
        self._swaggerurl = _swaggerurl

    @classmethod
    def _from_record(cls, ws: Workspace, record: PipelineEndpointRecord) -> PipelineEndpoint:
        return cls(
            workspace=ws,
            id=record.id,
            name=record.name,
            description=record.description,
            status=record.status,
            default_version=record.default_version,
            endpoint=ws.studio_url + ENDPOINT_SUBMIT_PATH.format(id=record.id),
            pipeline_version_list=[PipelineIdVersion(v, p) for v, p in _by_number(record.versions)],
        )

    @property
    def swaggerurl(self) -> str:
        """The server's API documentation (FastAPI's /docs), not a document per endpoint."""
        return str(self._workspace.studio_url) + "/docs"

    def _load(self, record: PipelineEndpointRecord) -> PipelineEndpointRecord:
        fresh = PipelineEndpoint._from_record(self._workspace, record)
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "_workspace"})
        return record

    def _refresh(self) -> PipelineEndpointRecord:
        return self._load(self._workspace.store.get_pipeline_endpoint(self._id))

    id = property(lambda self: self._id, doc="The endpoint's id.")
    name = property(lambda self: self._name, doc="The endpoint's name (unique in the workspace).")
    description = property(lambda self: self._description, doc="The description given at publish.")
    status = property(lambda self: self._status, doc="'Active' or 'Disabled' (as last read).")
    default_version = property(
        lambda self: self._default_version, doc="The version a submit runs by default."
    )
    endpoint = property(
        lambda self: self._endpoint, doc="The REST URL that starts a run of the default version."
    )
    pipeline_version_list = property(
        lambda self: list(self._pipeline_version_list), doc="Every version as PipelineIdVersion, in order."
    )

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def publish(
        workspace: Workspace,
        name: str,
        description: str | None,
        pipeline: Any,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> PipelineEndpoint:
        """A new endpoint whose version "0" is `pipeline` (a Pipeline is published first, as v1 does).

        ConflictError when an endpoint of that name exists: add versions to it with add() / add_default()."""
        from runyard.pipeline.pipeline import Pipeline

        try:
            workspace.store.get_pipeline_endpoint(name=name)
        except NotFoundError:
            pass
        else:
            raise ConflictError(
                f"A pipeline endpoint named {name!r} already exists. Add this pipeline as a new version with "
                f"PipelineEndpoint.get(ws, name={name!r}).add_default(published_pipeline), or choose another name."
            )
        if isinstance(pipeline, Pipeline):
            stamp = f"{name}-{datetime.now():%m-%d-%Y-%H-%M}-Pipeline"
            pipeline = pipeline.publish(name=stamp, description=f"Description for {stamp}")
        published = _published(pipeline, "publish")
        who = _who()
        record = PipelineEndpointRecord(
            id=str(uuid.uuid4()),
            name=name,
            status=ACTIVE,
            created_time=time.time(),
            default_version="0",
            versions={"0": published.id},
            description=description,
            data={"createdBy": dict(who)} if who else {},
        )
        stored = workspace.store.create_pipeline_endpoint(check_pipeline_endpoint(record))
        return PipelineEndpoint._from_record(workspace, stored)

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get(
        workspace: Workspace,
        id: str | None = None,
        name: str | None = None,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> PipelineEndpoint:
        """The endpoint with this id or name (PipelineEndpointNotFound if there is none)."""
        if id is None and name is None:
            raise InvalidInputError("PipelineEndpoint.get needs id=... or name=...; pass one of them.")
        return PipelineEndpoint._from_record(workspace, workspace.store.get_pipeline_endpoint(id, name))

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def list(
        workspace: Workspace,
        active_only: bool = True,
        max_results: int = 100,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> builtins.list[PipelineEndpoint]:
        """The workspace's endpoints by name, at most `max_results`."""
        records = workspace.store.list_pipeline_endpoints(active_only=active_only)[: max(0, max_results)]
        return [PipelineEndpoint._from_record(workspace, r) for r in records]

    @staticmethod
    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get_all(
        workspace: Workspace,
        active_only: bool = True,
        _workflow_provider: Any = None,
        _service_endpoint: Any = None,
    ) -> builtins.list[PipelineEndpoint]:
        """v1's older name for list() (without its limit)."""
        records = workspace.store.list_pipeline_endpoints(active_only=active_only)
        return [PipelineEndpoint._from_record(workspace, r) for r in records]

    def _update(self, **fields: Any) -> None:
        self._load(self._workspace.store.update_pipeline_endpoint(self._id, **fields))

    def enable(self) -> None:
        """Make it Active: submits are accepted again."""
        self._update(status=ACTIVE)

    def disable(self) -> None:
        """Make it Disabled: submits (Python, REST, schedules) are refused with PipelineDisabled."""
        self._update(status=DISABLED)

    def set_name(self, name: str) -> None:
        self._update(name=name)

    def archive(self) -> None:
        """v1: disable it and free its name (it gets a random one); reactivate(name) brings it back."""
        self._update(name=str(uuid.uuid4()), status=DISABLED)

    def reactivate(self, name: str) -> PipelineEndpoint:
        self._update(name=name, status=ACTIVE)
        return self

    def get_default_version(self) -> str:
        return str(self._default_version)

    def get_pipeline(self, version: str | None = None) -> PublishedPipeline:
        """The published pipeline of `version` (default: the default version)."""
        record = published_for_endpoint(self._workspace.store, self._refresh(), version)
        return PublishedPipeline._from_record(self._workspace, record)

    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def list_versions(
        self, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> builtins.list[PipelineVersion]:
        store = self._workspace.store
        return [
            PipelineVersion(
                v, PublishedPipeline._from_record(self._workspace, store.get_published_pipeline(p))
            )
            for v, p in _by_number(self._refresh().versions)
        ]

    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get_all_versions(
        self, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> builtins.list[PipelineVersion]:
        """v1's older name for list_versions()."""
        return self.list_versions()

    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def list_pipelines(
        self, active_only: bool = True, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> builtins.list[PublishedPipeline]:
        pipelines = [v.pipeline for v in self.list_versions()]
        return [p for p in pipelines if p.status == ACTIVE or not active_only]

    @v1_ignores(_workflow_provider=PROVIDER, _service_endpoint=PROVIDER)
    def get_all_pipelines(
        self, active_only: bool = True, _workflow_provider: Any = None, _service_endpoint: Any = None
    ) -> builtins.list[PublishedPipeline]:
        """v1's older name for list_pipelines()."""
        return self.list_pipelines(active_only)

    def add(self, pipeline: PublishedPipeline) -> None:
        """Add `pipeline` as the next version (a pipeline already in the endpoint keeps its version)."""
        pid = _published(pipeline, "add").id
        self._load(self._workspace.store.add_pipeline_endpoint_version(self._id, pid))

    def add_default(self, pipeline: PublishedPipeline) -> None:
        """Add `pipeline` as the next version and make that the default."""
        pid = _published(pipeline, "add_default").id
        self._load(self._workspace.store.add_pipeline_endpoint_version(self._id, pid, set_default=True))

    def set_default_version(self, version: str) -> None:
        versions = self._refresh().versions
        if str(version) not in versions:
            raise InvalidInputError(
                f"Cannot set version {version!r}: pipeline endpoint {self._name!r} has versions "
                f"{', '.join(v for v, _ in _by_number(versions))}; add() or add_default() a pipeline first."
            )
        self._update(default_version=str(version))

    def set_default(self, pipeline: PublishedPipeline) -> None:
        pid = _published(pipeline, "set_default").id
        found = [v for v, p in self._refresh().versions.items() if p == pid]
        if not found:
            raise InvalidInputError(
                f"Cannot set pipeline {pid} as default: it is not a version of pipeline endpoint {self._name!r}; "
                "use add_default(pipeline) to add it."
            )
        self._update(default_version=found[0])

    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict[str, Any] | None = None,
        parent_run_id: str | None = None,
        pipeline_version: str | None = None,
        *,
        show_output: bool = True,
    ) -> PipelineRun:
        """A new PipelineRun of `pipeline_version` (default: the default version)."""
        record = self._refresh()
        if record.status != ACTIVE:
            raise PipelineDisabled(
                f"Pipeline endpoint {record.name!r} ({record.id}) is {record.status}, so it cannot be "
                "submitted; enable it first: PipelineEndpoint.get(ws, name=...).enable()."
            )
        published = published_for_endpoint(self._workspace.store, record, pipeline_version)
        values = _parameters(pipeline_parameters)
        created = submit_published(
            self._workspace,
            published,
            experiment_name,
            values,
            submitter=_who(),
            parent_id=parent_run_id,
            properties={ENDPOINT_ID_PROPERTY: record.id},
        )
        _warn_ignored(published, values)
        return _start(self._workspace, experiment_name, created.run_id, show_output)

    def _submit_to(self, experiment: Experiment, tags: dict[str, Any] | None, **kwargs: Any) -> PipelineRun:
        """What `experiment.submit(endpoint, ...)` calls (v1 allows that too)."""
        check_keywords("submit", kwargs, [k for k in SUBMIT_KEYWORDS if k != "continue_on_step_failure"])
        run = self.submit(
            experiment.name,
            kwargs.get("pipeline_parameters") or kwargs.get("pipeline_params"),
            parent_run_id=kwargs.get("parent_run_id"),
            pipeline_version=kwargs.get("pipeline_version"),
            show_output=kwargs.get("show_output", True),
        )
        if tags:
            run.set_tags(tags)
        return run

    def get_portal_url(self) -> str:
        """The studio page of this endpoint."""
        return self._workspace.studio_url + ENDPOINT_PAGE_PATH.format(id=self._id)

    def _repr_html_(self) -> str:
        cells = {
            "Name": self._name,
            "Id": self._id,
            "Status": self._status,
            "Default version": self._default_version,
            "Endpoint": self._endpoint,
        }
        return html_table(self._workspace, cells, {"Link to runyard studio": self.get_portal_url()})

    def __repr__(self) -> str:
        versions = ", ".join(f"{v.version}: {v.pipeline_id}" for v in self._pipeline_version_list)
        return (
            f"PipelineEndpoint(Name: {self._name}, Id: {self._id}, Status: {self._status}, "
            f"Default version: {self._default_version}, Versions: {{{versions}}})"
        )
