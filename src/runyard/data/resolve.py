"""From a dataset definition to the exact files it means, and back again for a registered version.

`resolve_files` expands every source (a datastore path or glob, a local path or glob, an http(s) URL)
into files with sizes and content hashes; registration records that list so "version 3" keeps meaning
the same bytes. `check_files` re-verifies a recorded list before a registered version is read: a file
that vanished or whose bytes changed fails loudly, naming it, instead of silently reading new data.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
import tempfile
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.data.backends import LocalBackend, StorageBackend, StoredFile, clean_store_path
from runyard.data.definition import DatasetDefinition, is_glob
from runyard.data.hashing import ResolvedFile, content_hash, datastore_backend, hash_files
from runyard.errors import DataAccessError, InvalidInputError
from runyard.store.snapshots import file_sha256

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.store.records import DatasetRecord

__all__ = [
    "Located",
    "ResolvedFile",
    "ResolvedFiles",
    "check_files",
    "locate",
    "locate_record",
    "resolve_files",
]


@dataclass(frozen=True)
class ResolvedFiles:
    files: tuple[ResolvedFile, ...]
    content_hash: str


@dataclass(frozen=True)
class Located:
    """A resolved file plus how to read it: its backend, its path there, and its path relative to the
    dataset's root (what to_path() shows and where mount/download put it)."""

    file: ResolvedFile
    backend: StorageBackend
    store_path: str
    rel: str


