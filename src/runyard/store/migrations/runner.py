"""Bring a database to the schema this runyard expects, or say exactly what to run."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from runyard.errors import StoreMigrationRequired, StoreTooNew
from runyard.store.schema import SCHEMA_HEAD

SCRIPT_LOCATION = str(Path(__file__).parent)


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def known_revisions() -> set[str]:
    """Every revision this runyard's migrations know (imports Alembic: only on the slow paths)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return {r.revision for r in ScriptDirectory.from_config(config).walk_revisions()}


def _refuse_unknown(uri: str, revision: str | None) -> None:
    """A revision this runyard has no migration for was written by a newer one: neither opening it nor
    `runyard db upgrade` can work, so say which schema it needs instead of an Alembic traceback."""
    if revision is not None and revision != SCHEMA_HEAD and revision not in known_revisions():
        raise StoreTooNew(uri, revision, SCHEMA_HEAD)


def upgrade(engine: sa.Engine, uri: str | None = None) -> None:
    """Run every pending migration. Alembic is imported here only: opening a current store skips it."""
    from alembic import command
    from alembic.config import Config

    _refuse_unknown(uri or engine.url.render_as_string(hide_password=True), current_revision(engine))
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
        upgrade(engine, uri)
        return
    _refuse_unknown(uri, revision)
    raise StoreMigrationRequired(uri, revision, SCHEMA_HEAD)
