"""Named compute targets: their rules and their rows.

The rules live here, next to the only writer, and the Python API (core/compute_target.py) calls the
same `validate_compute_target` before it asks the store: a bad name fails at the user's call with v1's
exception, and a record sent straight to the server is refused for the same reason.
"""

from __future__ import annotations

import math
import re
from typing import Any

import sqlalchemy as sa

from runyard import config
from runyard.errors import ComputeTargetException, ComputeTargetNotFound, ConflictError
from runyard.store import schema as t
from runyard.store.records import ComputeTargetRecord
from runyard.store.sql_base import SqlBase
from runyard.store.validation import check_json, check_text

#: The kinds of named target runyard knows, with v1's name rules for each (Azure's service rules:
#: letters, digits and '-', starting with a letter; 2-16 characters for a cluster, 3-24 for an instance).
#: Matched with fullmatch: `$` would also match before a trailing newline, and 'local\n' is not 'local'.
NAME_RULES = {
    "AmlCompute": (re.compile(r"[A-Za-z][A-Za-z0-9-]{1,15}"), "2 to 16"),
    "ComputeInstance": (re.compile(r"[A-Za-z][A-Za-z0-9-]{2,23}"), "3 to 24"),
}
LOCAL = config.LOCAL_TARGET
MAX_NODES_LIMIT = 10_000


def check_compute_name(name: Any, kind: str = "AmlCompute") -> str:
    """ComputeTargetException unless `name` follows v1's rules for `kind` (and is not 'local')."""
    pattern, length = NAME_RULES.get(kind, NAME_RULES["AmlCompute"])
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise ComputeTargetException(
            f"Compute target name {name!r} is not valid for {kind}: use {length} letters, digits or '-', "
            "starting with a letter (for example 'cpu-cluster')."
        )
    if name.lower() == LOCAL:
        raise ComputeTargetException(
            "'local' is the built-in compute target (this machine) and cannot be created or replaced; "
            "choose another name, or pass compute_target='local' to use it."
        )
    return name


def validate_compute_target(record: ComputeTargetRecord) -> None:
    """Everything a stored target must satisfy; ComputeTargetException (v1's error) naming the fix."""
    if record.kind not in NAME_RULES:
        raise ComputeTargetException(
            f"Unknown compute target kind {record.kind!r}; runyard creates {' and '.join(NAME_RULES)} targets."
        )
    check_compute_name(record.name, record.kind)
    if record.vm_size != "":  # v1's default is '' (the service picks a size); here it is only a label
        check_text("vm_size", record.vm_size, limit=255, controls=False)
    for what in ("min_nodes", "max_nodes"):
        value = getattr(record, what)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NODES_LIMIT:
            raise ComputeTargetException(
                f"{what} must be a whole number from 0 to {MAX_NODES_LIMIT}, got {value!r}."
            )
    if record.max_nodes < 1:
        raise ComputeTargetException(
            "max_nodes must be at least 1: it is how many runs of this target may run at once."
        )
    if record.max_nodes < record.min_nodes:
        raise ComputeTargetException(
            f"max_nodes ({record.max_nodes}) is smaller than min_nodes ({record.min_nodes}); "
            "give max_nodes >= min_nodes."
        )
    if isinstance(record.created_time, bool) or not (
        isinstance(record.created_time, int | float) and math.isfinite(record.created_time)
    ):
        raise ComputeTargetException(f"created_time must be a finite number, got {record.created_time!r}.")
    check_json("The compute target's data", record.data)


class SqlCompute(SqlBase):
    @staticmethod
    def _to_compute(row: Any) -> ComputeTargetRecord:
        return ComputeTargetRecord(
            name=row.name,
            kind=row.kind,
            vm_size=row.vm_size,
            min_nodes=row.min_nodes,
            max_nodes=row.max_nodes,
            created_time=row.created_time,
            data=dict(row.data or {}),
        )

    @staticmethod
    def _compute_values(record: ComputeTargetRecord) -> dict[str, Any]:
        return {
            "kind": record.kind,
            "vm_size": record.vm_size,
            "min_nodes": record.min_nodes,
            "max_nodes": record.max_nodes,
            "data": record.data,
        }

    def _missing_target(self, name: str) -> ComputeTargetException:
        known = ", ".join(repr(n) for n in [LOCAL, *(r.name for r in self.list_compute_targets())])
        return ComputeTargetNotFound(
            f"ComputeTargetNotFound: no compute target {name!r} in workspace {self.where} (known: {known}). "
            f"Create it with ComputeTarget.create(ws, {name!r}, AmlCompute.provisioning_configuration(max_nodes=4)), "
            "or use compute_target='local'."
        )

    def create_compute_target(self, record: ComputeTargetRecord) -> ComputeTargetRecord:
        validate_compute_target(record)
        with self._write() as conn:
            stmt = self._insert(t.compute_targets).values(
                name=record.name, created_time=record.created_time, **self._compute_values(record)
            )
            # RETURNING, not rowcount: PostgreSQL's driver reports a row for a skipped ON CONFLICT insert
            inserted = conn.execute(
                stmt.on_conflict_do_nothing(index_elements=["name"]).returning(t.compute_targets.c.name)
            ).first()
        if inserted is None:
            raise ConflictError(
                f"A compute target named {record.name!r} already exists in {self.where}. Use it with "
                f"ComputeTarget(ws, {record.name!r}), change it with update(), or delete() it first."
            )
        return record

    def update_compute_target(self, record: ComputeTargetRecord) -> ComputeTargetRecord:
        validate_compute_target(record)
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.compute_targets).where(t.compute_targets.c.name == record.name)
            ).first()
            if row is None:
                raise self._missing_target(record.name)
            if row.kind != record.kind:
                raise ConflictError(
                    f"Compute target {record.name!r} is a {row.kind}, not a {record.kind}; delete() it first "
                    "or choose another name."
                )
            conn.execute(
                t.compute_targets.update()
                .where(t.compute_targets.c.name == record.name)
                .values(**self._compute_values(record))
            )
            created = row.created_time
        return ComputeTargetRecord(
            name=record.name,
            kind=record.kind,
            vm_size=record.vm_size,
            min_nodes=record.min_nodes,
            max_nodes=record.max_nodes,
            created_time=created,
            data=record.data,
        )

    def get_compute_target(self, name: str) -> ComputeTargetRecord:
        with self._read() as conn:
            row = conn.execute(sa.select(t.compute_targets).where(t.compute_targets.c.name == name)).first()
        if row is None:
            raise self._missing_target(name)
        return self._to_compute(row)

    def list_compute_targets(self) -> list[ComputeTargetRecord]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.compute_targets).order_by(t.compute_targets.c.name)).all()
        return [self._to_compute(r) for r in rows]

    def delete_compute_target(self, name: str) -> None:
        if name == LOCAL:
            raise ComputeTargetException(
                "'local' is built in (this machine's processes) and cannot be deleted."
            )
        with self._write() as conn:
            deleted = conn.execute(
                t.compute_targets.delete().where(t.compute_targets.c.name == name)
            ).rowcount
        if not deleted:
            raise self._missing_target(name)
