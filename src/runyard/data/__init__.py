"""Data access: datastores, datasets (files and tables), their hashing and their consumption by jobs.

Everything here works on a workspace object handed in by the caller and imports nothing from
`runyard.core`, so `core.workspace` can hand out a `Datastore` without a cycle.
"""

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
