"""The model registry's records: names with integer versions assigned in the write transaction."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from runyard.errors import ModelNotFound
from runyard.store import schema as t
from runyard.store.records import ModelRecord
from runyard.store.sql_base import SqlBase, _retry_on_conflict
from runyard.store.validation import validate_model


class SqlModels(SqlBase):
    # -- models ---------------------------------------------------------------------------------
    @staticmethod
    def _to_model(row: Any) -> ModelRecord:
        data = dict(row.data or {})
        return ModelRecord(
            name=row.name,
            version=row.version,
            path=row.path,
            created_time=row.created_time,
            run_id=row.run_id,
            tags=data.get("tags", {}),
            properties=data.get("properties", {}),
            description=data.get("description"),
            framework=data.get("framework"),
        )

    def register_model(self, model: ModelRecord) -> ModelRecord:
        validate_model(model)
        return self._register_model(model)

    @_retry_on_conflict
    def _register_model(self, model: ModelRecord) -> ModelRecord:
        with self._write() as conn:
            version = conn.execute(
                sa.select(sa.func.coalesce(sa.func.max(t.models.c.version), 0) + 1).where(
                    t.models.c.name == model.name
                )
            ).scalar_one()
            path = model.path.replace("{version}", str(version))
            conn.execute(
                t.models.insert().values(
                    name=model.name,
                    version=version,
                    path=path,
                    created_time=model.created_time,
                    run_id=model.run_id,
                    data={
                        "tags": model.tags,
                        "properties": model.properties,
                        "description": model.description,
                        "framework": model.framework,
                    },
                )
            )
        return ModelRecord(
            name=model.name,
            version=int(version),
            path=path,
            created_time=model.created_time,
            tags=model.tags,
            properties=model.properties,
            description=model.description,
            run_id=model.run_id,
            framework=model.framework,
        )

    def get_model(self, name: str, version: int | None = None) -> ModelRecord:
        query = sa.select(t.models).where(t.models.c.name == name)
        query = (
            query.where(t.models.c.version == version)
            if version is not None
            else query.order_by(t.models.c.version.desc())
        )
        with self._read() as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            raise ModelNotFound(name, version, self.where)
        return self._to_model(row)

    def list_models(self, name: str | None = None, latest: bool = False) -> list[ModelRecord]:
        query = sa.select(t.models).order_by(t.models.c.name, t.models.c.version.desc())
        if name is not None:
            query = query.where(t.models.c.name == name)
        with self._read() as conn:
            records = [self._to_model(r) for r in conn.execute(query)]
        if latest:
            seen: set[str] = set()
            records = [m for m in records if not (m.name in seen or seen.add(m.name))]  # type: ignore[func-returns-value]
        return records
