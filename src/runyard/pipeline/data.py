"""Data objects of pipeline authoring: PipelineParameter, PipelineData, OutputFileDatasetConfig.

Both of v1's data-passing APIs normalise to one graph object: a named output of one step, bound as a
named input of the steps that read it. runyard creates every output folder before the step starts.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from runyard.compat import v1_ignores, v1_keywords
from runyard.data.output_datasets import tabular_read
from runyard.errors import InvalidInputError


class PromoteHeadersBehavior(enum.Enum):
    """v1's header rule for delimited files (azureml.data.dataset_type_definitions)."""

    NO_HEADERS = 0
    ONLY_FIRST_FILE_HAS_HEADERS = 1
    COMBINE_ALL_FILES_HEADERS = 2
    ALL_FILES_HAVE_SAME_HEADERS = 3


DATA_NAME_RULE = re.compile(r"^[A-Za-z_]\w*$")
PARAM_TYPES = {bool: "bool", int: "int", float: "float", str: "string"}


@v1_keywords
class PipelineParameter:
    """A value chosen at submit time (`pipeline_parameters={name: value}`), with a default."""

    def __init__(self, name: str, default_value: Any) -> None:
        """A dataset default (v1: DatasetConsumptionConfig('in', PipelineParameter('p', default_value=ds)))
        is overridable at submit with another dataset: `pipeline_parameters={'p': other_ds}`."""
        if not isinstance(name, str) or not name:
            raise InvalidInputError("PipelineParameter needs a non-empty name.")
        if (
            default_value is not None
            and type(default_value) not in PARAM_TYPES
            and not is_dataset(default_value)
            and not is_datapath(default_value)
        ):
            raise InvalidInputError(
                f"PipelineParameter {name!r}: default_value must be int, float, bool or str "
                f"(or a dataset or DataPath), "
                f"got {type(default_value).__name__}."
            )
        if isinstance(default_value, str) and "\n" in default_value:
            raise InvalidInputError(f"PipelineParameter {name!r}: multi-line values are not allowed.")
        self.name = name
        self.default_value = default_value

    def __repr__(self) -> str:
        return f"PipelineParameter(name={self.name!r}, default_value={self.default_value!r})"


def is_dataset(value: Any) -> bool:
    """A FileDataset / TabularDataset (data/dataset.py), recognised by its definition."""
    return hasattr(value, "as_named_input") and hasattr(getattr(value, "definition", None), "kind")


def is_datapath(value: Any) -> bool:
    """A DataPath (data/datapath.py): a datastore and a path on it, as a parameter value."""
    from runyard.data.datapath import DataPath

    return isinstance(value, DataPath)


def parameter_json(value: Any) -> Any:
    """A parameter value as the graph and the pipeline run record keep it: datasets as {"dataset": payload},
    DataPaths as {"datapath": {"datastore", "path"}}."""
    if is_datapath(value):
        return {"datapath": {"datastore": value.datastore_name, "path": value.path_on_datastore or ""}}
    if is_dataset(value):
        from runyard.data.dataset import dataset_payload

        return {"dataset": dataset_payload(value)}
    return value


def parameter_from_text(raw: str, default: Any) -> Any:
    """A parameter value typed as text (`--set lr=0.2`, a studio form field), as the type of the
    parameter's default: pipelines compare and pass typed values."""
    if isinstance(default, bool):
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise InvalidInputError(f"{raw!r} is not a boolean (true/false).")
    for kind, word in ((int, "an integer"), (float, "a number")):
        if isinstance(default, kind):
            try:
                return kind(raw)
            except ValueError:
                raise InvalidInputError(f"{raw!r} is not {word}.") from None
    return raw


def _check_data_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not DATA_NAME_RULE.match(name):
        raise InvalidInputError(
            f"{what} name {name!r} is not allowed: use letters, digits and '_' only, not starting with a digit."
        )
    return name


