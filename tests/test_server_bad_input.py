"""Bad input to the server: each answer is a 4xx with runyard's JSON error, never a 500, never a file
touched outside the artifact folder.

Most requests go to the ASGI app in-process (fast, and `raise_server_exceptions` turns any 500 into a
test failure); what needs real sockets (declared sizes without bodies, chunked bodies, the bind
address) goes to a real `runyard server` subprocess on 127.0.0.1.
"""

from __future__ import annotations

import json
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import free_port, run_cli
from runyard import Workspace
from runyard.mlflow_api.limits import MAX_METRICS_PER_BATCH
from runyard.server.app import MAX_JSON_BYTES, create_app
from runyard.server.routes_store import MAX_METRIC_ROWS
from runyard.store.rest_artifacts import RestArtifactStore
from server_process import ServerProcess, running_server

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

OUTSIDE = b"TOP SECRET, OUTSIDE THE ARTIFACTS"
RUN = "bad-input-run"


class Api:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ws = Workspace.create(root / "ws" / ".runyard")
        self.artifacts = self.ws.path / "artifacts"
        (root / "secret.txt").write_bytes(OUTSIDE)
        (self.ws.path / "sentinel.txt").write_bytes(OUTSIDE)
        self.client = TestClient(create_app(self.ws))  # raises in the test on any unhandled server error
        exp = self.client.post("/api/v1/experiments", json={"name": "bad"}).json()
        run = {
            "run_id": RUN,
            "experiment_id": exp["id"],
            "experiment_name": "bad",
            "status": "Running",
            "run_type": "azureml.scriptrun",
            "created_time": time.time(),
        }
        assert self.client.post("/api/v1/runs", json=[run]).status_code == 200

    def files_outside_artifacts(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.root)): p.read_bytes()
            for p in self.root.rglob("*")
            if p.is_file() and self.artifacts not in p.parents and not p.name.startswith("runyard.db")
        }


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    api = Api(tmp_path_factory.mktemp("bad-input"))
    yield api
    api.client.close()


