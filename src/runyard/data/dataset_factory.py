"""Dataset.File and Dataset.Tabular: v1's FileDatasetFactory and TabularDatasetFactory.

`path` may be a (Datastore, "path/glob") tuple, a DataPath (or DataReference), an http(s) URL, a local
path or glob (runyard's local-first extension: v1 needs the data on a datastore first), or a list of
these. validate=True resolves the sources now, so a glob that matches nothing or a missing datastore
fails at construction rather than inside a job.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.compat import v1_ignores, v1_keywords
from runyard.data.data_type import DataType
from runyard.data.definition import DatasetDefinition
from runyard.data.file_dataset import FileDataset
from runyard.data.resolve import locate
from runyard.data.tabular_dataset import TabularDataset
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

_PATH_HELP = (
    "Pass (datastore, 'path/or/glob'), a DataPath, an http(s) URL, a local path or glob, or a list of these."
)


def _datastore_name(datastore: Any) -> tuple[str, Workspace | None]:
    if isinstance(datastore, str) and datastore:
        return datastore, None
    name = getattr(datastore, "name", None)
    if isinstance(name, str) and name:
        return name, getattr(datastore, "workspace", None)
    raise InvalidInputError(f"Not a datastore: {datastore!r}. {_PATH_HELP}")


def _one_source(item: Any) -> tuple[dict[str, str], Workspace | None]:
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[1], str):
            raise InvalidInputError(
                f"A (datastore, path) tuple needs exactly a datastore and a path, got {item!r}."
            )
        name, ws = _datastore_name(item[0])
        return {"datastore": name, "path": item[1]}, ws
    if isinstance(item, os.PathLike):
        item = os.fspath(item)
    if isinstance(item, str):
        if not item.strip():
            raise InvalidInputError(f"A dataset path may not be empty. {_PATH_HELP}")
        if item.startswith(("http://", "https://")):
            return {"url": item}, None
        if "://" in item:
            raise InvalidInputError(
                f"Dataset path {item!r} is a URL runyard cannot read directly: register its store with "
                "Datastore.register_fsspec(ws, name, url) and pass (datastore, 'path/glob')."
            )
        return {"local": os.path.abspath(os.path.expanduser(item))}, None
    if hasattr(item, "path_on_datastore"):  # DataPath / DataReference
        store = getattr(item, "datastore", None) or getattr(item, "datastore_name", None)
        if store is None:
            raise InvalidInputError(f"{item!r} has no datastore. {_PATH_HELP}")
        name, ws = _datastore_name(store)
        return {"datastore": name, "path": str(getattr(item, "path_on_datastore", None) or "")}, ws
    raise InvalidInputError(f"Cannot make a dataset from {item!r}. {_PATH_HELP}")


def parse_sources(path: Any) -> tuple[tuple[dict[str, str], ...], Workspace | None]:
    """The definition's sources for v1's `path` argument, and the workspace its datastores belong to."""
    items = path if isinstance(path, list) else [path]
    if not items:
        raise InvalidInputError(f"from_files got an empty list of paths. {_PATH_HELP}")
    sources: list[dict[str, str]] = []
    workspace: Workspace | None = None
    for item in items:
        source, ws = _one_source(item)
        sources.append(source)
        workspace = workspace or ws
    return tuple(sources), workspace


def _column_types(set_column_types: Any) -> dict[str, str]:
    if set_column_types is None:
        return {}
    if not isinstance(set_column_types, dict):
        raise InvalidInputError(
            f"set_column_types must be a dict of column -> DataType, got {set_column_types!r}."
        )
    return {str(col): DataType.from_spec(kind).to_spec() for col, kind in set_column_types.items()}


def _target(target: Any) -> tuple[Any, str]:
    """(Datastore object, path) for v1's `target`: a Datastore, a (Datastore, path) tuple or a DataPath."""
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[1], str):
        store, path = target
    elif hasattr(target, "path_on_datastore"):
        store, path = getattr(target, "datastore", None), str(target.path_on_datastore or "")
    else:
        store, path = target, ""
    if not hasattr(store, "upload_files") or not hasattr(store, "workspace"):
        raise InvalidInputError(
            f"target must be a Datastore, a (Datastore, 'path') tuple or a DataPath, got {target!r}."
        )
    return store, path.strip("/")


def _build(cls: type[Any], definition: DatasetDefinition, workspace: Workspace | None, validate: bool) -> Any:
    dataset = cls(definition=definition, workspace=workspace)
    if validate:
        needs_ws = any("datastore" in s for s in definition.sources)
        if workspace is not None or not needs_ws:
            locate(workspace, definition, with_hashes=False)
    return dataset


