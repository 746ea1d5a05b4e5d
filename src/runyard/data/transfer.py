"""Parallel, per-file atomic transfers between this machine and a datastore, with a progress bar.

Uploads and downloads are many small independent copies, so they run on a thread pool (the work is I/O).
Each copy is atomic on its own: a download is written under a temporary name in the destination folder
and renamed into place; an upload goes through `StorageBackend.put_file`, which does the same locally and
is one PUT (or one completed multipart upload) remotely. A transfer that fails midway therefore leaves
whole files or nothing, never a prefix of one.

A Rich progress bar appears only for long transfers (many files or many bytes), only when asked
(`show_progress`), and only where someone can see it: a terminal on stderr, or a notebook.
"""

from __future__ import annotations

import importlib.util
import os
import posixpath
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from runyard.data.backends import StorageBackend, StoredFile, clean_store_path

#: A transfer is "long" (worth a progress bar) from this many files or bytes.
PROGRESS_MIN_FILES = 50
PROGRESS_MIN_BYTES = 64 * 1024 * 1024
#: Threads for one transfer: the work is waiting on disks and networks, not the CPU.
WORKERS = 16


@dataclass(frozen=True)
class Job:
    """One file to copy. `run` does the copy and returns False when it skipped the file (it existed)."""

    label: str
    size: int
    run: Callable[[], bool]


@dataclass(frozen=True)
class Outcome:
    done: int
    skipped: list[str]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    get = getattr(shell, "get_ipython", None)
    return bool(get and getattr(get(), "kernel", None) is not None)


def _progress(show: bool, jobs: Sequence[Job], description: str) -> Any:
    """A Rich Progress for this transfer, or None when it would be noise."""
    if not show or not (len(jobs) >= PROGRESS_MIN_FILES or sum(j.size for j in jobs) >= PROGRESS_MIN_BYTES):
        return None
    notebook = _in_notebook()
    if not notebook and not sys.stderr.isatty():
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

    # rich's live notebook display needs ipywidgets; without it rich shows only `UserWarning: install
    # "ipywidgets" for Jupyter support`, so there the bar is written as plain lines on stderr instead
    widgets = notebook and importlib.util.find_spec("ipywidgets") is not None
    return Progress(
        TextColumn(
            f"{description} [progress.percentage]{{task.fields[copied]}}/{{task.fields[files]}} files"
        ),
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True, force_jupyter=None if widgets else False),
        transient=not notebook,
    )


def run_jobs(jobs: Sequence[Job], *, show_progress: bool, description: str) -> Outcome:
    """Run every job on a thread pool. The first failure stops the jobs not yet started and is raised
    (files already copied stay: each is whole). Returns how many were copied and which were skipped."""
    skipped: list[str] = []
    done = 0
    progress = _progress(show_progress, jobs, description)
    task: Any = None
    if progress is not None:
        progress.start()
        task = progress.add_task(description, total=sum(j.size for j in jobs), files=len(jobs), copied=0)
    try:
        with ThreadPoolExecutor(max_workers=min(WORKERS, max(1, len(jobs)))) as pool:
            futures = {pool.submit(job.run): job for job in jobs}
            try:
                for future in as_completed(futures):
                    job = futures[future]
                    if future.result():
                        done += 1
                    else:
                        skipped.append(job.label)
                    if progress is not None:
                        progress.update(task, advance=job.size, copied=done + len(skipped))
            except BaseException:
                for pending in futures:
                    pending.cancel()
                raise
    finally:
        if progress is not None:
            progress.stop()
    return Outcome(done, sorted(skipped))


def copy_atomic(src: Path, dest: Path) -> None:
    """Copy a local file so that `dest` is either absent/old or the whole new file, never a part."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copyfile(src, partial)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)


def upload_to(
    backend: StorageBackend, name: str, pairs: list[tuple[Path, str]], base: str, overwrite: bool, show: bool
) -> None:
    """Upload (local file, relative path) pairs below `base`; say how many existing files were skipped."""
    jobs = [
        Job(
            rel,
            local.stat().st_size,
            partial(backend.put_file, local, f"{base}/{rel}" if base else rel, overwrite),
        )
        for local, rel in pairs
    ]
    outcome = run_jobs(jobs, show_progress=show, description=f"Uploading to {name}")
    if outcome.skipped:
        print(
            f"runyard: {len(outcome.skipped)} of {len(jobs)} files were already on datastore {name!r} and were "
            f"skipped (first: {outcome.skipped[0]}); pass overwrite=True to replace them.",
            file=sys.stderr,
        )


def matching(backend: StorageBackend, prefix: str | None) -> list[StoredFile]:
    """Files under `prefix`, read as v1 does: a folder, a file, or the start of their names."""
    if not prefix:
        return backend.list_files("")
    rel = clean_store_path(prefix)
    files = backend.list_files(rel)
    if files or not rel:
        return files
    return [f for f in backend.list_files(posixpath.dirname(rel)) if f.path.startswith(rel)]


def download_from(
    backend: StorageBackend, name: str, target: Path, prefix: str | None, overwrite: bool, show: bool
) -> int:
    """Download the files under `prefix` to `target/<path on datastore>`, skipping existing ones unless
    `overwrite`; returns how many were downloaded."""
    jobs = [
        Job(f.path, f.size, partial(_download_one, backend, f.path, target / f.path, overwrite))
        for f in matching(backend, prefix)
    ]
    outcome = run_jobs(jobs, show_progress=show, description=f"Downloading from {name}")
    if outcome.skipped:
        print(
            f"runyard: {len(outcome.skipped)} of {len(jobs)} files already existed under {str(target)!r} and were "
            f"skipped (first: {outcome.skipped[0]}); pass overwrite=True to replace them.",
            file=sys.stderr,
        )
    return outcome.done


def _download_one(backend: StorageBackend, path: str, dest: Path, overwrite: bool) -> bool:
    if dest.exists() and not overwrite:
        return False
    copy_atomic(backend.fetch(path), dest)
    return True
