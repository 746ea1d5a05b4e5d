"""Data objects of pipeline authoring: PipelineParameter, PipelineData, OutputFileDatasetConfig.

Both of v1's data-passing APIs normalise to one graph object: a named output of one step, bound as a
named input of the steps that read it. runyard creates every output folder before the step starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from runyard.errors import InvalidInputError

DATA_NAME_RULE = re.compile(r"^[A-Za-z_]\w*$")
PARAM_TYPES = {bool: "bool", int: "int", float: "float", str: "string"}


class PipelineParameter:
    """A value chosen at submit time (`pipeline_parameters={name: value}`), with a default."""

    def __init__(self, name: str, default_value: Any) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidInputError("PipelineParameter needs a non-empty name.")
        if default_value is not None and type(default_value) not in PARAM_TYPES:
            raise InvalidInputError(
                f"PipelineParameter {name!r}: default_value must be int, float, bool or str, "
                f"got {type(default_value).__name__}."
            )
        if isinstance(default_value, str) and "\n" in default_value:
            raise InvalidInputError(f"PipelineParameter {name!r}: multi-line values are not allowed.")
        self.name = name
        self.default_value = default_value

    def __repr__(self) -> str:
        return f"PipelineParameter(name={self.name!r}, default_value={self.default_value!r})"


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

    name: str
    mode: str
    destination: tuple[Any, str] | None
    overwrite: bool
    _producer: Any = None  # the step that writes it (set by the step), so resolve_closure can find it

    def as_input(self, input_name: str | None = None) -> InputBinding:
        return InputBinding(self, input_name or self.name, "mount")

    def as_mount(self, input_name: str | None = None) -> InputBinding | _OutputData:
        return InputBinding(self, input_name or self.name, "mount")

    def as_download(
        self, input_name: str | None = None, path_on_compute: str | None = None, overwrite: bool | None = None
    ) -> InputBinding:
        return InputBinding(self, input_name or self.name, "download")

    def get_env_variable_name(self) -> str:
        return f"AZUREML_DATAREFERENCE_{self.name}"

    def __str__(self) -> str:
        return f"${self.get_env_variable_name()}"


class PipelineData(_OutputData):
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
        self.name = _check_data_name(output_name or name, "PipelineData")
        if output_mode not in ("mount", "upload"):
            raise InvalidInputError(
                f"PipelineData {name!r}: output_mode must be 'mount' or 'upload', got {output_mode!r}."
            )
        self.mode = output_mode
        self.datastore = datastore
        self.destination = None
        self.overwrite = bool(output_overwrite)

    def __repr__(self) -> str:
        return f"PipelineData(name={self.name!r}, output_mode={self.mode!r})"


class OutputFileDatasetConfig(_OutputData):
    """v1's newer output API: pass it in `arguments` of the producer, `.as_input()` to consumers."""

    def __init__(
        self,
        name: str | None = None,
        destination: tuple[Any, str] | None = None,
        source: str | None = None,
        partition_format: str | None = None,
    ) -> None:
        self.name = _check_data_name(name, "OutputFileDatasetConfig") if name is not None else ""
        self.destination = destination
        self.mode = "mount"
        self.overwrite = False
        self.datastore = destination[0] if destination else None

    def as_mount(self, input_name: str | None = None) -> OutputFileDatasetConfig:
        """On the producer: write straight to the destination while the step runs."""
        self.mode = "mount"
        return self

    def as_upload(self, overwrite: bool = False, source_globs: Any = None) -> OutputFileDatasetConfig:
        """On the producer: write to local scratch, published atomically when the step succeeds."""
        self.mode = "upload"
        self.overwrite = overwrite
        return self

    def read_delimited_files(self, *args: Any, **kwargs: Any) -> OutputFileDatasetConfig:
        return self

    def __repr__(self) -> str:
        return f"OutputFileDatasetConfig(name={self.name!r}, mode={self.mode!r})"


@dataclass
class InputBinding:
    """A consumer's view of an output: which data, under which input name, how."""

    data: _OutputData
    name: str
    mode: str = "mount"

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.name}"
