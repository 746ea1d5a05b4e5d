"""Run.input_datasets and the datasets of a run's details (v1's `inputDatasets` / `outputDatasets`).

Inside a job (a script run or a pipeline step), the job's inputs file (named by RUNYARD_INPUT_DATASETS,
written by whoever started the job) says what each named input is: a dataset payload for direct inputs,
a local path for mounted or downloaded ones. Reading it is deferred until `input_datasets` is asked for,
so `Run.get_context()` stays cheap (no pyarrow or pandas import on the way).

`get_details()` answers from the store's lineage (`list_dataset_uses`), which script runs and pipeline
steps both write, so either kind of run describes its data the same way.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.errors import InvalidInputError, RunyardError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace
    from runyard.store.records import DatasetUse

INPUT_DATASETS_ENV = "RUNYARD_INPUT_DATASETS"
_MECHANISMS = {"direct": "Direct", "mount": "Mount", "download": "Download"}


def read_inputs_file(ws: Workspace, path: str) -> dict[str, Any]:
    """{input name: dataset object (direct) or local path (mount/download)} from a job's inputs file."""
    try:
        entries = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(
            f"The job's inputs file {path} ({INPUT_DATASETS_ENV}) cannot be read: {exc}. It is written when "
            "the run is submitted; a run started by hand has no dataset inputs."
        ) from None
    if not isinstance(entries, dict):
        raise InvalidInputError(f"The job's inputs file {path} does not hold an object of named inputs.")
    found: dict[str, Any] = {}
    for name, entry in entries.items():
        if not isinstance(entry, dict):
            raise InvalidInputError(f"Input {name!r} in the job's inputs file {path} is not an object.")
        if entry.get("mode", "direct") == "direct" and entry.get("dataset") is not None:
            from runyard.data.dataset import dataset_from_payload

            found[name] = dataset_from_payload(ws, entry["dataset"])
        else:
            found[name] = entry.get("path")
    return found


def _dataset_of(ws: Workspace, use: DatasetUse) -> Any:
    """The dataset a lineage row names: the registered version, one derived from it (ds.take(5): its
    definition is in the detail), an unregistered dataset, or a FileDataset over a datastore path."""
    from runyard.data.dataset import Dataset, dataset_from_payload

    detail = use.detail
    if use.dataset_id is not None and "definition" not in detail:
        return Dataset.get_by_id(ws, use.dataset_id)
    if "definition" in detail:
        return dataset_from_payload(ws, {"definition": detail["definition"], "pinned_id": use.dataset_id})
    if "datastore" in detail:
        source = {"datastore": detail["datastore"], "path": detail.get("path") or ""}
        return dataset_from_payload(ws, {"definition": {"kind": "file", "sources": [source]}})
    return None


def _uses(ws: Workspace, run_id: str) -> list[DatasetUse] | None:
    """The run's lineage rows; None when the store cannot say (an older server)."""
    try:
        return ws.store.list_dataset_uses(run_id=run_id)
    except (AttributeError, NotImplementedError):
        return None


class RunDatasetsMixin:
    """`input_datasets` and the dataset parts of `get_details()` for Run."""

    workspace: Workspace
    _id: str  # set by Run

    @property
    def input_datasets(self) -> dict[str, Any]:
        """Inside this run's job: input name -> dataset (direct) or local path (mount/download). {} elsewhere."""
        cached: dict[str, Any] | None = getattr(self, "_input_datasets", None)
        if cached is not None:
            return cached
        path = os.environ.get(INPUT_DATASETS_ENV)
        if not path or os.environ.get(config.ENV_RUN_ID) != self._id:
            return {}
        found = read_inputs_file(self.workspace, path)
        self._input_datasets = found
        return found

    def _dataset_details(self, data: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(inputDatasets, outputDatasets) in v1's shape, from lineage; the record's own lists otherwise."""
        recorded_outputs: list[dict[str, Any]] = list(data.get("outputDatasets", []))
        uses = _uses(self.workspace, self._id)
        if not uses:
            return list(data.get("inputDatasets", [])), recorded_outputs
        inputs: list[dict[str, Any]] = []
        produced: dict[str, DatasetUse] = {}
        for use in uses:
            if use.direction == "output":
                produced[use.name] = use
                continue
            mode = str(use.detail.get("mode", "direct")).lower()
            inputs.append(
                {
                    "dataset": self._dataset_or_none(use),
                    "consumptionDetails": {
                        "type": "RunInput",
                        "inputName": use.name,
                        "mechanism": _MECHANISMS.get(mode, mode.capitalize()),
                    },
                }
            )
        outputs: list[dict[str, Any]] = []
        for output in recorded_outputs:
            found = produced.pop(str(output.get("name")), None)
            outputs.append(output if found is None else {**output, **self._output_fields(found)})
        for name, use in produced.items():  # outputs the record does not list (pipeline steps)
            outputs.append(
                {"name": name, "outputType": "RunOutput", "outputDetails": {"outputName": name}}
                | self._output_fields(use)
            )
        return inputs, outputs

    def _dataset_or_none(self, use: DatasetUse) -> Any:
        try:
            return _dataset_of(self.workspace, use)
        except RunyardError:  # a version deleted since, a definition an older runyard wrote
            return None

    def _output_fields(self, use: DatasetUse) -> dict[str, Any]:
        fields: dict[str, Any] = {"contentHash": use.content_hash}
        if use.dataset_id is not None:
            fields["dataset"] = self._dataset_or_none(use)
        return fields
