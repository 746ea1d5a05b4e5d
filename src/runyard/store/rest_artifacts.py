"""Artifacts of a workspace served by `runyard server`, with a local mirror for processes.

A process on this machine (a script run, a pipeline step) writes its logs and outputs to real files;
for a remote workspace those files live in a local mirror folder, and `sync()` sends what changed
to the server — appending to files that grew (logs), uploading files that are new or rewritten.
Reads go to the server, so every client sees the same bytes. Requests ride out a server restart
(store/rest_http.py): uploads replace whole files and appends name their offset, so both are safe to send
again.

Memory stays constant whatever the file size: bodies are streamed from disk a piece at a time, downloads
arrive in ranges written straight to disk, and a file larger than one part (config.upload_part_bytes)
goes through an upload session (server/uploads.py): parts written at their offset, so a part whose
connection broke is simply sent again, then one `complete` that checks size and sha256 and renames.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from runyard import config
from runyard.errors import ConflictError, NotFoundError
from runyard.store.artifacts import clean_relpath, put_tree
from runyard.store.rest_http import HttpClient

PIECE_BYTES = 1024 * 1024  # what is read from disk (or the network) at a time


class RestArtifactStore:
    is_local = False

    def __init__(self, root: str, token: str | None, mirror: Path) -> None:
        self.root = root.rstrip("/")
        self.http = HttpClient(self.root, token, timeout=300)
        self.mirror = mirror
        # rel → (size, mtime_ns, inode, device) last sent: a file replaced by a new one (written aside
        # and os.replace'd, as progress.json is every second) has a new inode and is sent whole
        self._sent: dict[str, tuple[int, int, int, int]] = {}
        self._lock = threading.Lock()

    # -- writes ---------------------------------------------------------------------------------
    def put_bytes(self, rel: str, data: bytes) -> None:
        if len(data) <= config.upload_part_bytes():
            self.http.request(
                "PUT", "/api/v1/artifacts/file", params={"path": clean_relpath(rel)}, content=data
            )
        else:
            self._upload(clean_relpath(rel), io.BytesIO(data), len(data))

    def put_file(self, rel: str, src: str | os.PathLike[str]) -> None:
        """Send a file of any size, reading it a piece at a time (the size is taken when sending starts:
        bytes a growing log gains meanwhile go with the next sync)."""
        rel = clean_relpath(rel)
        with open(src, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size <= config.upload_part_bytes():
                self.http.request(
                    "PUT",
                    "/api/v1/artifacts/file",
                    params={"path": rel},
                    content=_reader(fh, 0, size, None),
                    headers={"Content-Length": str(size)},
                )
            else:
                self._upload(rel, fh, size)

    def _upload(self, rel: str, fh: IO[bytes], size: int) -> None:
        """An upload session; started over once if the server lost it (swept, or its folder restored)."""
        try:
            self._send_session(rel, fh, size)
        except NotFoundError:
            print(
                f"runyard: the server lost the upload of {rel}; sending it again", file=sys.stderr, flush=True
            )
            self._send_session(rel, fh, size)

    def _send_session(self, rel: str, fh: IO[bytes], size: int) -> None:
        """Parts in order, each resent on its own after a broken connection (the server writes at the
        part's offset); resumed from what the server holds after a 409."""
        base = "/api/v1/artifacts/uploads"
        # safe to repeat: a session opened twice leaves one unused, which the server sweeps
        opened = self.http.request("POST", base, params={"path": rel, "size": size}, retry=True)
        upload_id = opened.json()["id"]
        part, digest, offset = config.upload_part_bytes(), hashlib.sha256(), 0
        while offset < size:
            length = min(part, size - offset)
            attempt: list[Any] = []  # the digest of the attempt that went through
            try:
                self.http.request(
                    "PUT",
                    f"{base}/{upload_id}",
                    params={"offset": offset},
                    content=_reader(fh, offset, length, digest, attempt),
                    headers={"Content-Length": str(length)},
                )
            except _Shrunk:
                raise
            except ConflictError:  # the server holds fewer bytes than we thought: resume from there
                held = int(self.http.request("GET", f"{base}/{upload_id}").json()["received"])
                if held > offset:
                    raise
                digest = _digest_of(fh, held)  # rehash up to there: cheap next to resending it all
                offset = held
                continue
            digest, offset = attempt[-1], offset + length
        self.http.request(
            "POST", f"{base}/{upload_id}/complete", params={"sha256": digest.hexdigest()}, retry=True
        )

    def put_dir(self, rel: str, src_dir: str | os.PathLike[str]) -> list[str]:
        return put_tree(self.put_file, rel, src_dir)

    # -- reads ----------------------------------------------------------------------------------
    def _stat(self, rel: str) -> dict[str, object]:
        return dict(
            self.http.request("GET", "/api/v1/artifacts/stat", params={"path": clean_relpath(rel)}).json()
        )

    def exists(self, rel: str) -> bool:
        return bool(self._stat(rel)["exists"])

    def size(self, rel: str) -> int:
        stat = self._stat(rel)
        if not stat["exists"]:
            raise NotFoundError(f"No file {rel!r} on the server {self.root}.")
        return int(stat["size"])  # type: ignore[call-overload]

    def list(self, prefix: str) -> list[str]:
        return list(
            self.http.request("GET", "/api/v1/artifacts", params={"prefix": clean_relpath(prefix)}).json()
        )

    def read_bytes(self, rel: str, offset: int = 0, length: int | None = None) -> bytes:
        headers = {}
        if offset or length is not None:
            end = "" if length is None else str(offset + length - 1)
            headers["Range"] = f"bytes={offset}-{end}"
        try:
            response = self.http.request(
                "GET", "/api/v1/artifacts/file", params={"path": clean_relpath(rel)}, headers=headers
            )
        except NotFoundError:
            raise NotFoundError(f"No file {rel!r} on the server {self.root}.") from None
        except Exception as exc:  # 416: reading past the end of a growing log means "nothing new yet"
            if "outside the file" in str(exc):
                return b""
            raise
        return response.content

    def get_file(self, rel: str, dest: str | os.PathLike[str]) -> None:
        """Download to `dest` a range at a time, each streamed straight to disk (a range whose connection
        broke is fetched again); the file appears at `dest` in one rename."""
        size = self.size(rel)
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        # A name of its own per download: two readers of one file (parallel dataset reads) must not
        # write into, rename or remove each other's partial copy.
        tmp = target.with_name(f".{target.name}.part-{uuid.uuid4().hex[:12]}")
        step = config.upload_part_bytes()
        try:
            self._download_to(rel, tmp, size, step)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _download_to(self, rel: str, tmp: Path, size: int, step: int) -> None:
        with tmp.open("wb") as out:
            for start in range(0, size, step):
                end = min(start + step, size) - 1

                def write(response: httpx.Response, start: int = start) -> None:
                    out.seek(start)
                    out.truncate()
                    for piece in response.iter_bytes(PIECE_BYTES):
                        out.write(piece)

                response = self.http.request(
                    "GET",
                    "/api/v1/artifacts/file",
                    params={"path": clean_relpath(rel)},
                    headers={"Range": f"bytes={start}-{end}"},
                    sink=write,
                )
                total = response.headers.get("content-range", "").rpartition("/")[2]
                if total != str(size) or out.tell() != end + 1:
                    raise ConflictError(
                        f"{rel!r} on the server changed while it was downloaded ({size} bytes at first, now "
                        f"{total or 'unknown'}); download it again once it is written."
                    )

    def copy_tree_local(self, rel: str, dest: Path) -> None:
        names = self.list(rel)
        if not names:
            self.get_file(rel, dest)
            return
        for name in names:
            self.get_file(f"{clean_relpath(rel)}/{name}", dest / name)

    # -- the local mirror ---------------------------------------------------------------------------
    def local_path(self, rel: str) -> Path:
        """Where a local process writes `rel`; `sync()` sends it to the server."""
        return self.mirror / clean_relpath(rel)

    def fetch(self, rel: str) -> Path:
        """Make `rel` (a file or folder on the server) present in the mirror and return its local path."""
        target = self.local_path(rel)
        if not target.exists():
            self.copy_tree_local(rel, target)
        return target

    def sync(self, prefix: str) -> int:
        """Send files under `prefix` that changed since the last sync; returns how many were sent."""
        base = self.local_path(prefix)
        sent = 0
        with self._lock:
            for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()):
                rel = path.relative_to(self.mirror).as_posix()
                st = path.stat()
                now = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
                before = self._sent.get(rel)
                if before == now:
                    continue
                if before and before[2:] == now[2:] and st.st_size > before[0]:
                    try:
                        self._append(rel, path, before[0], st.st_size, now[2:])
                    except ConflictError:
                        self.put_file(rel, path)
                else:
                    self.put_file(rel, path)
                self._sent[rel] = now
                sent += 1
        return sent

    def _append(self, rel: str, path: Path, start: int, end: int, identity: tuple[int, int]) -> None:
        """Send bytes start..end of a grown file as appends of at most one part, streamed from disk.
        The file opened must be the one stat'ed (same inode and device): one replaced in between is
        another file, whose bytes after `start` do not continue the server's copy."""
        part = config.upload_part_bytes()
        with path.open("rb") as fh:
            opened = os.fstat(fh.fileno())
            if (opened.st_ino, opened.st_dev) != identity:
                raise ConflictError(f"{rel} was replaced while being sent; it is sent whole")
            for offset in range(start, end, part):
                length = min(part, end - offset)
                self.http.request(
                    "POST",
                    "/api/v1/artifacts/append",
                    params={"path": rel, "offset": offset},
                    content=_reader(fh, offset, length, None),
                    headers={"Content-Length": str(length)},
                    # safe to repeat: an append that was applied makes the repeat's offset
                    # stale, the server answers 409, and the whole file is sent instead
                    retry=True,
                )


