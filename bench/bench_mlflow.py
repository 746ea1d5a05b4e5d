"""MLflow's tracking API: `runyard server` against `mlflow server` (issue 16), side by side in one run.

Both servers run on 127.0.0.1 over a SQLite file, both proxy artifacts (MLflow: `--artifacts-destination`
on a local folder; runyard: its artifact store), and both are driven by the same `mlflow` client (this
venv's), so the only difference is the server.

1. `MlflowClient.search_runs` with a metric filter and a metric order_by, over 10k then 100k runs of one
   experiment. Each run has 3 params, 4 tags and 3 metrics logged at steps 0 and 1 (the same generated runs
   on both sides). Populated without REST so that 100k runs take minutes: runyard through its store
   (`SqlStore.create_runs`, `append_metrics` in big batches; tags and params as one bulk insert into their
   tables), MLflow through its own `SqlAlchemyStore` engine and tables (a script run by bench/.venv-compare's
   python, since this venv has only mlflow-skinny). Searches alternate between the servers after a warm-up;
   every answer is checked against the expected runs computed here. Target: runyard < 100 ms at 100k runs.
2. Artifacts through the client: `log_artifact` of one large file and `mlflow.artifacts.download_artifacts`
   back (sha256 checked), MiB/s, and each server's peak RSS above idle (psutil, whole process tree) while it
   moves the file. Target: at least MLflow's throughput.

    python bench/bench_mlflow.py [--quick] [--sizes 10000,100000] [--searches 30]
        [--budget 60] [--give-up 120] [--mib 512] [--repeats 3]

Not part of `make test` (it needs bench/.venv-compare, from `make bench`).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psutil
from bench_server import COMPARE_PY, free_port, wait_http

MIB = 1024 * 1024
EXPERIMENT = "bench-search"
METRICS = ("acc", "loss", "f1")
QUERIES = (  # (label, filter, order_by)
    ("metric filter, metric order", "metrics.acc > 0.5", ["metrics.acc DESC"]),
    (
        "param + tag + metric filter, metric order",
        "params.optimizer = 'adam' AND tags.team = 'b' AND metrics.acc > 0.5",
        ["metrics.loss ASC"],
    ),
)
PAGE = 100

# Run by bench/.venv-compare's python: writes runs into MLflow's own tables through its SqlAlchemyStore.
MLFLOW_POPULATE = textwrap.dedent("""
    import json, sys
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlParam, SqlRun, SqlTag
    db, name, source = sys.argv[1], sys.argv[2], sys.argv[3]
    store = SqlAlchemyStore(db, "mlflow-artifacts:/")
    exp = store.get_experiment_by_name(name)
    exp_id = exp.experiment_id if exp else store.create_experiment(name)
    runs = [json.loads(line) for line in open(source)] if source != "-" else []
    rows = {SqlRun: [], SqlTag: [], SqlParam: [], SqlMetric: [], SqlLatestMetric: []}
    for r in runs:
        rows[SqlRun].append(dict(run_uuid=r["id"], name=r["name"], source_type="LOCAL", source_name="",
            entry_point_name="", user_id="bench", status="FINISHED", start_time=r["start"],
            end_time=r["start"] + 60000, source_version="", lifecycle_stage="active",
            artifact_uri=f"mlflow-artifacts:/{exp_id}/{r['id']}/artifacts", experiment_id=int(exp_id)))
        rows[SqlTag] += [dict(key=k, value=v, run_uuid=r["id"]) for k, v in r["tags"].items()]
        rows[SqlParam] += [dict(key=k, value=v, run_uuid=r["id"]) for k, v in r["params"].items()]
        latest = {}
        for key, value, ts, step in r["metrics"]:
            row = dict(key=key, value=value, timestamp=ts, step=step, is_nan=False, run_uuid=r["id"])
            rows[SqlMetric].append(row)
            if key not in latest or step >= latest[key]["step"]:
                latest[key] = row
        rows[SqlLatestMetric] += list(latest.values())
    with store.engine.begin() as conn:
        for model, values in rows.items():
            if values:
                conn.execute(model.__table__.insert(), values)
    print(exp_id)
