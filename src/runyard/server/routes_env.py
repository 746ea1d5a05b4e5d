"""REST routes for registered environments (the Store protocol's environment methods).

Who may do what:
- reading (list, get by name and version): any valid token, run tokens included (a job may look up the
  environment it names);
- registering: an 'admin' token, or a 'write' token that holds a compute grant; never a run token. An
  environment is code that runs: its requirements are installed (their build scripts run) and its interpreter
  started for every run that names it, on the machine of whoever submits that run. A principal that may not
  run code itself (a plain 'write' token, a job) must not be able to change what another principal's runs
  execute, so registering needs the same right as submitting code (docs/security.md).

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
        if not who.auth_off and who.scope != "admin" and not who.compute:
            raise forbidden(
                "Registering an environment needs a token that may run code: an environment is code that "
                "every run naming it installs and starts. Use an 'admin' token, or a 'write' token with a "
                "compute grant (runyard token create --scope write --compute local)."
            )
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
