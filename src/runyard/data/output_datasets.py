"""The data side of an output folder, shared by script runs (core/script_outputs.py) and pipeline steps
(engine/step_data.py): the dataset it reads as, its upload to a datastore that is not a folder here,
and its `register_on_complete` registration.

Both kinds of run hand the same three things: a datastore name and a path on it, a local folder, and the
`read` dict that `OutputFileDatasetConfig.read_delimited_files()` / `read_parquet_files()` build
(pipeline/data.py, pipeline/output_views.py): {"read": "delimited_files" | "parquet_files",
"include_path", "separator", "header", "partition_format", "path_glob", "set_column_types",
"transforms": [{"op": "keep_columns" | "drop_columns", "columns"} | {"op": "random_split",
"percentage", "seed", "part"}]}. Keeping one reading of that dict here means a script run's output and a
step's output register the same dataset for the same request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.data.datastore import Datastore
from runyard.errors import ConflictError, InvalidInputError
from runyard.store.records import DatasetRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.data.abstract_dataset import AbstractDataset

#: a (datastore or its name, path on it) pair, or a local folder
Source = tuple[Any, str] | str


def column_type_specs(types: Any) -> dict[str, str] | None:
    """v1's set_column_types ({column: DataType or its spec}) as the text specs a dataset definition
    keeps: to_datetime formats and to_float decimal marks included, not just the type's name."""
    from runyard.data.data_type import DataType

    if types is None:
        return None
    if not isinstance(types, dict):
        raise InvalidInputError("set_column_types must be a dict of column name to DataType.")
    return {str(k): DataType.from_spec(v).to_spec() for k, v in types.items()}


def tabular_read(
    read: str,
    include_path: bool,
    partition_format: str | None,
    path_glob: str | None,
    set_column_types: Any,
    **delimited: Any,
) -> dict[str, Any]:
    """The `read` dict of `output.read_delimited_files(...)` ("delimited_files", with separator and
    header in `delimited`) or `read_parquet_files(...)` ("parquet_files"), as tabular_view reads it."""
    return {
        "read": read,
        "include_path": include_path,
        **delimited,
        "partition_format": partition_format,
        "path_glob": path_glob,
        "set_column_types": column_type_specs(set_column_types),
    }


def with_transform(read: dict[str, Any], op: dict[str, Any]) -> dict[str, Any]:
    """`read` with one more keep_columns / drop_columns / random_split step on the view."""
    return {**read, "transforms": [*read.get("transforms", []), op]}


def _under(source: Source, glob: str) -> Source:
    if not glob:
        return source
    if isinstance(source, tuple):
        return source[0], f"{source[1].rstrip('/')}/{glob}"
    return f"{source.rstrip('/')}/{glob}"


def tabular_view(source: Source, read: dict[str, Any]) -> AbstractDataset:
    """v1's `output.read_delimited_files()` / `read_parquet_files()` as a TabularDataset over `source`: a
    local folder (what a consumer step reads) or a (datastore, path) pair (what register_on_complete
    keeps), shaped by the view's keep_columns / drop_columns / random_split."""
    from runyard.data.dataset_factory import TabularDatasetFactory

    path = _under(source, str(read.get("path_glob") or "").strip("/"))
    common: dict[str, Any] = {
        "validate": False,
        "include_path": bool(read.get("include_path")),
        "set_column_types": read.get("set_column_types") or None,
        "partition_format": read.get("partition_format"),
    }
    if read.get("read") == "parquet_files":
        dataset: Any = TabularDatasetFactory.from_parquet_files(path, **common)
    else:
        dataset = TabularDatasetFactory.from_delimited_files(
            path, separator=str(read.get("separator", ",")), header=read.get("header", True), **common
        )
    for op in read.get("transforms") or []:
        if op["op"] == "random_split":
            dataset = dataset.random_split(op["percentage"], op.get("seed"))[op["part"]]
        else:
            dataset = getattr(dataset, op["op"])(op["columns"])
    return dataset


def output_dataset(datastore: str, path_on_datastore: str, read: dict[str, Any] | None) -> AbstractDataset:
    """The dataset an output folder registers as: its files, or the tabular reading `read` asks for."""
    from runyard.data.dataset_factory import FileDatasetFactory

    path = str(path_on_datastore).strip("/")
    if read is None:
        return FileDatasetFactory.from_files((datastore, path), validate=False)
    return tabular_view((datastore, path), read)


def register_output(
    ws: Workspace,
    name: str,
    description: str | None,
    tags: dict[str, str] | None,
    read: dict[str, Any] | None,
    datastore: str,
    path_on_datastore: str,
    run_id: str,
) -> DatasetRecord:
    """v1's register_on_complete: a new version of dataset `name` over exactly the files now under
    `path_on_datastore` (a TabularDataset when `read` is given), with run_id = the run that wrote them."""
    from runyard.data.resolve import resolve_files

    store = Datastore(ws, datastore)  # DatastoreNotFound names the known ones; v1 names ignore case
    definition = output_dataset(store.name, path_on_datastore, read).definition
    resolved = resolve_files(ws, definition)
    record = DatasetRecord(
        id="",
        name=str(name),
        version=0,
        kind=definition.kind,
        definition=definition.to_json(),
        files=[f.to_json() for f in resolved.files],
        content_hash=resolved.content_hash,
        created_time=time.time(),
        description=description,
        tags={str(k): str(v) for k, v in (tags or {}).items()},
        run_id=run_id,
    )
    return ws.store.register_dataset(record, create_new_version=True)


@dataclass(frozen=True)
class Uploaded:
    """What upload_output sent: how many files, and where (for the run's log)."""

    files: int
    url: str


def upload_output(
    ws: Workspace,
    datastore_name: str,
    local_folder: str | Path,
    path_on_datastore: str,
    *,
    overwrite: bool,
    output_name: str | None = None,
) -> Uploaded:
    """Send an output's files from `local_folder` to `path_on_datastore`, each file atomically (the
    backend's put_file: readers never see half a file), in parallel. ConflictError when a file is there
    already and `overwrite` is False (the output was not `.as_upload(overwrite=True)`)."""
    from runyard.data.transfer import Job, run_jobs

    backend = Datastore(ws, datastore_name).backend()
    folder, prefix = Path(local_folder), str(path_on_datastore).strip("/")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())

    def job(path: Path) -> Job:
        rel = path.relative_to(folder).as_posix()
        return Job(rel, path.stat().st_size, lambda: backend.put_file(path, f"{prefix}/{rel}", overwrite))

    who = f"Output {output_name!r}" if output_name else "Output"
    outcome = run_jobs([job(p) for p in files], show_progress=False, description=f"{who} to {datastore_name}")
    if outcome.skipped:
        raise ConflictError(
            f"{who} goes to {prefix!r} on datastore {datastore_name!r} ({backend.url}), which "
            f"already holds {outcome.skipped[0]!r}. Use .as_upload(overwrite=True), or put {{run-id}} in the "
            "destination so each run writes its own folder."
        )
    return Uploaded(outcome.done, f"{backend.url}/{prefix}")
