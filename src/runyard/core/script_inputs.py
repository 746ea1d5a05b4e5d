"""Dataset and datastore inputs of a submitted script: the data objects in `ScriptRunConfig(arguments=[...])`.

v1 lets a script's arguments hold `ds.as_named_input('raw')` (optionally `.as_mount()` / `.as_download()`),
`file_ds.as_mount()`, a bare dataset, or a `DataReference` / `DataPath` (`datastore.path('raw').as_mount()`).
The job gets a path (mount, download) or the dataset's id (direct) in their place, and
`Run.get_context().input_datasets[name]` gives the dataset object or the path inside the job.

runyard does it in two phases so that a refused submit leaves nothing behind:
`plan_inputs` validates every input and pins its bytes (a registered version's files are checked against
what was registered, an unregistered dataset or a datastore path is resolved and hashed) without writing
anything; `materialize_inputs` then puts mount/download inputs into the run's work folder (a read-only
view or private copies, data/materialize.py) once the run id is known. The job finds what it was given
in the JSON file named by RUNYARD_INPUT_DATASETS (run_datasets.py reads it), the same file pipeline steps
get, so `Run.input_datasets` has one implementation.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from runyard.core.run_datasets import INPUT_DATASETS_ENV
from runyard.core.script_outputs import is_output
from runyard.errors import InvalidInputError
from runyard.store.records import DatasetUse

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: The inputs file inside a run's work folder.
INPUTS_FILE = "input_datasets.json"
_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]")


@dataclass
class PlannedInput:
    """One input, validated and pinned to its bytes; `path` is set once it is materialised."""

    name: str
    mode: str  # "direct" | "mount" | "download"
    content_hash: str
    dataset: Any = None  # the dataset object (None for a datastore path)
    dataset_id: str | None = None  # the registered version it reads (its own, or the one it derives from)
    datastore: str | None = None  # a datastore path input: its datastore and path
    path_on_datastore: str | None = None
    path_on_compute: str | None = None
    path: Path | None = None
    single_file: str | None = None  # one file (see single_file_name): its name; the job gets the file's path
    objects: list[int] = field(default_factory=list)  # ids of the argument objects it stands for

    def value(self) -> str:
        """What replaces the argument: the local path, or the dataset id (the input name if unregistered)."""
        if self.mode == "direct":
            return str(getattr(self.dataset, "id", None) or self.name)
        return str(self.path)

    def payload(self) -> dict[str, Any]:
        """This input's entry of the inputs file (the format pipeline steps use too)."""
        from runyard.data.dataset import dataset_payload

        return {
            "mode": self.mode,
            "path": None if self.path is None else str(self.path),
            "dataset": None if self.dataset is None else dataset_payload(self.dataset),
            "datastore": self.datastore,
            "path_on_datastore": self.path_on_datastore,
        }

    def use(self, run_id: str) -> DatasetUse:
        """The lineage row: the registered version, or what was read (definition / datastore path)."""
        detail: dict[str, Any] = {"mode": self.mode}
        if self.datastore is not None:
            detail.update({"datastore": self.datastore, "path": self.path_on_datastore})
        elif self.dataset is not None and getattr(self.dataset, "id", None) is None:
            detail["definition"] = (
                self.dataset.definition.to_json()
            )  # unregistered, or derived from dataset_id
        return DatasetUse(
            run_id=run_id,
            direction="input",
            name=self.name,
            content_hash=self.content_hash,
            dataset_id=self.dataset_id,
            detail=detail,
            created_time=time.time(),
        )


