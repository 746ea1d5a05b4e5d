"""How much does run.log() cost a training loop, and how fast do metrics reach the database?

Measured side by side in one process: a loop that only computes, the same loop calling run.log()
(interactive run, no spool), and the same loop with the crash-safe spool that submitted runs use.
Then the time until every logged row is in SQLite (flush), as metrics per second.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

N = 100_000


def _loop(log) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = 0.0
    for i in range(N):
        value = value * 0.999 + i * 1e-6
        log("loss", value)
    return time.perf_counter() - start


def measure(spool: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        if spool:
            os.environ["RUNYARD_SPOOL_DIR"] = str(Path(tmp) / "spool")
        else:
            os.environ.pop("RUNYARD_SPOOL_DIR", None)
        import runyard.core.metrics as metrics
        from runyard import Experiment, Workspace

        metrics._writers.clear()
        ws = Workspace.create(Path(tmp) / ".runyard")
        run = Experiment(ws, "bench").start_logging()
        baseline = _loop(lambda name, value: None)
        logged = _loop(run.log)
        start = time.perf_counter()
        run.flush()
        drain = time.perf_counter() - start
        assert ws.store.count_metric_rows(run.id) == N
        run.complete()
        metrics._writers.clear()
    return {
        "baseline_us": baseline / N * 1e6,
        "log_us": logged / N * 1e6,
        "overhead_us": (logged - baseline) / N * 1e6,
        "drain_s": drain,
        "end_to_end_metrics_per_s": N / (logged + drain),
    }


def main() -> list[str]:
    rows = []
    for spool in (False, True):
        r = measure(spool)
        rows.append(
            f"| run.log, {'submitted run (spool on)' if spool else 'interactive run'} | {r['log_us']:.2f} µs "
            f"| {r['overhead_us']:.2f} µs | {r['drain_s']:.2f} s | {r['end_to_end_metrics_per_s']:,.0f} |"
        )
    header = [
        f"### run.log in a training loop ({N:,} calls) — {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        "| case | per call | overhead vs. bare loop | flush after loop | metrics/s into SQLite, end to end |",
        "|---|---|---|---|---|",
    ]
    return header + rows


if __name__ == "__main__":
    print("\n".join(main()))
