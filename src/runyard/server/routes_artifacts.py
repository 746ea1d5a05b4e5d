"""Artifacts and logs over HTTP: list, download (byte ranges, for tailing logs), upload, append.

Paths are relative to the workspace's artifact root and pass through `clean_relpath`, so `..`, absolute
and percent-encoded escapes are refused before any file is touched.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, BinaryIO

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from runyard import config
from runyard.errors import ConflictError, InvalidInputError
from runyard.server.auth import Principal
from runyard.server.errors import ERROR_RESPONSES, HTTPError, error_body, forbidden
from runyard.server.run_inputs import run_input_reader, run_may_read_input
from runyard.server.uploads import UPLOADS_DIR, UploadSessions, too_large
from runyard.store import ArtifactStore, SqlStore
from runyard.store.artifacts import clean_relpath

CHUNK_BYTES = 1024 * 1024  # what a download or an append moves at a time
SPOOL_BYTES = 1024 * 1024  # appends larger than this wait on disk, not in memory


class FileStat(BaseModel):
    path: str
    exists: bool
    size: int | None = None


class UploadSession(BaseModel):
    id: str
    path: str
    size: int
    received: int
    done: bool


def _check(store: SqlStore, who: Principal, rel: str, *, write: bool) -> str:
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in rel):
        raise InvalidInputError(f"Artifact path {rel!r} contains a control character (NUL, newline, ...).")
    rel = clean_relpath(rel)
    parts = rel.split("/")
    if parts[0] == UPLOADS_DIR:
        raise InvalidInputError(f"{UPLOADS_DIR}/ holds unfinished uploads; it is not an artifact path.")
    if parts[0] == "runs" and len(parts) >= 2:
        who.family_check(store, parts[1], write=write)
    elif who.scope == "run":
        _run_token_outside_runs(store, who, rel, parts, write=write)
    else:
        who.require("write" if write else "read")
    return rel


def _run_token_outside_runs(
    store: SqlStore, who: Principal, rel: str, parts: list[str], *, write: bool
) -> None:
    """A job sees its own family's step outputs (datastores/<store>/azureml/<run id>/...) and the models;
    never the snapshots (other experiments' code: jobs get theirs as local files, not over HTTP), other
    runs' outputs, or the list of every run's folder."""
    if parts[0] == "datastores" and len(parts) >= 4 and parts[2] == "azureml":
        who.family_check(store, parts[3], write=write)
        return
    if not write and parts[0] == "models":
        return
    reads_input = not write and parts[0] == "datastores" and len(parts) >= 2 and who.run_id is not None
    if reads_input and run_may_read_input(store, str(who.run_id), parts[1], "/".join(parts[2:])):
        return
    raise forbidden(
        f"A run token may only {'write' if write else 'read'} files of its own run family (runs/<run id>/... "
        f"and datastores/<store>/azureml/<run id>/...){'' if write else ', the data recorded as its inputs and models/'}, "
        f"not {rel!r}."
    )


def _range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse one `bytes=a-b` / `bytes=a-` / `bytes=-n` range; None means the whole file."""
    if not header:
        return None
    unit, _, spec = header.partition("=")
    start_s, dash, end_s = spec.partition("-")
    if unit.strip() != "bytes" or not dash or "," in spec:
        raise HTTPError(
            416, error_body("RangeNotSatisfiable", f"Unsupported Range {header!r}; use bytes=START-END.")
        )
    try:
        if start_s == "":
            start, end = max(0, size - int(end_s)), size - 1
        else:
            start = int(start_s)
            end = int(end_s) if end_s else size - 1
    except ValueError:
        raise HTTPError(416, error_body("RangeNotSatisfiable", f"Range {header!r} is not numeric.")) from None
    if start >= size or start < 0 or end < start:  # an empty file has no satisfiable range
        raise HTTPError(
            416, error_body("RangeNotSatisfiable", f"Range {header!r} is outside the file ({size} bytes).")
        )
    return start, min(end, size - 1)


@contextmanager
def _file_errors(rel: str) -> Iterator[None]:
    """A path the file system cannot take is the client's problem (4xx), not a server error."""
    try:
        yield
    except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
        raise ConflictError(
            f"{rel!r} clashes with an existing file or folder of the same name ({exc.strerror})."
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise InvalidInputError(
                f"Artifact path {rel[:80]!r}... has a name too long for a file."
            ) from None
        raise


def _not_a_folder(artifacts: ArtifactStore, rel: str) -> None:
    if artifacts.fs.isdir(artifacts._full(rel)):
        raise ConflictError(f"{rel!r} is a folder; write files inside it, e.g. {rel}/name.txt.")


def _request_limit() -> int:
    """One request body at most; whole files of any size go in upload sessions."""
    return min(config.max_request_bytes(), config.max_upload_bytes())


def _request_too_large(size: int | None = None) -> HTTPError:
    """One request carries at most a part; the message points larger files at upload sessions."""
    if config.max_upload_bytes() <= config.max_request_bytes():
        return too_large(size)
    return HTTPError(
        413,
        error_body(
            "PayloadTooLarge",
            f"One request carries at most {config.max_request_bytes()} bytes (RUNYARD_MAX_REQUEST_BYTES on "
            "the server). Send larger files in parts through an "
            "upload session (POST /api/v1/artifacts/uploads); runyard's own client does so by itself.",
        ),
    )


def _declared_size(request: Request) -> None:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > _request_limit():
        raise _request_too_large(int(declared))


async def limited_body(
    request: Request, limit: int, too_large: Callable[[], Exception], gone: Callable[[], Exception]
) -> AsyncIterator[bytes]:
    """The request body as it arrives, never held whole; `too_large()` is raised once it passes `limit`
    bytes, `gone()` when the client disconnects (what was written so far is then thrown away)."""
    total = 0
    try:
        async for chunk in request.stream():
            total += len(chunk)
            if total > limit:
                raise too_large()
            if chunk:
                yield chunk
    except ClientDisconnect:  # nobody is left to answer
        raise gone() from None


def _body(request: Request) -> AsyncIterator[bytes]:
    """runyard's own uploads: 413 once the body passes the limit of one request."""
    return limited_body(
        request,
        _request_limit(),
        _request_too_large,
        lambda: HTTPError(400, error_body("ClientDisconnect", "The client went away mid-upload.")),
    )


def artifact_router(store: SqlStore, artifacts: ArtifactStore, principal: Any) -> APIRouter:
    router = APIRouter(
        prefix="/api/v1/artifacts",
        responses={**ERROR_RESPONSES, 416: {"description": "Bad range"}},
        tags=["artifacts"],
    )
    auth = Depends(principal)
    sessions = UploadSessions(artifacts)
    sessions.sweep()  # uploads abandoned before the server last stopped (newer ones can still resume)
    _octets = {
        "requestBody": {
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
        }
    }

    @router.get("", response_model=list[str])
    def list_files(prefix: str = Query(..., min_length=1), who: Principal = auth) -> list[str]:
        rel = _check(store, who, prefix, write=False)
        names = artifacts.list(rel)
        parts = rel.split("/")
        own_outputs = len(parts) >= 4 and parts[2] == "azureml"
        if (
            who.scope == "run"
            and who.run_id
            and parts[0] == "datastores"
            and len(parts) >= 2
            and not own_outputs
        ):
            # A listing is recursive: a run token reading its input glob's folder sees only what it
            # may read, not the names of every other file below that folder.
            readable = run_input_reader(store, who.run_id, parts[1])
            base = "/".join(parts[2:])
            names = [n for n in names if readable(f"{base}/{n}" if base else n)]
        return names

    @router.get("/stat", response_model=FileStat)
    def stat(path: str = Query(..., min_length=1), who: Principal = auth) -> FileStat:
        rel = _check(store, who, path, write=False)
        exists = artifacts.exists(rel)
        return FileStat(path=rel, exists=exists, size=artifacts.size(rel) if exists else None)

    @router.get(
        "/file",
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            206: {"content": {"application/octet-stream": {}}},
        },
    )
    def download(request: Request, path: str = Query(..., min_length=1), who: Principal = auth) -> Response:
        rel = _check(store, who, path, write=False)
        fh, size = artifacts.open_read(rel)  # open once: the size and the bytes are of the same file
        try:
            wanted = _range(request.headers.get("range"), size)
        except BaseException:
            fh.close()
            raise
        start, end = wanted if wanted is not None else (0, size - 1)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(end - start + 1)}
        if wanted is not None:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return StreamingResponse(  # constant memory: 1 MiB at a time, however large the file
            _pieces(fh, start, end - start + 1),
            status_code=200 if wanted is None else 206,
            media_type="application/octet-stream",
            headers=headers,
        )

    @router.put(
        "/file",
        status_code=204,
        openapi_extra={
            "requestBody": {
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            }
        },
    )
    async def upload(request: Request, path: str = Query(..., min_length=1), who: Principal = auth) -> None:
        rel = _check(store, who, path, write=True)
        _declared_size(request)
        with _file_errors(rel):
            _not_a_folder(artifacts, rel)
            with artifacts.writer(rel) as fh:  # streamed into a temporary file, renamed into place
                async for chunk in _body(request):
                    fh.write(chunk)

    @router.post(
        "/append",
        status_code=204,
        openapi_extra={
            "requestBody": {
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
            }
        },
    )
    async def append(
        request: Request,
        path: str = Query(..., min_length=1),
        offset: int = Query(..., ge=0),
        who: Principal = auth,
    ) -> None:
        """Append to a growing file (a log being tailed), only if it is `offset` bytes long now."""
        rel = _check(store, who, path, write=True)
        _declared_size(request)
        if not artifacts.is_local:
            raise InvalidInputError("Appending needs a local artifact root on the server.")
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:  # all or nothing is appended
            async for chunk in _body(request):
                spool.write(chunk)
            spool.seek(0)
            await run_in_threadpool(_append, artifacts, rel, offset, spool)

    # -- upload sessions: any size, in parts, resumable (server/uploads.py says why) ----------------
    @router.post("/uploads", status_code=201, response_model=UploadSession)
    def open_upload(
        path: str = Query(..., min_length=1), size: int = Query(..., ge=0), who: Principal = auth
    ) -> UploadSession:
        rel = _check(store, who, path, write=True)
        with _file_errors(rel):
            _not_a_folder(artifacts, rel)
        return UploadSession(**sessions.create(rel, size, who))

    @router.get("/uploads/{upload_id}", response_model=UploadSession)
    def upload_status(upload_id: str, who: Principal = auth) -> UploadSession:
        return UploadSession(**sessions.status(upload_id, who))

    @router.put("/uploads/{upload_id}", response_model=UploadSession, openapi_extra=_octets)
    async def upload_part(
        request: Request, upload_id: str, offset: int = Query(..., ge=0), who: Principal = auth
    ) -> UploadSession:
        """One part, written at `offset`: sending a part again (its answer was lost) writes the same bytes."""
        _declared_size(request)
        # an error answered mid-part (404: start over; 409: resume) still reaches the client: httpx reads
        # the answer when the server stops reading its body
        await sessions.write_part(upload_id, offset, _body(request), who)
        return UploadSession(**sessions.status(upload_id, who))

    @router.post("/uploads/{upload_id}/complete", status_code=204)
    async def complete_upload(
        upload_id: str, sha256: str | None = Query(None, pattern="^[0-9a-fA-F]{64}$"), who: Principal = auth
    ) -> None:
        """Check the size (and sha256) and rename the bytes into place; the path is checked again, since
        the token's rights or the folders may have changed while the parts were sent."""
        rel = _check(store, who, sessions.status(upload_id, who)["path"], write=True)
        with _file_errors(rel):
            _not_a_folder(artifacts, rel)
            await sessions.complete(upload_id, rel, sha256, who)

    @router.delete("/uploads/{upload_id}", status_code=204)
    def abort_upload(upload_id: str, who: Principal = auth) -> None:
        sessions.abort(upload_id, who)

    return router


def _append(artifacts: ArtifactStore, rel: str, offset: int, data: IO[bytes]) -> None:
    with _file_errors(rel):
        _not_a_folder(artifacts, rel)
        current = artifacts.size(rel) if artifacts.exists(rel) else 0
        if current != offset:
            raise ConflictError(
                f"{rel} is {current} bytes, not {offset}; re-read its size and append from there."
            )
        target = artifacts.local_path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_NOFOLLOW: a link put in place after the check above is refused, not followed
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        with os.fdopen(os.open(target, flags, 0o644), "ab") as fh:
            shutil.copyfileobj(data, fh, CHUNK_BYTES)


def _pieces(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    try:
        fh.seek(start)
        while length > 0:
            piece = fh.read(min(CHUNK_BYTES, length))
            if not piece:
                break
            length -= len(piece)
            yield piece
    finally:
        fh.close()
