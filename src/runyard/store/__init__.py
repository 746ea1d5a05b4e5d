"""The only package that knows SQL, files or URLs."""

from runyard.store.artifacts import ArtifactStore
from runyard.store.base import Store
from runyard.store.records import (
    ChartSeries,
    ComputeTargetRecord,
    DatasetRecord,
    DatasetUse,
    DatastoreRecord,
    ExperimentRecord,
    ExperimentSummary,
    MetricBatch,
    MetricColumn,
    MetricRow,
    MetricSummary,
    ModelRecord,
    PipelineEndpointRecord,
    PublishedPipelineRecord,
    RunPage,
    RunQuery,
    RunRecord,
    ScheduleRecord,
    TokenRecord,
)
from runyard.store.sql_store import SqlStore


def open_store(uri: str, *, workspace_label: str | None = None, token: str | None = None) -> Store:
    """The store behind a tracking URI: sqlite:///…, postgresql://… or http(s):// (a runyard server)."""
    from runyard.errors import InvalidInputError
    from runyard.store.rest_store import RestStore

    if uri.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        return SqlStore(uri, workspace_label=workspace_label)
    if uri.startswith(("http://", "https://")):
        return RestStore(uri, token)
    raise InvalidInputError(
        f"Unsupported tracking URI {uri!r}. Use sqlite:///PATH/runyard.db, postgresql://USER@HOST:PORT/DB "
        "or http://HOST:PORT (a runyard server)."
    )


def upgrade_store(uri: str) -> None:
    """Run pending schema migrations on the database at `uri` (`runyard db upgrade`). Database errors
    (a damaged file, an unreachable server) become the same one-line StoreErrors that opening gives."""
    import sqlalchemy as sa

    from runyard.store.migrations.runner import upgrade
    from runyard.store.sql_base import describe_database_error, engine_for, refuse_empty_workspace_file

    refuse_empty_workspace_file(uri)
    try:
        upgrade(engine_for(uri), uri)
    except sa.exc.DBAPIError as exc:
        raise describe_database_error(uri, exc, "schema upgrade") from exc


__all__ = [
    "ArtifactStore",
    "ChartSeries",
    "ComputeTargetRecord",
    "DatasetRecord",
    "DatasetUse",
    "DatastoreRecord",
    "ExperimentRecord",
    "ExperimentSummary",
    "MetricBatch",
    "MetricColumn",
    "MetricRow",
    "MetricSummary",
    "ModelRecord",
    "PipelineEndpointRecord",
    "PublishedPipelineRecord",
    "RunPage",
    "RunQuery",
    "RunRecord",
    "ScheduleRecord",
    "SqlStore",
    "Store",
    "TokenRecord",
    "open_store",
]
