"""What a run consumed and produced, in MLflow's terms:

    POST runs/log-inputs   datasets (and logged models) a run used -> RunRecord.data["mlflowInputs"]
                           (MLflow DatasetInput JSON) and data["mlflowModelInputs"] ({"model_id"})
    POST runs/outputs      logged models a run produced -> RunRecord.data["mlflowOutputs"] ({"model_id", "step"})
    POST runs/log-model    the legacy `mlflow.log-model.history` tag (a JSON list of MLmodel dicts)

They are lists in the run's data (convert.py renders them in the Run JSON) rather than tables: a run
logs a few, and they are always read with the run. The same dataset, model input or model output is
recorded once, however often a client sends it (autolog sends the training set on every fit).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ConfigDict, Field

from runyard.mlflow_api.convert import run_for_write
from runyard.mlflow_api.dispatch import Body, MlflowContext, route
from runyard.mlflow_api.errors import invalid

#: MLflow's tag for models logged the pre-3.0 way (mlflow.utils.mlflow_tags.MLFLOW_LOGGED_MODELS).
LOG_MODEL_HISTORY = "mlflow.log-model.history"
#: MLflow's limit on a tag value; a history longer than that is refused as MLflow does.
MAX_TAG_VALUE = 8000


class KeyValue(Body):
    key: str = Field(min_length=1)
    value: str = ""


class Dataset(Body):
    model_config = ConfigDict(extra="allow")  # schema, profile: kept as sent
    name: str = Field(min_length=1, max_length=500)
    digest: str = Field(min_length=1, max_length=36)
    source_type: str = Field(min_length=1)
    source: str = Field(min_length=1)


class DatasetInput(Body):
    tags: list[KeyValue] = []
    dataset: Dataset


class ModelInput(Body):
    model_id: str = Field(min_length=1)


class LogInputs(Body):
    run_id: str = Field(min_length=1)
    datasets: list[DatasetInput] = Field(default=[], max_length=1000)
    models: list[ModelInput] = Field(default=[], max_length=1000)


class ModelOutput(Body):
    model_id: str = Field(min_length=1)
    step: int = 0


class LogOutputs(Body):
    run_id: str = Field(min_length=1)
    models: list[ModelOutput] = Field(min_length=1, max_length=1000)


class LogModel(Body):
    run_id: str = Field(min_length=1)
    model_json: str = Field(min_length=1)


@route("POST", "runs/log-inputs")
def log_inputs(ctx: MlflowContext, body: LogInputs) -> dict[str, Any]:
    run = run_for_write(ctx, body.run_id)
    if body.datasets:
        inputs = [
            {
                "tags": [t.model_dump() for t in d.tags],
                "dataset": d.dataset.model_dump(exclude_none=True),
            }
            for d in body.datasets
        ]
        ctx.store.append_run_data_items(
            run.run_id, "mlflowInputs", inputs, ("dataset.name", "dataset.digest")
        )
    if body.models:  # not looked up, as on MLflow's server
        models = [m.model_dump() for m in body.models]
        ctx.store.append_run_data_items(run.run_id, "mlflowModelInputs", models, ("model_id",))
    return {}


@route("POST", "runs/outputs")
def log_outputs(ctx: MlflowContext, body: LogOutputs) -> dict[str, Any]:
    run = run_for_write(ctx, body.run_id)  # the models are not looked up: MLflow's server does not either
    outputs = [m.model_dump() for m in body.models]
    ctx.store.append_run_data_items(run.run_id, "mlflowOutputs", outputs, ("model_id", "step"))
    return {}


@route("POST", "runs/log-model")
def log_model(ctx: MlflowContext, body: LogModel) -> dict[str, Any]:
    run = run_for_write(ctx, body.run_id)
    try:
        model = json.loads(body.model_json)
    except ValueError:
        raise invalid(f"Malformed model info. \n {body.model_json} \n is not a valid JSON.") from None
    if not isinstance(model, dict) or not {"artifact_path", "flavors", "utc_time_created", "run_id"} <= set(
        model
    ):
        raise invalid(
            "Model json is missing mandatory fields: artifact_path, flavors, utc_time_created and run_id "
            "are required."
        )
    previous = ctx.store.get_tags(run.run_id).get(LOG_MODEL_HISTORY)
    try:
        history = json.loads(previous) if previous else []
    except ValueError:
        history = []
    value = json.dumps([*(history if isinstance(history, list) else []), model])
    if len(value) > MAX_TAG_VALUE:
        raise invalid(
            f"'{LOG_MODEL_HISTORY}' exceeds the maximum length of {MAX_TAG_VALUE} characters; this run "
            "already records too many models the legacy way. Use mlflow 3's logged models instead."
        )
    ctx.store.set_tags(run.run_id, {LOG_MODEL_HISTORY: value})
    return {}
