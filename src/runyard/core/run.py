"""Run: one execution of a script or an interactive session, with the Azure ML SDK v1 names.

A Run object is a thin handle: its state lives in the store and is re-read when asked for
(get_status, get_details), except terminal statuses, which never change and are cached. The record is
read on first use, so a job's `Run.get_context()` (Run._in_job) hands the run over without opening
the store: a script that only logs never imports the database or HTTP clients.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import inspect
import sys
import time
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from runyard.compat import check_keywords, v1_ignores, v1_keywords
from runyard.core import RUN_CLASS_MODULES
from runyard.core.run_children import RunChildrenMixin
from runyard.core.run_datasets import RunDatasetsMixin
from runyard.core.run_files import JOB_POST, RunFilesMixin
from runyard.core.run_logging import RunLoggingMixin
from runyard.core.run_snapshots import RunSnapshotMixin
from runyard.core.run_values import (  # noqa: F401  (re-exported: other modules import them from here)
    INTERACTIVE_RUN_TYPE,
    MAX_ID_BYTES,
    MAX_ID_LENGTH,
    MAX_KEY_LENGTH,
    SCRIPT_RUN_TYPE,
    _iso,
    check_key,
    check_run_id,
    check_text,
    describe_submitter,
    submitted_by,
)
from runyard.errors import InvalidInputError, RunEnvironmentException, RunFailedError, RunFinishedError
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store.records import RunRecord

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.model import Model
    from runyard.core.workspace import Workspace

#: Run subclasses by run type, so a looked-up run comes back as the class its type needs (PipelineRun,
#: StepRun, …). Higher layers register theirs on import; core stays unaware of them.
RUN_CLASSES: dict[str, type[Run]] = {}


def run_class_for(run_type: str) -> type[Run] | None:
    """The Run subclass registered for `run_type`, importing the module that registers it first if
    runyard/__init__.py named one (runyard.core.register_run_classes)."""
    if run_type not in RUN_CLASSES and run_type in RUN_CLASS_MODULES:
        importlib.import_module(RUN_CLASS_MODULES[run_type])
    return RUN_CLASSES.get(run_type)


#: Seconds wait_for_completion waits for a job's post-processing when its supervisor's liveness cannot
#: be judged (another host); on this host it waits as long as the supervisor lives.
POST_PROCESSING_WAIT = 60.0


def _private(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """v1's **kwargs carry private plumbing (`_run_dto`, `_ident`, ...): accepted; the rest is checked."""
    return {k: v for k, v in kwargs.items() if not k.startswith("_")}