class _OutputData:
    """What PipelineData and OutputFileDatasetConfig share: a named folder one step writes."""

    _name: str
    mode: str
    destination: tuple[Any, str] | None
    overwrite: bool
    _datastore: Any = None
    pipeline_output_name: str | None = None  # PipelineData only: PipelineRun.get_pipeline_output's key
    _producer: Any = None  # the step that writes it (set by the step), so resolve_closure can find it
    registration: dict[str, Any] | None = None  # OutputFileDatasetConfig.register_on_complete

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:  # compile_graph names unnamed outputs after their producer
        self._name = value

    @property
    def datastore(self) -> Any:
        """The datastore given at construction (None: the workspace's default, 'workspaceblobstore')."""
        return self._datastore

    def get_env_variable_name(self) -> str:
        return f"AZUREML_DATAREFERENCE_{self.name}"

    def __str__(self) -> str:
        return f"${self.get_env_variable_name()}"


@v1_keywords
class PipelineData(_OutputData):
    @v1_ignores(
        output_path_on_compute="a step writes straight into the output's folder, whose path it receives",
        is_directory="an output is always a folder",
        training_output="AutoML and HyperDrive steps are not available",
    )
    def __init__(
        self,
        name: str,
        datastore: Any = None,
        output_name: str | None = None,
        output_mode: str = "mount",
        output_path_on_compute: str | None = None,
        output_overwrite: bool | None = None,
        data_type: Any = None,
        is_directory: bool | None = None,
        pipeline_output_name: str | None = None,
        training_output: Any = None,
    ) -> None:
        self._name = _check_data_name(output_name or name, "PipelineData")
        if output_mode not in ("mount", "upload"):
            raise InvalidInputError(
                f"PipelineData {name!r}: output_mode must be 'mount' or 'upload', got {output_mode!r}."
            )
        self.mode = output_mode
        self._datastore = datastore
        self._data_type = data_type
        self.pipeline_output_name = (
            None
            if pipeline_output_name is None
            else _check_data_name(pipeline_output_name, "pipeline_output")
        )
        self.destination = None
        self.overwrite = bool(output_overwrite)

    @property
    def data_type(self) -> Any:
        """As given; v1's default type name when none was."""
        return self._data_type if self._data_type is not None else "AnyDirectory"

    def as_input(self, input_name: str | None = None) -> InputBinding:
        return InputBinding(self, input_name or self.name, "mount")

    def as_mount(self, input_name: str | None = None) -> InputBinding:
        return InputBinding(self, input_name or self.name, "mount")

    @v1_ignores(
        path_on_compute="the input's path is passed to the step", overwrite="the copy is always fresh"
    )
    def as_download(
        self, input_name: str | None = None, path_on_compute: str | None = None, overwrite: bool | None = None
    ) -> InputBinding:
        return InputBinding(self, input_name or self.name, "download")

    @v1_ignores(
        path_on_compute="the input's path is passed to the step", overwrite="the copy is always fresh"
    )
    def create_input_binding(
        self,
        input_name: str | None = None,
        mode: str | None = None,
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
    ) -> InputBinding:
        if mode not in (None, "mount", "download"):
            raise InvalidInputError(
                f"PipelineData {self.name!r}: mode must be 'mount' or 'download', got {mode!r}."
            )
        return InputBinding(self, input_name or self.name, mode or "mount")

    def __repr__(self) -> str:
        return f"PipelineData(name={self.name!r}, output_mode={self.mode!r})"


