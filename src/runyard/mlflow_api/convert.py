"""runyard records as MLflow's JSON, and the lookups every handler starts with.

The mapping (docs/server.md):

    MLflow experiment  -> runyard experiment (id "0" is the experiment named "Default")
    MLflow run         -> runyard run (those MLflow creates have run_type "mlflow.run"; same id)
    params             -> run properties (write-once in both)
    tags               -> run tags
    metrics            -> scalar metrics (timestamps: MLflow milliseconds, runyard seconds)

`runs_json` renders any number of runs with a fixed number of queries (experiments, tags, params,
latest metrics), so a search page of 1,000 runs costs the same handful of round trips as one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from runyard.errors import NotFoundError
from runyard.mlflow_api.dispatch import MlflowContext
from runyard.mlflow_api.errors import MlflowError, invalid, missing
from runyard.status import RunStatus
from runyard.store import ExperimentRecord, RunRecord

MLFLOW_RUN_TYPE = "mlflow.run"
DEFAULT_EXPERIMENT = "Default"
DEFAULT_EXPERIMENT_ID = "0"
ACTIVE, DELETED = "active", "deleted"

#: MLflow's run statuses -> runyard's.
TO_RUNYARD = {
    "RUNNING": RunStatus.RUNNING.value,
    "FINISHED": RunStatus.COMPLETED.value,
    "FAILED": RunStatus.FAILED.value,
    "KILLED": RunStatus.CANCELED.value,
    "SCHEDULED": RunStatus.QUEUED.value,
}
#: runyard's run statuses -> MLflow's (a run that has not started its code yet is SCHEDULED).
TO_MLFLOW = {
    RunStatus.NOT_STARTED.value: "SCHEDULED",
    RunStatus.QUEUED.value: "SCHEDULED",
    RunStatus.PREPARING.value: "SCHEDULED",
    RunStatus.STARTING.value: "SCHEDULED",
    RunStatus.RUNNING.value: "RUNNING",
    RunStatus.FINALIZING.value: "RUNNING",
    RunStatus.CANCEL_REQUESTED.value: "RUNNING",
    RunStatus.COMPLETED.value: "FINISHED",
    RunStatus.FAILED.value: "FAILED",
    RunStatus.CANCELED.value: "KILLED",
}


def _present(value: str) -> str:
    if value == "":  # protobuf has no empty required string: MLflow's server calls it missing
        raise PydanticCustomError("missing", "Field required")
    return value


#: A required string parameter: absent or empty is refused with MLflow's "Missing value" wording.
Required = Annotated[str, AfterValidator(_present)]


def ms(seconds: float | None) -> int | None:
    """runyard's float seconds as MLflow's integer milliseconds."""
    return None if seconds is None else round(seconds * 1000)


# -- experiments ------------------------------------------------------------------------------------
def api_experiment_id(experiment: ExperimentRecord) -> str:
    """The id MLflow clients see: "0" for "Default" (MLflow's default experiment), else runyard's id."""
    return DEFAULT_EXPERIMENT_ID if experiment.name == DEFAULT_EXPERIMENT else experiment.id


def api_experiment_id_of_run(record: RunRecord) -> str:
    return DEFAULT_EXPERIMENT_ID if record.experiment_name == DEFAULT_EXPERIMENT else record.experiment_id


def resolve_experiment(ctx: MlflowContext, experiment_id: str) -> ExperimentRecord:
    """The experiment an MLflow request names by id ("0": "Default", created on first use)."""
    if experiment_id == DEFAULT_EXPERIMENT_ID:
        return ctx.store.get_or_create_experiment(DEFAULT_EXPERIMENT)
    try:
        return ctx.store.get_experiment_by_id(experiment_id)
    except NotFoundError:
        raise missing(f"No Experiment with id={experiment_id} exists") from None


def resolve_active_experiment(ctx: MlflowContext, experiment_id: str) -> ExperimentRecord:
    """As resolve_experiment, refusing a deleted experiment the way MLflow does for new runs."""
    exp = resolve_experiment(ctx, experiment_id)
    if exp.lifecycle_stage != ACTIVE:
        raise invalid(
            f"The experiment {experiment_id} must be in the 'active' state. "
            f"Current state is {exp.lifecycle_stage}."
        )
    return exp


def experiment_artifact_location(ctx: MlflowContext, exp: ExperimentRecord) -> str:
    """Where the experiment's runs keep artifacts: its own location, or the workspace's runs/ folder."""
    return exp.artifact_location or ctx.artifact_uri("runs")


def experiment_json(
    ctx: MlflowContext, exp: ExperimentRecord, tags: dict[str, str] | None = None
) -> dict[str, Any]:
    """MLflow's Experiment JSON; `tags` saves the query when the caller already read them."""
    if tags is None:
        tags = ctx.store.get_experiment_tags([exp.id]).get(exp.id, {})
    return {
        "experiment_id": api_experiment_id(exp),
        "name": exp.name,
        "artifact_location": experiment_artifact_location(ctx, exp),
        "lifecycle_stage": exp.lifecycle_stage,
        "creation_time": ms(exp.created_time),
        "last_update_time": ms(exp.last_update_time or exp.created_time),
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
    }


def experiments_json(ctx: MlflowContext, experiments: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """Many experiments in two queries' worth of work (their tags in one)."""
    tags = ctx.store.get_experiment_tags([e.id for e in experiments])
    return [experiment_json(ctx, e, tags.get(e.id, {})) for e in experiments]


# -- runs ---------------------------------------------------------------------------------------------
def _run_record(ctx: MlflowContext, run_id: str | None) -> RunRecord:
    if not run_id:
        raise invalid(
            "Missing value for required parameter 'run_id'. "
            "See the API docs for more information about request parameters."
        )
    try:
        return ctx.store.get_run(run_id)
    except NotFoundError:
        raise missing(f"Run with id={run_id} not found") from None


def run_for_read(ctx: MlflowContext, run_id: str | None) -> RunRecord:
    """The run, after the caller's read check (a run token reads its own family only)."""
    record = _run_record(ctx, run_id)
    ctx.caller.family_check(ctx.store, record.run_id, write=False)
    return record


def run_for_write(ctx: MlflowContext, run_id: str | None) -> RunRecord:
    """The run, after the caller's write check; a deleted run takes no writes, as in MLflow."""
    record = _run_record(ctx, run_id)
    ctx.caller.family_check(ctx.store, record.run_id, write=True)
    check_run_active(record)
    return record


def check_run_active(record: RunRecord) -> None:
    if record.lifecycle_stage != ACTIVE:
        raise invalid(
            f"The run {record.run_id} must be in the 'active' state. Current state is {record.lifecycle_stage}."
        )


def is_mlflow_run(record: RunRecord) -> bool:
    return record.run_type == MLFLOW_RUN_TYPE


def user_id(record: RunRecord) -> str:
    """MLflow's user_id: what the creating client sent (MLflow's server stores it as given)."""
    sent = record.data.get("mlflowUser")
    if isinstance(sent, str):
        return sent
    stamp = record.data.get("submittedBy")
    if isinstance(stamp, dict):
        return f"token:{stamp['token']}" if stamp.get("token") else str(stamp.get("auth", ""))
    return ""


def run_artifact_uri(ctx: MlflowContext, record: RunRecord, exp: ExperimentRecord | None) -> str:
    """`<artifact_location>/<run_id>/artifacts` under an experiment's own location (MLflow's layout),
    else the run's file root in the workspace's artifact store (contract §1)."""
    if exp is not None and exp.artifact_location:
        return f"{exp.artifact_location.rstrip('/')}/{record.run_id}/artifacts"
    return ctx.artifact_uri(f"runs/{record.run_id}")


def _info(ctx: MlflowContext, record: RunRecord, exp: ExperimentRecord | None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": record.run_id,
        "run_uuid": record.run_id,
        "run_name": record.display_name or "",
        "experiment_id": api_experiment_id_of_run(record),
        "user_id": user_id(record),
        "status": TO_MLFLOW.get(record.status, "RUNNING"),
        "start_time": ms(record.start_time if record.start_time is not None else record.created_time),
        "artifact_uri": run_artifact_uri(ctx, record, exp),
        "lifecycle_stage": record.lifecycle_stage,
    }
    if record.end_time is not None:
        info["end_time"] = ms(record.end_time)
    return info


def _experiments_of(ctx: MlflowContext, records: Iterable[RunRecord]) -> dict[str, ExperimentRecord]:
    return ctx.store.get_experiments_by_id(sorted({r.experiment_id for r in records}))


def run_info_json(ctx: MlflowContext, record: RunRecord) -> dict[str, Any]:
    """MLflow's RunInfo JSON for one run."""
    return _info(ctx, record, _experiments_of(ctx, [record]).get(record.experiment_id))


def runs_json(ctx: MlflowContext, records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """MLflow's Run JSON for `records`, in order, with a fixed number of queries however many runs."""
    if not records:
        return []
    ids = [r.run_id for r in records]
    experiments = _experiments_of(ctx, records)
    tags = ctx.store.get_tags_many(ids)
    params = ctx.store.get_properties_many(ids)
    metrics = ctx.store.mlflow_latest_metrics(ids)
    out = []
    for record in records:
        run: dict[str, Any] = {
            "info": _info(ctx, record, experiments.get(record.experiment_id)),
            "data": {
                "metrics": [
                    {"key": m.key, "value": m.value, "timestamp": ms(m.timestamp), "step": m.step}
                    for m in metrics.get(record.run_id, [])
                ],
                "params": [{"key": k, "value": v} for k, v in sorted(params.get(record.run_id, {}).items())],
                "tags": [
                    {"key": k, "value": "" if v is None else str(v)}
                    for k, v in sorted(tags.get(record.run_id, {}).items())
                ],
            },
            "inputs": {
                "dataset_inputs": list(record.data.get("mlflowInputs") or []),
                "model_inputs": list(record.data.get("mlflowModelInputs") or []),
            },
        }
        outputs = record.data.get("mlflowOutputs")
        if isinstance(outputs, list):
            run["outputs"] = {"model_outputs": outputs}
        elif isinstance(outputs, dict):
            run["outputs"] = outputs
        out.append(run)
    return out


def run_json(ctx: MlflowContext, record: RunRecord) -> dict[str, Any]:
    return runs_json(ctx, [record])[0]


__all__ = [
    "ACTIVE",
    "DEFAULT_EXPERIMENT",
    "DELETED",
    "MLFLOW_RUN_TYPE",
    "TO_MLFLOW",
    "TO_RUNYARD",
    "MlflowError",
    "api_experiment_id",
    "experiment_json",
    "experiments_json",
    "resolve_experiment",
    "run_for_read",
    "run_for_write",
    "run_info_json",
    "run_json",
    "runs_json",
]
