"""A run token stops working once its run has ended (after a grace period for the wrap-up)."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from runyard import Experiment, Workspace
from runyard.server import auth
from runyard.server.app import create_app
from runyard.server.auth import create_token


def test_run_token_dies_with_its_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = Workspace.create(tmp_path / ".runyard")
    run = Experiment(ws, "tokens").start_logging()
    token, _ = create_token(ws.store, "run", run_id=run.id)  # type: ignore[arg-type]
    client = TestClient(create_app(ws, auth=True))
    headers = {"Authorization": f"Bearer {token}"}

    assert (
        client.put(f"/api/v1/runs/{run.id}/tags", json={"tags": {"a": "1"}}, headers=headers).status_code
        == 204
    )
    run.complete()
    # Within the grace period the wrap-up (spool replay, last log lines) may still write.
    assert client.get(f"/api/v1/runs/{run.id}", headers=headers).status_code == 200

    monkeypatch.setattr(auth, "RUN_TOKEN_GRACE_SECONDS", 0.0)
    response = client.get(f"/api/v1/runs/{run.id}", headers=headers)
    assert response.status_code == 401
    assert response.json()["details"][0]["code"] == "InvalidOrExpiredToken"
