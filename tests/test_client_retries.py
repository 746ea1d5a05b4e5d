"""Which answers make a client try again, and how long it waits (store/rest_http.py).

The real app runs in-process; in front of it sits a stand-in for a proxy or a busy server that answers
the first few matching requests itself with 502/503/504, without passing them on.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard import Workspace
from runyard.errors import StoreError, StoreMigrationRequired
from runyard.server.app import create_app
from runyard.store.rest_store import RestStore
from store_suite import make_run, scalar

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient


class Gatekeeper(httpx.BaseTransport):
    """Answers the first `times` requests to `method path` with `status` (and `headers`, `body`)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.rule: tuple[str, str, int, int, dict[str, str], dict[str, object]] | None = None
        self.answered = 0  # requests the gatekeeper answered itself
        self.passed: list[tuple[str, str]] = []  # requests that reached the app

    def block(
        self,
        method: str,
        path: str,
        status: int,
        times: int,
        headers: dict[str, str] | None = None,
        body: dict[str, object] | None = None,
    ) -> None:
        self.rule = (method, path, status, times, headers or {}, body or {"error": {"message": "busy"}})
        self.answered = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.rule is not None:
            method, path, status, times, headers, body = self.rule
            if (request.method, request.url.path) == (method, path) and self.answered < times:
                self.answered += 1
                return httpx.Response(status, headers=headers, json=body, request=request)
        self.passed.append((request.method, request.url.path))
        return self.inner.handle_request(request)


@pytest.fixture
def gated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RestStore, Gatekeeper]]:
    monkeypatch.setenv("RUNYARD_SERVER_RETRY_SECONDS", "20")
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    client = TestClient(create_app(ws))
    gate = Gatekeeper(client._transport)
    client._transport = gate  # the app stays real; only what stands in front of it answers early
    yield RestStore(f"http://testserver-{uuid.uuid4().hex[:8]}", client=client), gate
    client.close()


def test_busy_server_is_retried_after_its_retry_after(gated: tuple[RestStore, Gatekeeper]) -> None:
    """503 means the server did not do the work: any request, even one not safe to repeat, is sent
    again, no sooner than Retry-After says."""
    store, gate = gated
    gate.block("POST", "/api/v1/runs", 503, times=2, headers={"Retry-After": "1"})
    started = time.monotonic()
    run = make_run(store, "retries", "made-after-busy")
    assert time.monotonic() - started >= 2.0  # two waits of at least a second each
    assert gate.answered == 2 and gate.passed.count(("POST", "/api/v1/runs")) == 1
    assert store.get_run(run.run_id).number == 1


@pytest.mark.parametrize("status", [502, 504])
def test_gateway_errors_are_retried_only_where_safe(gated: tuple[RestStore, Gatekeeper], status: int) -> None:
    """A proxy's 502/504 may come after the server did the work: a read is sent again; creating a run
    first looks whether the run exists; metric rows without numbers are not sent again."""
    store, gate = gated
    run = make_run(store, "retries")
    gate.block("GET", f"/api/v1/runs/{run.run_id}", status, times=2)
    assert store.get_run(run.run_id).run_id == run.run_id
    assert gate.answered == 2

    gate.passed.clear()
    gate.block("POST", "/api/v1/runs", status, times=1)
    second = make_run(store, "retries", "second")
    assert gate.answered == 1
    assert gate.passed[-2:] == [("GET", "/api/v1/runs/second"), ("POST", "/api/v1/runs")]  # looked, then sent
    assert second.number == 2

    gate.block("POST", "/api/v1/metrics", status, times=1)
    with pytest.raises(StoreError, match=f"answered HTTP {status} .* may or may not have been applied"):
        store.append_metrics([scalar(run.run_id, "m", 1.0)])
    assert gate.answered == 1 and store.count_metric_rows(run.run_id) == 0


def test_retries_stop_after_the_configured_time(
    gated: tuple[RestStore, Gatekeeper], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, gate = gated
    monkeypatch.setenv("RUNYARD_SERVER_RETRY_SECONDS", "1.5")
    gate.block("GET", "/api/v1/experiments", 503, times=1000)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"still answered HTTP 503 after [0-2] s of retries"):
        store.list_experiments()
    assert 0.5 < time.monotonic() - started < 5
    assert gate.answered > 2


def test_a_database_that_needs_an_upgrade_is_not_waited_for(gated: tuple[RestStore, Gatekeeper]) -> None:
    """A 503 that no amount of waiting fixes (the server's database needs `runyard db upgrade`) is
    reported at once."""
    store, gate = gated
    body = {"error": {"message": "run `runyard db upgrade`", "type": "StoreMigrationRequired"}}
    gate.block("GET", "/api/v1/experiments", 503, times=1000, body=body)
    started = time.monotonic()
    with pytest.raises(StoreMigrationRequired, match="runyard db upgrade"):
        store.list_experiments()
    assert time.monotonic() - started < 1 and gate.answered == 1
