"""Bring a database to the schema this runyard expects, or say exactly what to run."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from runyard.errors import StoreMigrationRequired
from runyard.store.schema import SCHEMA_HEAD

SCRIPT_LOCATION = str(Path(__file__).parent)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine) -> None:
    """Run every pending migration. Alembic is imported here only: opening a current store skips it."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")


def ensure_schema(engine: sa.Engine, uri: str) -> None:
    """Create the schema in an empty database; refuse to touch an older one without `runyard db upgrade`."""
    revision = current_revision(engine)
    if revision == SCHEMA_HEAD:
        return
    if revision is None:
        with engine.connect() as conn:
            if sa.inspect(conn).get_table_names():
                raise StoreMigrationRequired(uri, None, SCHEMA_HEAD)
        upgrade(engine)
        return
    raise StoreMigrationRequired(uri, revision, SCHEMA_HEAD)
