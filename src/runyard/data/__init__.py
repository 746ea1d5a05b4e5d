"""Data access: datastores, datasets (files and tables), their hashing and their consumption by jobs.

Everything here works on a workspace object handed in by the caller and imports nothing from
`runyard.core`, so `core.workspace` can hand out a `Datastore` without a cycle.

Names load lazily (PEP 562): a job's `import runyard` must not pay for pyarrow and fsspec until it
reads data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.lazy_exports import LazyExports

if TYPE_CHECKING:
    from runyard.data.consumption import DatasetConsumptionConfig
    from runyard.data.data_type import DataType
    from runyard.data.dataset import (
        AbstractDataset,
        Dataset,
        FileDataset,
        MountContext,
        TabularDataset,
        dataset_from_payload,
        dataset_payload,
        registered_datasets,
    )
    from runyard.data.dataset_factory import FileDatasetFactory, TabularDatasetFactory
    from runyard.data.datastore import DEFAULT_DATASTORE, Datastore
    from runyard.data.definition import DatasetDefinition

_SOURCES = {
    "AbstractDataset": "runyard.data.dataset",
    "DEFAULT_DATASTORE": "runyard.data.datastore",
    "DataType": "runyard.data.data_type",
    "Dataset": "runyard.data.dataset",
    "DatasetConsumptionConfig": "runyard.data.consumption",
    "DatasetDefinition": "runyard.data.definition",
    "Datastore": "runyard.data.datastore",
    "FileDataset": "runyard.data.dataset",
    "FileDatasetFactory": "runyard.data.dataset_factory",
    "MountContext": "runyard.data.dataset",
    "TabularDataset": "runyard.data.dataset",
    "TabularDatasetFactory": "runyard.data.dataset_factory",
    "dataset_from_payload": "runyard.data.dataset",
    "dataset_payload": "runyard.data.dataset",
    "registered_datasets": "runyard.data.dataset",
}

__all__ = [
    "DEFAULT_DATASTORE",
    "AbstractDataset",
    "DataType",
    "Dataset",
    "DatasetConsumptionConfig",
    "DatasetDefinition",
    "Datastore",
    "FileDataset",
    "FileDatasetFactory",
    "MountContext",
    "TabularDataset",
    "TabularDatasetFactory",
    "dataset_from_payload",
    "dataset_payload",
    "registered_datasets",
]


_exports = LazyExports(__name__, _SOURCES, globals())


def __getattr__(name: str) -> Any:
    return _exports.load(name)


def __dir__() -> list[str]:
    return _exports.names()
