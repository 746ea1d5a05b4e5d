"""Output folders for a submitted script: `OutputFileDatasetConfig` / `PipelineData` in `arguments`.

In v1 the object in `ScriptRunConfig(arguments=[...])` becomes a placeholder that the job's runtime
turns into a mounted folder. runyard resolves it at submit time instead: the folder is created in
the default datastore where a pipeline step's output would go (`azureml/<run id>/<output name>`, or
the config's `destination` with `{run-id}` and `{output-name}` filled in), and the script gets its path.
The script writes straight into the datastore, as a pipeline step's mount-mode output does, so what it
wrote is there when the run ends, and is kept when it fails (as v1's mount mode keeps files written
before a failure). The run records each output under `outputDatasets` in its details.

Core cannot import the pipeline classes (they live a layer above), so an output is recognised by what
it offers: `get_env_variable_name()`, `mode` and `destination`.
"""

from __future__ import annotations

import posixpath
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.data.datastore import DEFAULT_DATASTORE, Datastore
from runyard.errors import ConflictError, InvalidInputError

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

    def as_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outputType": "RunOutput",
            "outputDetails": {"outputName": self.name},
            "mode": self.mode,
            "datastore": self.datastore,
            "pathOnDatastore": self.path_on_datastore,
            "path": str(self.path),
        }


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
    for argument in arguments:
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
    folder = store.local_path(rel)
    if folder.is_dir() and any(folder.iterdir()) and not getattr(output, "overwrite", False):
        raise ConflictError(
            f"Output {name!r} goes to {folder}, which already holds files. Put {{run-id}} in the destination "
            "path so each run writes its own folder, or use .as_upload(overwrite=True)."
        )
    return ResolvedOutput(name, str(output.mode), store.name, rel, folder)


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