def assert_error(response: httpx.Response, status: int, code: str, *words: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert list(body) == ["error"], body
    assert body["error"]["code"] == code, body
    message = body["error"]["message"]
    assert isinstance(message, str) and message
    for word in words:
        assert word in message, (word, message)
    return dict(body["error"])


def assert_mlflow_error(response: httpx.Response, status: int, code: str, *words: str) -> str:
    """MLflow's routes answer in MLflow's shape, `{"error_code", "message"}`, with MLflow's codes."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert sorted(body) == ["error_code", "message"] and body["error_code"] == code, body
    message: str = body["message"]
    for word in words:
        assert word in message, (word, message)
    return message


# -- path traversal ------------------------------------------------------------------------------------
TRAVERSALS = [
    "../sentinel.txt",
    "../../secret.txt",
    "..",
    ".",
    "runs/../../sentinel.txt",
    f"runs/{RUN}/../../../sentinel.txt",
    f"runs/{RUN}/outputs/../../../../../secret.txt",
    "..\\..\\secret.txt",
    f"runs\\{RUN}\\..\\..\\..\\sentinel.txt",
    "/etc/passwd",
    "//etc/passwd",
    "{root}/secret.txt",
    f"runs/{RUN}/\x00../../secret.txt",
    f"runs/{RUN}/line\nbreak.txt",
]


def _operations(path: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", "/api/v1/artifacts/file", {"params": {"path": path}}),
        ("GET", "/api/v1/artifacts/stat", {"params": {"path": path}}),
        ("GET", "/api/v1/artifacts", {"params": {"prefix": path}}),
        ("PUT", "/api/v1/artifacts/file", {"params": {"path": path}, "content": b"pwned"}),
        ("POST", "/api/v1/artifacts/append", {"params": {"path": path, "offset": 0}, "content": b"pwned"}),
    ]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_is_refused(api: Api, path: str) -> None:
    path = path.replace("{root}", str(api.root))
    before = api.files_outside_artifacts()
    for method, url, kwargs in _operations(path):
        response = api.client.request(method, url, **kwargs)
        assert_error(response, 400, "InvalidInput", "Artifact path")
        assert OUTSIDE not in response.content
    assert api.files_outside_artifacts() == before
    assert b"pwned" not in (api.root / "secret.txt").read_bytes()


@pytest.mark.parametrize(
    "query",
    [
        "%2e%2e%2fsentinel.txt",
        "%2E%2E%2F%2E%2E%2Fsecret.txt",
        "runs%2F..%2F..%2Fsentinel.txt",
        f"runs%2f{RUN}%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
        "..%5c..%5csecret.txt",
        "%2fetc%2fpasswd",
        "%00..%2fsecret.txt",
    ],
)
def test_percent_encoded_traversal_is_refused(api: Api, query: str) -> None:
    """The client sends these bytes as they are; the server decodes them once and must refuse the result."""
    before = api.files_outside_artifacts()
    for method, url, content in [
        ("GET", "/api/v1/artifacts/file", None),
        ("GET", "/api/v1/artifacts/stat", None),
        ("PUT", "/api/v1/artifacts/file", b"pwned"),
    ]:
        response = api.client.request(method, f"{url}?path={query}", content=content)
        assert_error(response, 400, "InvalidInput", "Artifact path")
        assert OUTSIDE not in response.content
    assert_error(api.client.get(f"/api/v1/artifacts?prefix={query}"), 400, "InvalidInput")
    assert api.files_outside_artifacts() == before


def test_double_encoded_names_stay_inside_the_artifacts(api: Api) -> None:
    """%252e decodes once to the text "%2e": a strange but harmless name, never decoded a second time."""
    query = f"runs%2f{RUN}%2f%252e%252e%252f%252e%252e%252fsecret.txt"
    assert_error(api.client.get(f"/api/v1/artifacts/file?path={query}"), 404, "NotFound")
    before = api.files_outside_artifacts()
    assert api.client.put(f"/api/v1/artifacts/file?path={query}", content=b"inside").status_code == 204
    assert api.files_outside_artifacts() == before
    stored = api.artifacts / "runs" / RUN / "%2e%2e%2f%2e%2e%2fsecret.txt"
    assert stored.read_bytes() == b"inside"
    assert api.client.get(f"/api/v1/artifacts/file?path={query}").content == b"inside"


def test_traversal_in_ids_finds_nothing(api: Api) -> None:
    for url in (
        "/api/v1/runs/..%2f..%2fsecret.txt",
        "/api/v1/runs/%2e%2e",
        "/api/v1/models/..%2f..%2fsentinel.txt",
        "/api/v1/experiments/%2e%2e%2f%2e%2e",
    ):
        response = api.client.get(url)
        assert_error(response, 404, "NotFound")
        assert OUTSIDE not in response.content


def test_unwritable_names_are_client_errors(api: Api) -> None:
    base = f"runs/{RUN}/clash"
    assert (
        api.client.put(
            "/api/v1/artifacts/file", params={"path": f"{base}/file.txt"}, content=b"x"
        ).status_code
        == 204
    )
    # a folder where a file is wanted, a file where a folder is wanted, a name too long for the disk
    assert_error(
        api.client.put("/api/v1/artifacts/file", params={"path": base}, content=b"x"),
        409,
        "Conflict",
        "folder",
    )
    under_a_file = {"path": f"{base}/file.txt/inner.txt"}
    assert_error(api.client.put("/api/v1/artifacts/file", params=under_a_file, content=b"x"), 409, "Conflict")
    assert_error(
        api.client.post("/api/v1/artifacts/append", params={**under_a_file, "offset": 0}, content=b"x"),
        409,
        "Conflict",
    )
    assert_error(
        api.client.post("/api/v1/artifacts/append", params={"path": base, "offset": 0}, content=b"x"),
        409,
        "Conflict",
    )
    too_long = {"path": f"runs/{RUN}/{'n' * 400}.txt"}
    assert_error(
        api.client.put("/api/v1/artifacts/file", params=too_long, content=b"x"),
        400,
        "InvalidInput",
        "too long",
    )
    assert sorted(p.name for p in (api.artifacts / base).iterdir()) == ["file.txt"]  # no stray temp files


# -- bodies --------------------------------------------------------------------------------------------
def test_oversized_json_body_is_413(api: Api) -> None:
    big = b" " * (MAX_JSON_BYTES + 1)
    response = api.client.post("/api/v1/metrics", content=big, headers={"content-type": "application/json"})
    assert_error(response, 413, "PayloadTooLarge", str(MAX_JSON_BYTES))


MALFORMED = [b"{not json", b'{"rows": [', b"", b"\xff\xfe garbage", b'{"a": 1,}']


@pytest.mark.parametrize("url", ["/api/v1/metrics", "/api/v1/runs", "/api/v1/experiments"])
@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_json_is_422(api: Api, url: str, body: bytes) -> None:
    response = api.client.post(url, content=body, headers={"content-type": "application/json"})
    error = assert_error(response, 422, "InvalidInput", "The request is not valid")
    assert isinstance(error["details"], list) and error["details"]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_json_under_mlflow_is_an_empty_request(api: Api, body: bytes) -> None:
    """MLflow's server reads a body it cannot parse as `{}`, so the answer names the first required field."""
    before = api.client.get("/api/v1/metrics/count").json()["count"]
    response = api.client.post(
        "/api/2.0/mlflow/runs/log-batch", content=body, headers={"content-type": "application/json"}
    )
    message = assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE")
    assert message == (
        "Missing value for required parameter 'run_id'. "
        "See the API docs for more information about request parameters."
    )
    assert api.client.get("/api/v1/metrics/count").json()["count"] == before


def test_absurdly_nested_json_is_a_client_error(api: Api) -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    response = api.client.post("/api/v1/metrics", content=body, headers={"content-type": "application/json"})
    assert_error(response, 400, "BadRequest", "parsing the body")


def _metric(**overrides: Any) -> dict[str, Any]:
    return {"run_id": RUN, "name": "m", "kind": "scalar", "timestamp": time.time(), "value": 1.0, **overrides}


WRONG_TYPES = [
    ("POST", "/api/v1/experiments", {"json": {"name": 5}}, "body.name"),
    ("POST", "/api/v1/experiments", {"json": {"name": ""}}, "body.name"),
    ("POST", "/api/v1/experiments", {"json": ["bad"]}, "body"),
    ("POST", "/api/v1/runs", {"json": {"run_id": "not-a-list"}}, "body"),
    ("POST", "/api/v1/runs", {"json": [{"run_id": 1}]}, "body.0"),
    ("POST", "/api/v1/metrics", {"json": {"rows": "many"}}, "body.rows"),
    ("POST", "/api/v1/metrics", {"json": {"rows": [_metric(timestamp="yesterday")]}}, "timestamp"),
    ("POST", "/api/v1/metrics", {"json": {"rows": [_metric(value={"x": 1})]}}, "value"),
    ("POST", "/api/v1/metrics", {"json": {"rows": [_metric(step=2**70)]}}, "64-bit"),
    ("POST", "/api/v1/metrics", {"json": {"rows": [_metric(seq=-(2**64))]}}, "64-bit"),
    ("PUT", f"/api/v1/runs/{RUN}/tags", {"json": {"tags": ["a", "b"]}}, "body.tags"),
    ("PUT", f"/api/v1/runs/{RUN}/tags", {"json": {"tags": {"a": 1}}}, "body.tags.a"),
    ("POST", f"/api/v1/runs/{RUN}/status", {"json": {"status": 3}}, "body.status"),
    ("PATCH", f"/api/v1/runs/{RUN}/data", {"json": {"patch": [1, 2]}}, "body.patch"),
    ("POST", f"/api/v1/runs/{RUN}/properties", {"json": {"properties": "k=v"}}, "body.properties"),
    ("GET", "/api/v1/runs", {"params": {"limit": "lots"}}, "query.limit"),
    ("GET", "/api/v1/runs", {"params": {"limit": -1}}, "query.limit"),
    ("GET", "/api/v1/models/m", {"params": {"version": 0}}, "query.version"),
    ("GET", "/api/v1/models/m", {"params": {"version": 2**70}}, "query.version"),
    ("GET", "/api/v1/metrics", {}, "query.run_id"),
    ("POST", "/api/v1/artifacts/append", {"params": {"path": f"runs/{RUN}/x", "offset": -1}}, "query.offset"),
    ("GET", "/api/v1/artifacts/file", {}, "query.path"),
    ("POST", "/api/v1/tokens", {"json": {"scope": "root"}}, "body.scope"),
    ("POST", "/api/v1/tokens", {"json": {"scope": "read", "expires_in": -5}}, "body.expires_in"),
]


@pytest.mark.parametrize(("method", "url", "kwargs", "field"), WRONG_TYPES)
def test_wrong_types_are_422(api: Api, method: str, url: str, kwargs: dict[str, Any], field: str) -> None:
    rows_before = api.client.get("/api/v1/metrics/count").json()["count"]
    error = assert_error(api.client.request(method, url, **kwargs), 422, "InvalidInput", field)
    assert any(field.split(".")[0] in d for d in error["details"])
    assert api.client.get("/api/v1/metrics/count").json()["count"] == rows_before
    assert api.client.get(f"/api/v1/runs/{RUN}/tags").json() == {}


def _mlflow_metric(**overrides: Any) -> dict[str, Any]:
    return {"run_id": RUN, "key": "k", "value": 1.0, "timestamp": 1_700_000_000_000, **overrides}


MLFLOW_WRONG_TYPES = [
    ("runs/log-metric", _mlflow_metric(value="high"), "Invalid value \"high\" for parameter 'value'"),
    ("runs/log-metric", _mlflow_metric(step=2**70), f"Invalid value {2**70} for parameter 'step'"),
    ("runs/log-metric", {k: v for k, v in _mlflow_metric().items() if k != "timestamp"}, "'timestamp'"),
    (
        "runs/search",
        {"experiment_ids": ["0"], "max_results": 0},
        "Invalid value 0 for parameter 'max_results'",
    ),
]


@pytest.mark.parametrize(("route", "body", "words"), MLFLOW_WRONG_TYPES)
def test_mlflow_wrong_types_are_400(api: Api, route: str, body: dict[str, Any], words: str) -> None:
    rows_before = api.client.get("/api/v1/metrics/count").json()["count"]
    response = api.client.post(f"/api/2.0/mlflow/{route}", json=body)
    assert_mlflow_error(response, 400, "INVALID_PARAMETER_VALUE", words)
    assert api.client.get("/api/v1/metrics/count").json()["count"] == rows_before


# -- unknown ids and routes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "url", "kwargs", "kind"),
    [
        ("GET", "/api/v1/runs/ghost-run", {}, "RunNotFound"),
        ("POST", "/api/v1/runs/ghost-run/status", {"json": {"status": "Running"}}, "RunNotFound"),
        ("PATCH", "/api/v1/runs/ghost-run/data", {"json": {"patch": {"a": 1}}}, "RunNotFound"),
        ("PUT", "/api/v1/runs/ghost-run/tags", {"json": {"tags": {"a": "1"}}}, "RunNotFound"),
        ("POST", "/api/v1/runs/ghost-run/properties", {"json": {"properties": {"a": "1"}}}, "RunNotFound"),
        ("POST", "/api/v1/runs/ghost-run/token", {}, "RunNotFound"),
        ("GET", "/api/v1/experiments/ghost-experiment", {}, "ExperimentNotFound"),
        ("GET", "/api/v1/models/ghost-model", {}, "ModelNotFound"),
        ("DELETE", "/api/v1/tokens/0123456789ab", {}, "NotFoundError"),
        ("GET", "/api/v1/artifacts/file", {"params": {"path": "runs/ghost-run/x.txt"}}, "NotFoundError"),
    ],
)
def test_unknown_ids_are_404(api: Api, method: str, url: str, kwargs: dict[str, Any], kind: str) -> None:
    error = assert_error(api.client.request(method, url, **kwargs), 404, "NotFound")
    assert error["type"] == kind
    assert ("ghost" if "ghost" in url + str(kwargs) else "0123456789ab") in error["message"]


