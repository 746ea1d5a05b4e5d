"""Where step outputs live, and how upload-mode outputs are published atomically."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from runyard.core.workspace import Workspace
from runyard.errors import ConflictError


def output_location(ws: Workspace, output: dict[str, Any], step_run_id: str) -> Path:
    """The datastore folder an output ends up in: azureml/<step run id>/<output name> unless a destination says otherwise."""
    if output.get("destination"):
        rel = output["destination"].replace("{run-id}", step_run_id).replace("{output-name}", output["name"])
        rel = rel.strip("/")
    else:
        rel = f"azureml/{step_run_id}/{output['name']}"
    return ws.artifacts.local_path(f"datastores/{output['datastore']}/{rel}")


def scratch_location(work: Path, output_name: str) -> Path:
    return work / "upload" / output_name


def _beside(scratch: Path, final: Path) -> Path:
    """The scratch folder, or a copy of it next to `final` when the two are on different filesystems
    (a rename cannot cross them), so that publishing stays one rename."""
    if os.stat(scratch).st_dev == os.stat(final.parent).st_dev:
        return scratch
    staged = final.with_name(f".{final.name}.incoming-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(scratch, staged, symlinks=True)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    shutil.rmtree(scratch, ignore_errors=True)
    return staged


def publish(scratch: Path, final: Path, overwrite: bool) -> None:
    """Move a finished upload-mode output into place in one rename, so readers see all of it or nothing."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and any(final.iterdir()):
        if not overwrite:
            raise ConflictError(
                f"Output destination {final} already holds files. Use .as_upload(overwrite=True), or put "
                "{run-id} in the destination path so each run writes its own folder."
            )
        scratch = _beside(scratch, final)
        old = final.with_name(f".{final.name}.replaced")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(scratch, final)
        shutil.rmtree(old, ignore_errors=True)
        return
    scratch = _beside(scratch, final)
    if final.exists():
        final.rmdir()
    os.replace(scratch, final)


def describe_output(path: Path) -> dict[str, Any]:
    """Size, file count and a content hash (sha256 over sorted names and bytes) of an output folder."""
    digest = hashlib.sha256()
    size = count = 0
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = file.relative_to(path).as_posix()
            digest.update(rel.encode() + b"\0")
            with file.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(b"\0")
            size += file.stat().st_size
            count += 1
    return {"path": str(path), "size": size, "files": count, "hash": digest.hexdigest()}


def verify_output(recorded: dict[str, Any]) -> str | None:
    """None when a recorded output is still on disk as it was recorded; otherwise one sentence saying
    what is missing or changed (used by reuse, so a step never reuses outputs that are gone)."""
    path = Path(recorded["path"])
    if not path.exists():
        return f"output folder {path} is missing"
    return None
