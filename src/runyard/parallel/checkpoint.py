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

Resume reads done.jsonl and trusts a record only when its id is one of the plan's mini-batches, its file is
exactly `result_name(id, attempt)` and that file is a regular file in results/ (lstat: a link is not
followed); results files without a record are leftovers of unfinished tries and are removed. The final
output file is assembled from the records alone: each completed mini-batch's accepted file once, in id
order, each opened with O_NOFOLLOW. Any job of the workspace's OS user can write to this folder, so its
content is checked like input, never trusted: a forged record or a planted link must not pull a file from
elsewhere into the step's output, nor make the driver delete files elsewhere.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInputError

__all__ = ["Checkpoint", "DoneRecord"]

PLAN_VERSION = 1
_RESULT_NAME = re.compile(r"(\d{8,})\.([1-9]\d{0,5})\.txt")
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _real_folder(path: Path) -> None:
    """Make `path` a real folder: a link (followed by mkdir and rmtree's callers) or a file there is
    removed first, so nothing done inside it lands elsewhere."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
    path.mkdir(mode=0o700, exist_ok=True)


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
        if self.root.is_symlink():
            raise InvalidInputError(
                f"The checkpoint folder {self.root} is a symbolic link; the driver works only in a real "
                "folder (the scheduler makes one). Remove the link and run the step again."
            )
        self.root.mkdir(parents=True, exist_ok=True)
        _real_folder(self.results)
        lock_fd = os.open(self.root / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND | _NOFOLLOW, 0o600)
        self._lock = open(lock_fd, "a")  # noqa: SIM115 - held for the driver's lifetime
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
            fd = os.open(plan_file, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
            with open(fd, encoding="utf-8") as fh:
                old = json.loads(fh.read(4096))
            if not isinstance(old, dict):
                old = {}
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
            shutil.rmtree(self.results, ignore_errors=True)  # a real folder (_real_folder): no link
            _real_folder(self.results)
            tmp = plan_file.with_name(".plan.json.tmp")
            tmp.unlink(missing_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            with open(fd, "w", encoding="utf-8") as fh:
                fh.write(json.dumps({"v": PLAN_VERSION, "plan": key}))
            os.replace(tmp, plan_file)
        self._done_fd = os.open(self._done_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o600)
        return message

    def _done_lines(self) -> list[str]:
        try:
            fd = os.open(self._done_path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
        except OSError:
            return []
        with open(fd, encoding="utf-8", errors="replace") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return []
            return fh.readlines()

    def _count_records(self) -> int:
        return len(self._done_lines())

    def completed(self, mini_batches: int | None = None) -> dict[int, DoneRecord]:
        """The completed mini-batches on record, by id (only ids below `mini_batches`, the plan's count,
        when given); stray results files are removed."""
        records: dict[int, DoneRecord] = {}
        for line in self._done_lines():
            if not line.endswith("\n"):
                continue  # torn last line
            try:
                rec = DoneRecord(**json.loads(line))
            except (ValueError, TypeError):
                continue
            if self.valid(rec, mini_batches):
                records[rec.id] = rec
        keep = {rec.file for rec in records.values() if rec.file}
        for entry in os.scandir(self.results):
            if entry.name not in keep:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
        return records

    def valid(self, rec: DoneRecord, mini_batches: int | None = None) -> bool:
        """Whether a record (read back from done.jsonl) may be trusted: whole, non-negative counts, an id
        of the plan, and a file that is exactly this mini-batch's `result_name` and a regular file."""
        if not (_whole(rec.id) and _whole(rec.items) and _whole(rec.succeeded)):
            return False
        if mini_batches is not None and rec.id >= mini_batches:
            return False
        if rec.file is None:
            return True
        match = _RESULT_NAME.fullmatch(rec.file) if isinstance(rec.file, str) else None
        if match is None or rec.file != self.result_name(rec.id, int(match.group(2))):
            return False
        return self.has_result(rec.file)

    def has_result(self, name: str) -> bool:
        """Whether results/<name> is a regular file (lstat: a link does not count)."""
        try:
            return stat.S_ISREG(os.lstat(self.results / name).st_mode)
        except OSError:
            return False

    def result_name(self, mini_batch_id: int, attempt: int) -> str:
        return f"{mini_batch_id:08d}.{attempt}.txt"

    def record_done(self, rec: DoneRecord) -> None:
        """Append one completion record (one write: whole or not at all for a crash of the driver)."""
        if self._done_fd is None:
            raise RuntimeError("Checkpoint.open() was not called")
        os.write(self._done_fd, (json.dumps(asdict(rec), separators=(",", ":")) + "\n").encode())

    def assemble(self, records: Iterable[DoneRecord], target: Path) -> int:
        """Write `target` from the records' results files in id order (temp + rename). Returns bytes.
        OSError (a full disk) or InvalidInputError (a results file swapped for something else) leave no
        temp file behind and the checkpoint as it was, so a rerun assembles again."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as out:
                for rec in sorted(records, key=lambda r: r.id):
                    if rec.file is not None:
                        self._copy_result(rec.file, out)
                size = out.tell()
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        return size

    def _copy_result(self, name: str, out: Any) -> None:
        path = self.results / name
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW)
        with open(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise InvalidInputError(
                    f"{path} is not a regular file (it was replaced while the job ran); run the step "
                    "again: that mini-batch is computed again."
                )
            shutil.copyfileobj(src, out, 1024 * 1024)

    def close(self) -> None:
        if self._done_fd is not None:
            os.close(self._done_fd)
            self._done_fd = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