""")


def generate(start: int, count: int, seed: int = 16) -> list[dict[str, Any]]:
    """Runs `start` .. `start + count - 1`, the same on every call (one Random per run index)."""
    out = []
    base_ms = 1_780_000_000_000
    for i in range(start, start + count):
        rnd = random.Random(seed * 1_000_003 + i)
        name = f"run-{i}"
        metrics = []
        for step in (0, 1):
            ts = base_ms + i * 1000 + step * 500
            metrics += [[key, rnd.random(), ts, step] for key in METRICS]
        out.append(
            {
                "id": f"{rnd.getrandbits(128):032x}",
                "name": name,
                "start": base_ms + i * 1000,
                "params": {
                    "lr": rnd.choice(["0.1", "0.01", "0.001"]),
                    "batch_size": rnd.choice(["32", "64", "128"]),
                    "optimizer": rnd.choice(["adam", "sgd"]),
                },
                "tags": {
                    "mlflow.runName": name,
                    "mlflow.user": "bench",
                    "mlflow.source.name": "train.py",
                    "team": rnd.choice(["a", "b", "c"]),
                },
                "metrics": metrics,
            }
        )
    return out


def expected_ids(runs: list[dict[str, Any]], query: int) -> list[str]:
    """The first page the query must return (MLflow's order; ties cannot happen with random floats)."""

    def latest(run: dict[str, Any], key: str) -> float:
        return float(next(m[1] for m in run["metrics"] if m[0] == key and m[3] == 1))

    if query == 0:
        hits = [r for r in runs if latest(r, "acc") > 0.5]
        hits.sort(key=lambda r: -latest(r, "acc"))
    else:
        hits = [
            r
            for r in runs
            if r["params"]["optimizer"] == "adam" and r["tags"]["team"] == "b" and latest(r, "acc") > 0.5
        ]
        hits.sort(key=lambda r: latest(r, "loss"))
    return [r["id"] for r in hits[:PAGE]]


def populate_runyard(store: Any, runs: list[dict[str, Any]]) -> None:
    from runyard.store import MetricRow, RunRecord
    from runyard.store import schema as t

    exp = store.get_or_create_experiment(EXPERIMENT)
    for at in range(0, len(runs), 5000):
        chunk = runs[at : at + 5000]
        store.create_runs(
            [
                RunRecord(
                    run_id=r["id"],
                    experiment_id=exp.id,
                    experiment_name=exp.name,
                    status="Completed",
                    run_type="mlflow.run",
                    created_time=r["start"] / 1000,
                    start_time=r["start"] / 1000,
                    end_time=r["start"] / 1000 + 60,
                    display_name=r["name"],
                    data={"mlflowUser": "bench"},
                )
                for r in chunk
            ]
        )
        # Tags and params (run properties): one bulk insert each. The store's own set_tags and
        # add_properties take one run per transaction, which would make 100k runs take many minutes.
        with store._write() as conn:
            conn.execute(
                t.run_tags.insert(),
                [{"run_id": r["id"], "key": k, "value": v} for r in chunk for k, v in r["tags"].items()],
            )
            conn.execute(
                t.run_properties.insert(),
                [{"run_id": r["id"], "key": k, "value": v} for r in chunk for k, v in r["params"].items()],
            )
        store.append_metrics(
            [
                MetricRow(run_id=r["id"], name=k, kind="scalar", timestamp=ts / 1000, value=val, step=step)
                for r in chunk
                for k, val, ts, step in r["metrics"]
            ]
        )


def populate_mlflow(db: str, runs: list[dict[str, Any]], root: Path) -> str:
    source = root / "runs.jsonl"
    if runs:
        source.write_text("".join(json.dumps(r) + "\n" for r in runs))
    done = subprocess.run(
        [str(COMPARE_PY), "-c", MLFLOW_POPULATE, db, EXPERIMENT, str(source) if runs else "-"],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise RuntimeError(f"populating MLflow's database failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def say(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def p95(times: list[float]) -> float:
    return sorted(times)[max(0, round(0.95 * len(times)) - 1)]


class Servers:
    """Both servers, each restartable: a search the client gave up on keeps a server busy until it ends."""

    def __init__(self, root: Path, ws_path: Path) -> None:
        self.root, self.ws_path = root, ws_path
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}

    def start(self, side: str) -> None:
        port = free_port()
        argv = {
            "runyard": [sys.executable, "-m", "runyard", "-w", str(self.ws_path), "server", "--port", str(port)],
            "mlflow": [
                str(COMPARE_PY), "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                "--backend-store-uri", f"sqlite:///{self.root}/mlflow.db",
                "--artifacts-destination", str(self.root / "mlflow-art"),
            ],
        }[side]  # fmt: skip
        log = (self.root / f"{side}-server.log").open("ab")
        self.procs[side] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_HOME": str(self.root)}
        )
        self.urls[side] = f"http://127.0.0.1:{port}"
        say(f"... waiting for the {side} server")
        try:
            wait_http(f"{self.urls[side]}/health", self.procs[side], timeout=300)
        except RuntimeError as exc:
            tail = (self.root / f"{side}-server.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {side} server did not start: {exc}\n{tail}") from exc
        # A server answers /health before all its workers have imported: wait until it stops using the CPU.
        tree = psutil.Process(self.procs[side].pid)
        deadline = time.time() + 120
        while time.time() < deadline:
            busy = 0.0
            for proc in (tree, *tree.children(recursive=True)):
                with contextlib.suppress(psutil.NoSuchProcess):
                    busy += proc.cpu_percent(interval=0.5)
            if busy < 10:
                break

    def stop(self, side: str) -> None:
        proc = self.procs.pop(side)
        for child in psutil.Process(proc.pid).children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        proc.kill()
        proc.wait(timeout=30)

    def close(self) -> None:
        for side in list(self.procs):
            with contextlib.suppress(psutil.NoSuchProcess):
                self.stop(side)


def search_times(
    servers: Servers,
    exp_ids: dict[str, str],
    size: int,
    query: int,
    n: int,
    budget: float,
    give_up: int,
    skip: dict[str, int],
) -> dict[str, Any]:
    """Up to n timed searches per server, alternated, after 1 untimed; a server stops early once its
    searches took `budget` seconds (3 at least). A search without an answer in `give_up` seconds ends that
    server's searches for this query and at larger sizes (`skip`): it is stopped, and started again at
    the end. Returns the times, the ids of
    each server's last answer and why a server has no numbers."""
    from mlflow import MlflowClient

    _, filter_string, order_by = QUERIES[query]
    times: dict[str, list[float]] = {side: [] for side in servers.urls}
    ids: dict[str, list[str]] = {}
    failed = {side: f"not run: no answer at {at:,} runs" for side, at in skip.items() if at < size}
    os.environ.update(MLFLOW_HTTP_REQUEST_TIMEOUT=str(give_up), MLFLOW_HTTP_REQUEST_MAX_RETRIES="0")
    try:
        for i in range(n + 1):
            for side, url in servers.urls.items():
                if side in failed or (sum(times[side]) > budget and len(times[side]) >= 3):
                    continue
                start = time.perf_counter()
                try:
                    runs = MlflowClient(url).search_runs(
                        [exp_ids[side]], filter_string=filter_string, order_by=order_by, max_results=PAGE
                    )
                except Exception as exc:
                    took = time.perf_counter() - start
                    slow = took >= give_up - 1
                    failed[side] = (
                        f"no answer within {give_up} s" if slow else f"{type(exc).__name__}: {exc}"[:300]
                    )
                    if slow:  # stopped at once, started again after the other server's searches
                        skip.setdefault(side, size)
                        say(f"... {side} gave no answer within {give_up} s: stopping it")
                        servers.stop(side)
                    continue
                if i >= 1:
                    times[side].append(time.perf_counter() - start)
                ids[side] = [r.info.run_id for r in runs]
    finally:
        for name in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
            os.environ.pop(name, None)
        for side in set(servers.urls) - set(servers.procs):
            servers.start(side)
    return {"times": times, "ids": ids, "failed": failed}


def search_row(size: int, query: int, got: dict[str, Any], want: list[str]) -> str:
    """One table row: medians, p95s (and how many searches), the ratio, whether each answer was the
    expected page, the target."""
    _, filter_string, order_by = QUERIES[query]
    ms = {side: [t * 1000 for t in times] for side, times in got["times"].items() if times}
    cell = {
        side: (f"{statistics.median(ms[side]):,.1f}", f"{p95(ms[side]):,.1f} (n={len(ms[side])})")
        if side in ms
        else (got["failed"].get(side, "failed"), "")
        for side in got["times"]
    }
    right = {
        side: "-" if side not in got["ids"] else "yes" if got["ids"][side] == want else "**NO**"
        for side in got["times"]
    }
    ratio = (
        f"{statistics.median(ms['mlflow']) / statistics.median(ms['runyard']):,.0f}x" if len(ms) == 2 else ""
    )
    target = ""
    if size >= 100_000 and query == 0:
        if "runyard" in ms:
            median = statistics.median(ms["runyard"])
            target = f"< 100 ms: **{'MET' if median < 100 else 'NOT MET'}** ({median:.0f} ms)"
        else:
            target = "< 100 ms: **NOT MET** (failed)"
    return (
        f"| {size:,} | `{filter_string}`, order_by `{order_by[0]}` | **{cell['runyard'][0]}** | {cell['runyard'][1]} "
        f"| {cell['mlflow'][0]} | {cell['mlflow'][1]} | {ratio} | {right['runyard']} / {right['mlflow']} | {target} |"
    )


class TreeSampler(threading.Thread):
    """Peak resident set size of a process and all its children (MLflow serves from worker processes)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.idle = self.peak = self.rss()
        self.done = threading.Event()

    def rss(self) -> int:
        total = 0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.NoSuchProcess:  # a child ended while being listed: look again next time
            return self.peak if hasattr(self, "peak") else 0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += proc.memory_info().rss
        return total

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def stop(self) -> float:
        self.done.set()
        self.join()
        return (self.peak - self.idle) / MIB


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def artifact_rates(
    servers: Servers, dirs: dict[str, Path], mib: int, repeats: int, root: Path
) -> tuple[dict[tuple[str, str], list[float]], dict[str, str]]:
    """MiB/s up and down per server (alternated, `repeats` times), peak server RSS above idle; and why a
    server failed, if one did."""

    source = root / "big.bin"
    with source.open("wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(MIB))
    expected = sha256(source)
    out: dict[tuple[str, str], list[float]] = {}
    failed: dict[str, str] = {}
    for _ in range(repeats):
        for side, url in servers.urls.items():
            if side in failed:
                continue
            try:
                for key, value in transfer(
                    url, servers.procs[side].pid, source, expected, root / f"back-{side}"
                ).items():
                    out.setdefault((side, key), []).append(value)
            except Exception as exc:  # report the other server's numbers all the same
                failed[side] = f"{type(exc).__name__}: {str(exc)[:300]}"
            for stored in dirs[side].rglob("big.bin"):  # keep the disk from filling over the repeats
                stored.unlink()
    return out, failed


def transfer(url: str, pid: int, source: Path, expected: str, back: Path) -> dict[str, float]:
    """One upload and one download of `source` through the client: MiB/s and peak server RSS each way."""
    import mlflow
    from mlflow import MlflowClient

    mib = source.stat().st_size / MIB
    client = MlflowClient(url)
    exp = client.get_experiment_by_name("bench-artifacts")
    run_id = client.create_run(
        exp.experiment_id if exp else client.create_experiment("bench-artifacts")
    ).info.run_id
    sampler = TreeSampler(pid)
    sampler.start()
    start = time.perf_counter()
    client.log_artifact(run_id, str(source))
    out = {"up": mib / (time.perf_counter() - start), "up-rss": sampler.stop()}
    sampler = TreeSampler(pid)
    sampler.start()
    start = time.perf_counter()
    got = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=source.name, dst_path=str(back), tracking_uri=url
    )
    out.update({"down": mib / (time.perf_counter() - start), "down-rss": sampler.stop()})
    if sha256(Path(got)) != expected:
        raise RuntimeError("the downloaded artifact differs from the uploaded file")
    with contextlib.redirect_stdout(sys.stderr):  # the client prints links to the run on stdout
        client.set_terminated(run_id)
    shutil.rmtree(back)
    return out


def measure(
    sizes: list[int], searches: int, budget: float, give_up: int, mib: int, repeats: int
) -> list[str]:
    warnings.filterwarnings("ignore", message=".*register store for scheme.*")
    from runyard import Workspace

    rows: list[str] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="runyard-bench-mlflow-") as tmp:
        root = Path(tmp)
        os.environ["RUNYARD_CACHE_DIR"] = str(root / "cache")
        ws = Workspace.create(root / "ws")
        exp_ids = {"runyard": ws.store.get_or_create_experiment(EXPERIMENT).id}
        db = f"sqlite:///{root}/mlflow.db"
        exp_ids["mlflow"] = populate_mlflow(db, [], root)  # MLflow's schema, before its server opens the file
        servers = Servers(root, ws.path)
        try:
            for side in ("runyard", "mlflow"):  # inside the try: a server that failed to start is stopped too
                servers.start(side)
            say("... artifacts")  # first: a search the client gave up on would still load the machine
            dirs = {"runyard": ws.path, "mlflow": root / "mlflow-art"}
            rates, failed = artifact_rates(servers, dirs, mib, repeats, root)
            everything: list[dict[str, Any]] = []
            skip: dict[str, int] = {}  # server -> the size where a search got no answer
            for size in sizes:
                runs = generate(len(everything), size - len(everything))
                everything += runs
                say(f"... populating {size:,} runs")
                start = time.perf_counter()
                populate_runyard(ws.store, runs)
                took_ry = time.perf_counter() - start
                start = time.perf_counter()
                populate_mlflow(db, runs, root)
                took_mf = time.perf_counter() - start
                notes.append(f"populating to {size:,} runs: runyard {took_ry:.0f} s, MLflow {took_mf:.0f} s")
                for q, (label, _, _) in enumerate(QUERIES):
                    say(f"... searching {size:,} runs: {label}")
                    got = search_times(servers, exp_ids, size, q, searches, budget, give_up, skip)
                    rows.append(search_row(size, q, got, expected_ids(everything, q)))
                    notes += [f"{side} at {size:,} runs: {why}" for side, why in got["failed"].items()]
        finally:
            servers.close()
    return report(sizes, searches, budget, give_up, mib, repeats, rows, notes, rates, failed)


def report(
    sizes: list[int],
    searches: int,
    budget: float,
    give_up: int,
    mib: int,
    repeats: int,
    rows: list[str],
    notes: list[str],
    rates: dict[tuple[str, str], list[float]],
    failed: dict[str, str],
) -> list[str]:
    import mlflow

    compare = subprocess.run(
        [str(COMPARE_PY), "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"### MLflow API: runyard server vs `mlflow server` (issue 16) — {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"MLflow server {compare}, client {mlflow.__version__}",
        "",
        f"`.venv/bin/python bench/bench_mlflow.py --sizes {','.join(map(str, sizes))} --searches {searches} "
        f"--budget {budget:g} --give-up {give_up} --mib {mib} --repeats {repeats}`; load average "
        f"{os.getloadavg()[0]:.1f} at the end.",
        "",
        f"**search_runs**, one experiment, max_results {PAGE}: median and p95 in ms as the client sees them "
        f"(request + protobuf parsing), up to {searches} searches per server alternated after 1 untimed, fewer "
        f"once a server's searches took {budget:g} s; a search without an answer in {give_up} s ends that "
        "server's searches (and the server is restarted).",
        "",
        "| runs | query | runyard median ms | runyard p95 | MLflow median ms | MLflow p95 | MLflow / runyard "
        "| right 100 runs (runyard / MLflow) | target |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        *[f"- {n}" for n in notes],
        "",
        f"**Artifacts**, one {mib:,} MiB file: `MlflowClient.log_artifact` up, "
        f"`mlflow.artifacts.download_artifacts` down (sha256 checked), median of {repeats}, alternated; "
        "server RSS is the whole process tree's peak above idle.",
        "",
        "| direction | runyard MiB/s | MLflow MiB/s | runyard / MLflow | target: >= MLflow "
        "| server peak RSS above idle, MiB (runyard / MLflow) |",
        "|---|---|---|---|---|---|",
    ]
    sides = ("runyard", "mlflow")
    for way, label in (("up", "upload (log_artifact)"), ("down", "download (download_artifacts)")):
        rate = {side: statistics.median(rates[(side, way)]) for side in sides if (side, way) in rates}
        rss = {side: f"{max(rates[(side, way + '-rss')]):,.0f}" if side in rate else "-" for side in sides}
        cells = {side: f"{rate[side]:,.0f}" if side in rate else "failed" for side in sides}
        if len(rate) == 2:
            ry, mf = rate["runyard"], rate["mlflow"]
            ratio = f"{ry / mf:.2f}x"
            verdict = f"**{'MET' if ry >= mf else 'NOT MET'}** ({ry:,.0f} vs {mf:,.0f})"
        else:
            ratio, verdict = "", "**NOT MET** (failed)"
        lines.append(
            f"| {label} | **{cells['runyard']}** | {cells['mlflow']} | {ratio} | {verdict} "
            f"| {rss['runyard']} / {rss['mlflow']} |"
        )
    return lines + [f"- {side} failed: {why}" for side, why in failed.items()]


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: small sizes, few searches")
    parser.add_argument("--sizes", default="10000,100000", help="run counts searched, ascending")
    parser.add_argument("--searches", type=int, default=30)
    parser.add_argument("--budget", type=float, default=60, help="seconds of searches per server and query")
    parser.add_argument("--give-up", type=int, default=120, help="seconds one search may take")
    parser.add_argument("--mib", type=int, default=512, help="size of the artifact file")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not COMPARE_PY.exists() or subprocess.run([str(COMPARE_PY), "-c", "import mlflow.server"]).returncode:
        return ["### MLflow API: skipped (bench/.venv-compare lacks mlflow; run `make bench`)"]
    if args.quick:
        return measure([300, 1000], 3, 10, 60, 16, 1)
    return measure(
        [int(s) for s in args.sizes.split(",")],
        args.searches,
        args.budget,
        args.give_up,
        args.mib,
        args.repeats,
    )


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
