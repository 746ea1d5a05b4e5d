"""MLflow metrics through the real `mlflow` client against one real `runyard server`: NaN and ±inf are
kept (alone, in a batch, async), a run shows MLflow's latest value (highest step, then latest timestamp,
then largest value) with its own timestamp, and metrics/get-history pages as MLflow's server pages it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from runyard import Workspace
from server_process import ServerProcess, running_server

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402


@dataclass
class Served:
    ws: Workspace
    server: ServerProcess
    client: MlflowClient
    exp: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("mlflow-metrics")
    ws = Workspace.create(root / "ws" / ".runyard")
    with running_server(ws.path, root / "server.log") as server:
        mlflow.set_tracking_uri(server.url)
        c = MlflowClient(server.url)
        yield Served(ws, server, c, c.create_experiment("metrics"))


def new_run(served: Served) -> str:
    return str(served.client.create_run(served.exp).info.run_id)


def test_nan_and_infinity_are_kept_and_never_cost_a_batch(served: Served) -> None:
    c, run_id = served.client, new_run(served)
    now = int(time.time() * 1000)
    c.log_metric(run_id, "alone", math.nan)
    c.log_batch(
        run_id,
        metrics=[
            *(Metric("m", v, now, step) for step, v in enumerate([1.0, math.inf, -math.inf, math.nan])),
            Metric("ok", 2.0, now, 0),
        ],
    )
    c.log_metric(run_id, "async", math.inf, synchronous=False).wait()
    metrics = c.get_run(run_id).data.metrics
    assert math.isnan(metrics["alone"]) and math.isnan(metrics["m"])
    assert metrics["ok"] == 2.0 and metrics["async"] == math.inf
    history = [m.value for m in c.get_metric_history(run_id, "m")]
    assert history[:3] == [1.0, math.inf, -math.inf] and math.isnan(history[3])


def test_latest_value_is_the_one_at_the_highest_step(served: Served) -> None:
    c, run_id = served.client, new_run(served)
    c.log_metric(run_id, "loss", 0.5, step=5, timestamp=1_000)
    c.log_metric(run_id, "loss", 0.9, step=2, timestamp=9_000)  # logged last, but an earlier step
    c.log_metric(run_id, "acc", 0.1, step=3, timestamp=2_000)
    c.log_metric(run_id, "acc", 0.2, step=3, timestamp=3_000)  # same step: the later timestamp
    c.log_metric(run_id, "f1", 0.3, step=1, timestamp=5_000)
    c.log_metric(run_id, "f1", 0.7, step=1, timestamp=5_000)  # same step and time: the larger value
    c.log_metric(run_id, "f1", 0.4, step=1, timestamp=5_000)
    run = c.get_run(run_id)
    assert run.data.metrics == {"loss": 0.5, "acc": 0.2, "f1": 0.7}
    # the run's own REST JSON carries each latest value's timestamp and step, not the run's start time
    body = httpx.get(f"{served.server.url}/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()
    shown = {m["key"]: (m["value"], m["timestamp"], m["step"]) for m in body["run"]["data"]["metrics"]}
    assert shown == {"loss": (0.5, 1_000, 5), "acc": (0.2, 3_000, 3), "f1": (0.7, 5_000, 1)}


def test_history_is_in_mlflow_order_and_pages(served: Served) -> None:
    c, run_id = served.client, new_run(served)
    for i in range(7):
        c.log_metric(run_id, "h", float(i), step=i, timestamp=10_000 + (6 - i) * 10)  # newest first
    values = [m.value for m in c.get_metric_history(run_id, "h")]
    assert values == [6.0, 5.0, 4.0, 3.0, 2.0, 1.0, 0.0]  # MLflow orders history by timestamp
    url = f"{served.server.url}/api/2.0/mlflow/metrics/get-history"
    seen, token, pages = [], None, 0
    while True:
        params = {
            "run_id": run_id,
            "metric_key": "h",
            "max_results": 3,
            **({"page_token": token} if token else {}),
        }
        body = httpx.get(url, params=params).json()
        seen += [m["value"] for m in body["metrics"]]
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
    assert seen == values and pages == 3
    assert c.get_metric_history(run_id, "never-logged") == []


def test_history_refusals_in_mlflow_wording(served: Served) -> None:
    c, run_id = served.client, new_run(served)
    with pytest.raises(MlflowException) as info:
        c.get_metric_history("no-such-run", "h")
    assert info.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert info.value.message.endswith("Run with id=no-such-run not found")
    url = f"{served.server.url}/api/2.0/mlflow/metrics/get-history"
    bad = httpx.get(url, params={"run_id": run_id})
    assert bad.status_code == 400 and bad.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Missing value for required parameter 'metric_key'" in bad.json()["message"]
    bad = httpx.get(url, params={"run_id": run_id, "metric_key": "h", "max_results": 0})
    assert bad.status_code == 400 and "It must be a positive integer" in bad.json()["message"]
    bad = httpx.get(url, params={"run_id": run_id, "metric_key": "h", "page_token": "@@@"})
    assert bad.json()["message"] == "Invalid page token, could not base64-decode"


def test_bulk_interval_samples_each_run_evenly_and_keeps_the_last_point(served: Served) -> None:
    c = served.client
    runs = [new_run(served), new_run(served)]
    now = int(time.time() * 1000)
    for run_id in runs:
        c.log_batch(run_id, metrics=[Metric("s", float(i), now, i) for i in range(100)])
    url = f"{served.server.url}/api/2.0/mlflow/metrics/get-history-bulk-interval"
    body = httpx.get(url, params={"run_ids": runs, "metric_key": "s", "max_results": 10}).json()
    by_run: dict[str, list[int]] = {}
    for m in body["metrics"]:
        by_run.setdefault(m["run_id"], []).append(m["step"])
    assert by_run == {r: [0, 10, 20, 30, 40, 50, 60, 70, 80, 99] for r in runs}
    ranged = httpx.get(
        url, params={"run_ids": runs[0], "metric_key": "s", "start_step": 5, "end_step": 7}
    ).json()
    assert [m["step"] for m in ranged["metrics"]] == [5, 6, 7]
    bad = httpx.get(url, params={"run_ids": runs[0], "metric_key": "s", "start_step": 5})
    assert bad.json()["message"] == "If either start step or end step are specified, both must be specified."
    bad = httpx.get(url, params={"run_ids": runs[0], "metric_key": "s", "max_results": 9999})
    assert bad.json()["message"].startswith("max_results must be between 1 and 2500. See the API docs")


def test_a_resend_by_log_model_is_stored_once(served: Served) -> None:
    """MLflow 3's log_model resends the step's metrics with model_id through log_batch; MLflow keeps each
    (key, timestamp, step, value) once, and so does the run's history here (and runyard's Run view)."""
    c, run_id = served.client, new_run(served)
    c.log_metric(run_id, "acc", 0.75, step=0, timestamp=1_000)
    c.log_metric(run_id, "nan", math.nan, step=0, timestamp=1_000)
    model = c.create_logged_model(served.exp, source_run_id=run_id)
    resent = [
        Metric(m.key, m.value, m.timestamp, m.step, run_id=run_id, model_id=model.model_id)
        for key in ("acc", "nan")
        for m in c.get_metric_history(run_id, key)
    ]
    c.log_batch(run_id, metrics=resent)
    assert [(m.value, m.step) for m in c.get_metric_history(run_id, "acc")] == [(0.75, 0)]
    assert len(c.get_metric_history(run_id, "nan")) == 1
    assert served.ws.get_run(run_id).get_metrics()["acc"] == 0.75
    # the logged model still gets the resent metrics
    assert {m.key for m in c.get_logged_model(model.model_id).metrics or []} == {"acc", "nan"}
