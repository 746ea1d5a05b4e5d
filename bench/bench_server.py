"""Metrics per second through a tracking server: runyard vs an MLflow tracking server (SQLite backend).

Both servers run on this machine, side by side in one run, each over a SQLite file. Two workloads,
each from 1 client and from 8 concurrent client processes:
- per call: a training loop that logs one value per call (runyard `run.log` — buffered and sent in
  batches — vs `mlflow.log_metric`, one HTTP request per value)
- bulk: 1,000 metrics per call (runyard's batch path `store.append_metrics` vs `MlflowClient.log_batch`)
Every client checks its own count at the end; an error in any client fails the benchmark.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMPARE_PY = HERE / ".venv-compare" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"server exited early (exit code {proc.returncode}); see its log in the temp folder"
            )
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


RUNYARD_CLIENT = textwrap.dedent("""
    import sys, time
    from runyard import Experiment, Workspace
    from runyard.store import MetricRow
    url, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ws = Workspace.get(url)
    run = Experiment(ws, "bench").start_logging()
    start = time.perf_counter()
    if mode == "call":
        for i in range(n):
            run.log("loss", 1.0 / (i + 1), step=i)
        run.flush()
    else:
        for b in range(n // 1000):
            rows = [MetricRow(run_id=run.id, name="loss", kind="scalar", timestamp=time.time(), value=float(i), step=b * 1000 + i)
                    for i in range(1000)]
            ws.store.append_metrics(rows)
    elapsed = time.perf_counter() - start
    assert ws.store.count_metric_rows(run.id) == n, "lost metrics"
    run.complete()
    print(elapsed)
""")

MLFLOW_CLIENT = textwrap.dedent("""
    import sys, time
    import mlflow
    from mlflow.entities import Metric
    url, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    mlflow.set_tracking_uri(url)
    client = mlflow.MlflowClient()
    run = mlflow.start_run()
    start = time.perf_counter()
    if mode == "call":
        for i in range(n):
            mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    else:
        now = int(time.time() * 1000)
        for b in range(n // 1000):
            client.log_batch(run.info.run_id, metrics=[Metric("loss", float(i), now, b * 1000 + i) for i in range(1000)])
    elapsed = time.perf_counter() - start
    assert len(client.get_metric_history(run.info.run_id, "loss")) == n, "lost metrics"
    mlflow.end_run()
    print(elapsed)
""")


def clients(python: str, script: str, url: str, mode: str, n: int, count: int) -> float:
    """Run `count` client processes at once; metrics per second over the slowest client's time."""
    procs = [
        subprocess.Popen(
            [python, "-c", script, url, mode, str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    times = []
    for proc in procs:
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"a client failed: {err[-2000:]}")
        times.append(float(out.strip().splitlines()[-1]))
    return n * count / max(times)


def per_client(total: int, count: int, mode: str) -> int:
    """Split a workload over clients; bulk clients send whole batches of 1,000."""
    share = total // count
    return max(1000, share // 1000 * 1000) if mode == "bulk" else share


def main() -> list[str]:
    import platform

    if not COMPARE_PY.exists() or subprocess.run([str(COMPARE_PY), "-c", "import mlflow.server"]).returncode:
        return ["### Tracking server: skipped (bench/.venv-compare lacks mlflow; run `make bench`)"]
    sizes = {"call": (20_000, 2_000), "bulk": (100_000, 20_000)}  # (runyard n, mlflow n) per client
    results: dict[tuple[str, str, int], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run(
            [sys.executable, "-m", "runyard", "init", str(root / "ry" / ".runyard")],
            check=True,
            capture_output=True,
        )
        ry_port, mf_port = free_port(), free_port()
        ry = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "runyard",
                "-w",
                str(root / "ry" / ".runyard"),
                "server",
                "--port",
                str(ry_port),
            ],
            stdout=open(root / "runyard-server.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        mf = subprocess.Popen(
            [
                str(COMPARE_PY),
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(mf_port),
                "--backend-store-uri",
                f"sqlite:///{root}/mlflow.db",
                "--default-artifact-root",
                str(root / "mlruns"),
                "--workers",
                "1",
            ],
            stdout=open(root / "mlflow-server.log", "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
            env={**os.environ, "MLFLOW_HOME": tmp},
        )
        try:
            ry_url, mf_url = f"http://127.0.0.1:{ry_port}", f"http://127.0.0.1:{mf_port}"
            wait_http(f"{ry_url}/health", ry)
            wait_http(f"{mf_url}/health", mf)
            env_ry = {"RUNYARD_CACHE_DIR": str(root / "cache")}
            os.environ.update(env_ry)
            for mode, (n_ry, n_mf) in sizes.items():
                for count in (1, 8):
                    print(f"... {mode} x{count}", file=sys.stderr, flush=True)
                    results[("runyard", mode, count)] = clients(
                        sys.executable,
                        RUNYARD_CLIENT,
                        ry_url,
                        mode,
                        per_client(n_ry, count, mode),
                        count,
                    )
                    results[("mlflow", mode, count)] = clients(
                        str(COMPARE_PY),
                        MLFLOW_CLIENT,
                        mf_url,
                        mode,
                        per_client(n_mf, count, mode),
                        count,
                    )
        finally:
            for proc in (ry, mf):
                proc.terminate()
                proc.wait(timeout=30)
    lines = [
        f"### Tracking server throughput — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; both servers on SQLite, on this machine",
        "",
        "| workload | clients | runyard metrics/s | MLflow metrics/s | runyard / MLflow |",
        "|---|---|---|---|---|",
    ]
    for mode, label in (("call", "one value per call"), ("bulk", "1,000 per call")):
        for count in (1, 8):
            a, b = results[("runyard", mode, count)], results[("mlflow", mode, count)]
            lines.append(f"| {label} | {count} | {a:,.0f} | {b:,.0f} | {a / b:.1f}x |")
    for mode in ("call", "bulk"):
        one, eight = results[("runyard", mode, 1)], results[("runyard", mode, 8)]
        lines.append("")
        lines.append(f"runyard {mode}: 8 clients together reach {eight / one:.2f}x the 1-client rate.")
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
