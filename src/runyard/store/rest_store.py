"""RestStore: the Store protocol over HTTP, talking to `runyard server`.

Chosen by an http(s):// tracking URI. Records travel as the same dataclasses SqlStore returns
(validated by pydantic on both ends); errors come back as the RunyardError subclass the server raised.
Requests ride out a server restart (store/rest_http.py); the class docstring says which ones are retried
after a broken connection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter

from runyard import errors as e
from runyard.store import data_rules, env_rules, validation
from runyard.store.records import (
    ComputeTargetRecord,
    DatasetRecord,
    DatasetUse,
    DatastoreRecord,
    EnvironmentRecord,
    ExperimentRecord,
    KeyFilter,
    KeyFilterLike,
    MetricBatch,
    MetricRow,
    MetricSummary,
    ModelRecord,
    RunRecord,
)
from runyard.store.rest_http import AnswerLost, HttpClient, error_from_response
from runyard.store.rest_publish import CREATE_ATTEMPTS, RestPublish

__all__ = ["METRIC_BATCH", "HttpClient", "RestStore", "error_from_response"]

T = TypeVar("T")
METRIC_BATCH = 5000
_CREATE_ATTEMPTS = CREATE_ATTEMPTS  # sends of one create_runs whose answers keep getting lost


def _seg(value: str) -> str:
    """One URL path segment: names and ids may hold '/', '?', '#', '%' (MLflow experiments often do)."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if value in (".", "..") else quoted


def _load(kind: Any, data: Any) -> Any:
    return TypeAdapter(kind).validate_python(data)


def _dump(kind: Any, value: Any) -> Any:
    return TypeAdapter(kind).dump_python(value, mode="json")


def _key_filters(tags: KeyFilterLike | None, properties: KeyFilterLike | None) -> dict[str, str | None]:
    """v1's tags/properties run filters as query parameters (JSON of a KeyFilter), checked here first."""
    found = {"tags": KeyFilter.of("tags", tags), "properties": KeyFilter.of("properties", properties)}
    return {name: None if wanted is None else wanted.to_json() for name, wanted in found.items()}


