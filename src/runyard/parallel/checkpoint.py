"""Completed mini-batches on disk, so a crashed or canceled job resumes where it stopped.

Layout of `<checkpoint>/` (the job file's `checkpoint`, one folder per unit of work):

- `plan.json`: the identity of the mini-batch list (partition.Plan.key(): a hash). A different plan in the same folder means
  the inputs or settings changed: the old records describe other mini-batches, so they are dropped.
- `results/<id:08d>.<attempt>.txt`: a worker writes a try's returned rows here (temp file + rename).
- `done.jsonl`: one JSON line per completed mini-batch (id, items, succeeded, results file), appended by
  the driver with a single write() on an O_APPEND descriptor. A line survives a SIGKILL of the driver as
  soon as the write returns; a torn last line (power loss) is ignored. No fsync per mini-batch: a job of
  100,000 mini-batches would spend its time waiting on the disk.
- `.lock`: held (flock) by the driver that runs the folder's work, so two drivers never share it.

Resume reads done.jsonl and trusts a record only when its results file exists; results files without a
record are leftovers of unfinished tries and are removed. The final output file is assembled from the
records alone: each completed mini-batch's accepted file once, in id order.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInputError

__all__ = ["Checkpoint", "DoneRecord"]

PLAN_VERSION = 1


@dataclass(frozen=True)
class DoneRecord:
    """A completed mini-batch: its item count, how many results run() returned, and the accepted
    results file (None with summary_only)."""

    id: int
    items: int
    succeeded: int
    file: str | None


class Checkpoint:
    """One checkpoint folder. `open()` first (takes the lock, checks the plan), then the rest."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.results = self.root / "results"
        self._done_path = self.root / "done.jsonl"
        self._lock: Any = None
        self._done_fd: int | None = None

    def open(self, key: str) -> str:
        """Lock the folder and make it hold the plan `key`. Returns a sentence for the master log
        (fresh, resumed, or started over because the plan changed)."""
        self.results.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.root / ".lock", "a")  # noqa: SIM115 - held for the driver's lifetime
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise InvalidInputError(
                f"Another ParallelRunStep driver is running the work in checkpoint folder {self.root}. Wait "
                "for it to end (or cancel its step run) before running the same step again."
            ) from None
        plan_file = self.root / "plan.json"
        old: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            old = json.loads(plan_file.read_text(encoding="utf-8"))
        if old.get("plan") == key and old.get("v") == PLAN_VERSION:
            message = f"checkpoint {self.root}: resuming the same plan"
        else:
            if old:
                message = (
                    f"checkpoint {self.root} held another plan (inputs or settings changed): its "
                    f"{self._count_records()} completed mini-batches are discarded and the job starts fresh"
                )
            else:
                message = f"checkpoint {self.root}: new"
            self._done_path.unlink(missing_ok=True)
            shutil.rmtree(self.results, ignore_errors=True)
            self.results.mkdir(parents=True, exist_ok=True)
            tmp = plan_file.with_name(".plan.json.tmp")
            tmp.write_text(json.dumps({"v": PLAN_VERSION, "plan": key}), encoding="utf-8")
            os.replace(tmp, plan_file)
        self._done_fd = os.open(self._done_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        return message

    def _count_records(self) -> int:
        try:
            with open(self._done_path, encoding="utf-8") as fh:
                return sum(1 for _ in fh)
        except OSError:
            return 0

    def completed(self) -> dict[int, DoneRecord]:
        """The completed mini-batches on record, by id; stray results files are removed."""
        records: dict[int, DoneRecord] = {}
        try:
            with open(self._done_path, encoding="utf-8") as fh:
                lines = fh.readlines()
        except OSError:
            lines = []
        for line in lines:
            if not line.endswith("\n"):
                continue  # torn last line
            try:
                rec = DoneRecord(**json.loads(line))
            except (ValueError, TypeError):
                continue
            if rec.file is None or (self.results / rec.file).is_file():
                records[rec.id] = rec
        keep = {rec.file for rec in records.values() if rec.file}
        for entry in os.scandir(self.results):
            if entry.name not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        return records

    def result_name(self, mini_batch_id: int, attempt: int) -> str:
        return f"{mini_batch_id:08d}.{attempt}.txt"

    def record_done(self, rec: DoneRecord) -> None:
        """Append one completion record (one write: whole or not at all for a crash of the driver)."""
        if self._done_fd is None:
            raise RuntimeError("Checkpoint.open() was not called")
        os.write(self._done_fd, (json.dumps(asdict(rec), separators=(",", ":")) + "\n").encode())

    def assemble(self, records: Iterable[DoneRecord], target: Path) -> int:
        """Write `target` from the records' results files in id order (temp + rename). Returns bytes."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        size = 0
        with open(tmp, "wb") as out:
            for rec in sorted(records, key=lambda r: r.id):
                if rec.file is None:
                    continue
                with open(self.results / rec.file, "rb") as src:
                    shutil.copyfileobj(src, out, 1024 * 1024)
            size = out.tell()
        os.replace(tmp, target)
        return size

    def close(self) -> None:
        if self._done_fd is not None:
            os.close(self._done_fd)
            self._done_fd = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
