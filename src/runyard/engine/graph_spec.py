"""The typed pipeline graph: what a scheduler reads from a pipeline run record, and what it refuses.

A pipeline run's graph is stored as JSON in the run's data. Whoever can write records can write that
JSON, so the scheduler treats it as untrusted input: `parse_graph` checks its version and its shape
(frozen pydantic models that forbid unknown keys) and the references between its parts, and
`GraphSpec.check_scripts` checks, against the snapshot manifests, that every step script is a file of
its own snapshot. Script names are never interpreter flags (`-c`, `-m`, `-`): `python -u -c CODE` would
run code that is in no snapshot. See docs/security.md.

`pipeline/graph.py` builds these models at compile time; the store, the studio and
`PipelineRun.get_graph` keep the JSON form (`GraphSpec.to_json()`).
"""

from __future__ import annotations

import graphlib
import posixpath
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from runyard.engine.graph_datasets import DataPathValue, DatasetInputSpec, DatasetValue, check_dataset_payload
from runyard.engine.graph_errors import SAFE_PATTERN as _SAFE_PATTERN
from runyard.engine.graph_errors import describe_errors as _describe
from runyard.engine.graph_parallel import ParallelSpec
from runyard.errors import InvalidInputError
from runyard.store.env_rules import EnvironmentDefinitionModel

__all__ = [
    "GRAPH_VERSION",
    "READABLE_VERSIONS",
    "DataPathValue",
    "DatasetInputSpec",
    "DatasetValue",
    "GraphError",
    "GraphSpec",
    "ParallelSpec",
    "StepSpec",
    "check_dataset_payload",
    "parse_graph",
    "script_problem",
]

#: Version of the graph JSON this runyard writes. Bump it when the shape changes.
#: 2: steps gained `datasets` (dataset / datastore-path inputs) and parameters may default to a dataset.
#: 3: a step's environment gained `definition` (v1's environment JSON, built into a virtual environment).
#: 4: steps may carry `parallel` (a ParallelRunStep's settings, engine/graph_parallel.py).
GRAPH_VERSION = 4
#: Versions this runyard still reads: a version 1 graph is a version 2 graph without dataset inputs, a
#: version 2 graph a version 3 graph whose steps run with the scheduler's interpreter (no definition).
READABLE_VERSIONS = (1, 2, 3, 4)

SafeName = Annotated[str, StringConstraints(pattern=_SAFE_PATTERN)]
#: Display names (steps): any printable text, without control characters.
StepName = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]
#: Step param names become environment variable names (AML_PARAMETER_<name>): no NUL, no '='.
ParamKey = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^\x00=]+$")]


class GraphError(InvalidInputError):
    """A pipeline graph that cannot be run; the message says what is wrong with it."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


class LiteralArg(_Frozen):
    literal: str


class ParamArg(_Frozen):
    param: str


class InputArg(_Frozen):
    input: SafeName


class OutputArg(_Frozen):
    output: SafeName


ArgToken = LiteralArg | ParamArg | InputArg | OutputArg
ParamValue = LiteralArg | ParamArg


class SourceSpec(_Frozen):
    dir: str
    snapshot: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    files: int | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_snapshot(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Before submit there is no snapshot yet; the JSON then has only "dir", as it always had."""
        return {k: v for k, v in handler(self).items() if v is not None}


def _check_relative(path: Any, what: str) -> None:
    if path is None:
        return
    if not isinstance(path, str) or ".." in path.replace("\\", "/").split("/") or "\x00" in path:
        raise ValueError(f"{what} {path!r} must be a relative path without '..' or NUL")


