"""Experiment: a named group of runs, and the place runs are submitted from."""

from __future__ import annotations

import inspect
import os
import re
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runyard.compat import check_keywords, v1_keywords
from runyard.core.processes import identity
from runyard.core.run import (
    INTERACTIVE_RUN_TYPE,
    MAX_ID_LENGTH,
    Run,
    check_run_id,
    check_text,
    submitted_by,
)
from runyard.core.run_snapshots import OUTPUTS_KEY, SNAPSHOT_KEY, remember_outputs, store_snapshot
from runyard.errors import InvalidInputError, RunyardError
from runyard.status import RunStatus
from runyard.store.records import RunRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

# The SDK's code accepts 1-255 characters; its docs say 3-36. We enforce the code and warn on the docs.
NAME_RULE = re.compile(r"^[a-zA-Z0-9][\w-]{0,254}$")


class Submittable(Protocol):
    """Anything experiment.submit() accepts: ScriptRunConfig here; Pipeline, PublishedPipeline and
    PipelineEndpoint in runyard.pipeline."""

    def _submit_to(self, experiment: Experiment, tags: dict[str, Any] | None, **kwargs: Any) -> Run: ...


def check_experiment_name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise InvalidInputError(
            f"Experiment name {name!r} is not allowed: use 1-255 letters, digits, '_' or '-', "
            "starting with a letter or digit (e.g. 'train-digits')."
        )
    if not 3 <= len(name) <= 36:
        warnings.warn(
            f"Experiment name {name!r} is outside Azure ML's documented 3-36 characters; fine for runyard.",
            stacklevel=3,
        )
    return name


def _start_logging_arguments(
    name: str | None = None,
    run_id: str | None = None,
    outputs: str | None = "./outputs",
    snapshot_directory: str | None = ".",
    *,
    display_name: str | None = None,
) -> dict[str, Any]:
    """v1's Run._start_logging parameters, which experiment.start_logging(*args, **kwargs) forwards."""
    return locals()


_START_LOGGING = inspect.signature(_start_logging_arguments)


def make_outputs_folder(outputs: str | os.PathLike[str]) -> Path:
    """An interactive run's outputs folder, created when the run starts as v1 does: samples write
    `outputs/file.txt` right after start_logging() without creating the folder themselves."""
    folder = Path(outputs).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InvalidInputError(
            f"outputs={str(outputs)!r} cannot be the run's outputs folder: {exc.filename or folder} is a file. "
            "Pass another folder, or outputs=None to upload nothing."
        ) from exc
    return folder


VIEW_TYPES = ("ActiveOnly", "ArchivedOnly", "All")


def _snapshot_or_warn(workspace: Workspace, folder: str) -> str | None:
    """start_logging snapshots its folder as v1 does; a folder past v1's limits (a home directory, say)
    costs a warning, not the run."""
    try:
        return store_snapshot(workspace, folder)
    except (RunyardError, OSError) as exc:
        warnings.warn(
            f"start_logging: no snapshot of {folder!r} was saved ({exc}). Pass snapshot_directory=None "
            "to skip it, or a smaller folder.",
            stacklevel=4,
        )
        return None


