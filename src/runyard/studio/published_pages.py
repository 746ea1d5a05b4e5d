"""Studio pages for published pipelines, pipeline endpoints and schedules.

Being filled in by issue 15's studio work; the router is wired into studio/app.py already.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.templating import Jinja2Templates

from runyard.core.workspace import Workspace
from runyard.store import SqlStore


def published_page_router(
    workspace: Workspace, store: SqlStore, templates: Jinja2Templates, auth: bool
) -> APIRouter:
    return APIRouter(include_in_schema=False)
