"""v1's Dataset entry points and the JSON form of a dataset that travels to jobs and pipeline steps.

`Dataset.File.from_files(...)`, `Dataset.Tabular.from_delimited_files(...)`, `Dataset.get_by_name(ws,
name, version)`, `Dataset.get_by_id(ws, id)` and `Dataset.get_all(ws)` are the v1 surface; the classes
live in abstract_dataset.py, file_dataset.py, tabular_dataset.py and dataset_factory.py.

`dataset_payload(ds)` is what a pipeline graph or a submitted run records for a dataset input: its
definition, its registered identity if any, and its content hash when known. `dataset_from_payload`
rebuilds the object on the other side; a registered one is read back from the store by id, so the job
reads exactly the recorded files of that version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.compat import v1_keywords
from runyard.data.abstract_dataset import (
    DATASET_CLASSES,
    AbstractDataset,
    get_by_id,
    get_by_name,
    registered_datasets,
)
from runyard.data.dataset_factory import FileDatasetFactory, TabularDatasetFactory
from runyard.data.definition import DatasetDefinition
from runyard.data.file_dataset import FileDataset, MountContext
from runyard.data.tabular_dataset import TabularDataset
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

__all__ = [
    "AbstractDataset",
    "Dataset",
    "FileDataset",
    "MountContext",
    "TabularDataset",
    "dataset_from_payload",
    "dataset_payload",
    "registered_datasets",
]


@v1_keywords
class Dataset:
    """v1's azureml.core.dataset.Dataset: the factories and the registry look-ups.

    v1's old constructor `Dataset(definition, workspace, name, id)` is deprecated there and not offered
    here: build datasets with Dataset.File / Dataset.Tabular and read registered ones with get_by_name.
    """

    File = FileDatasetFactory
    Tabular = TabularDatasetFactory

    def __init__(
        self, definition: Any, workspace: Any = None, name: str | None = None, id: str | None = None
    ) -> None:
        raise InvalidInputError(
            "Dataset(...) is v1's deprecated constructor: use Dataset.File.from_files(...), "
            "Dataset.Tabular.from_delimited_files(...) or Dataset.get_by_name(ws, name)."
        )

    @staticmethod
    def get_by_name(
        workspace: Workspace, name: str, version: int | str = "latest", **kwargs: Any
    ) -> AbstractDataset:
        """A registered version by name (the latest by default). DatasetNotFound when absent."""
        return get_by_name(workspace, name, version)

    @staticmethod
    def get_by_id(workspace: Workspace, id: str, **kwargs: Any) -> AbstractDataset:
        """A registered version by its id. DatasetNotFound when absent."""
        return get_by_id(workspace, id)

    @staticmethod
    def get_all(workspace: Workspace) -> dict[str, AbstractDataset]:
        """{name: latest registered version}."""
        return registered_datasets(workspace)

    @staticmethod
    def get(workspace: Workspace, name: str | None = None, id: str | None = None) -> AbstractDataset:
        """v1's older look-up: by name (latest version) or by id."""
        if (name is None) == (id is None):
            raise InvalidInputError("Dataset.get needs exactly one of name= or id=.")
        return get_by_name(workspace, name) if name is not None else get_by_id(workspace, str(id))


def dataset_payload(dataset: AbstractDataset) -> dict[str, Any]:
    """JSON-safe description of `dataset`: {"kind", "definition", "registered": {"id", "name", "version"} |
    None, "content_hash": str | None, "pinned_id": id of the registered version whose files it reads}."""
    if not isinstance(dataset, AbstractDataset):
        raise InvalidInputError(f"Expected a FileDataset or TabularDataset, got {type(dataset).__name__}.")
    record = dataset._record
    pinned = dataset._pinned
    return {
        "kind": dataset.definition.kind,
        "definition": dataset.definition.to_json(),
        "registered": {"id": record.id, "name": record.name, "version": record.version} if record else None,
        "content_hash": pinned.content_hash if pinned else None,
        "pinned_id": pinned.id if pinned else None,
    }


def dataset_from_payload(ws: Workspace, payload: Any) -> AbstractDataset:
    """The dataset `dataset_payload` described. A registered one is read from the store by id
    (DatasetNotFound if it is gone); InvalidInputError for a malformed payload."""
    if not isinstance(payload, dict) or not isinstance(payload.get("definition"), dict):
        raise InvalidInputError(f"Not a dataset payload (needs a 'definition' object): {payload!r:.200}.")
    registered = payload.get("registered")
    if registered is not None:
        if not isinstance(registered, dict) or not isinstance(registered.get("id"), str):
            raise InvalidInputError(f"Dataset payload 'registered' needs an 'id': {registered!r:.200}.")
        return get_by_id(ws, registered["id"])
    definition = DatasetDefinition.from_json(payload["definition"])
    klass = DATASET_CLASSES[definition.kind]
    pinned_id = payload.get("pinned_id")
    pinned = ws.store.get_dataset_by_id(pinned_id) if isinstance(pinned_id, str) and pinned_id else None
    return klass(definition=definition, workspace=ws, pinned=pinned)
