"""The driver's job file: everything `python -m runyard.parallel.driver` needs, in one JSON document.

The scheduler (engine) writes it with resolved settings and local paths and points the driver at it with
the environment variable `RUNYARD_PARALLEL_JOB`; the driver reads it with `ParallelJob.load`. A version
field guards against a driver and a scheduler of different runyard versions reading each other's files
wrongly. This module is what the engine imports from `runyard.parallel`, so it stays light: pydantic and
the graph's settings only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runyard.engine.graph_parallel import ParallelSettings
from runyard.errors import InvalidInputError

__all__ = ["ENV_JOB", "JOB_VERSION", "InputEntry", "ParallelJob", "SideInput"]

#: The environment variable holding the job file's absolute path.
ENV_JOB = "RUNYARD_PARALLEL_JOB"
JOB_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputEntry(_Model):
    """One partitioned input: a local folder/file (`source="path"`) or a dataset the step run holds by
    `name` (`source="dataset"`, found with Run.get_context().input_datasets[name])."""

    name: str
    kind: Literal["file", "tabular"]
    source: Literal["path", "dataset"]
    path: str | None = None


class SideInput(_Model):
    """An input every worker gets whole, as a path (also in env AZUREML_DATAREFERENCE_<name>)."""

    name: str
    path: str | None = None


class ParallelJob(_Model):
    """The job file's content (see docs/architecture.md, ParallelRunStep)."""

    v: int = JOB_VERSION
    step: str
    entry_script: str
    settings: dict[str, Any]
    inputs: list[InputEntry] = Field(min_length=1)
    side_inputs: list[SideInput] = Field(default_factory=list)
    output: str | None = None
    arguments: list[str] = Field(default_factory=list)
    checkpoint: str
    node: str = "0"

    @property
    def parallel_settings(self) -> ParallelSettings:
        return ParallelSettings.from_json(self.settings)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ParallelJob:
        """Read and check a job file (InvalidInputError naming the file and what is wrong)."""
        where = Path(path)
        try:
            data = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"ParallelRunStep job file {where} cannot be read: {exc}") from None
        version = data.get("v") if isinstance(data, dict) else None
        if version != JOB_VERSION:
            raise InvalidInputError(
                f"ParallelRunStep job file {where} has version {version!r}, but this runyard's driver reads "
                f"version {JOB_VERSION}. The pipeline was scheduled by another runyard version: rerun it "
                "with the runyard installed in the step's environment."
            )
        try:
            job = cls.model_validate(data)
            settings = job.parallel_settings  # checks the settings' field names
        except (ValidationError, TypeError) as exc:
            raise InvalidInputError(f"ParallelRunStep job file {where} is not valid: {exc}") from None
        _check_values(settings, where)
        return job

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the job file atomically (temp file + rename)."""
        where = Path(path)
        tmp = where.with_name(f".{where.name}.{os.getpid()}.tmp")
        tmp.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        os.replace(tmp, where)
        return where


def _check_values(settings: ParallelSettings, where: Path) -> None:
    """The settings' values, checked as the scheduler checks them (engine.graph_parallel.check_settings):
    the driver must not trust its job file more than the graph (an append_row_file_name with a path would
    write outside the output folder; process_count_per_node=0 would wait forever for a worker)."""
    try:
        from runyard.engine.graph_parallel import check_settings
    except ImportError:  # an engine without it: the fields' names were checked above
        return
    try:
        check_settings(settings)
    except (InvalidInputError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"the job file's settings are not valid: {exc} (job file {where})") from None
