"""Datastores, versioned datasets and lineage: their rows.

The rules every record must follow are in store/data_rules.py (validate_datastore, validate_dataset,
validate_dataset_use), checked here before each write so that both databases and the server accept the
same records. What needs the database to decide (does the run exist, is the name taken, which version
comes next) is decided inside the write transaction.

Datastore names are case-insensitive as in v1: stored lowercased and looked up lowercased. The built-in
'workspaceblobstore' and 'workspacefilestore' are never rows (data/datastore.py serves them). Dataset
versions are immutable: there is no update, and registering the same content again returns the version
that holds it. A version's content_hash is computed here from its files, never taken from the caller:
step reuse fingerprints a registered input by it, so a record claiming another version's hash for other
files would make a step reuse results computed from different bytes.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from runyard.errors import ConflictError, DatasetNotFound, DatastoreNotFound, InvalidInputError, RunNotFound
from runyard.store import data_rules as v
from runyard.store import schema as t
from runyard.store.records import DatasetRecord, DatasetUse, DatastoreRecord
from runyard.store.sql_base import SqlBase, _retry_on_conflict

DEFAULT_DATASTORE_KEY = "default_datastore"


def _canonical(value: Any) -> str:
    """One spelling of a JSON value, so equal definitions compare equal whatever their key order."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class SqlData(SqlBase):
    # -- datastores -----------------------------------------------------------------------------
    @staticmethod
    def _to_datastore(row: Any) -> DatastoreRecord:
        return DatastoreRecord(
            name=row.name,
            kind=row.kind,
            url=row.url,
            options=dict(row.options or {}),
            secret_names=tuple(row.secret_names or ()),
            created_time=row.created_time,
            data=dict(row.data or {}),
        )

    def _missing_datastore(self, name: str) -> DatastoreNotFound:
        if v.is_builtin_datastore(name):
            return DatastoreNotFound(
                f"'{name.lower()}' is a built-in datastore of the workspace, not a registered record; "
                f"use Datastore(ws, '{name.lower()}') (or ws.get_default_datastore()) to reach it."
            )
        known = ", ".join(repr(r.name) for r in self.list_datastores()) or "none registered"
        builtin = ", ".join(repr(b) for b in v.BUILTIN_DATASTORES)
        return DatastoreNotFound(
            f"No datastore {name!r} in workspace {self.where} (known: {builtin}, {known}). "
            "Register it with Datastore.register_fsspec(ws, name, url) or a Datastore.register_* method."
        )

    def save_datastore(self, record: DatastoreRecord, overwrite: bool = False) -> DatastoreRecord:
        name = v.validate_datastore(record)
        values = {
            "kind": record.kind,
            "url": record.url,
            "options": dict(record.options),
            "secret_names": list(record.secret_names),
            "data": dict(record.data),
        }
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.datastores.c.created_time).where(t.datastores.c.name == name)
            ).first()
            if row is not None and not overwrite:
                raise ConflictError(
                    f"A datastore named {name!r} already exists in {self.where}. Pass overwrite=True to "
                    "replace it, or choose another name."
                )
            if row is not None:
                created = row.created_time
                conn.execute(t.datastores.update().where(t.datastores.c.name == name).values(**values))
            else:
                created = record.created_time or time.time()
                conn.execute(t.datastores.insert().values(name=name, created_time=created, **values))
        return replace(record, name=name, secret_names=tuple(record.secret_names), created_time=created)

    def get_datastore(self, name: str) -> DatastoreRecord:
        key = name.lower() if isinstance(name, str) else name
        with self._read() as conn:
            row = conn.execute(sa.select(t.datastores).where(t.datastores.c.name == key)).first()
        if row is None:
            raise self._missing_datastore(name)
        return self._to_datastore(row)

    def list_datastores(self) -> list[DatastoreRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.datastores).order_by(t.datastores.c.name)).all()
        return [self._to_datastore(r) for r in rows]

    def delete_datastore(self, name: str) -> None:
        v.refuse_builtin_datastore(name, "deleted")
        key = name.lower()
        with self._write() as conn:
            deleted = conn.execute(t.datastores.delete().where(t.datastores.c.name == key)).rowcount
            if deleted:
                settings = t.workspace_settings
                conn.execute(
                    settings.delete().where(settings.c.key == DEFAULT_DATASTORE_KEY, settings.c.value == key)
                )
        if not deleted:
            raise self._missing_datastore(name)

    def get_default_datastore_name(self) -> str | None:
        settings = t.workspace_settings
        with self._read() as conn:
            return conn.execute(
                sa.select(settings.c.value).where(settings.c.key == DEFAULT_DATASTORE_KEY)
            ).scalar()

    def set_default_datastore_name(self, name: str) -> None:
        try:
            key = v.check_datastore_name(name)
        except InvalidInputError:
            raise self._missing_datastore(name) from None  # no registered store can have that name
        with self._write() as conn:
            if key not in v.BUILTIN_DATASTORES:
                found = conn.execute(sa.select(t.datastores.c.name).where(t.datastores.c.name == key)).first()
                if found is None:
                    raise self._missing_datastore(name)
            stmt = self._insert(t.workspace_settings).values(key=DEFAULT_DATASTORE_KEY, value=key)
            conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": key}))

    # -- datasets -------------------------------------------------------------------------------
    @staticmethod
    def _to_dataset(row: Any) -> DatasetRecord:
        data = dict(row.data or {})
        return DatasetRecord(
            id=row.id,
            name=row.name,
            version=row.version,
            kind=row.kind,
            definition=dict(row.definition or {}),
            files=list(row.files or []),
            content_hash=row.content_hash,
            created_time=row.created_time,
            description=data.get("description"),
            tags=dict(data.get("tags") or {}),
            run_id=row.run_id,
        )

    def register_dataset(self, record: DatasetRecord, create_new_version: bool = False) -> DatasetRecord:
        v.validate_dataset(record)
        record = replace(record, content_hash=v.record_content_hash(record.files))
        return self._register_dataset(record, create_new_version)

    @_retry_on_conflict
    def _register_dataset(self, record: DatasetRecord, create_new_version: bool) -> DatasetRecord:
        with self._write() as conn:
            latest = conn.execute(
                sa.select(t.datasets)
                .where(t.datasets.c.name == record.name)
                .order_by(t.datasets.c.version.desc())
                .limit(1)
            ).first()
            if latest is not None and not create_new_version:
                existing = self._to_dataset(latest)
                if (existing.kind, _canonical(existing.definition), existing.content_hash) == (
                    record.kind,
                    _canonical(record.definition),
                    record.content_hash,
                ):
                    return existing
                raise ConflictError(
                    f"Dataset {record.name!r} already exists in {self.where} (latest version "
                    f"{existing.version}) with a different definition or different files. Pass "
                    "create_new_version=True to register this as a new version, or choose another name."
                )
            stored = replace(
                record,
                id=uuid.uuid4().hex,
                version=1 if latest is None else int(latest.version) + 1,
                files=[dict(f) for f in record.files],
                created_time=record.created_time or time.time(),
            )
            conn.execute(
                t.datasets.insert().values(
                    id=stored.id,
                    name=stored.name,
                    version=stored.version,
                    kind=stored.kind,
                    content_hash=stored.content_hash,
                    created_time=stored.created_time,
                    run_id=stored.run_id,
                    definition=dict(stored.definition),
                    files=stored.files,
                    data={"description": stored.description, "tags": dict(stored.tags)},
                )
            )
        return stored

    def get_dataset(self, name: str, version: int | None = None) -> DatasetRecord:
        query = sa.select(t.datasets).where(t.datasets.c.name == name)
        query = (
            query.where(t.datasets.c.version == version)
            if version is not None
            else query.order_by(t.datasets.c.version.desc())
        )
        with self._read() as conn:
            row = conn.execute(query.limit(1)).first()
        if row is None:
            which = f"version {version} of dataset {name!r}" if version is not None else f"dataset {name!r}"
            raise DatasetNotFound(
                f"No {which} in workspace {self.where}. List datasets with Dataset.get_all(ws) or "
                "ws.datasets; register one with dataset.register(ws, name)."
            )
        return self._to_dataset(row)

    def get_dataset_by_id(self, dataset_id: str) -> DatasetRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(t.datasets).where(t.datasets.c.id == dataset_id)).first()
        if row is None:
            raise DatasetNotFound(
                f"No dataset with id {dataset_id!r} in workspace {self.where}. Ids name one registered "
                "version; list them with Dataset.get_all(ws)."
            )
        return self._to_dataset(row)

    def list_datasets(self, name: str | None = None, latest: bool = False) -> list[DatasetRecord]:
        query = sa.select(t.datasets).order_by(t.datasets.c.name, t.datasets.c.version.desc())
        if name is not None:
            query = query.where(t.datasets.c.name == name)
        if latest:  # only the newest version of each name leaves the database (file lists can be long)
            newest = (
                sa.select(t.datasets.c.name, sa.func.max(t.datasets.c.version).label("version"))
                .group_by(t.datasets.c.name)
                .subquery()
            )
            query = query.join(
                newest,
                sa.and_(t.datasets.c.name == newest.c.name, t.datasets.c.version == newest.c.version),
            )
        with self._read() as conn:
            return [self._to_dataset(r) for r in conn.execute(query)]

    # -- lineage --------------------------------------------------------------------------------
    @staticmethod
    def _to_use(row: Any) -> DatasetUse:
        return DatasetUse(
            run_id=row.run_id,
            direction=row.direction,
            name=row.name,
            content_hash=row.content_hash,
            dataset_id=row.dataset_id,
            detail=dict(row.detail or {}),
            created_time=row.created_time,
        )

    def record_dataset_uses(self, uses: Sequence[DatasetUse]) -> None:
        for use in uses:
            v.validate_dataset_use(use)
        if not uses:
            return
        now = time.time()
        last: dict[tuple[str, str, str], DatasetUse] = {}
        for use in uses:  # the same (run, direction, name) twice in a batch: the last one counts
            last.pop((use.run_id, use.direction, use.name), None)
            last[(use.run_id, use.direction, use.name)] = use
        with self._write() as conn:
            run_ids = {u.run_id for u in last.values()}
            found = set(
                conn.execute(sa.select(t.runs.c.run_id).where(t.runs.c.run_id.in_(run_ids))).scalars()
            )
            for run_id in sorted(run_ids - found):
                raise RunNotFound(run_id, self.where)
            dataset_ids = {u.dataset_id for u in last.values() if u.dataset_id is not None}
            known = set(
                conn.execute(sa.select(t.datasets.c.id).where(t.datasets.c.id.in_(dataset_ids))).scalars()
            )
            for dataset_id in sorted(dataset_ids - known):
                raise DatasetNotFound(
                    f"Lineage names dataset id {dataset_id!r}, which is not registered in {self.where}; "
                    "record unregistered data with dataset_id=None and a detail saying what it was."
                )
            stmt = self._insert(t.dataset_uses)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["run_id", "direction", "name"],
                    set_={
                        "dataset_id": stmt.excluded.dataset_id,
                        "content_hash": stmt.excluded.content_hash,
                        "created_time": stmt.excluded.created_time,
                        "detail": stmt.excluded.detail,
                    },
                ),
                [
                    {
                        "run_id": u.run_id,
                        "direction": u.direction,
                        "name": u.name,
                        "dataset_id": u.dataset_id,
                        "content_hash": u.content_hash,
                        "created_time": u.created_time or now,
                        "detail": dict(u.detail),
                    }
                    for u in last.values()
                ],
            )

    def list_dataset_uses(
        self, run_id: str | None = None, dataset_id: str | None = None, dataset_name: str | None = None
    ) -> list[DatasetUse]:
        uses = t.dataset_uses
        query = sa.select(uses)
        if run_id is not None:
            query = query.where(uses.c.run_id == run_id)
        if dataset_id is not None:
            query = query.where(uses.c.dataset_id == dataset_id)
        if dataset_name is not None:
            query = query.join(t.datasets, t.datasets.c.id == uses.c.dataset_id).where(
                t.datasets.c.name == dataset_name
            )
        query = query.order_by(uses.c.created_time, uses.c.run_id, uses.c.direction, uses.c.name)
        with self._read() as conn:
            return [self._to_use(r) for r in conn.execute(query)]
