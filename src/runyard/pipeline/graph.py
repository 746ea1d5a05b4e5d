"""Authoring objects → one plain, serializable graph (a dict that is also JSON).

The scheduler, the store and the studio read only this graph; nothing downstream touches the
authoring classes. `compile_graph` also returns every problem it finds, so validate() can report
them all at once instead of the first.
"""

from __future__ import annotations

import graphlib
import re
import sys
from pathlib import Path
from typing import Any

from runyard.core.environment_use import definition_for, environment_name
from runyard.engine.graph_order import topological_order
from runyard.engine.graph_spec import GRAPH_VERSION, GraphError, parse_graph
from runyard.errors import EnvironmentDefinitionError, EnvironmentNotFound
from runyard.pipeline.data import (
    InputBinding,
    OutputFileDatasetConfig,
    OutputTabularDatasetConfig,
    PipelineParameter,
    _OutputData,
    parameter_json,
)
from runyard.pipeline.dataset_inputs import dataset_inputs_of, source_json
from runyard.pipeline.steps import PythonScriptStep, data_consumed_by, data_produced_by

__all__ = ["GRAPH_VERSION", "collect_steps", "compile_graph"]


def _datastore_name(data: _OutputData) -> str:
    store = getattr(data, "datastore", None)
    return str(getattr(store, "name", store) or "workspaceblobstore")


def _env_spec(step: PythonScriptStep, workspace: Any, errors: list[str]) -> dict[str, Any]:
    """The step's environment as the graph keeps it: the definition resolved now (a registered name looked
    up in `workspace`), and the Python it runs with. A definition that cannot be built is refused here, as
    the scheduler would refuse it (environments/plan.py), so validate() reports it."""
    try:
        definition = definition_for(workspace, step.environment)
    except (EnvironmentNotFound, EnvironmentDefinitionError) as exc:
        errors.append(f"Step {step.name!r}: {exc}")
        definition = None
    spec: dict[str, Any] = {
        "name": environment_name(step.environment, definition),
        "python": ".".join(str(v) for v in sys.version_info[:3]),
    }
    if definition is not None:
        from runyard.environments.plan import plan_environment

        spec["definition"] = definition
        try:
            spec["python"] = plan_environment(definition).python
        except EnvironmentDefinitionError as exc:
            errors.append(f"Step {step.name!r}: {exc}")
    return spec


def collect_steps(steps: list[Any], resolve_closure: bool) -> list[PythonScriptStep]:
    """Flatten StepSequences; with resolve_closure (v1's default), pull in every predecessor of the
    listed steps, as v1 does: producers of the data they consume and steps they `run_after`,
    transitively (issue 11, bug 4: `Pipeline(ws, [last_step])`). A pulled-in step comes just before
    the first step that needs it, so the graph (and every listing of its steps) reads in run order."""
    flat: list[PythonScriptStep] = []
    for item in steps:
        for step in getattr(item, "steps", [item]):
            if step not in flat:
                flat.append(step)
    if not resolve_closure:
        return flat
    ordered: list[PythonScriptStep] = []
    visiting: list[PythonScriptStep] = []  # a cycle is reported by compile_graph, not followed here

    def visit(step: PythonScriptStep) -> None:
        if step in ordered or step in visiting:
            return
        visiting.append(step)
        for before in [b.data._producer for b in data_consumed_by(step)] + list(step._run_after):
            if before is not None and before not in flat:
                visit(before)
        visiting.remove(step)
        ordered.append(step)

    for step in flat:
        visit(step)
    return ordered


