"""MLflow's artifact proxy (`mlflow-artifacts:` URIs) over the workspace's artifact store, as
`mlflow server --serve-artifacts` answers it:

    GET    /api/2.0/mlflow-artifacts/artifacts?path=P        list P's children: {"files": [{path, is_dir, file_size}]}
    GET    /api/2.0/mlflow-artifacts/artifacts/P             download P (streamed; byte ranges)
    PUT    /api/2.0/mlflow-artifacts/artifacts/P             upload P (streamed into a temporary file, renamed)
    DELETE /api/2.0/mlflow-artifacts/artifacts/P             delete the file or folder P
    POST   /api/2.0/mlflow-artifacts/mpu/{create,complete,abort}/P   multipart uploads

P is the artifact store's relative path, one to one (contract §1): a run's MLflow artifact root is its
runyard file root `runs/<run id>`, a logged model's is `logged_models/<model id>`. Nothing else is served,
and the caller is checked against that run (a run token: its own run family; a read token never writes)
or the model's source run. Paths pass `clean_relpath` and the store's symbolic-link confinement, as on
runyard's own artifact routes, whose streaming helpers these routes share: memory stays flat for files
of any size, in both directions.

Multipart uploads (MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD): MLflow's client asks for one URL per part,
PUTs the parts (in parallel, in any order), then completes. Here each part's URL points back at this
server (`.../mpu/part/<upload id>/<n>`), carries the caller's own Authorization header, and is written to
its own file in the upload folder (server/uploads.py's area); completing streams the parts, in order,
through the store's writer into place. Errors come out in MLflow's shape (routes_mlflow.install).
"""

from __future__ import annotations

import json
import mimetypes
import os
import posixpath
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from runyard import config
from runyard.errors import InvalidInputError, NotFoundError
from runyard.mlflow_api.dispatch import MlflowContext
from runyard.mlflow_api.errors import MlflowError, invalid, missing
from runyard.mlflow_api.logged_models import _check as check_model_access
from runyard.server.auth import Principal
from runyard.server.routes_artifacts import _file_errors, _not_a_folder, _pieces, _range, limited_body
from runyard.server.routes_mlflow import ServerCaller, artifact_uri
from runyard.server.uploads import UPLOADS_DIR, UploadSessions, too_large
from runyard.store import ArtifactStore, SqlStore
from runyard.store.artifacts import clean_relpath

PREFIX = "/api/2.0/mlflow-artifacts"
SERVED = ("runs", "logged_models")
COPY_BYTES = 8 * 1024 * 1024
_MPU_ID = re.compile(r"^mpu-[0-9a-f]{32}$")


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateMultipart(Body):
    path: str = Field(min_length=1)
    num_parts: int = Field(default=1, ge=1, le=10_000)


class Part(Body):
    part_number: int = Field(ge=1)
    etag: str = ""
    url: str = ""


class CompleteMultipart(Body):
    path: str = Field(min_length=1)
    upload_id: str = Field(min_length=1)
    parts: list[Part] = Field(min_length=1)


class AbortMultipart(Body):
    path: str = Field(min_length=1)
    upload_id: str = Field(min_length=1)


