"""The build cache on disk: which folder it is, whether it can be trusted, its locks, listing and pruning.

A finished environment's bin/python is run as the job's owner, and its hash is predictable, so a cache
another user can write is a way to run code as someone else. The cache folder is therefore created 0o700,
refused when it is group/world-writable or someone else's, and a build (its folder and ready marker) is
reused only when this user owns it. Lock files are opened without following symlinks and written only
once fstat() says they are this user's regular files.

Folders: <cache>/<hash>/ (finished), <cache>/.<hash>.building-<pid>/ (a build in progress, or one whose
builder was killed), <cache>/.<hash>.removing-<pid>/ (a removal in progress, or a killed one),
<cache>/locks/<hash>.lock. A leftover is removable exactly when its hash lock can be taken at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from runyard.config import env_cache_dir
from runyard.errors import EnvironmentBuildError

MARKER = "runyard-env.json"
LAST_USED = "last-used"
HASH = re.compile(r"^[0-9a-f]{64}$")
LEFTOVER = re.compile(r"^\.(?P<hash>[0-9a-f]{64})\.(?P<kind>building|removing)-\d+$")


@dataclass(frozen=True)
class BuildInfo:
    hash: str
    location: str
    python: str  # major.minor
    requirements: tuple[str, ...]
    name: str
    created: float
    last_used: float
    size_bytes: int


@dataclass(frozen=True)
class Leftover:
    """What a killed build (`building`) or removal (`removing`) left behind."""

    hash: str
    kind: str
    location: str
    modified: float
    size_bytes: int


def cache_dir() -> Path:
    """RUNYARD_ENV_CACHE, else $XDG_CACHE_HOME/runyard/envs, else ~/.cache/runyard/envs (absolute)."""
    return env_cache_dir()


def _untrusted(path: Path, info: os.stat_result) -> str | None:
    """Why `path` (a cache folder) cannot be trusted, or None."""
    if info.st_uid != os.geteuid():
        return f"it belongs to user id {info.st_uid}, not to you ({os.geteuid()})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"other users can write into it (mode {stat.filemode(info.st_mode)})"
    return None


def trusted_root(create: bool = True) -> Path:
    """The cache folder, created 0o700 when missing. Raises EnvironmentBuildError when it (or its locks/
    folder) is not this user's own: an environment found there could be anyone's program."""
    root = cache_dir()
    if create:
        os.makedirs(root, mode=0o700, exist_ok=True)
    for folder in (root, root / "locks"):
        try:
            info = os.stat(folder)
        except FileNotFoundError:
            continue
        why = _untrusted(folder, info) or (None if stat.S_ISDIR(info.st_mode) else "it is not a folder")
        if why:
            raise EnvironmentBuildError(
                f"The environment cache {folder} cannot be trusted: {why}. Anyone who can write it can plant "
                f"a 'finished' environment whose Python runs their program as you. Fix it with `chmod 700 "
                f"{folder}` (as its owner), or set RUNYARD_ENV_CACHE to a folder of your own.",
                log="",
            )
    return root


def owned(path: Path) -> bool:
    """`path` exists (not followed if a symlink) and belongs to this user."""
    try:
        return os.lstat(path).st_uid == os.geteuid()
    except OSError:
        return False


def open_lock(root: Path, hash: str) -> int:
    """<cache>/locks/<hash>.lock opened read-write without following a symlink; only this user's regular
    file is accepted (a planted link or file is refused, never truncated)."""
    locks = root / "locks"
    os.makedirs(locks, mode=0o700, exist_ok=True)
    path = locks / f"{hash}.lock"
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise EnvironmentBuildError(
            f"Cannot open the build lock {path} ({exc.strerror}): it is not a plain file of yours (a symlink "
            f"planted there?). Remove it (`rm {path}`) and run again.",
            log="",
        ) from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        raise EnvironmentBuildError(
            f"The build lock {path} is not a regular file of yours; remove it (`rm {path}`) and run again.",
            log="",
        )
    return fd


def write_holder(fd: int, holder: str) -> None:
    """Say in the lock who holds it (read by a process that waits). Only called on an fd open_lock checked."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, holder.encode(), 0)


def lock_now(root: Path, hash: str) -> int | None:
    """The hash's lock taken without waiting (its fd, to close), or None when someone holds it."""
    fd = open_lock(root, hash)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def size_of(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def list_builds() -> list[BuildInfo]:
    """Every finished build of this user in the cache, most recently used first."""
    if not cache_dir().exists():
        return []
    root = trusted_root(create=False)
    found: list[BuildInfo] = []
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            if not HASH.match(folder.name) or not owned(folder):
                continue
            try:
                marker = json.loads((folder / MARKER).read_text())
            except (OSError, ValueError):
                continue
            summary = marker.get("summary") or {}
            created = float(marker.get("created") or 0)
            try:
                last_used = (folder / LAST_USED).stat().st_mtime
            except OSError:
                last_used = created
            found.append(BuildInfo(
                hash=folder.name, location=str(folder), python=str(summary.get("python") or ""),
                requirements=tuple(summary.get("requirements") or ()), name=str(summary.get("name") or ""),
                created=created, last_used=last_used, size_bytes=size_of(folder),
            ))  # fmt: skip
    return sorted(found, key=lambda info: info.last_used, reverse=True)


def list_leftovers() -> list[Leftover]:
    """Folders of builds and removals in progress or killed (`.<hash>.building-<pid>`, `.removing-<pid>`),
    oldest first. Which of them are dead is known only when removing (remove_leftover takes the lock)."""
    if not cache_dir().exists():
        return []
    root = trusted_root(create=False)
    found: list[Leftover] = []
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            match = LEFTOVER.match(folder.name)
            if not match or not owned(folder):
                continue
            with contextlib.suppress(OSError):
                modified = os.lstat(folder).st_mtime
                found.append(Leftover(match["hash"], match["kind"], str(folder), modified, size_of(folder)))
    return sorted(found, key=lambda left: left.modified)


def remove_leftover(location: str) -> bool:
    """Remove a leftover folder when its hash lock can be taken at once (so its builder or remover is
    gone). False when it is in use or absent."""
    folder = Path(location)
    match = LEFTOVER.match(folder.name)
    root = trusted_root(create=False)
    if not match or folder.parent != root or not owned(folder):
        return False
    fd = lock_now(root, match["hash"])
    if fd is None:
        return False
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        return False
    except OSError:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)
    return not folder.exists()


def remove_build(hash: str) -> bool:
    """Remove one build under its lock. False when it is absent or being built right now."""
    if not HASH.match(hash) or not cache_dir().exists():
        return False
    root = trusted_root(create=False)
    target = root / hash
    if not target.exists() or not owned(target):
        return False
    fd = lock_now(root, hash)
    if fd is None:  # being built (or removed) right now
        return False
    doomed = root / f".{hash}.removing-{os.getpid()}"
    try:
        os.rename(target, doomed)
    except OSError:
        return False
    else:
        shutil.rmtree(doomed, ignore_errors=True)
        return True
    finally:
        os.close(fd)
