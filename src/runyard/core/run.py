"""Run: one execution of a script or an interactive session, with the Azure ML SDK v1 names.

A Run object is a thin handle: its state lives in the store and is re-read when asked for
(get_status, get_details), except terminal statuses, which never change and are cached.
"""

from __future__ import annotations

import builtins
import getpass
import io
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from runyard.core import metrics as m
from runyard.core.processes import identity
from runyard.core.run_files import RunFilesMixin
from runyard.errors import InvalidInputError, RunFailedError, RunFinishedError
from runyard.status import TERMINAL_STATUSES, RunStatus
from runyard.store import RunRecord

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.model import Model
    from runyard.core.workspace import Workspace

SCRIPT_RUN_TYPE = "azureml.scriptrun"
INTERACTIVE_RUN_TYPE = "runyard.interactive"
MAX_ID_LENGTH = 256  # display names (Azure ML's limit, and the database column's)
MAX_ID_BYTES = 255  # run ids: each names a folder (runs/<run_id>/), and file names stop at 255 bytes
MAX_KEY_LENGTH = 255  # tag and property names (the database column)


def check_text(what: str, value: Any, limit: int | None = None, *, empty_ok: bool = False) -> str:
    """Refuse what one database would store and the other would not: over-long ids and keys, NUL characters."""
    text = str(value)
    if limit is not None and (len(text) > limit or not (text or empty_ok)):
        raise InvalidInputError(f"{what} {text[:40]!r} must be 1-{limit} characters long, not {len(text)}.")
    if "\x00" in text:
        raise InvalidInputError(f"{what} {text[:40]!r} contains a NUL character (\\x00); remove it.")
    return text


def check_key(what: str, key: Any) -> None:
    """Tag and property names are strings: str(None) would quietly store a tag named "None"."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidInputError(
            f"{what} names must be non-empty strings, got {key!r}. Pass the name first: run.tag('name', value)."
            if what == "Tag"
            else f"{what} names must be non-empty strings, got {key!r}."
        )


def check_run_id(run_id: Any) -> str:
    """A run id names the run's folder in the artifact store, so it must be one safe path component."""
    text = check_text("Run id", run_id)
    if not text or len(text.encode()) > MAX_ID_BYTES or text in (".", "..") or any(c in text for c in "/\\"):
        raise InvalidInputError(
            f"Run id {text[:40]!r} is not allowed: use 1-{MAX_ID_BYTES} bytes without '/' or '\\', "
            "not '.' or '..'. Leave run_id out to get a generated one."
        )
    return text


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def describe_submitter(value: Any) -> str | None:
    """v1's submittedBy is a name. A server replaces what a client sends with a stamp of the token that
    created the run (docs/security.md); show that stamp as a name too."""
    if not isinstance(value, dict):
        return None if value is None else str(value)
    if value.get("auth") == "off":
        return "anonymous (server without --auth)"
    return f"token {value.get('token')} ({value.get('scope')})"


def submitted_by() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in containers without /etc/passwd entries
        return "unknown"


#: Run subclasses by run type, so a looked-up run comes back as the class its type needs (PipelineRun,
#: StepRun, …). Higher layers register theirs on import; core stays unaware of them.
RUN_CLASSES: dict[str, type[Run]] = {}


