"""FileDataset: a set of files on datastores (or local/URL sources), read as files.

to_path() lists them relative to the dataset root, as v1 does ("/a.csv", "/sub/b.csv"); download() copies
them; mount() gives a read-only view as a context manager without FUSE (data/materialize.py). take/skip/
take_sample/random_split select files; they are recorded in the definition like TabularDataset's
transforms, so a derived dataset of a registered version still reads only that version's files.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from runyard.compat import v1_ignores, v1_keywords
from runyard.data.abstract_dataset import DATASET_CLASSES, AbstractDataset
from runyard.data.consumption import DatasetConsumptionConfig
from runyard.data.materialize import mount_cache, place_files
from runyard.data.resolve import Located
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

_HDFS = (
    "as_hdfs() is not available in runyard: HDFS mode needs a Spark cluster (Synapse), which runs locally do "
    "not have. Use as_mount() for a read-only view of the files or as_download() for copies."
)


def new_seed() -> int:
    return random.SystemRandom().randrange(1 << 31)


def apply_file_transforms(items: list[Located], transforms: tuple[dict[str, Any], ...]) -> list[Located]:
    """take/skip/take_sample/random_split over a file list (deterministic for a recorded seed)."""
    for step in transforms:
        op = step["op"]
        if op == "take":
            items = items[: int(step["count"])]
        elif op == "skip":
            items = items[int(step["count"]) :]
        elif op in ("take_sample", "random_split"):
            rng = random.Random(step.get("seed"))
            draws = [rng.random() for _ in items]
            if op == "take_sample":
                items = [it for it, r in zip(items, draws, strict=True) if r < float(step["probability"])]
            else:
                first = step.get("side", "first") == "first"
                cut = float(step["percentage"])
                items = [it for it, r in zip(items, draws, strict=True) if (r < cut) == first]
        else:
            raise InvalidInputError(f"A FileDataset cannot apply {op!r}: that is a TabularDataset transform.")
    return items


class MountContext:
    """v1's MountContext: `with ds.mount() as ctx: ctx.mount_point`. start() builds the view (symlinks
    to local files, cached copies of remote ones); stop() removes what start() made."""

    def __init__(self, dataset: FileDataset, mount_point: str | None) -> None:
        self._dataset = dataset
        self._requested = mount_point
        self._folder: Path | None = None
        self._created_folder = False
        self._placed: list[Path] = []

    @property
    def mount_point(self) -> str:
        if self._folder is None:
            return str(self._requested) if self._requested is not None else ""
        return str(self._folder)

    def start(self) -> None:
        if self._folder is not None:
            return
        if self._requested is None:
            folder = Path(tempfile.mkdtemp(prefix="runyard-mount-"))
            self._created_folder = True
        else:
            folder = Path(self._requested).expanduser().absolute()
            if folder.exists() and any(folder.iterdir()):
                raise InvalidInputError(f"Mount point {folder} is not empty: choose an empty or new folder.")
            self._created_folder = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True)
        try:
            self._placed = place_files(
                self._dataset._files(), folder, "mount", cache=mount_cache(self._dataset.workspace)
            )
        except BaseException:
            self._cleanup(folder)
            raise
        self._folder = folder

    def _cleanup(self, folder: Path) -> None:
        if self._created_folder:
            shutil.rmtree(folder, ignore_errors=True)
            return
        for link in self._placed:
            link.unlink(missing_ok=True)
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(sub.iterdir()):
                sub.rmdir()

    def stop(self) -> None:
        if self._folder is not None:
            self._cleanup(self._folder)
            self._folder = None
            self._placed = []

    def __enter__(self) -> MountContext:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@v1_keywords
class FileDataset(AbstractDataset):
    """Files on datastores or local/URL sources (v1's azureml.data.FileDataset)."""

    KIND = "file"

    def _files(self, ignore_not_found: bool = False, workspace: Workspace | None = None) -> list[Located]:
        located = self._located(workspace=workspace, ignore_missing=ignore_not_found)
        return apply_file_transforms(located, self._definition.transforms)

    def to_path(self) -> list[str]:
        """The files' paths relative to the dataset root, each with a leading '/' (v1)."""
        return ["/" + item.rel for item in self._files()]

    def download(
        self, target_path: str | None = None, overwrite: bool = False, ignore_not_found: bool = False
    ) -> list[str]:
        """Copy the files below `target_path` (a new temporary folder when None); returns their paths.
        A registered version's files are verified first; `ignore_not_found` skips vanished ones."""
        folder = (
            Path(target_path).expanduser().absolute()
            if target_path is not None
            else Path(tempfile.mkdtemp(prefix="runyard-download-"))
        )
        placed = place_files(self._files(ignore_not_found), folder, "download", overwrite=overwrite)
        return [str(p) for p in placed]

    @v1_ignores(kwargs="FUSE mount options do not apply: runyard mounts are folders of links")
    def mount(self, mount_point: str | None = None, **kwargs: Any) -> MountContext:
        """A context manager giving a read-only view of the files at `mount_point` (a temporary folder when
        None): `with ds.mount() as ctx: open(ctx.mount_point + '/a.csv')`."""
        return MountContext(self, mount_point)

    def _input_name(self) -> str:
        """v1 names an unnamed input after the dataset (or 'input' for an unregistered one)."""
        name = self.name or ""
        cleaned = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        return cleaned if cleaned and not cleaned[0].isdigit() else "input"

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """This dataset as a job input seen through a read-only view (as_named_input(name) names it)."""
        return DatasetConsumptionConfig(self._input_name(), self, "mount", path_on_compute)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """This dataset as a job input copied to the job's machine."""
        return DatasetConsumptionConfig(self._input_name(), self, "download", path_on_compute)

    def as_hdfs(self) -> DatasetConsumptionConfig:
        raise InvalidInputError(_HDFS)

    def take(self, count: int) -> FileDataset:
        return self._derive(self._definition.with_transform("take", count=_count(count, "take")))

    def skip(self, count: int) -> FileDataset:
        return self._derive(self._definition.with_transform("skip", count=_count(count, "skip")))

    def take_sample(self, probability: float, seed: int | None = None) -> FileDataset:
        return self._derive(
            self._definition.with_transform(
                "take_sample",
                probability=_fraction(probability, "probability"),
                seed=new_seed() if seed is None else seed,
            )
        )

    def random_split(self, percentage: float, seed: int | None = None) -> tuple[FileDataset, FileDataset]:
        """Two datasets that partition the files exactly, about `percentage` of them in the first."""
        chosen = new_seed() if seed is None else seed
        cut = _fraction(percentage, "percentage")
        return (
            self._derive(
                self._definition.with_transform("random_split", percentage=cut, seed=chosen, side="first")
            ),
            self._derive(
                self._definition.with_transform("random_split", percentage=cut, seed=chosen, side="second")
            ),
        )


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(f"{what}(count) needs a whole number >= 0, got {value!r}.")
    return value


def _fraction(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= float(value) <= 1.0:
        raise InvalidInputError(f"{what} must be a number between 0.0 and 1.0, got {value!r}.")
    return float(value)


DATASET_CLASSES["file"] = FileDataset
