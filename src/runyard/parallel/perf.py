"""Resource usage of a ParallelRunStep node, sampled to logs/perf/<node>/ as v1 does.

Two CSV files: node_resource_usage.csv (the machine: CPU, memory, disk) and
processes_resource_usage.csv (each worker process: CPU, resident memory). When a job is slow, these
answer "was the machine busy, was a worker leaking memory" without re-running it. A daemon thread samples
every `interval` seconds; stop() takes one last sample so even a short job leaves a row.
"""

from __future__ import annotations

import contextlib
import csv
import shutil
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import psutil

__all__ = ["NODE_COLUMNS", "PROCESS_COLUMNS", "PerfSampler"]

NODE_COLUMNS = ("Time", "CPU %", "Memory used (MB)", "Memory total (MB)", "Disk used (MB)", "Disk total (MB)")
PROCESS_COLUMNS = ("Time", "PID", "CPU %", "RSS (MB)")
_MB = 1024 * 1024


class PerfSampler:
    """Samples the node and the processes `pids()` names into `folder` (created)."""

    def __init__(self, folder: Path, pids: Callable[[], list[int]], interval: float = 5.0) -> None:
        self.folder = Path(folder)
        self.pids = pids
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._procs: dict[int, psutil.Process] = {}
        self.node_csv = self.folder / "node_resource_usage.csv"
        self.processes_csv = self.folder / "processes_resource_usage.csv"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path, columns in ((self.node_csv, NODE_COLUMNS), (self.processes_csv, PROCESS_COLUMNS)):
            if not path.exists() or path.stat().st_size == 0:
                with open(path, "a", newline="", encoding="utf-8") as handle:
                    csv.writer(handle, lineterminator="\n").writerow(columns)
        psutil.cpu_percent(None)  # the first call only sets the baseline
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="runyard-perf", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and write one last sample."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(1.0, self.interval))
            self._thread = None
        self.sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a hiccup (a full disk) must not stop the job
                self.sample()

    def sample(self) -> None:
        """Append one row to the node file and one per live process to the processes file."""
        with self._lock:
            now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            memory = psutil.virtual_memory()
            disk = shutil.disk_usage(self.folder)
            node = [
                now,
                f"{psutil.cpu_percent(None):.1f}",
                f"{(memory.total - memory.available) / _MB:.1f}",
                f"{memory.total / _MB:.1f}",
                f"{disk.used / _MB:.1f}",
                f"{disk.total / _MB:.1f}",
            ]
            rows = []
            try:
                wanted = list(self.pids())
            except Exception:  # the driver's worker table may be changing
                wanted = []
            for pid in wanted:
                proc = self._procs.get(pid)
                try:
                    if proc is None:
                        proc = psutil.Process(pid)
                        proc.cpu_percent(None)  # baseline: the first reading of a new process is 0
                        self._procs[pid] = proc
                    with proc.oneshot():
                        rows.append(
                            [now, pid, f"{proc.cpu_percent(None):.1f}", f"{proc.memory_info().rss / _MB:.1f}"]
                        )
                except psutil.Error:
                    self._procs.pop(pid, None)
            for gone in set(self._procs) - set(wanted):
                del self._procs[gone]
            with open(self.node_csv, "a", newline="", encoding="utf-8") as handle:
                csv.writer(handle, lineterminator="\n").writerow(node)
            if rows:
                with open(self.processes_csv, "a", newline="", encoding="utf-8") as handle:
                    csv.writer(handle, lineterminator="\n").writerows(rows)

    def __enter__(self) -> PerfSampler:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
