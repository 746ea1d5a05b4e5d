"""Every refusal under MLflow's prefixes comes in MLflow's shape (`{"error_code", "message"}`) with its
status code and wording, whichever layer of one real `runyard server --auth` refuses: the handlers
(unknown endpoint, malformed JSON, missing experiment or run, batch limits), auth (401/403) and the
body limit (413). And numbers MLflow's server writes as strings (NaN, Infinity) come back that way.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mlflow_served import Served, served_with_tokens

API = "/api/2.0/mlflow"
SEE_DOCS = "See the API docs for more information about request parameters."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_with_tokens(tmp_path_factory, "mlflow-errors") as served:
        yield served


def mlflow_error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error_code", "message"} and body["error_code"] == code, body
    return str(body["message"])


def test_handler_refusals(served: Served) -> None:
    with served.http() as http:
        for prefix in (API, "/api/2.0/preview/mlflow", "/ajax-api/2.0/mlflow"):
            found = http.post(f"{prefix}/no/such/endpoint", json={})
            assert "No API endpoint" in mlflow_error(found, 404, "ENDPOINT_NOT_FOUND")
        malformed = http.post(
            f"{API}/experiments/create", content=b'{"name": ', headers={"Content-Type": "application/json"}
        )
        assert mlflow_error(malformed, 400, "INVALID_PARAMETER_VALUE") == (
            f"Missing value for required parameter 'name'. {SEE_DOCS}"
        )
        empty = http.post(f"{API}/experiments/create", json={"name": ""})
        assert mlflow_error(empty, 400, "INVALID_PARAMETER_VALUE") == (
            f"Missing value for required parameter 'name'. {SEE_DOCS}"
        )
        missing = http.get(f"{API}/experiments/get", params={"experiment_id": "424242"})
        assert mlflow_error(missing, 404, "RESOURCE_DOES_NOT_EXIST") == "No Experiment with id=424242 exists"
        run = http.get(f"{API}/runs/get", params={"run_id": "zzz"})
        assert mlflow_error(run, 404, "RESOURCE_DOES_NOT_EXIST") == "Run with id=zzz not found"
        by_name = http.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"})
        assert (
            mlflow_error(by_name, 404, "RESOURCE_DOES_NOT_EXIST")
            == "Could not find experiment with name 'nope'"
        )
        no_timestamp = http.post(f"{API}/runs/log-metric", json={"run_id": "zzz", "key": "m", "value": 1})
        assert mlflow_error(no_timestamp, 400, "INVALID_PARAMETER_VALUE") == (
            f"Missing value for required parameter 'timestamp'. {SEE_DOCS}"
        )


def test_batch_limits(served: Served) -> None:
    with served.http() as http:
        run_id = http.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
        params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
        too_many = http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": params})
        assert mlflow_error(too_many, 400, "INVALID_PARAMETER_VALUE") == (
            "A batch logging request can contain at most 100 params. Got 101 params. Please split up params "
            "across multiple requests and try again."
        )
        metrics = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]
        assert "at most 1000 metrics" in mlflow_error(
            http.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}),
            400,
            "INVALID_PARAMETER_VALUE",
        )


def test_auth_refusals_are_mlflow_shaped(served: Served) -> None:
    with served.http(None) as anonymous:
        mlflow_error(
            anonymous.get(f"{API}/experiments/get", params={"experiment_id": "0"}), 401, "UNAUTHENTICATED"
        )
    with served.http("read") as reader:
        assert reader.get(f"{API}/experiments/get", params={"experiment_id": "0"}).status_code == 200
        denied = reader.post(f"{API}/runs/create", json={"experiment_id": "0"})
        assert "'write' scope" in mlflow_error(denied, 403, "PERMISSION_DENIED")


def test_body_limit_is_mlflow_shaped(served: Served) -> None:
    """A declared body over the server's limit is refused before it is read (413), in MLflow's shape."""
    request = (
        f"POST {API}/runs/log-batch HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {served.tokens['write']}\r\nContent-Type: application/json\r\n"
        "Content-Length: 999999999999\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=30) as sock:
        sock.sendall(request.encode())
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"413", head
    assert b'"error_code": "RESOURCE_EXHAUSTED"' in body or b'"error_code":"RESOURCE_EXHAUSTED"' in body, body


def test_nan_and_infinity_are_written_as_mlflow_writes_them(served: Served) -> None:
    with served.http() as http:
        run_id = http.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
        for key, value in (("nan", "NaN"), ("up", "Infinity"), ("down", "-Infinity")):
            logged = http.post(
                f"{API}/runs/log-metric", json={"run_id": run_id, "key": key, "value": value, "timestamp": 1}
            )
            assert logged.status_code == 200, logged.text
        metrics = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]["metrics"]
        assert {m["key"]: m["value"] for m in metrics} == {
            "nan": "NaN",
            "up": "Infinity",
            "down": "-Infinity",
        }