def mlflow_artifact_router(store: SqlStore, artifacts: ArtifactStore, principal: Any) -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["mlflow"])
    auth = Depends(principal)
    sessions = UploadSessions(artifacts)
    uploads_base = sessions.base  # the same private area runyard's upload sessions use (and its sweep)
    held = _MpuHeld()

    def target(who: Principal, path: str, *, write: bool, delete: bool = False) -> str:
        """The store path behind an MLflow artifact path, after the caller's check."""
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in path):
            raise invalid("Invalid path")
        try:
            rel = clean_relpath(path) if path.strip("/") else ""
        except InvalidInputError:
            raise invalid("Invalid path") from None  # MLflow's wording for a path that escapes
        parts = rel.split("/")
        if parts[0] not in SERVED or len(parts) < 2:
            raise MlflowError(
                "PERMISSION_DENIED",
                f"Artifact path {rel or '/'!r} is outside what this server's MLflow artifact proxy serves: "
                "the artifacts of a run (runs/<run id>/...) or of a logged model (logged_models/<model id>/...).",
            )
        ctx = MlflowContext(store=store, caller=ServerCaller(who), artifact_uri=artifact_uri)
        if parts[0] == "runs":
            try:
                store.get_run(parts[1])
            except NotFoundError:
                raise missing(f"Run with id={parts[1]} not found") from None
            ctx.caller.family_check(store, parts[1], write=write)
            if delete:  # a pipeline's or step's files: only its submitter (server/run_guard.py)
                ctx.caller.check_run_write(store, parts[1], data={"deleteArtifacts": rel})
        else:
            model = store.get_logged_model(parts[1])
            check_model_access(ctx, model, write=write)
            if delete and model.source_run_id:
                ctx.caller.check_run_write(store, model.source_run_id, data={"deleteArtifacts": rel})
        return rel

    # -- listing ---------------------------------------------------------------------------------
    @router.get("/artifacts")
    def list_artifacts(path: str | None = Query(None), who: Principal = auth) -> Response:
        rel = target(who, path or "", write=False)
        files = _children(artifacts, rel)
        return JSONResponse({"files": files} if files else {})

    # -- one file --------------------------------------------------------------------------------
    @router.get("/artifacts/{path:path}")
    def download(path: str, request: Request, who: Principal = auth) -> Response:
        rel = target(who, path, write=False)
        if artifacts.fs.isdir(artifacts._full(rel)):
            raise invalid(f"Artifact path refers to a directory, not a file: '{path}'")
        try:
            fh, size = artifacts.open_read(rel)
        except NotFoundError:
            raise missing(f"No such artifact: '{path}'") from None
        try:
            wanted = _range(request.headers.get("range"), size)
        except BaseException:
            fh.close()
            raise
        start, end = wanted if wanted is not None else (0, size - 1)
        name = posixpath.basename(rel)
        headers = {
            "Accept-Ranges": "bytes",
            "Content-Length": str(max(0, end - start + 1)),
            # percent-encoded (RFC 6266): a header must stay latin-1, whatever the file is called
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}",
        }
        if wanted is not None:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return StreamingResponse(
            _pieces(fh, start, end - start + 1),
            status_code=200 if wanted is None else 206,
            media_type=media,
            headers=headers,
        )

    @router.put("/artifacts/{path:path}")
    async def upload(path: str, request: Request, who: Principal = auth) -> Response:
        rel = await run_in_threadpool(target, who, path, write=True)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > config.max_upload_bytes():
            raise too_large(int(declared))
        with _file_errors(rel):
            _not_a_folder(artifacts, rel)
            with artifacts.writer(rel) as fh:  # a temporary file, renamed into place at the end
                async for chunk in _stream(request):
                    fh.write(chunk)
        return JSONResponse({})

    @router.delete("/artifacts/{path:path}")
    def delete(path: str, who: Principal = auth) -> Response:
        rel = target(who, path, write=True, delete=True)
        full = artifacts._full(rel)
        if artifacts.fs.exists(full):
            artifacts.fs.rm(full, recursive=True)
        return JSONResponse({})

    # -- multipart uploads -----------------------------------------------------------------------
    def mpu_folder(upload_id: str) -> Path:
        if not _MPU_ID.match(upload_id):
            raise missing(f"No multipart upload {upload_id[:48]!r}; start one with mpu/create.")
        return uploads_base / upload_id

    def mpu_meta(upload_id: str, who: Principal) -> dict[str, Any]:
        try:
            meta = dict(json.loads((mpu_folder(upload_id) / "meta.json").read_text()))
        except (FileNotFoundError, ValueError):
            raise missing(
                f"No multipart upload {upload_id!r} (completed, aborted or never started)."
            ) from None
        if meta.get("owner") != _owner(who):
            raise missing(f"No multipart upload {upload_id!r} for this token.")
        return meta

    @router.post("/mpu/create/{path:path}")
    def mpu_create(path: str, body: CreateMultipart, request: Request, who: Principal = auth) -> Response:
        rel = target(who, posixpath.join(path, posixpath.basename(body.path)), write=True)
        with _file_errors(rel):
            _not_a_folder(artifacts, rel)
        sessions.sweep()  # abandoned uploads expire like upload sessions (SESSION_MAX_AGE untouched)
        held.forget_missing(uploads_base)
        upload_id = f"mpu-{uuid.uuid4().hex}"
        folder = uploads_base / upload_id
        folder.mkdir(parents=True)
        (folder / "meta.json").write_text(
            json.dumps({"path": rel, "owner": _owner(who), "parts": body.num_parts})
        )
        base = str(request.base_url).rstrip("/")
        headers = (
            {"Authorization": request.headers["authorization"]} if "authorization" in request.headers else {}
        )
        credentials = [
            {"url": f"{base}{PREFIX}/mpu/part/{upload_id}/{n}", "part_number": n, "headers": headers}
            for n in range(1, body.num_parts + 1)
        ]
        return JSONResponse({"upload_id": upload_id, "credentials": credentials})

    @router.put("/mpu/part/{upload_id}/{part_number}")
    async def mpu_part(upload_id: str, part_number: int, request: Request, who: Principal = auth) -> Response:
        meta = mpu_meta(upload_id, who)
        if not 1 <= part_number <= int(meta["parts"]):
            raise invalid(f"Part {part_number} is outside this upload's {meta['parts']} parts.")
        folder = mpu_folder(upload_id)
        part = folder / f"part-{part_number:05d}"
        tmp = part.with_name(f"{part.name}.tmp-{uuid.uuid4().hex[:8]}")
        limit = config.max_upload_bytes()
        declared = request.headers.get("content-length")
        held.begin(upload_id, folder, part_number, tmp.name)
        try:
            if declared and declared.isdigit() and held.total(upload_id) + int(declared) > limit:
                raise too_large(held.total(upload_id) + int(declared))
            with tmp.open("wb") as fh:
                async for chunk in _stream(request):
                    if held.grow(upload_id, tmp.name, len(chunk)) > limit:
                        raise too_large()  # the parts together pass the per-file limit
                    fh.write(chunk)
            os.replace(tmp, part)
            held.stored(upload_id, part_number, part.stat().st_size)
        finally:
            held.end(upload_id, tmp.name)
            tmp.unlink(missing_ok=True)
        return Response(status_code=200, headers={"ETag": f'"{upload_id}-{part_number}"'})

    @router.post("/mpu/complete/{path:path}")
    async def mpu_complete(path: str, body: CompleteMultipart, who: Principal = auth) -> Response:
        meta = mpu_meta(body.upload_id, who)
        rel = await run_in_threadpool(target, who, meta["path"], write=True)  # rights may have changed
        folder = mpu_folder(body.upload_id)
        numbers = sorted(p.part_number for p in body.parts)
        if numbers != list(range(1, len(numbers) + 1)):
            raise invalid(f"Parts {numbers} are not 1..n without gaps; send every part, then complete.")
        pieces = [folder / f"part-{n:05d}" for n in numbers]
        absent = [p.name for p in pieces if not p.exists()]
        if absent:
            raise invalid(f"Multipart upload {body.upload_id} has not received {', '.join(absent)}.")
        total = sum(p.stat().st_size for p in pieces)
        if total > config.max_upload_bytes():
            shutil.rmtree(folder, ignore_errors=True)
            held.forget(body.upload_id)
            raise too_large(total)
        await run_in_threadpool(_assemble, artifacts, rel, pieces)
        shutil.rmtree(folder, ignore_errors=True)
        held.forget(body.upload_id)
        return JSONResponse({})

    @router.post("/mpu/abort/{path:path}")
    def mpu_abort(path: str, body: AbortMultipart, who: Principal = auth) -> Response:
        mpu_meta(body.upload_id, who)
        shutil.rmtree(mpu_folder(body.upload_id), ignore_errors=True)
        held.forget(body.upload_id)
        return JSONResponse({})

    return router


