"""Property-based checks from the server's own OpenAPI schema (schemathesis), against the ASGI app
in-process: for every operation, a bounded number of generated requests, and no answer may be a 5xx
or disagree with the schema.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from runyard import Workspace
from runyard.server.app import create_app

schemathesis = pytest.importorskip("schemathesis")
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402

# The schema is read when the module is collected, so each test process serves its own workspace.
_ROOT = Path(tempfile.mkdtemp(prefix="runyard-schemathesis-"))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
APP = create_app(Workspace.create(_ROOT / "ws" / ".runyard"))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def test_the_schema_covers_the_api() -> None:
    paths = APP.openapi()["paths"]
    for expected in (
        "/api/v1/runs",
        "/api/v1/metrics",
        "/api/v1/artifacts/file",
        "/api/v1/tokens",
        "/api/2.0/mlflow/{path}",  # MLflow's REST API is one door over runyard.mlflow_api's handlers
    ):
        assert expected in paths
    assert {"get", "post"} <= set(paths["/api/2.0/mlflow/{path}"]), paths["/api/2.0/mlflow/{path}"]
    # every runyard route documents the error answers a client can get
    for path, operations in paths.items():
        if path.startswith("/api/v1"):
            for method, operation in operations.items():
                assert {"400", "404", "422"} <= set(operation["responses"]), (method, path)


@schema.parametrize()
@settings(
    max_examples=10,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_api(case: schemathesis.Case) -> None:
    case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])