def single_file_name(definition: Any, files: Sequence[Any]) -> str | None:
    """The file's name when a FileDataset is ONE file with no transforms, else None.

    v1 (DatasetContextManager) gives such an input to the job as the file's path (mount point plus
    to_path()[0]), not its folder, in mount and download mode; a folder, a glob or a transform keeps the
    folder. `files` are the resolved files (ResolvedFile or their JSON), `definition` the dataset's."""
    from runyard.data.backends import clean_store_path
    from runyard.data.definition import DatasetDefinition, is_glob
    from runyard.data.hashing import ResolvedFile
    from runyard.data.resolve import relative_path

    definition = DatasetDefinition.from_json(definition)
    if definition.kind != "file" or definition.transforms or len(definition.sources) != 1 or len(files) != 1:
        return None
    source = definition.sources[0]
    file = files[0] if isinstance(files[0], ResolvedFile) else ResolvedFile.from_json(files[0])
    if "datastore" in source:
        path = clean_store_path(source["path"])
        one = not is_glob(path) and file.datastore == source["datastore"] and file.path == path
    elif "local" in source:
        one = not is_glob(source["local"]) and Path(source["local"]).is_file()
    else:
        one = True  # an http(s) URL is one file
    return PurePosixPath(relative_path(definition, file)).name if one else None


def _is_dataset(value: Any) -> bool:
    from runyard.data.definition import DatasetDefinition

    return isinstance(getattr(value, "definition", None), DatasetDefinition)


def _is_consumption(value: Any) -> bool:
    from runyard.data.consumption import DatasetConsumptionConfig

    return isinstance(value, DatasetConsumptionConfig)


def _is_datastore_path(value: Any) -> bool:
    """A DataReference or DataPath: a path on a datastore (recognised by what it offers, as outputs are)."""
    return hasattr(value, "path_on_datastore") and (
        hasattr(value, "datastore") or hasattr(value, "datastore_name")
    )


def is_input(argument: Any) -> bool:
    """A data object the job consumes (not a plain value, not an output)."""
    if is_output(argument):
        return False
    return _is_consumption(argument) or _is_dataset(argument) or _is_datastore_path(argument)


def _name_from(text: str | None) -> str:
    """An input name from a dataset or path name: letters, digits and '_' (it becomes an env var)."""
    cleaned = _IDENTIFIER.sub("_", text or "").strip("_")
    if not cleaned:
        return f"input_{secrets.token_hex(4)}"  # v1 names an unnamed input like this
    return cleaned if not cleaned[0].isdigit() else f"input_{cleaned}"


def _check_path_on_compute(name: str, path: Any) -> str | None:
    if path is None:
        return None
    text = str(path).replace("\\", "/")
    pure = PurePosixPath(text)
    if pure.is_absolute() or ".." in pure.parts or "\x00" in text or not text.strip("/."):
        raise InvalidInputError(
            f"Input {name!r}: path_on_compute {path!r} must be a folder relative to the script's working "
            "folder, without '..' (runyard runs the job on this machine and will not write elsewhere). "
            "Leave it out and read the path from the argument or run.input_datasets[name]."
        )
    if pure.parts[0] in ("outputs", "logs"):
        raise InvalidInputError(
            f"Input {name!r}: path_on_compute {path!r} lies in ./{pure.parts[0]}, which is kept with the run; "
            "the input's files would be stored as the run's own. Choose another folder, such as 'data'."
        )
    return pure.as_posix()


def _datastore_name(value: Any) -> str:
    store = getattr(value, "datastore", None)
    name = getattr(store, "name", store) or getattr(value, "datastore_name", None)
    if not name:
        from runyard.data.datastore import DEFAULT_DATASTORE

        return DEFAULT_DATASTORE
    return str(name)


