"""What a step run's outputs look like from outside: v1's StepRunOutput and PortDataReference.

`StepRun.get_output(name)` is a StepRunOutput; its `get_port_data_reference()` (and
`StepRun.get_output_data(name)`) is a PortDataReference: where the output lives on its datastore
(`path_on_datastore`, datastore-relative as in v1) and `download()`. runyard adds `local_path`: a
datastore is a folder of the workspace, so an output can be read in place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compat import v1_keywords
from runyard.data.datastore import Datastore

if TYPE_CHECKING:
    from runyard.pipeline.runs import StepRun


class StepRunOutput:
    """One output of a step run, as v1's `StepRun.get_output(name)` returns it."""

    def __init__(
        self, context: Any, pipeline_run_id: str | None, step_run: StepRun, name: str, step_output: Any
    ) -> None:
        self._workspace, self.pipeline_run_id, self.step_run = context, pipeline_run_id, step_run
        self.name, self._info = name, step_output

    def get_port_data_reference(self) -> PortDataReference:
        return PortDataReference(
            self._workspace, self.pipeline_run_id, {**self._info, "output": self.name}, self.step_run
        )

    def __repr__(self) -> str:
        return f"StepRunOutput(name={self.name!r}, step_run={self.step_run.id!r})"


@v1_keywords
class PortDataReference:
    """Where a step's output lives on its datastore, and a way to copy it out.

    `path_on_datastore` is datastore-relative as in v1 (`azureml/<step run id>/<output name>` unless the
    output named a destination); the folder itself is `local_path` (runyard's own: a datastore here is a
    folder of the workspace)."""

    def __init__(
        self, context: Any, pipeline_run_id: str | None, data_reference: dict[str, Any], step_run: Any = None
    ) -> None:
        self._workspace, self.pipeline_run_id, self._step_run = context, pipeline_run_id, step_run
        info = dict(data_reference)
        self._name = str(info.get("output", ""))
        self._local = str(info["path"])
        self._datastore_name = str(info.get("datastore") or "workspaceblobstore")
        self._relative = _path_on_datastore(info, self._datastore_name, self._name, self._local)
        self.size, self.file_count, self.content_hash = info.get("size"), info.get("files"), info.get("hash")

    @property
    def name(self) -> str:
        return self._name

    @property
    def path_on_datastore(self) -> str:
        return self._relative

    @property
    def datastore_name(self) -> str:
        return self._datastore_name

    @property
    def datastore(self) -> Datastore:
        """The datastore the output lives on; `datastore.local_path(path_on_datastore)` is its folder."""
        return Datastore(self._workspace, self._datastore_name)

    @property
    def local_path(self) -> str:
        """runyard's own: the output's folder on this machine (read it in place, no download needed)."""
        return self._local

    def download(
        self, local_path: str, overwrite: bool | None = None, show_progress: bool | None = None
    ) -> str:
        """Copy the output to `local_path/<path_on_datastore>` and return that folder, as v1 does. Files
        already there are kept unless overwrite=True (v1's datastore download skips them too)."""
        dest = Path(local_path) / self.path_on_datastore
        copied = [0]

        def copy(src: str, dst: str) -> object:
            if os.path.lexists(dst) and not overwrite:
                return dst
            if os.path.lexists(dst):
                os.unlink(dst)
            copied[0] += 1
            return shutil.copy2(src, dst, follow_symlinks=False)

        shutil.copytree(
            self._local, dest, symlinks=True, dirs_exist_ok=True, copy_function=copy
        )  # links stay links
        if show_progress:
            print(f"Downloaded {copied[0]} file(s) of {self.name!r} to {dest}")
        return str(dest)

    def __repr__(self) -> str:
        return f"PortDataReference(name={self.name!r}, datastore={self.datastore_name!r}, path={self.path_on_datastore!r})"


def _path_on_datastore(info: dict[str, Any], datastore: str, name: str, local: str) -> str:
    """The recorded datastore-relative path; for outputs recorded before runyard kept it, the part of
    the folder below `datastores/<name>/`, else v1's default layout."""
    recorded = info.get("pathOnDatastore")
    if isinstance(recorded, str) and recorded:
        return recorded
    parts = Path(local).parts
    for i in range(len(parts) - 2):
        if parts[i] == "datastores" and parts[i + 1] == datastore:
            return "/".join(parts[i + 2 :])
    return f"azureml/{info.get('run_id', '')}/{name}"
