"""Dataset inputs of a step, as the scheduler sees them: resolved to exact bytes before reuse is decided,
put in front of the job when it starts.

Resolution gives each input a content hash (the fingerprint material's "inputs") and a label that
explains a rerun ("dataset 'images' version 2", "datastore path 'raw'"):
- a registered version: its recorded files, verified now (a file changed or gone since registration
  FAILS the step, naming the file: "version 3" never silently means other bytes);
- an unregistered dataset: its sources resolved now (globs evaluated now);
- a DataReference / DataPath: everything under the path, hashed with the stat cache (data/hashing.py).
The hash also covers the dataset's definition, so a changed separator or transform reruns the step.
Per-file hashes go to a manifest in the step run's own folder (runs/<id>/runyard/input-manifests/),
not into the run record, so a 100k-file input costs the record nothing; reasons diff two manifests.

Materialisation: "mount" makes a read-only view (data/materialize.py: links, cached copies for remote
stores), "download" private copies, "direct" nothing (the job reads the dataset object). The job learns
what it got from AZUREML_DATAREFERENCE_<name> and from the JSON file named by RUNYARD_INPUT_DATASETS,
which `Run.input_datasets` reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.core.workspace import Workspace
from runyard.data.output_datasets import tabular_view
from runyard.errors import RunyardError

INPUT_MANIFEST_DIR = "runyard/input-manifests"  # inside runs/<step run id>/
INPUT_DATASETS_FILE = "input_datasets.json"  # in the step's work folder; RUNYARD_INPUT_DATASETS names it
INPUT_DATASETS_ENV = "RUNYARD_INPUT_DATASETS"


class InputUnavailable(RunyardError):
    """A dataset input of a step cannot be read as recorded (gone, changed, no match, no datastore)."""


@dataclass
class ResolvedInput:
    """One dataset input of one step, resolved to exact bytes."""

    name: str
    mode: str  # direct | mount | download
    content_hash: str
    label: dict[str, Any]  # what it is, for reasons and lineage (see `_label`)
    payload: dict[str, Any] | None  # the dataset (None for a datastore path)
    datastore: str | None = None
    path_on_datastore: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # path → sha256, for the manifest
    single_file: str | None = None  # one file, no transforms: its name; the job gets the file, as in v1

    @property
    def dataset_id(self) -> str | None:
        return self.label.get("id")


def _digest(content_hash: str, definition: Any) -> str:
    text = json.dumps(
        {"files": content_hash, "definition": definition}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(text.encode()).hexdigest()


def view_hash(output_hash: str, read: dict[str, Any]) -> str:
    """The input hash of an output read as a table: its files and how they are parsed."""
    return _digest(output_hash, read)


def _file_key(f: Any) -> str:
    return f"{f.datastore}:{f.path}" if f.datastore else str(f.path)


def resolve_dataset(ws: Workspace, name: str, mode: str, payload: dict[str, Any]) -> ResolvedInput:
    """A dataset payload (data/dataset.py) → its bytes now; a registered version is verified file by file."""
    from runyard.core.script_inputs import single_file_name
    from runyard.data.definition import DatasetDefinition
    from runyard.data.hashing import ResolvedFile
    from runyard.data.resolve import locate_record, resolve_files

    definition = DatasetDefinition.from_json(payload["definition"])
    registered = payload.get("registered") or {}
    record_id = registered.get("id") or payload.get("pinned_id")
    if isinstance(record_id, str) and record_id:
        record = ws.store.get_dataset_by_id(record_id)
        located = locate_record(ws, record)  # DataAccessError naming the first file gone or changed
        files = {_file_key(item.file): item.file.sha256 for item in located}
        found = [item.file for item in located]
        label = {
            "kind": "dataset",
            "dataset": record.name,
            "version": record.version,
            "id": record.id if registered else None,
            "pinned": record.id,
        }
        content = record.content_hash
    else:
        resolved = resolve_files(ws, definition)
        files = {_file_key(f): f.sha256 for f in resolved.files if isinstance(f, ResolvedFile)}
        found = list(resolved.files)
        label = {"kind": "unregistered"}
        content = resolved.content_hash
    return ResolvedInput(
        name,
        mode,
        _digest(content, definition.to_json()),
        label,
        dict(payload),
        files=files,
        single_file=single_file_name(definition, found),
    )


def resolve_datastore_path(ws: Workspace, name: str, mode: str, datastore: str, path: str) -> ResolvedInput:
    from runyard.data.hashing import hash_datastore_path

    content, files = hash_datastore_path(ws, datastore, path)
    label = {"kind": "datastore", "datastore": datastore, "path": path}
    return ResolvedInput(
        name,
        mode,
        content,
        label,
        None,
        datastore,
        path,
        files={f.path: f.sha256 for f in files},
        single_file=Path(path).name if len(files) == 1 and files[0].path == path else None,
    )


def resolve_step_datasets(
    ws: Workspace, step: dict[str, Any], params: dict[str, Any]
) -> dict[str, ResolvedInput]:
    """Every `datasets` entry of a graph step, resolved; InputUnavailable says which input and why."""
    resolved: dict[str, ResolvedInput] = {}
    for entry in step.get("datasets", []):
        name, mode, source = entry["name"], entry["mode"], entry["source"]
        try:
            if "param" in source:
                value = params[source["param"]]
                if isinstance(value, dict) and isinstance(value.get("datapath"), dict):
                    where = value["datapath"]
                    resolved[name] = resolve_datastore_path(ws, name, mode, where["datastore"], where["path"])
                elif isinstance(value, dict) and isinstance(value.get("dataset"), dict):
                    resolved[name] = resolve_dataset(ws, name, mode, value["dataset"])
                else:
                    raise InvalidParameter(
                        f"parameter {source['param']!r} holds neither a dataset nor a DataPath"
                    )
            elif "dataset" in source:
                resolved[name] = resolve_dataset(ws, name, mode, source["dataset"])
            else:
                resolved[name] = resolve_datastore_path(ws, name, mode, source["datastore"], source["path"])
        except (RunyardError, OSError) as exc:
            raise InputUnavailable(f"Input {name!r} of step {step['name']!r} cannot be read: {exc}") from None
    return resolved


class InvalidParameter(RunyardError):
    """A dataset parameter whose value is not a dataset."""


def manifest_path(ws: Workspace, step_run_id: str, input_name: str) -> Path:
    return Path(ws.artifacts.local_path(f"runs/{step_run_id}/{INPUT_MANIFEST_DIR}/{input_name}.json"))


def input_details(ws: Workspace, step_run_id: str, resolved: dict[str, ResolvedInput]) -> dict[str, Any]:
    """Writes each input's per-file manifest into the step run's folder and returns the material's
    "input_details": labels plus manifest paths (left out of the fingerprint: reasons only)."""
    details: dict[str, Any] = {}
    for name, item in resolved.items():
        where = manifest_path(ws, step_run_id, name)
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(json.dumps({"files": item.files}, sort_keys=True))
        details[name] = {**item.label, "manifest": str(where)}
    return details


def _read_manifest(path: Any) -> dict[str, str] | None:
    try:
        files = json.loads(Path(str(path)).read_text()).get("files")
    except (OSError, ValueError, AttributeError, TypeError):
        return None
    return files if isinstance(files, dict) else None


def _first_change(old: dict[str, str], new: dict[str, str]) -> tuple[str, str] | None:
    for path in sorted(set(old) | set(new)):
        if old.get(path) != new.get(path):
            how = "added" if path not in old else "removed" if path not in new else "changed"
            return path, how
    return None


def _label_text(label: dict[str, Any]) -> str:
    if label.get("kind") == "dataset":
        return f"dataset {label.get('dataset')!r} version {label.get('version')}"
    if label.get("kind") == "datastore":
        return f"datastore path {label.get('path')!r}"
    return "an unregistered dataset"


def explain_input(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """One sentence: why dataset input `name` no longer matches ("dataset 'images' version 2 → 3",
    "file raw/part-7.csv under datastore path 'raw' changed")."""
    if not old or not new:
        return f"input {name!r} changed"
    same_name = old.get("kind") == new.get("kind") == "dataset" and old.get("dataset") == new.get("dataset")
    if same_name and old.get("version") != new.get("version"):
        return f"dataset {new.get('dataset')!r} version {old.get('version')} → {new.get('version')}"
    if old.get("kind") != new.get("kind") or (old.get("dataset"), old.get("path")) != (
        new.get("dataset"),
        new.get("path"),
    ):
        return f"input {name!r} is now {_label_text(new)} (was {_label_text(old)})"
    before, after = _read_manifest(old.get("manifest")), _read_manifest(new.get("manifest"))
    change = _first_change(before, after) if before is not None and after is not None else None
    if change is None:
        return f"the data of input {name!r} ({_label_text(new)}) changed"
    path, how = change
    if new.get("kind") == "datastore":
        return f"file {path} under datastore path {new.get('path')!r} {how}"
    if not path.startswith("/") and "://" not in path and ":" in path:  # "<datastore>:<path>" (see _file_key)
        store, _, rel = path.partition(":")
        path = f"{rel} on datastore {store!r}"
    return f"file {path} of input {name!r} ({_label_text(new)}) {how}"


def direct_value(item: ResolvedInput) -> str:
    """What a direct (tabular) input's argument / AZUREML_DATAREFERENCE_<name> holds: v1 passes the
    registered dataset's id; an unregistered dataset has none, so its input name."""
    registered = (item.payload or {}).get("registered") or {}
    return str(registered.get("id") or item.name)


