"""Creating pipeline runs from a compiled graph: one place for every way a pipeline is started.

`Pipeline.submit` (authoring), `PublishedPipeline.submit` / `PipelineEndpoint.submit` (Python API), the
REST doors of a server (`/pipelines/v1.0/PipelineRuns/...`) and the schedule ticker all end here, so a
pipeline run looks the same whoever started it: the same records in one transaction, the same parameter
checks, the same properties to find it by later. None of these functions prints or starts the scheduler;
the caller decides that (a server or the scheduler itself must not start a second one).
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runyard.core.experiment import check_experiment_name
from runyard.core.run_values import (
    MAX_KEY_LENGTH,
    PIPELINE_ID_PROPERTY,
    PIPELINE_RUN_TYPE,
    STEP_RUN_TYPE,
    check_key,
    check_run_id,
    check_text,
)
from runyard.engine.graph_spec import GraphError, parse_graph
from runyard.engine.placement import placement_for
from runyard.errors import InvalidInputError, PipelineDisabled
from runyard.status import RunStatus
from runyard.store import RunRecord
from runyard.store.records import ACTIVE, PipelineEndpointRecord, PublishedPipelineRecord

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.store import Store

#: Run properties that say where a pipeline run came from (v1's names), so runs can be found by them.
ENDPOINT_ID_PROPERTY = "azureml.pipelineEndpointId"
SCHEDULE_ID_PROPERTY = "azureml.scheduleId"
RUN_SOURCE_PROPERTY = "azureml.runsource"
PIPELINE_RUN_SOURCE = "azureml.PipelineRun"
#: Run property listing the parameter names a published submission ignored (JSON list; v1 drops them silently).
IGNORED_PARAMETERS_PROPERTY = "ignoredParameters"

KINDS = {"dataset": "a dataset (FileDataset or TabularDataset)", "datapath": "a DataPath"}


def parameter_name_errors(graph: dict[str, Any], values: Mapping[str, Any]) -> list[str]:
    """Each value naming a parameter the graph does not declare, as a sentence that lists the known ones."""
    params = graph.get("parameters") or {}
    return [
        f"pipeline_parameters names {n!r}, but this pipeline has no such parameter "
        f"(known: {', '.join(sorted(params)) or 'none'})."
        for n in values
        if n not in params
    ]


def unknown_parameters(graph: dict[str, Any], values: Mapping[str, Any]) -> list[str]:
    """The names in `values` that the graph does not declare, sorted."""
    params = graph.get("parameters") or {}
    return sorted((n for n in values if n not in params), key=str)


def ignored_parameters_warning(graph: dict[str, Any], names: list[str]) -> str:
    """The sentence a published submission gives for names it ignored (Python warns it, REST returns it)."""
    known = ", ".join(sorted(graph.get("parameters") or {})) or "none"
    return (
        f"pipeline_parameters names {', '.join(repr(n) for n in names)}, which this pipeline does not have "
        f"(known: {known}); ignored, as Azure ML v1 ignores unknown names for published pipelines and "
        "endpoints. Check the spelling if you meant to set one."
    )


def parameter_kind_errors(graph: dict[str, Any], values: Mapping[str, Any]) -> list[str]:
    """A dataset parameter takes a dataset at submit, a DataPath one a DataPath, any other a plain value."""
    errors = []
    for name, value in values.items():
        default = (graph.get("parameters") or {}).get(name, {}).get("default")
        wants = next((k for k in KINDS if isinstance(default, dict) and k in default), None)
        given = next((k for k in KINDS if isinstance(value, dict) and k in value), None)
        if wants != given:
            errors.append(
                f"pipeline_parameters[{name!r}] must be {KINDS[wants] if wants else 'a plain value'}, as its default "
                f"is; got {KINDS[given] if given else type(value).__name__}."
            )
    return errors


def check_graph(graph: Any) -> None:
    """A stored graph is input (docs/security.md): refuse one the scheduler would refuse, now, in words.

    Every submit checks it here, and the REST route that publishes a graph sent by a client calls it
    too (`Pipeline.publish` compiles its graph here). The store's publish_rules cannot: the graph's
    shape is the engine's, and store does not import engine."""
    try:
        parse_graph(graph)
    except GraphError as exc:
        raise InvalidInputError(f"The pipeline cannot be submitted: its graph is not valid: {exc}.") from exc
    for step in graph["steps"]:
        if "snapshot" not in step.get("source", {}):
            raise InvalidInputError(
                f"The pipeline cannot be submitted: step {step.get('name')!r} has no source snapshot; "
                "snapshot the sources before creating the run (pipeline._snapshot_sources)."
            )


