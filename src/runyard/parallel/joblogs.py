"""The log folder of a ParallelRunStep job, in v1's layout (azureml-surface.md §8.5).

People who debugged ParallelRunStep on Azure know where to look: `logs/job_result.txt` for the outcome,
`logs/user/error.txt` for one line per failure, `logs/user/error/<node>/<agent>.txt` for tracebacks,
`logs/sys/job_report/processed_mini-batches.csv` for what ran where. The driver (driver.py) calls these
writers; they are cheap (appends to line-buffered files held open) because a job may record tens of
thousands of mini-batches. `job_progress_overview.<YYYYMMDDHH>.txt` is rewritten in place; when the hour
changes a new file starts (v1 names them by the hour, so a long job leaves one per hour).
"""

from __future__ import annotations

import csv
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from runyard.parallel.progress import ProgressSnapshot, describe

__all__ = ["CSV_COLUMNS", "AgentPaths", "JobLogs", "MiniBatchRecord", "agent_name"]

CSV_COLUMNS = (
    "Mini-batch Id",
    "Status",
    "Input",
    "Items",
    "Succeeded",
    "Failed",
    "Tries",
    "Agent",
    "Seconds",
)
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


def agent_name(number: int) -> str:
    """v1's agent names: process001, process002, ... in start order."""
    return f"process{number:03d}"


@dataclass(frozen=True)
class AgentPaths:
    """The files of one worker process (parents exist)."""

    stdout: Path
    stderr: Path
    entry_log: Path
    sys_log: Path
    error: Path


@dataclass(frozen=True)
class MiniBatchRecord:
    """One mini-batch's final record. `status` is v1's RUN_DONE or RUN_FAILED; `started` epoch seconds;
    `seconds` the whole try (loading included), `run_seconds` the entry script's run() alone."""

    id: int
    input: str
    items: int
    succeeded: int
    failed: int
    tries: int
    agent: str
    status: str
    started: float
    seconds: float
    run_seconds: float


def _stamp(when: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if when is None else when, UTC).strftime(
        "%Y-%m-%d %H:%M:%S.%f"
    )[:-3]


