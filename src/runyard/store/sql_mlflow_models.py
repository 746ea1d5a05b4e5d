"""MLflow 3's logged models, and the MLflow inputs and outputs recorded on runs.

A logged model is what `mlflow.<flavor>.log_model` (and autolog) creates before it uploads the model's
files: a row naming the experiment, the run that produced it, a status (PENDING until the upload is
finalized as READY or FAILED) and where its files live. Its tags, params and metrics change together and
are read together, so they sit in the row's JSON `data` instead of three more tables:

    data = {"tags": {key: value}, "params": {key: value}, "metrics": [MLflow Metric JSON], "status_message": str}

Every change is a read-modify-write inside one write transaction, so two clients tagging the same model
never lose each other's tags. A model is soft-deleted (lifecycle_stage "deleted") as MLflow does.

Run inputs and outputs (`runs/log-inputs`, `runs/outputs`) are lists in the run's data; appending to
them happens here too, in one transaction, for the same reason.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from runyard.errors import NotFoundError, RunNotFound
from runyard.store import schema as t
from runyard.store.sql_base import SqlBase

ACTIVE, DELETED = "active", "deleted"
#: Metrics kept per model: autolog logs a handful; a runaway loop must not grow one JSON row without end.
MAX_MODEL_METRICS = 10_000


@dataclass
class LoggedModelRecord:
    model_id: str
    experiment_id: str  # runyard's experiment id
    name: str
    status: str  # PENDING | READY | FAILED (MLflow's LoggedModelStatus without the prefix)
    artifact_location: str
    created_time: float
    last_updated_time: float
    source_run_id: str | None = None
    model_type: str | None = None
    lifecycle_stage: str = ACTIVE
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def tags(self) -> dict[str, str]:
        return dict(self.data.get("tags") or {})

    @property
    def params(self) -> dict[str, str]:
        return dict(self.data.get("params") or {})

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return list(self.data.get("metrics") or [])


class LoggedModelNotFound(NotFoundError):
    def __init__(self, model_id: str) -> None:
        # MLflow's wording: clients and tests match on it
        super().__init__(f"Logged model with ID '{model_id}' not found.")


def _record(row: Any) -> LoggedModelRecord:
    return LoggedModelRecord(
        model_id=row.model_id,
        experiment_id=row.experiment_id,
        name=row.name,
        status=row.status,
        artifact_location=row.artifact_location,
        created_time=row.created_time,
        last_updated_time=row.last_updated_time,
        source_run_id=row.source_run_id,
        model_type=row.model_type,
        lifecycle_stage=row.lifecycle_stage,
        data=dict(row.data or {}),
    )


class SqlMlflowModels(SqlBase):
    # -- logged models ---------------------------------------------------------------------------
    def create_logged_model(self, record: LoggedModelRecord) -> LoggedModelRecord:
        with self._write() as conn:
            conn.execute(
                t.mlflow_logged_models.insert().values(
                    model_id=record.model_id,
                    experiment_id=record.experiment_id,
                    name=record.name,
                    source_run_id=record.source_run_id,
                    status=record.status,
                    model_type=record.model_type,
                    artifact_location=record.artifact_location,
                    lifecycle_stage=record.lifecycle_stage,
                    created_time=record.created_time,
                    last_updated_time=record.last_updated_time,
                    data=record.data,
                )
            )
        return record

    def get_logged_model(self, model_id: str, *, allow_deleted: bool = False) -> LoggedModelRecord:
        """LoggedModelNotFound when absent (or deleted, unless `allow_deleted`)."""
        with self._read() as conn:
            row = conn.execute(
                sa.select(t.mlflow_logged_models).where(t.mlflow_logged_models.c.model_id == model_id)
            ).first()
        if row is None or (row.lifecycle_stage != ACTIVE and not allow_deleted):
            raise LoggedModelNotFound(model_id)
        return _record(row)

    def update_logged_model(
        self,
        model_id: str,
        *,
        status: str | None = None,
        status_message: str | None = None,
        tags: Mapping[str, str] | None = None,
        remove_tags: Iterable[str] = (),
        params: Mapping[str, str] | None = None,
        lifecycle_stage: str | None = None,
    ) -> LoggedModelRecord:
        """Change an active model in one transaction; keys not given stay as they are."""
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.mlflow_logged_models).where(t.mlflow_logged_models.c.model_id == model_id)
            ).first()
            if row is None or row.lifecycle_stage != ACTIVE:
                raise LoggedModelNotFound(model_id)
            record = _record(row)
            data = record.data
            if tags or remove_tags:
                merged = {**record.tags, **dict(tags or {})}
                for key in remove_tags:
                    merged.pop(key, None)
                data["tags"] = merged
            if params:
                data["params"] = {**record.params, **dict(params)}
            if status_message is not None:
                data["status_message"] = status_message
            record.status = status or record.status
            record.lifecycle_stage = lifecycle_stage or record.lifecycle_stage
            record.last_updated_time = time.time()
            conn.execute(
                t.mlflow_logged_models.update()
                .where(t.mlflow_logged_models.c.model_id == model_id)
                .values(
                    status=record.status,
                    lifecycle_stage=record.lifecycle_stage,
                    last_updated_time=record.last_updated_time,
                    data=data,
                )
            )
            return record

    def add_logged_model_metrics(self, model_id: str, metrics: Sequence[Mapping[str, Any]]) -> None:
        """Record metrics logged with `model_id` (MLflow Metric JSON: key, value, timestamp in ms, step,
        dataset_name, dataset_digest, run_id) on the model. A metric sent again (same key, step, timestamp,
        dataset and run) is kept once. A model that does not exist is skipped: MLflow's own store accepts
        such metrics on the run and does not fail the batch."""
        if not metrics:
            return
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.mlflow_logged_models.c.data).where(t.mlflow_logged_models.c.model_id == model_id)
            ).first()
            if row is None:
                return
            data = dict(row.data or {})
            kept = list(data.get("metrics") or [])
            seen = {_metric_key(m) for m in kept}
            for metric in metrics:
                entry = {k: v for k, v in metric.items() if v is not None}
                entry["model_id"] = model_id
                if _metric_key(entry) not in seen:
                    seen.add(_metric_key(entry))
                    kept.append(entry)
            data["metrics"] = kept[-MAX_MODEL_METRICS:]
            conn.execute(
                t.mlflow_logged_models.update()
                .where(t.mlflow_logged_models.c.model_id == model_id)
                .values(data=data, last_updated_time=time.time())
            )

    def list_logged_models(
        self, experiment_ids: Sequence[str], *, source_run_id: str | None = None
    ) -> list[LoggedModelRecord]:
        """The active models of these experiments, newest first (model id breaks ties, so pages are
        stable). Filtering and ordering beyond that are MLflow's search grammar (mlflow_api/logged_models.py):
        an experiment holds a handful of models, not millions of runs."""
        if not experiment_ids:
            return []
        table = t.mlflow_logged_models
        query = (
            sa.select(table)
            .where(table.c.experiment_id.in_(list(experiment_ids)), table.c.lifecycle_stage == ACTIVE)
            .order_by(table.c.created_time.desc(), table.c.model_id)
        )
        if source_run_id is not None:
            query = query.where(table.c.source_run_id == source_run_id)
        with self._read() as conn:
            return [_record(row) for row in conn.execute(query)]

    # -- MLflow inputs and outputs of runs -------------------------------------------------------
    def append_run_data_items(
        self, run_id: str, key: str, items: Sequence[Mapping[str, Any]], identity: Sequence[str]
    ) -> None:
        """Append `items` to the list RunRecord.data[key], skipping those whose `identity` fields (dotted paths)
        match an item already there (MLflow logs the same dataset input once per run)."""
        with self._write() as conn:
            row = conn.execute(sa.select(t.runs.c.data).where(t.runs.c.run_id == run_id)).first()
            if row is None:
                raise RunNotFound(run_id, self.where)
            data = dict(row.data or {})
            current = list(data.get(key) or [])
            seen = {_identity(item, identity) for item in current}
            for item in items:
                if _identity(item, identity) not in seen:
                    seen.add(_identity(item, identity))
                    current.append(dict(item))
            data[key] = current
            conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(data=data))


def _metric_key(metric: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(
        metric.get(k) for k in ("key", "step", "timestamp", "dataset_name", "dataset_digest", "run_id")
    )


def _identity(item: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The values of `fields` (dotted paths: "dataset.digest") as one comparable string."""
    values = []
    for path in fields:
        value: Any = item
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        values.append(value)
    return json.dumps(values, sort_keys=True, default=str)
