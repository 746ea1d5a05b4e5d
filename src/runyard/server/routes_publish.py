"""REST routes for published pipelines, pipeline endpoints and schedules (the Store protocol's methods).

Being filled in by issue 15's store work; the router is wired into server/app.py already.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from runyard.server.errors import ERROR_RESPONSES
from runyard.store import SqlStore


def publish_router(store: SqlStore, principal: Any) -> APIRouter:
    return APIRouter(prefix="/api/v1", responses=ERROR_RESPONSES, tags=["publishing"])
