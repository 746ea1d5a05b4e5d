"""Datasets: how fast does a TabularDataset become a pandas DataFrame, next to plain pandas?

`bench_reads` writes 1M rows once as CSV and as Parquet, then times runyard's to_pandas_dataframe()
path (tabular_read.read_table(...) then table_to_pandas) against pandas.read_csv / pandas.read_parquet
on the same file, alternating the two in one process; each figure is the median of several repeats.
Issue 12's target: runyard within 1.2x of pandas.
"""

from __future__ import annotations

import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from runyard.data.tabular_read import read_table, table_to_pandas

REPEATS = 15
CSV_FORMAT = {"type": "delimited", "separator": ",", "header": True, "infer_column_types": True}


def _sample_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(0)
    categories = np.array(["alpha", "beta", "gamma", "delta", "epsilon"])
    return pa.table(
        {
            "id": np.arange(rows, dtype=np.int64),
            "x": rng.random(rows),
            "y": rng.normal(size=rows),
            "label": categories[rng.integers(0, len(categories), rows)],
            "count": rng.integers(0, 1000, rows),
        }
    )


def _median_seconds(pairs: dict[str, Callable[[], Any]]) -> dict[str, float]:
    """Each callable REPEATS times, interleaved so both see the same machine state; medians."""
    times: dict[str, list[float]] = {name: [] for name in pairs}
    cpu: dict[str, list[float]] = {name: [] for name in pairs}
    for func in pairs.values():  # warm-up: page cache, imports, thread pools
        func()
    for _ in range(REPEATS):
        for name, func in pairs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            frame = func()
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            del frame
    medians = {name: statistics.median(values) for name, values in times.items()}
    medians.update({f"{name}_cpu": statistics.median(values) for name, values in cpu.items()})
    return medians


def bench_reads(rows: int = 1_000_000) -> dict[str, dict[str, float]]:
    """Median seconds for runyard vs pandas on `rows` rows of CSV and of Parquet, printed with ratios."""
    table = _sample_table(rows)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "data.csv"
        parquet_path = Path(tmp) / "data.parquet"
        table.to_pandas().to_csv(csv_path, index=False)
        pq.write_table(table, parquet_path)
        csv_files = [(csv_path, "bench/data.csv")]
        parquet_files = [(parquet_path, "bench/data.parquet")]
        results["csv"] = _median_seconds(
            {
                "runyard": lambda: table_to_pandas(read_table(csv_files, CSV_FORMAT, False, None, None)),
                "pandas": lambda: pd.read_csv(csv_path),
            }
        )
        results["parquet"] = _median_seconds(
            {
                "runyard": lambda: table_to_pandas(
                    read_table(parquet_files, {"type": "parquet"}, False, None, None)
                ),
                "pandas": lambda: pd.read_parquet(parquet_path),
            }
        )
        size_mb = {"csv": csv_path.stat().st_size / 2**20, "parquet": parquet_path.stat().st_size / 2**20}
    print(f"\n### Datasets: reading {rows:,} rows, {platform.machine()}, Python {platform.python_version()}")
    print(
        "| format | file size | runyard to_pandas_dataframe() | pandas | runyard / pandas | target <= 1.2x "
        "| CPU time runyard / pandas |"
    )
    print("|---|---|---|---|---|---|---|")
    for kind, timing in results.items():
        ratio = timing["runyard"] / timing["pandas"]
        verdict = "MET" if ratio <= 1.2 else "NOT MET"
        print(
            f"| {kind} | {size_mb[kind]:.0f} MiB | {timing['runyard'] * 1000:.0f} ms | "
            f"{timing['pandas'] * 1000:.0f} ms | {ratio:.2f}x | {verdict} | "
            f"{timing['runyard_cpu'] * 1000:.0f} ms / {timing['pandas_cpu'] * 1000:.0f} ms |"
        )
        timing["ratio"] = ratio
    return results


def bench_hashing(files: int = 10_000) -> dict[str, float]:
    """Content hash of a `files`-file datastore folder (hash_datastore_path, what reuse calls for a
    DataReference input): cold (empty stat cache: every file read) and warm (nothing changed: one listing,
    stat per file, one bulk cache lookup, no reads; median of REPEATS), plus warm with one file changed.
    Issue 12's target: warm rehash under 200 ms."""
    from runyard import Workspace
    from runyard.data import Datastore
    from runyard.data.hashing import hash_datastore_path

    rng = np.random.default_rng(0)
    timing: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(Path(tmp) / "ws" / ".runyard")
        root = Path(Datastore.get(ws, "workspaceblobstore").local_path("raw"))
        for i in range(files):
            target = root / f"part-{i // 1000:02d}" / f"file-{i:05d}.bin"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(rng.bytes(int(rng.integers(1024, 8192))))
        total_mb = sum(p.stat().st_size for p in root.rglob("*.bin")) / 2**20
        start = time.perf_counter()
        cold_hash, listed = hash_datastore_path(ws, "workspaceblobstore", "raw")
        timing["cold"] = time.perf_counter() - start
        assert len(listed) == files
        warm: list[float] = []
        warm_cpu: list[float] = []
        for _ in range(REPEATS):
            start, start_cpu = time.perf_counter(), time.process_time()
            warm_hash, _ = hash_datastore_path(ws, "workspaceblobstore", "raw")
            warm.append(time.perf_counter() - start)
            warm_cpu.append(time.process_time() - start_cpu)
            assert warm_hash == cold_hash
        timing["warm"] = statistics.median(warm)
        timing["warm_cpu"] = statistics.median(warm_cpu)
        (root / "part-03" / "file-03333.bin").write_bytes(b"changed")
        start = time.perf_counter()
        changed_hash, _ = hash_datastore_path(ws, "workspaceblobstore", "raw")
        timing["one_changed"] = time.perf_counter() - start
        assert changed_hash != cold_hash
    verdict = "MET" if timing["warm"] < 0.2 else "NOT MET"
    print(
        f"\n### Datasets: hashing a {files:,}-file folder ({total_mb:.0f} MiB), {platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    print("| case | time | target: warm < 200 ms |")
    print("|---|---|---|")
    print(f"| cold (empty stat cache, every file read) | {timing['cold'] * 1000:.0f} ms | |")
    print(
        f"| warm (unchanged, median of {REPEATS}) | {timing['warm'] * 1000:.0f} ms "
        f"(CPU {timing['warm_cpu'] * 1000:.0f} ms) | {verdict} |"
    )
    print(f"| warm, one file changed | {timing['one_changed'] * 1000:.0f} ms | |")
    return timing


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    bench_reads(rows)
    bench_hashing()


if __name__ == "__main__":
    main()
