"""Wire the studio into the server's FastAPI app: templates, static files, pages and live data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runyard import __version__
from runyard.core.workspace import Workspace
from runyard.errors import RunyardError
from runyard.server.errors import STATUS_BY_ERROR
from runyard.store import ArtifactStore, SqlStore
from runyard.studio import dataset_views, views
from runyard.studio.auth import LoginRequired, StudioForbidden, login_url

HERE = Path(__file__).parent
ERROR_TITLES = {404: "Not found", 400: "Cannot show this", 409: "Cannot do this now", 503: "Not available"}


class NoFraming:
    """X-Frame-Options: DENY on every response, so no other site can frame a studio page (and its
    Clone button) to trick a click."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-frame-options", b"DENY"))
            await send(message)

        await self.app(scope, receive, send_with_header if scope["type"] == "http" else send)


def plotly_js() -> Path:
    """plotly.min.js from the installed `plotly` package: the studio ships no copy of its own."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def make_templates(auth: bool, workspace_name: str) -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.autoescape = True  # every name, tag and log line users wrote is escaped
    env.globals.update(version=__version__, auth=auth, workspace=workspace_name)
    env.filters.update(
        when=views.fmt_time,
        duration=views.fmt_duration,
        value=views.fmt_value,
        size=views.fmt_size,
        hash=dataset_views.hash_prefix,
        where=dataset_views.file_where,
    )
    env.globals.update(shown_status=views.shown_status, run_duration=views.run_duration)
    return templates


def install_studio(
    app: FastAPI, workspace: Workspace, store: SqlStore, artifacts: ArtifactStore, *, auth: bool
) -> None:
    from runyard.studio.api import studio_api_router
    from runyard.studio.pages import studio_page_router
    from runyard.studio.published_pages import published_page_router

    templates = make_templates(auth, workspace.name)
    app.mount("/studio/static", StaticFiles(directory=HERE / "static"), name="studio-static")

    @app.get("/studio/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> Response:
        return FileResponse(
            plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    app.add_middleware(NoFraming)
    app.include_router(studio_page_router(workspace, store, artifacts, templates, auth))
    app.include_router(studio_api_router(store, artifacts, auth))
    app.include_router(published_page_router(workspace, store, templates, auth))

    def error_page(request: Request, status: int, title: str, message: str) -> Response:
        context: dict[str, Any] = {"title": title, "message": message, "status": status}
        return templates.TemplateResponse(request, "error.html", context, status_code=status)

    @app.exception_handler(LoginRequired)
    async def _login(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(login_url(exc.next_url), status_code=303)

    @app.exception_handler(StudioForbidden)
    async def _forbidden(request: Request, exc: StudioForbidden) -> Response:
        return error_page(request, 403, "Not allowed", exc.message)

    def html_error(request: Request, exc: RunyardError) -> Response | None:
        """An HTML page for errors on studio pages; None for API routes, which answer JSON."""
        if request.url.path.startswith(("/api/", "/studio/api/", "/ajax-api/", "/pipelines/")):
            return None
        status = next(status for kind, status, _ in STATUS_BY_ERROR if isinstance(exc, kind))  # as the API
        return error_page(request, status, ERROR_TITLES.get(status, "Cannot do this"), str(exc))

    app.state.html_error = html_error
