"""MLflow 3's logged-models routes: what `mlflow.<flavor>.log_model`, autolog and
`mlflow.search_logged_models` call.

    POST   logged-models                     create (PENDING) -> the model's artifact_uri to upload into
    GET    logged-models/{model_id}          get
    PATCH  logged-models/{model_id}          finalize (READY / FAILED)
    DELETE logged-models/{model_id}          soft delete
    POST   logged-models/search              filter, order, page
    PATCH  logged-models/{model_id}/tags     set tags
    DELETE logged-models/{model_id}/tags/{tag_key}
    POST   logged-models/{model_id}/params   log params

A model's files live in the artifact store at `logged_models/<model_id>/` (contract §1), next to the
runs' folders; the artifact proxy checks a caller against the model's source run. A model belongs to
its source run's family: a job's run token may create and change the models its own run produces.

Metrics logged with a `model_id` (log-batch does that for autolog's training metrics) are recorded on
the model too, through `record_model_metrics`, which the metric handlers call.
"""

from __future__ import annotations

import functools
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from runyard.mlflow_api.convert import api_experiment_id, ms, resolve_experiment, run_for_write
from runyard.mlflow_api.dispatch import Body, MlflowContext, route
from runyard.mlflow_api.errors import invalid, missing
from runyard.mlflow_api.logged_model_search import matches, order_value, page_offset, page_token, parse_filter
from runyard.store.sql_mlflow_models import LoggedModelNotFound, LoggedModelRecord

#: MLflow's LoggedModelStatus names on the wire -> what the store keeps.
STATUSES = {
    "LOGGED_MODEL_PENDING": "PENDING",
    "LOGGED_MODEL_READY": "READY",
    "LOGGED_MODEL_UPLOAD_FAILED": "FAILED",
}
WIRE_STATUS = {v: k for k, v in STATUSES.items()}
DEFAULT_MAX_RESULTS = 100
_WORDS = ("bright", "calm", "clever", "gentle", "quick", "silent", "bold", "brave")
_ANIMALS = ("otter", "heron", "lynx", "finch", "badger", "marten", "stoat", "wren")


class KeyValue(Body):
    key: str = Field(min_length=1, max_length=250)
    value: str = Field(default="", max_length=8000)


class CreateLoggedModel(Body):
    experiment_id: str = Field(min_length=1)
    name: str | None = Field(default=None, max_length=255)
    model_type: str | None = Field(default=None, max_length=255)
    source_run_id: str | None = None
    params: list[KeyValue] = []
    tags: list[KeyValue] = []


class GetLoggedModel(Body):
    allow_deleted: bool = False


class Empty(Body):
    pass


class FinalizeLoggedModel(Body):
    status: str


class Tags(Body):
    tags: list[KeyValue] = []


class Params(Body):
    params: list[KeyValue] = []


class OrderBy(Body):
    field_name: str = Field(min_length=1)
    ascending: bool = True
    dataset_name: str | None = None
    dataset_digest: str | None = None


class DatasetFilter(Body):
    dataset_name: str = Field(min_length=1)
    dataset_digest: str | None = None


class SearchLoggedModels(Body):
    experiment_ids: list[str] = []  # none: an empty answer, as on MLflow's server
    filter: str | None = None
    datasets: list[DatasetFilter] = []
    max_results: int = Field(default=DEFAULT_MAX_RESULTS, ge=1, le=50_000)
    order_by: list[OrderBy] = []
    page_token: str | None = None


