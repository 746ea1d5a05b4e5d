"""The file half of the Run API: uploads, listings, downloads, logs. Mixed into Run.

`timeout_seconds` (v1's, on upload_files and download_files) is checked between files: a copy in
progress is never cut, but no new one starts after the deadline."""

from __future__ import annotations

import io
import os
import posixpath
import shutil
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from runyard.errors import InvalidInputError, NotFoundError, TransferTimeout
from runyard.status import TERMINAL_STATUSES
from runyard.store.artifacts import clean_relpath

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.store import RunRecord

LOG_DIR = "azureml-logs"
DRIVER_LOG = f"{LOG_DIR}/70_driver_log.txt"
#: Written by core/run_end.py when a job's process has ended: the last file of a submitted run.
JOB_POST = f"{LOG_DIR}/75_job_post.txt"


def _deadline(timeout_seconds: float | None) -> float | None:
    return None if timeout_seconds is None else time.monotonic() + float(timeout_seconds)


def _check_deadline(deadline: float | None, what: str, done: int, total: int, timeout: Any) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TransferTimeout(
            f"{what} stopped after {done} of {total} files: timeout_seconds={timeout} passed. "
            "Pass a larger timeout_seconds (or None for no limit) and call it again."
        )


class RunFilesMixin:
    workspace: Workspace

    if TYPE_CHECKING:

        @property
        def id(self) -> str: ...

        def _refresh(self) -> RunRecord: ...

    @property
    def _prefix(self) -> str:
        return f"runs/{self.id}"

    def _artifact(self, name: str) -> str:
        return f"{self._prefix}/{clean_relpath(name)}"

    def upload_file(
        self, name: str, path_or_stream: str | os.PathLike[str] | IO[bytes], datastore_name: str | None = None
    ) -> None:
        """Store a local file (or a binary stream) as `name` in the run's folder."""
        if hasattr(path_or_stream, "read"):
            data = path_or_stream.read()
            self.workspace.artifacts.put_bytes(
                self._artifact(name), data if isinstance(data, bytes) else data.encode()
            )
            return
        src = Path(path_or_stream)
        if not src.is_file():
            raise InvalidInputError(f"upload_file: {src} is not a file. Pass the path of an existing file.")
        self.workspace.artifacts.put_file(self._artifact(name), src)

    def upload_files(
        self,
        names: list[str],
        paths: list[str],
        return_artifacts: bool = False,
        timeout_seconds: float | None = None,
        datastore_name: str | None = None,
    ) -> None:
        if len(names) != len(paths):
            raise InvalidInputError(
                f"upload_files: {len(names)} names but {len(paths)} paths; pass one name per path."
            )
        deadline = _deadline(timeout_seconds)
        for done, (name, path) in enumerate(zip(names, paths, strict=True)):
            _check_deadline(deadline, "upload_files", done, len(names), timeout_seconds)
            self.upload_file(name, path)

    def upload_folder(
        self, name: str, path: str | os.PathLike[str], datastore_name: str | None = None
    ) -> list[str]:
        src = Path(path)
        if not src.is_dir():
            raise InvalidInputError(f"upload_folder: {src} is not a folder.")
        written = self.workspace.artifacts.put_dir(self._artifact(name), src)
        return [w[len(self._prefix) + 1 :] for w in written]

    def clean(self) -> None:
        """Remove what the run left on its compute target: its working copy (kept only with
        RUNYARD_KEEP_WORK=1 or after an interrupted job). Its stored files stay."""
        if self._refresh().status not in TERMINAL_STATUSES:
            raise InvalidInputError(
                f"run.clean(): run {self.id} has not ended; its working copy is in use. Wait for it "
                "(run.wait_for_completion()) or cancel it first."
            )
        shutil.rmtree(self.workspace.work_dir / self.id, ignore_errors=True)

    def get_file_names(self) -> list[str]:
        """Every file stored with the run, e.g. ['azureml-logs/70_driver_log.txt', 'outputs/model.pkl']."""
        return self.workspace.artifacts.list(self._prefix)

    def download_file(
        self,
        name: str,
        output_file_path: str | os.PathLike[str] | None = None,
        _validate_checksum: bool = False,
    ) -> str:
        rel = clean_relpath(name)
        dest = Path(output_file_path) if output_file_path else Path(posixpath.basename(rel))
        if dest.is_dir():
            dest = dest / posixpath.basename(rel)
        try:
            self.workspace.artifacts.get_file(self._artifact(rel), dest)
        except NotFoundError:
            raise NotFoundError(
                f"Run {self.id} has no file {rel!r}. See its files with run.get_file_names() "
                f"or `runyard runs show {self.id}`."
            ) from None
        return str(dest)

    def download_files(
        self,
        prefix: str | None = None,
        output_directory: str | os.PathLike[str] | None = None,
        output_paths: list[str] | None = None,
        batch_size: int = 100,
        append_prefix: bool = True,
        timeout_seconds: float | None = None,
    ) -> list[str]:
        out = Path(output_directory or ".")
        names = [n for n in self.get_file_names() if prefix is None or n.startswith(prefix)]
        written = []
        deadline = _deadline(timeout_seconds)
        for i, name in enumerate(names):
            _check_deadline(deadline, "download_files", i, len(names), timeout_seconds)
            if output_paths:
                dest = Path(output_paths[i])
            elif append_prefix or not prefix:
                dest = out / name
            else:
                dest = out / name[len(prefix) :].lstrip("/")
            self.workspace.artifacts.get_file(self._artifact(name), dest)
            written.append(str(dest))
        return written

    def get_all_logs(self, destination: str | os.PathLike[str] | None = None) -> list[str]:
        dest = Path(destination or self.id)
        return [
            self.download_file(n, dest / n)
            for n in self.get_file_names()
            if n.startswith((f"{LOG_DIR}/", "logs/"))
        ]

    def _log_files(self) -> list[str]:
        return [n for n in self.get_file_names() if n.startswith((f"{LOG_DIR}/", "logs/"))]

    def read_log(self, name: str = DRIVER_LOG, offset: int = 0, length: int | None = None) -> bytes:
        """Raw bytes of a log file from `offset`; b'' when it does not exist yet."""
        rel = self._artifact(name)
        if not self.workspace.artifacts.exists(rel):
            return b""
        return self.workspace.artifacts.read_bytes(rel, offset, length)

    def _log_file_url(self, name: str) -> str:
        try:
            return self.workspace.artifacts.local_path(self._artifact(name)).as_uri()
        except NotImplementedError:
            return f"{self.workspace.artifact_root}/{self._artifact(name)}"

    @staticmethod
    def _decode(data: bytes) -> str:
        return io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace").read()
