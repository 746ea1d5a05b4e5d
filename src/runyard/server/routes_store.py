"""REST routes for the Store protocol: one route per protocol method, records as JSON.

Every route declares the scope it needs; run tokens are limited to their run's family here too.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, field_validator

from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.errors import InvalidInputError
from runyard.server.auth import Principal
from runyard.server.errors import ERROR_RESPONSES, forbidden
from runyard.server.run_guard import check_new_runs, check_run_write
from runyard.store import ExperimentRecord, MetricRow, MetricSummary, ModelRecord, RunRecord, SqlStore
from runyard.store.records import SUBMISSION_KEYS, KeyFilter

MAX_METRIC_ROWS = 10_000
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class ExperimentIn(BaseModel):
    name: str = Field(min_length=1, max_length=255)


class StatusIn(BaseModel):
    status: str = Field(min_length=1, max_length=32)
    error: dict[str, Any] | None = None
    force: bool = False
    data: dict[str, Any] | None = None
    fingerprint: str | None = Field(default=None, max_length=64)


class DataPatch(BaseModel):
    patch: dict[str, Any]


class TagsIn(BaseModel):
    tags: dict[str, str | None]


class KeysIn(BaseModel):
    keys: list[str]


class PropertiesIn(BaseModel):
    properties: dict[str, str]


class MetricsIn(BaseModel):
    rows: list[MetricRow]

    @field_validator("rows")
    @classmethod
    def _fits_the_database(cls, rows: list[MetricRow]) -> list[MetricRow]:
        for row in rows:
            for name in ("step", "seq"):
                value = getattr(row, name)
                if value is not None and not INT64_MIN <= value <= INT64_MAX:
                    raise ValueError(f"{name}={value} does not fit in a 64-bit integer")
            if not math.isfinite(row.timestamp):
                raise ValueError(f"timestamp must be a finite number, got {row.timestamp}")
        return rows


class Count(BaseModel):
    count: int


class Seq(BaseModel):
    seq: int


class Marker(BaseModel):
    marker: str


def _key_filters(tags: str | None, properties: str | None) -> dict[str, KeyFilter | None]:
    """The tags/properties run filters RestStore sends as JSON (InvalidInputError, a 400, if malformed)."""
    return {
        name: None if text is None else KeyFilter.from_json(name, text)
        for name, text in (("tags", tags), ("properties", properties))
    }


def _refuse_submission_keys(run_id: str, patch: dict[str, Any] | None) -> None:
    """What a run executes and who submitted it are fixed at creation: a token that may edit records
    must not be able to swap a pending pipeline's graph or its submitter."""
    touched = sorted(set(patch or {}) & set(SUBMISSION_KEYS))
    if touched:
        raise forbidden(
            f"Run {run_id}: {', '.join(touched)} cannot change after a run is created (they define what it "
            "runs and who submitted it). Submit a new run instead, e.g. clone it with new parameters."
        )


def _own_family(store: SqlStore, who: Principal, runs: list[RunRecord]) -> list[RunRecord]:
    """What a run token may see of a listing: its own run and its descendants, not its siblings (a job
    reads its ancestors one by one, but another step's record is not its business)."""
    if who.scope != "run" or who.run_id is None:
        return runs
    family = {who.run_id, *(r.run_id for r in store.list_descendants(who.run_id, True))}
    return [r for r in runs if r.run_id in family]


