"""Errors runyard raises on purpose. Every message is written for the user and says how to fix it.

    RunyardError (= v1's AzureMLException)
    ├── NotFoundError            something named does not exist
    │   ├── WorkspaceNotFound    (also a WorkspaceException)
    │   ├── RunNotFound
    │   ├── ExperimentNotFound
    │   ├── ModelNotFoundException ── ModelNotFound
    │   ├── EnvironmentNotFound
    │   └── ModelPathNotFoundException
    ├── InvalidInputError        the caller passed something runyard cannot accept (= UserErrorException)
    │   ├── MetricValueError
    │   ├── EnvironmentDefinitionError  an environment that cannot be built as written (conda-only package, …)
    │   └── RunConfigurationException
    ├── ComputeTargetException   a named compute target is missing or cannot be created (v1's name)
    │   └── ComputeTargetNotFound  (also a NotFoundError: HTTP 404)
    ├── ConflictError            the request is valid but the current state forbids it
    │   └── RunFinishedError
    ├── AuthError                the server refused the token (= AuthenticationException)
    ├── ActivityFailedException  a run ended Failed ── RunFailedError (raise_on_error=True)
    ├── TransferTimeout          upload_files / download_files ran past timeout_seconds
    ├── EnvironmentBuildError    an environment's virtual environment could not be built (log attached)
    ├── WorkspaceException, ProjectSystemException, ExperimentExecutionException,
    │   RunEnvironmentException, SnapshotException, TrainingException   (v1's names, see below)
    └── StoreError               the database or artifact store could not do its job
        └── StoreMigrationRequired

A user script that crashes is not a RunyardError: it is a run that ends Failed with its exit code
and the last lines of its log in the run's details.

v1 code catches azureml.exceptions' names, so each of them is a class or an alias here
(runyard.v1.exceptions re-exports them), and every RunyardError answers v1's `message`,
`inner_exception` and `print_stacktrace()`.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any

from runyard.compat import v1_ignores

_SERVICE_METADATA = "Azure service error metadata; a runyard error's message says everything"


class RunyardError(Exception):
    """Base of every error runyard raises on purpose. The message is for the user.

    The constructor takes v1's AzureMLException parameters so that v1 code raising or wrapping these
    errors keeps working; only the message and `inner_exception` (the cause) mean something locally.
    """

    @v1_ignores(
        target=_SERVICE_METADATA,
        details=_SERVICE_METADATA,
        message_format=_SERVICE_METADATA,
        message_parameters=_SERVICE_METADATA,
        reference_code=_SERVICE_METADATA,
    )
    def __init__(
        self,
        exception_message: str = "",
        *,
        inner_exception: BaseException | None = None,
        target: str | None = None,
        details: Any = None,
        message_format: str | None = None,
        message_parameters: Any = None,
        reference_code: str | None = None,
    ) -> None:
        super().__init__(exception_message)
        if inner_exception is not None:
            self.__cause__ = inner_exception

    @property
    def message(self) -> str:
        """v1's name for the message text."""
        return str(self.args[0]) if self.args else ""

    @property
    def inner_exception(self) -> BaseException | None:
        """v1's name for the error this one wraps (Python's __cause__)."""
        return self.__cause__

    def print_stacktrace(self) -> None:
        """Print this error with its traceback and cause, as v1's AzureMLException does."""
        traceback.print_exception(self)


class NotFoundError(RunyardError):
    pass


class WorkspaceException(RunyardError):
    """A workspace cannot be opened or created (v1's name; WorkspaceNotFound is one)."""


class ProjectSystemException(RunyardError):
    """A project folder's configuration cannot be read or written (v1's name)."""


class WorkspaceNotFound(NotFoundError, WorkspaceException):
    def __init__(self, start: Path, checked: list[Path]) -> None:
        shown = ", ".join(str(p) for p in checked[:3])
        more = f" and {len(checked) - 3} more" if len(checked) > 3 else ""
        super().__init__(
            f"No runyard workspace found from {start} upwards (checked {shown}{more}). "
            "Create one with `runyard init` or Workspace.create(path), or set RUNYARD_WORKSPACE=PATH."
        )


class RunNotFound(NotFoundError):
    def __init__(self, run_id: str, where: str) -> None:
        super().__init__(
            f"No run {run_id!r} in workspace {where}. List runs with `runyard runs list`, "
            "or pass --workspace PATH if it lives in another workspace."
        )


class ExperimentNotFound(NotFoundError):
    def __init__(self, name: str, where: str) -> None:
        super().__init__(
            f"No experiment {name!r} in workspace {where}. List experiments with `runyard runs list`; "
            "Experiment(workspace, name) creates one."
        )


class ModelNotFoundException(NotFoundError):
    """No model with that name or version (v1's name; runyard raises its subclass ModelNotFound)."""


class ModelPathNotFoundException(NotFoundError):
    """Model.get_model_path found no downloaded or registered model files (v1's name)."""


class ModelNotFound(ModelNotFoundException):
    def __init__(self, name: str, version: int | None, where: str) -> None:
        which = f"version {version} of model {name!r}" if version else f"model {name!r}"
        super().__init__(
            f"No {which} in {where}. List models with `runyard models list`; "
            "register one with Model.register(workspace, model_path, model_name)."
        )


class InvalidInputError(RunyardError, ValueError):
    """Bad arguments. Also a ValueError so code written against the Azure SDK's checks keeps working."""


class MetricValueError(InvalidInputError):
    pass


class RunConfigurationException(InvalidInputError):
    """A RunConfiguration or ScriptRunConfig that cannot be run as given (v1's name)."""


