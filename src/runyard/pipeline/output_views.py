"""v1's OutputTabularDatasetConfig: an OutputFileDatasetConfig seen as a TabularDataset.

`output.read_delimited_files()` / `read_parquet_files()` return one. On the producing step it is that
output; `.as_input(name)` on a consumer hands the step a TabularDataset over the output's files (direct
mode, `run.input_datasets[name]`); `keep_columns` / `drop_columns` / `random_split` shape that dataset;
`register_on_complete` registers a TabularDataset when the producer completes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.compat import v1_keywords
from runyard.data.output_datasets import with_transform
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.pipeline.data import InputBinding, OutputFileDatasetConfig


def _columns(columns: Any) -> list[str]:
    names = [columns] if isinstance(columns, str) else list(columns)
    if not names or not all(isinstance(c, str) for c in names):
        raise InvalidInputError("columns must be a column name or a list of column names.")
    return names


@v1_keywords
class OutputTabularDatasetConfig:
    """v1's tabular view of an OutputFileDatasetConfig (`output.read_delimited_files()`): the same folder,
    read as a TabularDataset. On the producer it is that output; `.as_input(name)` on a consumer gives a
    TabularDataset in direct mode."""

    def __init__(self, *, output: OutputFileDatasetConfig, read: dict[str, Any]) -> None:
        self._output = output
        self.read = dict(read)

    @property
    def name(self) -> str:
        return self._output.name

    @property
    def output(self) -> OutputFileDatasetConfig:
        return self._output

    def as_input(self, name: str | None = None) -> InputBinding:
        from runyard.pipeline.data import InputBinding

        return InputBinding(self._output, name or self._output.name, "direct", self.read)

    def as_mount(self) -> OutputTabularDatasetConfig:
        self._output.as_mount()
        return self

    def _with(self, op: dict[str, Any]) -> OutputTabularDatasetConfig:
        return OutputTabularDatasetConfig(output=self._output, read=with_transform(self.read, op))

    def keep_columns(self, columns: Any) -> OutputTabularDatasetConfig:
        """The consumer's TabularDataset keeps only these columns."""
        return self._with({"op": "keep_columns", "columns": _columns(columns)})

    def drop_columns(self, columns: Any) -> OutputTabularDatasetConfig:
        """The consumer's TabularDataset drops these columns."""
        return self._with({"op": "drop_columns", "columns": _columns(columns)})

    def random_split(
        self, percentage: float, seed: int | None = None
    ) -> tuple[OutputTabularDatasetConfig, OutputTabularDatasetConfig]:
        """Two views: about `percentage` of the rows, and the rest (as TabularDataset.random_split)."""
        if not isinstance(percentage, (int, float)) or not 0 < percentage < 1:
            raise InvalidInputError(f"random_split: percentage must be between 0 and 1, got {percentage!r}.")
        split = {"op": "random_split", "percentage": float(percentage), "seed": seed}
        return self._with({**split, "part": 0}), self._with({**split, "part": 1})

    def as_upload(self, overwrite: bool = False, source_globs: Any = None) -> OutputTabularDatasetConfig:
        self._output.as_upload(overwrite, source_globs)
        return self

    def register_on_complete(
        self, name: str, description: str | None = None, tags: dict[str, str] | None = None
    ) -> OutputTabularDatasetConfig:
        """When the producing step completes, register a TabularDataset over exactly its files."""
        from runyard.pipeline.data import _registration

        self._output.registration = _registration(name, description, tags, self.read)
        return self

    def get_env_variable_name(self) -> str:
        return self._output.get_env_variable_name()

    def __str__(self) -> str:
        return str(self._output)

    def __repr__(self) -> str:
        return f"OutputTabularDatasetConfig(name={self.name!r}, read={self.read['read']!r})"
