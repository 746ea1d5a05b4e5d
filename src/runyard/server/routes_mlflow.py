"""The server's door to MLflow's tracking REST API: one route per method under `/api/2.0/mlflow/`
(and the `/api/2.0/preview/mlflow/` and `/ajax-api/2.0/mlflow/` spellings MLflow's server also answers)
that reads the request, builds an `MlflowContext` and hands it to the handlers in runyard.mlflow_api.

What the door adds to the handlers:
- the caller: the server's Principal (token scope, run token family) and the pipeline trust rules
  (server/run_guard.py), with refusals in MLflow's shape (403 PERMISSION_DENIED);
- artifact URIs: `mlflow-artifacts:/<folder>`, served by routes_mlflow_artifacts.py;
- JSON as MLflow's server writes it: NaN and +-infinity as the strings "NaN", "Infinity", "-Infinity";
- every error under these prefixes in MLflow's shape `{"error_code", "message"}` (install()), including
  the server's own 401/403/413/503 answers, so the MLflow client raises its typed exceptions.

Handlers run in the threadpool like every other sync route, and the write gate (write_gate.py) applies:
it lets GETs and `.../search` POSTs through and queues the rest.
"""

from __future__ import annotations

import json
import math
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runyard.mlflow_api.dispatch import MlflowContext, dispatch
from runyard.mlflow_api.errors import MlflowError
from runyard.server.auth import Principal
from runyard.server.errors import HTTPError
from runyard.server.run_guard import check_run_write
from runyard.store import SqlStore

PREFIXES = ("/api/2.0/mlflow", "/api/2.0/preview/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS_PREFIX = "/api/2.0/mlflow-artifacts"
METHODS = ["GET", "POST", "PATCH", "DELETE"]


def _denied(exc: HTTPError) -> MlflowError:
    error = exc.body.get("error") if isinstance(exc.body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    code = "UNAUTHENTICATED" if exc.status == 401 else "PERMISSION_DENIED"
    return MlflowError(code, str(message or exc.body), status=exc.status)


class ServerCaller:
    """The mlflow_api Caller over the server's Principal; its refusals come out in MLflow's shape."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.scope = principal.scope
        self.run_id = principal.run_id

    def require(self, needed: str) -> None:
        try:
            self.principal.require(needed)
        except HTTPError as exc:
            raise _denied(exc) from None

    def require_not_run_token(self, what: str) -> None:
        try:
            self.principal.require_not_run_token(what)
        except HTTPError as exc:
            raise _denied(exc) from None

    def family_check(self, store: SqlStore, run_id: str, *, write: bool) -> None:
        try:
            self.principal.family_check(store, run_id, write=write)
        except HTTPError as exc:
            raise _denied(exc) from None

    def check_run_write(
        self, store: SqlStore, run_id: str, *, status: str | None = None, data: dict[str, Any] | None = None
    ) -> None:
        try:
            check_run_write(store, self.principal, run_id, status=status, data=data)
        except HTTPError as exc:
            raise _denied(exc) from None

    def stamp(self) -> dict[str, Any]:
        return self.principal.stamp()


def artifact_uri(folder: str) -> str:
    return "mlflow-artifacts:/" + folder.strip("/")


def proto_json(value: Any) -> Any:
    """NaN and infinities as MLflow's server writes them (protobuf's JSON), everything else as is."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: proto_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [proto_json(v) for v in value]
    return value


async def request_body(request: Request) -> dict[str, Any]:
    """The request's parameters: query parameters for GET (a repeated key becomes a list), else the
    JSON body. A body that is not a JSON object counts as empty, as on MLflow's server (the handler
    then names the missing parameter)."""
    if request.method == "GET":
        out: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in out:
                previous = out[key]
                out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                out[key] = value
        return out
    raw = await request.body()
    try:
        parsed = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def mlflow_router(store: SqlStore, principal: Any) -> APIRouter:
    router = APIRouter(tags=["mlflow"])
    auth = Depends(principal)

    async def door(path: str, request: Request, who: Principal = auth) -> Response:
        ctx = MlflowContext(store=store, caller=ServerCaller(who), artifact_uri=artifact_uri)
        body = await request_body(request)
        answer = await run_in_threadpool(dispatch, ctx, request.method, path, body)
        return JSONResponse(proto_json(answer))

    for prefix in PREFIXES:
        for method in METHODS:  # one operation per method: OpenAPI operation ids stay unique
            router.add_api_route(
                prefix + "/{path:path}",
                door,
                methods=[method],
                include_in_schema=prefix == PREFIXES[0],
                operation_id=f"mlflow_{method.lower()}" if prefix == PREFIXES[0] else None,
            )
    return router


# -- errors in MLflow's shape ---------------------------------------------------------------------------
#: What a runyard-shaped error's HTTP status becomes as an MLflow error code.
CODE_OF_STATUS = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    405: "ENDPOINT_NOT_FOUND",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "RESOURCE_EXHAUSTED",
    422: "INVALID_PARAMETER_VALUE",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


def is_mlflow_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in (*PREFIXES, ARTIFACTS_PREFIX))


def mlflow_error_body(status: int, body: bytes) -> tuple[int, bytes]:
    """A runyard error response rewritten as MLflow's `{"error_code", "message"}` (422 becomes 400)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error_code" in payload:
        return status, body
    error = payload.get("error") if isinstance(payload, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not message and isinstance(payload, dict):  # auth's shape: {"code", "statusCode", "details": [...]}
        details = payload.get("details")
        if isinstance(details, list) and details and isinstance(details[0], dict):
            message = details[0].get("message")
        message = message or payload.get("message")
    if not message:
        message = body.decode("utf-8", "replace").strip() or f"HTTP {status}"
    code = CODE_OF_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    status = 400 if status == 422 else status
    return status, json.dumps({"error_code": code, "message": message}).encode()


class MlflowErrorShape:
    """Rewrites every error answered under the MLflow prefixes into MLflow's shape, whoever produced
    it: the handlers' MlflowErrors already are; the write gate's 503, the body limit's 413, auth's
    401/403 and FastAPI's own errors are runyard-shaped and get rewritten here."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_mlflow_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def shaped_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            status, body = mlflow_error_body(start["status"], b"".join(chunks))
            headers = MutableHeaders(raw=list(start["headers"]))
            headers["content-length"] = str(len(body))
            headers["content-type"] = "application/json"
            await send({"type": "http.response.start", "status": status, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, shaped_send)


def install(app: Any) -> None:
    """MLflow's error shape for MlflowErrors, and for every other error under the MLflow prefixes.

    The rewriting layer wraps the whole middleware stack (whenever Starlette builds it), so that it also
    reaches what middleware answers on its own: auth's 401 (app.AuthBeforeBody) and the body limit's
    413 (app.JsonBodyLimit), whatever order create_app adds them in."""

    @app.exception_handler(MlflowError)
    async def _mlflow_error(_request: Request, exc: MlflowError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: MlflowErrorShape(build())
