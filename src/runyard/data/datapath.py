"""DataPath: v1's (datastore, path) pair, the form datasets and pipeline parameters take a path in.

A DataPath is just where data is; `create_data_reference` adds how a run gets it (a
DataPathComputeBinding: mount, download or upload, and where on the compute).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runyard.compat import v1_keywords
from runyard.data.backends import clean_store_path
from runyard.data.data_reference import MODES, DataReference
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.data.datastore import Datastore


@v1_keywords
class DataPathComputeBinding:
    """How a run gets a DataPath: `mode` ('mount', 'download', 'upload') at `path_on_compute`."""

    def __init__(
        self, mode: str = "mount", path_on_compute: str | None = None, overwrite: bool = False
    ) -> None:
        if mode not in MODES:
            raise InvalidInputError(
                f"DataPathComputeBinding mode must be one of {', '.join(MODES)}, not {mode!r}."
            )
        self.mode, self.path_on_compute, self.overwrite = mode, path_on_compute, bool(overwrite)

    def create_data_reference(
        self, data_reference_name: str | None = None, datapath: DataPath | None = None
    ) -> DataReference:
        if datapath is None:
            raise InvalidInputError(
                "create_data_reference needs datapath=DataPath(datastore, path_on_datastore)."
            )
        return datapath.create_data_reference(data_reference_name, self)

    @staticmethod
    def create_from_data_reference(data_reference: DataReference) -> DataPathComputeBinding:
        return DataPathComputeBinding(
            data_reference.mode, data_reference.path_on_compute, data_reference.overwrite
        )

    def __repr__(self) -> str:
        return f"DataPathComputeBinding(mode={self.mode!r}, path_on_compute={self.path_on_compute!r})"


@v1_keywords
class DataPath:
    """A path on a datastore (v1's azureml.data.datapath.DataPath)."""

    def __init__(
        self,
        datastore: Datastore | None = None,
        path_on_datastore: str | None = None,
        name: str | None = None,
    ) -> None:
        if datastore is None:
            raise InvalidInputError(
                "DataPath needs a datastore: DataPath(Datastore.get(ws, name), 'folder/file')."
            )
        if path_on_datastore is not None:
            clean_store_path(path_on_datastore)  # refuses '..'
        self.datastore = datastore
        self._path_on_datastore = path_on_datastore
        self.name = name

    @property
    def datastore_name(self) -> str:
        return str(self.datastore.name)

    @property
    def path_on_datastore(self) -> str | None:
        return self._path_on_datastore

    def create_data_reference(
        self,
        data_reference_name: str | None = None,
        datapath_compute_binding: DataPathComputeBinding | None = None,
    ) -> DataReference:
        binding = datapath_compute_binding or DataPathComputeBinding()
        return DataReference(
            self.datastore,
            data_reference_name=data_reference_name or self.name,
            path_on_datastore=self._path_on_datastore,
            mode=binding.mode,
            path_on_compute=binding.path_on_compute,
            overwrite=binding.overwrite,
        )

    @staticmethod
    def create_from_data_reference(data_reference: DataReference) -> DataPath:
        return DataPath(
            data_reference.datastore, data_reference.path_on_datastore, data_reference.data_reference_name
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataPath) and (other.datastore, other._path_on_datastore) == (
            self.datastore,
            self._path_on_datastore,
        )

    def __hash__(self) -> int:
        return hash((self.datastore, self._path_on_datastore))

    def __repr__(self) -> str:
        return f"DataPath(datastore={self.datastore_name!r}, path_on_datastore={self._path_on_datastore!r})"
