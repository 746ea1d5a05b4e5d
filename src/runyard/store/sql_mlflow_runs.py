"""MLflow's experiment and run lifecycle: experiment tags, rename, delete/restore, artifact location; run
soft delete/restore; and batched reads (tags, params, experiments of many runs at once) so that MLflow's
run listings cost a fixed number of queries.

Deleting an experiment marks its runs deleted too and restoring brings them back, as MLflow's own
store does; runyard's API keeps listing them (lifecycle_stage is MLflow's notion only).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from runyard.errors import ConflictError, InvalidInputError, NotFoundError, RunNotFound
from runyard.status import TERMINAL_STATUSES
from runyard.store import schema as t
from runyard.store import validation as v
from runyard.store.records import ExperimentRecord
from runyard.store.sql_base import SqlBase


def experiment_from_row(row: Any) -> ExperimentRecord:
    return ExperimentRecord(
        id=row.id,
        name=row.name,
        created_time=row.created_time,
        lifecycle_stage=row.lifecycle_stage or "active",
        artifact_location=row.artifact_location,
        last_update_time=row.last_update_time,
    )


#: Ids per IN (...) list: well under SQLite's and PostgreSQL's limits on bound parameters.
IN_CHUNK = 5000
#: The run_type of runs MLflow clients create (mlflow_api/convert.py uses the same string).
MLFLOW_RUN_TYPE = "mlflow.run"


class ExperimentNotFoundById(NotFoundError):
    def __init__(self, experiment_id: str, where: str) -> None:
        super().__init__(
            f"No experiment with id {experiment_id!r} in {where}; list them with `runyard experiment list`."
        )


class SqlMlflowRuns(SqlBase):
    # -- experiments ----------------------------------------------------------------------------
    def get_experiment_by_id(self, experiment_id: str) -> ExperimentRecord:
        found = self.get_experiments_by_id([experiment_id])
        if experiment_id not in found:
            raise ExperimentNotFoundById(experiment_id, self.where)
        return found[experiment_id]

    def get_experiments_by_id(self, experiment_ids: Sequence[str]) -> dict[str, ExperimentRecord]:
        if not experiment_ids:
            return {}
        with self._read() as conn:
            rows = conn.execute(sa.select(t.experiments).where(t.experiments.c.id.in_(list(experiment_ids))))
            return {r.id: experiment_from_row(r) for r in rows}

    def create_mlflow_experiment(
        self, name: str, artifact_location: str | None, tags: Mapping[str, str]
    ) -> ExperimentRecord:
        """A new experiment; ConflictError if the name is taken (MLflow never reuses a name)."""
        v.check_experiment_name(name)
        now = time.time()
        with self._write() as conn:
            taken = conn.execute(sa.select(t.experiments.c.id).where(t.experiments.c.name == name)).first()
            if taken is not None:
                raise ConflictError(f"Experiment(name={name}) already exists.")
            exp_id = uuid.uuid4().hex
            conn.execute(
                t.experiments.insert().values(
                    id=exp_id,
                    name=name,
                    created_time=now,
                    lifecycle_stage="active",
                    artifact_location=artifact_location,
                    last_update_time=now,
                )
            )
            if tags:
                conn.execute(
                    t.experiment_tags.insert(),
                    [{"experiment_id": exp_id, "key": k, "value": val} for k, val in tags.items()],
                )
        return self.get_experiment_by_id(exp_id)

    def get_experiment_tags(self, experiment_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {e: {} for e in experiment_ids}
        if not experiment_ids:
            return out
        with self._read() as conn:
            rows = conn.execute(
                sa.select(t.experiment_tags).where(
                    t.experiment_tags.c.experiment_id.in_(list(experiment_ids))
                )
            )
            for r in rows:
                out[r.experiment_id][r.key] = r.value
        return out

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        with self._write() as conn:
            stmt = self._insert(t.experiment_tags).values(experiment_id=experiment_id, key=key, value=value)
            conn.execute(
                stmt.on_conflict_do_update(index_elements=["experiment_id", "key"], set_={"value": value})
            )
            self._touch_experiment(conn, experiment_id)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> bool:
        """Remove one tag; False when the experiment had no such tag."""
        tags = t.experiment_tags
        with self._write() as conn:
            gone = conn.execute(tags.delete().where(tags.c.experiment_id == experiment_id, tags.c.key == key))
            if gone.rowcount:
                self._touch_experiment(conn, experiment_id)
            return bool(gone.rowcount)

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        v.check_experiment_name(new_name)
        with self._write() as conn:
            taken = conn.execute(
                sa.select(t.experiments.c.id).where(
                    t.experiments.c.name == new_name, t.experiments.c.id != experiment_id
                )
            ).first()
            if taken is not None:
                raise ConflictError(f"Experiment(name={new_name}) already exists.")
            conn.execute(
                t.experiments.update()
                .where(t.experiments.c.id == experiment_id)
                .values(name=new_name, last_update_time=time.time())
            )

    def set_experiment_lifecycle(self, experiment_id: str, stage: str) -> None:
        """Delete ("deleted") or restore ("active") an experiment and, as MLflow does, its runs."""
        now = time.time()
        with self._write() as conn:
            conn.execute(
                t.experiments.update()
                .where(t.experiments.c.id == experiment_id)
                .values(lifecycle_stage=stage, last_update_time=now)
            )
            conn.execute(
                t.runs.update()
                .where(t.runs.c.experiment_id == experiment_id)
                .values(lifecycle_stage=stage, deleted_time=now if stage == "deleted" else None)
            )

    def _touch_experiment(self, conn: sa.Connection, experiment_id: str) -> None:
        conn.execute(
            t.experiments.update()
            .where(t.experiments.c.id == experiment_id)
            .values(last_update_time=time.time())
        )

    # -- runs -----------------------------------------------------------------------------------
    def set_run_lifecycle(self, run_id: str, stage: str) -> None:
        """MLflow's runs/delete ("deleted", stamping deleted_time) and runs/restore ("active")."""
        with self._write() as conn:
            done = conn.execute(
                t.runs.update()
                .where(t.runs.c.run_id == run_id)
                .values(lifecycle_stage=stage, deleted_time=time.time() if stage == "deleted" else None)
            )
            if not done.rowcount:
                raise RunNotFound(run_id, self.where)

    def update_mlflow_run(
        self, run_id: str, *, status: str | None, end_time: float | None, display_name: str | None
    ) -> None:
        """MLflow's runs/update on a run MLflow created (run_type "mlflow.run"): any status change,
        including Completed -> Running (MLflow resumes a finished run with start_run(run_id=...)), and
        the end time the client sends. Job runs never come here: their own process owns their status."""
        with self._write() as conn:
            row = conn.execute(
                sa.select(t.runs.c.run_type, t.runs.c.status, t.runs.c.start_time, t.runs.c.end_time).where(
                    t.runs.c.run_id == run_id
                )
            ).first()
            if row is None:
                raise RunNotFound(run_id, self.where)
            if row.run_type != MLFLOW_RUN_TYPE:
                raise InvalidInputError(
                    f"Run {run_id} is a {row.run_type} run: its own process sets its status, not MLflow."
                )
            values: dict[str, Any] = {}
            now = time.time()
            if status is not None:
                v.check_status(status)
                values["status"] = status
                if status in TERMINAL_STATUSES:
                    values["end_time"] = end_time if end_time is not None else (row.end_time or now)
                else:
                    values["end_time"] = None  # resumed (or re-queued): it has not ended
                if row.start_time is None:
                    values["start_time"] = now
            elif end_time is not None:
                values["end_time"] = end_time
            if display_name is not None:
                values["display_name"] = display_name
            if values:
                conn.execute(t.runs.update().where(t.runs.c.run_id == run_id).values(**values))

    def get_tags_many(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Each run's tags, in one query per IN_CHUNK runs."""
        return self._key_values(t.run_tags, run_ids)

    def get_properties_many(self, run_ids: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each run's properties (MLflow's params), in one query per IN_CHUNK runs."""
        return self._key_values(t.run_properties, run_ids)

    def _key_values(self, table: sa.Table, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {r: {} for r in run_ids}
        ids = list(out)
        with self._read() as conn:
            for start in range(0, len(ids), IN_CHUNK):
                chunk = ids[start : start + IN_CHUNK]
                for r in conn.execute(sa.select(table).where(table.c.run_id.in_(chunk))):
                    out[r.run_id][r.key] = r.value
        return out
