"""The FastAPI application: one workspace, served over HTTP."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runyard import __version__, config
from runyard.core.workspace import Workspace
from runyard.errors import InvalidInputError
from runyard.server import errors, routes_mlflow
from runyard.server.auth import authenticate, principal_dependency
from runyard.server.routes_artifacts import artifact_router
from runyard.server.routes_compute import compute_router
from runyard.server.routes_data import data_router
from runyard.server.routes_env import environment_router
from runyard.server.routes_mlflow import mlflow_router
from runyard.server.routes_mlflow_artifacts import mlflow_artifact_router
from runyard.server.routes_pipeline_submit import pipeline_submit_router
from runyard.server.routes_publish import publish_router
from runyard.server.routes_store import store_router
from runyard.server.routes_tokens import token_router
from runyard.server.write_gate import FILE_ROUTE_PREFIXES, WriteGate
from runyard.store import ArtifactStore, SqlStore
from runyard.studio import install_studio

MAX_JSON_BYTES = 64 * 1024 * 1024
TOO_LARGE = f"Request bodies are limited to {MAX_JSON_BYTES} bytes; send metrics in batches."


class JsonBodyLimit:
    """413 for request bodies (files excepted) over MAX_JSON_BYTES, whether the size is declared in
    Content-Length or only known while the body streams in (Transfer-Encoding: chunked)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(FILE_ROUTE_PREFIXES):
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > MAX_JSON_BYTES:
            response = JSONResponse(errors.error_body("PayloadTooLarge", TOO_LARGE), status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_JSON_BYTES:
                # an HTTPException: FastAPI lets it through its body parsing to errors.install's handler
                raise HTTPException(413, TOO_LARGE)
            return message

        await self.app(scope, limited_receive, send)


class AuthBeforeBody:
    """Check the token of every /api/ request before anything reads its body: FastAPI parses a JSON body
    before it runs a route's dependencies, so without this a stranger's 64 MiB body would be read (and
    held) only to be refused. The principal is left in the request state for the route's dependency."""

    def __init__(self, app: ASGIApp, store: SqlStore) -> None:
        self.app, self.store = app, store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            header = Headers(scope=scope).get("authorization")
            try:
                principal = await run_in_threadpool(authenticate, self.store, header)
            except errors.HTTPError as exc:
                extra = {"WWW-Authenticate": "Bearer", "Connection": "close"}  # the body is never read
                await JSONResponse(exc.body, status_code=exc.status, headers=extra)(scope, receive, send)
                return
            scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def create_app(workspace: Workspace, *, auth: bool = False, host_is_compute: bool = False) -> FastAPI:
    """The app for one workspace. `host_is_compute` says this machine may run pipelines that the studio
    submits (a scheduler started from an HTTP request); without it such requests are refused."""
    store, artifacts = workspace.store, workspace.artifacts
    if not isinstance(store, SqlStore) or not isinstance(artifacts, ArtifactStore):
        raise InvalidInputError(
            f"The server serves a workspace that holds its own database and files; {workspace.tracking_uri} "
            "is itself a server."
        )
    dependencies = []
    if store.engine.dialect.name == "sqlite":  # one writer at a time: see server/write_gate.py
        store.lock_wait_seconds = config.server_write_wait_seconds()
        dependencies.append(Depends(WriteGate(store.lock_wait_seconds)))
    app = FastAPI(
        title="runyard",
        version=__version__,
        description="runyard's tracking API: runs, metrics, artifacts, models; MLflow-compatible routes.",
        dependencies=dependencies,
    )
    errors.install(app)
    routes_mlflow.install(app)
    principal = principal_dependency(store, auth)
    app.include_router(store_router(store, principal))
    app.include_router(compute_router(store, principal))
    app.include_router(data_router(store, principal))
    app.include_router(environment_router(store, principal))
    app.include_router(artifact_router(store, artifacts, principal))
    app.include_router(token_router(store, principal))
    app.include_router(mlflow_router(store, principal))
    app.include_router(mlflow_artifact_router(store, artifacts, principal))
    app.include_router(publish_router(workspace, store, principal))
    app.include_router(pipeline_submit_router(workspace, store, principal))
    install_studio(app, workspace, store, artifacts, auth=auth)

    app.add_middleware(JsonBodyLimit)
    if auth:
        app.add_middleware(AuthBeforeBody, store=store)

    @app.get("/health", tags=["meta"])
    async def health() -> dict[str, str]:  # async: answered in the event loop, whatever the threads do
        return {
            "status": "ok",
            "version": __version__,
            "workspace": workspace.name,
            "auth": "on" if auth else "off",
        }

    app.state.workspace = workspace
    app.state.host_is_compute = host_is_compute
    return app
