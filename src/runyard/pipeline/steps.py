"""Pipeline steps. A step describes one process: script, source directory, arguments, data in and out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runyard.compat import v1_ignores, v1_keywords
from runyard.errors import InvalidInputError
from runyard.pipeline.data import (
    InputBinding,
    OutputTabularDatasetConfig,
    PipelineData,
    PipelineParameter,
    _OutputData,
)
from runyard.pipeline.dataset_inputs import dataset_inputs_of, is_dataset_input


@v1_keywords
class PythonScriptStep:
    step_type = "PythonScriptStep"

    @v1_ignores(
        runconfig_pipeline_params="run configuration values are not pipeline parameters locally",
        hash_paths="every file of source_directory is hashed for reuse (v1 deprecated hash_paths too)",
    )
    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        arguments: list[Any] | None = None,
        compute_target: Any = None,
        runconfig: Any = None,
        runconfig_pipeline_params: Any = None,
        inputs: list[Any] | None = None,
        outputs: list[Any] | None = None,
        params: dict[str, Any] | None = None,
        source_directory: str | os.PathLike[str] | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: Any = None,
        *,
        environment: Any = None,
    ) -> None:
        """runyard's `environment=` is keyword-only: v1 takes it through runconfig (which also works)."""
        if not isinstance(script_name, str) or not script_name:
            raise InvalidInputError("PythonScriptStep needs script_name='script.py'.")
        self.script_name = script_name
        self.name = name or script_name
        self.arguments = list(arguments or [])
        self.compute_target = compute_target if compute_target is not None else "local"
        if isinstance(self.compute_target, tuple):
            self.compute_target = self.compute_target[0]
        self.inputs = list(inputs or [])
        self.outputs = list(outputs or [])
        self.params = dict(params or {})
        self.source_directory = str(source_directory) if source_directory is not None else None
        self.allow_reuse = bool(allow_reuse)
        self.version = version
        self.environment = environment if environment is not None else getattr(runconfig, "environment", None)
        self._run_after: list[PythonScriptStep] = []
        for item in [*self.inputs, *self.outputs, *self.arguments]:
            if not isinstance(
                item,
                (
                    str,
                    int,
                    float,
                    bool,
                    PipelineParameter,
                    _OutputData,
                    OutputTabularDatasetConfig,
                    InputBinding,
                    Path,
                ),
            ) and not is_dataset_input(item):
                raise InvalidInputError(
                    f"Step {self.name!r}: cannot use a {type(item).__name__} here; arguments take strings, numbers, "
                    "PipelineParameter, PipelineData, OutputFileDatasetConfig, datasets "
                    "(ds.as_named_input('name')), DataReference and DataPath."
                )
        dataset_inputs_of(self)  # an unusable dataset input is refused here, where the step is written
        for data in data_produced_by(self):
            data._producer = self

    def run_after(self, step: PythonScriptStep) -> None:
        """Run this step only after `step` has finished, even without data between them."""
        self._run_after.append(step)

    def __repr__(self) -> str:
        return f"PythonScriptStep(name={self.name!r}, script_name={self.script_name!r})"


@v1_keywords
class StepSequence:
    """Steps that run in the listed order."""

    def __init__(self, steps: list[PythonScriptStep] | None = None) -> None:
        self.steps = list(steps or [])
        for before, after in zip(self.steps, self.steps[1:], strict=False):
            after.run_after(before)


def data_produced_by(step: PythonScriptStep) -> list[_OutputData]:
    """Outputs of a step: its `outputs`, plus output objects passed directly in `arguments`."""
    found: list[_OutputData] = []
    for item in [*step.outputs, *step.arguments]:
        if isinstance(item, OutputTabularDatasetConfig):  # a tabular view: on its producer, the output itself
            item = item.output
        if isinstance(item, _OutputData) and item not in found:
            if isinstance(item, PipelineData) and item not in step.outputs:
                continue  # classic rule: a PipelineData in arguments only is an input unless also in outputs
            found.append(item)
    return found


def data_consumed_by(step: PythonScriptStep) -> list[InputBinding]:
    produced = data_produced_by(step)
    bindings: list[InputBinding] = []
    for item in [*step.inputs, *step.arguments]:
        if isinstance(item, InputBinding):
            binding = item
        elif isinstance(item, PipelineData) and item not in produced:
            binding = item.as_input()
        else:
            continue
        if all(b.name != binding.name for b in bindings):
            bindings.append(binding)
    return bindings
