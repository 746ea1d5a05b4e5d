"""MLflow's runs/* routes (search is search.py's, inputs/outputs run_io.py's): create, get, update,
delete, restore, log-metric, log-parameter, set-tag, delete-tag, log-batch.

A run MLflow creates is a runyard run of type "mlflow.run". A runyard job's run (any other type) keeps
its status from its own process: an MLflow status or end-time update on it is answered with the run as
it is and changes nothing, so `mlflow.end_run()` inside a job does not end the job early.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pydantic import Field

from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.errors import NotFoundError
from runyard.mlflow_api import limits
from runyard.mlflow_api.convert import (
    ACTIVE,
    DELETED,
    MLFLOW_RUN_TYPE,
    TO_RUNYARD,
    Required,
    is_mlflow_run,
    resolve_active_experiment,
    run_for_read,
    run_for_write,
    run_info_json,
    run_json,
)
from runyard.mlflow_api.dispatch import Body, MlflowContext, route
from runyard.mlflow_api.errors import MlflowError, invalid, missing
from runyard.mlflow_api.logged_models import check_model_metrics, record_model_metrics
from runyard.mlflow_api.names import random_run_name
from runyard.store import MetricRow, RunRecord

RUN_NAME_TAG = "mlflow.runName"
PARENT_TAG = "mlflow.parentRunId"
INT64 = 2**63


class Tag(Body):
    key: str
    value: str = ""


class Param(Body):
    key: str
    value: str = ""


class Metric(Body):
    key: str
    value: float
    timestamp: int = Field(ge=0, lt=INT64)
    step: int = Field(default=0, ge=-INT64, lt=INT64)
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None


class RunRef(Body):
    run_id: str | None = None
    run_uuid: str | None = None

    @property
    def id(self) -> str | None:
        return self.run_id or self.run_uuid


class CreateRun(Body):
    experiment_id: str = "0"
    user_id: str | None = None
    start_time: int | None = None
    run_name: str | None = None
    tags: list[Tag] = []


class UpdateRun(RunRef):
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class RunId(Body):
    run_id: Required


class LogMetric(RunRef, Metric):
    pass


class LogParam(RunRef, Param):
    pass


class SetTag(RunRef, Tag):
    pass


class DeleteTag(Body):
    run_id: Required
    key: str


class LogBatch(Body):
    run_id: Required
    metrics: list[Metric] = []
    params: list[Param] = []
    tags: list[Tag] = []


# -- create / get / update ----------------------------------------------------------------------------
def _parent(ctx: MlflowContext, tags: dict[str, str]) -> str | None:
    """The runyard parent of a nested MLflow run: the run its mlflow.parentRunId tag names, once the
    caller may write to it. A run token never creates a run outside its own family: its nested runs
    become children of the parent it names (its own run, a step included, or a descendant), and a
    top-level run or one under a pipeline run (whose children are its steps) is refused. A workspace
    token nests under a step only as that pipeline's submitter (server/run_guard.py); others get a
    top-level run carrying the tag, as before."""
    parent_id = tags.get(PARENT_TAG)
    if not parent_id:
        if ctx.caller.scope == "run":
            ctx.caller.require_not_run_token("Creating top-level runs")
        return None
    try:
        parent = ctx.store.get_run(parent_id)
    except NotFoundError:
        raise missing(f"Run with id={parent_id} not found") from None
    ctx.caller.family_check(ctx.store, parent.run_id, write=True)
    if parent.run_type == PIPELINE_RUN_TYPE:
        if ctx.caller.scope == "run":
            ctx.caller.require_not_run_token(
                f"Creating a run under pipeline run {parent.run_id} (its children are its steps; "
                "nest under your step's run instead)"
            )
        return None
    if parent.run_type == STEP_RUN_TYPE and ctx.caller.scope != "run":
        try:
            ctx.caller.check_run_write(ctx.store, parent.run_id, data={"nestRun": True})
        except MlflowError:
            return None  # someone else's pipeline: a top-level run, not one under their step
    return parent.run_id


@route("POST", "runs/create")
def create_run(ctx: MlflowContext, body: CreateRun) -> dict[str, Any]:
    ctx.caller.require("write")
    exp = resolve_active_experiment(ctx, body.experiment_id)
    tags: dict[str, str] = {}
    for i, tag in enumerate(body.tags):
        tags[tag.key] = limits.check_tag(tag.key, tag.value, f"tags[{i}]")
    tagged = tags.get(RUN_NAME_TAG)
    if body.run_name and tagged and body.run_name != tagged:
        raise invalid(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with different values "
            f"(run_name='{body.run_name}', mlflow.runName='{tagged}')."
        )
    name = body.run_name or tagged or random_run_name()
    tags.setdefault(RUN_NAME_TAG, name)
    parent_id = _parent(ctx, tags)
    start = body.start_time / 1000 if body.start_time is not None else time.time()
    record = ctx.store.create_run(
        RunRecord(
            run_id=uuid.uuid4().hex,
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Running",
            run_type=MLFLOW_RUN_TYPE,
            created_time=start,
            start_time=start,
            parent_id=parent_id,
            display_name=name[:256],
            # who submitted is the server's stamp; the user name MLflow sends is what MLflow shows
            data={"submittedBy": ctx.caller.stamp(), "mlflowUser": body.user_id or ""},
        )
    )
    ctx.store.set_tags(record.run_id, tags)
    return {"run": run_json(ctx, record)}


@route("GET", "runs/get")
def get_run(ctx: MlflowContext, body: RunRef) -> dict[str, Any]:
    return {"run": run_json(ctx, run_for_read(ctx, body.id))}


@route("POST", "runs/update")
def update_run(ctx: MlflowContext, body: UpdateRun) -> dict[str, Any]:
    record = run_for_write(ctx, body.id)
    name = body.run_name or None
    if is_mlflow_run(record):
        status = TO_RUNYARD.get(body.status or "")  # an unknown status changes nothing, as on MLflow's server
        ctx.caller.check_run_write(
            ctx.store, record.run_id, status=status, data={"display_name": name} if name else None
        )
        ctx.store.update_mlflow_run(
            record.run_id,
            status=status,
            end_time=body.end_time / 1000 if body.end_time is not None else None,
            display_name=name[:256] if name else None,
        )
    else:  # a job's run: its name may change, its status is its own process's (contract §7)
        status = TO_RUNYARD.get(body.status or "")
        data = {"display_name": name[:256]} if name else None
        # refused where runyard's own routes refuse it (someone else's pipeline step), else a no-op
        ctx.caller.check_run_write(ctx.store, record.run_id, status=status, data=data)
        if data:
            ctx.store.update_run_data(record.run_id, data)
    if name:
        ctx.store.set_tags(record.run_id, {RUN_NAME_TAG: name})
    return {"run_info": run_info_json(ctx, ctx.store.get_run(record.run_id))}


# -- delete / restore ---------------------------------------------------------------------------------
def _lifecycle(ctx: MlflowContext, run_id: str, stage: str) -> dict[str, Any]:
    """Hide or restore a run. A pipeline's or step's run belongs to its submitter (server/run_guard.py's
    owner rule, asked with the action key "lifecycle_stage"), so nobody else hides a pipeline's steps."""
    try:
        record = ctx.store.get_run(run_id)
    except NotFoundError:
        raise missing(f"Run with id={run_id} not found") from None
    ctx.caller.family_check(ctx.store, record.run_id, write=True)
    ctx.caller.check_run_write(ctx.store, record.run_id, data={"lifecycle_stage": stage})
    ctx.store.set_run_lifecycle(record.run_id, stage)
    return {}


