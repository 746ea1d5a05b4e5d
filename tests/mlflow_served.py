"""A real `runyard server --auth` for MLflow tests, with a write and a read token, and MlflowClients that
send a chosen token. Each test module starts its own (module-scoped), so modules never see each other's runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from runyard import Workspace
from runyard.server.auth import create_token
from runyard.store import SqlStore
from server_process import ServerProcess, running_server


@dataclass
class Served:
    ws: Workspace
    server: ServerProcess
    tokens: dict[str, str]

    @property
    def store(self) -> SqlStore:
        assert isinstance(self.ws.store, SqlStore)
        return self.ws.store

    def http(self, token: str | None = "write") -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60)


@contextmanager
def served_with_tokens(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Served]:
    root = tmp_path_factory.mktemp(name)
    ws = Workspace.create(root / "ws" / ".runyard")
    store = ws.store
    assert isinstance(store, SqlStore)
    tokens = {"write": create_token(store, "write")[0], "read": create_token(store, "read")[0]}
    with running_server(ws.path, root / "server.log", auth=True) as server:
        yield Served(ws, server, tokens)
        server.check_healthy()


def token_clients(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Any]]:
    """`client("read")`: an MlflowClient sending that token (the fluent API uses the last one chosen).
    Ends any fluent run a test left open."""
    import mlflow
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", served.server.url)
    mlflow.set_tracking_uri(served.server.url)

    def as_token(name: str) -> Any:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", served.tokens[name])
        return MlflowClient(served.server.url)

    as_token("write")
    yield as_token
    while mlflow.active_run() is not None:
        mlflow.end_run()
    served.server.check_healthy()


def refused(call: Callable[[], object], code: str) -> str:
    """Run `call`, expect MLflow's exception with `code`; its message without the code prefix."""
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as info:
        call()
    assert info.value.error_code == code, info.value.message
    return info.value.message.removeprefix(f"{code}: ")
