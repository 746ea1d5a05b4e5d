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
from runyard.data.datastore import Datastore, is_builtin
from runyard.engine.dataset_inputs import ResolvedInput
from runyard.errors import NotFoundError
from runyard.store.records import DatasetRecord, DatasetUse


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
    mirror = is_builtin(str(out["datastore"]))
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


def _latest_same(ws: Workspace, reg: dict[str, Any], datastore: str, path: str) -> DatasetRecord | None:
    """The latest version of reg["name"] when it already is exactly these files read this way, else None."""
    from runyard.data.definition import DatasetDefinition
    from runyard.data.resolve import resolve_files

    try:
        latest = ws.store.get_dataset(str(reg["name"]))
    except NotFoundError:
        return None
    definition = output_datasets.output_dataset(
        Datastore(ws, datastore).name, path, reg.get("read")
    ).definition
    same = (
        latest.kind == definition.kind
        and DatasetDefinition.from_json(latest.definition) == definition
        and latest.content_hash == resolve_files(ws, definition).content_hash
    )
    return latest if same else None


def register_reused(
    ws: Workspace, step: dict[str, Any], outputs: dict[str, Any], reused_run_id: str
) -> list[str]:
    """register_on_complete on a step that is REUSED: the reused output's files are registered under the
    name (as if the step had run) unless the latest version of that name already holds them, read the
    same way. `outputs` (the reused run's recorded outputs) gains each output's "dataset", so lineage
    records it; returns one line per output for the reuse report. The version's run_id is the run that
    wrote the files. RunyardError when a registration fails."""
    notes: list[str] = []
    for out in step.get("outputs", []):
        reg, recorded = out.get("registration"), outputs.get(out["name"])
        if not reg or not isinstance(recorded, dict):
            continue
        datastore, path = str(recorded["datastore"]), str(recorded["pathOnDatastore"])
        existing = _latest_same(ws, reg, datastore, path)
        if existing is not None:
            dataset = {"id": existing.id, "name": existing.name, "version": existing.version}
            notes.append(
                f"output {out['name']!r} is already dataset {existing.name!r} version {existing.version}"
            )
        else:
            producer = str(recorded.get("run_id") or reused_run_id)
            dataset = register_output(
                ws, producer, {"register": reg, "datastore": datastore, "pathOnDatastore": path}
            )
            notes.append(
                f"registered reused output {out['name']!r} as dataset {dataset['name']!r} "
                f"version {dataset['version']}"
            )
        outputs[out["name"]] = {**recorded, "dataset": dataset}
    return notes


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
