"""The FastAPI application: one workspace, served over HTTP."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from runyard import __version__
from runyard.core.workspace import Workspace
from runyard.errors import InvalidInputError
from runyard.server import errors, routes_mlflow
from runyard.server.auth import principal_dependency
from runyard.server.routes_artifacts import artifact_router
from runyard.server.routes_mlflow import mlflow_router
from runyard.server.routes_store import store_router
from runyard.server.routes_tokens import token_router
from runyard.store import ArtifactStore, SqlStore

MAX_JSON_BYTES = 64 * 1024 * 1024


def create_app(workspace: Workspace, *, auth: bool = False) -> FastAPI:
    store, artifacts = workspace.store, workspace.artifacts
    if not isinstance(store, SqlStore) or not isinstance(artifacts, ArtifactStore):
        raise InvalidInputError(
            f"The server serves a workspace that holds its own database and files; {workspace.tracking_uri} "
            "is itself a server."
        )
    app = FastAPI(
        title="runyard",
        version=__version__,
        description="runyard's tracking API: runs, metrics, artifacts, models; MLflow-compatible routes.",
    )
    errors.install(app)
    routes_mlflow.install(app)
    principal = principal_dependency(store, auth)
    app.include_router(store_router(store, principal))
    app.include_router(artifact_router(store, artifacts, principal))
    app.include_router(token_router(store, principal))
    app.include_router(mlflow_router(store, principal))

    @app.middleware("http")
    async def limit_json_bodies(request, call_next):
        length = request.headers.get("content-length")
        is_file = request.url.path.startswith("/api/v1/artifacts")
        if length and length.isdigit() and int(length) > MAX_JSON_BYTES and not is_file:
            return JSONResponse(
                errors.error_body(
                    "PayloadTooLarge",
                    f"Request bodies are limited to {MAX_JSON_BYTES} bytes; send metrics in batches.",
                ),
                status_code=413,
            )
        return await call_next(request)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {
            "status": "ok",
            "version": __version__,
            "workspace": workspace.name,
            "auth": "on" if auth else "off",
        }

    app.state.workspace = workspace
    return app