def store_router(store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["store"])
    auth = Depends(principal)

    # -- experiments -----------------------------------------------------------------------------
    @router.post("/experiments", response_model=ExperimentRecord)
    def get_or_create_experiment(body: ExperimentIn, who: Principal = auth) -> ExperimentRecord:
        if who.scope == "run":
            return store.get_experiment(body.name)  # a job may use its experiment, not create new ones
        who.require("write")
        return store.get_or_create_experiment(body.name)

    @router.get("/experiments", response_model=list[ExperimentRecord])
    def list_experiments(who: Principal = auth) -> list[ExperimentRecord]:
        who.require("read")
        return store.list_experiments()

    @router.get("/experiments/{name:path}", response_model=ExperimentRecord)  # names may hold "/"
    def get_experiment(name: str, who: Principal = auth) -> ExperimentRecord:
        who.require("read")
        return store.get_experiment(name)

    # -- runs ------------------------------------------------------------------------------------
    @router.post("/runs", response_model=list[RunRecord])
    def create_runs(runs: list[RunRecord], request: Request, who: Principal = auth) -> list[RunRecord]:
        if not runs:
            raise InvalidInputError("Send at least one run.")
        if len(runs) > 1000:
            raise InvalidInputError(f"At most 1000 runs per request, got {len(runs)}.")
        if who.scope == "run":
            for run in runs:
                if run.run_type in (PIPELINE_RUN_TYPE, STEP_RUN_TYPE):
                    raise forbidden(
                        f"A run token cannot create pipeline or step runs ({run.run_type}): a job may not "
                        "schedule code. Submit pipelines from outside the job with a token that holds "
                        "compute for the target (`runyard token create --scope write --compute TARGET`)."
                    )
                if run.parent_id is None:
                    raise forbidden("A run token may only create child runs of its own run.")
                who.family_check(store, run.parent_id, write=True)
        else:
            who.require("write")
        state = request.app.state
        check_new_runs(
            store,
            runs,
            who,
            server_identity=state.workspace.identity,
            host_is_compute=bool(getattr(state, "host_is_compute", False)),
        )
        for run in runs:  # who asked is the server's word, never the client's (docs/security.md)
            run.data["submittedBy"] = who.stamp()
        return store.create_runs(runs)

    @router.get("/runs/{run_id}", response_model=RunRecord)
    def get_run(run_id: str, who: Principal = auth) -> RunRecord:
        who.family_check(store, run_id, write=False)
        return store.get_run(run_id)

    @router.get("/runs", response_model=list[RunRecord])
    def list_runs(
        who: Principal = auth,
        experiment_name: str | None = None,
        status: list[str] | None = Query(None),
        parent_id: str | None = None,
        top_level_only: bool = False,
        limit: int | None = Query(None, ge=0, le=100_000),
        run_type: str | None = None,
        display_name: str | None = None,
        fingerprint: str | None = None,
        exclude_parent: str | None = None,
        property_key: str | None = None,
        property_value: str | None = None,
        tags: str | None = None,
        properties: str | None = None,
        target: str | None = None,
    ) -> list[RunRecord]:
        if who.scope == "run":
            if parent_id is None:
                raise forbidden("A run token may only list the children of its own run (pass parent_id).")
            who.family_check(store, parent_id, write=False)
        else:
            who.require("read")
        return _own_family(
            store,
            who,
            store.list_runs(
                experiment_name=experiment_name,
                status=status,
                parent_id=parent_id,
                top_level_only=top_level_only,
                limit=limit,
                run_type=run_type,
                display_name=display_name,
                fingerprint=fingerprint,
                exclude_parent=exclude_parent,
                property_key=property_key,
                property_value=property_value,
                target=target,
                **_key_filters(tags, properties),
            ),
        )

    @router.get("/runs/{run_id}/descendants", response_model=list[RunRecord])
    def list_descendants(
        run_id: str,
        recursive: bool = False,
        run_type: str | None = None,
        status: list[str] | None = Query(None),
        tags: str | None = None,
        properties: str | None = None,
        who: Principal = auth,
    ) -> list[RunRecord]:
        who.family_check(store, run_id, write=False)
        found = store.list_descendants(
            run_id, recursive, run_type=run_type, status=status, **_key_filters(tags, properties)
        )
        return _own_family(store, who, found)

    @router.get("/runs/{run_id}/change-marker", response_model=Marker)
    def run_change_marker(run_id: str, who: Principal = auth) -> Marker:
        who.family_check(store, run_id, write=False)  # who may read the run may watch it
        return Marker(marker=store.change_marker(run_id))

    @router.get("/change-marker", response_model=Marker)
    def change_marker(who: Principal = auth) -> Marker:
        who.require("read")
        who.require_not_run_token("Watching every run of the workspace")
        return Marker(marker=store.change_marker())

    @router.post("/runs/{run_id}/status", response_model=RunRecord)
    def set_run_status(run_id: str, body: StatusIn, who: Principal = auth) -> RunRecord:
        who.family_check(store, run_id, write=True)
        _refuse_submission_keys(run_id, body.data)
        check_run_write(
            store,
            who,
            run_id,
            status=body.status,
            data=body.data,
            fingerprint=body.fingerprint,
            force=body.force,
        )
        return store.set_run_status(
            run_id,
            body.status,
            error=body.error,
            force=body.force,
            data=body.data,
            fingerprint=body.fingerprint,
        )

    @router.patch("/runs/{run_id}/data", response_model=RunRecord)
    def update_run_data(run_id: str, body: DataPatch, who: Principal = auth) -> RunRecord:
        who.family_check(store, run_id, write=True)
        _refuse_submission_keys(run_id, body.patch)
        check_run_write(store, who, run_id, data=body.patch)
        return store.update_run_data(run_id, body.patch)

    @router.put("/runs/{run_id}/tags", status_code=204)
    def set_tags(run_id: str, body: TagsIn, who: Principal = auth) -> None:
        who.family_check(store, run_id, write=True)
        store.set_tags(run_id, body.tags)

    @router.post("/runs/{run_id}/tags/remove", status_code=204)
    def remove_tags(run_id: str, body: KeysIn, who: Principal = auth) -> None:
        who.family_check(store, run_id, write=True)
        store.remove_tags(run_id, body.keys)

    @router.get("/runs/{run_id}/tags", response_model=dict[str, str | None])
    def get_tags(run_id: str, who: Principal = auth) -> dict[str, Any]:
        who.family_check(store, run_id, write=False)
        return store.get_tags(run_id)

    @router.post("/runs/{run_id}/properties", status_code=204)
    def add_properties(run_id: str, body: PropertiesIn, who: Principal = auth) -> None:
        who.family_check(store, run_id, write=True)
        store.add_properties(run_id, body.properties)

    @router.get("/runs/{run_id}/properties", response_model=dict[str, str])
    def get_properties(run_id: str, who: Principal = auth) -> dict[str, str]:
        who.family_check(store, run_id, write=False)
        return store.get_properties(run_id)

    # -- metrics ---------------------------------------------------------------------------------
    @router.post("/metrics", response_model=Count)
    def append_metrics(body: MetricsIn, who: Principal = auth) -> Count:
        if len(body.rows) > MAX_METRIC_ROWS:
            raise InvalidInputError(
                f"At most {MAX_METRIC_ROWS} metric rows per request, got {len(body.rows)}; split the batch."
            )
        for run_id in {r.run_id for r in body.rows}:
            who.family_check(store, run_id, write=True)
        store.append_metrics(body.rows)
        return Count(count=len(body.rows))

    @router.get("/metrics", response_model=list[MetricRow])
    def get_metric_rows(
        run_id: list[str] = Query(...), name: str | None = None, who: Principal = auth
    ) -> list[MetricRow]:
        for rid in run_id:
            who.family_check(store, rid, write=False)
        return store.get_metric_rows(run_id, name)

    @router.get("/metrics/summaries", response_model=list[MetricSummary])
    def get_metric_summaries(run_id: list[str] = Query(...), who: Principal = auth) -> list[MetricSummary]:
        for rid in run_id:
            who.family_check(store, rid, write=False)
        return store.get_metric_summaries(run_id)

    @router.get("/metrics/last-seq", response_model=Seq)
    def last_metric_seq(run_id: str, writer: str, who: Principal = auth) -> Seq:
        who.family_check(store, run_id, write=False)
        return Seq(seq=store.last_metric_seq(run_id, writer))

    @router.get("/metrics/count", response_model=Count)
    def count_metric_rows(run_id: str | None = None, who: Principal = auth) -> Count:
        if run_id is None:
            who.require("read")
            who.require_not_run_token("Counting every metric in the workspace")
        else:
            who.family_check(store, run_id, write=False)
        return Count(count=store.count_metric_rows(run_id))

    # -- models ----------------------------------------------------------------------------------
    @router.post("/models", response_model=ModelRecord)
    def register_model(model: ModelRecord, who: Principal = auth) -> ModelRecord:
        if who.scope == "run":
            if model.run_id is None:
                raise forbidden("A run token may only register models from its own run (run.register_model).")
            who.family_check(store, model.run_id, write=True)
        else:
            who.require("write")
        return store.register_model(model)

    @router.get("/models/{name}", response_model=ModelRecord)
    def get_model(
        name: str, version: int | None = Query(None, ge=1, le=INT64_MAX), who: Principal = auth
    ) -> ModelRecord:
        who.require("read")
        return store.get_model(name, version)

    @router.get("/models", response_model=list[ModelRecord])
    def list_models(
        name: str | None = None, latest: bool = False, who: Principal = auth
    ) -> list[ModelRecord]:
        who.require("read")
        return store.list_models(name=name, latest=latest)

    return router