def test_metrics_for_an_unknown_run_are_refused(api: Api) -> None:
    before = api.client.get("/api/v1/metrics/count").json()["count"]
    response = api.client.post("/api/v1/metrics", json={"rows": [_metric(), _metric(run_id="ghost-run")]})
    assert_error(response, 404, "NotFound", "ghost-run")
    assert api.client.get("/api/v1/metrics/count").json()["count"] == before


def test_mlflow_unknown_ids_use_mlflow_error_codes(api: Api) -> None:
    for url, params in (
        ("/api/2.0/mlflow/runs/get", {"run_id": "ghost-run"}),
        ("/api/2.0/mlflow/experiments/get", {"experiment_id": "424242"}),
        ("/api/2.0/mlflow/metrics/get-history", {"run_id": "ghost-run", "metric_key": "m"}),
    ):
        response = api.client.get(url, params=params)
        assert response.status_code == 404
        assert response.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    bad_filter = api.client.post("/api/2.0/mlflow/runs/search", json={"filter": "DROP TABLE runs"})
    assert bad_filter.status_code == 400 and bad_filter.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_unknown_routes_and_methods_use_the_json_shape(api: Api) -> None:
    assert_error(api.client.get("/api/v1/no-such-thing"), 404, "NotFound", "/api/v1/no-such-thing")
    response = api.client.delete("/api/v1/experiments")
    assert_error(response, 405, "MethodNotAllowed", "DELETE")
    assert response.headers["allow"]