class _Shrunk(ConflictError):
    """The file being sent lost bytes meanwhile (rewritten): sending the same offsets again cannot help."""


def _reader(
    fh: IO[bytes], offset: int, length: int, digest: Any, attempts: list[Any] | None = None
) -> Callable[[], Iterator[bytes]]:
    """A body for HttpClient: each call reads bytes offset..offset+length of `fh` afresh, a piece at a
    time, and (given a digest) appends to `attempts` a copy of it updated with what it sent."""

    def body() -> Iterator[bytes]:
        mine = digest.copy() if digest is not None else None
        if attempts is not None:
            attempts.append(mine)
        fh.seek(offset)
        left = length
        while left > 0:
            piece = fh.read(min(PIECE_BYTES, left))
            if not piece:
                raise _Shrunk(
                    f"{getattr(fh, 'name', 'the file')} became shorter while it was uploaded "
                    f"(expected {offset + length} bytes); it is sent again at the next sync."
                )
            if mine is not None:
                mine.update(piece)
            left -= len(piece)
            yield piece

    return body


def _digest_of(fh: IO[bytes], length: int) -> Any:
    digest = hashlib.sha256()
    for piece in _reader(fh, 0, length, None)():
        digest.update(piece)
    return digest


class MirrorSync:
    """Syncs a run's mirrored folder to the server every `interval` seconds while a process runs."""

    def __init__(self, artifacts: RestArtifactStore, prefix: str, interval: float = 1.0) -> None:
        self.artifacts, self.prefix, self.interval = artifacts, prefix, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="runyard-mirror-sync")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.artifacts.sync(self.prefix)
            except Exception as exc:  # the server may be briefly away; the final sync reports errors
                print(f"runyard: could not sync {self.prefix} yet: {exc}", flush=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.artifacts.sync(self.prefix)
