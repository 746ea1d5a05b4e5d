"""Wire the studio into the server's FastAPI app: templates, static files, pages and live data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from runyard import __version__
from runyard.core.workspace import Workspace
from runyard.errors import InvalidInputError, NotFoundError, RunyardError
from runyard.store import SqlStore
from runyard.studio import views
from runyard.studio.auth import LoginRequired, StudioForbidden, login_url

HERE = Path(__file__).parent


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
    )
    env.globals.update(shown_status=views.shown_status, run_duration=views.run_duration)
    return templates


def install_studio(app: FastAPI, workspace: Workspace, store: SqlStore, *, auth: bool) -> None:
    from runyard.studio.api import studio_api_router
    from runyard.studio.pages import studio_page_router

    templates = make_templates(auth, workspace.name)
    app.mount("/studio/static", StaticFiles(directory=HERE / "static"), name="studio-static")

    @app.get("/studio/plotly.min.js", include_in_schema=False)
    def plotly_bundle() -> Response:
        return FileResponse(
            plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    app.include_router(studio_page_router(workspace, store, templates, auth))
    app.include_router(studio_api_router(workspace, store, auth))

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
        if request.url.path.startswith(("/api/", "/studio/api/", "/ajax-api/")):
            return None
        if isinstance(exc, NotFoundError):
            return error_page(request, 404, "Not found", str(exc))
        if isinstance(exc, InvalidInputError):
            return error_page(request, 400, "Cannot show this", str(exc))
        return error_page(request, 409, "Cannot do this now", str(exc))

    app.state.html_error = html_error
