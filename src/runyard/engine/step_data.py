"""What happens to a step's data after it succeeds: outputs on remote datastores are uploaded,
register_on_complete registers the dataset, and lineage records what the step read and wrote.

Outputs are always written to the local datastore folder `datastores/<name>/<path>` of the workspace
(downstream steps read that folder, and reuse checks it against the output manifest). For a datastore
whose bytes live elsewhere (S3 and other fsspec stores, a file:// folder outside the workspace, the
server of a server workspace) the files are also uploaded there when the step succeeds, each
atomically (the backend's put_file), so readers of the datastore never see half a file; the local
folder stays as its mirror.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from runyard.core.workspace import Workspace
from runyard.engine.dataset_inputs import ResolvedInput, tabular_view
from runyard.errors import ConflictError
from runyard.store.records import DatasetRecord, DatasetUse


def _datastore(ws: Workspace, name: str) -> Any:
    from runyard.data.datastore import Datastore

    return Datastore.get(ws, name)


def upload_output(ws: Workspace, out: dict[str, Any]) -> str | None:
    """Upload a finished output to its datastore when that datastore is not the local folder itself;
    returns a line for the step's log, or None when nothing had to move."""
    from runyard.data.datastore import DEFAULT_DATASTORE
    from runyard.data.transfer import Job, run_jobs

    backend = _datastore(ws, out["datastore"]).backend()
    final = Path(out["final"])
    prefix = str(out["pathOnDatastore"]).strip("/")
    local = backend.local_path(prefix)
    if local is not None and os.path.realpath(local) == os.path.realpath(final):
        return None  # the datastore is this folder (workspaceblobstore of a local workspace)
    # workspaceblobstore of a server workspace: the folder is the server's mirror, sent now so that
    # register_on_complete and other machines see it at once (the same bytes may follow by mirror sync)
    mirror = str(out["datastore"]).lower() == DEFAULT_DATASTORE
    overwrite = mirror or out["mode"] != "upload" or bool(out["overwrite"])
    files = sorted(p for p in final.rglob("*") if p.is_file() and not p.is_symlink())

    def job(path: Path) -> Job:
        rel = path.relative_to(final).as_posix()
        return Job(rel, path.stat().st_size, lambda: backend.put_file(path, f"{prefix}/{rel}", overwrite))

    outcome = run_jobs([job(p) for p in files], show_progress=False, description=f"output {out['datastore']}")
    if outcome.skipped:
        raise ConflictError(
            f"Output destination {prefix!r} on datastore {out['datastore']!r} ({backend.url}) already holds "
            f"{outcome.skipped[0]!r}. Use .as_upload(overwrite=True), or put {{run-id}} in the destination."
        )
    return f"Uploaded {outcome.done} file(s) of the output to {backend.url}/{prefix}"


def register_output(ws: Workspace, run_id: str, out: dict[str, Any]) -> dict[str, Any]:
    """register_on_complete: a new version of the named dataset over exactly the output's files (a
    TabularDataset when the output was read with read_*_files), with run_id = the step run."""
    from runyard.data.dataset import Dataset
    from runyard.data.resolve import resolve_files

    reg = out["register"]
    store = _datastore(ws, out["datastore"])
    path = str(out["pathOnDatastore"]).strip("/")
    if reg.get("read") is None:
        definition = Dataset.File.from_files((store, path), validate=False).definition
    else:
        definition = tabular_view((store, path), reg["read"]).definition
    resolved = resolve_files(ws, definition)
    record = DatasetRecord(
        id="",
        name=reg["name"],
        version=0,
        kind=definition.kind,
        definition=definition.to_json(),
        files=[f.to_json() for f in resolved.files],
        content_hash=resolved.content_hash,
        created_time=time.time(),
        description=reg.get("description"),
        tags=dict(reg.get("tags") or {}),
        run_id=run_id,
    )
    stored = ws.store.register_dataset(record, create_new_version=True)
    return {"id": stored.id, "name": stored.name, "version": stored.version}


def _input_detail(item: ResolvedInput) -> dict[str, Any]:
    """What a lineage row says about an input beyond its dataset id (core/run_datasets.py reads it)."""
    detail: dict[str, Any] = {"mode": item.mode}
    if item.datastore is not None:
        detail.update(datastore=item.datastore, path=item.path_on_datastore)
    elif item.label.get("kind") == "dataset":
        detail.update(dataset=item.label.get("dataset"), version=item.label.get("version"))
    if item.payload is not None and not item.label.get("id"):
        detail["definition"] = item.payload.get("definition")
    return detail


def lineage(run_id: str, inputs: dict[str, ResolvedInput], outputs: dict[str, Any]) -> list[DatasetUse]:
    """Lineage rows of one step run: the dataset versions and datastore paths it read (with content
    hashes) and the outputs it produced (manifest hash; the dataset id when registered on complete)."""
    now = time.time()
    uses = [
        DatasetUse(
            run_id,
            "input",
            name,
            item.content_hash,
            item.label.get("id") or item.label.get("pinned"),
            _input_detail(item),
            now,
        )
        for name, item in inputs.items()
    ]
    for name, recorded in outputs.items():
        if not isinstance(recorded, dict) or not isinstance(recorded.get("hash"), str):
            continue
        dataset = recorded.get("dataset") or {}
        uses.append(
            DatasetUse(
                run_id,
                "output",
                name,
                recorded["hash"],
                dataset.get("id"),
                {"datastore": recorded.get("datastore"), "path": recorded.get("pathOnDatastore")},
                now,
            )
        )
    return uses