# -- batch limits ------------------------------------------------------------------------------------------
def test_metric_batch_over_the_limit_is_400(api: Api) -> None:
    before = api.client.get("/api/v1/metrics/count").json()["count"]
    rows = [_metric(value=float(i), step=i) for i in range(MAX_METRIC_ROWS + 1)]
    response = api.client.post("/api/v1/metrics", json={"rows": rows})
    assert_error(response, 400, "InvalidInput", str(MAX_METRIC_ROWS), "split")
    assert api.client.get("/api/v1/metrics/count").json()["count"] == before
    accepted = api.client.post("/api/v1/metrics", json={"rows": rows[:MAX_METRIC_ROWS]})
    assert accepted.json() == {"count": MAX_METRIC_ROWS}


def test_mlflow_metric_batch_over_mlflows_limit_is_400(api: Api) -> None:
    """MLflow's own limit (1000 metrics a request), in MLflow's words; nothing of the batch is written."""
    before = api.client.get("/api/v1/metrics/count").json()["count"]
    metrics = [_mlflow_metric(step=i) for i in range(MAX_METRICS_PER_BATCH + 1)]
    response = api.client.post("/api/2.0/mlflow/runs/log-batch", json={"run_id": RUN, "metrics": metrics})
    assert MAX_METRICS_PER_BATCH == 1000
    assert_mlflow_error(
        response, 400, "INVALID_PARAMETER_VALUE", "at most 1000 metrics. Got 1001 metrics", "split"
    )
    assert api.client.get("/api/v1/metrics/count").json()["count"] == before
    accepted = api.client.post(
        "/api/2.0/mlflow/runs/log-batch", json={"run_id": RUN, "metrics": metrics[:-1]}
    )
    assert (accepted.status_code, accepted.json()) == (200, {})
    assert api.client.get("/api/v1/metrics/count").json()["count"] == before + MAX_METRICS_PER_BATCH


