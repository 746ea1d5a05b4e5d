"""The part of MLflow's tracking REST API (2.0) that the `mlflow` client uses for experiments, runs,
params, tags and metrics, mapped onto runyard's own records:

    MLflow experiment  → runyard experiment (id "0" is the experiment named "Default")
    MLflow run         → runyard run of type "mlflow.run" (same id)
    params             → run *properties* (both are write-once: re-logging a different value is an error)
    tags               → run tags
    metrics            → scalar metrics (timestamp ms → s, step kept)
    status RUNNING / FINISHED / FAILED / KILLED / SCHEDULED → Running / Completed / Failed / Canceled / Queued
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from runyard.errors import ConflictError, NotFoundError
from runyard.server.auth import Principal
from runyard.server.run_guard import check_run_write
from runyard.store import MetricRow, RunRecord, SqlStore

MLFLOW_RUN_TYPE = "mlflow.run"
DEFAULT_EXPERIMENT = "Default"
TO_RUNYARD = {
    "RUNNING": "Running",
    "FINISHED": "Completed",
    "FAILED": "Failed",
    "KILLED": "Canceled",
    "SCHEDULED": "Queued",
}
TO_MLFLOW = {v: k for k, v in TO_RUNYARD.items()}


class MlflowError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class KeyValue(_Body):
    key: str = Field(min_length=1, max_length=250)
    value: str | None = Field(default=None, max_length=8000)


class CreateExperiment(_Body):
    name: str = Field(min_length=1, max_length=255)


class CreateRun(_Body):
    experiment_id: str = "0"
    start_time: int | None = None
    run_name: str | None = Field(default=None, max_length=256)
    tags: list[KeyValue] = []


class UpdateRun(_Body):
    run_id: str | None = None
    run_uuid: str | None = None
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class MetricIn(_Body):
    key: str = Field(min_length=1, max_length=250)
    value: float
    timestamp: int | None = None
    step: int | None = Field(default=0, ge=-(2**63), le=2**63 - 1)  # the database's 64-bit integer


class LogMetric(MetricIn):
    run_id: str | None = None
    run_uuid: str | None = None


class LogParam(KeyValue):
    run_id: str | None = None
    run_uuid: str | None = None


class DeleteTag(_Body):
    run_id: str
    key: str


class LogBatch(_Body):
    run_id: str
    metrics: list[MetricIn] = Field(default=[], max_length=10_000)
    params: list[KeyValue] = Field(default=[], max_length=1_000)
    tags: list[KeyValue] = Field(default=[], max_length=1_000)


class SearchRuns(_Body):
    experiment_ids: list[str] = []
    filter: str | None = None
    max_results: int = Field(default=1000, ge=1, le=50_000)
    order_by: list[str] = []
    page_token: str | None = None


class SearchExperiments(_Body):
    max_results: int = Field(default=1000, ge=1, le=50_000)
    filter: str | None = None


_CLAUSE = re.compile(
    r"^\s*(metrics|params|tags|attributes|attribute|metric|param|tag)\.(`[^`]+`|\"[^\"]+\"|[\w.\-]+)"
    r"\s*(=|!=|>=|<=|>|<|LIKE)\s*(.+?)\s*$",
    re.IGNORECASE,
)


def mlflow_router(store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix="/api/2.0/mlflow", tags=["mlflow"])
    auth = Depends(principal)

    def experiment_name(experiment_id: str) -> str:
        if experiment_id == "0":
            return store.get_or_create_experiment(DEFAULT_EXPERIMENT).name
        for exp in store.list_experiments():
            if exp.id == experiment_id:
                return exp.name
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"No experiment with id {experiment_id}.", 404)

    def experiment_json(exp: Any) -> dict[str, Any]:
        eid = "0" if exp.name == DEFAULT_EXPERIMENT else exp.id
        return {
            "experiment_id": eid,
            "name": exp.name,
            "artifact_location": f"runyard:/experiments/{exp.name}",
            "lifecycle_stage": "active",
            "creation_time": int(exp.created_time * 1000),
            "last_update_time": int(exp.created_time * 1000),
            "tags": [],
        }

    def run_record(run_id: str | None) -> RunRecord:
        if not run_id:
            raise MlflowError("INVALID_PARAMETER_VALUE", "run_id is required.", 400)
        try:
            return store.get_run(run_id)
        except NotFoundError:
            raise MlflowError("RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.", 404) from None

    def run_json(rec: RunRecord) -> dict[str, Any]:
        exp_id = "0" if rec.experiment_name == DEFAULT_EXPERIMENT else rec.experiment_id
        summaries = store.get_metric_summaries([rec.run_id])
        tags = store.get_tags(rec.run_id)
        return {
            "info": {
                "run_id": rec.run_id,
                "run_uuid": rec.run_id,
                "experiment_id": exp_id,
                "run_name": rec.display_name or rec.run_id,
                "user_id": rec.data.get("mlflowUser") or _user_id(rec.data.get("submittedBy")),
                "status": TO_MLFLOW.get(rec.status, "RUNNING"),
                "start_time": int((rec.start_time or rec.created_time) * 1000),
                **({"end_time": int(rec.end_time * 1000)} if rec.end_time else {}),
                "artifact_uri": f"runyard:/runs/{rec.run_id}",
                "lifecycle_stage": "active",
            },
            "data": {
                "metrics": [
                    {
                        "key": s.name,
                        "value": s.last,
                        "timestamp": int(rec.created_time * 1000),
                        "step": s.last_step or 0,
                    }
                    for s in summaries
                ],
                "params": [{"key": k, "value": v} for k, v in store.get_properties(rec.run_id).items()],
                "tags": [{"key": k, "value": v or ""} for k, v in tags.items()],
            },
        }

    def metric_rows(run_id: str, metrics: list[MetricIn]) -> list[MetricRow]:
        now = time.time()
        return [
            MetricRow(
                run_id=run_id,
                name=m.key,
                kind="scalar",
                value=m.value,
                timestamp=(m.timestamp / 1000) if m.timestamp else now,
                step=m.step,
            )
            for m in metrics
        ]

    def add_params(run_id: str, params: list[KeyValue]) -> None:
        try:
            store.add_properties(run_id, {p.key: p.value or "" for p in params})
        except ConflictError as exc:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE", f"Changing param values is not allowed. {exc}", 400
            ) from exc

    # -- experiments ------------------------------------------------------------------------------
    @router.post("/experiments/create")
    def create_experiment(body: CreateExperiment, who: Principal = auth) -> dict[str, Any]:
        who.require("write")
        who.require_not_run_token("Creating experiments")
        if any(e.name == body.name for e in store.list_experiments()):
            raise MlflowError("RESOURCE_ALREADY_EXISTS", f"Experiment '{body.name}' already exists.", 400)
        exp = store.get_or_create_experiment(body.name)
        return {"experiment_id": experiment_json(exp)["experiment_id"]}

    @router.get("/experiments/get-by-name")
    def get_by_name(experiment_name: str, who: Principal = auth) -> dict[str, Any]:
        who.require("read")
        if experiment_name == DEFAULT_EXPERIMENT:
            return {"experiment": experiment_json(store.get_or_create_experiment(DEFAULT_EXPERIMENT))}
        try:
            return {"experiment": experiment_json(store.get_experiment(experiment_name))}
        except NotFoundError:
            raise MlflowError(
                "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{experiment_name}'", 404
            ) from None

    @router.get("/experiments/get")
    def get_experiment(experiment_id: str, who: Principal = auth) -> dict[str, Any]:
        who.require("read")
        return {"experiment": experiment_json(store.get_experiment(experiment_name(experiment_id)))}

    @router.post("/experiments/search")
    def search_experiments(body: SearchExperiments, who: Principal = auth) -> dict[str, Any]:
        who.require("read")
        return {"experiments": [experiment_json(e) for e in store.list_experiments()[: body.max_results]]}

    # -- runs -------------------------------------------------------------------------------------
    @router.post("/runs/create")
    def create_run(body: CreateRun, who: Principal = auth) -> dict[str, Any]:
        who.require("write")
        who.require_not_run_token("Creating top-level runs")
        exp = store.get_or_create_experiment(experiment_name(body.experiment_id))
        start = (body.start_time / 1000) if body.start_time else time.time()
        tags = {t.key: t.value for t in body.tags}
        name = body.run_name or tags.get("mlflow.runName") or None
        rec = store.create_run(
            RunRecord(
                run_id=uuid.uuid4().hex,
                experiment_id=exp.id,
                experiment_name=exp.name,
                status="Running",
                run_type=MLFLOW_RUN_TYPE,
                created_time=start,
                start_time=start,
                display_name=name,
                # who submitted is the server's stamp; the user name MLflow sends is only a claim
                data={"submittedBy": who.stamp(), "mlflowUser": tags.get("mlflow.user", "mlflow")},
            )
        )
        store.set_tags(rec.run_id, tags)
        return {"run": run_json(rec)}

    @router.post("/runs/update")
    def update_run(body: UpdateRun, who: Principal = auth) -> dict[str, Any]:
        rec = run_record(body.run_id or body.run_uuid)
        who.family_check(store, rec.run_id, write=True)
        status = TO_RUNYARD.get(body.status) if body.status else None
        check_run_write(
            store,
            who,
            rec.run_id,
            status=status,
            data={"display_name": body.run_name} if body.run_name else None,
        )
        if body.run_name:
            rec = store.update_run_data(rec.run_id, {"display_name": body.run_name})
        if body.status:
            if body.status not in TO_RUNYARD:
                raise MlflowError("INVALID_PARAMETER_VALUE", f"Unknown run status {body.status!r}.", 400)
            rec = store.set_run_status(rec.run_id, TO_RUNYARD[body.status])
        return {"run_info": run_json(rec)["info"]}

    @router.get("/runs/get")
    def get_run(run_id: str, who: Principal = auth) -> dict[str, Any]:
        rec = run_record(run_id)
        who.family_check(store, rec.run_id, write=False)
        return {"run": run_json(rec)}

    @router.post("/runs/log-metric")
    def log_metric(body: LogMetric, who: Principal = auth) -> dict[str, Any]:
        rec = run_record(body.run_id or body.run_uuid)
        who.family_check(store, rec.run_id, write=True)
        store.append_metrics(metric_rows(rec.run_id, [body]))
        return {}

    @router.post("/runs/log-parameter")
    def log_param(body: LogParam, who: Principal = auth) -> dict[str, Any]:
        rec = run_record(body.run_id or body.run_uuid)
        who.family_check(store, rec.run_id, write=True)
        add_params(rec.run_id, [body])
        return {}

    @router.post("/runs/set-tag")
    def set_tag(body: LogParam, who: Principal = auth) -> dict[str, Any]:
        rec = run_record(body.run_id or body.run_uuid)
        who.family_check(store, rec.run_id, write=True)
        if body.key == "mlflow.runName" and body.value:
            check_run_write(store, who, rec.run_id, data={"display_name": body.value})
        store.set_tags(rec.run_id, {body.key: body.value})
        if body.key == "mlflow.runName" and body.value:
            store.update_run_data(rec.run_id, {"display_name": body.value})
        return {}

    @router.post("/runs/delete-tag")
    def delete_tag(body: DeleteTag, who: Principal = auth) -> dict[str, Any]:
        rec = run_record(body.run_id)
        who.family_check(store, rec.run_id, write=True)
        store.remove_tags(rec.run_id, [body.key])
        return {}

    @router.post("/runs/log-batch")
    def log_batch(body: LogBatch, who: Principal = auth) -> dict[str, Any]:
        rec = run_record(body.run_id)
        who.family_check(store, rec.run_id, write=True)
        if body.params:
            add_params(rec.run_id, body.params)
        if body.tags:
            store.set_tags(rec.run_id, {t.key: t.value for t in body.tags})
        store.append_metrics(metric_rows(rec.run_id, body.metrics))
        return {}

    @router.post("/runs/search")
    def search_runs(body: SearchRuns, who: Principal = auth) -> dict[str, Any]:
        who.require("read")
        names = {experiment_name(eid) for eid in body.experiment_ids} if body.experiment_ids else None
        records = [
            r for r in store.list_runs(top_level_only=False) if names is None or r.experiment_name in names
        ]
        if who.scope == "run":  # a job finds its own run and its children, not every run's data
            assert who.run_id is not None
            family = {who.run_id, *(r.run_id for r in store.list_descendants(who.run_id, True))}
            records = [r for r in records if r.run_id in family]
        offset = int(body.page_token) if body.page_token and body.page_token.isdigit() else 0
        clauses = _parse_filter(body.filter)
        matched = [run_json(r) for r in records]
        matched = [r for r in matched if all(_clause_ok(r, c) for c in clauses)]
        page = matched[offset : offset + body.max_results]
        out: dict[str, Any] = {"runs": page}
        if offset + body.max_results < len(matched):
            out["next_page_token"] = str(offset + body.max_results)
        return out

    @router.get("/metrics/get-history")
    def metric_history(
        run_id: str | None = None,
        metric_key: str = Query(..., min_length=1),
        run_uuid: str | None = None,
        who: Principal = auth,
    ) -> dict[str, Any]:
        rec = run_record(run_id or run_uuid)
        who.family_check(store, rec.run_id, write=False)
        rows = store.get_metric_rows([rec.run_id], metric_key)
        return {
            "metrics": [
                {"key": r.name, "value": r.value, "timestamp": int(r.timestamp * 1000), "step": r.step or 0}
                for r in rows
                if r.value is not None
            ]
        }

    return router


def _parse_filter(text: str | None) -> list[tuple[str, str, str, str]]:
    if not text or not text.strip():
        return []
    clauses = []
    for part in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part)
        if match is None:
            raise MlflowError(
                "INVALID_PARAMETER_VALUE",
                f"Unsupported filter clause {part!r}; use e.g. \"metrics.acc > 0.9 AND params.lr = '0.1'\".",
                400,
            )
        kind, key, op, value = match.groups()
        clauses.append(
            (
                kind.lower().rstrip("s") if kind.lower() != "attributes" else "attribute",
                key.strip('`"'),
                op.upper(),
                value.strip("'\""),
            )
        )
    return clauses


def _clause_ok(run: dict[str, Any], clause: tuple[str, str, str, str]) -> bool:
    kind, key, op, raw = clause
    if kind == "attribute":
        actual: Any = run["info"].get(key)
    else:
        items = {i["key"]: i["value"] for i in run["data"][f"{kind}s"]}
        if key not in items:
            return op == "!="
        actual = items[key]
    # Metrics, and numeric attributes such as start_time, compare as numbers.
    if kind == "metric" or (isinstance(actual, (int, float)) and not isinstance(actual, bool)):
        if actual is None:  # a metric whose last value was NaN
            return False
        try:
            value: Any = float(raw)
        except ValueError:
            return False
    else:
        value = raw
        actual = "" if actual is None else str(actual)
    if op == "LIKE":
        return (
            re.fullmatch(re.escape(str(value)).replace("%", ".*").replace("_", "."), str(actual)) is not None
        )
    return {
        "=": actual == value,
        "!=": actual != value,
        ">": actual > value,
        ">=": actual >= value,
        "<": actual < value,
        "<=": actual <= value,
    }[op]


def install(app: Any) -> None:
    from fastapi import Request

    @app.exception_handler(MlflowError)
    async def _mlflow_error(_request: Request, exc: MlflowError) -> JSONResponse:
        return JSONResponse({"error_code": exc.code, "message": exc.message}, status_code=exc.status)


def _user_id(submitted: Any) -> str:
    """MLflow's user_id is a string; the server's submission stamp is {"token": id, "scope": ...}."""
    if isinstance(submitted, dict):
        return f"token:{submitted['token']}" if submitted.get("token") else str(submitted.get("auth", ""))
    return str(submitted or "")
