"""Experiment: a named group of runs, and the place runs are submitted from."""

from __future__ import annotations

import re
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

from runyard.core.processes import identity
from runyard.core.run import (
    INTERACTIVE_RUN_TYPE,
    MAX_ID_LENGTH,
    Run,
    check_run_id,
    check_text,
    submitted_by,
)
from runyard.errors import InvalidInputError
from runyard.status import RunStatus
from runyard.store import RunRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

# The SDK's code accepts 1-255 characters; its docs say 3-36. We enforce the code and warn on the docs.
NAME_RULE = re.compile(r"^[a-zA-Z0-9][\w-]{0,254}$")


class Submittable(Protocol):
    """Anything experiment.submit() accepts: ScriptRunConfig here, Pipeline in runyard.pipeline."""

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


def _tag_filter_ok(values: dict[str, Any], wanted: Any) -> bool:
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted in values
    return all(values.get(k) == (None if v is None else str(v)) for k, v in dict(wanted).items())


def matches_filters(
    run: Run, *, tags: Any = None, properties: Any = None, type: str | None = None, status: str | None = None
) -> bool:
    if type is not None and run.type != type:
        return False
    if status is not None and run.status != status:
        return False
    if tags is not None and not _tag_filter_ok(run.get_tags(), tags):
        return False
    return properties is None or _tag_filter_ok(run.get_properties(), properties)


class Experiment:
    def __init__(self, workspace: Workspace, name: str, **_: Any) -> None:
        self.workspace = workspace
        self.name = check_experiment_name(name)
        self.id = workspace.store.get_or_create_experiment(name).id

    @classmethod
    def _existing(cls, workspace: Workspace, name: str) -> Experiment:
        exp = cls.__new__(cls)
        exp.workspace, exp.name = workspace, name
        exp.id = workspace.store.get_experiment(name).id
        return exp

    @classmethod
    def list(cls, workspace: Workspace, experiment_name: str | None = None, **_: Any) -> list[Experiment]:
        return [
            cls._existing(workspace, e.name)
            for e in workspace.store.list_experiments()
            if experiment_name is None or e.name == experiment_name
        ]

    def submit(self, config: Submittable, tags: dict[str, Any] | None = None, **kwargs: Any) -> Run:
        """Start `config` (a ScriptRunConfig, or a Pipeline) and return its run at once."""
        submit = getattr(config, "_submit_to", None)
        if submit is None:
            raise InvalidInputError(
                f"experiment.submit() cannot run a {type(config).__name__}; pass a ScriptRunConfig or a Pipeline."
            )
        run: Run = submit(self, tags, **kwargs)
        return run

    def start_logging(
        self,
        *args: Any,
        name: str | None = None,
        run_id: str | None = None,
        outputs: Any = None,
        snapshot_directory: str | None = ".",
        **kwargs: Any,
    ) -> Run:
        """An interactive run recorded from this process; Running until run.complete()."""
        return self._create_run(
            run_id=run_id or str(uuid.uuid4()),
            run_type=INTERACTIVE_RUN_TYPE,
            display_name=name,
            status=RunStatus.RUNNING,
            target="local",
            # the process that owns the run: if it dies without run.complete(), readers end the run
            data={"owner": identity()},
        )

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
        status: str | None = None,
    ) -> Iterator[Run]:
        """Runs of this experiment, newest first; top-level only unless include_children."""
        for record in self.workspace.store.list_runs(
            experiment_name=self.name, top_level_only=not include_children
        ):
            run = Run._from_record(self.workspace, record)
            if matches_filters(run, tags=tags, properties=properties, type=type, status=status):
                yield run

    def get_portal_url(self) -> str:
        return f"{self.workspace.studio_url}/experiments/{self.name}"

    def __repr__(self) -> str:
        return f"Experiment(Name: {self.name}, Workspace: {self.workspace.name})"