@v1_keywords
class Experiment:
    """A named group of runs. `name`, `id` and `workspace` are read-only properties, as in v1."""

    def __init__(self, workspace: Workspace, name: str, **kwargs: Any) -> None:
        # v1's private parameters (_skip_name_validation, _id, ...) are accepted and have no use here.
        check_keywords(
            "Experiment", {k: v for k, v in kwargs.items() if not k.startswith("_")}, ["workspace", "name"]
        )
        self._workspace = workspace
        self._name = check_experiment_name(name)
        self._id: str | None = workspace.store.get_or_create_experiment(name).id

    @classmethod
    def _existing(cls, workspace: Workspace, name: str, experiment_id: str | None = None) -> Experiment:
        """A handle on an experiment known to exist (named by a run record, say), made without a query:
        its id is read on first use of `.id` unless given. Building a Run from a record (get_runs, a job's
        get_context) must not cost a round trip per run."""
        exp = cls.__new__(cls)
        exp._workspace, exp._name, exp._id = workspace, name, experiment_id
        return exp

    @property
    def workspace(self) -> Workspace:
        return self._workspace

    @property
    def workspace_object(self) -> Workspace:
        return self._workspace

    @property
    def name(self) -> str:
        return self._name

    @property
    def id(self) -> str:
        if self._id is None:  # an _existing handle: ExperimentNotFound here if it was deleted meanwhile
            self._id = self._workspace.store.get_experiment(self._name).id
        return self._id

    @property
    def portal_url(self) -> str:
        return self.get_portal_url()

    @property
    def archived_time(self) -> str | None:
        """Experiments are never archived in runyard."""
        return None

    def refresh(self) -> None:
        """Read the experiment again from the store (v1 refreshes tags and archive state)."""
        self._id = self._workspace.store.get_experiment(self._name).id

    @classmethod
    def list(
        cls,
        workspace: Workspace,
        experiment_name: str | None = None,
        view_type: str = "ActiveOnly",
        tags: Any = None,
    ) -> list[Experiment]:
        """Experiments of the workspace. None is ever archived, so ArchivedOnly lists none, and none has
        tags, so a `tags` filter matches none."""
        if view_type not in VIEW_TYPES:
            raise InvalidInputError(
                f"Experiment.list: view_type must be one of {VIEW_TYPES}, not {view_type!r}."
            )
        if view_type == "ArchivedOnly" or tags:
            return []
        return [
            cls._existing(workspace, e.name, e.id)
            for e in workspace.store.list_experiments()
            if experiment_name is None or e.name == experiment_name
        ]

    def submit(self, config: Submittable, tags: dict[str, Any] | None = None, **kwargs: Any) -> Run:
        """Start `config` (a ScriptRunConfig, a Pipeline, a PublishedPipeline or a PipelineEndpoint) and
        return its run at once. `kwargs` go to the config's own submit (e.g. a pipeline's
        pipeline_parameters), which refuses what it does not know."""
        submit = getattr(config, "_submit_to", None)
        if submit is None:
            raise InvalidInputError(
                f"experiment.submit() cannot run a {type(config).__name__}; pass a ScriptRunConfig, a Pipeline, "
                "a PublishedPipeline or a PipelineEndpoint."
            )
        run: Run = submit(self, tags, **kwargs)
        return run

    def start_logging(self, *args: Any, **kwargs: Any) -> Run:
        """An interactive run recorded from this process; Running until run.complete().

        As v1's: start_logging(name=None, run_id=None, outputs='./outputs', snapshot_directory='.').
        The `outputs` folder is uploaded as the run's outputs/ when it ends (None: nothing is), and
        `snapshot_directory` is saved as the run's snapshot (None: no snapshot)."""
        try:
            bound = _START_LOGGING.bind(*args, **kwargs)
        except TypeError:
            check_keywords("Experiment.start_logging", kwargs, list(_START_LOGGING.parameters))
            raise
        given: Mapping[str, Any] = {**_start_logging_arguments(), **bound.arguments}
        # the process that owns the run: if it dies without run.complete(), readers end the run
        data: dict[str, Any] = {"owner": identity()}
        if given["outputs"] is not None:
            data[OUTPUTS_KEY] = str(Path(given["outputs"]).expanduser().resolve())  # made by _create_run
        run = self._create_run(
            run_id=given["run_id"] or str(uuid.uuid4()),
            run_type=INTERACTIVE_RUN_TYPE,
            display_name=given["display_name"] or given["name"],
            status=RunStatus.RUNNING,
            target="local",
            data=data,
        )
        if given["snapshot_directory"] is not None:
            snapshot_id = _snapshot_or_warn(self.workspace, str(given["snapshot_directory"]))
            if snapshot_id is not None:
                run._record = self.workspace.store.update_run_data(run.id, {SNAPSHOT_KEY: snapshot_id})
        return run

    def _create_run(
        self,
        *,
        run_id: str,
        run_type: str,
        status: str,
        target: str,
        parent_id: str | None = None,
        display_name: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Run:
        check_run_id(run_id)
        if display_name is not None:
            check_text("Run name", display_name, MAX_ID_LENGTH, empty_ok=True)
        if data and data.get(OUTPUTS_KEY):  # start_logging(outputs=...), run.child_run(outputs=...)
            make_outputs_folder(data[OUTPUTS_KEY])
            remember_outputs(run_id, data[OUTPUTS_KEY])  # what complete() uploads: never read back
        now = time.time()
        record = RunRecord(
            run_id=run_id,
            experiment_id=self.id,
            experiment_name=self.name,
            status=status,
            run_type=run_type,
            created_time=now,
            parent_id=parent_id,
            display_name=display_name,
            target=target,
            start_time=now if status == RunStatus.RUNNING else None,
            data=data or {},
        )
        record.data.setdefault("submittedBy", submitted_by())
        return Run._from_record(self.workspace, self.workspace.store.create_run(record))

    def get_runs(
        self,
        type: str | None = None,
        tags: Any = None,
        properties: Any = None,
        include_children: bool = False,
        *,
        status: str | None = None,
    ) -> Iterator[Run]:
        """Runs of this experiment, newest first; top-level only unless include_children. v1's filters
        (tags and properties: a key, or a dict of key -> value) are applied by the store in one query."""
        records = self.workspace.store.list_runs(
            experiment_name=self.name,
            top_level_only=not include_children,
            run_type=type,
            status=None if status is None else [status],
            tags=tags,
            properties=properties,
        )
        return (Run._from_record(self.workspace, record) for record in records)

    @classmethod
    def get_docs_url(cls) -> str:
        """v1's reference page for Experiment (runyard keeps its names and semantics)."""
        return "https://learn.microsoft.com/python/api/azureml-core/azureml.core.experiment.experiment"

    def get_portal_url(self) -> str:
        return f"{self.workspace.studio_url}/experiments/{self.name}"

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"
