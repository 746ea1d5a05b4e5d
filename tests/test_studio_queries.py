"""The studio's queries on SqlStore (rollups, charts, the runs table, experiment overview), on a real
SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from runyard.errors import InvalidInputError, RunNotFound
from runyard.status import RunStatus
from runyard.store import schema
from runyard.store.records import MetricColumn, MetricRow, RunQuery
from runyard.store.sql_store import SqlStore
from store_suite import make_run, scalar


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStore]:
    uri = (
        f"sqlite:///{tmp_path}/studio.db"
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_uri")
    )
    store = SqlStore(uri)
    yield store
    store.engine.dispose()


# -- rollups ------------------------------------------------------------------------------------------


def brute_force_rollups(store: SqlStore, run_id: str, name: str) -> dict[tuple[int, int], tuple[Any, ...]]:
    """(level, bucket) -> (count, min, min_x, max, max_x, first_x, last_x), from the raw rows; ties keep
    the earliest value."""
    values = [
        (r.value, r.step)
        for r in store.get_metric_rows([run_id], name)
        if r.kind == "scalar" and r.value is not None
    ]
    expected: dict[tuple[int, int], tuple[Any, ...]] = {}
    for level, size in enumerate(schema.ROLLUP_SIZES):
        for start in range(0, len(values), size):
            chunk = [
                (v, start + i if step is None else step)
                for i, (v, step) in enumerate(values[start : start + size])
            ]
            lo = min(chunk, key=lambda p: p[0])  # min() and max() return the first of equal items
            hi = max(chunk, key=lambda p: p[0])
            expected[(level, start // size)] = (
                len(chunk),
                lo[0],
                lo[1],
                hi[0],
                hi[1],
                chunk[0][1],
                chunk[-1][1],
            )
    return expected


def stored_rollups(store: SqlStore, run_id: str, name: str) -> dict[tuple[int, int], tuple[Any, ...]]:
    mr = schema.metric_rollups
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(mr).where(mr.c.run_id == run_id, mr.c.name == name)).all()
    return {
        (r.level, r.bucket): (
            r._mapping["count"],
            r.min_value,
            r.min_x,
            r.max_value,
            r.max_x,
            r.first_x,
            r.last_x,
        )
        for r in rows
    }


def test_rollups_match_brute_force_across_uneven_batches(store: SqlStore) -> None:
    rng = random.Random(7)
    run_a = make_run(store, "exp").run_id
    run_b = make_run(store, "exp").run_id
    logged = 0
    for batch_size in [1, 63, 2, 130, 4000, 1, 200, 5000, 17]:
        batch: list[MetricRow] = []
        for _ in range(batch_size):
            # one decimal: many ties, so the "earliest wins" rule is checked across batches too
            value = round(rng.uniform(-5, 5), 1)
            step = logged * 3 if rng.random() < 0.5 else None
            batch.append(scalar(run_a, "loss", value, step=step))
            if rng.random() < 0.3:  # interleaved rows that are not part of the series
                batch.append(MetricRow(run_a, "loss", "scalar", time.time(), value=None, text="n/a"))
                batch.append(MetricRow(run_a, "loss", "list", time.time(), value=-99.0))
                batch.append(scalar(run_b, "acc", -value))
            logged += 1
        store.append_metrics(batch)

    expected = brute_force_rollups(store, run_a, "loss")
    assert stored_rollups(store, run_a, "loss") == expected
    assert sum(c for (level, _), (c, *_rest) in expected.items() if level == 0) == logged
    assert {level for level, _ in expected} == {0, 1}
    assert stored_rollups(store, run_b, "acc") == brute_force_rollups(store, run_b, "acc")
    # values logged as a "list" are never part of a scalar series' rollups
    assert all(stats[1] != -99.0 for stats in expected.values())


def test_rollups_stay_exact_under_concurrent_batches(store: SqlStore) -> None:
    """Threads appending to one series at once: indexes are handed out without gaps or overlaps."""
    run_id = make_run(store, "exp").run_id
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(10):
                store.append_metrics([scalar(run_id, "m", rng.random()) for _ in range(rng.randint(1, 90))])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert errors == []
    expected = brute_force_rollups(store, run_id, "m")
    assert stored_rollups(store, run_id, "m") == expected
    assert store.get_metric_summaries([run_id])[0].count == sum(
        stats[0] for (level, _), stats in expected.items() if level == 0
    )


# -- charts -------------------------------------------------------------------------------------------


def test_chart_of_a_short_series_is_the_raw_values(store: SqlStore) -> None:
    run_id = make_run(store, "exp").run_id
    store.append_metrics(
        [
            scalar(run_id, "loss", 3.0),
            MetricRow(run_id, "loss", "scalar", time.time(), value=None, text="n/a"),  # not in the series
            scalar(run_id, "loss", 2.0, step=10),
            scalar(run_id, "loss", 1.5),
        ]
    )
    chart = store.get_metric_chart(run_id, "loss")
    assert (chart.x, chart.y) == ([0.0, 10.0, 2.0], [3.0, 2.0, 1.5])
    assert chart.count == 3
    assert chart.downsampled is False

    empty = store.get_metric_chart(run_id, "never-logged")
    assert (empty.x, empty.y, empty.count, empty.downsampled) == ([], [], 0, False)
    with pytest.raises(RunNotFound):
        store.get_metric_chart("no-such-run", "loss")
    with pytest.raises(InvalidInputError, match="max_points must be 2 or more"):
        store.get_metric_chart(run_id, "loss", max_points=1)


@pytest.mark.parametrize("with_steps", [False, True])
def test_downsampled_chart_keeps_extremes_and_spikes(store: SqlStore, with_steps: bool) -> None:
    run_id = make_run(store, "exp").run_id
    rng = random.Random(3)
    n = 20_000
    values = [rng.uniform(0, 1) for _ in range(n)]
    values[777], values[12_345], values[19_999] = -50.0, 1000.0, 40.0  # a dip, a spike, a spike at the end
    x_of = (lambda i: 5 * i + 100) if with_steps else (lambda i: i)
    for start in range(0, n, 4999):
        store.append_metrics(
            [
                scalar(run_id, "loss", values[i], step=x_of(i) if with_steps else None)
                for i in range(start, min(n, start + 4999))
            ]
        )
    raw = {float(x_of(i)): v for i, v in enumerate(values)}

    for max_points in (2000, 200, 4):  # 4 reads the coarse level: 5 buckets of 4096
        chart = store.get_metric_chart(run_id, "loss", max_points=max_points)
        assert chart.downsampled is True
        assert chart.count == n
        assert 2 <= len(chart.x) == len(chart.y) <= max_points
        assert chart.x == sorted(chart.x)
        assert all(raw[x] == y for x, y in zip(chart.x, chart.y, strict=True)), (
            "every point is a logged value"
        )
        points = set(zip(chart.x, chart.y, strict=True))
        assert (float(x_of(12_345)), 1000.0) in points
        assert (float(x_of(777)), -50.0) in points
        assert min(chart.y) == -50.0
        assert max(chart.y) == 1000.0
    spike_kept = store.get_metric_chart(run_id, "loss", max_points=200)
    assert (float(x_of(19_999)), 40.0) in set(zip(spike_kept.x, spike_kept.y, strict=True))
    full = store.get_metric_chart(run_id, "loss", max_points=n)
    assert full.downsampled is False
    assert full.y == values


# -- the runs table -----------------------------------------------------------------------------------


@pytest.fixture
def table(store: SqlStore) -> dict[str, Any]:
    """Runs in two experiments: statuses, tags, display names, a child run and some metrics."""
    t0 = 1_700_000_000.0
    r: dict[str, Any] = {}
    r["a1"] = make_run(store, "vision", "a1", created_time=t0 + 1, display_name="ResNet Baseline")
    r["a2"] = make_run(store, "vision", "a2", created_time=t0 + 2, display_name="resnet-wide")
    r["a3"] = make_run(store, "vision", "a3", created_time=t0 + 3)
    r["b1"] = make_run(store, "nlp", "b1", created_time=t0 + 4, display_name="Alpha 100%")
    r["b2"] = make_run(store, "nlp", "b2", created_time=t0 + 5)
    r["child"] = make_run(store, "vision", "child", created_time=t0 + 6, parent_id="a1")
    store.set_run_status("a1", RunStatus.RUNNING)
    store.set_run_status("a1", RunStatus.COMPLETED)
    store.set_run_status("b1", RunStatus.RUNNING)
    store.set_run_status("a2", RunStatus.FAILED)
    # durations: a1 ran 100 s, a2 failed as it started (0 s), b1 has been running for 1000 s
    now = time.time()
    for run_id, start, end in [("a1", t0 + 10, t0 + 110), ("a2", t0 + 20, t0 + 20), ("b1", now - 1000, None)]:
        with store.engine.begin() as conn:
            conn.execute(
                schema.runs.update()
                .where(schema.runs.c.run_id == run_id)
                .values(start_time=start, end_time=end)
            )
    store.set_tags("a1", {"team": "red", "best": "yes"})
    store.set_tags("a2", {"team": "blue"})
    store.set_tags("b2", {"team": "red"})
    store.append_metrics(
        [
            scalar("a1", "loss", 0.5),
            scalar("a1", "loss", 0.3),
            scalar("a2", "loss", 0.9),
            scalar("b1", "loss", 0.1),
            scalar("b1", "loss", 0.7),
            scalar("a3", "acc", 0.8),
            scalar("child", "loss", 0.01),
            MetricRow("b2", "notes", "scalar", time.time(), value=None, text="text only"),
        ]
    )
    return r


def ids(store: SqlStore, **kw: Any) -> list[str]:
    return [run.run_id for run in store.search_runs(RunQuery(**kw)).runs]


def test_search_filters(store: SqlStore, table: dict[str, Any]) -> None:
    assert ids(store) == ["b2", "b1", "a3", "a2", "a1"]  # newest first, top-level only
    assert ids(store, top_level_only=False) == ["child", "b2", "b1", "a3", "a2", "a1"]
    assert ids(store, experiment_name="nlp") == ["b2", "b1"]
    assert ids(store, experiment_name="no-such-experiment") == []
    assert ids(store, status=RunStatus.FAILED) == ["a2"]
    assert ids(store, tag_key="team") == ["b2", "a2", "a1"]
    assert ids(store, tag_key="team", tag_value="red") == ["b2", "a1"]
    assert ids(store, tag_key="best", experiment_name="nlp") == []
    assert ids(store, text="RESNET") == ["a2", "a1"]  # display names, any case
    assert ids(store, text="NL") == ["b2", "b1"]  # experiment name
    assert ids(store, text="a3") == ["a3"]  # run id
    assert ids(store, text="100%") == ["b1"]  # a literal %, not a wildcard
    assert ids(store, text="1%0") == []
    assert ids(store, text="_") == []


def test_search_returns_values_and_tags_for_the_page(store: SqlStore, table: dict[str, Any]) -> None:
    columns = (
        MetricColumn("loss"),
        MetricColumn("loss", "min"),
        MetricColumn("loss", "max"),
        MetricColumn("acc"),
    )
    page = store.search_runs(RunQuery(experiment_name="vision", columns=columns))
    assert [run.run_id for run in page.runs] == ["a3", "a2", "a1"]
    assert page.values["a1"] == {"last:loss": 0.3, "min:loss": 0.3, "max:loss": 0.5, "last:acc": None}
    assert page.values["a3"] == {"last:loss": None, "min:loss": None, "max:loss": None, "last:acc": 0.8}
    assert page.tags == {"a3": {}, "a2": {"team": "blue"}, "a1": {"best": "yes", "team": "red"}}
    run = page.runs[2]
    assert (run.experiment_name, run.display_name, run.status) == ("vision", "ResNet Baseline", "Completed")
    assert run.number == 1


def test_sort_by_metric_puts_runs_without_it_last(store: SqlStore, table: dict[str, Any]) -> None:
    cols = (MetricColumn("loss"),)
    assert ids(store, columns=cols, sort="last:loss", descending=False) == ["a1", "b1", "a2", "b2", "a3"]
    assert ids(store, columns=cols, sort="last:loss", descending=True) == ["a2", "b1", "a1", "b2", "a3"]
    assert ids(store, sort="min:loss", descending=False) == [
        "b1",
        "a1",
        "a2",
        "b2",
        "a3",
    ]  # not shown, still sortable
    assert ids(store, sort="max:loss", descending=True) == ["a2", "b1", "a1", "b2", "a3"]
    # a metric only one run has: that run first, then the rest newest first, whichever direction
    assert ids(store, sort="last:acc", descending=False) == ["a3", "b2", "b1", "a2", "a1"]
    assert ids(store, sort="last:acc", descending=True) == ["a3", "b2", "b1", "a2", "a1"]


def test_sort_by_run_fields(store: SqlStore, table: dict[str, Any]) -> None:
    assert ids(store, sort="created", descending=False) == ["a1", "a2", "a3", "b1", "b2"]
    assert ids(store, sort="experiment", descending=False) == ["b2", "b1", "a3", "a2", "a1"]
    assert ids(store, sort="number", descending=True) == ["a3", "b2", "a2", "b1", "a1"]
    # display names; runs without one last either way
    assert ids(store, sort="name", descending=False) == ["b1", "a1", "a2", "b2", "a3"]
    assert ids(store, sort="name", descending=True) == ["a2", "a1", "b1", "b2", "a3"]
    assert ids(store, sort="status", descending=False) == ["a1", "a2", "b2", "a3", "b1"]
    # b1 is still running (1000 s so far); runs that never started come last either way
    assert ids(store, sort="duration", descending=True) == ["b1", "a1", "a2", "b2", "a3"]
    assert ids(store, sort="duration", descending=False) == ["a2", "a1", "b1", "b2", "a3"]


def test_pagination_total_and_windows(store: SqlStore, table: dict[str, Any]) -> None:
    everything = ids(store, top_level_only=False, sort="last:loss", limit=500)
    pages = [
        store.search_runs(RunQuery(top_level_only=False, sort="last:loss", offset=offset, limit=4))
        for offset in (0, 4, 8)
    ]
    assert [p.total for p in pages] == [6, 6, 6]
    assert [len(p.runs) for p in pages] == [4, 2, 0]
    assert [run.run_id for p in pages for run in p.runs] == everything
    for size in (1, 3, 5):  # pages that end inside, at and across the boundary to runs without the metric
        windows = [
            ids(store, top_level_only=False, sort="last:loss", offset=o, limit=size)
            for o in range(0, 8, size)
        ]
        assert [i for w in windows for i in w] == everything
    filtered = store.search_runs(RunQuery(tag_key="team", columns=(MetricColumn("loss"),), limit=1))
    assert filtered.total == 3
    assert [run.run_id for run in filtered.runs] == ["b2"]
    assert list(filtered.values) == ["b2"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (RunQuery(sort="loss"), "sort by one of created, status, duration, experiment, name, number"),
        (RunQuery(sort="avg:loss"), "AGG one of last, min, max"),
        (RunQuery(columns=(MetricColumn("loss", "mean"),)), "use one of last, min, max"),
        (RunQuery(limit=0), "A page holds 1 to 500 runs; got limit=0"),
        (RunQuery(limit=501), "A page holds 1 to 500 runs; got limit=501"),
        (RunQuery(offset=-1), "offset must be 0 or more; got -1"),
    ],
)
def test_bad_queries_say_what_is_allowed(store: SqlStore, query: RunQuery, message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        store.search_runs(query)
    assert message in str(info.value)


def test_list_metric_names(store: SqlStore, table: dict[str, Any]) -> None:
    assert store.list_metric_names() == ["acc", "loss"]  # "notes" was never a number
    assert store.list_metric_names("nlp") == ["loss"]
    assert store.list_metric_names("vision") == ["acc", "loss"]
    assert store.list_metric_names("no-such-experiment") == []


# -- experiments --------------------------------------------------------------------------------------


def test_experiment_summaries(store: SqlStore, table: dict[str, Any]) -> None:
    store.get_or_create_experiment("empty")
    make_run(store, "nlp", "late-child", created_time=1_800_000_000.0, parent_id="b1")
    summaries = store.experiment_summaries()
    assert [s.name for s in summaries] == ["empty", "nlp", "vision"]
    empty, nlp, vision = summaries
    assert (empty.run_count, empty.latest_run) == (0, None)
    assert nlp.run_count == 2  # child runs do not count, nor are they the latest
    assert nlp.latest_run is not None
    assert (nlp.latest_run.run_id, nlp.latest_run.experiment_name) == ("b2", "nlp")
    assert vision.run_count == 3
    assert vision.latest_run is not None
    assert vision.latest_run.run_id == "a3"
    assert vision.created_time == store.get_experiment("vision").created_time


def test_experiment_summaries_take_the_same_queries_for_any_number_of_experiments(store: SqlStore) -> None:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    def queries_for_summaries() -> int:
        statements.clear()
        sa.event.listen(store.engine, "before_cursor_execute", count)
        try:
            store.experiment_summaries()
        finally:
            sa.event.remove(store.engine, "before_cursor_execute", count)
        return len([s for s in statements if s.lstrip().upper().startswith("SELECT")])

    make_run(store, "first")
    few = queries_for_summaries()
    for i in range(8):
        make_run(store, f"exp-{i}")
        make_run(store, f"exp-{i}")
    assert len(store.experiment_summaries()) == 9
    assert queries_for_summaries() == few == 1


# -- live pages ------------------------------------------------------------------------------------


def test_change_marker_moves_with_what_pages_show_and_only_then(store: SqlStore) -> None:
    parent = make_run(store, "live", "parent")
    child = make_run(store, "live", "child", parent_id="parent")
    other = make_run(store, "live", "other")
    family, workspace = store.change_marker(parent.run_id), store.change_marker()
    assert store.change_marker(parent.run_id) == family and store.change_marker() == workspace  # steady

    def moved(action) -> tuple[bool, bool]:  # type: ignore[no-untyped-def]
        nonlocal family, workspace
        before = (family, workspace)
        action()
        family, workspace = store.change_marker(parent.run_id), store.change_marker()
        return family != before[0], workspace != before[1]

    assert moved(lambda: store.set_run_status(child.run_id, RunStatus.QUEUED)) == (True, True)
    assert moved(lambda: store.set_run_status(child.run_id, RunStatus.RUNNING)) == (True, True)
    assert moved(lambda: store.append_metrics([scalar(child.run_id, "loss", 0.5)])) == (True, True)
    assert moved(lambda: store.set_tags(child.run_id, {"stage": "fit"})) == (True, False)  # run pages only
    assert moved(lambda: store.set_run_status(other.run_id, RunStatus.RUNNING)) == (False, True)
    assert moved(lambda: make_run(store, "live", "newer")) == (False, True)
    assert moved(lambda: None) == (False, False)
