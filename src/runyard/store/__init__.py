"""The only package that knows SQL, files or URLs."""

from runyard.store.artifacts import ArtifactStore
from runyard.store.base import Store
from runyard.store.records import ExperimentRecord, MetricRow, MetricSummary, ModelRecord, RunRecord
from runyard.store.sql_store import SqlStore


def open_store(uri: str, *, workspace_label: str | None = None) -> Store:
    """The store behind a tracking URI: sqlite:///… or postgresql://…"""
    from runyard.errors import InvalidInputError

    if uri.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        return SqlStore(uri, workspace_label=workspace_label)
    raise InvalidInputError(
        f"Unsupported tracking URI {uri!r}. Use sqlite:///PATH/runyard.db or postgresql://USER@HOST:PORT/DB."
    )


def upgrade_store(uri: str) -> None:
    """Run pending schema migrations on the database at `uri` (`runyard db upgrade`)."""
    from runyard.store.migrations.runner import upgrade
    from runyard.store.sql_base import engine_for

    upgrade(engine_for(uri))


__all__ = [
    "ArtifactStore",
    "ExperimentRecord",
    "MetricRow",
    "MetricSummary",
    "ModelRecord",
    "RunRecord",
    "SqlStore",
    "Store",
    "open_store",
]