class _MpuHeld:
    """The bytes each multipart upload holds: its stored parts plus the parts arriving now, so parts are
    held to the per-file limit as they arrive (a running total per upload) and one caller cannot park
    num_parts x the limit before `complete` looks. The server is one process and parts arrive on its
    event loop (no await between a check and its update), so plain dicts suffice; an upload this process
    has not seen (after a restart) starts from its part files on disk. A part sent again counts once: its
    stored copy is left out while the new one arrives."""

    def __init__(self) -> None:
        self._stored: dict[str, dict[int, int]] = {}  # upload -> part number -> bytes on disk
        self._sum: dict[str, int] = {}  # upload -> the stored parts' total
        self._arriving: dict[str, dict[str, tuple[int, int]]] = {}  # upload -> temp name -> (part, bytes)

    def begin(self, upload_id: str, folder: Path, part: int, key: str) -> None:
        if upload_id not in self._stored:
            found = {int(p.name[5:]): p.stat().st_size for p in folder.glob("part-[0-9][0-9][0-9][0-9][0-9]")}
            self._stored[upload_id], self._sum[upload_id] = found, sum(found.values())
        self._arriving.setdefault(upload_id, {})[key] = (part, 0)

    def total(self, upload_id: str) -> int:
        arriving = self._arriving.get(upload_id, {})
        stored = self._stored.get(upload_id, {})
        resent = sum(stored.get(n, 0) for n in {part for part, _ in arriving.values()})
        return self._sum.get(upload_id, 0) - resent + sum(b for _, b in arriving.values())

    def grow(self, upload_id: str, key: str, size: int) -> int:
        part, sofar = self._arriving[upload_id][key]
        self._arriving[upload_id][key] = (part, sofar + size)
        return self.total(upload_id)

    def stored(self, upload_id: str, part: int, size: int) -> None:
        stored = self._stored.setdefault(upload_id, {})
        self._sum[upload_id] = self._sum.get(upload_id, 0) - stored.get(part, 0) + size
        stored[part] = size

    def end(self, upload_id: str, key: str) -> None:
        arriving = self._arriving.get(upload_id, {})
        arriving.pop(key, None)
        if not arriving:
            self._arriving.pop(upload_id, None)

    def forget(self, upload_id: str) -> None:
        self._stored.pop(upload_id, None)
        self._sum.pop(upload_id, None)
        self._arriving.pop(upload_id, None)

    def forget_missing(self, base: Path) -> None:
        """Drop the uploads whose folder is gone (swept); list() copies the keys in one step."""
        for upload_id in list(self._stored):
            if not (base / upload_id).is_dir():
                self.forget(upload_id)


