"""REST routes for datastores, datasets and lineage (the Store protocol's data methods).

Who may do what:
- reading any of it: any valid token (a job reads the datasets and datastores its script names);
- registering, replacing or deleting a datastore, and choosing the default one: 'admin', as for compute
  targets; it decides where the workspace's data lives, which a job must never change;
- registering a dataset version: 'write', or a run token (a job registers its outputs; when the record
  names a run, it must be the token's run or one of its children, and a record that names none is
  stamped with the token's run, so every version a job publishes says which run made it);
- recording lineage: 'write', or a run token for its own run's family only, and only outputs: the inputs
  recorded at submit decide which datastore files the run token may read (server/run_inputs.py).

A version posted here names datastore files only (store/data_rules.check_server_dataset): a client's
local paths and URLs were never uploaded to the server, and previewing them would make the server read
its own files or fetch URLs a token holder chose.

Bodies are read strictly (pydantic's strict mode): lax parsing would turn "12" into a file size or 1.0
into a version before store/validation.py sees it, and REST would store what the SQL stores refuse.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from runyard.errors import InvalidInputError
from runyard.server.auth import Principal
from runyard.server.errors import ERROR_RESPONSES, forbidden
from runyard.store import SqlStore, data_rules
from runyard.store.records import DatasetRecord, DatasetUse, DatastoreRecord

MAX_USES = 10_000
INT64_MAX = 2**63 - 1


class DatastoreIn(BaseModel):
    """A DatastoreRecord as a request body, each field as its own JSON type."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    kind: str
    url: str
    options: dict[str, Any] = Field(default_factory=dict)
    secret_names: list[str] = Field(default_factory=list)
    created_time: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)

    def record(self) -> DatastoreRecord:
        values = self.model_dump()
        return DatastoreRecord(**{**values, "secret_names": tuple(values["secret_names"])})


class DatasetIn(BaseModel):
    """A DatasetRecord as a request body; `id` and `version` are assigned by the store."""

    model_config = ConfigDict(strict=True, extra="forbid")

    id: str = ""
    name: str
    version: int = 0
    kind: str
    definition: dict[str, Any]
    files: list[dict[str, Any]]
    content_hash: str
    created_time: float = 0.0
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    run_id: str | None = None

    def record(self) -> DatasetRecord:
        return DatasetRecord(**self.model_dump())


class DatasetUseIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    run_id: str
    direction: str
    name: str
    content_hash: str
    dataset_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    created_time: float = 0.0

    def record(self) -> DatasetUse:
        return DatasetUse(**self.model_dump())


class DefaultDatastore(BaseModel):
    name: str | None


class DefaultDatastoreIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str


def data_router(store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["data"])
    auth = Depends(principal)

    # -- datastores ------------------------------------------------------------------------------
    @router.get("/datastores", response_model=list[DatastoreRecord])
    def list_datastores(who: Principal = auth) -> list[DatastoreRecord]:
        who.require("read")
        return store.list_datastores()

    @router.post("/datastores", response_model=DatastoreRecord)
    def save_datastore(body: DatastoreIn, overwrite: bool = False, who: Principal = auth) -> DatastoreRecord:
        who.require("admin")
        return store.save_datastore(body.record(), overwrite=overwrite)

    @router.get("/datastores/{name}", response_model=DatastoreRecord)
    def get_datastore(name: str, who: Principal = auth) -> DatastoreRecord:
        who.require("read")
        return store.get_datastore(name)

    @router.delete("/datastores/{name}", status_code=204)
    def delete_datastore(name: str, who: Principal = auth) -> None:
        who.require("admin")
        store.delete_datastore(name)

    @router.get("/default-datastore", response_model=DefaultDatastore)
    def get_default_datastore(who: Principal = auth) -> DefaultDatastore:
        who.require("read")
        return DefaultDatastore(name=store.get_default_datastore_name())

    @router.put("/default-datastore", response_model=DefaultDatastore)
    def set_default_datastore(body: DefaultDatastoreIn, who: Principal = auth) -> DefaultDatastore:
        who.require("admin")
        store.set_default_datastore_name(body.name)
        return DefaultDatastore(name=store.get_default_datastore_name())

    # -- datasets --------------------------------------------------------------------------------
    @router.get("/datasets", response_model=list[DatasetRecord])
    def list_datasets(
        name: str | None = None, latest: bool = False, who: Principal = auth
    ) -> list[DatasetRecord]:
        who.require("read")
        return store.list_datasets(name=name, latest=latest)

    @router.post("/datasets", response_model=DatasetRecord)
    def register_dataset(
        body: DatasetIn, create_new_version: bool = False, who: Principal = auth
    ) -> DatasetRecord:
        record = body.record()
        if who.scope == "run":
            if record.run_id is None:
                record = replace(record, run_id=who.run_id)
            if record.run_id is not None:  # a job registers its own outputs, never another run's
                who.family_check(store, record.run_id, write=True)
        else:
            who.require("write")
        data_rules.validate_dataset(record)  # shape first: the next rule reads the files' fields
        data_rules.check_server_dataset(record)
        return store.register_dataset(record, create_new_version=create_new_version)

    @router.get("/datasets/{name}/versions/{version}", response_model=DatasetRecord)
    def get_dataset_version(
        name: str, version: int = Path(..., ge=-INT64_MAX, le=INT64_MAX), who: Principal = auth
    ) -> DatasetRecord:
        who.require("read")
        return store.get_dataset(name, version)

    @router.get("/datasets/{name}/latest", response_model=DatasetRecord)
    def get_dataset_latest(name: str, who: Principal = auth) -> DatasetRecord:
        who.require("read")
        return store.get_dataset(name)

    @router.get("/dataset-ids/{dataset_id}", response_model=DatasetRecord)
    def get_dataset_by_id(dataset_id: str, who: Principal = auth) -> DatasetRecord:
        who.require("read")
        return store.get_dataset_by_id(dataset_id)

    # -- lineage ---------------------------------------------------------------------------------
    @router.post("/dataset-uses", status_code=204)
    def record_dataset_uses(body: list[DatasetUseIn], who: Principal = auth) -> None:
        if len(body) > MAX_USES:
            raise InvalidInputError(f"At most {MAX_USES} dataset uses per request, got {len(body)}.")
        runs = {use.run_id for use in body}
        if who.scope == "run":
            if any(use.direction == "input" for use in body):
                # Inputs are recorded by whoever submitted the run (or its scheduler) before the job
                # starts; they decide which datastore files the run token may read (server/run_inputs.py).
                raise forbidden(
                    "A run token may record only the outputs of its run family; its inputs were recorded "
                    "when the run was submitted."
                )
            for run_id in sorted(runs):
                who.family_check(store, run_id, write=True)
        else:
            who.require("write")
        store.record_dataset_uses([use.record() for use in body])

    @router.get("/dataset-uses", response_model=list[DatasetUse])
    def list_dataset_uses(
        run_id: str | None = None,
        dataset_id: str | None = None,
        dataset_name: str | None = None,
        who: Principal = auth,
    ) -> list[DatasetUse]:
        who.require("read")
        return store.list_dataset_uses(run_id=run_id, dataset_id=dataset_id, dataset_name=dataset_name)

    return router
