"""The only package that knows SQL, files or URLs.

Names load lazily (PEP 562): a job that only logs metrics imports `runyard.store.records` and never
pays for SQLAlchemy, httpx or fsspec, which `SqlStore`, `RestStore` and `ArtifactStore` bring with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runyard.lazy_exports import LazyExports

if TYPE_CHECKING:
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

_RECORDS = "runyard.store.records"
#: Where each lazily loaded public name lives.
_SOURCES = {
    "ArtifactStore": "runyard.store.artifacts",
    "Store": "runyard.store.base",
    "SqlStore": "runyard.store.sql_store",
    **{
        name: _RECORDS
        for name in (
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
            "TokenRecord",
        )
    },
}


_exports = LazyExports(__name__, _SOURCES, globals())


def __getattr__(name: str) -> Any:
    return _exports.load(name)


def open_store(uri: str, *, workspace_label: str | None = None, token: str | None = None) -> Store:
    """The store behind a tracking URI: sqlite:///…, postgresql://… or http(s):// (a runyard server)."""
    from runyard.errors import InvalidInputError

    if uri.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:")):
        from runyard.store.sql_store import SqlStore

        return SqlStore(uri, workspace_label=workspace_label)
    if uri.startswith(("http://", "https://")):
        from runyard.store.rest_store import RestStore

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


def __dir__() -> list[str]:
    return _exports.names()
