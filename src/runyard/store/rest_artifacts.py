"""Artifacts of a workspace served by `runyard server`, with a local mirror for processes.

A process on this machine (a script run, a pipeline step) writes its logs and outputs to real files;
for a remote workspace those files live in a local mirror folder, and `sync()` sends what changed
to the server — appending to files that grew (logs), uploading files that are new or rewritten.
Reads go to the server, so every client sees the same bytes. Requests ride out a server restart
(store/rest_http.py): uploads replace whole files and appends name their offset, so both are safe to send
again.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from runyard.errors import ConflictError, NotFoundError
from runyard.store.artifacts import clean_relpath, put_tree
from runyard.store.rest_http import HttpClient


class RestArtifactStore:
    is_local = False

    def __init__(self, root: str, token: str | None, mirror: Path) -> None:
        self.root = root.rstrip("/")
        self.http = HttpClient(self.root, token, timeout=300)
        self.mirror = mirror
        self._sent: dict[str, tuple[int, int]] = {}  # rel → (size, mtime_ns) last sent
        self._lock = threading.Lock()

    # -- writes ---------------------------------------------------------------------------------
    def put_bytes(self, rel: str, data: bytes) -> None:
        self.http.request("PUT", "/api/v1/artifacts/file", params={"path": clean_relpath(rel)}, content=data)

    def put_file(self, rel: str, src: str | os.PathLike[str]) -> None:
        with open(src, "rb") as fh:
            self.http.request(
                "PUT", "/api/v1/artifacts/file", params={"path": clean_relpath(rel)}, content=fh.read()
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
        data = self.read_bytes(rel)
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(data)
        os.replace(tmp, target)

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
                before = self._sent.get(rel)
                if before == (st.st_size, st.st_mtime_ns):
                    continue
                if before and st.st_size > before[0]:
                    with path.open("rb") as fh:
                        fh.seek(before[0])
                        chunk = fh.read(st.st_size - before[0])
                    try:
                        self.http.request(
                            "POST",
                            "/api/v1/artifacts/append",
                            params={"path": rel, "offset": before[0]},
                            content=chunk,
                            # safe to repeat: an append that was applied makes the repeat's offset
                            # stale, the server answers 409, and the whole file is sent instead
                            retry=True,
                        )
                    except ConflictError:
                        self.put_file(rel, path)
                else:
                    self.put_file(rel, path)
                self._sent[rel] = (st.st_size, st.st_mtime_ns)
                sent += 1
        return sent


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
