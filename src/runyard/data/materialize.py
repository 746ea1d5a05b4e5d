"""Put a dataset's files in front of a job: a read-only view ("mount") or real copies ("download").

v1 mounts datasets with FUSE. runyard has no FUSE: a mount is a folder of symlinks to the datastore's
local files (for a remote store, to cached copies fetched through the backend), which costs nothing for
local data and reads remote data once. Download writes real copies, each atomically (temporary name, then
rename), so a job never sees a half-written file. Both keep the dataset's folder layout below `dest`
(paths relative to the dataset root, as FileDataset.to_path() shows them).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.data.resolve import Located
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

MODES = ("mount", "download")


def _target(dest: Path, rel: str) -> Path:
    parts = [p for p in rel.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidInputError(f"Dataset file {rel!r} has no safe place below {dest}.")
    return dest.joinpath(*parts)


def place_files(located: Sequence[Located], dest: Path, mode: str, overwrite: bool = False) -> list[Path]:
    """Link ("mount") or copy ("download") each file to dest/<rel>; returns the placed paths in order.
    An existing file is an InvalidInputError unless `overwrite`."""
    if mode not in MODES:
        raise InvalidInputError(f"Materialize mode must be one of {list(MODES)}, got {mode!r}.")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    placed: list[Path] = []
    for item in located:
        target = _target(dest, item.rel)
        if target.exists() or target.is_symlink():
            if not overwrite:
                raise InvalidInputError(
                    f"{target} already exists: pass overwrite=True to replace it, or choose an empty folder."
                )
            if target.is_dir() and not target.is_symlink():
                raise InvalidInputError(
                    f"{target} is a folder where the dataset has a file: remove it first."
                )
        target.parent.mkdir(parents=True, exist_ok=True)
        source = Path(item.backend.fetch(item.store_path)).resolve()
        partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            if mode == "mount":
                os.symlink(source, partial)
            else:
                shutil.copyfile(source, partial)
            os.replace(partial, target)
        finally:
            if partial.is_symlink() or partial.exists():
                partial.unlink()
        placed.append(target)
    return placed


def materialize(ws: Workspace, dataset: Any, mode: str, dest: Path) -> Path:
    """Make `dataset`'s files available under `dest` for a job and return the folder the job gets.

    "mount": a read-only view (symlinks; cached copies for remote stores); "download": real copies. A
    registered version's recorded files are verified first (DataAccessError if one is gone or changed).
    """
    from runyard.data.abstract_dataset import AbstractDataset

    if not isinstance(dataset, AbstractDataset):
        raise InvalidInputError(
            f"materialize needs a FileDataset or TabularDataset, got {type(dataset).__name__}."
        )
    located = dataset._files(workspace=ws)
    place_files(located, Path(dest), mode, overwrite=True)
    return Path(dest)
