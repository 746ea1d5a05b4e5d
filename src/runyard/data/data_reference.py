"""DataReference: v1's pointer to a path on a datastore, with how a step sees it (mount, download, upload).

A DataReference holds no bytes and does no I/O: it names a datastore, a path on it and a mode. Pipelines
and script runs read its plain attributes (`datastore`, `data_reference_name`, `path_on_datastore`, `mode`,
`path_on_compute`, `overwrite`) to materialise it. As in v1, `str(ref)` is the environment-variable
placeholder `$AZUREML_DATAREFERENCE_<name>` that a script argument is rewritten from.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from runyard.compat import v1_keywords
from runyard.data.backends import clean_store_path
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.data.datapath import DataPath, DataPathComputeBinding
    from runyard.data.datastore import Datastore

MODES = ("mount", "download", "upload")


def default_reference_name(datastore: Any) -> str:
    """A reference without a name is named after its datastore (letters, digits and '_' only)."""
    return re.sub(r"\W", "_", str(getattr(datastore, "name", "") or "data"))


@v1_keywords
class DataReference:
    """A path on a datastore and how a run gets it (v1's azureml.data.data_reference.DataReference)."""

    def __init__(
        self,
        datastore: Datastore,
        data_reference_name: str | None = None,
        path_on_datastore: str | None = None,
        mode: str = "mount",
        path_on_compute: str | None = None,
        overwrite: bool = False,
    ) -> None:
        if not hasattr(datastore, "backend") or not hasattr(datastore, "name"):
            raise InvalidInputError(
                f"DataReference needs a Datastore (Datastore.get(ws, name)), not {type(datastore).__name__}."
            )
        if mode not in MODES:
            raise InvalidInputError(f"DataReference mode must be one of {', '.join(MODES)}, not {mode!r}.")
        name = data_reference_name or default_reference_name(datastore)
        if not re.fullmatch(r"\w+", name):
            raise InvalidInputError(
                f"data_reference_name {name!r} may only hold letters, digits and '_' (it becomes the "
                f"environment variable $AZUREML_DATAREFERENCE_{name})."
            )
        if path_on_datastore is not None:
            clean_store_path(path_on_datastore)  # refuses '..': a reference cannot leave its datastore
        self.datastore = datastore
        self.data_reference_name = name
        self.path_on_datastore = path_on_datastore
        self.mode = mode
        self.path_on_compute = path_on_compute
        self.overwrite = bool(overwrite)

    def _with(self, **changes: Any) -> DataReference:
        fields = {
            "data_reference_name": self.data_reference_name,
            "path_on_datastore": self.path_on_datastore,
            "mode": self.mode,
            "path_on_compute": self.path_on_compute,
            "overwrite": self.overwrite,
            **changes,
        }
        return DataReference(self.datastore, **fields)

    def as_mount(self) -> DataReference:
        """The same reference, mounted: the run reads the files in place (read-only)."""
        return self._with(mode="mount")

    def as_download(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        """The same reference, downloaded to `path_on_compute` before the run starts."""
        return self._with(mode="download", path_on_compute=path_on_compute, overwrite=overwrite)

    def as_upload(self, path_on_compute: str | None = None, overwrite: bool = False) -> DataReference:
        """The same reference as an output: what the run writes at `path_on_compute` is uploaded."""
        return self._with(mode="upload", path_on_compute=path_on_compute, overwrite=overwrite)

    def path(self, path: str | None = None, data_reference_name: str | None = None) -> DataReference:
        """A reference to `path` below this one (on the same datastore)."""
        base = clean_store_path(self.path_on_datastore or "")
        below = clean_store_path(path or "")
        joined = "/".join(p for p in (base, below) if p) or None
        return DataReference(
            self.datastore, data_reference_name=data_reference_name, path_on_datastore=joined
        )

    @staticmethod
    def create(
        data_reference_name: str | None = None,
        datapath: DataPath | None = None,
        datapath_compute_binding: DataPathComputeBinding | None = None,
    ) -> DataReference:
        if datapath is None:
            raise InvalidInputError(
                "DataReference.create needs datapath=DataPath(datastore, path_on_datastore)."
            )
        return datapath.create_data_reference(data_reference_name, datapath_compute_binding)

    def to_config(self) -> dict[str, Any]:
        """v1's DataReferenceConfiguration fields, as a dict."""
        return {
            "dataStoreName": self.datastore.name,
            "mode": self.mode,
            "pathOnDataStore": self.path_on_datastore,
            "pathOnCompute": self.path_on_compute,
            "overwrite": self.overwrite,
        }

    @property
    def datastore_name(self) -> str:
        return str(self.datastore.name)

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.data_reference_name}"

    def __repr__(self) -> str:
        return (
            f"DataReference(datastore={self.datastore.name!r}, data_reference_name={self.data_reference_name!r}, "
            f"path_on_datastore={self.path_on_datastore!r}, mode={self.mode!r})"
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataReference) and (
            other.datastore,
            other.data_reference_name,
            other.path_on_datastore,
            other.mode,
            other.path_on_compute,
            other.overwrite,
        ) == (
            self.datastore,
            self.data_reference_name,
            self.path_on_datastore,
            self.mode,
            self.path_on_compute,
            self.overwrite,
        )

    def __hash__(self) -> int:
        return hash((self.datastore, self.data_reference_name, self.path_on_datastore, self.mode))
