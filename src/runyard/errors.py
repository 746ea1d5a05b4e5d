"""Errors runyard raises on purpose. Every message is written for the user and says how to fix it.

    RunyardError
    ├── NotFoundError            something named does not exist
    │   ├── WorkspaceNotFound
    │   ├── RunNotFound
    │   ├── ExperimentNotFound
    │   └── ModelNotFound
    ├── InvalidInputError        the caller passed something runyard cannot accept
    │   └── MetricValueError
    ├── ComputeTargetException   a named compute target is missing or cannot be created (v1's name)
    ├── ConflictError            the request is valid but the current state forbids it
    │   └── RunFinishedError
    ├── AuthError                the server refused the token (missing, invalid, expired, wrong scope)
    ├── RunFailedError           waiting on a run that ended Failed (raise_on_error=True)
    └── StoreError               the database or artifact store could not do its job
        └── StoreMigrationRequired

A user script that crashes is not a RunyardError: it is a run that ends Failed with its exit code
and the last lines of its log in the run's details.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class RunyardError(Exception):
    """Base of every error runyard raises on purpose. The message is for the user."""


class NotFoundError(RunyardError):
    pass


class WorkspaceNotFound(NotFoundError):
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


class ModelNotFound(NotFoundError):
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


class ConflictError(RunyardError):
    pass


class ComputeTargetException(RunyardError):
    """A compute target that does not exist, or a provisioning request runyard cannot satisfy.

    v1 samples catch exactly this name around `ComputeTarget(workspace=ws, name=...)` to decide whether to
    create the target, so it keeps v1's name rather than a runyard one."""


class RunFinishedError(ConflictError):
    def __init__(self, run_id: str, status: str, action: str) -> None:
        super().__init__(
            f"Cannot {action} run {run_id!r}: it already ended with status {status}. "
            "Start a new run (experiment.start_logging() or experiment.submit(...)) to record more."
        )


class AuthError(RunyardError):
    """The tracking server refused the request's credentials; the message says which token or scope."""


class RunFailedError(RunyardError):
    """Raised by wait_for_completion(raise_on_error=True) when the run ended Failed."""

    def __init__(self, run_id: str, error: dict[str, Any] | None) -> None:
        self.error = error or {}
        message = self.error.get("message", "no error message was recorded")
        super().__init__(f"Run {run_id} failed: {message}\nRead the whole log with `runyard logs {run_id}`.")


class StoreError(RunyardError):
    pass


class StoreMigrationRequired(StoreError):
    def __init__(self, uri: str, current: str | None, head: str) -> None:
        super().__init__(
            f"The database at {uri} has schema version {current or 'none'}, but this runyard needs {head}. "
            "Upgrade it with `runyard db upgrade` (back up the workspace folder first)."
        )


# Names an Azure ML SDK v1 user catches, mapped onto runyard's tree.
UserErrorException = InvalidInputError
ActivityFailedException = RunFailedError
ModelNotFoundException = ModelNotFound


class SnapshotIntegrityError(InvalidInputError):
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