def glob_regex(pattern: str) -> re.Pattern[str]:
    """v1/Azure glob semantics on posix paths: '*' and '?' stay within a folder, '**' crosses folders."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1 : end].replace("\\", "\\\\")
            out.append(f"[{'^' + body[1:] if body.startswith('!') else body}]")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_base(pattern: str) -> str:
    """The folder part of a glob before its first wildcard ('raw/2024/*.csv' -> 'raw/2024')."""
    parts = pattern.split("/")
    fixed: list[str] = []
    for part in parts[:-1]:
        if is_glob(part):
            break
        fixed.append(part)
    return "/".join(fixed)


def _rel(base: str, path: str) -> str:
    return posixpath.relpath(path, base) if base else path


def _expand(backend: StorageBackend, path: str, where: str) -> list[tuple[StoredFile, str]]:
    """(file, path relative to the source's root) for one source path or glob on one backend."""
    if is_glob(path):
        base = glob_base(path)
        regex = glob_regex(path)
        found = [(f, _rel(base, f.path)) for f in backend.list_files(base) if regex.match(f.path)]
        if not found:
            raise InvalidInputError(
                f"The glob {path!r} on {where} matched no files. Check the pattern ('*' stays within a "
                "folder, '**' crosses folders) or upload the files first (Datastore.upload)."
            )
        return found
    listed = backend.list_files(path)
    if not listed:
        raise InvalidInputError(
            f"The path {path!r} on {where} matched no files: nothing is there. Check the path or upload "
            "the files first (Datastore.upload)."
        )
    if len(listed) == 1 and listed[0].path == path:
        return [(listed[0], posixpath.basename(path))]
    return [(f, _rel(path, f.path)) for f in listed]


def _local_backend(pattern: str) -> tuple[LocalBackend, str]:
    """A backend rooted at the fixed part of an absolute local path or glob, and the rest below it."""
    path = pattern.replace("\\", "/")
    if is_glob(path):
        base = glob_base(path) or "/"
        return LocalBackend(Path(base)), posixpath.relpath(path, base)
    if os.path.isdir(path):
        return LocalBackend(Path(path)), ""
    return LocalBackend(Path(posixpath.dirname(path) or "/")), posixpath.basename(path)


def cache_root(ws: Workspace | None) -> Path:
    """The workspace's local cache folder (a per-user temp folder when no workspace is known)."""
    if ws is None:
        return Path(tempfile.gettempdir()) / f"runyard-cache-{os.getuid()}"
    return Path(ws.path) / "cache"


def _url_copy(ws: Workspace | None, url: str) -> Path:
    """Download an http(s) source into the workspace's cache folder (atomically) and return the copy."""
    folder = cache_root(ws) / "urls" / hashlib.sha256(url.encode()).hexdigest()[:32]
    folder.mkdir(parents=True, exist_ok=True)
    name = posixpath.basename(url.split("?", 1)[0].rstrip("/")) or "download"
    final = folder / name
    partial = folder / f".{name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
        os.replace(partial, final)
    except (urllib.error.URLError, OSError) as exc:
        raise DataAccessError(
            f"Cannot download dataset source {url}: {exc}. Check the URL and the network."
        ) from None
    finally:
        partial.unlink(missing_ok=True)
    return final


def _hashes(ws: Workspace | None, backend: StorageBackend, files: list[StoredFile]) -> dict[str, str]:
    return hash_files(ws, backend, files) if ws is not None else {f.path: "" for f in files}


def locate(ws: Workspace | None, definition: DatasetDefinition, with_hashes: bool = True) -> list[Located]:
    """Every file the definition's sources mean now (globs evaluated now), hashed when `with_hashes`
    (reading needs no hashes; registration and reuse do). `ws` may be None for local/url sources."""
    if ws is None:
        with_hashes = False
    located: list[Located] = []
    for source in definition.sources:
        if "datastore" in source:
            name = source["datastore"]
            if ws is None:
                raise InvalidInputError(
                    f"Dataset source {source!r} names a datastore but no workspace is known: pass a Datastore "
                    "object, e.g. (Datastore.get(ws, name), path), or register the dataset first."
                )
            backend = datastore_backend(ws, name)
            path = clean_store_path(source["path"])
            found = _expand(backend, path, f"datastore {name!r} ({backend.url})")
            hashes = _hashes(ws if with_hashes else None, backend, [f for f, _ in found])
            for f, rel in found:
                resolved = ResolvedFile(name, f.path, f.size, hashes[f.path])
                located.append(Located(resolved, backend, f.path, rel))
        elif "local" in source:
            local_backend, rest = _local_backend(source["local"])
            found = _expand(local_backend, rest, f"this machine ({source['local']})")
            hashes = _hashes(ws if with_hashes else None, local_backend, [f for f, _ in found])
            for f, rel in found:
                full = str(local_backend.root / f.path)
                located.append(
                    Located(ResolvedFile("", full, f.size, hashes[f.path]), local_backend, f.path, rel)
                )
        else:
            copy = _url_copy(ws, source["url"])
            sha = file_sha256(copy) if with_hashes else ""
            resolved = ResolvedFile("", source["url"], copy.stat().st_size, sha)
            located.append(Located(resolved, LocalBackend(copy.parent), copy.name, copy.name))
    return located


def resolve_files(ws: Workspace, definition: DatasetDefinition) -> ResolvedFiles:
    """The files a definition resolves to now, with their content hashes. InvalidInputError when a glob
    or path matches nothing; DatastoreNotFound for a missing datastore."""
    files = tuple(item.file for item in locate(ws, definition))
    return ResolvedFiles(files, content_hash(files))


def relative_path(definition: DatasetDefinition, file: ResolvedFile) -> str:
    """A recorded file's path relative to the dataset root, from the source that matched it."""
    for source in definition.sources:
        if "datastore" in source and source["datastore"] == file.datastore:
            path = clean_store_path(source["path"])
            if is_glob(path) and glob_regex(path).match(file.path):
                return _rel(glob_base(path), file.path)
            if file.path == path:
                return posixpath.basename(path)
            if not is_glob(path) and (not path or file.path.startswith(path + "/")):
                return _rel(path, file.path)
        elif "local" in source and file.datastore == "":
            local_backend, rest = _local_backend(source["local"])
            root = str(local_backend.root).rstrip("/") + "/"
            if not file.path.startswith(root):
                continue
            below = file.path[len(root) :]
            if is_glob(rest):
                if glob_regex(rest).match(below):
                    return _rel(glob_base(rest), below)
            elif not rest or below == rest:
                return below if not rest else posixpath.basename(below)
        elif "url" in source and source["url"] == file.path:
            return posixpath.basename(file.path.split("?", 1)[0].rstrip("/")) or "download"
    return posixpath.basename(file.path)


def _record_label(record: DatasetRecord) -> str:
    return f"dataset {record.name!r} version {record.version}"


def _where(file: ResolvedFile) -> str:
    return f"{file.path} on datastore {file.datastore!r}" if file.datastore else file.path


def locate_record(ws: Workspace, record: DatasetRecord, ignore_missing: bool = False) -> list[Located]:
    """The recorded files of a registered version, verified: DataAccessError naming the first file that
    is gone (unless `ignore_missing`: then it is skipped) or whose size or content changed."""
    definition = DatasetDefinition.from_json(record.definition)
    files = [ResolvedFile.from_json(d) for d in record.files]
    by_store: dict[str, list[ResolvedFile]] = defaultdict(list)
    for f in files:
        by_store[f.datastore].append(f)
    located: dict[tuple[str, str], Located] = {}
    label = _record_label(record)
    hint = (
        "Restore the file, or register the data as it is now with register(..., create_new_version=True) "
        "and use the new version."
    )

    def gone(f: ResolvedFile, why: str) -> None:
        if not ignore_missing:
            raise DataAccessError(f"{label} no longer resolves: {_where(f)} {why}. {hint}")

    def changed(f: ResolvedFile, why: str) -> None:
        raise DataAccessError(
            f"{label} no longer resolves: {_where(f)} changed since it was registered ({why}). {hint}"
        )

    for store_name, group in by_store.items():
        if store_name:
            backend = datastore_backend(ws, store_name)
            groups: list[tuple[StorageBackend, list[tuple[ResolvedFile, str]]]] = [
                (backend, [(f, f.path) for f in group])
            ]
        else:
            groups = _local_groups(ws, [f for f in group])
        for backend, items in groups:
            listed = _current(backend, [p for _, p in items])
            present = [(f, p) for f, p in items if p in listed]
            for f, p in items:
                if p not in listed:
                    gone(f, "is gone")
            for f, p in present:
                if listed[p].size != f.size:
                    changed(f, f"size {f.size} -> {listed[p].size} bytes")
            hashes = hash_files(ws, backend, [listed[p] for _, p in present])
            for f, p in present:
                if hashes[p] != f.sha256:
                    changed(f, f"content hash {f.sha256[:12]}… -> {hashes[p][:12]}…")
                located[(f.datastore, f.path)] = Located(f, backend, p, relative_path(definition, f))
    return [located[(f.datastore, f.path)] for f in files if (f.datastore, f.path) in located]


def _local_groups(
    ws: Workspace, files: Sequence[ResolvedFile]
) -> list[tuple[StorageBackend, list[tuple[ResolvedFile, str]]]]:
    """Local/url files as (backend, [(file, path on it)]): local files on a backend rooted at '/' (each is
    stat'ed, never a folder listed), urls as fresh downloads."""
    local = [f for f in files if not f.path.startswith(("http://", "https://"))]
    groups: list[tuple[StorageBackend, list[tuple[ResolvedFile, str]]]] = []
    if local:
        groups.append((LocalBackend(Path("/")), [(f, f.path.lstrip("/")) for f in local]))
    for f in files:
        if f.path.startswith(("http://", "https://")):
            copy = _url_copy(ws, f.path)
            groups.append((LocalBackend(copy.parent), [(f, copy.name)]))
    return groups


def _current(backend: StorageBackend, paths: Sequence[str]) -> dict[str, StoredFile]:
    """What the store holds now at each recorded path (absent paths are missing from the result).

    Local stores: one stat per file (no listing: a recorded file's folder may hold far more). Remote
    stores: one listing of the files' common folder, or one request per file when there are few."""
    root = backend.local_path("")
    found: dict[str, StoredFile] = {}
    if root is not None:
        base = str(root).rstrip("/")
        for path in paths:
            try:
                st = os.stat(f"{base}/{path}")
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(st.st_mode):
                found[path] = StoredFile(path, st.st_size, st.st_mtime_ns)
        return found
    if len(paths) <= 16:
        for path in paths:
            found.update({s.path: s for s in backend.list_files(path) if s.path == path})
        return found
    wanted = set(paths)
    return {s.path: s for s in backend.list_files(_common_folder(paths)) if s.path in wanted}


def _common_folder(paths: Sequence[str]) -> str:
    folders = [posixpath.dirname(p) for p in paths]
    if not folders or "" in folders:
        return ""
    return posixpath.commonpath(folders)


def check_files(ws: Workspace, record: DatasetRecord) -> None:
    """DataAccessError naming the first recorded file of `record` that is gone or changed."""
    locate_record(ws, record)


def record_files(files: Sequence[ResolvedFile]) -> list[dict[str, Any]]:
    return [f.to_json() for f in files]
