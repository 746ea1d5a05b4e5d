"""Output folders for a submitted script: `OutputFileDatasetConfig` / `PipelineData` in `arguments`.

In v1 the object in `ScriptRunConfig(arguments=[...])` becomes a placeholder that the job's runtime
turns into a mounted folder. runyard resolves it at submit time instead: the folder is created in
the default datastore where a pipeline step's output would go (`azureml/<run id>/<output name>`, or
the config's `destination` with `{run-id}` and `{output-name}` filled in), and the script gets its path.
The script writes straight into the datastore, as a pipeline step's mount-mode output does, so what it
wrote is there when the run ends, and is kept when it fails (as v1's mount mode keeps files written
before a failure). The run records each output under `outputDatasets` in its details.

A datastore that is not a folder on this machine (S3 and other fsspec stores, a server workspace's
store) gets a local folder instead, uploaded file by file (each atomically) when the run ends. Then
`finish_outputs` (called by the job supervisor before the run's status is final) registers the outputs
asked for with `register_on_complete` when the run succeeded, and records every output in lineage with
the content hash of what it holds; a failed registration fails the run, and the files stay.

Core cannot import the pipeline classes (they live a layer above), so an output is recognised by what
it offers: `get_env_variable_name()`, `mode` and `destination`.
"""

from __future__ import annotations

import posixpath
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.data.datastore import DEFAULT_DATASTORE, Datastore, datastore_folder
from runyard.data.output_datasets import register_output, upload_output
from runyard.errors import ConflictError, InvalidInputError, RunyardError
from runyard.store.records import DatasetRecord, DatasetUse

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace


def is_output(argument: Any) -> bool:
    """An output-data object (OutputFileDatasetConfig, PipelineData), not a plain value."""
    return (
        callable(getattr(argument, "get_env_variable_name", None))
        and hasattr(argument, "mode")
        and hasattr(argument, "destination")
    )


def is_input_binding(argument: Any) -> bool:
    """`output.as_input()`: a consumer's view of another step's output, meaningless in a single run."""
    return is_output(getattr(argument, "data", None)) and not is_output(argument)


@dataclass(frozen=True)
class ResolvedOutput:
    name: str
    mode: str
    datastore: str
    path_on_datastore: str
    path: Path
    #: register_on_complete(name, description, tags): {"name", "description", "tags"}
    register: dict[str, Any] | None = None
    #: read_delimited_files / read_parquet_files: how the registered dataset reads the files
    read: dict[str, Any] | None = None
    #: the datastore is not a folder here (S3, ...): `path` is a local folder uploaded when the run ends
    remote: bool = False
    overwrite: bool = False

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "name": self.name,
            "outputType": "RunOutput",
            "outputDetails": {"outputName": self.name},
            "mode": self.mode,
            "datastore": self.datastore,
            "pathOnDatastore": self.path_on_datastore,
            "path": str(self.path),
        }
        if self.remote:
            record["uploadOnEnd"] = {"overwrite": self.overwrite}
        if self.register is not None:  # registered by finish_outputs when the run succeeds
            record["registerOnComplete"] = self.register
            if self.read is not None:
                record["readAs"] = self.read
        return record