def _parent(ws: Workspace, experiment_name: str, parent_id: str | None) -> str | None:
    """v1's parent_run_id: the pipeline run becomes a child of that run, which must be in the same experiment."""
    if parent_id is None:
        return None
    parent = ws.store.get_run(parent_id)
    if parent.experiment_name != experiment_name:
        raise InvalidInputError(
            f"parent_run_id {parent_id!r} is a run of experiment {parent.experiment_name!r}; a pipeline "
            f"submitted to {experiment_name!r} can only be the child of a run of that experiment."
        )
    return parent.run_id


def _checked_labels(what: str, values: Mapping[str, Any] | None) -> dict[str, Any]:
    """Tag or property names and values checked as Run.set_tags / add_properties check them."""
    if values is not None and not isinstance(values, Mapping):
        raise InvalidInputError(
            f"{what}s: pass a dict of {what.lower()} name → value, not {type(values).__name__}."
        )
    for key, value in (values or {}).items():
        check_key(what, key)
        check_text(f"{what} name", key, MAX_KEY_LENGTH)
        if value is not None:
            check_text(f"{what} {key!r} value", value)
    return dict(values or {})


def create_pipeline_run(
    ws: Workspace,
    experiment_name: str,
    graph: dict[str, Any],
    *,
    parameter_values: Mapping[str, Any] | None = None,
    continue_on_step_failure: bool = False,
    regenerate_outputs: bool = False,
    parent_id: str | None = None,
    submitter: dict[str, Any] | None = None,
    run_id: str | None = None,
    properties: Mapping[str, str] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Record a NotStarted PipelineRun and its NotStarted StepRuns (one transaction) for `graph`.

    `graph` is compiled, with every step's source snapshot pinned; `parameter_values` are in JSON form
    (datasets as {"dataset": …}, DataPaths as {"datapath": …}). A caller that chose `run_id` beforehand
    (the schedule ticker claims a firing with it) gets exactly that id. Prints nothing and starts no
    scheduler: the caller does (`ensure_running`)."""
    check_experiment_name(experiment_name)
    if run_id is not None:
        check_run_id(run_id)
    props = {k: str(v) for k, v in _checked_labels("Property", properties).items()}
    labels = _checked_labels("Tag", tags)
    graph = copy.deepcopy(graph)
    check_graph(graph)
    values = dict(parameter_values or {})
    errors = parameter_name_errors(graph, values) or parameter_kind_errors(graph, values)
    if errors:
        raise InvalidInputError("The pipeline cannot be submitted:\n- " + "\n- ".join(errors))
    parent = _parent(ws, experiment_name, parent_id)
    experiment = ws.store.get_or_create_experiment(experiment_name)
    params = {n: values.get(n, p["default"]) for n, p in graph["parameters"].items()}
    run_id = run_id or str(uuid.uuid4())
    now = time.time()
    step_ids = {step["name"]: str(uuid.uuid4()) for step in graph["steps"]}
    pipeline_record = RunRecord(
        run_id=run_id,
        experiment_id=experiment.id,
        experiment_name=experiment.name,
        status=RunStatus.NOT_STARTED,
        run_type=PIPELINE_RUN_TYPE,
        created_time=now,
        display_name=graph.get("description") or None,
        target="local",
        parent_id=parent,
        data={
            "graph": graph,
            "parameters": params,
            "continueOnStepFailure": continue_on_step_failure,
            "regenerateOutputs": regenerate_outputs,
            # which scheduler may run it: this folder's, on the local target (docs/security.md)
            "placement": placement_for(ws, "local"),
            # the step runs the scheduler executes: a child added later is not one of them (issue 10)
            "stepRuns": step_ids,
            **({"submittedBy": dict(submitter)} if submitter else {}),
        },
    )
    step_records = [
        RunRecord(
            run_id=step_ids[step["name"]],
            experiment_id=experiment.id,
            experiment_name=experiment.name,
            status=RunStatus.NOT_STARTED,
            run_type=STEP_RUN_TYPE,
            created_time=now,
            parent_id=run_id,
            display_name=step["name"],
            target=step["compute_target"],
            data={"step": step["name"]},
        )
        for step in graph["steps"]
    ]
    created = ws.store.create_runs([pipeline_record, *step_records])[0]
    ws.store.add_properties(run_id, {RUN_SOURCE_PROPERTY: PIPELINE_RUN_SOURCE, **props})
    if labels:
        ws.store.set_tags(run_id, labels)
    return created


def published_for_endpoint(
    store: Store, endpoint: PipelineEndpointRecord, version: str | None = None
) -> PublishedPipelineRecord:
    """The published pipeline an endpoint runs for `version` (None: its default version)."""
    wanted = endpoint.default_version if version is None else str(version)
    if wanted not in endpoint.versions:
        known = ", ".join(sorted(endpoint.versions, key=lambda v: (len(v), v))) or "none"
        raise InvalidInputError(
            f"Pipeline endpoint {endpoint.name!r} has no version {wanted!r} (its versions: {known}); "
            "pass one of those as pipeline_version, or leave it out to run the default version "
            f"({endpoint.default_version!r})."
        )
    return store.get_published_pipeline(endpoint.versions[wanted])


def submit_published(
    ws: Workspace,
    record: PublishedPipelineRecord,
    experiment_name: str,
    parameter_values: Mapping[str, Any] | None = None,
    *,
    submitter: dict[str, Any] | None = None,
    continue_on_step_failure: bool | None = None,
    parent_id: str | None = None,
    run_id: str | None = None,
    properties: Mapping[str, str] | None = None,
) -> RunRecord:
    """A new PipelineRun of the graph frozen in `record` (never the files on disk now).

    Refused with PipelineDisabled unless the published pipeline is Active. The run carries property
    `azureml.pipelineid` (plus any given: `azureml.scheduleId`, `azureml.pipelineEndpointId`) so
    `PipelineRun.get_pipeline_runs` and the studio find it. Starts no scheduler.

    Names the graph does not declare are dropped, not refused (v1's published pipelines, endpoints and
    their REST door do not check names; only `Pipeline.submit` does): the run lists them in property
    `ignoredParameters`, and the caller tells its user (`unknown_parameters` /
    `ignored_parameters_warning`)."""
    if record.status != ACTIVE:
        raise PipelineDisabled(
            f"Published pipeline {record.name!r} ({record.id}) is {record.status}, so it cannot be submitted; "
            "enable it first: PublishedPipeline.get(ws, id).enable()."
        )
    values = dict(parameter_values or {})
    ignored = unknown_parameters(record.graph, values)
    extra = {IGNORED_PARAMETERS_PROPERTY: json.dumps(ignored)} if ignored else {}
    return create_pipeline_run(
        ws,
        experiment_name,
        record.graph,
        parameter_values={n: v for n, v in values.items() if n not in ignored},
        continue_on_step_failure=(
            record.continue_on_step_failure if continue_on_step_failure is None else continue_on_step_failure
        ),
        parent_id=parent_id,
        submitter=submitter,
        run_id=run_id,
        properties={**(properties or {}), **extra, PIPELINE_ID_PROPERTY: record.id},
    )
