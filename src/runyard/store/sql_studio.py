"""Queries behind the web studio: the runs table, experiment overview and metric charts.

These live on SqlStore only: they are not part of the Store protocol and RestStore does not have them.
The studio is served by the process that holds the database (`runyard server`, or the scheduler's
foreground mode), so it queries SQL directly; clients of a remote server get the studio's pages and
JSON from that server, never these methods over REST.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from runyard.errors import InvalidInputError
from runyard.status import ACTIVE_STATUSES
from runyard.store import schema as t
from runyard.store.records import (
    METRIC_AGGREGATES,
    ChartSeries,
    ExperimentSummary,
    MetricColumn,
    RunPage,
    RunQuery,
)
from runyard.store.schema import ROLLUP_SIZES
from runyard.store.sql_base import SqlBase, run_from_row

RUN_SORTS = ("created", "status", "duration", "experiment", "name", "number")
MAX_PAGE = 500

_AGG_COLUMN = {"last": "last_value", "min": "min_value", "max": "max_value"}


def _parse_column_key(key: str) -> MetricColumn | None:
    agg, sep, name = key.partition(":")
    return MetricColumn(name=name, agg=agg) if sep and name and agg in METRIC_AGGREGATES else None


def _validate(query: RunQuery) -> None:
    for column in query.columns:
        if column.agg not in METRIC_AGGREGATES:
            raise InvalidInputError(
                f"Unknown metric aggregate {column.agg!r} for column {column.name!r}; "
                f"use one of {', '.join(METRIC_AGGREGATES)}."
            )
    if query.sort not in RUN_SORTS and _parse_column_key(query.sort) is None:
        raise InvalidInputError(
            f"Cannot sort runs by {query.sort!r}; sort by one of {', '.join(RUN_SORTS)} "
            f"or a metric column written AGG:NAME with AGG one of {', '.join(METRIC_AGGREGATES)} "
            "(for example last:loss)."
        )
    if not 1 <= query.limit <= MAX_PAGE:
        raise InvalidInputError(f"A page holds 1 to {MAX_PAGE} runs; got limit={query.limit}.")
    if query.offset < 0:
        raise InvalidInputError(f"offset must be 0 or more; got {query.offset}.")


def _thin(buckets: Sequence[Any], groups: int) -> tuple[list[float], list[float]]:
    """Merge consecutive rollup buckets (min_value, min_x, max_value, max_x) into at most `groups` groups;
    keep each group's min and max point, in x order (one point when they are the same point)."""
    per = math.ceil(len(buckets) / groups)
    xs: list[float] = []
    ys: list[float] = []
    for start in range(0, len(buckets), per):
        lo_v, lo_x, hi_v, hi_x = buckets[start]
        for b_lo_v, b_lo_x, b_hi_v, b_hi_x in buckets[start + 1 : start + per]:
            if b_lo_v < lo_v:  # strict: ties keep the earliest, as the rollups do
                lo_v, lo_x = b_lo_v, b_lo_x
            if b_hi_v > hi_v:
                hi_v, hi_x = b_hi_v, b_hi_x
        if lo_x == hi_x and lo_v == hi_v:
            xs.append(float(lo_x))
            ys.append(lo_v)
        elif hi_x < lo_x:
            xs += (float(hi_x), float(lo_x))
            ys += (hi_v, lo_v)
        else:
            xs += (float(lo_x), float(hi_x))
            ys += (lo_v, hi_v)
    return xs, ys


