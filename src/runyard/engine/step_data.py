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
from runyard.data import output_datasets
from runyard.data.datastore import DEFAULT_DATASTORE, Datastore
from runyard.engine.dataset_inputs import ResolvedInput
from runyard.store.records import DatasetUse


def upload_output(ws: Workspace, out: dict[str, Any]) -> str | None:
    """Upload a finished output to its datastore when that datastore is not the local folder itself;
    returns a line for the step's log, or None when nothing had to move."""
    final = Path(out["final"])
    prefix = str(out["pathOnDatastore"]).strip("/")
    local = Datastore(ws, out["datastore"]).backend().local_path(prefix)
    if local is not None and os.path.realpath(local) == os.path.realpath(final):
        return None  # the datastore is this folder (workspaceblobstore of a local workspace)
    # workspaceblobstore of a server workspace: the folder is the server's mirror, sent now so that
    # register_on_complete and other machines see it at once (the same bytes may follow by mirror sync)
    mirror = str(out["datastore"]).lower() == DEFAULT_DATASTORE
    overwrite = mirror or out["mode"] != "upload" or bool(out["overwrite"])
    sent = output_datasets.upload_output(ws, out["datastore"], final, prefix, overwrite=overwrite)
    return f"Uploaded {sent.files} file(s) of the output to {sent.url}"


def register_output(ws: Workspace, run_id: str, out: dict[str, Any]) -> dict[str, Any]:
    """register_on_complete: a new version of the named dataset over exactly the output's files (a
    TabularDataset when the output was read with read_*_files), with run_id = the step run."""
    reg = out["register"]
    stored = output_datasets.register_output(
        ws,
        reg["name"],
        reg.get("description"),
        reg.get("tags"),
        reg.get("read"),
        out["datastore"],
        out["pathOnDatastore"],
        run_id,
    )
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