class Run(RunFilesMixin):
    def __init__(self, experiment: Experiment, run_id: str, outputs: Any = None, **_: Any) -> None:
        self.experiment = experiment
        self.workspace: Workspace = experiment.workspace
        self.id = run_id
        self._record = self.workspace.store.get_run(run_id)
        self._writable_checked = False

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def _from_record(cls, workspace: Workspace, record: RunRecord) -> Run:
        from runyard.core.experiment import Experiment

        run_class = RUN_CLASSES.get(record.run_type, cls) if cls is Run else cls
        run = run_class.__new__(run_class)
        run.experiment = Experiment._existing(workspace, record.experiment_name)
        run.workspace = workspace
        run.id = record.run_id
        run._record = record
        run._writable_checked = False
        return run

    @classmethod
    def get(cls, workspace: Workspace, run_id: str) -> Run:
        return cls._from_record(workspace, workspace.store.get_run(run_id))

    @classmethod
    def get_context(cls, allow_offline: bool = True, **_: Any) -> Run:
        """The run this code executes in. Outside a submitted run: a real interactive run recorded in the
        nearest workspace (created as ./.runyard if there is none), announced once on stderr."""
        from runyard.core.context import get_context

        return get_context(allow_offline=allow_offline)

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

    # -- identity -------------------------------------------------------------------------------
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
        return self._record.status

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
        if self._record.status not in TERMINAL_STATUSES:
            self._record = self.workspace.store.get_run(self.id)
        return self._record

    def __repr__(self) -> str:
        return f"Run(Experiment: {self.experiment.name}, Id: {self.id}, Type: {self.type}, Status: {self.status})"

    # -- metrics --------------------------------------------------------------------------------
    def _check_writable(self, action: str) -> None:
        if self._record.status in TERMINAL_STATUSES or not self._writable_checked:
            record = self._refresh()
            self._writable_checked = True
            if record.status in TERMINAL_STATUSES:
                raise RunFinishedError(self.id, record.status, action)

    def _add(self, name: str, kind: str, fields: dict[str, Any], step: int | None = None) -> None:
        m.writer_for(self.workspace.store).add(self.id, name, kind, fields, step)

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Record a scalar; returns at once. Repeated calls with one name build a series."""
        m.check_name(name)
        fields = m.scalar_fields(name, value)
        m.check_step(name, step)
        self._check_writable("log to")
        self._add(name, "scalar", fields, step)

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        m.check_name(name)
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise InvalidInputError(
                f"run.log_list({name!r}): pass a list of numbers, got {type(value).__name__}."
            )
        items = [m.scalar_fields(name, v, where="run.log_list") for v in list(value)]
        self._check_writable("log to")
        for index, fields in enumerate(items):
            self._add(name, "list", fields, index)

    def log_row(self, name: str, description: str | None = None, **kwargs: Any) -> None:
        m.check_name(name)
        if not kwargs:
            raise InvalidInputError(f"run.log_row({name!r}): pass the row's columns as keyword arguments.")
        row = {k: m.row_value(name, v) for k, v in kwargs.items()}
        self._check_writable("log to")
        self._add(name, "row", {"value": None, "text": None, "payload": row})

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        m.check_name(name)
        if not isinstance(value, Mapping) or not value:
            raise InvalidInputError(f"run.log_table({name!r}): pass a dict of column name → list of values.")
        columns = {k: list(v) for k, v in value.items()}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) != 1:
            raise InvalidInputError(
                f"run.log_table({name!r}): columns have different lengths {sorted(lengths)}; make them equal."
            )
        for index in range(lengths.pop()):
            self.log_row(name, **{k: v[index] for k, v in columns.items()})

    def log_image(self, name: str, path: str | None = None, plot: Any = None, description: str = "") -> None:
        """Store a PNG (from `path`, or a matplotlib figure in `plot`) and a metric that points at it."""
        m.check_name(name)
        if (path is None) == (plot is None):
            raise InvalidInputError(f"run.log_image({name!r}): pass exactly one of path= or plot=.")
        self._check_writable("log to")
        artifact = f"images/{name}/{uuid.uuid4().hex[:8]}.png"
        if plot is not None:
            buffer = io.BytesIO()
            figure = plot.gcf() if hasattr(plot, "gcf") else plot
            figure.savefig(buffer, format="png")
            self.upload_file(artifact, io.BytesIO(buffer.getvalue()))
        else:
            self.upload_file(artifact, path)  # type: ignore[arg-type]
        self._add(name, "image", {"value": None, "text": None, "payload": {"path": artifact}})

    def flush(self, timeout_seconds: int = 300) -> None:
        m.writer_for(self.workspace.store).flush(timeout_seconds)

    def get_metrics(
        self,
        name: str | None = None,
        recursive: bool = False,
        run_type: str | None = None,
        populate: bool = False,
    ) -> dict[str, Any]:
        """Azure's shape: {name: value or list}; with recursive=True, {run_id: {...}} for the run and its descendants."""
        self.flush()
        if not recursive:
            return m.shape_metrics(self.workspace.store.get_metric_rows([self.id], name))
        runs = [
            self,
            *(r for r in self.get_children(recursive=True) if run_type is None or r.type == run_type),
        ]
        rows = self.workspace.store.get_metric_rows([r.id for r in runs], name)
        return {r.id: m.shape_metrics(row for row in rows if row.run_id == r.id) for r in runs}

    def get_metric_series(self, name: str | None = None) -> dict[str, Any]:
        """Like get_metrics, but every series and table column is a list, however many values were logged."""
        self.flush()
        return m.shape_metrics(self.workspace.store.get_metric_rows([self.id], name), lists=True)

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
        return self._record.status

    def get_details(self) -> dict[str, Any]:
        record = self._refresh()
        details: dict[str, Any] = {
            "runId": self.id,
            "target": record.target,
            "status": record.status,
            "startTimeUtc": _iso(record.start_time),
            "endTimeUtc": _iso(record.end_time),
            "properties": self.get_properties(),
            "inputDatasets": record.data.get("inputDatasets", []),
            "outputDatasets": record.data.get("outputDatasets", []),
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
        details = self.get_details()
        if raise_on_error and details["status"] == RunStatus.FAILED:
            raise RunFailedError(self.id, details.get("error"))
        return details

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
        """Write every pending metric, then mark the run Completed."""
        self._finish(RunStatus.COMPLETED)

    def fail(
        self, error_details: Any = None, error_code: str | None = None, _set_status: bool = True
    ) -> None:
        message = (
            str(error_details) if error_details is not None else "The run was marked failed by its code."
        )
        if isinstance(error_details, BaseException):
            message = f"{type(error_details).__name__}: {error_details}"
        self._finish(RunStatus.FAILED, {"code": error_code or "UserError", "message": message})

    def cancel(self) -> None:
        """Ask the run to stop. A submitted run's supervisor stops the process; an interactive run ends at once."""
        from runyard.core.context import request_cancel

        request_cancel(self)
        self._refresh()

    # -- children -------------------------------------------------------------------------------
    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: Any = None) -> Run:
        """Create and start a child run in the same experiment, owned by this process: if the process dies
        before completing it, whoever waits on it marks it Failed instead of waiting forever."""
        return self.experiment._create_run(
            run_id=run_id or str(uuid.uuid4()),
            run_type=self.type,
            parent_id=self.id,
            display_name=name,
            status=RunStatus.RUNNING,
            target=self._record.target,
            data={"owner": identity()},
        )

    def create_children(
        self,
        count: int | None = None,
        tag_key: str | None = None,
        tag_values: builtins.list[str] | None = None,
    ) -> builtins.list[Run]:
        if (count is None) == (tag_key is None or tag_values is None):
            raise InvalidInputError("create_children: pass either count, or both tag_key and tag_values.")
        total = count if count is not None else len(tag_values or [])
        if total > 100:
            raise InvalidInputError(f"create_children: at most 100 children per call, asked for {total}.")
        children = []
        for index in range(total):
            child = self.child_run()
            if count is not None:
                child.tag("azureml.batch_child_number", str(index))
            else:
                child.tag(tag_key, (tag_values or [])[index])  # type: ignore[arg-type]
            children.append(child)
        return children

    def get_children(
        self,
        recursive: bool = False,
        tags: Any = None,
        properties: Any = None,
        type: str | None = None,
        status: str | None = None,
        **_: Any,
    ) -> Iterator[Run]:
        from runyard.core.experiment import matches_filters

        for record in self.workspace.store.list_descendants(self.id, recursive):
            run = Run._from_record(self.workspace, record)
            if matches_filters(run, tags=tags, properties=properties, type=type, status=status):
                yield run

    def register_model(
        self,
        model_name: str,
        model_path: str | None = None,
        tags: Mapping[str, Any] | None = None,
        properties: Mapping[str, Any] | None = None,
        description: str | None = None,
        **kwargs: Any,
    ) -> Model:
        """Register a file or folder stored with this run (e.g. 'outputs/model.pkl') as a model version."""
        from runyard.core.model import Model

        return Model._register_from_run(
            self, model_name, model_path or model_name, tags, properties, description
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
            self.fail(exc)
