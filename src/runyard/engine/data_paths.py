"""Where step outputs live, how upload-mode outputs are published atomically, and how an output is
recorded (its file manifest) and checked again before reuse."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from runyard.core.workspace import Workspace
from runyard.engine.output_manifest import OutputManifest, scan, verify
from runyard.errors import ConflictError

MANIFEST_DIR = "runyard/output-manifests"  # inside runs/<step run id>/


def path_on_datastore(output: dict[str, Any], step_run_id: str) -> str:
    """v1's datastore-relative path of an output: azureml/<step run id>/<output name> unless a destination says otherwise."""
    if output.get("destination"):
        rel = output["destination"].replace("{run-id}", step_run_id).replace("{output-name}", output["name"])
        return str(rel.strip("/"))
    return f"azureml/{step_run_id}/{output['name']}"


def output_location(ws: Workspace, output: dict[str, Any], step_run_id: str) -> Path:
    """The folder of an output: its path_on_datastore inside its datastore's folder."""
    return ws.artifacts.local_path(
        f"datastores/{output['datastore']}/{path_on_datastore(output, step_run_id)}"
    )


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


def manifest_location(ws: Workspace, step_run_id: str, output_name: str) -> Path:
    """Where the file manifest of a step output is kept: in the step run's own folder, so it lives as
    long as the run's record does and a remote workspace's mirror sync sends it to the server.

    A job can write into its run folder, so the manifest is only trusted when its hash matches the
    "hash" recorded in the store (see `verify_output`)."""
    return ws.artifacts.local_path(f"runs/{step_run_id}/{MANIFEST_DIR}/{output_name}.json")


def describe_output(path: Path, manifest_file: Path | None = None) -> dict[str, Any]:
    """Size, file count and content hash of an output folder; with `manifest_file`, also writes the
    per-file manifest there and records where, so reuse can check the files later.

    The manifest is written in place, not through a renamed temporary file: nothing reads it before
    the step's record points at it (after this returns), and in a server workspace the mirror sync,
    which runs meanwhile, could send a temporary file to the server between its write and its rename."""
    manifest = scan(path)
    described: dict[str, Any] = {
        "path": str(path),
        "size": manifest.size,
        "files": manifest.file_count,
        "hash": manifest.content_hash,
    }
    if manifest.link_count:
        described["links"] = manifest.link_count
    if manifest_file is not None:
        manifest_file.parent.mkdir(parents=True, exist_ok=True)
        manifest_file.write_bytes(manifest.to_json())
        described["manifest"] = str(manifest_file)
    return described


def verify_output(recorded: dict[str, Any]) -> str | None:
    """None when a recorded output is still on disk exactly as it was recorded; otherwise one sentence
    that names what is missing or changed. Reuse calls this for every output of a candidate, so a step
    never reuses outputs whose files were deleted, added to or changed since the step ended."""
    path = Path(recorded["path"])
    what = (
        f"output {recorded['output']!r} of run {recorded['run_id']}"
        if "run_id" in recorded
        else f"output {path}"
    )
    if path.is_symlink():
        return f"the folder {path} of {what} was replaced by a link"
    if not path.is_dir():
        return f"the folder {path} of {what} is missing"
    if "manifest" not in recorded:
        return f"{what} was recorded without a file manifest (by an older runyard), so its files cannot be checked"
    manifest_file = Path(recorded["manifest"])
    try:
        manifest = OutputManifest.from_json(manifest_file.read_bytes())
    except OSError as exc:
        return f"the file manifest of {what} cannot be read ({manifest_file}: {exc.strerror or exc})"
    except ValueError as exc:
        return f"the file manifest {manifest_file} of {what} is not usable: {exc}"
    if manifest.content_hash != recorded.get("hash"):
        return f"the file manifest {manifest_file} of {what} was changed after the step recorded it"
    problems = verify(path, manifest)
    if not problems:
        return None
    rel, how = problems[0]
    others = len(problems) - 1
    more = f" (and {others} other file{'s' if others > 1 else ''})" if others else ""
    return f"file {rel} in {what} was {how}{more}"