@route("POST", "runs/delete")
def delete_run(ctx: MlflowContext, body: RunId) -> dict[str, Any]:
    return _lifecycle(ctx, body.run_id, DELETED)


@route("POST", "runs/restore")
def restore_run(ctx: MlflowContext, body: RunId) -> dict[str, Any]:
    return _lifecycle(ctx, body.run_id, ACTIVE)


# -- metrics, params, tags ----------------------------------------------------------------------------
def _metric_rows(run_id: str, metrics: list[Metric]) -> list[MetricRow]:
    return [
        MetricRow(
            run_id=run_id,
            name=m.key,
            kind="scalar",
            value=m.value,
            timestamp=m.timestamp / 1000,
            step=m.step,
        )
        for m in metrics
    ]


def _log_params(ctx: MlflowContext, run_id: str, params: dict[str, str], *, single: bool) -> None:
    existing = ctx.store.get_properties(run_id)
    changed = [
        {"key": k, "old_value": existing[k], "new_value": v}
        for k, v in params.items()
        if k in existing and existing[k] != v
    ]
    if changed and single:
        c = changed[0]
        raise invalid(
            f"Changing param values is not allowed. Param with key='{c['key']}' was already logged with "
            f"value='{c['old_value']}' for run ID='{run_id}'. Attempted logging new value '{c['new_value']}'."
        )
    if changed:
        raise invalid(
            f"Changing param values is not allowed. Params were already logged='{changed}' for run ID='{run_id}'."
        )
    ctx.store.add_properties(run_id, {k: v for k, v in params.items() if k not in existing})