class JobLogs:
    """Writers for one node's part of the job's `./logs` folder. Thread-safe (the driver's progress
    thread and its main loop both write)."""

    def __init__(self, logs_dir: Path, node: str, level: str = "INFO") -> None:
        self.root = Path(logs_dir)
        self.node = str(node)
        self.level = _LEVELS.get(level.upper(), 20)
        self._lock = threading.Lock()
        self._files: dict[Path, IO[str]] = {}
        self._csv: Any = None  # a csv.writer over the open processed_mini-batches.csv
        self._overview_hour = ""
        for sub in ("sys", f"sys/node/{self.node}", "sys/job_report", "user", f"perf/{self.node}"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # -- plumbing ---------------------------------------------------------------------------------
    def _open(self, path: Path) -> IO[str]:
        handle = self._files.get(path)
        if handle is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - held open, closed in close()
            self._files[path] = handle
        return handle

    def _append(self, rel: str | Path, text: str) -> None:
        with self._lock:
            self._open(self.root / rel).write(text if text.endswith("\n") else text + "\n")

    def close(self) -> None:
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()
            self._csv = None

    def __enter__(self) -> JobLogs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the writers ------------------------------------------------------------------------------
    def master(self, message: str, level: str = "INFO") -> None:
        """A timestamped line in sys/master_role.txt (skipped below the job's logging_level)."""
        if _LEVELS.get(level.upper(), 20) < self.level:
            return
        lines = message.rstrip("\n").splitlines() or [""]
        text = "\n".join(f"{_stamp()} {level.upper()} {line}" for line in lines)
        self._append("sys/master_role.txt", text)

    def agent_paths(self, agent: str) -> AgentPaths:
        node = self.node
        paths = AgentPaths(
            stdout=self.root / "user" / "stdout" / node / f"{agent}.stdout.txt",
            stderr=self.root / "user" / "stderr" / node / f"{agent}.stderr.txt",
            entry_log=self.root / "user" / "entry_script_log" / node / f"{agent}.log.txt",
            sys_log=self.root / "sys" / "node" / node / f"{agent}.txt",
            error=self.root / "user" / "error" / node / f"{agent}.txt",
        )
        for path in (paths.stdout, paths.stderr, paths.entry_log, paths.sys_log, paths.error):
            path.parent.mkdir(parents=True, exist_ok=True)
        return paths

    def mini_batch(self, rec: MiniBatchRecord) -> None:
        """One line in the agent's sys log and one row in sys/job_report/processed_mini-batches.csv."""
        line = (
            f"{_stamp(rec.started)} mini-batch {rec.id} {rec.status} input={rec.input} items={rec.items} "
            f"succeeded={rec.succeeded} failed={rec.failed} tries={rec.tries} "
            f"duration={rec.seconds:.3f}s run={rec.run_seconds:.3f}s"
        )
        row = [rec.id, rec.status, rec.input, rec.items, rec.succeeded, rec.failed, rec.tries, rec.agent]
        with self._lock:
            self._open(self.root / "sys" / "node" / self.node / f"{rec.agent}.txt").write(line + "\n")
            if self._csv is None:
                path = self.root / "sys" / "job_report" / "processed_mini-batches.csv"
                fresh = not path.exists() or path.stat().st_size == 0
                handle = self._open(path)
                self._csv = csv.writer(handle, lineterminator="\n")
                if fresh:
                    self._csv.writerow(CSV_COLUMNS)
            self._csv.writerow([*row, f"{rec.seconds:.3f}"])

    def error_log(self, agent: str) -> str:
        """The agent's traceback file, as the snapshot's `failures[].log` names it."""
        return f"logs/user/error/{self.node}/{agent}.txt"

    def user_error(self, agent: str, mini_batch_id: int | None, summary: str, traceback_text: str) -> None:
        """A summary line in user/error.txt and the whole traceback in user/error/<node>/<agent>.txt."""
        where = f"mini-batch {mini_batch_id}" if mini_batch_id is not None else "no mini-batch"
        first = " ".join(summary.strip().splitlines()[:1]) or "(no message)"
        self._append("user/error.txt", f"{_stamp()} {agent} {where}: {first}")
        body = traceback_text.rstrip("\n") or summary
        self._append(Path("user") / "error" / self.node / f"{agent}.txt", f"{_stamp()} {where}\n{body}\n")

    def progress(self, snap: ProgressSnapshot) -> None:
        """The hourly overview file (rewritten) and sys/progress.json (replaced atomically)."""
        self._overview(snap)
        _replace(self.root / "sys" / "progress.json", snap.model_dump_json())

    def result(self, snap: ProgressSnapshot, outcome: str, detail: str) -> None:
        """job_result.txt: the outcome and where the root cause is; the last overview and progress."""
        self.progress(snap)
        text = f"{outcome}\n{detail.rstrip()}\n\n{describe(snap)}\n"
        _replace(self.root / "job_result.txt", text)

    def _overview(self, snap: ProgressSnapshot) -> None:
        hour = datetime.fromtimestamp(snap.updated, UTC).strftime("%Y%m%d%H")
        mb, items = snap.mini_batches, snap.items
        lines = [
            f"Step: {snap.step}",
            f"State: {snap.state}",
            f"Updated: {_stamp(snap.updated)} UTC (started {_stamp(snap.started)} UTC)",
            f"Mini-batches: total {mb.total}, scheduled {mb.scheduled}, completed {mb.completed}, "
            f"failed {mb.failed}, resumed {mb.resumed}",
            f"Items: total {items.total}, succeeded {items.succeeded}, failed {items.failed}",
            f"Workers: {snap.workers}",
            f"Speed: {snap.items_per_second:.2f} items/s"
            + (f", ETA {snap.eta_seconds:.0f} s" if snap.eta_seconds is not None else ""),
            describe(snap),
        ]
        with self._lock:
            self._overview_hour = hour
        _replace(self.root / f"job_progress_overview.{hour}.txt", "\n".join(lines) + "\n")


def _replace(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def read_csv(path: Path) -> list[dict[str, str]]:
    """The rows of a processed_mini-batches.csv (for tests and the driver's resume report)."""
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))