class RestStore(RestPublish):
    """The Store protocol over HTTP.

    Every request is retried while the server cannot be reached or answers 503 (it did not do the work).
    When the connection breaks after a request was sent, the server may have applied it; only requests
    that are harmless to apply twice are sent again:

    - reads (GET);
    - get_or_create_experiment (by name), set_tags and remove_tags (last write wins), add_properties
      (the same value again is accepted), update_run_data (a merge of the same keys),
      update_compute_target (the same settings again);
    - set_run_status without `force`: a terminal status never changes again and CancelRequested only
      moves to a terminal status, so a repeat cannot undo what happened meanwhile. A forced change can
      (it would overwrite a status set in between), so it is not repeated;
    - append_metrics when every row carries a writer and seq: the database stores each (run_id, writer,
      seq) once, so a resent batch adds nothing (rows without them are not repeated);
    - create_run_token: a second token for the run is harmless (the first one is never seen).

    - save_datastore with `overwrite` (the same settings again), set_default_datastore_name,
      record_dataset_uses (rows are keyed by run, direction and name: a repeat replaces them with the same),
      register_dataset without `create_new_version` (a repeat finds the version the first one made),
      register_environment (an unchanged definition registered again returns the version that holds it).

    - set_published_pipeline_status, set_schedule_status and update_pipeline_endpoint (the same values
      again), add_pipeline_endpoint_version (a pipeline the endpoint already has keeps its version, so a
      repeat changes nothing).

    create_runs is not repeated blindly (a repeat would answer "already exists" for runs it did create):
    it first looks whether the runs exist, and sends again only if they do not. register_model and
    register_dataset with `create_new_version` are not repeated (a repeat would register another version),
    nor are save_datastore without `overwrite` and delete_datastore (a repeat would answer "already exists"
    or "not found" for what the first request did): they fail with AnswerLost, a StoreError that says the
    request may have been applied. create_published_pipeline, create_pipeline_endpoint and create_schedule
    work like create_runs: the record's id is chosen by the client, so after a lost answer they look it up
    and send again only when it is not there (store/rest_publish.py).
    """

    def __init__(self, uri: str, token: str | None = None, client: httpx.Client | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.where = self.uri
        self.identity = f"{self.uri}#{hashlib.sha256((token or '').encode()).hexdigest()[:12]}"
        self.http = HttpClient(self.uri, token, client=client)

    def _get(self, path: str, kind: Any, **params: Any) -> Any:
        clean = {k: v for k, v in params.items() if v is not None}
        return _load(kind, self.http.request("GET", f"/api/v1{path}", params=clean).json())

    def _send(self, method: str, path: str, body: Any, kind: Any = None, *, retry: bool = False) -> Any:
        response = self.http.request(method, f"/api/v1{path}", json=body, retry=retry)
        return None if kind is None else _load(kind, response.json())

    # experiments
    def get_or_create_experiment(self, name: str) -> ExperimentRecord:
        return self._send("POST", "/experiments", {"name": name}, ExperimentRecord, retry=True)

    def get_experiment(self, name: str) -> ExperimentRecord:
        return self._get(f"/experiments/{_seg(name)}", ExperimentRecord)

    def list_experiments(self) -> list[ExperimentRecord]:
        return self._get("/experiments", list[ExperimentRecord])

    # runs
    def create_runs(self, runs: Sequence[RunRecord]) -> list[RunRecord]:
        """When the answer is lost, look before sending again: the server creates all the runs in one
        transaction or none, so the first run tells which (by its id and created_time, set here)."""
        validation.validate_runs(runs)  # the server's rules, checked here too: JSON cannot carry NaN
        body = _dump(list[RunRecord], list(runs))
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                created = self._send("POST", "/runs", body, list[RunRecord])
                break
            except AnswerLost:
                found = self._created_earlier(runs)
                if found is not None:
                    created = found
                    break
                if attempt == _CREATE_ATTEMPTS - 1:
                    raise
        for run, made in zip(runs, created, strict=True):
            run.number = made.number
        return list(runs)

    def _created_earlier(self, runs: Sequence[RunRecord]) -> list[RunRecord] | None:
        """The runs as stored, if a request whose answer was lost created them; None if it did not."""
        if not runs:
            return []
        try:
            first = self.get_run(runs[0].run_id)
        except e.RunNotFound:
            return None
        if (first.created_time, first.experiment_name) != (runs[0].created_time, runs[0].experiment_name):
            return None  # someone else's run with this id: sending again reports the conflict
        return [first, *(self.get_run(r.run_id) for r in runs[1:])]

    def create_run(self, run: RunRecord) -> RunRecord:
        return self.create_runs([run])[0]

    def get_run(self, run_id: str) -> RunRecord:
        return self._get(f"/runs/{_seg(run_id)}", RunRecord)

    def list_runs(
        self,
        experiment_name: str | None = None,
        status: Sequence[str] | None = None,
        parent_id: str | None = None,
        top_level_only: bool = False,
        limit: int | None = None,
        run_type: str | None = None,
        display_name: str | None = None,
        fingerprint: str | None = None,
        exclude_parent: str | None = None,
        property_key: str | None = None,
        property_value: str | None = None,
        tags: KeyFilterLike | None = None,
        properties: KeyFilterLike | None = None,
        target: str | None = None,
    ) -> list[RunRecord]:
        return self._get(
            "/runs",
            list[RunRecord],
            experiment_name=experiment_name,
            status=list(status) if status else None,
            parent_id=parent_id,
            top_level_only=top_level_only or None,
            limit=limit,
            run_type=run_type,
            display_name=display_name,
            fingerprint=fingerprint,
            exclude_parent=exclude_parent,
            property_key=property_key,
            property_value=property_value,
            target=target,
            **_key_filters(tags, properties),
        )

    def list_descendants(
        self,
        run_id: str,
        recursive: bool,
        *,
        run_type: str | None = None,
        status: Sequence[str] | None = None,
        tags: KeyFilterLike | None = None,
        properties: KeyFilterLike | None = None,
    ) -> list[RunRecord]:
        return self._get(
            f"/runs/{_seg(run_id)}/descendants",
            list[RunRecord],
            recursive=recursive,
            run_type=run_type,
            status=list(status) if status else None,
            **_key_filters(tags, properties),
        )

    def change_marker(self, run_id: str | None = None) -> str:
        path = "/change-marker" if run_id is None else f"/runs/{_seg(run_id)}/change-marker"
        return str(self._get(path, dict[str, str])["marker"])

    def set_run_status(
        self,
        run_id: str,
        status: str,
        *,
        error: Mapping[str, Any] | None = None,
        force: bool = False,
        data: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> RunRecord:
        if data:
            validation.validate_data_patch(data)
        body = {
            "status": status,
            "error": dict(error) if error is not None else None,
            "force": force,
            "data": dict(data) if data else None,
            "fingerprint": fingerprint,
        }
        return self._send("POST", f"/runs/{_seg(run_id)}/status", body, RunRecord, retry=not force)

    def update_run_data(self, run_id: str, patch: Mapping[str, Any]) -> RunRecord:
        validation.validate_data_patch(patch)
        return self._send(
            "PATCH", f"/runs/{_seg(run_id)}/data", {"patch": dict(patch)}, RunRecord, retry=True
        )

    # tags and properties
    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        if tags:
            self._send(
                "PUT",
                f"/runs/{_seg(run_id)}/tags",
                {"tags": {str(k): None if v is None else str(v) for k, v in tags.items()}},
                retry=True,
            )

    def remove_tags(self, run_id: str, keys: Iterable[str]) -> None:
        self._send("POST", f"/runs/{_seg(run_id)}/tags/remove", {"keys": list(keys)}, retry=True)

    def get_tags(self, run_id: str) -> dict[str, Any]:
        return self._get(f"/runs/{_seg(run_id)}/tags", dict[str, str | None])

    def add_properties(self, run_id: str, properties: Mapping[str, str]) -> None:
        if properties:
            self._send(
                "POST",
                f"/runs/{_seg(run_id)}/properties",
                {"properties": {str(k): str(v) for k, v in properties.items()}},
                retry=True,
            )

    def get_properties(self, run_id: str) -> dict[str, str]:
        return self._get(f"/runs/{_seg(run_id)}/properties", dict[str, str])

    # metrics
    def append_metrics(self, rows: Sequence[MetricRow]) -> None:
        """One request per METRIC_BATCH rows, each acknowledged on its own: when one fails, the ones
        before it are stored (the metric writer hands over at most METRIC_BATCH rows per call, so what
        it re-queues after a failure is exactly what was not acknowledged)."""
        validation.validate_metric_rows(rows)  # NaN/Infinity would reach the server as null otherwise
        for start in range(0, len(rows), METRIC_BATCH):
            chunk = list(rows[start : start + METRIC_BATCH])
            numbered = all(r.writer is not None and r.seq is not None for r in chunk)
            self._send("POST", "/metrics", {"rows": _dump(list[MetricRow], chunk)}, retry=numbered)

    def append_metric_batch(self, batch: MetricBatch) -> None:
        """Over HTTP as rows, METRIC_BATCH per acknowledged request (the server's store takes them in
        its own fast path per request)."""
        self.append_metrics(batch.rows())

    def get_metric_rows(self, run_ids: Sequence[str], name: str | None = None) -> list[MetricRow]:
        if not run_ids:  # as SqlStore: no runs, no rows (the route needs at least one run_id)
            return []
        return self._get("/metrics", list[MetricRow], run_id=list(run_ids), name=name)

    def get_metric_summaries(self, run_ids: Sequence[str]) -> list[MetricSummary]:
        if not run_ids:
            return []
        return self._get("/metrics/summaries", list[MetricSummary], run_id=list(run_ids))

    def last_metric_seq(self, run_id: str, writer: str) -> int:
        return int(self._get("/metrics/last-seq", dict[str, int], run_id=run_id, writer=writer)["seq"])

    def count_metric_rows(self, run_id: str | None = None) -> int:
        return int(self._get("/metrics/count", dict[str, int], run_id=run_id)["count"])

    # models
    def register_model(self, model: ModelRecord) -> ModelRecord:
        return self._send("POST", "/models", _dump(ModelRecord, model), ModelRecord)

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        return self._get(f"/models/{_seg(name)}", ModelRecord, version=version)

    def list_models(self, name: str | None = None, latest: bool = False) -> list[ModelRecord]:
        return self._get("/models", list[ModelRecord], name=name, latest=latest or None)

    # named compute targets (create and delete are not repeated: a repeat would answer "already exists"
    # or "not found" for what the first request did)
    def create_compute_target(self, target: ComputeTargetRecord) -> ComputeTargetRecord:
        return self._send("POST", "/compute", _dump(ComputeTargetRecord, target), ComputeTargetRecord)

    def update_compute_target(self, target: ComputeTargetRecord) -> ComputeTargetRecord:
        body = _dump(ComputeTargetRecord, target)
        return self._send("PUT", f"/compute/{_seg(target.name)}", body, ComputeTargetRecord, retry=True)

    def get_compute_target(self, name: str) -> ComputeTargetRecord:
        return self._get(f"/compute/{_seg(name)}", ComputeTargetRecord)

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        return self._get("/compute", list[ComputeTargetRecord])

    def delete_compute_target(self, name: str) -> None:
        self._send("DELETE", f"/compute/{_seg(name)}", None)

    # datastores
    def save_datastore(self, record: DatastoreRecord, overwrite: bool = False) -> DatastoreRecord:
        data_rules.validate_datastore(record)  # the server's rules: a secret never leaves this machine
        response = self.http.request(
            "POST",
            "/api/v1/datastores",
            json=_dump(DatastoreRecord, record),
            params={"overwrite": "true"} if overwrite else None,
            retry=overwrite,
        )
        return _load(DatastoreRecord, response.json())

    def get_datastore(self, name: str) -> DatastoreRecord:
        return self._get(f"/datastores/{_seg(name)}", DatastoreRecord)

    def list_datastores(self) -> list[DatastoreRecord]:
        return self._get("/datastores", list[DatastoreRecord])

    def delete_datastore(self, name: str) -> None:
        self._send("DELETE", f"/datastores/{_seg(name)}", None)

    def get_default_datastore_name(self) -> str | None:
        return self._get("/default-datastore", dict[str, str | None])["name"]

    def set_default_datastore_name(self, name: str) -> None:
        self._send("PUT", "/default-datastore", {"name": name}, retry=True)

    # datasets
    def register_dataset(self, record: DatasetRecord, create_new_version: bool = False) -> DatasetRecord:
        data_rules.validate_dataset(record)
        response = self.http.request(
            "POST",
            "/api/v1/datasets",
            json=_dump(DatasetRecord, record),
            params={"create_new_version": "true"} if create_new_version else None,
            retry=not create_new_version,
        )
        return _load(DatasetRecord, response.json())

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        if version is None:
            return self._get(f"/datasets/{_seg(name)}/latest", DatasetRecord)
        return self._get(f"/datasets/{_seg(name)}/versions/{int(version)}", DatasetRecord)

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        return self._get(f"/dataset-ids/{_seg(dataset_id)}", DatasetRecord)

    def list_datasets(self, name: str | None = None, latest: bool = False) -> list[DatasetRecord]:
        return self._get("/datasets", list[DatasetRecord], name=name, latest=latest or None)

    # environments
    def register_environment(
        self, name: str, definition: Mapping[str, Any], description: str | None = None
    ) -> EnvironmentRecord:
        name, plain = env_rules.validate_environment(name, definition, description)
        body = {"name": name, "definition": plain, "description": description}
        return self._send("POST", "/environments", body, EnvironmentRecord, retry=True)

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        if version is None:
            return self._get(f"/environments/{_seg(name)}/latest", EnvironmentRecord)
        return self._get(f"/environments/{_seg(name)}/versions/{int(version)}", EnvironmentRecord)

    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        return self._get("/environments", list[EnvironmentRecord], name=name)

    # lineage
    def record_dataset_uses(self, uses: Sequence[DatasetUse]) -> None:
        for use in uses:
            data_rules.validate_dataset_use(use)
        if uses:
            self._send("POST", "/dataset-uses", _dump(list[DatasetUse], list(uses)), retry=True)

    def list_dataset_uses(
        self, run_id: str | None = None, dataset_id: str | None = None, dataset_name: str | None = None
    ) -> list[DatasetUse]:
        return self._get(
            "/dataset-uses", list[DatasetUse], run_id=run_id, dataset_id=dataset_id, dataset_name=dataset_name
        )

    # runs tokens (used by whoever launches a run's process against a server)
    def create_run_token(self, run_id: str) -> str:
        response = self.http.request("POST", f"/api/v1/runs/{_seg(run_id)}/token", retry=True)
        return str(response.json()["token"])