def _plan_one(ws: Workspace, argument: Any) -> PlannedInput:
    """Validate one input and pin its bytes; writes nothing."""
    if _is_datastore_path(argument):
        return _plan_datastore_path(ws, argument)
    if _is_consumption(argument):
        name, dataset, mode = argument.name, argument.dataset, argument.mode
        path_on_compute = argument.path_on_compute
    else:  # a bare dataset, named after itself: tabular data direct, files mounted (as pipeline steps do)
        kind = argument.definition.kind
        name, dataset, path_on_compute = _name_from(getattr(argument, "name", None)), argument, None
        mode = "direct" if kind == "tabular" else "mount"
    dataset = getattr(dataset, "default_value", dataset)  # a PipelineParameter whose default is a dataset
    if not _is_dataset(dataset):
        raise InvalidInputError(
            f"Input {name!r} holds {dataset!r}, which is not a dataset: pass a FileDataset or TabularDataset "
            "(Dataset.File.from_files(...), Dataset.get_by_name(ws, name))."
        )
    # A registered version, or a dataset derived from one (ds.take(5)), reads the version's recorded files.
    pinned = getattr(dataset, "_pinned", None) or getattr(dataset, "_record", None)
    if pinned is not None:
        from runyard.data.resolve import check_files

        check_files(ws, pinned)  # a registered version whose files changed is refused, naming the file
        content_hash, dataset_id, files = pinned.content_hash, pinned.id, list(pinned.files)
    else:
        from runyard.data.resolve import resolve_files

        resolved = resolve_files(ws, dataset.definition)
        content_hash, dataset_id, files = resolved.content_hash, None, list(resolved.files)
    return PlannedInput(
        name=name,
        mode=mode,
        content_hash=content_hash,
        dataset=dataset,
        dataset_id=dataset_id,
        path_on_compute=_check_path_on_compute(name, path_on_compute),
        single_file=single_file_name(dataset.definition, files) if mode != "direct" else None,
    )


def _plan_datastore_path(ws: Workspace, reference: Any) -> PlannedInput:
    from runyard.data.backends import clean_store_path
    from runyard.data.hashing import hash_datastore_path

    store = _datastore_name(reference)
    path = clean_store_path(str(getattr(reference, "path_on_datastore", None) or ""))
    given = getattr(reference, "data_reference_name", None) or getattr(reference, "name", None)
    name = _name_from(given or PurePosixPath(path).name or store)
    mode = str(getattr(reference, "mode", None) or "mount")
    if mode not in ("mount", "download"):
        raise InvalidInputError(
            f"Input {name!r}: a DataReference in {mode!r} mode is an output; a script run reads data "
            "references with .as_mount() or .as_download(). Write outputs through OutputFileDatasetConfig."
        )
    content_hash, files = hash_datastore_path(ws, store, path)
    if not files:
        raise InvalidInputError(
            f"Input {name!r}: path {path or '/'!r} on datastore {store!r} holds no files. Upload the data "
            f"first (Datastore.get(ws, {store!r}).upload(...)) or fix the path."
        )
    return PlannedInput(
        name=name,
        mode=mode,
        content_hash=content_hash,
        datastore=store,
        path_on_datastore=path,
        single_file=PurePosixPath(path).name if len(files) == 1 and files[0].path == path else None,
        path_on_compute=_check_path_on_compute(name, getattr(reference, "path_on_compute", None)),
    )


def plan_inputs(ws: Workspace, arguments: list[Any]) -> list[PlannedInput]:
    """Every input in `arguments`, validated and pinned (the same object twice is one input). Writes nothing:
    DataAccessError / InvalidInputError / DatastoreNotFound here leave no run and no folder."""
    planned: list[PlannedInput] = []
    by_object: dict[int, PlannedInput] = {}
    for argument in arguments:
        if not is_input(argument) or id(argument) in by_object:
            continue
        item = _plan_one(ws, argument)
        if any(p.name == item.name for p in planned):
            raise InvalidInputError(
                f"Two different inputs in ScriptRunConfig arguments are named {item.name!r}: give each its own "
                "name: ds.as_named_input('...') for a dataset, data_reference_name='...' for a datastore path "
                "(datastore.path('raw', data_reference_name='raw'))."
            )
        item.objects.append(id(argument))
        by_object[id(argument)] = item
        planned.append(item)
    return planned


