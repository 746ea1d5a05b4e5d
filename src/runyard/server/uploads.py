"""Upload sessions: a file of any size arrives in parts and appears at its path in one rename.

Why: one PUT of a whole file has to start again from byte 0 after a broken connection, and a per-file
limit on it failed a run after a 1.1 GiB step output had been computed (issue 10). A session is a folder
`<artifact root>/.runyard-uploads/<id>/` holding `meta.json` (the target path, the declared size, who
opened it) and `data`, which parts are written into at their offset. Writing at an offset makes a resent
part harmless: the same bytes land on the same place. Completing checks the size (and the sha256 the
client computed while reading), checks the path against the token again, and renames `data` into place.

Sessions outlive a server restart (they are files); those untouched for SESSION_MAX_AGE seconds are swept
when the next session opens. A completed session leaves its `meta.json` behind (marked done) until the
sweep, so a resent `complete` whose first answer was lost succeeds instead of failing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from runyard import config
from runyard.errors import ConflictError, InvalidInputError, NotFoundError
from runyard.server.auth import Principal
from runyard.server.errors import HTTPError, error_body
from runyard.store import ArtifactStore

UPLOADS_DIR = ".runyard-uploads"  # reserved: artifact paths may not start with it
SESSION_MAX_AGE = 24 * 3600.0
_ID = re.compile(r"^[0-9a-f]{32}$")


def too_large(size: int | None = None) -> HTTPError:
    limit = config.max_upload_bytes()
    what = f"This file ({size} bytes) is" if size is not None else "The file is"
    return HTTPError(
        413,
        error_body(
            "PayloadTooLarge",
            f"{what} larger than the server accepts: files are limited to {limit} bytes "
            "(RUNYARD_MAX_UPLOAD_BYTES on the server).",
        ),
    )


def _owner(who: Principal) -> str:
    return "auth-off" if who.auth_off else f"{who.scope}:{who.token_id}:{who.run_id}"


class UploadSessions:
    def __init__(self, artifacts: ArtifactStore) -> None:
        self.artifacts = artifacts
        if artifacts.is_local:  # same file system as the targets, so completing is one rename
            self.base = Path(artifacts._base) / UPLOADS_DIR
        else:
            tag = hashlib.sha256(artifacts.root.encode()).hexdigest()[:16]
            self.base = Path(tempfile.gettempdir()) / f"runyard-uploads-{tag}"

    # -- session records -------------------------------------------------------------------------
    def _folder(self, upload_id: str) -> Path:
        if not _ID.match(upload_id):
            raise NotFoundError(
                f"No upload session {upload_id[:40]!r}; open one with POST /api/v1/artifacts/uploads."
            )
        return self.base / upload_id

    def _meta(self, upload_id: str, who: Principal) -> dict[str, Any]:
        folder = self._folder(upload_id)
        try:
            meta = dict(json.loads((folder / "meta.json").read_text()))
        except (FileNotFoundError, ValueError):
            raise NotFoundError(
                f"No upload session {upload_id!r} (it was completed and swept, aborted, or never opened); "
                "open a new one with POST /api/v1/artifacts/uploads."
            ) from None
        if meta.get("owner") != _owner(who):
            raise NotFoundError(f"No upload session {upload_id!r} for this token.")
        return meta

    def received(self, upload_id: str) -> int:
        try:
            return (self._folder(upload_id) / "data").stat().st_size
        except FileNotFoundError:
            return 0

    def status(self, upload_id: str, who: Principal) -> dict[str, Any]:
        meta = self._meta(upload_id, who)
        received = meta["size"] if meta.get("done") else self.received(upload_id)
        return {
            "id": upload_id,
            "path": meta["path"],
            "size": meta["size"],
            "received": received,
            "done": bool(meta.get("done")),
        }

    # -- the steps of an upload ------------------------------------------------------------------
    def create(self, rel: str, size: int, who: Principal) -> dict[str, Any]:
        if size > config.max_upload_bytes():
            raise too_large(size)  # before any byte is sent, not after the work
        self.sweep()
        upload_id = uuid.uuid4().hex
        folder = self.base / upload_id
        folder.mkdir(parents=True)
        (folder / "data").touch()
        meta = {"path": rel, "size": size, "owner": _owner(who), "created": time.time()}
        (folder / "meta.json").write_text(json.dumps(meta))
        return {"id": upload_id, "path": rel, "size": size, "received": 0, "done": False}

    async def write_part(
        self, upload_id: str, offset: int, body: AsyncIterator[bytes], who: Principal
    ) -> int:
        """Write a part at `offset` (at most the bytes received so far: a resend overwrites the same
        bytes); returns how many bytes the session holds now."""
        meta = self._meta(upload_id, who)
        if meta.get("done"):
            raise ConflictError(f"Upload {upload_id} is already complete; open a new session to send more.")
        received = self.received(upload_id)
        if offset > received:
            raise ConflictError(
                f"Upload {upload_id} holds {received} bytes, so a part cannot start at {offset}; "
                f"resume from {received} (GET the session to read it)."
            )
        fd = os.open(self._folder(upload_id) / "data", os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            position = offset
            async for chunk in body:
                if position + len(chunk) > meta["size"]:
                    raise InvalidInputError(
                        f"Upload {upload_id} was opened for {meta['size']} bytes; this part goes past that. "
                        "Open a new session with the file's real size."
                    )
                view = memoryview(chunk)
                while view:
                    written = os.pwrite(fd, view, position)
                    position += written
                    view = view[written:]
        finally:
            os.close(fd)
        return self.received(upload_id)

    async def complete(self, upload_id: str, rel_checked: str, sha256: str | None, who: Principal) -> None:
        """Move the received bytes to `rel_checked` (the session's path, checked again by the caller)."""
        meta = self._meta(upload_id, who)
        if meta.get("done"):
            return  # a resent completion whose first answer was lost
        folder = self._folder(upload_id)
        data = folder / "data"
        received = self.received(upload_id)
        if received != meta["size"]:
            raise ConflictError(
                f"Upload {upload_id} holds {received} of {meta['size']} bytes; send the rest from offset "
                f"{received} before completing it."
            )
        if sha256:
            actual = await run_in_threadpool(_sha256, data)
            if actual != sha256.lower():
                self.abort(upload_id, who)
                raise InvalidInputError(
                    f"The {received} bytes received for {rel_checked!r} have sha256 {actual}, not {sha256}: "
                    "they were changed on the way or the file changed while it was read. Upload it again."
                )
        await run_in_threadpool(self._place, data, rel_checked)
        meta["done"] = True
        (folder / "meta.json").write_text(json.dumps(meta))

    def _place(self, data: Path, rel: str) -> None:
        if not self.artifacts.is_local:
            self.artifacts.put_file(rel, data)
            data.unlink()
            return
        target = self.artifacts.local_path(rel)  # confined again: a folder may have become a link
        target.parent.mkdir(parents=True, exist_ok=True)
        self.artifacts.local_path(rel)
        os.replace(data, target)

    def abort(self, upload_id: str, who: Principal) -> None:
        self._meta(upload_id, who)
        shutil.rmtree(self._folder(upload_id), ignore_errors=True)

    def sweep(self, max_age: float = SESSION_MAX_AGE) -> int:
        """Remove sessions nobody touched for `max_age` seconds (abandoned uploads, completed records)."""
        if not self.base.is_dir():
            return 0
        cutoff, removed = time.time() - max_age, 0
        for folder in self.base.iterdir():
            try:
                touched = max(p.stat().st_mtime for p in [folder, *folder.iterdir()])
            except (OSError, ValueError):
                continue
            if touched < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
                removed += 1
        return removed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()
