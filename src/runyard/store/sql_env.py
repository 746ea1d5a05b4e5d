"""Registered environments: their rows.

The rules a definition must follow are in store/env_rules.py, checked here before each write so both
databases and the server accept the same definitions. Which version comes next is decided inside the
write transaction; two writers that pick the same number meet the unique (name, version) index, and the
loser retries (so concurrent registrations never share a version, and an identical concurrent one finds
the version the winner wrote).

Versions are immutable: there is no update or delete. Registering a definition whose hash equals the
latest version's returns that version unchanged, as v1 does. The stored definition carries its own name
and version (v1's registered environment JSON has "version": "3"), which the hash leaves out.
"""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from runyard.errors import EnvironmentNotFound
from runyard.store import env_rules
from runyard.store import schema as t
from runyard.store.records import EnvironmentRecord
from runyard.store.sql_base import SqlBase, _retry_on_conflict


class SqlEnv(SqlBase):
    @staticmethod
    def _to_environment(row: Any) -> EnvironmentRecord:
        return EnvironmentRecord(
            name=row.name,
            version=int(row.version),
            definition=dict(row.definition or {}),
            definition_hash=row.definition_hash,
            created_time=row.created_time,
            description=row.description,
        )

    def register_environment(
        self, name: str, definition: Any, description: str | None = None
    ) -> EnvironmentRecord:
        name, plain = env_rules.validate_environment(name, definition, description)
        return self._register_environment(name, plain, env_rules.definition_hash(plain), description)

    @_retry_on_conflict
    def _register_environment(
        self, name: str, definition: dict[str, Any], digest: str, description: str | None
    ) -> EnvironmentRecord:
        envs = t.environments
        with self._write() as conn:
            latest = conn.execute(
                sa.select(envs).where(envs.c.name == name).order_by(envs.c.version.desc()).limit(1)
            ).first()
            if latest is not None and latest.definition_hash == digest:
                return self._to_environment(latest)
            version = 1 if latest is None else int(latest.version) + 1
            stored = EnvironmentRecord(
                name=name,
                version=version,
                definition={**definition, "version": str(version)},
                definition_hash=digest,
                created_time=time.time(),
                description=description,
            )
            conn.execute(
                envs.insert().values(
                    name=name,
                    version=version,
                    definition=stored.definition,
                    definition_hash=digest,
                    created_time=stored.created_time,
                    description=description,
                )
            )
        return stored

    def _missing_environment(self, name: str, version: int | None) -> EnvironmentNotFound:
        known = [r.name for r in self.list_environments()]
        listing = ", ".join(repr(n) for n in known[:20]) + (", …" if len(known) > 20 else "")
        if version is not None and name in known:
            versions = [r.version for r in self.list_environments(name)]
            return EnvironmentNotFound(
                f"No version {version} of environment {name!r} in workspace {self.where} (it has versions "
                f"{', '.join(str(v) for v in sorted(versions))}). Leave the version out for the latest."
            )
        return EnvironmentNotFound(
            f"No environment {name!r} in workspace {self.where} (registered: {listing or 'none'}). "
            "Register one with env.register(ws); curated names (AzureML-...) are resolved by "
            "Environment.get, never registered."
        )

    def get_environment(self, name: str, version: int | None = None) -> EnvironmentRecord:
        envs = t.environments
        query = sa.select(envs).where(envs.c.name == name)
        query = query.where(envs.c.version == version) if version is not None else query
        with self._read() as conn:
            row = conn.execute(query.order_by(envs.c.version.desc()).limit(1)).first()
        if row is None:
            raise self._missing_environment(name, version)
        return self._to_environment(row)

    def list_environments(self, name: str | None = None) -> list[EnvironmentRecord]:
        envs = t.environments
        if name is not None:
            query = sa.select(envs).where(envs.c.name == name).order_by(envs.c.version.desc())
        else:  # only the newest version of each name leaves the database
            newest = (
                sa.select(envs.c.name, sa.func.max(envs.c.version).label("version"))
                .group_by(envs.c.name)
                .subquery()
            )
            query = (
                sa.select(envs)
                .join(newest, sa.and_(envs.c.name == newest.c.name, envs.c.version == newest.c.version))
                .order_by(envs.c.name)
            )
        with self._read() as conn:
            return [self._to_environment(r) for r in conn.execute(query)]