def substitute(arguments: list[Any], inputs: list[PlannedInput]) -> list[Any]:
    """The arguments with each input object replaced by its value (path or id); call after materialising."""
    by_object = {obj: item for item in inputs for obj in item.objects}
    return [by_object[id(a)].value() if id(a) in by_object else a for a in arguments]


def _datastore_path_dataset(ws: Workspace, item: PlannedInput) -> Any:
    """An unregistered FileDataset over a datastore path, so materialising it takes the datasets' code path."""
    from runyard.data.dataset import dataset_from_payload

    definition = {"kind": "file", "sources": [{"datastore": item.datastore, "path": item.path_on_datastore}]}
    return dataset_from_payload(ws, {"definition": definition})


def assign_paths(inputs: list[PlannedInput], work: Path) -> None:
    """Where each mount/download input will be: `inputs/<name>` in the run's work folder, or
    `snapshot/<path_on_compute>` (the script's working folder). Known before anything is written, so
    the arguments can be resolved first."""
    for item in inputs:
        if item.mode != "direct":
            folder = (
                work / "snapshot" / item.path_on_compute
                if item.path_on_compute
                else work / "inputs" / item.name
            )
            item.path = folder / item.single_file if item.single_file else folder


def check_names(inputs: list[PlannedInput], outputs: list[Any]) -> None:
    """An input and an output may not share a name: both become AZUREML_DATAREFERENCE_<name>."""
    taken = {item.name for item in inputs} & {output.name for output in outputs}
    if taken:
        raise InvalidInputError(
            f"ScriptRunConfig arguments use {sorted(taken)[0]!r} as the name of an input and of an output; "
            "give them different names."
        )


def materialize_inputs(ws: Workspace, inputs: list[PlannedInput], work: Path) -> None:
    """Put mount/download inputs where assign_paths said (call after the snapshot is copied): a mount is a
    read-only view, a download private copies (data/materialize.py)."""
    from runyard.data.materialize import materialize

    for item in inputs:
        if item.mode == "direct" or item.path is None:
            continue
        folder = item.path.parent if item.single_file else item.path
        if folder.exists() or folder.is_symlink():
            raise InvalidInputError(
                f"Input {item.name!r}: path_on_compute {item.path_on_compute!r} is already taken by a file of the "
                "source directory. Choose a folder name the snapshot does not use."
            )
        dataset = item.dataset if item.dataset is not None else _datastore_path_dataset(ws, item)
        materialize(ws, dataset, item.mode, folder)


def discard(work: Path, outputs: list[Any]) -> None:
    """Undo a submit that failed half-way: the work folder and the (still empty) output folders."""
    shutil.rmtree(work, ignore_errors=True)
    for output in outputs:
        # The folder and the parents made for it (azureml/<run id>/), each only while empty: files
        # someone else put there stay.
        folder = output.path
        with contextlib.suppress(OSError):
            for _ in PurePosixPath(output.path_on_datastore).parts:
                folder.rmdir()
                folder = folder.parent


def record_input_uses(ws: Workspace, run_id: str, inputs: list[PlannedInput]) -> None:
    """Lineage: which dataset versions and datastore paths (with their content hashes) the run reads."""
    if inputs:
        ws.store.record_dataset_uses([item.use(run_id) for item in inputs])


def input_environment(inputs: list[PlannedInput], inputs_file: Path) -> dict[str, str]:
    """`AZUREML_DATAREFERENCE_<name>` per input (path or id, as the argument) and the inputs file's path."""
    env = {f"AZUREML_DATAREFERENCE_{item.name}": item.value() for item in inputs}
    if inputs:
        env[INPUT_DATASETS_ENV] = str(inputs_file)
    return env


def write_inputs_file(inputs: list[PlannedInput], inputs_file: Path) -> None:
    """{input name: payload}: what Run.input_datasets reads inside the job."""
    if not inputs:
        return
    inputs_file.parent.mkdir(parents=True, exist_ok=True)
    inputs_file.write_text(json.dumps({item.name: item.payload() for item in inputs}, indent=2))
