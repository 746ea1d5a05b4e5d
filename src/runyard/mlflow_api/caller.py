"""Who is calling: the door decides (the server's token, or the local user of an embedded workspace),
and the handlers ask it before they read or write. Keeping this a protocol keeps the server's auth code
out of this package."""

from __future__ import annotations

from typing import Any, Protocol

from runyard.store import SqlStore


class Caller(Protocol):
    #: admin | write | read | run (a job's run token)
    scope: str
    #: for a run token: the run it belongs to
    run_id: str | None

    def require(self, needed: str) -> None:
        """Refuse unless the caller holds `needed` (read, write or admin)."""

    def require_not_run_token(self, what: str) -> None:
        """Refuse `what` from a job's run token."""

    def family_check(self, store: SqlStore, run_id: str, *, write: bool) -> None:
        """Refuse unless the caller may read (write) run `run_id`."""

    def check_run_write(
        self, store: SqlStore, run_id: str, *, status: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        """Refuse a status change or data patch the server's trust rules forbid (server/run_guard.py)."""

    def stamp(self) -> dict[str, Any]:
        """What a created run records as data["submittedBy"]."""


class LocalCaller:
    """The user of an embedded workspace: the workspace folder is theirs, so everything is allowed."""

    scope = "admin"
    run_id: str | None = None

    def require(self, needed: str) -> None:
        return None

    def require_not_run_token(self, what: str) -> None:
        return None

    def family_check(self, store: SqlStore, run_id: str, *, write: bool) -> None:
        return None

    def check_run_write(
        self, store: SqlStore, run_id: str, *, status: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        return None

    def stamp(self) -> dict[str, Any]:
        return {"auth": "local"}
