"""How a run or a pipeline step consumes a dataset: v1's DatasetConsumptionConfig.

`ds.as_named_input("train")` names the input (the key of `Run.input_datasets`); `.as_mount()` /
`.as_download()` say whether the job sees a read-only view or real copies of a FileDataset's files
(data/materialize.py makes either). "direct" hands the job the dataset object itself (tabular data).
HDFS needs a Spark cluster runyard does not have, so `.as_hdfs()` is refused with the alternatives.
"""

from __future__ import annotations

import re
from typing import Any

from runyard.compat import v1_keywords
from runyard.errors import InvalidInputError

#: v1's mode names (azureml.data.dataset_consumption_config / output_dataset_config).
DIRECT_MODE = "direct"
MOUNT_MODE = "mount"
DOWNLOAD_MODE = "download"
UPLOAD_MODE = "upload"
MODES = (DIRECT_MODE, MOUNT_MODE, DOWNLOAD_MODE)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HDFS_REFUSED = (
    "as_hdfs() is not available in runyard: HDFS mode needs a Spark cluster (Synapse), which runs locally "
    "do not have. Use as_mount() for a read-only view of the files or as_download() for copies."
)


def _dataset_kind(dataset: Any) -> str | None:
    """'file' / 'tabular' for a dataset (or a PipelineParameter whose default is one); None if unknown."""
    target = getattr(dataset, "default_value", dataset)
    definition = getattr(target, "definition", None)
    kind = getattr(definition, "kind", None)
    return kind if isinstance(kind, str) else None


@v1_keywords
class DatasetConsumptionConfig:
    """A named dataset input and how it is delivered: 'direct', 'mount' or 'download'.

    `dataset` is a FileDataset / TabularDataset, or a PipelineParameter whose default is one (overridable
    when the pipeline is submitted). `path_on_compute` is where a mounted/downloaded dataset appears
    (relative to the job's working folder); None lets runyard choose a folder.
    """

    def __init__(
        self, name: str, dataset: Any, mode: str = "direct", path_on_compute: str | None = None
    ) -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInputError(
                f"Dataset input name {name!r} is not valid: use letters, digits and '_', starting with a "
                "letter or '_' (it becomes a key of run.input_datasets and an environment variable)."
            )
        if mode not in MODES:
            raise InvalidInputError(f"Dataset input mode must be one of {list(MODES)}, got {mode!r}.")
        if mode == "hdfs":
            raise InvalidInputError(_HDFS_REFUSED)
        kind = _dataset_kind(dataset)
        if mode in ("mount", "download") and kind == "tabular":
            raise InvalidInputError(
                f"Dataset input {name!r}: a TabularDataset can only be consumed directly (as_named_input(name)); "
                "mount and download are for FileDatasets. Read it in the job with "
                "run.input_datasets[name].to_pandas_dataframe()."
            )
        if path_on_compute is not None and not isinstance(path_on_compute, str):
            raise InvalidInputError(f"path_on_compute must be text, got {type(path_on_compute).__name__}.")
        self._name = name
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    @property
    def name(self) -> str:
        return self._name

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """The same input, delivered as a read-only view of the files (no FUSE: links or cached copies)."""
        return DatasetConsumptionConfig(self._name, self.dataset, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """The same input, delivered as real copies of the files."""
        return DatasetConsumptionConfig(self._name, self.dataset, "download", path_on_compute)

    def as_hdfs(self) -> DatasetConsumptionConfig:
        raise InvalidInputError(_HDFS_REFUSED)

    def __repr__(self) -> str:
        return f"DatasetConsumptionConfig(name={self._name!r}, mode={self.mode!r}, dataset={self.dataset!r})"