def compile_graph(
    steps: list[PythonScriptStep],
    *,
    description: str | None,
    default_source_directory: str | None,
    parameter_values: dict[str, Any] | None = None,
    workspace: Any = None,
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Returns (graph, errors, warnings). The graph is only usable when errors is empty.
    `workspace`: where a step's environment given by name is looked up (core/environment_use.py)."""
    errors: list[str] = []
    warnings: list[str] = []

    names = [s.name for s in steps]
    for name in sorted({n for n in names if names.count(n) > 1}):
        errors.append(f"Two steps are named {name!r}; give each step a unique name=.")

    # Name unnamed OutputFileDatasetConfigs from their producer, so names are stable across submissions.
    producer: dict[int, tuple[str, str]] = {}
    for step in steps:
        for index, data in enumerate(data_produced_by(step)):
            if isinstance(data, OutputFileDatasetConfig) and not data.name:
                # A SafeName: a step name may hold spaces and any other character ("prepare step").
                data.name = re.sub(r"[^A-Za-z0-9_]", "_", f"{step.name}_output_{index}")[-128:]
            if id(data) in producer and producer[id(data)][0] != step.name:
                errors.append(
                    f"Output {data.name!r} is written by both {producer[id(data)][0]!r} and {step.name!r}; "
                    "each output needs exactly one producing step."
                )
            producer[id(data)] = (step.name, data.name)
    output_names = [p[1] for p in producer.values()]
    for name in sorted({n for n in output_names if output_names.count(n) > 1}):
        errors.append(f"Two different outputs are named {name!r}; output names must be unique in a pipeline.")

    parameters: dict[str, Any] = {}
    sources: dict[str, list[str]] = {}
    pipeline_outputs: list[str] = []
    graph_steps = []
    for step in steps:
        source = Path(step.source_directory or default_source_directory or ".").expanduser().resolve()
        sources.setdefault(str(source), []).append(step.name)
        script = (source / step.script_name).resolve()
        if not source.is_dir():
            errors.append(f"Step {step.name!r}: source_directory {str(source)!r} is not a folder.")
        elif not script.is_relative_to(source):
            errors.append(
                f"Step {step.name!r}: script {step.script_name!r} lies outside its source_directory {source}."
            )
        elif not script.is_file():
            errors.append(
                f"Step {step.name!r}: script {step.script_name!r} does not exist in source_directory {source}; "
                "check script_name and source_directory."
            )

        inputs = []
        for binding in data_consumed_by(step):
            origin = producer.get(id(binding.data))
            if origin is None:
                errors.append(
                    f"Step {step.name!r} reads {binding.data.name!r}, but no step in the pipeline produces it. "
                    "Add it to outputs=[...] of the step that writes it (or pass that step in steps=[...])."
                )
                continue
            inputs.append(
                {
                    "name": binding.name,
                    "step": origin[0],
                    "output": origin[1],
                    "mode": binding.mode,
                    **({"read": binding.read} if binding.read is not None else {}),
                }
            )
        datasets, dataset_tokens = _dataset_inputs(step, parameters, errors)
        for spec in datasets:
            if any(i["name"] == spec["name"] for i in inputs):
                errors.append(
                    f"Step {step.name!r} has two inputs named {spec['name']!r}; give each input its own name."
                )

        outputs = [
            {
                "name": d.name,
                "mode": d.mode,
                "datastore": _datastore_name(d),
                "destination": d.destination[1] if d.destination else None,
                "overwrite": d.overwrite,
                **({"pipeline_output": d.pipeline_output_name} if d.pipeline_output_name else {}),
                **({"registration": d.registration} if d.registration else {}),
            }
            for d in data_produced_by(step)
        ]
        for d in data_produced_by(step):
            if d.pipeline_output_name:
                pipeline_outputs.append(d.pipeline_output_name)
        own = {id(d) for d in data_produced_by(step)}
        arguments: list[dict[str, Any]] = []
        for arg in step.arguments:
            if isinstance(arg, PipelineParameter):
                _add_parameter(parameters, arg, errors)
                arguments.append({"param": arg.name})
            elif isinstance(arg, InputBinding):
                arguments.append({"input": arg.name})
            elif id(arg) in dataset_tokens:
                arguments.append({"input": dataset_tokens[id(arg)]})
            elif isinstance(arg, OutputTabularDatasetConfig):
                arguments.append({"output": arg.name} if id(arg.output) in own else {"input": arg.name})
            elif isinstance(arg, _OutputData):
                arguments.append({"output": arg.name} if id(arg) in own else {"input": arg.name})
            else:
                arguments.append({"literal": str(arg)})
        params = {}
        for key, value in step.params.items():
            if isinstance(value, PipelineParameter):
                _add_parameter(parameters, value, errors)
                params[key] = {"param": value.name}
            else:
                params[key] = {"literal": str(value)}

        parallel = _parallel_entry(step, dataset_tokens, parameters, parameter_values, errors, warnings)
        after = [s.name for s in step._run_after]
        missing_after = [n for n in after if n not in names]
        if missing_after:
            errors.append(f"Step {step.name!r} runs after {missing_after}, which are not in the pipeline.")
        graph_steps.append(
            {
                "name": step.name,
                "type": step.step_type,
                "script": step.script_name,
                "source": {"dir": str(source)},
                "arguments": arguments,
                "params": params,
                "inputs": inputs,
                "datasets": datasets,
                "outputs": outputs,
                "run_after": after,
                "compute_target": str(getattr(step.compute_target, "name", step.compute_target)),
                "environment": _env_spec(step, workspace, errors),
                "allow_reuse": step.allow_reuse,
                "version": step.version,
                **parallel,
            }
        )

    for name in sorted({n for n in pipeline_outputs if pipeline_outputs.count(n) > 1}):
        errors.append(
            f"Two outputs have pipeline_output_name {name!r}; pipeline output names must be unique."
        )

    for shared, users in sources.items():
        if len(users) > 1:
            warnings.append(
                f"Steps {', '.join(repr(u) for u in users)} share source_directory {shared}: a change to any file "
                "in it reruns all of them. Give each step its own folder to keep reuse precise."
            )

    values = dict(parameter_values or {})
    for name in values:
        if name not in parameters:
            errors.append(
                f"pipeline_parameters names {name!r}, but no step uses a PipelineParameter of that name "
                f"(known: {', '.join(sorted(parameters)) or 'none'})."
            )
    for name, default in parameters.items():
        if values.get(name, default) is None:
            errors.append(
                f"PipelineParameter {name!r} has no value: give it a default_value or pass "
                f"pipeline_parameters={{{name!r}: ...}} at submit."
            )

    graph = {
        "version": GRAPH_VERSION,
        "description": description,
        "parameters": {n: {"default": _parameter_default(n, d, errors)} for n, d in parameters.items()},
        "steps": graph_steps,
    }
    if not errors:
        errors.extend(_cycle_errors(graph))
    if not errors:  # the scheduler will parse it the same way (engine/graph_spec.py): refuse it now
        try:
            parse_graph(graph)
        except GraphError as exc:
            errors.append(f"The pipeline's graph is not valid: {exc}.")
    return graph, errors, warnings


def _dataset_inputs(
    step: PythonScriptStep, parameters: dict[str, Any], errors: list[str]
) -> tuple[list[dict[str, Any]], dict[int, str]]:
    """The step's dataset inputs as graph entries, and id(argument object) → input name for its tokens."""
    entries: list[dict[str, Any]] = []
    tokens: dict[int, str] = {}
    for item, spec in dataset_inputs_of(step):
        if spec.param is not None:
            _add_parameter(parameters, spec.param, errors)
        if any(e["name"] == spec.name for e in entries):
            errors.append(f"Step {step.name!r} has two dataset inputs named {spec.name!r}; name them apart.")
            continue
        entries.append({"name": spec.name, "mode": spec.mode, "source": source_json(spec)})
        tokens[id(item)] = spec.name
    return entries, tokens


def _parallel_entry(
    step: PythonScriptStep,
    dataset_names: dict[int, str],
    parameters: dict[str, Any],
    parameter_values: dict[str, Any] | None,
    errors: list[str],
    warnings: list[str],
) -> dict[str, Any]:
    """A ParallelRunStep's `parallel` entry (runyard/parallel/step.py makes it), else nothing."""
    compile_parallel = getattr(step, "compile_parallel", None)
    if compile_parallel is None:
        return {}
    compiled = compile_parallel(dataset_names, parameter_values)
    for param in compiled.parameters:
        _add_parameter(parameters, param, errors)
    errors.extend(compiled.errors)
    warnings.extend(getattr(compiled, "warnings", ()))
    return (
        {}
        if compiled.spec is None
        else {"parallel": compiled.spec.model_dump(mode="json", exclude_none=True)}
    )


def _parameter_default(name: str, default: Any, errors: list[str]) -> Any:
    try:
        return parameter_json(default)
    except Exception as exc:  # a dataset whose payload cannot be made (e.g. a datastore that is gone)
        errors.append(f"PipelineParameter {name!r}: its dataset default cannot be used: {exc}")
        return None


def _add_parameter(parameters: dict[str, Any], param: PipelineParameter, errors: list[str]) -> None:
    if param.name in parameters and parameters[param.name] != param.default_value:
        errors.append(
            f"Two PipelineParameters are named {param.name!r} with different defaults "
            f"({parameters[param.name]!r} and {param.default_value!r}); use one object or two names."
        )
    parameters.setdefault(param.name, param.default_value)


def _cycle_errors(graph: dict[str, Any]) -> list[str]:
    try:
        topological_order(graph)
    except graphlib.CycleError as exc:
        cycle = " → ".join(exc.args[1])
        return [f"The steps form a cycle ({cycle}); a step cannot depend on its own output, directly or not."]
    return []
