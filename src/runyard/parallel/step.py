"""v1's ParallelRunStep (azureml-surface.md §8.2), and what compile_graph asks of it.

A ParallelRunStep is a PythonScriptStep whose script is the entry script: it has the same source
snapshot, environment, inputs, outputs, arguments and reuse. What it adds is the graph entry `parallel`
(engine/graph_parallel.py's ParallelSpec): which inputs are partitioned into mini-batches, which are side
inputs, the output that receives the append_row file, and the settings as tokens. `compile_parallel` makes
that entry and reports, as sentences, what would stop the step: the v1 name rule, a node_count this
machine cannot give, a mini_batch_size that does not fit the inputs' kind, and PipelineParameter values
that fail the settings' checks. The scheduler then runs `runyard.parallel.driver` instead of the script.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from runyard.compat import v1_keywords
from runyard.data.consumption import DatasetConsumptionConfig
from runyard.engine.graph_parallel import ParallelSpec, resolve_settings
from runyard.errors import InvalidInputError
from runyard.parallel.config import ParallelRunConfig
from runyard.pipeline.data import (
    InputBinding,
    OutputFileDatasetConfig,
    OutputTabularDatasetConfig,
    PipelineData,
    PipelineParameter,
    is_dataset,
)
from runyard.pipeline.dataset_inputs import is_dataset_input
from runyard.pipeline.steps import PythonScriptStep

__all__ = [
    "RESERVED_ARGUMENTS",
    "STEP_NAME_RULE",
    "CompiledParallel",
    "ParallelRunStep",
    "input_kind",
    "step_name_problem",
]

STEP_NAME_RULE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: Flags the driver owns (v1 refuses them in arguments): they are ParallelRunConfig settings.
RESERVED_ARGUMENTS = (
    "mini_batch_size",
    "error_threshold",
    "allowed_failed_count",
    "allowed_failed_percent",
    "output",
    "output_action",
    "logging_level",
    "process_count_per_node",
    "run_invocation_timeout",
    "run_max_try",
    "append_row_file_name",
    "partition_keys",
)
LOCAL_NODES = (
    "node_count={n} needs several machines; local compute runs one node. Use node_count=1 (raise "
    "process_count_per_node for more workers on this machine), or run on a Ray compute target (coming)."
)
#: A named target (an AmlCompute runyard runs on this machine): v1 code written for a cluster runs as is.
TARGET_NODES = (
    "Step {step!r}: node_count={n} runs as one node on this machine (process_count_per_node={p} workers); "
    "several nodes need the Ray compute target."
)


def step_name_problem(name: str) -> str | None:
    """Why `name` breaks v1's ParallelRunStep name rule, with a name that keeps it; None if it is fine."""
    if 3 <= len(name) <= 32 and STEP_NAME_RULE.match(name):
        return None
    fixed = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    fixed = re.sub(r"^[^a-z]+", "", fixed)[:32].rstrip("-") or "parallel-step"
    if len(fixed) < 3:
        fixed = f"{fixed}-step"
    return (
        f"ParallelRunStep name {name!r} breaks v1's rule: 3 to 32 characters of lower-case letters, digits "
        f"and '-', starting with a letter and not ending with '-' (^[a-z]([-a-z0-9]*[a-z0-9])?$). "
        f"Use for example name={fixed!r}."
    )


def input_kind(item: Any) -> tuple[str, str]:
    """('file' | 'tabular', delivery mode) of a partitioned input; InvalidInputError if it cannot be one."""
    if isinstance(item, InputBinding):
        return ("tabular" if item.read is not None else "file"), item.mode
    if isinstance(item, DatasetConsumptionConfig):
        source = item.dataset
        target = source.default_value if isinstance(source, PipelineParameter) else source
        if is_dataset(target):
            return str(target.definition.kind), item.mode
    elif is_dataset(item):
        kind = str(item.definition.kind)
        return kind, "direct" if kind == "tabular" else "mount"
    raise InvalidInputError(
        f"A ParallelRunStep cannot partition a {type(item).__name__}: inputs are FileDatasets or "
        "TabularDatasets (ds.as_named_input('name'), or a DatasetConsumptionConfig over a PipelineParameter "
        "holding one), or another step's PipelineData / OutputFileDatasetConfig (its "
        ".read_delimited_files() for a table)."
    )