def test_run_batch_over_the_limit_is_400(api: Api) -> None:
    fields = _run_fields(api)
    runs = [{**fields, "run_id": f"many-{i}"} for i in range(1001)]  # refused before anything is created
    response = api.client.post("/api/v1/runs", json=runs)
    assert_error(response, 400, "InvalidInput", "1000")
    assert_error(api.client.get("/api/v1/runs/many-0"), 404, "NotFound")
    assert_error(api.client.post("/api/v1/runs", json=[]), 400, "InvalidInput")


def _run_fields(api: Api) -> dict[str, Any]:
    exp = api.client.get("/api/v1/experiments/bad").json()
    return {
        "experiment_id": exp["id"],
        "experiment_name": "bad",
        "status": "NotStarted",
        "run_type": "azureml.scriptrun",
        "created_time": time.time(),
    }


# -- byte ranges ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def log_file(api: Api) -> str:
    path = f"runs/{RUN}/azureml-logs/70_driver_log.txt"
    assert (
        api.client.put(
            "/api/v1/artifacts/file", params={"path": path}, content=b"0123456789" * 10
        ).status_code
        == 204
    )
    return path


@pytest.mark.parametrize(
    ("header", "content", "content_range"),
    [
        ("bytes=0-9", b"0123456789", "bytes 0-9/100"),
        ("bytes=90-", b"0123456789", "bytes 90-99/100"),
        ("bytes=-5", b"56789", "bytes 95-99/100"),
        ("bytes=95-500", b"56789", "bytes 95-99/100"),
        ("bytes=42-42", b"2", "bytes 42-42/100"),
    ],
)
def test_range_requests_are_206(
    api: Api, log_file: str, header: str, content: bytes, content_range: str
) -> None:
    response = api.client.get("/api/v1/artifacts/file", params={"path": log_file}, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == content
    assert response.headers["content-range"] == content_range


def test_no_range_is_the_whole_file(api: Api, log_file: str) -> None:
    response = api.client.get("/api/v1/artifacts/file", params={"path": log_file})
    assert response.status_code == 200
    assert response.content == b"0123456789" * 10
    assert response.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    "header",
    ["bytes=100-", "bytes=200-300", "bytes=5-2", "bytes=0-1,5-6", "items=0-5", "bytes=a-b", "bytes=-0"],
)
def test_unsatisfiable_ranges_are_416(api: Api, log_file: str, header: str) -> None:
    response = api.client.get("/api/v1/artifacts/file", params={"path": log_file}, headers={"Range": header})
    assert_error(response, 416, "RangeNotSatisfiable")