def materialize_inputs(
    ws: Workspace, work: Path, resolved: dict[str, ResolvedInput]
) -> tuple[dict[str, str], dict[str, Any]]:
    """Put each input in front of the job: returns (argument/env values by name, the job's JSON map)."""
    from runyard.data.dataset import dataset_from_payload
    from runyard.data.materialize import materialize

    values: dict[str, str] = {}
    described: dict[str, Any] = {}
    for name, item in resolved.items():
        path: str | None = None
        if item.mode == "direct":
            values[name] = direct_value(item)
        else:
            payload = item.payload or {
                "definition": {
                    "kind": "file",
                    "sources": [{"datastore": item.datastore, "path": item.path_on_datastore}],
                }
            }
            dataset = dataset_from_payload(ws, payload)
            folder = materialize(ws, dataset, item.mode, work / "inputs" / name)
            path = str(folder / item.single_file) if item.single_file else str(folder)
            values[name] = path
        described[name] = {
            "mode": item.mode,
            "path": path,
            "dataset": item.payload,
            "datastore": item.datastore,
            "path_on_datastore": item.path_on_datastore,
        }
    return values, described


def write_input_file(work: Path, described: dict[str, Any]) -> Path:
    """The JSON the job reads (Run.input_datasets) through RUNYARD_INPUT_DATASETS."""
    target = work / INPUT_DATASETS_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(described, sort_keys=True, indent=1))
    return target


def output_view(path: str, read: dict[str, Any]) -> dict[str, Any]:
    """The dataset payload of v1's `output.read_delimited_files().as_input(name)`: a TabularDataset over
    the producer's output folder (the local copy, also for outputs uploaded to a remote datastore)."""
    from runyard.data.dataset import dataset_payload

    return dataset_payload(tabular_view(path, read))


def describe_output_views(step: dict[str, Any], input_paths: dict[str, str]) -> dict[str, Any]:
    """The job's JSON entries for inputs that read another step's output as a tabular dataset."""
    described: dict[str, Any] = {}
    for binding in step.get("inputs", []):
        if binding.get("read") is not None:
            described[binding["name"]] = {
                "mode": "direct",
                "path": None,
                "dataset": output_view(input_paths[binding["name"]], binding["read"]),
                "datastore": None,
                "path_on_datastore": None,
            }
    return described
