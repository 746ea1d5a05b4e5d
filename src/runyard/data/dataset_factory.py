"""Dataset.File and Dataset.Tabular: v1's FileDatasetFactory and TabularDatasetFactory.

`path` may be a (Datastore, "path/glob") tuple, a DataPath (or DataReference), an http(s) URL, a local
path or glob (runyard's local-first extension: v1 needs the data on a datastore first), or a list of
these. validate=True resolves the sources now, so a glob that matches nothing or a missing datastore
fails at construction rather than inside a job.
"""

from __future__ import annotations

import os
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


def _build(cls: type[Any], definition: DatasetDefinition, workspace: Workspace | None, validate: bool) -> Any:
    dataset = cls(definition, workspace)
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


@v1_keywords
class TabularDatasetFactory:
    """Dataset.Tabular: creates TabularDatasets from delimited, Parquet or JSON-lines files."""

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