def test_an_empty_file_has_no_satisfiable_range(api: Api) -> None:
    path = f"runs/{RUN}/empty.txt"
    assert api.client.put("/api/v1/artifacts/file", params={"path": path}, content=b"").status_code == 204
    assert api.client.get("/api/v1/artifacts/file", params={"path": path}).content == b""
    response = api.client.get(
        "/api/v1/artifacts/file", params={"path": path}, headers={"Range": "bytes=0-10"}
    )
    assert_error(response, 416, "RangeNotSatisfiable", "0 bytes")


# -- over real sockets ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("bad-input-server")
    ws = Workspace.create(root / "ws" / ".runyard")
    with running_server(ws.path, root / "server.log") as server:
        yield server


def _raw_request(server: ServerProcess, head: str) -> bytes:
    """Send only a request head (a size is declared, no body follows) and read the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


@pytest.mark.parametrize(
    ("method", "url", "declared"),
    [
        ("POST", "/api/v1/metrics", MAX_JSON_BYTES + 1),
        ("POST", "/api/2.0/mlflow/runs/log-batch", 10 * MAX_JSON_BYTES),
        ("PUT", "/api/v1/artifacts/file?path=runs/r/huge.bin", 5 * 1024**3),
        ("POST", "/api/v1/artifacts/append?path=runs/r/huge.log&offset=0", 2 * 1024**3),
    ],
)
def test_declared_oversized_bodies_are_refused_before_reading(
    server: ServerProcess, method: str, url: str, declared: int
) -> None:
    head = f"{method} {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
    answer = _raw_request(server, head)
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line, answer[:300]
    body = json.loads(rest.partition(b"\r\n\r\n")[2])
    if url.startswith("/api/2.0/mlflow/"):  # MLflow's shape under MLflow's routes
        assert body == {"error_code": "RESOURCE_EXHAUSTED", "message": body["message"]}, body
        assert str(MAX_JSON_BYTES) in body["message"]
    else:
        assert body["error"]["code"] == "PayloadTooLarge", body
    assert not (server.workspace / "artifacts" / "runs" / "r").exists()


def test_chunked_oversized_json_is_413(server: ServerProcess) -> None:
    def body() -> Iterator[bytes]:  # no Content-Length: the size shows only while it streams in
        yield b'{"name": "'
        for _ in range(MAX_JSON_BYTES // (1024 * 1024)):
            yield b"a" * (1024 * 1024)
        yield b"a" * 1024 + b'"}'  # just over the limit, so the refusal comes as the last bytes arrive

    response = httpx.post(
        f"{server.url}/api/v1/experiments",
        content=body(),
        headers={"content-type": "application/json"},
        timeout=120,
    )
    assert_error(response, 413, "PayloadTooLarge")
    assert httpx.get(f"{server.url}/api/v1/experiments", timeout=60).json() == []


def test_rest_artifacts_read_ranges_over_http(server: ServerProcess, tmp_path: Path) -> None:
    remote = RestArtifactStore(server.url, None, tmp_path / "mirror")
    remote.put_bytes("runs/r1/azureml-logs/70_driver_log.txt", b"line one\nline two\n")
    assert remote.size("runs/r1/azureml-logs/70_driver_log.txt") == 18
    assert remote.read_bytes("runs/r1/azureml-logs/70_driver_log.txt", 9) == b"line two\n"
    assert remote.read_bytes("runs/r1/azureml-logs/70_driver_log.txt", 5, 3) == b"one"
    assert remote.read_bytes("runs/r1/azureml-logs/70_driver_log.txt", 18) == b""  # nothing new yet
    assert remote.list("runs/r1") == ["azureml-logs/70_driver_log.txt"]
    with pytest.raises(Exception, match="not a relative path"):
        remote.read_bytes("../runyard.db")


def test_server_listens_on_loopback_only(server: ServerProcess) -> None:
    proc_net = Path("/proc/net/tcp")
    if not proc_net.exists():
        pytest.skip("needs Linux's /proc/net/tcp")
    listening = []
    for path in (proc_net, Path("/proc/net/tcp6")):
        for line in path.read_text().splitlines()[1:] if path.exists() else []:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == server.port:
                listening.append(address)
    assert listening == ["0100007F"]  # 127.0.0.1, and no IPv6 or wildcard socket
    assert f"on http://127.0.0.1:{server.port} (auth off)" in " ".join(server.output().split())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10"])
def test_non_loopback_bind_needs_auth(tmp_path: Path, host: str) -> None:
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    port = free_port()
    done = run_cli("-w", str(ws.path), "server", "--host", host, "--port", str(port), timeout=60)
    assert done.returncode == 1
    assert f"Refusing to serve on {host} without --auth" in done.stderr
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
