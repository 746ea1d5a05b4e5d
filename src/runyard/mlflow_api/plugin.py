"""MLflow's tracking-store plugin for an embedded workspace: `mlflow.set_tracking_uri("runyard:/abs/ws")`.

MLflow finds this module through the `mlflow.tracking_store` entry point named `runyard` (pyproject) and
calls `tracking_store(store_uri, artifact_uri)` once per URI and process. The store is MLflow's own
RestStore with one change: `_call_endpoint` answers in this process, through the same handler table the
server's door uses (dispatch.py), instead of sending HTTP. So every MLflow client method that the server
answers is answered here with the same semantics, codes and wording, and nothing needs a server.

Artifacts never pass through the store: a run's artifact URI is its folder in the workspace's artifact
store as a plain URL (file:///.../artifacts/runs/<id> or s3://bucket/prefix/runs/<id>), so MLflow's own
local or S3 artifact repository writes straight into the run's folder, next to outputs/ and logs/.

This is the only runyard module that imports mlflow; nothing else of runyard pays for it. (The other way
round, MLflow loads every tracking-store entry point when it is imported, so `import mlflow` imports the
`runyard` package wherever runyard is installed.)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from mlflow.exceptions import RestException
from mlflow.store.tracking.rest_store import RestStore
from mlflow.utils.proto_json_utils import parse_dict
from mlflow.utils.rest_utils import MlflowHostCreds

from runyard.config import DEFAULT_WORKSPACE_DIRNAME
from runyard.core.workspace import Workspace
from runyard.core.workspace_config import CONFIG_FILE
from runyard.core.workspace_v1 import MLFLOW_SCHEME as SCHEME
from runyard.errors import InvalidInputError, NotFoundError
from runyard.mlflow_api.caller import LocalCaller
from runyard.mlflow_api.dispatch import MlflowContext, dispatch, routes
from runyard.mlflow_api.errors import MlflowError
from runyard.store import SqlStore

#: The prefix of MLflow's tracking endpoints; the handler table's paths are relative to it (an endpoint
#: elsewhere, such as tracing's /api/3.0/..., is answered ENDPOINT_NOT_FOUND, as by the server's door).
API_PREFIX = "/api/2.0/mlflow/"
_FORM = "runyard:/absolute/path/to/workspace (ws.get_mlflow_tracking_uri() gives it)"


def tracking_uri_of(folder: str | os.PathLike[str]) -> str:
    """The plugin URI of a workspace folder: `runyard:` + its absolute path (percent-encoded)."""
    return f"{SCHEME}:{quote(str(Path(folder).expanduser().resolve()))}"


def workspace_folder(store_uri: str) -> Path:
    """The workspace folder a `runyard:` URI names; InvalidInputError for a malformed URI."""
    parts = urlsplit(store_uri)
    if parts.scheme != SCHEME:
        raise InvalidInputError(f"{store_uri!r} is not a runyard MLflow URI; the form is {_FORM}.")
    if parts.netloc or parts.query or parts.fragment:
        raise InvalidInputError(
            f"{store_uri!r} names a host, a query or a fragment, which runyard's MLflow URI has none of; "
            f"the form is {_FORM}. For a runyard server, use its URL (http://HOST:PORT) instead."
        )
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise InvalidInputError(
            f"{store_uri!r} names a relative folder; the form is {_FORM}, with an absolute path."
        )
    return Path(path)


def open_workspace(store_uri: str) -> Workspace:
    """The embedded workspace a `runyard:` URI names (a workspace folder, or a project folder holding
    `.runyard/`, as Workspace.get takes); refuses any other folder, and a server workspace's cache
    folder (its MLflow address is the server's URL)."""
    folder = workspace_folder(store_uri)
    if not (folder / CONFIG_FILE).is_file() and (folder / DEFAULT_WORKSPACE_DIRNAME / CONFIG_FILE).is_file():
        folder = folder / DEFAULT_WORKSPACE_DIRNAME
    if not (folder / CONFIG_FILE).is_file():
        raise NotFoundError(
            f"MLflow tracking URI {store_uri!r}: {folder} is not a runyard workspace folder (it has no "
            f"{CONFIG_FILE}). Create one with `runyard init`, or take the URI from "
            "ws.get_mlflow_tracking_uri()."
        )
    ws = Workspace(path=folder)
    if ws.is_remote:
        raise InvalidInputError(
            f"MLflow tracking URI {store_uri!r} names the local cache of the server workspace "
            f"{ws.tracking_uri}; use that URL as the tracking URI (with MLFLOW_TRACKING_TOKEN)."
        )
    return ws


def artifact_uri_maker(artifact_root: str) -> Any:
    """folder ("runs/<id>", "logged_models/<id>") -> the URL MLflow's artifact repositories write to."""
    if "://" in artifact_root:
        base = artifact_root.rstrip("/")
    else:
        base = Path(artifact_root).resolve().as_uri().rstrip("/")

    def artifact_uri(folder: str) -> str:
        return f"{base}/{folder.strip('/')}"

    return artifact_uri


def proto_json(value: Any) -> Any:
    """A handler's answer as protobuf's JSON parser takes it: NaN and ±inf as the strings proto JSON
    uses for them (ParseDict refuses the Python floats)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: proto_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [proto_json(v) for v in value]
    return value


class RunyardStore(RestStore):
    """MLflow's RestStore answered in process by runyard's MLflow handlers over the workspace's store."""

    def __init__(self, workspace: Workspace, store_uri: str) -> None:
        super().__init__(lambda: MlflowHostCreds(store_uri))
        store = workspace.store
        if not isinstance(store, SqlStore):  # open_workspace refuses server workspaces already
            raise InvalidInputError(f"{store_uri!r}: the workspace's store is not a database.")
        self.workspace = workspace
        self.context = MlflowContext(
            store=store, caller=LocalCaller(), artifact_uri=artifact_uri_maker(workspace.artifact_root)
        )
        routes()  # import the handler modules now, not in the first call (async logging calls from threads)

    def _call_endpoint(
        self,
        api: Any,
        json_body: str | None = None,
        endpoint: str | None = None,
        retry_timeout_seconds: Any = None,
        response_proto: Any = None,
    ) -> Any:
        method_to_info = self._V3_METHOD_TO_INFO if api in self._V3_APIS else self._METHOD_TO_INFO
        known_endpoint, method = method_to_info[api]
        endpoint, _, query = (endpoint or known_endpoint).partition("?")
        # the body as the server's door sees it: the JSON, and what the endpoint carries as its query
        body = {**dict(parse_qsl(query)), **(json.loads(json_body) if json_body else {})}
        try:
            answer = dispatch(self.context, method, self._relative(method, endpoint), body)
        except MlflowError as exc:
            raise RestException(exc.body()) from None
        response_proto = response_proto or api.Response()
        parse_dict(proto_json(answer), response_proto)
        return response_proto

    @staticmethod
    def _relative(method: str, endpoint: str) -> str:
        if endpoint.startswith(API_PREFIX):
            return endpoint[len(API_PREFIX) :]
        raise MlflowError("ENDPOINT_NOT_FOUND", f"No API endpoint for {method} {endpoint} in runyard.")

    def _get_server_version(self, host_creds: Any = None) -> None:  # type: ignore[override]
        """No server: the version probe (tracing's OTLP export uses it) says "unknown"."""
        return None

    def _probe_workspace_support(self) -> bool:
        """MLflow's own workspaces (MLFLOW_WORKSPACE) are a server feature; the folder is the workspace."""
        return False


def tracking_store(store_uri: str, artifact_uri: str | None = None) -> RunyardStore:
    """MLflow's `mlflow.tracking_store` entry point for `runyard:` URIs. `artifact_uri` (MLflow's
    default artifact root) is not used: runs keep their artifacts in the workspace's artifact store."""
    return RunyardStore(open_workspace(store_uri), store_uri)