class SqlStudio(SqlBase):
    # -- charts ---------------------------------------------------------------------------------
    def get_metric_chart(self, run_id: str, name: str, max_points: int = 2000) -> ChartSeries:
        """A scalar metric ready to plot, at most `max_points` points: the raw values when there are
        that few, else each stretch's min and max from the rollups, so spikes survive."""
        if max_points < 2:
            raise InvalidInputError(f"max_points must be 2 or more; got {max_points}.")
        ms, m, mr = t.metric_summaries, t.metrics, t.metric_rollups
        with self._read() as conn:
            self._require_run(conn, run_id)
            count = conn.execute(
                sa.select(ms.c["count"]).where(ms.c.run_id == run_id, ms.c.name == name)
            ).scalar()
            if not count:
                return ChartSeries(run_id, name, [], [], 0, downsampled=False)
            if count <= max_points:
                rows = conn.execute(
                    sa.select(m.c.step, m.c.value)
                    .where(
                        m.c.run_id == run_id, m.c.name == name, m.c.kind == "scalar", m.c.value.is_not(None)
                    )
                    .order_by(m.c.id)
                ).all()
                xs = [float(i if step is None else step) for i, (step, _) in enumerate(rows)]
                return ChartSeries(run_id, name, xs, [r.value for r in rows], count, downsampled=False)
            groups = max_points // 2
            level = 0
            for candidate in range(len(ROLLUP_SIZES) - 1, 0, -1):
                if math.ceil(count / ROLLUP_SIZES[candidate]) >= groups:
                    level = candidate
                    break
            buckets = conn.execute(
                sa.select(mr.c.min_value, mr.c.min_x, mr.c.max_value, mr.c.max_x)
                .where(mr.c.run_id == run_id, mr.c.name == name, mr.c.level == level)
                .order_by(mr.c.bucket)
            ).all()
        xs, ys = _thin(buckets, groups)
        return ChartSeries(run_id, name, xs, ys, count, downsampled=True)

    # -- the runs table -------------------------------------------------------------------------
    def search_runs(self, query: RunQuery) -> RunPage:
        """One page of runs matching the filters, sorted, with the page's metric column values and tags."""
        _validate(query)
        runs, exps, ms = t.runs, t.experiments, t.metric_summaries
        filters: list[sa.ColumnElement[bool]] = []
        if query.experiment_name is not None:
            filters.append(exps.c.name == query.experiment_name)
        if query.status is not None:
            filters.append(runs.c.status == query.status)
        if query.tag_key is not None:
            tagged = sa.select(t.run_tags.c.run_id).where(
                t.run_tags.c.run_id == runs.c.run_id, t.run_tags.c.key == query.tag_key
            )
            if query.tag_value is not None:
                tagged = tagged.where(t.run_tags.c.value == query.tag_value)
            filters.append(tagged.exists())
        if query.text:
            filters.append(
                sa.or_(
                    *(
                        col.icontains(query.text, autoescape=True)
                        for col in (runs.c.run_id, runs.c.display_name, exps.c.name)
                    )
                )
            )
        if query.top_level_only:
            filters.append(runs.c.parent_id.is_(None))
        with_experiment = runs.join(exps, exps.c.id == runs.c.experiment_id)
        # join experiments only when a filter or the sort needs its name: counting runs alone is much cheaper
        needs_experiment = query.experiment_name is not None or bool(query.text) or query.sort == "experiment"
        base: sa.FromClause = with_experiment if needs_experiment else runs

        # Page ids first, joining only what the sort needs; then the page's rows with every column.
        keys: list[sa.ColumnElement[Any]] = []  # never NULL
        sort_expr: sa.ColumnElement[Any] | None = None  # may be NULL
        if query.sort == "created":
            keys = [runs.c.created_time, runs.c.number]
        elif query.sort == "number":
            keys = [runs.c.number]
        elif query.sort == "status":
            keys = [runs.c.status]
        elif query.sort == "experiment":
            keys = [exps.c.name]
        elif query.sort == "name":
            sort_expr = runs.c.display_name
        elif query.sort == "duration":
            end = sa.func.coalesce(runs.c.end_time, sa.literal(time.time(), sa.Float))
            sort_expr = end - runs.c.start_time
        sort_column = None if query.sort in RUN_SORTS else _parse_column_key(query.sort)
        order: list[sa.ColumnElement[Any]] = [k.desc() if query.descending else k.asc() for k in keys]
        if sort_expr is not None:
            # NULLs last in both directions, written out so both databases do the same
            order = [
                sa.case((sort_expr.is_(None), 1), else_=0),
                sort_expr.desc() if query.descending else sort_expr.asc(),
            ]
        if query.sort != "created":
            order += [runs.c.created_time.desc(), runs.c.number.desc()]
        order.append(runs.c.run_id)
        page_ids = (
            sa.select(runs.c.run_id)
            .select_from(base)
            .where(*filters)
            .order_by(*order)
            .offset(query.offset)
            .limit(query.limit)
        )
        total_query = sa.select(sa.func.count()).select_from(base).where(*filters)

        columns = list(dict.fromkeys(query.columns))
        joined = with_experiment
        value_columns: list[sa.ColumnElement[Any]] = []
        for i, column in enumerate(columns):
            alias = ms.alias(f"col{i}")
            joined = joined.outerjoin(
                alias, sa.and_(alias.c.run_id == runs.c.run_id, alias.c.name == column.name)
            )
            value_columns.append(alias.c[_AGG_COLUMN[column.agg]].label(f"col{i}"))

        with self._read() as conn:
            if sort_column is not None:
                ids = self._page_by_metric(conn, query, sort_column, base, filters)
            else:
                ids = list(conn.execute(page_ids).scalars())
            total = int(conn.execute(total_query).scalar_one())
            if not ids:
                return RunPage(runs=[], total=total, values={}, tags={})
            rows = conn.execute(
                sa.select(runs, exps.c.name.label("experiment_name"), *value_columns)
                .select_from(joined)
                .where(runs.c.run_id.in_(ids))
            ).all()
            tag_rows = conn.execute(
                sa.select(t.run_tags)
                .where(t.run_tags.c.run_id.in_(ids))
                .order_by(t.run_tags.c.run_id, t.run_tags.c.key)
            ).all()
        by_id = {r.run_id: r for r in rows}
        page = [by_id[i] for i in ids]
        tags: dict[str, dict[str, Any]] = {i: {} for i in ids}
        for tag in tag_rows:
            tags[tag.run_id][tag.key] = tag.value
        return RunPage(
            runs=[run_from_row(r) for r in page],
            total=total,
            values={r.run_id: {c.key: r._mapping[f"col{i}"] for i, c in enumerate(columns)} for r in page},
            tags=tags,
        )

    @staticmethod
    def _page_by_metric(
        conn: sa.Connection,
        query: RunQuery,
        column: MetricColumn,
        base: sa.FromClause,
        filters: list[sa.ColumnElement[bool]],
    ) -> list[str]:
        """Run ids of one page sorted by a metric: runs with a value first, in value order (ties by run
        id), read in order off the index (name, <agg>_value, run_id), so a page costs its offset rather
        than a sort of every run; then runs without a value, newest first."""
        runs, ms = t.runs, t.metric_summaries.alias("sort_metric")
        value = ms.c[_AGG_COLUMN[column.agg]]
        has_value = sa.and_(ms.c.name == column.name, value.is_not(None))
        valued = (
            sa.select(runs.c.run_id)
            .select_from(base.join(ms, ms.c.run_id == runs.c.run_id))
            .where(has_value, *filters)
        )
        order = [value.desc(), ms.c.run_id.desc()] if query.descending else [value.asc(), ms.c.run_id.asc()]
        ids = list(conn.execute(valued.order_by(*order).offset(query.offset).limit(query.limit)).scalars())
        if len(ids) == query.limit:
            return ids
        if ids or query.offset == 0:
            valued_total = query.offset + len(ids)
        else:  # a page past the last run with a value: count them to know where the rest starts
            valued_total = conn.execute(
                sa.select(sa.func.count()).select_from(valued.subquery())
            ).scalar_one()
        other = t.metric_summaries.alias("has_metric")
        lacking = ~sa.exists().where(
            other.c.run_id == runs.c.run_id,
            other.c.name == column.name,
            other.c[_AGG_COLUMN[column.agg]].is_not(None),
        )
        rest = (
            sa.select(runs.c.run_id)
            .select_from(base)
            .where(lacking, *filters)
            .order_by(runs.c.created_time.desc(), runs.c.number.desc(), runs.c.run_id)
            .offset(max(query.offset - valued_total, 0))
            .limit(query.limit - len(ids))
        )
        return ids + list(conn.execute(rest).scalars())

    def list_metric_names(self, experiment_name: str | None = None) -> list[str]:
        """Sorted names of the scalar metrics logged (in that experiment's runs, when named)."""
        ms = t.metric_summaries
        query = sa.select(ms.c.name).distinct().order_by(ms.c.name)
        if experiment_name is not None:
            query = (
                query.join(t.runs, t.runs.c.run_id == ms.c.run_id)
                .join(t.experiments, t.experiments.c.id == t.runs.c.experiment_id)
                .where(t.experiments.c.name == experiment_name)
            )
        with self._read() as conn:
            return list(conn.execute(query).scalars())

    # -- experiments ----------------------------------------------------------------------------
    def experiment_summaries(self) -> list[ExperimentSummary]:
        """Every experiment, by name, with its top-level run count and latest top-level run (one query)."""
        runs, exps = t.runs, t.experiments
        counts = (
            sa.select(runs.c.experiment_id, sa.func.count().label("run_count"))
            .where(runs.c.parent_id.is_(None))
            .group_by(runs.c.experiment_id)
            .subquery("counts")
        )
        candidate = runs.alias("candidate")
        latest_id = (
            sa.select(candidate.c.run_id)
            .where(candidate.c.experiment_id == exps.c.id, candidate.c.parent_id.is_(None))
            .order_by(candidate.c.created_time.desc(), candidate.c.number.desc())
            .limit(1)
            .correlate(exps)
            .scalar_subquery()
        )
        latest = runs.alias("latest")
        query = (
            sa.select(
                exps.c.name.label("experiment_name"),
                exps.c.created_time.label("experiment_created"),
                sa.func.coalesce(counts.c.run_count, 0).label("run_count"),
                *(c.label(f"latest_{c.name}") for c in latest.c),
            )
            .select_from(
                exps.outerjoin(counts, counts.c.experiment_id == exps.c.id).outerjoin(
                    latest, latest.c.run_id == latest_id
                )
            )
            .order_by(exps.c.name)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        summaries = []
        for row in rows:
            latest_run = None
            if row.latest_run_id is not None:
                fields = {c.name: row._mapping[f"latest_{c.name}"] for c in latest.c}
                latest_run = run_from_row(SimpleNamespace(**fields, experiment_name=row.experiment_name))
            summaries.append(
                ExperimentSummary(
                    name=row.experiment_name,
                    created_time=row.experiment_created,
                    run_count=int(row.run_count),
                    latest_run=latest_run,
                )
            )
        return summaries

    # -- live pages -----------------------------------------------------------------------------
    def change_marker(self, run_id: str | None = None) -> str:
        """A short string that changes whenever a studio page may show something new.

        For one run, in one query (waits ask it every 0.1 s): its family's statuses, times, names, tags and
        metric counts, hashed with blake2b (the same in every process). For the workspace: the number of
        runs, the latest start/end/create times, the runs in each unfinished status and their metric counts
        (only running code logs). Cheap enough to ask every second."""
        runs, ms, tags = t.runs, t.metric_summaries, t.run_tags
        active = sorted(ACTIVE_STATUSES)
        with self._read() as conn:
            if run_id is not None:
                rows_logged = (
                    sa.select(sa.func.coalesce(sa.func.sum(ms.c["count"]), 0))
                    .where(ms.c.run_id == runs.c.run_id)
                    .scalar_subquery()
                )
                family = conn.execute(
                    sa.select(
                        runs.c.run_id,
                        runs.c.status,
                        runs.c.start_time,
                        runs.c.end_time,
                        runs.c.display_name,
                        rows_logged,
                        tags.c.key,
                        tags.c.value,
                    )
                    .select_from(runs.outerjoin(tags, tags.c.run_id == runs.c.run_id))
                    .where(sa.or_(runs.c.run_id == run_id, runs.c.parent_id == run_id))
                    .order_by(runs.c.run_id, tags.c.key)
                ).all()
                seen = repr([tuple(row) for row in family]).encode()
                return hashlib.blake2b(seen, digest_size=12).hexdigest()
            totals = conn.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.max(runs.c.created_time),
                    sa.func.max(runs.c.start_time),
                    sa.func.max(runs.c.end_time),
                )
            ).one()
            by_status = conn.execute(
                sa.select(runs.c.status, sa.func.count())
                .where(runs.c.status.in_(active))
                .group_by(runs.c.status)
                .order_by(runs.c.status)
            ).all()
            logged = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(ms.c["count"]), 0))
                .select_from(ms.join(runs, runs.c.run_id == ms.c.run_id))
                .where(runs.c.status.in_(active))
            ).scalar_one()
        return f"{tuple(totals)}{tuple(tuple(r) for r in by_status)}{logged}"