class InputSpec(_Frozen):
    """Another step's output read by this step. "direct" with `read` (v1's output.read_delimited_files()
    .as_input(name)): the step gets a TabularDataset over the output's files instead of a folder."""

    name: SafeName
    step: StepName
    output: SafeName
    mode: Literal["mount", "download", "direct"]
    read: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_read(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = dict(handler(self))
        if out.get("read") is None:
            out.pop("read", None)
        return out

    @model_validator(mode="after")
    def _read_is_tabular(self) -> InputSpec:
        if (self.mode == "direct") != (self.read is not None):
            raise ValueError("an input is 'direct' exactly when it reads the output as a tabular dataset")
        if self.read is not None:
            if self.read.get("read") not in ("delimited_files", "parquet_files"):
                raise ValueError("read must be 'delimited_files' or 'parquet_files'")
            ops = self.read.get("transforms", [])
            if not isinstance(ops, list) or any(
                not isinstance(op, dict)
                or op.get("op") not in ("keep_columns", "drop_columns", "random_split")
                for op in ops
            ):
                raise ValueError("read.transforms may only keep_columns, drop_columns or random_split")
            _check_relative(self.read.get("path_glob"), "path_glob")
        return self


class OutputSpec(_Frozen):
    name: SafeName
    mode: Literal["mount", "upload"]
    datastore: SafeName
    destination: str | None = None
    overwrite: bool = False
    #: v1's PipelineData(pipeline_output_name=...): the name PipelineRun.get_pipeline_output() finds it by.
    pipeline_output: SafeName | None = None
    #: register_on_complete: {name, description, tags, read}; registered when the step completes.
    registration: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_pipeline_output(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Most outputs have no pipeline-level name nor registration; their JSON stays as it always was."""
        out = dict(handler(self))
        for key in ("pipeline_output", "registration"):
            if out.get(key) is None:
                out.pop(key, None)
        return out

    @model_validator(mode="after")
    def _registration_is_named(self) -> OutputSpec:
        if self.registration is not None:
            name = self.registration.get("name")
            if not isinstance(name, str) or not name.strip() or len(name) > 256:
                raise ValueError("registration needs a dataset name")
            read = self.registration.get("read")
            if read is not None and (
                not isinstance(read, dict) or read.get("read") not in ("delimited_files", "parquet_files")
            ):
                raise ValueError("registration.read must be a delimited_files or parquet_files read")
        return self

    @model_validator(mode="after")
    def _destination_stays_inside(self) -> OutputSpec:
        if self.destination is not None:
            parts = self.destination.replace("\\", "/").split("/")
            if ".." in parts or "\x00" in self.destination:
                raise ValueError(f"destination {self.destination!r} may not contain '..' or NUL")
            rel = posixpath.normpath(self.destination.replace("\\", "/").strip("/") or ".")
            if rel == ".":  # would be the datastore itself: overwrite=True would replace all of it
                raise ValueError(
                    f"destination {self.destination!r} is the datastore's root; name a folder inside it, "
                    "such as 'outputs/{run-id}/{output-name}'"
                )
        return self


class EnvironmentSpec(_Frozen):
    """The step's environment: its name, the Python it asks for, and (version 3) its definition, v1's
    environment JSON resolved at submit; None runs the step with the scheduler's interpreter as it is.
    Checked again when the step is planned (environments/plan.py): a graph is untrusted input."""

    name: str | None = None
    python: str = ""
    definition: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _definition_has_v1s_shape(self) -> EnvironmentSpec:
        """The shapes runyard reads (store/env_rules.py, as the registry checks them), and variables a
        process environment can hold: a forged definition fails here, not in the step's process start."""
        if self.definition is not None:
            try:
                model = EnvironmentDefinitionModel.model_validate(self.definition)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(
                    f"the environment definition is not v1's shape: {where}: {first['msg']}"
                ) from None
            for key, value in (model.environmentVariables or {}).items():
                if not key or "=" in key or "\x00" in key or "\x00" in value:
                    raise ValueError(f"environment variable {key!r:.60} cannot be set in a process")
        return self

    @model_serializer(mode="wrap")
    def _omit_unset_definition(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out = dict(handler(self))
        if out.get("definition") is None:
            out.pop("definition", None)
        return out


class ParameterSpec(_Frozen):
    default: str | int | float | bool | DatasetValue | DataPathValue | None = None

    @property
    def is_dataset(self) -> bool:
        """A data parameter: its values are datasets or DataPaths, read through a step's dataset inputs."""
        return isinstance(self.default, (DatasetValue, DataPathValue))


class StepSpec(_Frozen):
    name: StepName
    type: str
    script: str
    source: SourceSpec
    arguments: tuple[ArgToken, ...] = ()
    params: dict[ParamKey, ParamValue] = Field(default_factory=dict)
    inputs: tuple[InputSpec, ...] = ()
    datasets: tuple[DatasetInputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    run_after: tuple[StepName, ...] = ()
    compute_target: str = "local"
    environment: EnvironmentSpec = EnvironmentSpec()
    allow_reuse: bool = True
    version: str | None = None
    #: A ParallelRunStep's settings (graph version 4): `script` is then its entry script, run by the driver.
    parallel: ParallelSpec | None = None

    @model_serializer(mode="wrap")
    def _omit_unset_parallel(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Steps that are not ParallelRunSteps keep the JSON they always had."""
        out = dict(handler(self))
        if out.get("parallel") is None:
            out.pop("parallel", None)
        return out

    @model_validator(mode="after")
    def _parallel_inputs_exist(self) -> StepSpec:
        if self.parallel is not None:
            known = {i.name for i in self.inputs} | {d.name for d in self.datasets}
            for name in (*self.parallel.inputs, *self.parallel.side_inputs):
                if name not in known:
                    raise ValueError(f"parallel input {name!r} is not one of the step's inputs")
            if self.parallel.output is not None and self.parallel.output not in {
                o.name for o in self.outputs
            }:
                raise ValueError(f"parallel output {self.parallel.output!r} is not one of the step's outputs")
        return self

    @model_validator(mode="after")
    def _script_is_a_relative_file_name(self) -> StepSpec:
        problem = script_problem(self.script)
        if problem:
            raise ValueError(f"script {self.script!r} {problem}")
        return self

    @property
    def script_path(self) -> str:
        """The script as a snapshot manifest names it ('./a/b.py' → 'a/b.py')."""
        return posixpath.normpath(self.script)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class GraphSpec(_Frozen):
    version: int
    description: str | None = None
    parameters: dict[str, ParameterSpec] = Field(default_factory=dict)
    steps: tuple[StepSpec, ...]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def step(self, name: str) -> StepSpec:
        return next(s for s in self.steps if s.name == name)

    def check_scripts(self, manifests: Mapping[str, Mapping[str, str]]) -> None:
        """Every step script must be a file of its step's snapshot (manifests: snapshot id → files)."""
        for step in self.steps:
            if step.source.snapshot is None:
                raise GraphError(f"step {step.name!r} has no source snapshot")
            files = manifests.get(step.source.snapshot, {})
            if step.script_path not in files:
                raise GraphError(
                    f"step {step.name!r}: script {step.script!r} is not a file of its snapshot "
                    f"{step.source.snapshot[:12]} ({len(files)} files)"
                )


def script_problem(script: str) -> str | None:
    """Why `script` cannot be a step script, or None. It becomes `python -u SCRIPT ARGS…`."""
    if not script or "\x00" in script:
        return "is empty or holds a NUL"
    if script.startswith("-"):
        return "starts with '-': an interpreter option such as -c or -m is not a script"
    if script.startswith("/") or script.startswith("\\") or re.match(r"^[A-Za-z]:", script):
        return "is an absolute path; it must be relative to the step's source_directory"
    if ".." in script.replace("\\", "/").split("/") or posixpath.normpath(script) == ".":
        return "contains '..'; it must be a file inside the step's source_directory"
    return None


def parse_graph(data: Any) -> GraphSpec:
    """The typed graph, or GraphError saying what is wrong (version, shape, references, cycles)."""
    if not isinstance(data, dict):
        raise GraphError(f"the graph is {type(data).__name__}, not an object")
    version = data.get("version")
    if type(version) is not int or version not in READABLE_VERSIONS:  # not True (== 1), not 1.0
        if type(version) is int:
            age = "a newer" if version > GRAPH_VERSION else "an older"
            raise GraphError(
                f"this graph was written by {age} runyard (graph version {version}, this runyard reads "
                f"version {GRAPH_VERSION}); run it with the runyard that submitted it, or resubmit it"
            )
        raise GraphError(
            f"the graph has no valid version (got {version!r}; this runyard reads {GRAPH_VERSION})"
        )
    try:
        graph = GraphSpec.model_validate(data)
    except ValidationError as exc:
        raise GraphError(_describe(exc, data)) from None
    if graph.version < 2 and any(s.datasets for s in graph.steps):
        raise GraphError("a version 1 graph has no dataset inputs; this one claims some")
    if graph.version < 3 and any(s.environment.definition is not None for s in graph.steps):
        raise GraphError(
            f"a version {graph.version} graph has no environment definitions; this one claims some"
        )
    if graph.version < 4 and any(s.parallel is not None for s in graph.steps):
        raise GraphError(f"a version {graph.version} graph has no parallel steps; this one claims some")
    _check_references(graph)
    return graph


def _check_references(graph: GraphSpec) -> None:
    names = [s.name for s in graph.steps]
    if not names:
        raise GraphError("the graph has no steps")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise GraphError(f"two steps are named {twice[0]!r}")
    outputs = {s.name: {o.name for o in s.outputs} for s in graph.steps}
    for step in graph.steps:
        where = f"step {step.name!r}"
        for binding in step.inputs:
            if binding.output not in outputs.get(binding.step, set()):
                raise GraphError(
                    f"{where} reads output {binding.output!r} of step {binding.step!r}, which has none"
                )
        for after in step.run_after:
            if after not in outputs:
                raise GraphError(f"{where} runs after {after!r}, which is not a step of this graph")
        inputs = {i.name for i in step.inputs}
        for dataset in step.datasets:
            if dataset.name in inputs:
                raise GraphError(f"{where} has two inputs named {dataset.name!r}")
            inputs.add(dataset.name)
            param = dataset.source.param
            if param is not None and param not in graph.parameters:
                raise GraphError(
                    f"{where}: input {dataset.name!r} uses parameter {param!r}, which is not declared"
                )
            if param is not None and not graph.parameters[param].is_dataset:
                raise GraphError(
                    f"{where}: input {dataset.name!r} uses parameter {param!r}, whose default is not a dataset"
                )
        own = {o.name for o in step.outputs}
        for setting, knob in (step.parallel.tokens() if step.parallel else {}).items():
            if knob.param is not None and knob.param not in graph.parameters:
                raise GraphError(f"{where}: {setting} uses parameter {knob.param!r}, which is not declared")
        tokens = [*step.arguments, *step.params.values()]
        for token in tokens:
            if isinstance(token, ParamArg) and token.param not in graph.parameters:
                raise GraphError(f"{where} uses parameter {token.param!r}, which the graph does not declare")
            if isinstance(token, ParamArg) and graph.parameters[token.param].is_dataset:
                raise GraphError(
                    f"{where} passes parameter {token.param!r}, which holds a dataset, as text; pass it "
                    "through DatasetConsumptionConfig(name, parameter) instead"
                )
            if isinstance(token, InputArg) and token.input not in inputs:
                raise GraphError(f"{where} passes input {token.input!r}, which is not one of its inputs")
            if isinstance(token, OutputArg) and token.output not in own:
                raise GraphError(f"{where} passes output {token.output!r}, which is not one of its outputs")
    deps = {s.name: {i.step for i in s.inputs} | set(s.run_after) for s in graph.steps}
    try:
        graphlib.TopologicalSorter(deps).prepare()
    except graphlib.CycleError as exc:
        raise GraphError(f"the steps form a cycle ({' → '.join(exc.args[1])})") from None
