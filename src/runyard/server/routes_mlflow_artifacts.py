"""MLflow's artifact proxy (`mlflow-artifacts:` URIs) over the workspace's artifact store.

(Being written for issue 16.)
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from runyard.store import ArtifactStore, SqlStore


def mlflow_artifact_router(store: SqlStore, artifacts: ArtifactStore, principal: Any) -> APIRouter:
    return APIRouter(prefix="/api/2.0/mlflow-artifacts", tags=["mlflow"])