# -- JSON ----------------------------------------------------------------------------------------------
def model_json(
    ctx: MlflowContext, model: LoggedModelRecord, experiment_ids: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """MLflow's LoggedModel JSON: `info` (identity, status, tags) and `data` (params, metrics).
    `experiment_ids` (runyard id -> MLflow's id) saves a lookup per model when rendering many."""
    if experiment_ids is None or model.experiment_id not in experiment_ids:
        experiment_ids = {
            model.experiment_id: api_experiment_id(ctx.store.get_experiment_by_id(model.experiment_id))
        }
    info: dict[str, Any] = {
        "model_id": model.model_id,
        "experiment_id": experiment_ids[model.experiment_id],
        "name": model.name,
        "creation_timestamp_ms": ms(model.created_time),
        "last_updated_timestamp_ms": ms(model.last_updated_time),
        "artifact_uri": model.artifact_location,
        "status": WIRE_STATUS.get(model.status, "LOGGED_MODEL_STATUS_UNSPECIFIED"),
        "model_type": model.model_type or "",
        "source_run_id": model.source_run_id or "",
        "tags": [{"key": k, "value": v} for k, v in sorted(model.tags.items())],
    }
    if model.data.get("status_message"):
        info["status_message"] = model.data["status_message"]
    data: dict[str, Any] = {"params": [{"key": k, "value": v} for k, v in sorted(model.params.items())]}
    if model.metrics:
        data["metrics"] = model.metrics
    return {"info": info, "data": data}


# -- access ----------------------------------------------------------------------------------------------
def _check(ctx: MlflowContext, model: LoggedModelRecord, *, write: bool) -> None:
    """A model is read and written as part of its source run's family; one without a source run is a
    workspace object (a run token may only read it)."""
    if model.source_run_id:
        ctx.caller.family_check(ctx.store, model.source_run_id, write=write)
    else:
        ctx.caller.require("write" if write else "read")
        if write:
            ctx.caller.require_not_run_token("Changing a logged model that no run produced")


def _model(
    ctx: MlflowContext, model_id: str, *, write: bool, allow_deleted: bool = False
) -> LoggedModelRecord:
    model = ctx.store.get_logged_model(model_id, allow_deleted=allow_deleted)
    _check(ctx, model, write=write)
    return model


def model_artifact_location(ctx: MlflowContext, experiment: Any, model_id: str) -> str:
    """MLflow's `<artifact_location>/models/<id>/artifacts` under an experiment's own location, else the
    model's folder in the workspace's artifact store."""
    if getattr(experiment, "artifact_location", None):
        return f"{experiment.artifact_location.rstrip('/')}/models/{model_id}/artifacts"
    return ctx.artifact_uri(f"logged_models/{model_id}")


# -- routes ----------------------------------------------------------------------------------------------
@route("POST", "logged-models")
def create_logged_model(ctx: MlflowContext, body: CreateLoggedModel) -> dict[str, Any]:
    exp = resolve_experiment(ctx, body.experiment_id)
    if body.source_run_id:
        run_for_write(ctx, body.source_run_id)  # the model joins the run's family
    else:
        ctx.caller.require("write")
        ctx.caller.require_not_run_token("Creating a logged model without a source run")
    model_id = f"m-{uuid.uuid4().hex}"
    now = time.time()
    record = LoggedModelRecord(
        model_id=model_id,
        experiment_id=exp.id,
        name=body.name or _random_name(),
        status="PENDING",
        artifact_location=model_artifact_location(ctx, exp, model_id),
        created_time=now,
        last_updated_time=now,
        source_run_id=body.source_run_id or None,
        model_type=body.model_type or None,
        data={"tags": {t.key: t.value for t in body.tags}, "params": {p.key: p.value for p in body.params}},
    )
    ctx.store.create_logged_model(record)
    return {"model": model_json(ctx, record, {exp.id: api_experiment_id(exp)})}


@route("GET", "logged-models/{model_id}")
def get_logged_model(ctx: MlflowContext, body: GetLoggedModel, model_id: str) -> dict[str, Any]:
    return {"model": model_json(ctx, _model(ctx, model_id, write=False, allow_deleted=body.allow_deleted))}


@route("PATCH", "logged-models/{model_id}")
def finalize_logged_model(ctx: MlflowContext, body: FinalizeLoggedModel, model_id: str) -> dict[str, Any]:
    status = STATUSES.get(body.status) or (body.status if body.status in WIRE_STATUS else None)
    if status is None:
        raise invalid(
            f"Invalid logged model status {body.status!r}; use one of {', '.join(sorted(STATUSES))}."
        )
    _model(ctx, model_id, write=True)
    return {"model": model_json(ctx, ctx.store.update_logged_model(model_id, status=status))}


@route("DELETE", "logged-models/{model_id}")
def delete_logged_model(ctx: MlflowContext, body: Empty, model_id: str) -> dict[str, Any]:
    _model(ctx, model_id, write=True)
    ctx.store.update_logged_model(model_id, lifecycle_stage="deleted")
    return {}


@route("PATCH", "logged-models/{model_id}/tags")
def set_logged_model_tags(ctx: MlflowContext, body: Tags, model_id: str) -> dict[str, Any]:
    _model(ctx, model_id, write=True)
    ctx.store.update_logged_model(model_id, tags={t.key: t.value for t in body.tags})
    return {}


@route("DELETE", "logged-models/{model_id}/tags/{tag_key}")
def delete_logged_model_tag(ctx: MlflowContext, body: Empty, model_id: str, tag_key: str) -> dict[str, Any]:
    model = _model(ctx, model_id, write=True)
    if tag_key not in model.tags:
        raise missing(f"No tag with key '{tag_key}' found for model with ID '{model_id}'.")
    ctx.store.update_logged_model(model_id, remove_tags=[tag_key])
    return {}


@route("POST", "logged-models/{model_id}/params")
def log_logged_model_params(ctx: MlflowContext, body: Params, model_id: str) -> dict[str, Any]:
    _model(ctx, model_id, write=True)
    ctx.store.update_logged_model(model_id, params={p.key: p.value for p in body.params})
    return {}


@route("POST", "logged-models/search")
def search_logged_models(ctx: MlflowContext, body: SearchLoggedModels) -> dict[str, Any]:
    ctx.caller.require("read")
    experiments = [resolve_experiment(ctx, eid) for eid in body.experiment_ids]
    clauses = parse_filter(body.filter)
    datasets = [d.model_dump() for d in body.datasets]
    models = [
        m
        for m in ctx.store.list_logged_models([e.id for e in experiments])
        if _visible(ctx, m) and all(matches(m, c, datasets) for c in clauses)
    ]
    for order in reversed(body.order_by):  # stable sorts, last key first
        models.sort(key=functools.partial(order_value, order=order), reverse=not order.ascending)
    offset = page_offset(body.page_token)
    page = models[offset : offset + body.max_results]
    ids = {e.id: api_experiment_id(e) for e in experiments}
    out: dict[str, Any] = {"models": [model_json(ctx, m, ids) for m in page]}
    if offset + body.max_results < len(models):
        out["next_page_token"] = page_token(offset + body.max_results)
    return out


def check_model_metrics(ctx: MlflowContext, metrics: Sequence[Mapping[str, Any]]) -> list[str]:
    """The ids of the existing models that metrics carrying a `model_id` land on, after checking the
    caller may write each (its source run's family, as for every change to a model): a job's run token
    cannot plant metrics on another run's model. A model that does not exist is skipped, as MLflow's
    server accepts such metrics on the run and does not fail the batch. Call before writing anything."""
    found: list[str] = []
    for model_id in dict.fromkeys(str(m["model_id"]) for m in metrics if m.get("model_id")):
        try:
            model = ctx.store.get_logged_model(model_id)
        except LoggedModelNotFound:
            continue
        _check(ctx, model, write=True)
        found.append(model_id)
    return found


def record_model_metrics(ctx: MlflowContext, run_id: str, metrics: Sequence[Mapping[str, Any]]) -> None:
    """Put the metrics of a log-batch / log-metric that carry a `model_id` on those models as well
    (MLflow Metric JSON; `timestamp` in ms), checked by `check_model_metrics` again. The caller has
    already checked its write to `run_id`."""
    allowed = set(check_model_metrics(ctx, metrics))
    by_model: dict[str, list[dict[str, Any]]] = {}
    for metric in metrics:
        model_id = metric.get("model_id")
        if model_id and str(model_id) in allowed:
            entry = {
                "key": metric.get("key"),
                "value": _json_number(metric.get("value")),
                "timestamp": metric.get("timestamp"),
                "step": metric.get("step") or 0,
                "dataset_name": metric.get("dataset_name"),
                "dataset_digest": metric.get("dataset_digest"),
                "run_id": run_id,
            }
            by_model.setdefault(str(model_id), []).append(entry)
    for model_id, entries in by_model.items():
        ctx.store.add_logged_model_metrics(model_id, entries)


def _json_number(value: Any) -> Any:
    """NaN and infinities as protobuf's JSON strings: PostgreSQL's JSON refuses bare NaN, and both doors
    pass these strings through to MLflow's client, which reads them as floats."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def _visible(ctx: MlflowContext, model: LoggedModelRecord) -> bool:
    """A run token sees the models of its own run family (and those no run produced)."""
    if ctx.caller.scope != "run" or not model.source_run_id:
        return True
    try:
        ctx.caller.family_check(ctx.store, model.source_run_id, write=False)
    except Exception:  # the server's refusal type lives in the server package
        return False
    return True


def _random_name() -> str:
    seed = uuid.uuid4().int
    return f"{_WORDS[seed % len(_WORDS)]}-{_ANIMALS[(seed >> 8) % len(_ANIMALS)]}-{seed % 1000}"
