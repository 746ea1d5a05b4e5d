"""MLflow's views of runs and experiments: each run's latest metric values, and run and experiment search
with MLflow's filter and order semantics, answered in SQL.

A search is two statements however many runs the workspace holds (the page's run ids, then their
records): a metric clause is an inner join on metric_summaries, a param or tag clause a semi-join on
run_properties or run_tags (so `params.x != 'a'` never matches a run without x, as in MLflow), every
order key a left join, and the page is LIMIT/OFFSET over a total order (the keys, then start_time DESC,
then run_id ASC, MLflow's tie-break). The handlers parse MLflow's
filter grammar (mlflow_api/search.py) into the frozen dataclasses below; nothing here knows MLflow's
wording.

MLflow's null order: runs that have a value for an order key come first (in the key's direction), then,
for a metric, runs whose latest value is NaN, then runs without the key. A metric filter or order reads
MLflow's latest value (metric_summaries.latest_*; NaN never compares true except with !=).

Indexes: a metric filter with an order on the same metric walks ix_metric_summaries_latest (name,
latest_value, run_id) in order and stops after one page; the default order walks
ix_runs_experiment_start (experiment_id, start_time, run_id).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from runyard.store import schema as t
from runyard.store.mlflow_metric_copies import without_stored_copies
from runyard.store.records import ExperimentRecord, MetricRow, MlflowMetric, RunRecord
from runyard.store.sql_base import SqlBase
from runyard.store.sql_metrics import SqlMetrics
from runyard.store.sql_mlflow_runs import experiment_from_row
from runyard.store.validation import validate_metric_rows

#: SQLite binds at most 32,766 parameters in one statement; a page of 50,000 runs is read in chunks.
_IN_CHUNK = 10_000

Value = float | int | str | tuple[str, ...] | None


@dataclass(frozen=True)
class Condition:
    """One AND-ed clause. entity: "metric" | "param" | "tag" | "attribute"; op: = != < <= > >= LIKE ILIKE
    IN "NOT IN" "IS NULL" "IS NOT NULL" (the handler has checked which ops each entity allows). For the
    millisecond attributes (start_time, end_time, creation_time, last_update_time) value is in ms."""

    entity: str
    key: str
    op: str
    value: Value = None


@dataclass(frozen=True)
class OrderKey:
    entity: str
    key: str
    ascending: bool = True


@dataclass(frozen=True)
class MlflowRunQuery:
    """runs/search. Run attributes: run_id, run_name, user_id, status, start_time, end_time, artifact_uri.

    `statuses` maps runyard's run statuses to MLflow's (attributes.status compares MLflow's; any other
    status reads as `other_status`); `artifact_root` is the artifact URI of the runs folder as the door
    shows it (a run's artifact_uri is `<root>/<run_id>` unless its experiment has its own location).
    `run_ids` narrows to those runs (a job's run token sees its own run family only)."""

    experiment_ids: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    order_by: tuple[OrderKey, ...] = ()
    lifecycle_stages: tuple[str, ...] = ("active",)
    offset: int = 0
    limit: int = 1000
    run_ids: tuple[str, ...] | None = None
    statuses: tuple[tuple[str, str], ...] = ()
    other_status: str = "RUNNING"
    artifact_root: str = ""


@dataclass(frozen=True)
class MlflowExperimentQuery:
    """experiments/search. Attributes: name, experiment_id (runyard's ids), creation_time, last_update_time."""

    conditions: tuple[Condition, ...] = ()
    order_by: tuple[OrderKey, ...] = ()
    lifecycle_stages: tuple[str, ...] = ("active",)
    offset: int = 0
    limit: int = 1000


_MS_ATTRIBUTES = {"start_time", "end_time", "creation_time", "last_update_time"}


def _ms_condition(column: sa.ColumnElement[Any], op: str, value: float) -> sa.ColumnElement[bool]:
    """`round(column * 1000) <op> value` (MLflow's integer milliseconds, as convert.ms shows them) as a
    range on the seconds column itself, so an index on it still serves."""
    lo, hi = (math.ceil(value) - 0.5) / 1000, (math.floor(value) + 0.5) / 1000
    if op == ">=":
        return column >= lo
    if op == ">":
        return column >= hi
    if op == "<=":
        return column < hi
    if op == "<":
        return column < lo
    exact = sa.and_(column >= lo, column < hi) if value == int(value) else sa.false()
    return exact if op == "=" else sa.and_(column.is_not(None), sa.not_(exact))


def _glob_of_like(pattern: str) -> str:
    """A LIKE pattern as a GLOB pattern: SQLite's LIKE ignores case, MLflow's LIKE does not."""
    special = {"%": "*", "_": "?", "*": "[*]", "?": "[?]", "[": "[[]"}
    return "".join(special.get(c, c) for c in pattern)


class _Compiler:
    """Turns conditions into SQL on one dialect."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def compare(self, column: sa.ColumnElement[Any], op: str, value: Value) -> sa.ColumnElement[bool]:
        if op == "LIKE":
            return column.op("GLOB")(_glob_of_like(str(value))) if self.sqlite else column.like(str(value))
        if op == "ILIKE":
            return column.ilike(str(value))
        if op in ("IN", "NOT IN"):
            values = list(value) if isinstance(value, tuple) else [value]
            return column.in_(values) if op == "IN" else column.not_in(values)
        ops = {
            "=": column.__eq__,
            "!=": column.__ne__,
            "<": column.__lt__,
            "<=": column.__le__,
            ">": column.__gt__,
            ">=": column.__ge__,
        }
        return ops[op](value)

    def desc_nulls_last(self, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
        """DESC with NULLs last: SQLite's own DESC order (so its index still serves), spelled out on
        PostgreSQL, whose DESC puts NULLs first."""
        return column.desc() if self.sqlite else column.desc().nulls_last()


def _side_table(entity: str) -> tuple[sa.Table, str]:
    """The table a metric/param/tag clause joins, and the column its key lives in."""
    return {
        "metric": (t.metric_summaries, "name"),
        "param": (t.run_properties, "key"),
        "tag": (t.run_tags, "key"),
    }[entity]


class SqlMlflowSearch(SqlBase):
    def append_mlflow_metrics(self, rows: Sequence[MetricRow]) -> None:
        """MLflow's metrics: as `append_metrics`, but NaN and ±inf values are kept (MLflow logs them),
        where runyard's own API refuses them, and exact copies of stored rows are dropped, as MLflow's
        store drops them (mlflow_metric_copies). Every other check of a batch still applies."""
        finite = [
            dataclasses.replace(r, value=0.0) if r.value is not None and not math.isfinite(r.value) else r
            for r in rows
        ]
        validate_metric_rows(finite)
        with self._read() as conn:
            fresh = without_stored_copies(conn, rows)
        if fresh:
            SqlMetrics.append_metrics(self, fresh)  # type: ignore[arg-type]

    def mlflow_latest_metrics(self, run_ids: Sequence[str]) -> dict[str, list[MlflowMetric]]:
        """Each run's metrics as MLflow shows them on the run (its latest values, NaN and ±inf kept), in
        one query per 10,000 runs."""
        out: dict[str, list[MlflowMetric]] = {r: [] for r in run_ids}
        ms = t.metric_summaries
        ids = list(dict.fromkeys(run_ids))
        with self._read() as conn:
            for start in range(0, len(ids), _IN_CHUNK):
                rows = conn.execute(
                    sa.select(
                        ms.c.run_id,
                        ms.c.name,
                        ms.c.latest_value,
                        ms.c.latest_step,
                        ms.c.latest_timestamp,
                        ms.c.latest_is_nan,
                    )
                    .where(ms.c.run_id.in_(ids[start : start + _IN_CHUNK]), ms.c.latest_step.is_not(None))
                    .order_by(ms.c.run_id, ms.c.name)
                )
                for r in rows:
                    value = math.nan if r.latest_is_nan else r.latest_value
                    step = int(r.latest_step)
                    out[r.run_id].append(MlflowMetric(r.name, value, r.latest_timestamp, step))
        return out

    # -- runs ------------------------------------------------------------------------------------------
    def search_mlflow_runs(self, query: MlflowRunQuery) -> tuple[list[RunRecord], bool]:
        """One page of runs matching `query`, in MLflow's order, and whether more follow."""
        if not query.experiment_ids or (query.run_ids is not None and not query.run_ids):
            return [], False
        c = _Compiler(self.engine.dialect.name)
        runs = t.runs
        # the page's run ids first (a narrow sort), then their records (one more statement)
        stmt: sa.Select[Any] = sa.select(runs.c.run_id).join(
            t.experiments, t.experiments.c.id == runs.c.experiment_id
        )
        where: list[sa.ColumnElement[bool]] = [
            runs.c.experiment_id.in_(list(query.experiment_ids)),
            runs.c.lifecycle_stage.in_(list(query.lifecycle_stages)),
        ]
        if query.run_ids is not None:
            where.append(runs.c.run_id.in_(list(query.run_ids)))
        # (entity, key) -> the alias of an inner join whose rows all hold a real value for the key
        valued: dict[tuple[str, str], Any] = {}
        alias: Any
        for n, cond in enumerate(query.conditions):
            if cond.entity == "attribute":
                where.append(self._run_attribute_condition(c, query, cond))
                continue
            table, key_col = _side_table(cond.entity)
            key_match = sa.and_(table.c.run_id == runs.c.run_id, table.c[key_col] == cond.key)
            if cond.op in ("IS NULL", "IS NOT NULL"):
                exists = sa.select(table.c.run_id).where(key_match).exists()
                where.append(exists if cond.op == "IS NOT NULL" else sa.not_(exists))
                continue
            if cond.entity != "metric":
                # a param or tag clause: the runs having it, one scan of the side table (a semi-join)
                test = c.compare(sa.func.coalesce(table.c.value, ""), cond.op, cond.value)
                where.append(
                    runs.c.run_id.in_(sa.select(table.c.run_id).where(table.c.key == cond.key, test))
                )
                continue
            # a metric clause: an inner join, which the planner can drive from ix_metric_summaries_latest
            alias = table.alias(f"f{n}")
            test = c.compare(alias.c.latest_value, cond.op, cond.value)
            # NaN (latest_value NULL) fails every comparison but !=, which it passes (as in MLflow)
            on = [alias.c.run_id == runs.c.run_id, alias.c.name == cond.key]
            on.append(sa.or_(test, alias.c.latest_is_nan.is_(True)) if cond.op == "!=" else test)
            if cond.op != "!=":
                valued.setdefault((cond.entity, cond.key), alias)
            stmt = stmt.join(alias, sa.and_(*on))
        order: list[sa.ColumnElement[Any]] = []
        for n, key in enumerate(query.order_by):
            if key.entity == "attribute":
                column = self._run_attribute(query, key.key)
                if key.key == "start_time":
                    order.append(column.asc().nulls_last() if key.ascending else c.desc_nulls_last(column))
                    continue
                order.append(sa.case((column.is_(None), 1), else_=0))
                order.append(column.asc() if key.ascending else column.desc())
                continue
            alias = valued.get((key.entity, key.key))
            value_col: sa.ColumnElement[Any]
            if alias is None:
                table, key_col = _side_table(key.entity)
                alias = table.alias(f"o{n}")
                stmt = stmt.outerjoin(
                    alias, sa.and_(alias.c.run_id == runs.c.run_id, alias.c[key_col] == key.key)
                )
                if key.entity == "metric":
                    order.append(
                        sa.case((alias.c.latest_is_nan.is_(True), 1), (alias.c.run_id.is_(None), 2), else_=0)
                    )
                else:
                    order.append(sa.case((alias.c.run_id.is_(None), 1), else_=0))
            if key.entity == "metric":
                value_col = alias.c.latest_value
            else:
                value_col = sa.func.coalesce(alias.c.value, "") if key.entity == "tag" else alias.c.value
            order.append(value_col.asc() if key.ascending else value_col.desc())
        if not any(k.entity == "attribute" and k.key == "start_time" for k in query.order_by):
            order.append(c.desc_nulls_last(runs.c.start_time))
        order.append(runs.c.run_id.asc())
        stmt = stmt.where(*where).order_by(*order).offset(query.offset).limit(query.limit + 1)
        with self._read() as conn:
            ids = list(conn.execute(stmt).scalars())
            page = ids[: query.limit]
            found: dict[str, RunRecord] = {}
            for start in range(0, len(page), _IN_CHUNK):
                chunk = page[start : start + _IN_CHUNK]
                rows = conn.execute(self._run_select().where(runs.c.run_id.in_(chunk)))  # type: ignore[attr-defined]
                found.update((r.run_id, self._to_run(r)) for r in rows)  # type: ignore[attr-defined]
        return [found[i] for i in page if i in found], len(ids) > query.limit

    def _run_attribute(self, query: MlflowRunQuery, key: str) -> sa.ColumnElement[Any]:
        runs = t.runs
        if key == "run_id":
            return runs.c.run_id
        if key == "run_name":
            return sa.func.coalesce(runs.c.display_name, "")
        if key == "user_id":
            return sa.func.coalesce(runs.c.data["mlflowUser"].as_string(), "")
        if key == "status":
            whens = [(runs.c.status == ours, theirs) for ours, theirs in query.statuses]
            return sa.case(*whens, else_=query.other_status) if whens else sa.literal(query.other_status)
        if key == "start_time":
            return runs.c.start_time
        if key == "end_time":
            return runs.c.end_time
        if key == "artifact_uri":
            exp = t.experiments
            own = sa.func.rtrim(exp.c.artifact_location, "/") + "/" + runs.c.run_id + "/artifacts"
            default = sa.literal(query.artifact_root.rstrip("/") + "/") + runs.c.run_id
            return sa.case((exp.c.artifact_location.is_not(None), own), else_=default)
        raise ValueError(f"not a run attribute MLflow searches: {key!r}")

    def _run_attribute_condition(
        self, c: _Compiler, query: MlflowRunQuery, cond: Condition
    ) -> sa.ColumnElement[bool]:
        if cond.key in _MS_ATTRIBUTES:
            column: sa.ColumnElement[Any] = t.runs.c[cond.key]
            if cond.key == "start_time":  # a run that has not started shows its creation time
                column = sa.func.coalesce(column, t.runs.c.created_time)
            assert isinstance(cond.value, int | float)
            return _ms_condition(column, cond.op, float(cond.value))
        return c.compare(self._run_attribute(query, cond.key), cond.op, cond.value)

    # -- experiments -----------------------------------------------------------------------------------
    def search_mlflow_experiments(self, query: MlflowExperimentQuery) -> tuple[list[ExperimentRecord], bool]:
        """One page of experiments matching `query` (default order: creation_time DESC, then id)."""
        c = _Compiler(self.engine.dialect.name)
        exp, tags = t.experiments, t.experiment_tags
        stmt = sa.select(exp)
        where: list[sa.ColumnElement[bool]] = [exp.c.lifecycle_stage.in_(list(query.lifecycle_stages))]
        columns = {
            "name": exp.c.name,
            "experiment_id": exp.c.id,
            "creation_time": exp.c.created_time,
            "last_update_time": sa.func.coalesce(exp.c.last_update_time, exp.c.created_time),
        }
        for n, cond in enumerate(query.conditions):
            if cond.entity == "attribute":
                if cond.key in _MS_ATTRIBUTES:
                    assert isinstance(cond.value, int | float)
                    where.append(_ms_condition(columns[cond.key], cond.op, float(cond.value)))
                else:
                    where.append(c.compare(columns[cond.key], cond.op, cond.value))
                continue
            key_match = sa.and_(tags.c.experiment_id == exp.c.id, tags.c.key == cond.key)
            if cond.op in ("IS NULL", "IS NOT NULL"):
                exists = sa.select(tags.c.experiment_id).where(key_match).exists()
                where.append(exists if cond.op == "IS NOT NULL" else sa.not_(exists))
                continue
            alias = tags.alias(f"f{n}")
            stmt = stmt.join(
                alias,
                sa.and_(
                    alias.c.experiment_id == exp.c.id,
                    alias.c.key == cond.key,
                    c.compare(alias.c.value, cond.op, cond.value),
                ),
            )
        keys = query.order_by or (
            OrderKey("attribute", "creation_time", False),
            OrderKey("attribute", "experiment_id", True),
        )
        order = [columns[k.key].asc() if k.ascending else columns[k.key].desc() for k in keys]
        if not any(k.key == "experiment_id" for k in keys):
            order.append(exp.c.id.desc())
        stmt = stmt.where(*where).order_by(*order).offset(query.offset).limit(query.limit + 1)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [experiment_from_row(r) for r in rows[: query.limit]], len(rows) > query.limit

    # -- metric history ------------------------------------------------------------------------------
    def mlflow_metric_history(
        self, run_id: str, key: str, offset: int = 0, limit: int | None = None
    ) -> tuple[list[MlflowMetric], bool]:
        """A run's scalar values of metric `key` in MLflow's history order (timestamp, step, value),
        NaN and ±inf as logged; `limit` rows from `offset` and whether more follow (all when None)."""
        m = t.metrics
        query = (
            sa.select(m.c.value, m.c.timestamp, m.c.step, m.c.is_nan)
            .where(m.c.run_id == run_id, m.c.name == key, m.c.kind == "scalar")
            .where(sa.or_(m.c.value.is_not(None), m.c.is_nan.is_(True)))
            .order_by(m.c.timestamp, sa.func.coalesce(m.c.step, 0), m.c.value, m.c.id)
            .offset(offset)
        )
        if limit is not None:
            query = query.limit(limit + 1)
        with self._read() as conn:
            rows = conn.execute(query).all()
        more = limit is not None and len(rows) > limit
        found = [
            MlflowMetric(key, math.nan if r.is_nan else r.value, r.timestamp, int(r.step or 0))
            for r in rows[:limit]
        ]
        return found, more

    def mlflow_metric_sample(
        self, run_id: str, key: str, max_results: int, steps: tuple[int, int] | None = None
    ) -> list[MlflowMetric]:
        """At most `max_results` values of a run's metric, spread evenly over its history in step order
        (the first of each of `max_results` equal stretches, and always the last value), optionally within
        a step range: the points MLflow's charts ask metrics/get-history-bulk-interval for."""
        m = t.metrics
        order = [sa.func.coalesce(m.c.step, 0), m.c.timestamp, m.c.value, m.c.id]
        where = [m.c.run_id == run_id, m.c.name == key, m.c.kind == "scalar"]
        where.append(sa.or_(m.c.value.is_not(None), m.c.is_nan.is_(True)))
        if steps is not None:
            where.append(sa.func.coalesce(m.c.step, 0).between(*steps))
        inner = (
            sa.select(
                m.c.id,
                m.c.value,
                m.c.timestamp,
                m.c.step,
                m.c.is_nan,
                sa.func.ntile(max_results).over(order_by=order).label("bucket"),
                sa.func.row_number().over(order_by=[c.desc() for c in order]).label("from_end"),
            )
            .where(*where)
            .subquery()
        )
        ranked = sa.select(
            inner,
            sa.func.row_number()
            .over(
                partition_by=inner.c.bucket,
                order_by=[sa.func.coalesce(inner.c.step, 0), inner.c.timestamp, inner.c.value, inner.c.id],
            )
            .label("rn"),
        ).subquery()
        query = (
            sa.select(ranked)
            .where(sa.or_(ranked.c.rn == 1, ranked.c.from_end == 1))
            .order_by(ranked.c.bucket)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        picked = [r for r in rows if r.rn == 1]
        last = next((r for r in rows if r.from_end == 1), None)
        if last is not None and (not picked or picked[-1].id != last.id):
            if len(picked) >= max_results:
                picked[-1] = last
            else:
                picked.append(last)
        return [
            MlflowMetric(key, math.nan if r.is_nan else r.value, r.timestamp, int(r.step or 0))
            for r in picked
        ]