@v1_keywords
class OutputFileDatasetConfig(_OutputData):
    """v1's newer output API: pass it in `arguments` of the producer, `.as_input()` to consumers."""

    @v1_ignores(
        source="a step writes straight into the output's folder, whose path it receives",
        partition_format="a registered output dataset keeps its files; partitions are read with read_*_files",
    )
    def __init__(
        self,
        name: str | None = None,
        destination: tuple[Any, str] | None = None,
        source: str | None = None,
        partition_format: str | None = None,
    ) -> None:
        self._name = _check_data_name(name, "OutputFileDatasetConfig") if name is not None else ""
        self.destination = destination
        self.mode = "mount"
        self.overwrite = False
        self._datastore = destination[0] if destination else None
        #: register_on_complete's {name, description, tags, read}: the engine registers it on success.
        self.registration: dict[str, Any] | None = None

    def as_input(self, name: str | None = None) -> InputBinding:
        """On a consumer: read this output (mounted)."""
        return InputBinding(self, name or self.name, "mount")

    def as_download(self, name: str | None = None) -> InputBinding:
        """runyard's shorthand for v1's `as_input(name).as_download()`: each consumer gets a private copy."""
        return InputBinding(self, name or self.name, "download")

    @v1_ignores(disable_metadata_cache="outputs are local folders; there is no metadata cache")
    def as_mount(self, disable_metadata_cache: bool = False) -> OutputFileDatasetConfig:
        """On the producer: write straight to the destination while the step runs."""
        self.mode = "mount"
        return self

    @v1_ignores(source_globs="every file the step writes is published")
    def as_upload(self, overwrite: bool = False, source_globs: Any = None) -> OutputFileDatasetConfig:
        """On the producer: write to local scratch, published atomically when the step succeeds."""
        self.mode = "upload"
        self.overwrite = overwrite
        return self

    def read_delimited_files(
        self,
        include_path: bool = False,
        separator: str = ",",
        header: PromoteHeadersBehavior = PromoteHeadersBehavior.ALL_FILES_HAVE_SAME_HEADERS,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: Any = None,
    ) -> OutputTabularDatasetConfig:
        """v1: the same output seen as a TabularDataset of delimited files. Its `.as_input(name)` hands
        the consumer a TabularDataset (run.input_datasets[name]); `.register_on_complete` registers one."""
        read = tabular_read(
            "delimited_files",
            include_path,
            partition_format,
            path_glob,
            set_column_types,
            separator=separator,
            header=getattr(header, "name", header),
        )
        return OutputTabularDatasetConfig(output=self, read=read)

    def read_parquet_files(
        self,
        include_path: bool = False,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: Any = None,
    ) -> OutputTabularDatasetConfig:
        """v1: the same output seen as a TabularDataset of Parquet files (see read_delimited_files)."""
        read = tabular_read("parquet_files", include_path, partition_format, path_glob, set_column_types)
        return OutputTabularDatasetConfig(output=self, read=read)

    def register_on_complete(
        self, name: str, description: str | None = None, tags: dict[str, str] | None = None
    ) -> OutputFileDatasetConfig:
        """When the producing step completes, register a FileDataset over exactly the files it wrote
        (run_id = the step run), recorded in lineage as that run's output."""
        self.registration = _registration(name, description, tags, None)
        return self

    def __repr__(self) -> str:
        return f"OutputFileDatasetConfig(name={self.name!r}, mode={self.mode!r})"


def _registration(name: Any, description: Any, tags: Any, read: dict[str, Any] | None) -> dict[str, Any]:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError("register_on_complete needs a dataset name.")
    if tags is not None and not isinstance(tags, dict):
        raise InvalidInputError("register_on_complete: tags must be a dict of str to str.")
    return {
        "name": name,
        "description": None if description is None else str(description),
        "tags": {str(k): str(v) for k, v in (tags or {}).items()},
        "read": read,
    }


@dataclass
class InputBinding:
    """A consumer's view of an output: which data, under which input name, how. `read` (tabular views
    only) says how to parse the folder: the consumer then gets a TabularDataset ("direct" mode)."""

    data: _OutputData
    name: str
    mode: str = "mount"
    read: dict[str, Any] | None = None

    def as_mount(self) -> InputBinding:
        """v1's `output.as_input().as_mount()`: read the producer's folder in place."""
        return InputBinding(self.data, self.name, "mount")

    def as_download(self, path_on_compute: str | None = None) -> InputBinding:
        """v1's `output.as_input().as_download()`: the step gets its own copy it may change."""
        return InputBinding(self.data, self.name, "download")

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.name}"


# At the end: output_views.py builds on InputBinding and _registration above.
from runyard.pipeline.output_views import OutputTabularDatasetConfig  # noqa: E402
