"""Studio server times: the runs page with 10,000 runs and 3 metric columns, and the chart data of a
1,000,000-value metric; then the runs page again with 100,000 runs, and the live-update check.

Both are measured against a real `runyard server` process on 127.0.0.1 over HTTP, warm (after one
request), as the median of repeated requests; the server's own work dominates, since the page is
rendered and the series downsampled on the server. Targets: runs page under 300 ms, chart data
under 200 ms.
"""

from __future__ import annotations

import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from bench_server import free_port, wait_http

from runyard import Workspace
from runyard.store import MetricRow, RunRecord

RUNS = 10_000
MORE_RUNS = 100_000
CHART_POINTS = 1_000_000
REPEAT = 15


def add_runs(ws: Workspace, first: int, count: int) -> None:
    """`count` finished runs, each with loss/acc/lr logged at 3 steps."""
    store = ws.store
    exp = store.get_or_create_experiment("sweep")
    now = time.time()
    records = [
        RunRecord(
            run_id=uuid.uuid4().hex,
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Completed",
            run_type="azureml.scriptrun",
            created_time=now - RUNS + i,
            start_time=now - RUNS + i,
            end_time=now - RUNS + i + random.random() * 100,
            display_name=f"trial-{i}",
        )
        for i in range(first, first + count)
    ]
    for start in range(0, count, 1000):
        store.create_runs(records[start : start + 1000])
    rng = random.Random(first)
    rows = []
    for record in records:
        for step in range(3):
            for name in ("loss", "acc", "lr"):
                rows.append(MetricRow(record.run_id, name, "scalar", now, value=rng.random(), step=step))
        if len(rows) >= 20_000:
            store.append_metrics(rows)
            rows = []
    store.append_metrics(rows)


def add_long_series(ws: Workspace) -> str:
    """One run holding a 1,000,000-value series."""
    store = ws.store
    exp = store.get_or_create_experiment("sweep")
    now = time.time()
    rng = random.Random(0)
    big = store.create_run(
        RunRecord(
            run_id="big-series",
            experiment_id=exp.id,
            experiment_name=exp.name,
            status="Completed",
            run_type="azureml.scriptrun",
            created_time=now,
        )
    )
    for start in range(0, CHART_POINTS, 50_000):
        store.append_metrics(
            [
                MetricRow(big.run_id, "loss", "scalar", now, value=1 / (1 + i) + rng.random() * 0.01, step=i)
                for i in range(start, start + 50_000)
            ]
        )
    return big.run_id


def timed(client: httpx.Client, url: str) -> float:
    client.get(url).raise_for_status()  # warm: templates compiled, caches filled
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return statistics.median(times)


def main(tracking_uri: str | None = None) -> list[str]:
    """`tracking_uri`: an empty PostgreSQL database to measure instead of the embedded SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(Path(tmp) / "ws", tracking_uri=tracking_uri)
        started = time.perf_counter()
        add_runs(ws, 0, RUNS)
        big = add_long_series(ws)
        filled = time.perf_counter() - started
        port = free_port()
        log = (Path(tmp) / "server.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "runyard", "-w", str(ws.path), "server", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        cols = "col=last:loss&col=max:acc&col=min:lr"
        pages = {
            "newest first": f"/runs?{cols}",
            "sorted by max:acc": f"/runs?{cols}&sort=max:acc",
            "last page, sorted by last:loss ascending": f"/runs?{cols}&sort=last:loss&desc=0&page=LAST",
            "filtered by text 'trial-12'": f"/runs?{cols}&q=trial-12",
        }
        times: dict[int, dict[str, float]] = {}
        try:
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/health", proc)
            with httpx.Client(base_url=base, timeout=60) as client:
                for total in (RUNS, MORE_RUNS):
                    if total == MORE_RUNS:
                        add_runs(ws, RUNS + 1, MORE_RUNS - RUNS - 1)  # the big-series run is the 10,001st
                    last = -(-total // 50)
                    times[total] = {k: timed(client, v.replace("LAST", str(last))) for k, v in pages.items()}
                    times[total]["live-update check (change marker)"] = marker_time(ws)
                chart = timed(client, f"/studio/api/metrics?run={big}&name=loss&points=2000")
                points = len(client.get(f"/studio/api/metrics?run={big}&name=loss").json()["series"][0]["x"])
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
    ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
    lines = [
        f"## Studio (bench/bench_studio.py), {'PostgreSQL' if tracking_uri else 'SQLite'}",
        f"Workspace: {RUNS:,} runs × 3 metrics × 3 steps, plus one run with a {CHART_POINTS:,}-value series "
        f"(filled in {filled:.0f} s); then grown to {MORE_RUNS:,} runs. Median of {REPEAT} warm requests to a "
        "`runyard server` on 127.0.0.1 (the change marker: called in-process, as the server does once a second "
        "per open page).",
        "",
        f"| Request | {RUNS:,} runs | {MORE_RUNS:,} runs | Target |",
        "|---|---|---|---|",
    ]
    for name in times[RUNS]:
        label, target = (f"runs page (50 rows, 3 metric columns), {name}", "< 300 ms at 10,000")
        if name not in pages:
            label, target = name, "—"
        lines.append(f"| {label} | {ms(times[RUNS][name])} | {ms(times[MORE_RUNS][name])} | {target} |")
    lines.append(f"| chart data, {CHART_POINTS:,} values → {points:,} points | {ms(chart)} | | < 200 ms |")
    return lines


def marker_time(ws: Workspace) -> float:
    ws.store.change_marker()
    started = time.perf_counter()
    for _ in range(REPEAT):
        ws.store.change_marker()
    return (time.perf_counter() - started) / REPEAT


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--tracking-uri", help="an empty PostgreSQL database, e.g. postgresql://user@host:port/db"
    )
    print("\n".join(main(parser.parse_args().tracking_uri)))
