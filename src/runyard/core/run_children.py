"""Child runs: child_run, create_children, get_children. Mixed into Run.

A child is an interactive run owned by the process that made it, so a killed parent process leaves no
child Running forever (core/context.py reaps it).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.core.run_snapshots import OUTPUTS_KEY
from runyard.errors import InvalidInputError
from runyard.status import RunStatus

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.run import Run
    from runyard.core.workspace import Workspace
    from runyard.store import RunRecord


class RunChildrenMixin:
    workspace: Workspace
    _record: RunRecord

    if TYPE_CHECKING:

        @property
        def id(self) -> str: ...
        @property
        def type(self) -> str: ...
        @property
        def experiment(self) -> Experiment: ...

        def _wrap(self, record: RunRecord) -> Run: ...

    def child_run(self, name: str | None = None, run_id: str | None = None, outputs: Any = None) -> Run:
        """Create and start a child run in the same experiment, owned by this process: if the process dies
        before completing it, whoever waits on it marks it Failed instead of waiting forever. An `outputs`
        folder is uploaded as the child's outputs/ when it ends, as in v1."""
        from runyard.core.processes import identity  # psutil: not for a job that only logs

        data: dict[str, Any] = {"owner": identity()}
        if outputs is not None:
            data[OUTPUTS_KEY] = str(Path(outputs).expanduser().resolve())
        return self.experiment._create_run(
            run_id=run_id or str(uuid.uuid4()),
            run_type=self.type,
            parent_id=self.id,
            display_name=name,
            status=RunStatus.RUNNING,
            target=self._record.target,
            data=data,
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
        _rehydrate_runs: bool = True,
    ) -> Iterator[Run]:
        records = self.workspace.store.list_descendants(
            self.id,
            recursive,
            run_type=type,
            status=None if status is None else [status],
            tags=tags,
            properties=properties,
        )
        for record in records:  # filtered in the store's one query per generation
            yield self._wrap(record)