def _as_input(item: Any) -> Any:
    """Another step's output as this step's input binding; anything else as given."""
    if isinstance(item, (PipelineData, OutputFileDatasetConfig, OutputTabularDatasetConfig)):
        return item.as_input()
    return item


def _reserved(arguments: list[Any]) -> None:
    for arg in arguments:
        if not isinstance(arg, str) or not arg.startswith("-"):
            continue
        flag = arg.lstrip("-").split("=", 1)[0]
        if flag == "rank_mini_batch_count":
            raise InvalidInputError(
                "--rank_mini_batch_count (mini-batches without input) is not supported in runyard; give the "
                "step an input to partition."
            )
        if flag in RESERVED_ARGUMENTS:
            raise InvalidInputError(
                f"arguments: {arg!r} is a setting of ParallelRunConfig, which the driver passes itself; set "
                f"{flag}= on ParallelRunConfig instead. Reserved: {', '.join(RESERVED_ARGUMENTS)}."
            )


@dataclass
class CompiledParallel:
    """What compile_graph takes from a ParallelRunStep: the `parallel` entry (None when errors stop it),
    the PipelineParameters its settings use (declared in the graph's parameters) and the problems found."""

    spec: ParallelSpec | None
    parameters: list[PipelineParameter] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@v1_keywords
