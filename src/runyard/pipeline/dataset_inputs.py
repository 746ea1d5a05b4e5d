"""Step inputs that are data from outside the pipeline: datasets, datastore paths, dataset parameters.

v1 accepts several spellings for "this step reads that data": `ds.as_named_input('x')` (a
DatasetConsumptionConfig, with `.as_mount()` / `.as_download()`), a bare dataset in `arguments`, a
`DataReference` (`datastore.path('raw')`), a `DataPath`, and a DatasetConsumptionConfig over a
`PipelineParameter` whose default is a dataset. They all become one graph entry, `StepSpec.datasets`:
{name, mode: direct|mount|download, source: {"dataset": payload} | {"datastore", "path"} | {"param"}}.
Authoring objects are recognised by what they carry (duck typing), so this module imports only the
consumption config and never the datastore or dataset classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from runyard.data.consumption import DatasetConsumptionConfig
from runyard.errors import InvalidInputError
from runyard.pipeline.data import PipelineParameter, is_datapath

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]")


@dataclass(frozen=True)
class DatasetInput:
    """One dataset input of a step, before it is written into the graph."""

    name: str
    mode: str  # direct | mount | download
    dataset: Any = None  # a FileDataset / TabularDataset
    param: PipelineParameter | None = None
    datastore: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.name}"


def is_dataset(item: Any) -> bool:
    """A FileDataset / TabularDataset (data/dataset.py): it has a definition and as_named_input."""
    return hasattr(item, "as_named_input") and hasattr(getattr(item, "definition", None), "kind")


def is_data_reference(item: Any) -> bool:
    """A DataReference or DataPath: a datastore plus a path on it."""
    return hasattr(item, "path_on_datastore") and hasattr(item, "datastore") and not is_dataset(item)


def is_datapath_binding(item: Any) -> bool:
    """v1's `(PipelineParameter(default_value=DataPath(...)), DataPathComputeBinding(mode))` pair."""
    return (
        isinstance(item, tuple)
        and len(item) == 2
        and isinstance(item[0], PipelineParameter)
        and hasattr(item[1], "mode")
        and hasattr(item[1], "path_on_compute")
    )


def is_dataset_input(item: Any) -> bool:
    return (
        isinstance(item, (DatasetConsumptionConfig, DatasetInput))
        or is_dataset(item)
        or is_data_reference(item)
        or is_datapath_binding(item)
    )


def _kind(dataset: Any) -> str:
    return str(getattr(getattr(dataset, "definition", None), "kind", "file"))


def _default_name(item: Any, position: int) -> str:
    """A name for an input v1 lets go unnamed: its registered name, else its place among the step's inputs."""
    base = getattr(item, "name", None) or getattr(item, "data_reference_name", None)
    if isinstance(base, str) and base:
        cleaned = _NOT_NAME.sub("_", base)
        return cleaned if not cleaned[0].isdigit() else f"_{cleaned}"
    return f"input_{position}"


def _datastore_name(datastore: Any) -> str:
    name = getattr(datastore, "name", datastore)
    if not isinstance(name, str) or not name:
        raise InvalidInputError(
            "A data reference needs a datastore: pass DataReference(datastore, path_on_datastore=...)."
        )
    return name


def to_dataset_input(item: Any, position: int, step_name: str) -> DatasetInput:
    """The graph-bound form of one dataset-like step input or argument (InvalidInputError if unusable)."""
    if isinstance(item, DatasetInput):
        return item
    if is_datapath_binding(item):
        param, binding = item
        if binding.mode not in ("mount", "download"):
            raise InvalidInputError(
                f"Step {step_name!r}: DataPath parameter {param.name!r} is bound with mode {binding.mode!r}; "
                "an input is read with mode 'mount' or 'download'."
            )
        if not is_datapath(param.default_value):
            raise InvalidInputError(
                f"Step {step_name!r}: PipelineParameter {param.name!r} is bound like a DataPath, but its "
                "default_value is not a DataPath."
            )
        return DatasetInput(param.name, binding.mode, param=param)
    if isinstance(item, DatasetConsumptionConfig):
        source = item.dataset
        if isinstance(source, PipelineParameter):
            if not is_dataset(source.default_value):
                raise InvalidInputError(
                    f"Step {step_name!r}: dataset input {item.name!r} uses PipelineParameter {source.name!r}, "
                    "whose default_value is not a dataset; give it a FileDataset or TabularDataset default."
                )
            return DatasetInput(item.name, item.mode, param=source)
        if not is_dataset(source):
            raise InvalidInputError(
                f"Step {step_name!r}: dataset input {item.name!r} holds a {type(source).__name__}, not a dataset."
            )
        return DatasetInput(item.name, item.mode, dataset=source)
    if is_dataset(item):  # v1: a bare dataset is as_named_input(<generated name>); files arrive mounted
        mode = "direct" if _kind(item) == "tabular" else "mount"
        return DatasetInput(_default_name(item, position), mode, dataset=item)
    if is_data_reference(item):
        mode = str(getattr(item, "mode", None) or "mount")
        if mode not in ("mount", "download"):
            raise InvalidInputError(
                f"Step {step_name!r}: data reference {_default_name(item, position)!r} has mode {mode!r}; "
                "an input is read with as_mount() or as_download() (as_upload() is for outputs)."
            )
        path = getattr(item, "path_on_datastore", None) or ""
        return DatasetInput(
            _default_name(item, position), mode, datastore=_datastore_name(item.datastore), path=str(path)
        )
    raise InvalidInputError(f"Step {step_name!r}: {type(item).__name__} is not a dataset input.")


def dataset_inputs_of(step: Any) -> list[tuple[Any, DatasetInput]]:
    """Every dataset input of a step (from inputs=[...] and arguments=[...]), keyed by the object given,
    so an object listed in both places is one input."""
    found: list[tuple[Any, DatasetInput]] = []
    for item in [*step.inputs, *step.arguments]:
        if not is_dataset_input(item) or any(seen is item for seen, _ in found):
            continue
        found.append((item, to_dataset_input(item, len(found), step.name)))
    return found


def source_json(spec: DatasetInput) -> dict[str, Any]:
    """The graph's `source` of one input (a dataset goes in as data/dataset.py's dataset_payload)."""
    if spec.param is not None:
        return {"param": spec.param.name}
    if spec.dataset is not None:
        from runyard.data.dataset import dataset_payload

        return {"dataset": dataset_payload(spec.dataset)}
    return {"datastore": spec.datastore, "path": spec.path}