def _owner(who: Principal) -> str:
    return "auth-off" if who.auth_off else f"{who.scope}:{who.token_id}:{who.run_id}"


def _assemble(artifacts: ArtifactStore, rel: str, pieces: list[Path]) -> None:
    """The parts, in order, streamed into `rel` through the store's writer (one rename at the end)."""
    with _file_errors(rel):
        _not_a_folder(artifacts, rel)
        with artifacts.writer(rel) as out:
            for piece in pieces:
                with piece.open("rb") as fh:
                    shutil.copyfileobj(fh, out, COPY_BYTES)


def _stream(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, never held whole. MLflow's client sends a whole file in one PUT,
    so the limit is the per-file one (RUNYARD_MAX_UPLOAD_BYTES), not the per-request one."""
    return limited_body(
        request,
        config.max_upload_bytes(),
        too_large,
        lambda: invalid("The client went away mid-upload; nothing was stored."),
    )


def _children(artifacts: ArtifactStore, rel: str) -> list[dict[str, Any]]:
    """The entries directly under `rel` as MLflow lists them (name, is_dir, file_size for files); empty
    for a file or a missing folder. Symbolic links and unfinished uploads are never listed."""
    full = artifacts._full(rel)
    out: list[dict[str, Any]] = []
    if artifacts.is_local:
        if os.path.islink(full) or not os.path.isdir(full):
            return []
        with os.scandir(full) as entries:
            for entry in entries:
                if entry.is_symlink() or ".tmp-" in entry.name or entry.name == UPLOADS_DIR:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    out.append({"path": entry.name, "is_dir": True})
                elif entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    out.append({"path": entry.name, "is_dir": False, "file_size": size})
    else:
        if not artifacts.fs.isdir(full):
            return []
        for info in artifacts.fs.ls(full, detail=True):
            name = posixpath.basename(str(info["name"]).rstrip("/"))
            if ".tmp-" in name or not name:
                continue
            if info.get("type") == "directory":
                out.append({"path": name, "is_dir": True})
            else:
                out.append({"path": name, "is_dir": False, "file_size": int(info.get("size") or 0)})
    return sorted(out, key=lambda f: f["path"])
