"""Token management (admin scope) and run tokens (issued to a run's process by whoever submits it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from runyard.server.auth import RUN_TOKEN_SECONDS, Principal, _compute_targets, create_token
from runyard.server.errors import ERROR_RESPONSES, forbidden
from runyard.store import SqlStore


class TokenIn(BaseModel):
    scope: str = Field(pattern="^(admin|write|read)$")
    name: str | None = Field(default=None, max_length=255)
    expires_in: float | None = Field(default=None, gt=0, le=10 * 365 * 24 * 3600)
    compute: list[str] = Field(
        default_factory=list, max_length=100, description='Compute targets it may submit code to ("*": all).'
    )


class TokenOut(BaseModel):
    token_id: str
    scope: str
    name: str | None = None
    run_id: str | None = None
    created_time: float
    expires_time: float | None = None
    revoked_time: float | None = None
    compute: list[str] = Field(default_factory=list)


class NewToken(TokenOut):
    token: str = Field(description="The secret token. It is shown only in this response.")


def token_router(store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["auth"])
    auth = Depends(principal)

    @router.post("/tokens", response_model=NewToken)
    def create(body: TokenIn, who: Principal = auth) -> NewToken:
        who.require("admin")
        _check_compute_grant(who, body.compute)
        secret, record = create_token(
            store, body.scope, name=body.name, expires_in=body.expires_in, compute=body.compute
        )
        return NewToken(token=secret, **_public(record))

    @router.get("/tokens", response_model=list[TokenOut])
    def list_tokens(who: Principal = auth) -> list[TokenOut]:
        who.require("admin")
        return [TokenOut(**_public(r)) for r in store.list_tokens()]

    @router.delete("/tokens/{token_id}", status_code=204)
    def revoke(token_id: str, who: Principal = auth) -> None:
        who.require("admin")
        store.revoke_token(token_id)

    @router.post("/runs/{run_id}/token", response_model=NewToken)
    def run_token(run_id: str, who: Principal = auth) -> NewToken:
        """A short-lived token that can write only to this run and its children."""
        who.require_not_run_token("Issuing tokens")
        who.require("write")
        store.get_run(run_id)
        secret, record = create_token(store, "run", run_id=run_id, expires_in=RUN_TOKEN_SECONDS)
        return NewToken(token=secret, **_public(record))

    return router


def _check_compute_grant(who: Principal, compute: list[str]) -> None:
    """An admin hands out only the compute it holds itself: "admin alone never runs code", so an admin
    token without compute cannot mint one that has it. `runyard token create --compute` (direct access
    to the database, i.e. the workspace's owner) stays the way to grant compute from nothing."""
    wanted = _compute_targets(compute)  # a malformed name is a 400 whoever asks
    if who.auth_off or "*" in who.compute:
        return
    missing = sorted(set(wanted) - set(who.compute))
    if missing:
        raise forbidden(
            f"This token may not grant compute {', '.join(map(repr, missing))}: a token can only grant compute "
            f"targets it holds itself (it holds {', '.join(who.compute) or 'none'}). The workspace's owner grants "
            "compute with `runyard token create --scope write --compute TARGET` on the server's machine."
        )


def _public(record: Any) -> dict[str, Any]:
    public = {k: getattr(record, k) for k in TokenOut.model_fields}
    public["compute"] = list(record.compute)
    return public
