"""REST routes for named compute targets (the Store protocol's compute methods).

Creating, changing and deleting a target is workspace management: it needs an 'admin' token (run
tokens never: a job must not reshape where code runs). Reading targets needs 'read'; a run token may
read them too, since v1 scripts look their target up (`ComputeTarget(ws, name)`) from inside a job.
Who may *run code* on a target is a separate grant (a token's compute list; docs/security.md).

Bodies are read strictly (ComputeTargetIn): pydantic's lax mode would turn `true`, `"2"` or `2.0` into a
node count before `validate_compute_target` sees it, so REST would store what the Python API and the
SQL stores refuse.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from runyard.errors import InvalidInputError
from runyard.server.auth import Principal
from runyard.server.errors import ERROR_RESPONSES
from runyard.store import ComputeTargetRecord, SqlStore


class ComputeTargetIn(BaseModel):
    """A ComputeTargetRecord as a request body, with no coercion: each field must arrive as its own type."""

    model_config = ConfigDict(strict=True)

    name: str
    kind: str
    vm_size: str = ""
    min_nodes: int = 0
    max_nodes: int = 1
    created_time: float = 0.0
    data: dict[str, Any] = Field(default_factory=dict)

    def record(self) -> ComputeTargetRecord:
        return ComputeTargetRecord(**self.model_dump())


def compute_router(store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["compute"])
    auth = Depends(principal)

    @router.post("/compute", response_model=ComputeTargetRecord)
    def create_compute_target(target: ComputeTargetIn, who: Principal = auth) -> ComputeTargetRecord:
        who.require("admin")
        return store.create_compute_target(target.record())

    @router.put("/compute/{name}", response_model=ComputeTargetRecord)
    def update_compute_target(
        name: str, target: ComputeTargetIn, who: Principal = auth
    ) -> ComputeTargetRecord:
        who.require("admin")
        if target.name != name:
            raise InvalidInputError(
                f"The URL names compute target {name!r} but the body names {target.name!r}; send the same name."
            )
        return store.update_compute_target(target.record())

    @router.get("/compute/{name}", response_model=ComputeTargetRecord)
    def get_compute_target(name: str, who: Principal = auth) -> ComputeTargetRecord:
        who.require("read")
        return store.get_compute_target(name)

    @router.get("/compute", response_model=list[ComputeTargetRecord])
    def list_compute_targets(who: Principal = auth) -> list[ComputeTargetRecord]:
        who.require("read")
        return store.list_compute_targets()

    @router.delete("/compute/{name}", status_code=204)
    def delete_compute_target(name: str, who: Principal = auth) -> None:
        who.require("admin")
        store.delete_compute_target(name)

    return router