class Run(RunFilesMixin, RunLoggingMixin, RunSnapshotMixin, RunChildrenMixin, RunDatasetsMixin):
    """A handle on one run. `id` and `experiment` are read-only properties, as in v1."""

    @v1_ignores(outputs="a run looked up by id has no local outputs folder; start_logging(outputs=) has one")
    def __init__(self, experiment: Experiment, run_id: str, outputs: Any = None, **kwargs: Any) -> None:
        check_keywords("Run", _private(kwargs), ["experiment", "run_id", "outputs"])
        self._experiment = experiment
        self.workspace: Workspace = experiment.workspace
        self._id = run_id
        self._record = self.workspace.store.get_run(run_id)
        self._writable_checked = False

    #: The experiment's name when it is known before the record is (a job's run: from its environment).
    _experiment_name: str | None = None

    # The mixins declare `_record: RunRecord`; mypy calls a cached_property read-only, yet assigning one
    # only sets the instance's attribute, which is what every `self._record = ...` here means.
    @functools.cached_property
    def _record(self) -> RunRecord:  # type: ignore[override]
        """The run's record, read from the store on first use. Assigning replaces it (a plain attribute
        from then on); _refresh() reads it again."""
        return self.workspace.store.get_run(self._id)

    @functools.cached_property
    def _experiment(self) -> Experiment:
        """The run's experiment, made on first use (a job's run is handed over without it)."""
        from runyard.core.experiment import Experiment

        return Experiment._existing(self.workspace, self._experiment_name or self._record.experiment_name)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def _from_record(cls, workspace: Workspace, record: RunRecord) -> Run:
        """A run built from its record alone; its Experiment is made when first asked for."""
        run_class = (run_class_for(record.run_type) or cls) if cls is Run else cls
        run = run_class.__new__(run_class)
        run._experiment_name = record.experiment_name
        run.workspace = workspace
        run._id = record.run_id
        run._record = record
        run._writable_checked = False
        return run

    @classmethod
    def _in_job(cls, workspace: Workspace, run_id: str, run_type: str, experiment_name: str) -> Run:
        """The run a submitted job executes in, from what its supervisor put in the environment, with
        nothing read from the store: the record and the experiment load when first used.

        The run counts as writable without the first-use check _check_writable makes elsewhere: the
        supervisor owns it and stops this process when the run ends (cancel, timeout), so a check
        would only cost a store round trip (and its imports) before the first run.log()."""
        run_class = run_class_for(run_type) or Run
        run = run_class.__new__(run_class)
        run.workspace = workspace
        run._id = run_id
        run._experiment_name = experiment_name
        run._writable_checked = True
        return run

    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> Run:
        return cls._from_record(workspace, workspace.store.get_run(run_id))

    @classmethod
    def get_context(
        cls, allow_offline: bool = True, used_for_context_manager: bool = False, **kwargs: Any
    ) -> Run:
        """The run this code executes in. Outside a submitted run: a real interactive run recorded in the
        nearest workspace (created as ./.runyard if there is none), announced once on stderr.
        `used_for_context_manager` needs nothing here: `with Run.get_context() as run:` works either way."""
        from runyard.core.context import get_context

        check_keywords("Run.get_context", _private(kwargs), ["allow_offline", "used_for_context_manager"])
        return get_context(allow_offline=allow_offline)

    @classmethod
    def get_submitted_run(cls, **kwargs: Any) -> Run:
        """v1's deprecated name for get_context(allow_offline=False)."""
        check_keywords("Run.get_submitted_run", _private(kwargs), [])
        try:
            return cls.get_context(allow_offline=False)
        except InvalidInputError as exc:
            raise RunEnvironmentException(str(exc)) from None

    @classmethod
    def list(
        cls,
        experiment: Experiment,
        type: str | None = None,
        tags: Any = None,
        properties: Any = None,
        status: str | None = None,
        include_children: bool = False,
    ) -> Iterator[Run]:
        return experiment.get_runs(
            type=type, tags=tags, properties=properties, include_children=include_children, status=status
        )

    @classmethod
    def list_by_compute(
        cls,
        compute: Any,
        type: str | None = None,
        tags: Any = None,
        properties: Any = None,
        status: Any = None,
    ) -> Iterator[Run]:
        """Runs on a compute target (a ComputeTarget object: its workspace is searched), newest first, with
        v1's filters applied by the store in one query."""
        workspace, name = getattr(compute, "workspace", None), getattr(compute, "name", None)
        if workspace is None or name is None:
            raise InvalidInputError(
                f"Run.list_by_compute: pass a compute target object (ComputeTarget(ws, name)), not {compute!r}."
            )
        records = workspace.store.list_runs(
            target=name,
            run_type=type,
            status=None if status is None else [status],
            tags=tags,
            properties=properties,
        )
        return (Run._from_record(workspace, record) for record in records)

    # -- identity -------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._id

    @property
    def experiment(self) -> Experiment:
        return self._experiment

    @property
    def portal_url(self) -> str:
        return self.get_portal_url()

    @property
    def name(self) -> str | None:
        return self._record.display_name

    @property
    def display_name(self) -> str | None:
        return self._record.display_name

    @display_name.setter
    def display_name(self, value: str) -> None:
        check_text("Display name", value, MAX_ID_LENGTH, empty_ok=True)
        self._record = self.workspace.store.update_run_data(self.id, {"display_name": value})

    @property
    def description(self) -> str | None:
        return self._record.data.get("description")

    @description.setter
    def description(self, value: str) -> None:
        self._record = self.workspace.store.update_run_data(self.id, {"description": value})

    @property
    def type(self) -> str:
        return self._record.run_type

    @property
    def number(self) -> int:
        return self._record.number

    @property
    def status(self) -> str:
        """The status when last read (get_status() reads it again), always a plain str."""
        return str(self._record.status)

    @property
    def tags(self) -> dict[str, Any]:
        return self.get_tags()

    @property
    def properties(self) -> dict[str, str]:
        return self.get_properties()

    @property
    def parent(self) -> Run | None:
        parent_id = self._record.parent_id
        return None if parent_id is None else Run.get(self.workspace, parent_id)

    def _refresh(self) -> RunRecord:
        known: RunRecord | None = self.__dict__.get("_record")  # None: not read yet
        if known is None or known.status not in TERMINAL_STATUSES:
            self._record = self.workspace.store.get_run(self.id)
        return self._record

    def __repr__(self) -> str:
        return f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: {self.type}, Status: {self.status})"

    # -- metrics (the logging methods live in core/run_logging.py) --------------------------------
    def _check_writable(self, action: str) -> None:
        known: RunRecord | None = self.__dict__.get("_record")  # None: a job's run, not read yet
        if not self._writable_checked or (known is not None and known.status in TERMINAL_STATUSES):
            record = self._refresh()
            self._writable_checked = True
            if record.status in TERMINAL_STATUSES:
                raise RunFinishedError(self.id, record.status, action)

    # -- tags and properties --------------------------------------------------------------------
    def tag(self, key: str, value: Any = None) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not isinstance(tags, Mapping):
            raise InvalidInputError("set_tags: pass a dict of tag name → value.")
        for key, value in tags.items():
            check_key("Tag", key)
            check_text("Tag name", key, MAX_KEY_LENGTH)
            if value is not None:
                check_text(f"Tag {key!r} value", value)
        self.workspace.store.set_tags(self.id, tags)

    def get_tags(self) -> dict[str, Any]:
        return self.workspace.store.get_tags(self.id)

    def remove_tags(self, tags: builtins.list[str]) -> None:
        self.workspace.store.remove_tags(self.id, tags)

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        for key, value in properties.items():
            check_key("Property", key)
            check_text("Property name", key, MAX_KEY_LENGTH)
            check_text(f"Property {key!r} value", value)
        self.workspace.store.add_properties(self.id, {k: str(v) for k, v in properties.items()})

    def get_properties(self) -> dict[str, str]:
        return self.workspace.store.get_properties(self.id)

    # -- status and details ---------------------------------------------------------------------
    def get_status(self) -> str:
        """The current status. A run whose supervisor or owning process died is ended (Failed) here."""
        self._ended()
        return str(self._record.status)

    def get_detailed_status(self) -> dict[str, Any]:
        """v1's {status, details}; details says why a run is still Queued (waiting for a slot)."""
        status = self.get_status()
        details = "Waiting for a free slot on its compute target." if status == RunStatus.QUEUED else None
        return {"status": status, "details": details}

    def get_environment(self) -> Any:
        """The Environment the run used, rebuilt from its record (a script run's runDefinition, a step's
        spec in its pipeline's graph). A run recorded without one ran with the submitting interpreter as
        is: a 'default-environment' with python.user_managed_dependencies=True and interpreter_path set
        to the interpreter recorded on the run, else this process's (sys.executable)."""
        from runyard.environments.environment import run_environment  # YAML/packaging stay unloaded in jobs

        record = self._refresh()
        step_spec = None
        if record.parent_id and not record.data.get("runDefinition"):
            graph = self.workspace.store.get_run(record.parent_id).data.get("graph") or {}
            step_spec = next(
                (s for s in graph.get("steps") or [] if s.get("name") == record.display_name), None
            )
        return run_environment(record.data.get("runDefinition"), step_spec)

    def get_details(self) -> dict[str, Any]:
        record = self._refresh()
        inputs, outputs = self._dataset_details(record.data)
        details: dict[str, Any] = {
            "runId": self.id,
            "target": record.target,
            "status": str(record.status),  # a plain str, whatever the store handed back
            "startTimeUtc": _iso(record.start_time),
            "endTimeUtc": _iso(record.end_time),
            "properties": self.get_properties(),
            "inputDatasets": inputs,
            "outputDatasets": outputs,
            "runDefinition": record.data.get("runDefinition", {}),
            "logFiles": {name: self._log_file_url(name) for name in self._log_files()},
            "submittedBy": describe_submitter(record.data.get("submittedBy")),
        }
        if record.end_time is None:
            del details["endTimeUtc"]
        for key in ("error", "warnings", "exitCode"):
            if key in record.data:
                details[key] = record.data[key]
        return details

    def get_details_with_logs(self) -> dict[str, Any]:
        details = self.get_details()
        details["logFiles"] = {name: self._decode(self.read_log(name)) for name in details["logFiles"]}
        return details

    def get_portal_url(self) -> str:
        return f"{self.workspace.studio_url}/runs/{self.id}"

    @classmethod
    def get_docs_url(cls) -> str:
        """v1's reference page for Run (runyard keeps its names and semantics)."""
        return "https://learn.microsoft.com/python/api/azureml-core/azureml.core.run.run"

    def wait_for_completion(
        self, show_output: bool = False, wait_post_processing: bool = False, raise_on_error: bool = True
    ) -> dict[str, Any]:
        """Block until the run ends. With show_output, stream its driver log to stdout as it grows."""
        from runyard.core.streaming import stream_until_done

        if show_output:
            stream_until_done(self, sys.stdout)
        else:
            delay = 0.05
            while not self._ended():
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
        self._wait_post_processing()
        details = self.get_details()
        if raise_on_error and details["status"] == RunStatus.FAILED:
            raise RunFailedError(self.id, details.get("error"))
        return details

    def _wait_post_processing(self) -> None:
        """A submitted run can end before its process does: a script that calls run.complete() (as
        DP-100's do) is Completed while it still runs, and its supervisor then replays the metric spool and
        writes 75_job_post.txt. Wait for that file while the supervisor lives, so that what the run left
        is all there when wait_for_completion returns."""
        from runyard.core.processes import process_state  # psutil: loaded once a job is waited for

        supervisor = self._record.data.get("supervisor")
        if supervisor is None:
            return  # interactive runs and pipeline runs have no post-processing of their own
        post = self._artifact(JOB_POST)
        deadline = time.monotonic() + POST_PROCESSING_WAIT
        delay = 0.02
        while not self.workspace.artifacts.exists(post):
            state = process_state(supervisor)
            if state == "dead" or (state == "unknown" and time.monotonic() > deadline):
                break
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
        # The record was cached when the run turned terminal; the supervisor has written to it since
        # (registered outputs, warnings), so read it once more.
        self._record = self.workspace.store.get_run(self.id)

    def _ended(self) -> bool:
        """Terminal yet? Every few seconds also checks that a script run's supervisor is still alive."""
        if self._refresh().status in TERMINAL_STATUSES:
            return True
        now = time.monotonic()
        if now - getattr(self, "_last_orphan_check", 0.0) > 2.0:
            from runyard.core.context import reap_if_orphaned

            self._last_orphan_check = now
            if reap_if_orphaned(self):
                self._refresh()
                return True
        return False

    # -- lifecycle ------------------------------------------------------------------------------
    def _finish(self, status: str, error: Mapping[str, Any] | None = None) -> None:
        self.flush()
        self._record = self.workspace.store.set_run_status(self.id, status, error=error)

    def start(self) -> None:
        self._record = self.workspace.store.set_run_status(self.id, RunStatus.RUNNING)

    def complete(self, _set_status: bool = True) -> None:
        """Write every pending metric, upload the outputs folder of a start_logging() run, then mark
        the run Completed."""
        self._upload_outputs()
        self._finish(RunStatus.COMPLETED)

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        message = (
            str(error_details) if error_details is not None else "The run was marked failed by its code."
        )
        if isinstance(error_details, BaseException):
            message = f"{type(error_details).__name__}: {error_details}"
        self._upload_outputs()  # what a failed run wrote is kept, as for a submitted run
        self._finish(RunStatus.FAILED, {"code": error_code or "UserError", "message": message})

    def cancel(self) -> None:
        """Ask the run to stop. A submitted run's supervisor stops the process; an interactive run ends at once."""
        from runyard.core.context import request_cancel

        request_cancel(self)
        self._refresh()

    # -- children (child_run, create_children, get_children: core/run_children.py) ---------------
    def _wrap(self, record: RunRecord) -> Run:
        return Run._from_record(self.workspace, record)

    @v1_ignores(
        model_framework_version="the registry records the framework's name only",
        datasets="models do not list datasets; this run's lineage records what it read",
        sample_input_dataset="models do not list datasets; this run's lineage records what it read",
        sample_output_dataset="models do not list datasets; this run's lineage records what it read",
        resource_configuration="runyard does not deploy models",
    )
    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        model_framework: str | None = None,
        model_framework_version: str | None = None,
        description: str | None = None,
        datasets: Any = None,
        sample_input_dataset: Any = None,
        sample_output_dataset: Any = None,
        resource_configuration: Any = None,
        **kwargs: Any,
    ) -> Model:
        """Register a file or folder stored with this run (e.g. 'outputs/model.pkl') as a model version."""
        from runyard.core.model import Model

        named = inspect.signature(Run.register_model).parameters
        check_keywords(
            "Run.register_model", _private(kwargs), [n for n in named if n not in ("self", "kwargs")]
        )
        return Model._register_from_run(
            self, model_name, model_path or model_name, tags, properties, description, model_framework
        )

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: builtins.type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._refresh().status in TERMINAL_STATUSES:
            return
        if exc is None:
            self.complete()
        else:
            self.fail(error_details=exc)


def _v1_keywords_on_run() -> None:
    """The mixins' public methods become Run's own, so a mistyped keyword names `Run.<method>` and gets
    its "Did you mean" like the rest."""
    for mixin in (RunFilesMixin, RunLoggingMixin, RunSnapshotMixin, RunChildrenMixin):
        for attr, value in vars(mixin).items():
            if not attr.startswith("_") and inspect.isfunction(value) and attr not in vars(Run):
                setattr(Run, attr, value)
    v1_keywords(Run)


_v1_keywords_on_run()