class EnvironmentNotFound(NotFoundError):
    """No registered (or curated) environment by that name or version."""


class EnvironmentDefinitionError(InvalidInputError):
    """An environment definition runyard cannot turn into a build: a requirements file that does not parse,
    a conda package PyPI does not have, a Python version not on this machine."""


class EnvironmentBuildError(RunyardError):
    """Building an environment failed: the resolver found no solution, a package does not exist, the package
    index is unreachable, the build was killed. `log` is the build log (what 20_image_build_log.txt holds);
    nothing of a failed build is cached."""

    def __init__(self, message: str = "", log: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.log = log


class ConflictError(RunyardError):
    pass


class ComputeTargetException(RunyardError):
    """A compute target that does not exist, or a provisioning request runyard cannot satisfy.

    v1 samples catch exactly this name around `ComputeTarget(workspace=ws, name=...)` to decide whether to
    create the target, so it keeps v1's name rather than a runyard one."""


class DatastoreNotFound(NotFoundError):
    """No datastore of that name in the workspace (a server answers 404)."""


class DatasetNotFound(NotFoundError):
    """No registered dataset of that name, version or id (a server answers 404)."""


class DataAccessError(RunyardError):
    """A datastore that cannot be reached or read: an unreachable endpoint, a missing fsspec backend, a
    file that vanished. The message names the store's URL or endpoint and what to do."""


class ComputeTargetNotFound(ComputeTargetException, NotFoundError):
    """No compute target of that name: v1's `except ComputeTargetException` catches it, and a server
    answers it with 404 like every other missing thing."""


class RunFinishedError(ConflictError):
    def __init__(self, run_id: str, status: str, action: str) -> None:
        super().__init__(
            f"Cannot {action} run {run_id!r}: it already ended with status {status}. "
            "Start a new run (experiment.start_logging() or experiment.submit(...)) to record more."
        )


class PublishedPipelineNotFound(NotFoundError):
    """No published pipeline with that id (a server answers 404)."""


class PipelineEndpointNotFound(NotFoundError):
    """No pipeline endpoint with that id or name (a server answers 404)."""


class ScheduleNotFound(NotFoundError):
    """No schedule with that id (a server answers 404)."""


class PipelineDisabled(ConflictError):
    """A disabled published pipeline, endpoint or schedule was asked to run; enable() it first (409)."""


class AuthError(RunyardError):
    """The tracking server refused the request's credentials; the message says which token or scope."""


class ActivityFailedException(RunyardError):
    """A run or step ended Failed (v1's name; wait_for_completion raises its subclass RunFailedError)."""


class ExperimentExecutionException(RunyardError):
    """A submission could not start its run: bad target, snapshot or configuration (v1's name)."""


class RunEnvironmentException(RunyardError):
    """A script's run context cannot be found or reached (v1's name)."""


class SnapshotException(RunyardError):
    """A run's source snapshot cannot be taken or restored (v1's name)."""


class TrainingException(RunyardError):
    """A training job could not be configured (v1's name)."""


class RunFailedError(ActivityFailedException):
    """Raised by wait_for_completion(raise_on_error=True) when the run ended Failed."""

    def __init__(self, run_id: str, error: dict[str, Any] | None) -> None:
        self.error = error or {}
        message = self.error.get("message", "no error message was recorded")
        super().__init__(f"Run {run_id} failed: {message}\nRead the whole log with `runyard logs {run_id}`.")


class ParallelRunException(RunyardError):
    """A ParallelRunStep job that cannot go on (v1's name). `code` names the kind of failure;
    `delay_seconds`, a retry hint to v1's service, means nothing locally and is kept only as an attribute."""

    def __init__(
        self, exception_message: str = "", code: str | None = None, delay_seconds: float = 0, **kwargs: Any
    ) -> None:
        super().__init__(exception_message, **kwargs)
        self.code = code
        self.delay_seconds = delay_seconds


class TransferTimeout(RunyardError, TimeoutError):
    """upload_files / download_files ran past their timeout_seconds; files already moved stay moved."""


class StoreError(RunyardError):
    pass


class StoreMigrationRequired(StoreError):
    def __init__(self, uri: str, current: str | None, head: str) -> None:
        super().__init__(
            f"The database at {uri} has schema version {current or 'none'}, but this runyard needs {head}. "
            "Upgrade it with `runyard db upgrade` (back up the workspace folder first)."
        )


# Names an Azure ML SDK v1 user catches, mapped onto runyard's tree.
AzureMLException = RunyardError
UserErrorException = InvalidInputError
AuthenticationException = AuthError


class SnapshotIntegrityError(InvalidInputError, SnapshotException):
    """A stored snapshot does not match its content address: a blob's bytes or the manifest were changed
    after it was saved (or the manifest is not a list of relative file names). Code from it never runs."""


class StoreTooNew(StoreMigrationRequired):
    """The database was written by a newer runyard: an upgrade of runyard, not of the database, helps."""

    def __init__(self, uri: str, current: str, head: str) -> None:
        StoreError.__init__(
            self,
            f"The database at {uri} has schema version {current}, which this runyard does not know (its newest "
            f"is {head}): a newer runyard wrote it. Install a runyard whose schema includes {current} "
            "(pip install --upgrade runyard) to open it; `runyard db upgrade` cannot help, it never "
            "downgrades a database.",
        )


class StoreBusy(StoreError):
    """The database's write lock stayed held elsewhere (another process writing to a SQLite file) for
    longer than this process waits; nothing was written. A server answers it with 503 and Retry-After,
    which clients retry."""
