"""MLflow's run and experiment search through the real `mlflow` client against one real `runyard server`:
filters on metrics, params, tags and attributes (IN, NOT IN, LIKE, ILIKE, backquoted keys), MLflow's
order with NaN and missing values last, stable pages, deleted runs, MLflow's refusals in its wording;
and, in process, that a search page costs a fixed number of SQL statements however many runs exist.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from runyard import Workspace
from runyard.mlflow_api.caller import LocalCaller
from runyard.mlflow_api.dispatch import MlflowContext, dispatch
from runyard.store import MetricRow, RunRecord, SqlStore
from server_process import ServerProcess, running_server

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


@dataclass
class Served:
    ws: Workspace
    server: ServerProcess
    client: MlflowClient
    exp: str
    runs: dict[str, str]  # label -> run id


def _log(
    c: MlflowClient, run_id: str, metrics: dict[str, float], params: dict[str, str], tags: dict[str, str]
) -> None:
    now = int(time.time() * 1000)
    c.log_batch(
        run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
        params=[Param(k, v) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("mlflow-search")
    ws = Workspace.create(root / "ws" / ".runyard")
    with running_server(ws.path, root / "server.log") as server:
        mlflow.set_tracking_uri(server.url)
        c = MlflowClient(server.url)
        exp = c.create_experiment("search")
        spec: dict[str, tuple[dict[str, float], dict[str, str], dict[str, str]]] = {
            "a": ({"acc": 0.9, "loss": 0.1}, {"lr": "0.1", "opt": "Adam"}, {"team": "x", "my key": "k1"}),
            "b": ({"acc": 0.4}, {"lr": "0.2", "opt": "adam"}, {"team": "y"}),
            "c": ({"loss": 0.5}, {"opt": "sgd"}, {}),
            "d": ({"acc": 0.7}, {"lr": "0.1"}, {"team": "x", "my key": "k2"}),
        }
        runs = {}
        for i, (label, (metrics, params, tags)) in enumerate(spec.items()):
            run = c.create_run(exp, run_name=f"run-{label}", start_time=1_700_000_000_000 + i * 1000)
            _log(c, run.info.run_id, metrics, params, tags)
            runs[label] = run.info.run_id
        yield Served(ws, server, c, exp, runs)


def labels(served: Served, found: Any) -> list[str]:
    back = {v: k for k, v in served.runs.items()}
    return [back[r.info.run_id] for r in found]


def search(served: Served, flt: str = "", order: list[str] | None = None, **kw: Any) -> list[str]:
    return labels(served, served.client.search_runs([served.exp], flt, order_by=order, **kw))


def test_default_order_is_newest_first(served: Served) -> None:
    assert search(served) == ["d", "c", "b", "a"]


def test_filters(served: Served) -> None:
    assert search(served, "metrics.acc > 0.5") == ["d", "a"]
    assert search(served, "metrics.acc >= 0.4 AND params.lr = '0.1'") == ["d", "a"]
    assert search(served, "params.lr != '0.1'") == ["b"]  # c has no lr: not a match
    assert search(served, "params.opt LIKE 'A%'") == ["a"]
    assert search(served, "params.opt ILIKE 'a%'") == ["b", "a"]
    assert search(served, "tags.`my key` = 'k2'") == ["d"]
    assert search(served, "tags.team IS NULL") == ["c"]
    assert search(served, "attributes.run_name = 'run-b'") == ["b"]
    assert search(served, "run_name ILIKE 'RUN-%' and metrics.loss < 1") == ["c", "a"]
    ids = f"('{served.runs['a']}', '{served.runs['c']}')"
    assert search(served, f"attributes.run_id IN {ids}") == ["c", "a"]
    assert search(served, f"attributes.run_id NOT IN {ids}") == ["d", "b"]
    assert search(served, "attributes.start_time >= 1700000002000") == ["d", "c"]
    assert search(served, "attributes.status = 'RUNNING'") == ["d", "c", "b", "a"]


def test_order_by_puts_missing_values_last(served: Served) -> None:
    assert search(served, order=["metrics.acc DESC"]) == ["a", "d", "b", "c"]
    assert search(served, order=["metrics.acc ASC"]) == ["b", "d", "a", "c"]
    assert search(served, order=["params.lr DESC", "attributes.run_name"]) == ["b", "a", "d", "c"]
    assert search(served, order=["tags.team"]) == ["d", "a", "b", "c"]
    assert search(served, order=["attributes.start_time ASC"]) == ["a", "b", "c", "d"]


def test_pages_are_stable_and_cover_every_run_once(served: Served) -> None:
    seen: list[str] = []
    token = None
    while True:
        page = served.client.search_runs(
            [served.exp], max_results=3, order_by=["params.lr"], page_token=token
        )
        seen += labels(served, page)
        token = page.token
        if not token:
            break
    assert seen == search(served, order=["params.lr"]) and sorted(seen) == ["a", "b", "c", "d"]


def test_nan_and_latest_value_in_search(served: Served) -> None:
    c = served.client
    run = c.create_run(served.exp, run_name="nan-run", start_time=1_600_000_000_000)
    served.runs["n"] = run.info.run_id
    try:
        c.log_metric(run.info.run_id, "acc", 0.95, step=1)
        c.log_metric(run.info.run_id, "acc", math.nan, step=2)  # the latest value (highest step)
        assert search(served, "metrics.acc > 0.5") == ["d", "a"]
        assert "n" in search(served, "metrics.acc != 0.5")
        assert search(served, order=["metrics.acc DESC"]) == ["a", "d", "b", "n", "c"]
        assert math.isnan(c.get_run(run.info.run_id).data.metrics["acc"])
    finally:
        c.delete_run(run.info.run_id)
        del served.runs["n"]


def test_deleted_runs_follow_the_view_type(served: Served) -> None:
    c = served.client
    run = c.create_run(served.exp, run_name="gone", start_time=1_600_000_000_000)
    served.runs["g"] = run.info.run_id
    c.delete_run(run.info.run_id)
    try:
        gone = "attributes.run_name = 'gone'"
        assert search(served, gone, run_view_type=ViewType.DELETED_ONLY) == ["g"]
        assert search(served, gone) == []
        assert search(served, gone, run_view_type=ViewType.ALL) == ["g"]
    finally:
        del served.runs["g"]


@pytest.mark.parametrize(
    ("flt", "order", "message"),
    [
        ("metrics.acc > 'x'", None, "Expected numeric value type for metric. Found 'x'"),
        (
            "params.lr = 1",
            None,
            "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 1",
        ),
        ("metrics.a > 1 OR metrics.b < 2", None, "Invalid clause(s) in filter string: 'OR'"),
        ("foo.a = '1'", None, "Invalid entity type 'foo'. Valid values are"),
        ("attributes.foo = '1'", None, "Invalid attribute key 'foo' specified. Valid keys are"),
        ("params.lr > '1'", None, "Invalid comparator '>' not one of"),
        ("run_name IN ('x')", None, "Only ['run_id'] attributes support comparison with a list"),
        ("", ["metrics.acc sideways"], "Invalid ordering key in order_by clause 'metrics.acc sideways'."),
    ],
)
def test_refusals_in_mlflow_wording(served: Served, flt: str, order: list[str] | None, message: str) -> None:
    with pytest.raises(MlflowException) as info:
        served.client.search_runs([served.exp], flt, order_by=order)
    assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert message in info.value.message


def test_bad_page_token_and_max_results(served: Served) -> None:
    with pytest.raises(MlflowException, match="Invalid page token, could not base64-decode"):
        served.client.search_runs([served.exp], page_token="zzz")
    with pytest.raises(MlflowException, match="Invalid value 60000 for parameter 'max_results'"):
        served.client.search_runs([served.exp], max_results=60000)


def test_experiment_search(served: Served) -> None:
    c = served.client
    for name, tags in [("exp-alpha", {"owner": "ann"}), ("exp-beta", {}), ("other", {"owner": "bob"})]:
        c.create_experiment(name, tags=tags)
        time.sleep(0.002)
    names = [e.name for e in c.search_experiments(filter_string="name LIKE 'exp-%'")]
    assert names == ["exp-beta", "exp-alpha"]  # newest first
    assert [e.name for e in c.search_experiments(filter_string="tags.owner = 'bob'")] == ["other"]
    ordered = c.search_experiments(filter_string="name ILIKE 'EXP-%'", order_by=["name ASC"], max_results=1)
    assert [e.name for e in ordered] == ["exp-alpha"] and ordered.token
    more = c.search_experiments(
        filter_string="name ILIKE 'EXP-%'", order_by=["name ASC"], page_token=ordered.token
    )
    assert [e.name for e in more] == ["exp-beta"]
    c.delete_experiment(c.get_experiment_by_name("exp-beta").experiment_id)
    assert [e.name for e in c.search_experiments(view_type=ViewType.DELETED_ONLY)] == ["exp-beta"]
    default = c.search_experiments(filter_string="experiment_id = '0'")
    assert [e.experiment_id for e in default] in ([], ["0"])


# -- statements per search (in process, through the same handlers) -----------------------------------------
def test_a_search_page_costs_the_same_few_statements_for_300_runs(tmp_path: Any) -> None:
    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    store = ws.store
    assert isinstance(store, SqlStore)
    ctx = MlflowContext(store, LocalCaller(), lambda folder: f"mlflow-artifacts:/{folder}")
    exp = dispatch(ctx, "POST", "experiments/create", {"name": "many"})["experiment_id"]
    record = store.get_experiment("many")
    runs = [
        RunRecord(f"run{i:03d}", record.id, record.name, "Running", "mlflow.run", 1.0 + i, start_time=1.0 + i)
        for i in range(300)
    ]
    store.create_runs(runs)
    store.append_mlflow_metrics(
        [MetricRow(r.run_id, "m", "scalar", 1.0, float(i)) for i, r in enumerate(runs)]
    )
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        body = {
            "experiment_ids": [exp],
            "filter": "metrics.m >= 150",
            "order_by": ["metrics.m"],
            "max_results": 1,
        }
        page = dispatch(ctx, "POST", "runs/search", body)
        one = len(statements)
        statements.clear()
        dispatch(ctx, "POST", "runs/search", {**body, "max_results": 200})
        many = len(statements)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert page["runs"][0]["data"]["metrics"][0]["value"] == 150
    assert one == many and one <= 8, statements


def test_a_job_run_token_finds_only_its_own_run_family(tmp_path: Any) -> None:
    """The server's own caller for a run token (in process): the job's run and the runs under it."""
    from runyard.server.auth import Principal
    from runyard.server.routes_mlflow import ServerCaller

    ws = Workspace.create(tmp_path / "ws" / ".runyard")
    store = ws.store
    assert isinstance(store, SqlStore)
    exp = store.get_or_create_experiment("jobs")
    family = [("job", None), ("step", "job"), ("inner", "step"), ("other", None)]
    store.create_runs(
        [RunRecord(r, exp.id, exp.name, "Running", "azureml.scriptrun", 1.0, parent_id=p) for r, p in family]
    )
    caller = ServerCaller(Principal(scope="run", token_id="t1", run_id="job"))
    ctx = MlflowContext(store, caller, lambda folder: f"mlflow-artifacts:/{folder}")
    found = dispatch(ctx, "POST", "runs/search", {"experiment_ids": [exp.id]})
    assert sorted(r["info"]["run_id"] for r in found["runs"]) == ["inner", "job", "step"]
    admin = MlflowContext(store, LocalCaller(), ctx.artifact_uri)
    assert len(dispatch(admin, "POST", "runs/search", {"experiment_ids": [exp.id]})["runs"]) == 4


def test_experiment_search_over_get(served: Served) -> None:
    """MLflow's server also answers experiments/search as GET, with query parameters."""
    url = f"{served.server.url}/api/2.0/mlflow/experiments/search"
    body = httpx.get(
        url, params={"filter": "name = 'search'", "order_by": "name DESC", "max_results": 5}
    ).json()
    assert [e["name"] for e in body["experiments"]] == ["search"]
    bad = httpx.get(url, params={"order_by": "name sideways"})
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