def _registration(output: Any) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(register, read) from `register_on_complete(...)` (and `read_*_files()` before it) on the output."""
    registration = getattr(output, "registration", None)
    if not isinstance(registration, dict):
        return None, None
    register = {
        "name": str(registration["name"]),
        "description": registration.get("description"),
        "tags": {str(k): str(v) for k, v in (registration.get("tags") or {}).items()},
    }
    read = registration.get("read")
    return register, dict(read) if isinstance(read, dict) else None


def _unwrap(argument: Any) -> Any:
    """`output.read_delimited_files()` (an OutputTabularDatasetConfig) stands for the output it reads."""
    inner = getattr(argument, "output", None)
    return inner if not is_output(argument) and is_output(inner) else argument


def _datastore_of(output: Any) -> str:
    store = getattr(output, "datastore", None)
    if store is None and getattr(output, "destination", None):
        store = output.destination[0]
    return str(getattr(store, "name", store) or DEFAULT_DATASTORE)


def resolve_outputs(
    ws: Workspace, run_id: str, arguments: list[Any]
) -> tuple[list[str], list[ResolvedOutput]]:
    """The script's arguments as strings, with every output object replaced by its created folder."""
    resolved: list[str] = []
    outputs: list[ResolvedOutput] = []
    by_object: dict[int, ResolvedOutput] = {}
    for argument in map(_unwrap, arguments):
        if is_input_binding(argument):
            raise InvalidInputError(
                f"ScriptRunConfig arguments hold {argument!r}, another step's output read as an input: a single "
                "script run has no steps before it. Pass the output itself (the script writes it), or use a "
                "Pipeline to connect a producer and a consumer."
            )
        if not is_output(argument):
            resolved.append(str(argument))
            continue
        if id(argument) not in by_object:
            by_object[id(argument)] = _plan(ws, run_id, argument, {o.name for o in outputs})
            outputs.append(by_object[id(argument)])
        resolved.append(str(by_object[id(argument)].path))
    for output in outputs:  # only once every output is known to be valid: a refusal leaves no folders
        output.path.mkdir(parents=True, exist_ok=True)
    return resolved, outputs


def _plan(ws: Workspace, run_id: str, output: Any, taken: set[str]) -> ResolvedOutput:
    name = str(getattr(output, "name", "") or f"output_{secrets.token_hex(4)}")  # v1 names unnamed outputs
    if name in taken:
        raise InvalidInputError(
            f"Two different outputs in ScriptRunConfig arguments are named {name!r}: give each its own name."
        )
    destination = getattr(output, "destination", None)
    given = destination[1] if destination else None  # (datastore, None): the default folder, as for steps
    rel = _inside_datastore(name, given, run_id) if given is not None else f"azureml/{run_id}/{name}"
    store = Datastore(ws, _datastore_of(output))
    overwrite = bool(getattr(output, "overwrite", False))
    backend = store.backend()
    local = backend.local_path(rel)
    if local is not None:
        folder, remote = Path(local), False
    else:  # S3, a server's datastore, ...: written to a folder here, uploaded when the run ends
        folder, remote = Path(ws.artifacts.local_path(f"{datastore_folder(store.name)}/{rel}")), True
        if not overwrite and backend.list_files(rel):
            raise ConflictError(
                f"Output {name!r} goes to {rel!r} on datastore {store.name!r}, which already holds files. Put "
                "{run-id} in the destination path so each run writes its own folder, or use "
                ".as_upload(overwrite=True)."
            ) from None
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ConflictError(
            f"Output {name!r} goes to {folder}, which already holds files. Put {{run-id}} in the destination "
            "path so each run writes its own folder, or use .as_upload(overwrite=True)."
        )
    register, read = _registration(output)
    return ResolvedOutput(name, str(output.mode), store.name, rel, folder, register, read, remote, overwrite)


def _inside_datastore(name: str, path: object, run_id: str) -> str:
    """The destination's folder relative to its datastore; refused when it is the datastore's root (the
    folder every run and pipeline writes into: overwrite=True would replace all of it), as pipeline steps'
    destinations are (engine/graph_spec.py)."""
    raw = str(path)
    rel = raw.replace("\\", "/").replace("{run-id}", run_id).replace("{output-name}", name).strip("/")
    if "\x00" in rel or ".." in rel.split("/"):
        raise InvalidInputError(
            f"Output {name!r}: destination {raw!r} may not contain '..' or NUL; name a folder inside the datastore."
        )
    if posixpath.normpath(rel or ".") == ".":
        raise InvalidInputError(
            f"Output {name!r}: destination {raw!r} is the datastore's root; name a folder inside it, such as "
            "'outputs/{run-id}/{output-name}'."
        )
    return posixpath.normpath(rel)