@v1_keywords
class FileDatasetFactory:
    """Dataset.File: creates FileDatasets."""

    @staticmethod
    @v1_ignores(is_file="runyard lists the path either way; whether it is one file is found by looking")
    def from_files(
        path: Any, validate: bool = True, partition_format: str | None = None, is_file: bool = False
    ) -> FileDataset:
        sources, ws = parse_sources(path)
        definition = DatasetDefinition(kind="file", sources=sources, partition_format=partition_format)
        return _build(FileDataset, definition, ws, validate)

    @staticmethod
    def upload_directory(
        src_dir: str,
        target: Any,
        pattern: str | None = None,
        overwrite: bool = False,
        show_progress: bool = True,
    ) -> FileDataset:
        """Upload the files of `src_dir` (those matching the glob `pattern`, when given) to `target` and
        return a FileDataset over the target folder (and `pattern` below it), rooted at the target."""
        store, path = _target(target)
        source = Path(src_dir)
        if not source.is_dir():
            raise InvalidInputError(f"upload_directory needs a folder, got {src_dir!r}.")
        chosen = sorted(p for p in (source.glob(pattern) if pattern else source.rglob("*")) if p.is_file())
        if not chosen:
            raise InvalidInputError(f"No files in {src_dir!r} match {pattern or '*'!r}: nothing to upload.")
        store.upload_files(
            [str(p) for p in chosen], relative_root=str(source), target_path=path or None,
            overwrite=overwrite, show_progress=show_progress,
        )  # fmt: skip
        where = "/".join(part for part in (path, pattern) if part)
        return FileDatasetFactory.from_files((store, where))


@v1_keywords
class TabularDatasetFactory:
    """Dataset.Tabular: creates TabularDatasets from delimited, Parquet or JSON-lines files."""

    @staticmethod
    @v1_ignores(show_progress="uploads show progress only when long; the flag is accepted")
    def register_pandas_dataframe(
        dataframe: Any,
        target: Any,
        name: str,
        description: str | None = None,
        tags: dict[str, Any] | None = None,
        show_progress: bool = True,
        row_group_size: int | None = None,
        make_target_path_unique: bool = True,
    ) -> TabularDataset:
        """Write `dataframe` as Parquet to `target` (in a new unique folder below it by default), then
        register a TabularDataset over it as a new version of `name`."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        store, path = _target(target)
        if make_target_path_unique:
            path = f"{path}/{uuid.uuid4()}" if path else str(uuid.uuid4())
        try:
            table = pa.Table.from_pandas(dataframe, preserve_index=False)
        except (TypeError, ValueError, pa.ArrowException) as exc:
            raise InvalidInputError(
                f"register_pandas_dataframe needs a pandas DataFrame Parquet can hold: {exc}"
            ) from None
        with tempfile.TemporaryDirectory(prefix="runyard-frame-") as tmp:
            local = Path(tmp) / "part-00000.parquet"
            pq.write_table(table, local, row_group_size=row_group_size)
            store.upload_files(
                [str(local)], relative_root=tmp, target_path=path or None, overwrite=True, show_progress=False
            )
        dataset = TabularDatasetFactory.from_parquet_files(
            (store, f"{path}/part-00000.parquet" if path else "part-00000.parquet")
        )
        return dataset.register(
            store.workspace, name, description=description, tags=tags, create_new_version=True
        )

    @staticmethod
    def from_delimited_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        infer_column_types: bool = True,
        set_column_types: dict[str, Any] | None = None,
        separator: str = ",",
        header: Any = True,
        partition_format: str | None = None,
        support_multi_line: bool = False,
        empty_as_string: bool = False,
        encoding: str = "utf8",
    ) -> TabularDataset:
        if not isinstance(separator, str) or len(separator) != 1:
            raise InvalidInputError(f"separator must be one character, got {separator!r}.")
        header_value = header if isinstance(header, bool | str) else getattr(header, "name", header)
        if not isinstance(header_value, bool | str | int):
            raise InvalidInputError(f"header must be True/False or a PromoteHeadersBehavior, got {header!r}.")
        fmt = {
            "type": "delimited",
            "separator": separator,
            "header": header_value,
            "infer_column_types": bool(infer_column_types),
            "support_multi_line": bool(support_multi_line),
            "empty_as_string": bool(empty_as_string),
            "encoding": str(getattr(encoding, "name", encoding)),
        }
        return _tabular(path, validate, fmt, include_path, set_column_types, partition_format)

    @staticmethod
    def from_parquet_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        set_column_types: dict[str, Any] | None = None,
        partition_format: str | None = None,
    ) -> TabularDataset:
        return _tabular(path, validate, {"type": "parquet"}, include_path, set_column_types, partition_format)

    @staticmethod
    def from_json_lines_files(
        path: Any,
        validate: bool = True,
        include_path: bool = False,
        set_column_types: dict[str, Any] | None = None,
        partition_format: str | None = None,
        invalid_lines: str = "error",
        encoding: str = "utf8",
    ) -> TabularDataset:
        if invalid_lines not in ("error", "drop"):
            raise InvalidInputError(f"invalid_lines must be 'error' or 'drop', got {invalid_lines!r}.")
        fmt = {
            "type": "json_lines",
            "invalid_lines": invalid_lines,
            "encoding": str(getattr(encoding, "name", encoding)),
        }
        return _tabular(path, validate, fmt, include_path, set_column_types, partition_format)


def _tabular(
    path: Any,
    validate: bool,
    fmt: dict[str, Any],
    include_path: bool,
    set_column_types: Any,
    partition_format: str | None,
) -> TabularDataset:
    sources, ws = parse_sources(path)
    definition = DatasetDefinition(
        kind="tabular",
        sources=sources,
        format=fmt,
        include_path=bool(include_path),
        partition_format=partition_format,
        set_column_types=_column_types(set_column_types),
    )
    return _build(TabularDataset, definition, ws, validate)
