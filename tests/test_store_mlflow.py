"""MLflow's metrics and search at the store level, on a real SQLite file and a real PostgreSQL database.

NaN and ±inf survive a round trip and never cost a batch; a run's "latest" value follows MLflow's rule
(highest step, then latest timestamp, then largest value, NaN comparing as 0); search filters and
orders in SQL with MLflow's semantics, in two statements whatever the number of runs.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from runyard.store.records import MetricRow, RunRecord
from runyard.store.sql_base import dispose_engine
from runyard.store.sql_mlflow_search import Condition, MlflowExperimentQuery, MlflowRunQuery, OrderKey
from runyard.store.sql_store import SqlStore

INF = math.inf


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SqlStore]:
    """One database per dialect for the whole file (each test uses its own experiment and run ids)."""
    if request.param == "sqlite":
        uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/store.db"
        opened = SqlStore(uri)
        yield opened
        opened.engine.dispose()
        return
    import psycopg

    server = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    opened = SqlStore(f"{server}/{name}")
    yield opened
    dispose_engine(f"{server}/{name}")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(module_store: SqlStore) -> SqlStore:
    return module_store


def new_run(store: SqlStore, exp: str, run_id: str, start: float, **kw: Any) -> RunRecord:
    return new_runs(store, exp, [(run_id, start)], **kw)[0]


def new_runs(store: SqlStore, exp: str, runs: list[tuple[str, float]], **kw: Any) -> list[RunRecord]:
    e = store.get_or_create_experiment(exp)
    return store.create_runs(
        [
            RunRecord(
                run_id=run_id,
                experiment_id=e.id,
                experiment_name=e.name,
                status=kw.get("status", "Running"),
                run_type="mlflow.run",
                created_time=start,
                start_time=start,
                display_name=kw.get("display_name"),
                data=dict(kw.get("data", {})),
            )
            for run_id, start in runs
        ]
    )


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def scalar(run_id: str, name: str, value: float, step: int | None = 0, ts: float = 100.0) -> MetricRow:
    return MetricRow(run_id=run_id, name=name, kind="scalar", timestamp=ts, value=value, step=step)


def latest(store: SqlStore, run_id: str) -> dict[str, tuple[float, int, float]]:
    return {m.key: (m.value, m.step, m.timestamp) for m in store.mlflow_latest_metrics([run_id])[run_id]}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# -- metrics -------------------------------------------------------------------------------------------
def test_nan_and_inf_round_trip_in_one_batch_without_touching_min_max(store: SqlStore) -> None:
    r = new_run(store, "e", uid("r"), 1.0).run_id
    store.append_mlflow_metrics(
        [
            *(scalar(r, "m", v, step) for step, v in enumerate([1.0, math.nan, INF, -INF, 2.0])),
            scalar(r, "only_nan", math.nan),
        ]
    )
    values = [r.value for r in store.get_metric_rows([r], "m")]
    assert [str(v) for v in values] == ["1.0", "nan", "inf", "-inf", "2.0"]
    (summary,) = store.get_metric_summaries([r])  # only_nan has no value to summarize
    assert (summary.name, summary.count, summary.min, summary.max, summary.last) == ("m", 4, -INF, INF, 2.0)
    assert math.isnan(latest(store, r)["only_nan"][0])
    assert latest(store, r)["m"] == (2.0, 4, 100.0)
    store.append_mlflow_metrics([scalar(r, "only_nan", 3.0, 0, ts=50.0)])  # older: NaN stays latest
    assert math.isnan(latest(store, r)["only_nan"][0])
    store.append_mlflow_metrics([scalar(r, "only_nan", 3.0, 0, ts=150.0)])
    assert latest(store, r)["only_nan"] == (3.0, 0, 150.0)
    assert [s.min for s in store.get_metric_summaries([r]) if s.name == "only_nan"] == [3.0]


def test_runyard_api_still_refuses_non_finite(store: SqlStore) -> None:
    r = new_run(store, "e", uid("r"), 1.0).run_id
    with pytest.raises(Exception, match="not a finite number"):
        store.append_metrics([scalar(r, "m", math.nan)])
    with pytest.raises(Exception, match="not a finite number"):
        store.append_metrics([scalar(r, "m", INF)])


def test_mlflow_resends_of_stored_rows_are_dropped_but_run_log_repeats_stay(store: SqlStore) -> None:
    r = new_run(store, "e", uid("r"), 1.0).run_id
    first = [scalar(r, "m", 1.0, 0, 10.0), scalar(r, "m", math.nan, 1, 11.0), scalar(r, "m", 2.0, 2, 12.0)]
    store.append_mlflow_metrics(first)
    # MLflow 3's log_model resends the rows (here: all, plus a new one and an in-batch copy)
    store.append_mlflow_metrics([*first, scalar(r, "m", 3.0, 2, 12.0), scalar(r, "m", 3.0, 2, 12.0)])
    store.append_mlflow_metrics([scalar(r, "m", 1.0, 0, 10.0)])  # older than the latest: still looked up
    rows = [(x.value, x.step, x.timestamp) for x in store.get_metric_rows([r], "m")]
    assert [str(v) for v, _, _ in rows] == ["1.0", "nan", "2.0", "3.0"]
    (summary,) = store.get_metric_summaries([r])
    assert (summary.count, summary.min, summary.max) == (3, 1.0, 3.0)
    # a different value, step or timestamp is a new row, as in MLflow
    store.append_mlflow_metrics([scalar(r, "m", 1.0, 0, 10.5), scalar(r, "m", 1.5, 0, 10.0)])
    assert len(store.get_metric_rows([r], "m")) == 6
    # runyard's own Run.log keeps every repeat
    store.append_metrics([scalar(r, "v1", 1.0, 0, 10.0), scalar(r, "v1", 1.0, 0, 10.0)])
    store.append_metrics([scalar(r, "v1", 1.0, 0, 10.0)])
    assert len(store.get_metric_rows([r], "v1")) == 3


@pytest.mark.parametrize(
    ("batches", "expected"),
    [
        # highest step wins, whatever the order it was logged in
        ([[(5.0, 3, 10.0)], [(7.0, 1, 20.0)]], (5.0, 3, 10.0)),
        # same step: the latest timestamp
        ([[(5.0, 2, 30.0), (7.0, 2, 20.0)]], (5.0, 2, 30.0)),
        # same step and timestamp: the larger value; NaN compares as 0
        ([[(-1.0, 2, 30.0)], [(math.nan, 2, 30.0)], [(-3.0, 2, 30.0)]], (math.nan, 2, 30.0)),
        ([[(math.nan, 2, 30.0), (0.5, 2, 30.0)]], (0.5, 2, 30.0)),
        # within one batch the same rule as across batches
        ([[(1.0, 9, 1.0), (2.0, 8, 99.0), (INF, 9, 1.0)]], (INF, 9, 1.0)),
    ],
)
def test_latest_follows_mlflow_rule(
    store: SqlStore, batches: list[list[tuple[float, int, float]]], expected: tuple[float, int, float]
) -> None:
    r = new_run(store, "e", uid("r"), 1.0).run_id
    for batch in batches:
        store.append_mlflow_metrics([scalar(r, "m", v, step, ts) for v, step, ts in batch])
    got = latest(store, r)["m"]
    assert same(got[0], expected[0]) and got[1:] == expected[1:]


def test_latest_metrics_of_many_runs_in_one_query(store: SqlStore) -> None:
    ids = [r.run_id for r in new_runs(store, "e", [(uid("r"), float(i)) for i in range(30)])]
    store.append_mlflow_metrics(
        [
            row
            for i, run_id in enumerate(ids)
            for row in (scalar(run_id, "a", float(i)), scalar(run_id, "b", -i, 2))
        ]
    )
    with count_statements(store) as seen:
        found = store.mlflow_latest_metrics(ids)
    assert len(seen) == 1
    assert [(m.key, m.value, m.step) for m in found[ids[7]]] == [("a", 7.0, 0), ("b", -7.0, 2)]


def test_history_pages_and_samples_on_both_databases(store: SqlStore) -> None:
    r = new_run(store, "e", uid("r"), 1.0).run_id
    values = [math.nan if i == 50 else float(i) for i in range(100)]
    store.append_mlflow_metrics([scalar(r, "s", v, step=i, ts=float(1000 - i)) for i, v in enumerate(values)])
    page, more = store.mlflow_metric_history(r, "s", offset=0, limit=3)  # history order: timestamp first
    assert [m.step for m in page] == [99, 98, 97] and more
    every, more = store.mlflow_metric_history(r, "s")
    assert len(every) == 100 and not more and math.isnan(next(m.value for m in every if m.step == 50))
    sample = store.mlflow_metric_sample(r, "s", 10)
    assert [m.step for m in sample] == [0, 10, 20, 30, 40, 50, 60, 70, 80, 99] and math.isnan(sample[5].value)
    assert [m.step for m in store.mlflow_metric_sample(r, "s", 5, (10, 13))] == [10, 11, 12, 13]


# -- search --------------------------------------------------------------------------------------------
class count_statements:
    """Counts the SQL statements a block sends (SQLAlchemy's before_cursor_execute)."""

    def __init__(self, store: SqlStore) -> None:
        self.engine = store.engine
        self.seen: list[str] = []

    def _hook(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            self.seen.append(statement)

    def __enter__(self) -> list[str]:
        sa.event.listen(self.engine, "before_cursor_execute", self._hook)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._hook)


@pytest.fixture(scope="module")
def populated(module_store: SqlStore) -> tuple[SqlStore, str]:
    """Five active runs (rb's acc is NaN, rc has none and has finished) and a deleted one (rf)."""
    store = module_store
    runs = {
        "ra": (10.0, 0.9, {"lr": "0.1", "opt": "Adam"}, {"team": "x"}),
        "rb": (20.0, math.nan, {"lr": "0.2"}, {"team": "y"}),
        "rc": (30.0, None, {}, {}),
        "rd": (40.0, 0.5, {"lr": "0.1", "opt": "adam"}, {"team": "x"}),
        "re": (40.0, INF, {"lr": "0.3"}, {}),
        "rf": (50.0, 1.0, {}, {}),
    }
    for run_id, (start, acc, params, tags) in runs.items():
        user = {"mlflowUser": "ann"} if run_id == "ra" else {}
        new_run(store, "search", run_id, start, display_name=f"name-{run_id}", data=user)
        if acc is not None:
            store.append_mlflow_metrics([scalar(run_id, "acc", acc)])
        store.add_properties(run_id, params)
        store.set_tags(run_id, tags)
    store.set_run_status("rc", "Completed")
    store.set_run_lifecycle("rf", "deleted")
    return store, store.get_experiment("search").id


def ids(
    store: SqlStore, exp: str, *conds: Condition, order: tuple[OrderKey, ...] = (), **kw: Any
) -> list[str]:
    found, _ = store.search_mlflow_runs(MlflowRunQuery((exp,), tuple(conds), order, **kw))
    return [r.run_id for r in found]


def test_default_order_is_start_desc_then_run_id(populated: tuple[SqlStore, str]) -> None:
    store, exp = populated
    assert ids(store, exp) == ["rd", "re", "rc", "rb", "ra"]


def test_metric_filters_read_the_latest_value_and_skip_nan(populated: tuple[SqlStore, str]) -> None:
    store, exp = populated
    assert ids(store, exp, Condition("metric", "acc", ">", 0.6)) == ["re", "ra"]
    assert ids(store, exp, Condition("metric", "acc", "<=", 0.9)) == ["rd", "ra"]
    assert ids(store, exp, Condition("metric", "acc", "!=", 0.5)) == ["re", "rb", "ra"]  # NaN passes !=
    assert ids(store, exp, Condition("metric", "acc", "=", INF)) == ["re"]


def test_param_and_tag_filters_need_the_key(populated: tuple[SqlStore, str]) -> None:
    store, exp = populated
    assert ids(store, exp, Condition("param", "lr", "!=", "0.1")) == ["re", "rb"]  # rc has no lr
    assert ids(store, exp, Condition("param", "opt", "LIKE", "A%")) == ["ra"]  # LIKE is case-sensitive
    assert ids(store, exp, Condition("param", "opt", "ILIKE", "a%")) == ["rd", "ra"]
    assert ids(store, exp, Condition("tag", "team", "=", "x"), Condition("param", "lr", "=", "0.1")) == [
        "rd",
        "ra",
    ]
    assert ids(store, exp, Condition("tag", "team", "IS NULL")) == ["re", "rc"]
    assert ids(store, exp, Condition("param", "opt", "IS NOT NULL")) == ["rd", "ra"]


def test_attribute_filters(populated: tuple[SqlStore, str]) -> None:
    store, exp = populated
    assert ids(store, exp, Condition("attribute", "run_id", "IN", ("ra", "rc", "zz"))) == ["rc", "ra"]
    assert ids(store, exp, Condition("attribute", "run_id", "NOT IN", ("ra", "rc"))) == ["rd", "re", "rb"]
    assert ids(store, exp, Condition("attribute", "run_name", "LIKE", "%-rb")) == ["rb"]
    assert ids(store, exp, Condition("attribute", "user_id", "=", "ann")) == ["ra"]
    assert ids(store, exp, order=(OrderKey("attribute", "user_id", False),))[0] == "ra"
    assert ids(store, exp, Condition("attribute", "start_time", ">=", 30_000)) == ["rd", "re", "rc"]
    assert ids(store, exp, Condition("attribute", "start_time", "=", 20_000)) == ["rb"]
    assert ids(store, exp, Condition("attribute", "start_time", "<", 20_000)) == ["ra"]
    status = {"statuses": (("Running", "RUNNING"), ("Completed", "FINISHED"))}
    assert ids(store, exp, Condition("attribute", "status", "=", "FINISHED"), **status) == ["rc"]
    assert ids(store, exp, Condition("attribute", "end_time", ">", 0)) == ["rc"]
    art = {"artifact_root": "mlflow-artifacts:/runs"}
    assert ids(
        store, exp, Condition("attribute", "artifact_uri", "=", "mlflow-artifacts:/runs/rb"), **art
    ) == ["rb"]


def test_order_by_metric_puts_nan_then_missing_last_either_way(populated: tuple[SqlStore, str]) -> None:
    store, exp = populated
    assert ids(store, exp, order=(OrderKey("metric", "acc", True),)) == ["rd", "ra", "re", "rb", "rc"]
    assert ids(store, exp, order=(OrderKey("metric", "acc", False),)) == ["re", "ra", "rd", "rb", "rc"]
    # a filter on the ordered metric orders off its own join
    assert ids(store, exp, Condition("metric", "acc", ">", 0), order=(OrderKey("metric", "acc", False),)) == [
        "re",
        "ra",
        "rd",
    ]


def test_order_by_param_tag_and_attribute(populated: tuple[SqlStore, str]) -> None:
    store, exp = populated
    by_lr = (OrderKey("param", "lr", False),)
    assert ids(store, exp, order=by_lr) == ["re", "rb", "rd", "ra", "rc"]  # ties: start_time DESC
    assert ids(store, exp, order=(OrderKey("tag", "team", True),)) == ["rd", "ra", "rb", "re", "rc"]
    assert ids(store, exp, order=(OrderKey("attribute", "start_time", True),)) == [
        "ra",
        "rb",
        "rc",
        "rd",
        "re",
    ]
    assert ids(store, exp, order=(OrderKey("attribute", "run_name", False),)) == [
        "re",
        "rd",
        "rc",
        "rb",
        "ra",
    ]


def test_paging_and_lifecycle(populated: tuple[SqlStore, str]) -> None:
    store, exp = populated
    pages, offset, more = [], 0, True
    while more:
        found, more = store.search_mlflow_runs(MlflowRunQuery((exp,), offset=offset, limit=2))
        pages.append([r.run_id for r in found])
        offset += 2
    assert pages == [["rd", "re"], ["rc", "rb"], ["ra"]]
    assert ids(store, exp, lifecycle_stages=("deleted",)) == ["rf"]
    assert ids(store, exp, run_ids=("ra", "rf"), lifecycle_stages=("active", "deleted")) == ["rf", "ra"]


def test_search_is_two_statements_for_hundreds_of_runs(store: SqlStore) -> None:
    exp = store.get_or_create_experiment("many")
    new_runs(store, "many", [(f"m{i:03d}", float(i)) for i in range(300)])
    store.append_mlflow_metrics([scalar(f"m{i:03d}", "loss", i / 300) for i in range(300)])
    query = MlflowRunQuery(
        (exp.id,),
        (Condition("metric", "loss", "<", 0.5), Condition("attribute", "run_name", "!=", "x")),
        (OrderKey("metric", "loss", False),),
        limit=10,
    )
    with count_statements(store) as seen:
        found, more = store.search_mlflow_runs(query)
    assert len(seen) == 2 and more  # the page's ids, then their records
    assert [r.run_id for r in found][:3] == ["m149", "m148", "m147"]


def test_experiment_search(store: SqlStore) -> None:
    for i, name in enumerate(["alpha", "beta", "Gamma"]):
        store.create_mlflow_experiment(name, None, {"k": f"v{i}"} if i != 1 else {})
        time.sleep(0.002)  # distinct creation times
    q = MlflowExperimentQuery
    found, _ = store.search_mlflow_experiments(q((Condition("attribute", "name", "LIKE", "%a%"),)))
    assert [e.name for e in found][:3] == ["Gamma", "beta", "alpha"]  # newest first
    found, _ = store.search_mlflow_experiments(q((Condition("attribute", "name", "ILIKE", "g%"),)))
    assert [e.name for e in found] == ["Gamma"]
    found, _ = store.search_mlflow_experiments(q((Condition("tag", "k", "IS NULL"),), limit=10))
    assert "beta" in [e.name for e in found] and "alpha" not in [e.name for e in found]
    found, more = store.search_mlflow_experiments(
        q((Condition("tag", "k", "LIKE", "v%"),), (OrderKey("attribute", "name", True),), limit=1)
    )
    assert [e.name for e in found] == ["Gamma"] and more