def _set_tags(ctx: MlflowContext, record: RunRecord, tags: dict[str, str]) -> None:
    name = tags.get(RUN_NAME_TAG)
    if name:
        ctx.caller.check_run_write(ctx.store, record.run_id, data={"display_name": name[:256]})
    ctx.store.set_tags(record.run_id, tags)
    if name:
        ctx.store.update_run_data(record.run_id, {"display_name": name[:256]})


@route("POST", "runs/log-metric")
def log_metric(ctx: MlflowContext, body: LogMetric) -> dict[str, Any]:
    record = run_for_write(ctx, body.id)
    limits.check_metric_name(body.key)
    check_model_metrics(ctx, [body.model_dump()])  # before anything is written
    ctx.store.append_mlflow_metrics(_metric_rows(record.run_id, [body]))
    record_model_metrics(ctx, record.run_id, [body.model_dump()])
    return {}


@route("POST", "runs/log-parameter")
def log_param(ctx: MlflowContext, body: LogParam) -> dict[str, Any]:
    record = run_for_write(ctx, body.id)
    value = limits.check_param(body.key, body.value)
    _log_params(ctx, record.run_id, {body.key: value}, single=True)
    return {}


@route("POST", "runs/set-tag")
def set_tag(ctx: MlflowContext, body: SetTag) -> dict[str, Any]:
    record = run_for_write(ctx, body.id)
    _set_tags(ctx, record, {body.key: limits.check_tag(body.key, body.value)})
    return {}


@route("POST", "runs/delete-tag")
def delete_tag(ctx: MlflowContext, body: DeleteTag) -> dict[str, Any]:
    record = run_for_write(ctx, body.run_id)
    if body.key not in ctx.store.get_tags(record.run_id):
        raise missing(f"No tag with name: {body.key} in run with id {record.run_id}")
    ctx.store.remove_tags(record.run_id, [body.key])
    return {}


@route("POST", "runs/log-batch")
def log_batch(ctx: MlflowContext, body: LogBatch) -> dict[str, Any]:
    limits.check_batch(len(body.metrics), len(body.params), len(body.tags))
    for i, m in enumerate(body.metrics):
        limits.check_metric_name(m.key, f"metrics[{i}]")
    params = [(p.key, limits.check_param(p.key, p.value, f"params[{i}]")) for i, p in enumerate(body.params)]
    tags = {t.key: limits.check_tag(t.key, t.value, f"tags[{i}]") for i, t in enumerate(body.tags)}
    limits.check_params_unique([k for k, _ in params])
    record = run_for_write(ctx, body.run_id)
    metrics = [m.model_dump() for m in body.metrics]
    check_model_metrics(ctx, metrics)  # before anything of the batch is written
    if params:
        _log_params(ctx, record.run_id, dict(params), single=False)
    if body.metrics:
        ctx.store.append_mlflow_metrics(_metric_rows(record.run_id, body.metrics))
        record_model_metrics(ctx, record.run_id, metrics)
    if tags:
        _set_tags(ctx, record, tags)  # a key sent twice keeps its last value, as in MLflow
    return {}