def output_environment(outputs: list[ResolvedOutput]) -> dict[str, str]:
    """`AZUREML_DATAREFERENCE_<name>` for each output, as pipeline steps get them."""
    return {f"AZUREML_DATAREFERENCE_{o.name}": str(o.path) for o in outputs}


def _upload(ws: Workspace, output: dict[str, Any]) -> None:
    """A remote-datastore output's files, from their local folder to the datastore (ConflictError when a
    file is there already and the output was not `.as_upload(overwrite=True)`)."""
    upload_output(
        ws,
        output["datastore"],
        output["path"],
        output["pathOnDatastore"],
        overwrite=bool(output["uploadOnEnd"].get("overwrite")),
        output_name=output["name"],
    )


def _register(ws: Workspace, run_id: str, output: dict[str, Any]) -> DatasetRecord:
    """register_on_complete: the dataset `output["registerOnComplete"]` names, over exactly the files the
    run left in the output's folder (read as `output["readAs"]` says, when given)."""
    request = output["registerOnComplete"]
    return register_output(
        ws,
        str(request["name"]),
        request.get("description"),
        request.get("tags"),
        output.get("readAs"),
        output["datastore"],
        output["pathOnDatastore"],
        run_id,
    )


def finish_outputs(
    ws: Workspace, run_id: str, outputs: list[dict[str, Any]], succeeded: bool
) -> tuple[list[dict[str, Any]], str | None, list[str]]:
    """When a script run's process has ended: register the outputs asked for (only if it succeeded) and
    record every output in lineage with the content hash of what it holds now.

    Returns the output records (a registered one names its dataset), the message the run fails with when
    a registration failed (the files stay where they are: nothing the script wrote is lost), and warnings
    (an output whose folder could not be hashed is left out of lineage)."""
    from runyard.data.hashing import hash_datastore_path

    uses: list[DatasetUse] = []
    updated: list[dict[str, Any]] = []
    failure: str | None = None
    warnings: list[str] = []
    for output in outputs:
        request = output.get("registerOnComplete")
        dataset_id: str | None = None
        updated.append(output)
        try:
            if output.get("uploadOnEnd") and (succeeded or output.get("mode") == "mount"):
                try:
                    _upload(ws, output)
                except (RunyardError, OSError) as exc:
                    message = (
                        f"Output {output['name']!r} could not be uploaded to datastore {output['datastore']!r}: "
                        f"{exc} The files are kept in {output['path']}."
                    )
                    if succeeded:
                        failure = failure or message
                    else:
                        warnings.append(message)
                    continue
            if succeeded and request:
                try:
                    stored = _register(ws, run_id, output)
                except (RunyardError, OSError) as exc:
                    failure = failure or (
                        f"The script succeeded, but output {output['name']!r} ({output['path']}) could not be "
                        f"registered as dataset {request['name']!r}: {exc} The files are kept; register them "
                        "yourself with Dataset.File.from_files((datastore, path)).register(ws, name)."
                    )
                    continue
                updated[-1] = {
                    **output,
                    "registered": {"id": stored.id, "name": stored.name, "version": stored.version},
                }
                content_hash, dataset_id = stored.content_hash, stored.id
            else:
                content_hash = hash_datastore_path(ws, output["datastore"], output["pathOnDatastore"])[0]
        except (RunyardError, OSError) as exc:
            warnings.append(f"Output {output['name']!r} could not be hashed for lineage: {exc}")
            continue
        detail = {
            "datastore": output["datastore"],
            "path": output["pathOnDatastore"],
            "mode": output.get("mode"),
        }
        uses.append(
            DatasetUse(run_id, "output", output["name"], content_hash, dataset_id, detail, time.time())
        )
    if uses:
        ws.store.record_dataset_uses(uses)
    return updated, failure, warnings
