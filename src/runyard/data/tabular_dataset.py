"""TabularDataset: delimited, Parquet or JSON-lines files read as one table.

The files come from the dataset's sources (or, for a registered version, exactly the recorded files,
verified first); remote files are read through the backend's cached fetch. Parsing, column types and
transforms are data/tabular_read.py's job (pyarrow); this class records options and transforms in the
definition, so `ds.take(5)` is a new dataset whose definition says so, as in v1.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

import pyarrow as pa

from runyard.compat import v1_ignores, v1_keywords
from runyard.data.abstract_dataset import DATASET_CLASSES, AbstractDataset
from runyard.data.definition import DatasetDefinition
from runyard.data.file_dataset import FileDataset, _count, _fraction, new_seed
from runyard.data.resolve import Located, cache_root
from runyard.data.tabular_read import (
    apply_transforms,
    read_table,
    rows_needed,
    table_to_pandas,
    write_csv_files,
    write_parquet_files,
)
from runyard.errors import InvalidInputError

_NULLS = "runyard's readers already turn values that do not convert into nulls (on_error='null')"


def _columns(columns: Any) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
        raise InvalidInputError(f"columns must be a column name or a list of names, got {columns!r}.")
    return list(columns)


class _FetchedOnRead(Sequence[tuple[Path, str]]):
    """(local copy, display path) per file, fetched only when the reader gets to it: take(n) over many
    remote files downloads just the first few. The display path is the path on the datastore (or the
    absolute local path / URL), what v1's Path column and partition_format see."""

    def __init__(self, located: list[Located]) -> None:
        self._located = located

    def __len__(self) -> int:
        return len(self._located)

    @overload
    def __getitem__(self, index: int) -> tuple[Path, str]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[Path, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[Path, str] | Sequence[tuple[Path, str]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        item = self._located[index]
        return Path(item.backend.fetch(item.store_path)), item.file.path


@v1_keywords
class TabularDataset(AbstractDataset):
    """Rows and columns read from files (v1's azureml.data.TabularDataset)."""

    KIND = "tabular"

    def _table(self) -> pa.Table:
        definition = self._definition
        files = _FetchedOnRead(self._located())
        table = read_table(
            files,
            dict(definition.format or {"type": "delimited"}),
            include_path=definition.include_path,
            partition_format=definition.partition_format,
            set_column_types=dict(definition.set_column_types) or None,
            limit=rows_needed(list(definition.transforms)),
        )
        return apply_transforms(table, list(definition.transforms))

    @v1_ignores(on_error=_NULLS, out_of_range_datetime=_NULLS)
    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null") -> Any:
        """The whole table as a pandas DataFrame (pyarrow reads; columns typed as inferred or set)."""
        return table_to_pandas(self._table())

    def _output_folder(self) -> Path:
        root = cache_root(self._workspace) / "tabular" / uuid.uuid4().hex
        root.parent.mkdir(parents=True, exist_ok=True)
        return root

    def _as_file_dataset(self, folder: Path) -> FileDataset:
        definition = DatasetDefinition(kind="file", sources=({"local": str(folder.resolve())},))
        return FileDataset(definition=definition, workspace=self._workspace)

    def to_csv_files(self, separator: str = ",") -> FileDataset:
        """A FileDataset over CSV part files of this table, written to the workspace's cache folder."""
        folder = self._output_folder()
        write_csv_files(self._table(), folder, separator=separator)
        return self._as_file_dataset(folder)

    def to_parquet_files(self) -> FileDataset:
        """A FileDataset over Parquet part files of this table, written to the workspace's cache folder."""
        folder = self._output_folder()
        write_parquet_files(self._table(), folder)
        return self._as_file_dataset(folder)

    def to_path(self) -> list[str]:
        """The underlying files' paths relative to the dataset root, each with a leading '/'."""
        return ["/" + item.rel for item in self._located()]

    def take(self, count: int) -> TabularDataset:
        return self._derive(self._definition.with_transform("take", count=_count(count, "take")))

    def skip(self, count: int) -> TabularDataset:
        return self._derive(self._definition.with_transform("skip", count=_count(count, "skip")))

    def take_sample(self, probability: float, seed: int | None = None) -> TabularDataset:
        chosen = new_seed() if seed is None else seed
        return self._derive(
            self._definition.with_transform(
                "take_sample", probability=_fraction(probability, "probability"), seed=chosen
            )
        )

    def random_split(
        self, percentage: float, seed: int | None = None
    ) -> tuple[TabularDataset, TabularDataset]:
        """Two datasets that partition the rows exactly (the same seed gives the same split)."""
        chosen = new_seed() if seed is None else seed
        cut = _fraction(percentage, "percentage")
        return (
            self._derive(
                self._definition.with_transform("random_split", percentage=cut, seed=chosen, side="first")
            ),
            self._derive(
                self._definition.with_transform("random_split", percentage=cut, seed=chosen, side="second")
            ),
        )

    def keep_columns(self, columns: str | list[str], validate: bool = False) -> TabularDataset:
        return self._derive(
            self._definition.with_transform("keep_columns", columns=_columns(columns), validate=validate)
        )

    def drop_columns(self, columns: str | list[str]) -> TabularDataset:
        return self._derive(self._definition.with_transform("drop_columns", columns=_columns(columns)))


DATASET_CLASSES["tabular"] = TabularDataset
