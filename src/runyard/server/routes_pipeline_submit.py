"""v1's REST door to published pipelines and pipeline endpoints (POST with a bearer token starts a run).

Being filled in by issue 15's server work; the router is wired into server/app.py already.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from runyard.core.workspace import Workspace
from runyard.store import SqlStore


def pipeline_submit_router(workspace: Workspace, store: SqlStore, principal: Any) -> APIRouter:
    return APIRouter(tags=["pipelines"])
