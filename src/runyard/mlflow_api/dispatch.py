"""The one table of MLflow routes both doors use: (method, path) -> handler.

A handler is registered with `@route("POST", "runs/create")` (paths are relative to `/api/2.0/mlflow/`,
`{name}` marks a path parameter) and looks like

    def create_run(ctx: MlflowContext, body: CreateRun) -> dict[str, Any]: ...
    def get_logged_model(ctx: MlflowContext, body: Empty, model_id: str) -> dict[str, Any]: ...

`dispatch` finds the handler, validates the body with the handler's pydantic model (MLflow's wording for
a missing or malformed parameter), runs it, and turns runyard's own errors into MLflow's codes. The
server door feeds it JSON bodies (query parameters for GET); the plugin door feeds it the dicts MLflow's
RestStore would have sent.
"""

from __future__ import annotations

import importlib
import json
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from runyard.errors import ConflictError, InvalidInputError, NotFoundError
from runyard.mlflow_api.caller import Caller
from runyard.mlflow_api.errors import MlflowError, invalid
from runyard.store import SqlStore

#: The modules that register handlers (imported on first dispatch).
HANDLER_MODULES = ("experiments", "runs", "metrics", "search", "logged_models", "run_io")


class Body(BaseModel):
    """Base of every handler's request model: fields MLflow's clients send that a handler does not use
    (newer clients send more) are ignored, as MLflow's server ignores them."""

    model_config = ConfigDict(extra="ignore")


@dataclass(frozen=True)
class MlflowContext:
    """What a handler works with; the door builds one per request."""

    store: SqlStore
    caller: Caller
    #: artifact-store folder ("runs/<id>", "logged_models/<id>") -> the artifact URI this door's clients use
    artifact_uri: Callable[[str], str]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Callable[..., dict[str, Any]]
    body_model: type[BaseModel]


_ROUTES: list[Route] = []
_loaded = False


def route(
    method: str, template: str
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    def register(handler: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        hints = typing.get_type_hints(handler)
        model = hints.get("body")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(
                f"{handler.__qualname__}: its `body` parameter must be annotated with a pydantic model"
            )
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        _ROUTES.append(Route(method.upper(), template, re.compile(f"^{regex}$"), handler, model))
        return handler

    return register


def routes() -> list[Route]:
    """Every registered route (docs/server.md's table is checked against it)."""
    _load()
    return list(_ROUTES)


def _load() -> None:
    global _loaded
    if not _loaded:
        for name in HANDLER_MODULES:
            importlib.import_module(f"runyard.mlflow_api.{name}")
        _loaded = True


def find(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    _load()
    path = path.strip("/")
    for candidate in _ROUTES:
        if candidate.method == method.upper():
            match = candidate.pattern.match(path)
            if match:
                return candidate, match.groupdict()
    return None


def dispatch(ctx: MlflowContext, method: str, path: str, body: Mapping[str, Any] | None) -> dict[str, Any]:
    """Answer one MLflow request; raises MlflowError in MLflow's shape for every refusal."""
    found = find(method, path)
    if found is None:
        raise MlflowError(
            "ENDPOINT_NOT_FOUND", f"No API endpoint for {method.upper()} /api/2.0/mlflow/{path.strip('/')}."
        )
    target, params = found
    try:
        parsed = target.body_model.model_validate(dict(body or {}))
    except ValidationError as exc:
        raise validation_error(exc) from None
    try:
        return target.handler(ctx, parsed, **params)
    except MlflowError:
        raise
    except NotFoundError as exc:
        raise MlflowError("RESOURCE_DOES_NOT_EXIST", str(exc)) from exc
    except (InvalidInputError, ConflictError) as exc:
        raise invalid(str(exc)) from exc


def validation_error(exc: ValidationError) -> MlflowError:
    """MLflow's wording for the first problem pydantic found in a request body."""
    first = exc.errors()[0]
    name = ".".join(str(p) for p in first["loc"]) or "request"
    if first["type"] == "missing":
        return invalid(
            f"Missing value for required parameter '{name}'. "
            "See the API docs for more information about request parameters."
        )
    given = first.get("input")
    try:
        shown = json.dumps(given)
    except (TypeError, ValueError):
        shown = repr(given)
    return invalid(
        f"Invalid value {shown} for parameter '{name}' supplied:  Hint: Value was of type "
        f"'{type(given).__name__}'. See the API docs for more information about request parameters."
    )
