"""Put a dataset's files in front of a job: a read-only view ("mount") or real copies ("download").

v1 mounts datasets with read-only FUSE mounts. runyard has no FUSE: a mount is a folder of symlinks. A
link must never lead to the datastore's own file, or a job that opens a mounted file for writing (an
in-place to_csv, an append) would rewrite the master copy under every registered version and every other
job. So a local file (a local datastore's, or a local source's) is linked to a read-only (0444) copy in a
content-addressed cache, `<cache>/sha256/<sha256>/<name>` (keyed by the content hash a registered
version has verified; an unhashed file by its path, size and mtime instead): copied once, shared by every
later mount and job, re-verified by size and mtime each time and copied again if a job changed it (a job
running as root can write a 0444 file, but it then changes at most this copy, and the next mount
replaces it). The copy is a reflink where the filesystem has them (btrfs, XFS: instant, no space), a plain
copy elsewhere. A remote store's files are already cached copies (FsspecBackend.fetch) and are linked
as they are. Download writes real copies, each atomically (temporary name, then rename), so a job never
sees a half-written file. Both keep the dataset's folder layout below `dest` (paths relative to the
dataset root, as FileDataset.to_path() shows them).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.data.resolve import Located, cache_root
from runyard.errors import DataAccessError, InvalidInputError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

MODES = ("mount", "download")
#: Linux's ioctl that makes `dest` share `src`'s blocks (a reflink) on btrfs, XFS and similar.
FICLONE = 0x40049409


def mount_cache(ws: Workspace | None) -> Path:
    """Where mounts keep their read-only copies: the workspace's cache, else the user's runyard cache."""
    return (cache_root(ws) if ws is not None else config.cache_dir()) / "mounts"


def _clone(source: Path, dest: Path) -> None:
    """dest = a copy of source: a reflink where the filesystem can, else a plain copy."""
    with source.open("rb") as src, dest.open("wb") as out:
        try:
            fcntl.ioctl(out.fileno(), FICLONE, src.fileno())
            return
        except OSError:
            pass  # not supported here (ext4, tmpfs, another filesystem): copy the bytes
    shutil.copyfile(source, dest)


def readonly_copy(source: Path, sha256: str, cache: Path) -> Path:
    """A read-only copy of the local file `source` in `cache`, reused while its size and mtime still
    match the source's (a copy a job wrote to, or a source that changed, is copied again). `sha256`: the
    file's verified content hash ('' when unknown: the copy is then keyed by path, size and mtime)."""
    before = source.stat()
    if sha256:
        key, kind = sha256, "sha256"
    else:
        identity = f"{source.resolve()}\0{before.st_size}\0{before.st_mtime_ns}"
        key, kind = hashlib.sha256(identity.encode()).hexdigest(), "path"
    target = cache / kind / key[:2] / key / source.name
    try:
        have = target.stat()
        if have.st_size == before.st_size and have.st_mtime_ns == before.st_mtime_ns:
            return target
    except FileNotFoundError:
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        _clone(source, partial)
        after = source.stat()
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise DataAccessError(
                f"{source} changed while it was being mounted; mount again once nothing writes to it."
            )
        os.chmod(partial, 0o444)
        os.utime(partial, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _target(dest: Path, rel: str) -> Path:
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidInputError(f"Dataset file {rel!r} has no safe place below {dest}.")
    return dest.joinpath(*parts)


def place_files(
    located: Sequence[Located], dest: Path, mode: str, overwrite: bool = False, cache: Path | None = None
) -> list[Path]:
    """Link ("mount") or copy ("download") each file to dest/<rel>; returns the placed paths in order.
    An existing file is an InvalidInputError unless `overwrite`. `cache`: where a mount keeps read-only
    copies of local files (mount_cache(None) when not given)."""
    if mode not in MODES:
        raise InvalidInputError(f"Materialize mode must be one of {list(MODES)}, got {mode!r}.")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    placed: list[Path] = []
    for item in located:
        target = _target(dest, item.rel)
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise InvalidInputError(
                    f"{target} already exists: pass overwrite=True to replace it, or choose an empty folder."
                )
            if target.is_dir() and not target.is_symlink():
                raise InvalidInputError(
                    f"{target} is a folder where the dataset has a file: remove it first."
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        source = Path(item.backend.fetch(item.store_path)).resolve()
        if mode == "mount" and item.backend.local_path(item.store_path) is not None:
            # the datastore's own file: link a read-only copy instead, so a write cannot reach it
            source = readonly_copy(source, item.file.sha256, cache or mount_cache(None))
        partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            if mode == "mount":
                os.symlink(source, partial)
            else:
                shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            if partial.is_symlink() or partial.exists():
                partial.unlink()
        placed.append(target)
    return placed


def materialize(ws: Workspace, dataset: Any, mode: str, dest: Path) -> Path:
    """Make `dataset`'s files available under `dest` for a job and return the folder the job gets.

    "mount": a read-only view (links to read-only cached copies); "download": real copies. A
    registered version's recorded files are verified first (DataAccessError if one is gone or changed).
    """
    from runyard.data.abstract_dataset import AbstractDataset

    if not isinstance(dataset, AbstractDataset):
        raise InvalidInputError(
            f"materialize needs a FileDataset or TabularDataset, got {type(dataset).__name__}."
        )
    located = dataset._files(workspace=ws)
    place_files(located, Path(dest), mode, overwrite=True, cache=mount_cache(ws))
    return Path(dest)
