"""REST routes for registered environments (the Store protocol's environment methods).

Who may do what:
- reading (list, get by name and version): any valid token, run tokens included (a job may look up the
  environment it names);
- registering: a workspace token with the 'write' scope, never a run token. An environment is code that
  runs: its requirements are installed and its interpreter started for every run that names it, so a job
  that could register a new version of a shared environment could run its own code in every later run.

Bodies are read strictly (pydantic's strict mode) and the definition is checked by store/env_rules.py, the
same rules SqlStore applies, so REST stores exactly what the SQL stores accept.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict

from runyard.server.auth import Principal
from runyard.server.errors import ERROR_RESPONSES, forbidden
from runyard.store import SqlStore
from runyard.store.records import EnvironmentRecord

INT64_MAX = 2**63 - 1


class EnvironmentIn(BaseModel):
    """A registration: the name, v1's environment JSON and an optional description."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str
    definition: dict[str, Any]
    description: str | None = None


def environment_router(store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["environments"])
    auth = Depends(principal)

    @router.get("/environments", response_model=list[EnvironmentRecord])
    def list_environments(name: str | None = None, who: Principal = auth) -> list[EnvironmentRecord]:
        who.require("read")
        return store.list_environments(name)

    @router.post("/environments", response_model=EnvironmentRecord)
    def register_environment(body: EnvironmentIn, who: Principal = auth) -> EnvironmentRecord:
        if who.scope == "run":
            raise forbidden(
                "A run token cannot register environments: an environment is code that every run naming it "
                "installs and starts. Register it outside the job with a workspace token that has the "
                "'write' scope."
            )
        who.require("write")
        return store.register_environment(body.name, body.definition, body.description)

    @router.get("/environments/{name}/latest", response_model=EnvironmentRecord)
    def get_environment_latest(name: str, who: Principal = auth) -> EnvironmentRecord:
        who.require("read")
        return store.get_environment(name)

    @router.get("/environments/{name}/versions/{version}", response_model=EnvironmentRecord)
    def get_environment_version(
        name: str, version: int = Path(..., ge=-INT64_MAX, le=INT64_MAX), who: Principal = auth
    ) -> EnvironmentRecord:
        who.require("read")
        return store.get_environment(name, version)

    return router
