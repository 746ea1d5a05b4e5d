"""MLflow's experiments/* routes (search is search.py's): create, get, get-by-name, update (rename),
delete, restore, set-experiment-tag, delete-experiment-tag.

Creating, renaming, tagging, deleting and restoring experiments are workspace writes: a job's run token
may not do them (it writes to its own run only), a read token may not either.
"""

from __future__ import annotations

from typing import Any

from runyard.errors import ConflictError, NotFoundError
from runyard.mlflow_api.convert import (
    ACTIVE,
    DELETED,
    Required,
    api_experiment_id,
    experiment_json,
    resolve_experiment,
)
from runyard.mlflow_api.dispatch import Body, MlflowContext, route
from runyard.mlflow_api.errors import MlflowError, invalid, missing
from runyard.mlflow_api.limits import check_experiment_name, check_experiment_tag

PROXY_SCHEME = "mlflow-artifacts:"


class Tag(Body):
    key: str
    value: str = ""


class CreateExperiment(Body):
    name: Required
    artifact_location: str | None = None
    tags: list[Tag] = []


class ExperimentId(Body):
    experiment_id: Required


class GetByName(Body):
    experiment_name: Required


class UpdateExperiment(ExperimentId):
    new_name: Required


class SetExperimentTag(ExperimentId):
    key: Required
    value: str


class DeleteExperimentTag(ExperimentId):
    key: Required


def _writer(ctx: MlflowContext, what: str) -> None:
    ctx.caller.require("write")
    ctx.caller.require_not_run_token(what)


def _check_location(ctx: MlflowContext, location: str | None) -> None:
    """Refuse an experiment location inside the store this door's artifact proxy serves (server door:
    `mlflow-artifacts:`). Its runs' artifacts would go to `<location>/<run id>/artifacts`, and the proxy
    maps `mlflow-artifacts:/runs/<id>/...` onto run <id>'s own files: a location there would put every
    new run inside another run's folder (or a logged model's)."""
    proxied = ctx.artifact_uri("runs").startswith(PROXY_SCHEME)
    if proxied and location and location.strip().lower().startswith(PROXY_SCHEME):
        raise invalid(
            f"Invalid value '{location}' for parameter 'artifact_location' supplied: this server keeps "
            "every run's artifacts at mlflow-artifacts:/runs/<run id> itself, so an experiment's location "
            "cannot point into mlflow-artifacts: (new runs would land inside another run's folder). Omit "
            "artifact_location to use the server's layout, or pass a location of your own outside "
            "mlflow-artifacts: (for example s3://bucket/path)."
        )


@route("POST", "experiments/create")
def create_experiment(ctx: MlflowContext, body: CreateExperiment) -> dict[str, Any]:
    _writer(ctx, "Creating experiments")
    check_experiment_name(body.name)
    _check_location(ctx, body.artifact_location)
    tags = {t.key: t.value for t in body.tags}
    for key, value in tags.items():
        check_experiment_tag(key, value)
    try:
        exp = ctx.store.create_mlflow_experiment(body.name, body.artifact_location or None, tags)
    except ConflictError:
        raise MlflowError(
            "RESOURCE_ALREADY_EXISTS", f"Experiment(name={body.name}) already exists."
        ) from None
    return {"experiment_id": api_experiment_id(exp)}


@route("GET", "experiments/get")
def get_experiment(ctx: MlflowContext, body: ExperimentId) -> dict[str, Any]:
    ctx.caller.require("read")
    return {"experiment": experiment_json(ctx, resolve_experiment(ctx, body.experiment_id))}


@route("GET", "experiments/get-by-name")
def get_experiment_by_name(ctx: MlflowContext, body: GetByName) -> dict[str, Any]:
    ctx.caller.require("read")
    if body.experiment_name == "Default":
        return {"experiment": experiment_json(ctx, ctx.store.get_or_create_experiment("Default"))}
    try:
        found = ctx.store.get_experiment(body.experiment_name)
    except NotFoundError:
        raise missing(f"Could not find experiment with name '{body.experiment_name}'") from None
    return {"experiment": experiment_json(ctx, found)}


@route("POST", "experiments/update")
def rename_experiment(ctx: MlflowContext, body: UpdateExperiment) -> dict[str, Any]:
    _writer(ctx, "Renaming experiments")
    exp = resolve_experiment(ctx, body.experiment_id)
    if exp.lifecycle_stage != ACTIVE:
        raise MlflowError("INVALID_STATE", "Cannot rename a non-active experiment.", status=500)
    check_experiment_name(body.new_name)
    try:
        ctx.store.rename_experiment(exp.id, body.new_name)
    except ConflictError:
        raise MlflowError(
            "RESOURCE_ALREADY_EXISTS", f"Experiment(name={body.new_name}) already exists."
        ) from None
    return {}


@route("POST", "experiments/delete")
def delete_experiment(ctx: MlflowContext, body: ExperimentId) -> dict[str, Any]:
    _writer(ctx, "Deleting experiments")
    exp = resolve_experiment(ctx, body.experiment_id)
    if exp.lifecycle_stage != ACTIVE:
        raise missing(f"No Experiment with id={body.experiment_id} exists")
    ctx.store.set_experiment_lifecycle(exp.id, DELETED)
    return {}


@route("POST", "experiments/restore")
def restore_experiment(ctx: MlflowContext, body: ExperimentId) -> dict[str, Any]:
    _writer(ctx, "Restoring experiments")
    exp = resolve_experiment(ctx, body.experiment_id)
    if exp.lifecycle_stage != DELETED:  # MLflow looks among deleted experiments only
        raise missing(f"No Experiment with id={body.experiment_id} exists")
    ctx.store.set_experiment_lifecycle(exp.id, ACTIVE)
    return {}


def _active(ctx: MlflowContext, experiment_id: str) -> str:
    exp = resolve_experiment(ctx, experiment_id)
    if exp.lifecycle_stage != ACTIVE:
        raise MlflowError(
            "INVALID_PARAMETER_VALUE",
            f"The experiment {experiment_id} must be in the 'active' state. "
            f"Current state is {exp.lifecycle_stage}.",
        )
    return exp.id


@route("POST", "experiments/set-experiment-tag")
def set_experiment_tag(ctx: MlflowContext, body: SetExperimentTag) -> dict[str, Any]:
    _writer(ctx, "Tagging experiments")
    check_experiment_tag(body.key, body.value)
    ctx.store.set_experiment_tag(_active(ctx, body.experiment_id), body.key, body.value)
    return {}


@route("POST", "experiments/delete-experiment-tag")
def delete_experiment_tag(ctx: MlflowContext, body: DeleteExperimentTag) -> dict[str, Any]:
    _writer(ctx, "Removing experiment tags")
    if not ctx.store.delete_experiment_tag(_active(ctx, body.experiment_id), body.key):
        raise missing(f"No tag with name: {body.key} in experiment with id {body.experiment_id}")
    return {}