class ParallelRunStep(PythonScriptStep):
    """Runs `parallel_run_config.entry_script` over `inputs` in mini-batches (runyard.parallel.driver)."""

    step_type = "ParallelRunStep"

    def __init__(
        self,
        name: str,
        parallel_run_config: ParallelRunConfig,
        inputs: list[Any],
        output: PipelineData | OutputFileDatasetConfig | None = None,
        side_inputs: list[Any] | None = None,
        arguments: list[Any] | None = None,
        allow_reuse: bool = True,
    ) -> None:
        """The name rule is checked when the pipeline is validated (v1 checks it at submit), the rest here."""
        if not isinstance(name, str) or not name:
            raise InvalidInputError(
                "ParallelRunStep needs name='score-images' (3-32 lower-case letters, digits, '-')."
            )
        if not isinstance(parallel_run_config, ParallelRunConfig):
            raise InvalidInputError(
                f"ParallelRunStep {name!r}: parallel_run_config must be a ParallelRunConfig, not "
                f"{type(parallel_run_config).__name__}."
            )
        if not isinstance(inputs, (list, tuple)) or not inputs:
            raise InvalidInputError(
                f"ParallelRunStep {name!r}: inputs must be a non-empty list of datasets to partition, such as "
                "[ds.as_named_input('images')]."
            )
        partitioned = [_as_input(i) for i in inputs]
        kinds = {}
        for item in partitioned:
            kind, mode = input_kind(item)
            if kind == "tabular" and mode != "direct":
                raise InvalidInputError(
                    f"ParallelRunStep {name!r}: a tabular input is read directly; use ds.as_named_input(name) "
                    f"without as_mount()/as_download() (got mode {mode!r})."
                )
            kinds[kind] = item
        if len(kinds) > 1:
            raise InvalidInputError(
                f"ParallelRunStep {name!r}: inputs mix FileDatasets and TabularDatasets; all partitioned inputs "
                "must be one kind. Give the other kind its own step, or pass it as a side input."
            )
        side = [_as_input(i) for i in (side_inputs or [])]
        for item in side:
            if not isinstance(item, InputBinding) and not is_dataset_input(item):
                raise InvalidInputError(
                    f"ParallelRunStep {name!r}: side input {type(item).__name__} is not data; side inputs are "
                    "datasets, DataReferences, or another step's PipelineData / OutputFileDatasetConfig."
                )
        both = [i for i in side if any(i is p for p in inputs) or any(i is p for p in partitioned)]
        if both:
            raise InvalidInputError(
                f"ParallelRunStep {name!r}: {both[0]!r} is both an input and a side input; give it once."
            )
        if output is None and parallel_run_config.output_action == "append_row":
            raise InvalidInputError(
                f"ParallelRunStep {name!r}: output_action 'append_row' writes one file into the step's output; "
                "pass output=OutputFileDatasetConfig(name='scores') (or a PipelineData), or use 'summary_only'."
            )
        if output is not None and not isinstance(output, (PipelineData, OutputFileDatasetConfig)):
            raise InvalidInputError(
                f"ParallelRunStep {name!r}: output must be a PipelineData or an OutputFileDatasetConfig, not "
                f"{type(output).__name__}."
            )
        arguments = list(arguments or [])
        _reserved(arguments)
        config = parallel_run_config
        super().__init__(
            script_name=config.entry_script,
            name=name,
            arguments=arguments,
            compute_target=config.compute_target,
            inputs=[*partitioned, *side],
            outputs=[output] if output is not None else [],
            source_directory=config.source_directory,
            allow_reuse=allow_reuse,
            environment=config.environment,
        )
        self.parallel_run_config = config
        self.output = output
        self.side_inputs = side
        self._partitioned = partitioned
        self._kind = next(iter(kinds))

    def compile_parallel(
        self, dataset_names: Mapping[int, str], parameter_values: Mapping[str, Any] | None = None
    ) -> CompiledParallel:
        """The graph's `parallel` entry. `dataset_names`: id(input object) -> its graph input name, as
        compile_graph named the step's dataset inputs; `parameter_values`: the submission's values."""
        compiled = CompiledParallel(None, self.parallel_run_config.parameters())
        problem = step_name_problem(self.name)
        if problem:
            compiled.errors.append(problem)
        try:
            names = [self._graph_name(i, dataset_names) for i in self._partitioned]
            sides = [self._graph_name(i, dataset_names) for i in self.side_inputs]
        except KeyError:  # an input compile_graph refused (two inputs of one name): reported there
            return compiled
        try:
            spec = self.parallel_run_config.to_spec(
                self._kind, tuple(names), tuple(sides), None if self.output is None else self.output.name
            )
        except ValidationError as exc:
            compiled.errors.append(f"Step {self.name!r}: {exc.errors()[0]['msg']}.")
            return compiled
        values = dict(parameter_values or {})
        used = {p.name: values.get(p.name, p.default_value) for p in compiled.parameters}
        compiled.errors.extend(self._kind_of_parameter_inputs(values))
        if any(v is None for v in used.values()):  # compile_graph reports a parameter without a value
            compiled.spec = spec
            return compiled
        try:
            settings = resolve_settings(spec, used)
        except InvalidInputError as exc:
            origin = next(
                (
                    f", PipelineParameter {t.param!r}"
                    for n, t in spec.tokens().items()
                    if t.param and str(exc).startswith(n)
                ),
                "",
            )
            compiled.errors.append(f"Step {self.name!r}{origin}: {exc}")
        else:
            if settings.node_count != 1 and self._target_name() == "local":
                compiled.errors.append(f"Step {self.name!r}: {LOCAL_NODES.format(n=settings.node_count)}")
            elif settings.node_count != 1:
                compiled.warnings.append(
                    TARGET_NODES.format(
                        step=self.name, n=settings.node_count, p=settings.process_count_per_node
                    )
                )
        compiled.spec = spec
        return compiled

    def parallel_spec(self, dataset_names: Mapping[int, str]) -> ParallelSpec:
        """The `parallel` entry alone; InvalidInputError with every problem when there are any."""
        compiled = self.compile_parallel(dataset_names)
        if compiled.errors or compiled.spec is None:
            raise InvalidInputError(
                "\n".join(compiled.errors) or f"Step {self.name!r} has no parallel entry."
            )
        return compiled.spec

    def _target_name(self) -> str:
        """The compute target's name as the graph keeps it ("local", or a named AmlCompute)."""
        return str(getattr(self.compute_target, "name", self.compute_target))

    def _graph_name(self, item: Any, dataset_names: Mapping[int, str]) -> str:
        if isinstance(item, InputBinding):
            return item.name
        return dataset_names[id(item)]

    def _kind_of_parameter_inputs(self, values: Mapping[str, Any]) -> list[str]:
        """A dataset parameter given another kind of dataset at submit than its default."""
        errors = []
        for item in self._partitioned:
            source = getattr(item, "dataset", None)
            if isinstance(source, PipelineParameter) and is_dataset(values.get(source.name)):
                kind = str(values[source.name].definition.kind)
                if kind != self._kind:
                    errors.append(
                        f"Step {self.name!r}: pipeline_parameters gives {source.name!r} a {kind} dataset, but the "
                        f"step partitions {self._kind} inputs; pass a {self._kind} dataset."
                    )
        return errors

    def __repr__(self) -> str:
        return f"ParallelRunStep(name={self.name!r}, entry_script={self.script_name!r})"
