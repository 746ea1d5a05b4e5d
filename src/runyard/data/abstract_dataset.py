"""What FileDataset and TabularDataset share: identity, registration and the files to read.

A dataset is a handle on an immutable DatasetDefinition plus, once registered, the DatasetRecord of one
version. A registered version (and anything derived from it with take/skip/...) reads exactly the files
it recorded, verified first (resolve.locate_record), never a fresh glob: "version 3" keeps meaning the
same bytes or fails loudly. An unregistered dataset evaluates its sources when it is read, as v1 does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from runyard.data.consumption import DatasetConsumptionConfig
from runyard.data.definition import DatasetDefinition
from runyard.data.hashing import ResolvedFile, content_hash
from runyard.data.resolve import Located, locate, locate_record, resolve_files
from runyard.errors import InvalidInputError
from runyard.store.records import DatasetRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

D = TypeVar("D", bound="AbstractDataset")

#: kind -> class, filled in by FileDataset / TabularDataset, so a record becomes the right object.
DATASET_CLASSES: dict[str, type[AbstractDataset]] = {}


class AbstractDataset:
    """Base of FileDataset and TabularDataset (v1's azureml.data.abstract_dataset.AbstractDataset)."""

    KIND: ClassVar[str] = ""

    def __init__(
        self,
        *,
        definition: DatasetDefinition,
        workspace: Workspace | None = None,
        record: DatasetRecord | None = None,
        pinned: DatasetRecord | None = None,
    ) -> None:
        if definition.kind != self.KIND:
            raise InvalidInputError(
                f"A {type(self).__name__} needs a {self.KIND!r} definition, got {definition.kind!r}."
            )
        self._definition = definition
        self._workspace = workspace
        self._record = record
        # The registered version whose recorded files this dataset reads (itself, or the one it came from).
        self._pinned = pinned if pinned is not None else record

    # -- identity ----------------------------------------------------------------------------------
    @property
    def definition(self) -> DatasetDefinition:
        return self._definition

    @property
    def name(self) -> str | None:
        return self._record.name if self._record else None

    @property
    def version(self) -> int | None:
        return self._record.version if self._record else None

    @property
    def id(self) -> str | None:
        return self._record.id if self._record else None

    @property
    def description(self) -> str | None:
        return self._record.description if self._record else None

    @property
    def tags(self) -> dict[str, Any]:
        return dict(self._record.tags) if self._record else {}

    @property
    def workspace(self) -> Workspace | None:
        return self._workspace

    @property
    def content_hash(self) -> str | None:
        """The recorded content hash of a registered version (or of the one this was derived from)."""
        return self._pinned.content_hash if self._pinned else None

    def _derive(self: D, definition: DatasetDefinition) -> D:
        """A new, unregistered dataset of the same class over the same files (a transform appended)."""
        return type(self)(definition=definition, workspace=self._workspace, pinned=self._pinned)

    @classmethod
    def _from_record(cls, workspace: Workspace, record: DatasetRecord) -> AbstractDataset:
        klass = DATASET_CLASSES.get(record.kind)
        if klass is None:
            raise InvalidInputError(
                f"Dataset {record.name!r} version {record.version} has unknown kind {record.kind!r}."
            )
        return klass(
            definition=DatasetDefinition.from_json(record.definition), workspace=workspace, record=record
        )

    # -- files -------------------------------------------------------------------------------------
    def _located(self, workspace: Workspace | None = None, ignore_missing: bool = False) -> list[Located]:
        """The files to read: a registered version's recorded files (verified), else the sources now.
        `workspace` stands in when this dataset has none of its own (an unregistered local dataset)."""
        ws = self._workspace or workspace
        if self._pinned is not None:
            if ws is None:
                raise InvalidInputError("A registered dataset needs its workspace to be read.")
            return locate_record(ws, self._pinned, ignore_missing=ignore_missing)
        return locate(ws, self._definition, with_hashes=False)

    def _files(self, ignore_not_found: bool = False, workspace: Workspace | None = None) -> list[Located]:
        """The files a job gets for this dataset (FileDataset applies its file transforms on top)."""
        return self._located(workspace=workspace, ignore_missing=ignore_not_found)

    # -- registry ----------------------------------------------------------------------------------
    def register(
        self: D,
        workspace: Workspace,
        name: str,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        create_new_version: bool = False,
    ) -> D:
        """Register this dataset as the next version of `name`, recording the files it resolves to now
        (paths, sizes and sha256). Everything is resolved and hashed before the store is touched, so a
        bad glob or an unreadable file registers nothing. Registering the same files and definition
        again without create_new_version returns the existing latest version (v1)."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError(f"A dataset name must be non-empty text, got {name!r}.")
        if tags is not None and not isinstance(tags, dict):
            raise InvalidInputError(f"tags must be a dict, got {type(tags).__name__}.")
        if self._pinned is not None:
            located = locate_record(workspace, self._pinned)
            files: tuple[ResolvedFile, ...] = tuple(item.file for item in located)
            digest = content_hash(files)
        else:
            resolved = resolve_files(workspace, self._definition)
            files, digest = resolved.files, resolved.content_hash
        record = DatasetRecord(
            id="",
            name=name,
            version=0,
            kind=self.KIND,
            definition=self._definition.to_json(),
            files=[f.to_json() for f in files],
            content_hash=digest,
            created_time=time.time(),
            description=description,
            tags=dict(tags or {}),
        )
        stored = workspace.store.register_dataset(record, create_new_version=create_new_version)
        return type(self)(
            definition=DatasetDefinition.from_json(stored.definition), workspace=workspace, record=stored
        )

    @staticmethod
    def get_by_name(
        workspace: Workspace, name: str, version: int | str = "latest", **kwargs: Any
    ) -> AbstractDataset:
        """A registered version by name: version='latest' (the default) or a version number."""
        return get_by_name(workspace, name, version)

    @staticmethod
    def get_by_id(workspace: Workspace, id: str, **kwargs: Any) -> AbstractDataset:
        return get_by_id(workspace, id)

    @staticmethod
    def get_all(workspace: Workspace) -> dict[str, AbstractDataset]:
        return registered_datasets(workspace)

    # -- consumption -------------------------------------------------------------------------------
    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        """This dataset as a run/step input called `name` (run.input_datasets[name] in the job)."""
        return DatasetConsumptionConfig(name, self)

    # -- v1 niceties -------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, AbstractDataset)
            and type(other) is type(self)
            and other._definition == self._definition
            and other.id == self.id
            and (other._pinned.id if other._pinned else None) == (self._pinned.id if self._pinned else None)
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.id, str(self._definition.to_json())))

    def __repr__(self) -> str:
        who = (
            f"name={self.name!r}, version={self.version}, id={self.id!r}" if self._record else "unregistered"
        )
        sources = ", ".join(
            str(s.get("url") or s.get("local") or f"{s['datastore']}:{s['path']}")
            for s in self._definition.sources
        )
        return f"{type(self).__name__}({who}, sources=[{sources}])"


def _version_number(version: int | str) -> int | None:
    if version == "latest" or version is None:
        return None
    if isinstance(version, bool):
        raise InvalidInputError(f"version must be 'latest' or a version number, got {version!r}.")
    try:
        number = int(version)
    except (TypeError, ValueError):
        raise InvalidInputError(f"version must be 'latest' or a version number, got {version!r}.") from None
    if number < 1:
        raise InvalidInputError(f"Dataset versions start at 1, got {version!r}.")
    return number


def get_by_name(workspace: Workspace, name: str, version: int | str = "latest") -> AbstractDataset:
    """DatasetNotFound when there is no such name or version."""
    record = workspace.store.get_dataset(name, _version_number(version))
    return AbstractDataset._from_record(workspace, record)


def get_by_id(workspace: Workspace, dataset_id: str) -> AbstractDataset:
    return AbstractDataset._from_record(workspace, workspace.store.get_dataset_by_id(dataset_id))


def registered_datasets(workspace: Workspace) -> dict[str, AbstractDataset]:
    """{name: latest version} of every registered dataset (ws.datasets, Dataset.get_all)."""
    return {
        r.name: AbstractDataset._from_record(workspace, r) for r in workspace.store.list_datasets(latest=True)
    }
