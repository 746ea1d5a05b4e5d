"""Every error the server sends is JSON. Auth errors use the exact shapes Azure ML clients know."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from runyard import errors as e

INVALID_TOKEN_BODY = {
    "code": "Unauthorized",
    "statusCode": 401,
    "message": "Unauthorized",
    "details": [
        {
            "code": "InvalidOrExpiredToken",
            "message": "The request token was either invalid or expired. Please try again with a valid token.",
        }
    ],
}
AUTH_FAILED_BODY = {"error": {"code": "AuthenticationFailed", "message": "Authentication failed."}}


#: What a 503 for a busy database asks clients to wait before trying again (store/rest_http.py honours it).
BUSY_RETRY_AFTER_SECONDS = 1


class HTTPError(Exception):
    """An error response with a fixed status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


def invalid_token() -> HTTPError:
    return HTTPError(401, INVALID_TOKEN_BODY)


def authentication_failed() -> HTTPError:
    return HTTPError(401, AUTH_FAILED_BODY)


def forbidden(message: str) -> HTTPError:
    return HTTPError(403, {"error": {"code": "AuthorizationFailed", "message": message}})


def error_body(code: str, message: str, kind: str | None = None, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if kind:
        body["error"]["type"] = kind
    if details is not None:
        body["error"]["details"] = details
    return body


def store_busy(message: str) -> HTTPError:
    """503 + Retry-After: the request was not carried out, and the same request later may well be."""
    return HTTPError(
        503,
        error_body("StoreBusy", message, e.StoreBusy.__name__),
        {"Retry-After": str(BUSY_RETRY_AFTER_SECONDS)},
    )


STATUS_BY_ERROR: list[tuple[type[e.RunyardError], int, str]] = [
    (e.NotFoundError, 404, "NotFound"),
    (e.InvalidInputError, 400, "InvalidInput"),
    (e.ConflictError, 409, "Conflict"),
    (e.StoreMigrationRequired, 503, "MigrationRequired"),
    (e.StoreBusy, 503, "StoreBusy"),
    (e.StoreError, 503, "StoreUnavailable"),
    (e.RunyardError, 400, "BadRequest"),
]


HTTP_CODES = {
    400: "BadRequest",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}


def runyard_error_response(exc: e.RunyardError) -> JSONResponse:
    if isinstance(exc, e.StoreBusy):
        busy = store_busy(str(exc))
        return JSONResponse(busy.body, status_code=busy.status, headers=busy.headers)
    for kind, status, code in STATUS_BY_ERROR:
        if isinstance(exc, kind):
            return JSONResponse(error_body(code, str(exc), type(exc).__name__), status_code=status)
    return JSONResponse(error_body("BadRequest", str(exc)), status_code=400)  # pragma: no cover


def install(app: Any) -> None:
    @app.exception_handler(HTTPError)
    async def _http_error(_request: Request, exc: HTTPError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer", **exc.headers} if exc.status == 401 else exc.headers
        return JSONResponse(exc.body, status_code=exc.status, headers=headers)

    @app.exception_handler(e.RunyardError)
    async def _runyard_error(request: Request, exc: e.RunyardError) -> Response:
        html_error = getattr(request.app.state, "html_error", None)  # the studio's pages answer HTML
        page = html_error(request, exc) if html_error else None
        return page if page is not None else runyard_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes, wrong methods, unparsable bodies, oversized bodies: the same JSON shape as the rest.
        code = HTTP_CODES.get(exc.status_code, "HTTPError")
        message = f"{exc.detail} ({request.method} {request.url.path})"
        return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()[:20]
        ]
        return JSONResponse(
            error_body("InvalidInput", "The request is not valid: " + "; ".join(problems), details=problems),
            status_code=422,
        )


# Declared on every route so the OpenAPI schema names each error a client can get.
ERROR_RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"schema": {}}}}
    for status, text in [
        (400, "Invalid input"),
        (401, "Missing, malformed, invalid or expired token"),
        (403, "Token lacks the scope"),
        (404, "Not found"),
        (409, "Conflict with the current state"),
        (413, "Body too large"),
        (422, "Malformed request"),
        (503, "Store unavailable"),
    ]
}


def rest_error_to_exception(status: int, payload: dict[str, Any]) -> e.RunyardError:
    """On the client side: turn an error response back into the RunyardError it was raised as."""
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    message = error.get("message") or payload.get("message") or f"HTTP {status}"
    kind = getattr(e, str(error.get("type")), None) if error.get("type") else None
    if isinstance(kind, type) and issubclass(kind, e.RunyardError):
        exc = kind.__new__(kind)
        Exception.__init__(exc, message)
        return exc
    if status == 404:
        return e.NotFoundError(message)
    if status == 409:
        return e.ConflictError(message)
    if status in (401, 403):
        return e.AuthError(message)
    if status >= 500:
        return e.StoreError(message)
    return e.InvalidInputError(message)
