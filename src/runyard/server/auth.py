"""Tokens and what each may do.

A token reads `ry_<id>_<secret>`; the store keeps the id, the sha256 of the secret, a scope and an
optional expiry. Scopes nest: read < write < admin. A run token (scope "run") belongs to one run: it
may write to that run and its descendants, read that family and the workspace's models and
experiments, and nothing else — a job that tries a management operation is told so.

Running code is a separate grant: a token's `compute` names the compute targets (or "*") it may submit
code to. read/write/admin alone never run anything, and run tokens never hold compute (docs/security.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from runyard.errors import InvalidInputError, RunNotFound
from runyard.server.errors import authentication_failed, forbidden, invalid_token
from runyard.store import SqlStore, TokenRecord

SCOPES = ("read", "write", "admin")
RUN_TOKEN_SECONDS = 7 * 24 * 3600  # at most; a run token also stops working shortly after its run ends
RUN_TOKEN_GRACE_SECONDS = 300
TOKEN_RE = re.compile(r"^ry_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    store: SqlStore,
    scope: str,
    *,
    name: str | None = None,
    expires_in: float | None = None,
    run_id: str | None = None,
    compute: tuple[str, ...] | list[str] = (),
) -> tuple[str, TokenRecord]:
    """Returns (the token to hand out — shown once, never stored — and its record)."""
    compute = _compute_targets(compute)
    if compute and scope not in ("write", "admin"):
        raise InvalidInputError(
            f"--compute needs a 'write' or 'admin' token (submitting creates runs); this one is {scope!r}."
            if scope != "run"
            else "Run tokens can never hold compute: a job must not be able to start code elsewhere."
        )
    if scope not in (*SCOPES, "run"):
        raise InvalidInputError(f"Unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    if (scope == "run") != (run_id is not None):
        raise InvalidInputError("A run token needs a run_id, and only run tokens take one.")
    if expires_in is not None and expires_in <= 0:
        raise InvalidInputError("expires_in must be a positive number of seconds.")
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    now = time.time()
    record = TokenRecord(
        token_id=token_id,
        scope=scope,
        secret_hash=_hash(secret),
        created_time=now,
        name=name,
        run_id=run_id,
        expires_time=now + expires_in if expires_in else None,
        compute=compute,
    )
    store.create_token(record)
    return f"ry_{token_id}_{secret}", record


def _compute_targets(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Clean compute target names: distinct, no empty or comma-holding names ("*" means every target)."""
    cleaned: list[str] = []
    for name in names:
        name = name.strip()
        if not name or "," in name or len(name) > 255 or any(ord(ch) < 32 for ch in name):
            raise InvalidInputError(
                f"Compute target {name!r} is not a valid name; give a target name such as 'local', or '*'."
            )
        if name not in cleaned:
            cleaned.append(name)
    return ("*",) if "*" in cleaned else tuple(cleaned)


@dataclass(frozen=True)
class Principal:
    scope: str  # admin | write | read | run
    token_id: str | None = None
    run_id: str | None = None
    compute: tuple[str, ...] = ()  # compute targets this principal may submit code to ("*": all)

    @property
    def auth_off(self) -> bool:
        """True for the stand-in principal of a server started without --auth."""
        return self.token_id is None

    def stamp(self) -> dict[str, Any]:
        """What the server records as RunRecord.data["submittedBy"]: schedulers trust only this."""
        if self.auth_off:
            return {"auth": "off"}
        return {"token": self.token_id, "scope": self.scope}

    def may_run_on(self, target: str) -> bool:
        """Whether this principal may submit code to `target` (always, when the server has no auth)."""
        if self.auth_off:
            return True
        return self.scope != "run" and ("*" in self.compute or target in self.compute)

    def require(self, needed: str) -> None:
        """Raise 403 unless this principal holds `needed` (read, write or admin)."""
        if self.scope == "run":
            if needed == "admin":
                raise forbidden(
                    "This is a run token: jobs may write to their own run and its children only, so management "
                    "operations (tokens, compute, other runs) are not allowed from a job. Use a workspace token "
                    "with the 'admin' scope outside the job."
                )
            return  # read/write of the run's own family is checked per run, below
        if SCOPES.index(self.scope) < SCOPES.index(needed):
            raise forbidden(
                f"This operation needs a token with the '{needed}' scope; this token has '{self.scope}'."
            )

    def family_check(self, store: SqlStore, run_id: str, *, write: bool) -> None:
        """For run tokens: `run_id` must be the token's run or a descendant (or, to read, an ancestor)."""
        if self.scope != "run":
            self.require("write" if write else "read")
            return
        assert self.run_id is not None
        current: str | None = run_id
        while current is not None:
            if current == self.run_id:
                return
            try:
                current = store.get_run(current).parent_id
            except RunNotFound:
                break
        if not write:
            current = self.run_id
            while current is not None:
                if current == run_id:
                    return
                current = store.get_run(current).parent_id
        raise forbidden(
            f"This run token belongs to run {self.run_id} and may not {'write to' if write else 'read'} run "
            f"{run_id}: jobs can only touch their own run and its children."
        )

    def require_not_run_token(self, what: str) -> None:
        if self.scope == "run":
            raise forbidden(
                f"{what} is not allowed with a run token (from inside a job). Use a workspace token."
            )


ADMIN = Principal("admin")


def authenticate(store: SqlStore, header: str | None) -> Principal:
    if header is None:
        raise authentication_failed()
    kind, _, value = header.partition(" ")
    match = TOKEN_RE.match(value.strip()) if kind.lower() == "bearer" else None
    if match is None:
        raise authentication_failed()
    record = store.get_token(match.group(1))
    now = time.time()
    if (
        record is None
        or not hmac.compare_digest(record.secret_hash, _hash(match.group(2)))
        or record.revoked_time is not None
        or (record.expires_time is not None and record.expires_time < now)
    ):
        raise invalid_token()
    if record.run_id is not None and _run_ended_long_ago(store, record.run_id, now):
        raise invalid_token()  # a run token lives as long as its run, plus a grace period for the wrap-up
    return Principal(
        record.scope, record.token_id, record.run_id, record.compute if record.run_id is None else ()
    )


def _run_ended_long_ago(store: SqlStore, run_id: str, now: float) -> bool:
    try:
        run = store.get_run(run_id)
    except RunNotFound:
        return True
    return run.end_time is not None and now - run.end_time > RUN_TOKEN_GRACE_SECONDS


def principal_dependency(store: SqlStore, enabled: bool):
    def dependency(request: Request) -> Principal:
        if not enabled:
            return ADMIN
        cached = getattr(request.state, "principal", None)
        if cached is None:
            cached = authenticate(store, request.headers.get("authorization"))
            request.state.principal = cached
        return cached

    return dependency
