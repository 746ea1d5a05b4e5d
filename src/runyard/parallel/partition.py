"""A ParallelRunStep's inputs cut into mini-batches (driver), and one mini-batch loaded (worker).

File inputs: `mini_batch_size` files per mini-batch in sorted order. Tabular inputs: per table file, rows
split so a mini-batch holds about `mini_batch_size` bytes (`max(1, rows * size // file_bytes)` rows); a
mini-batch never crosses a file boundary, so a worker reads one file (once: `TableCache`) and slices it.
Mini-batch ids follow plan order, which only depends on the inputs and the settings: a resumed job gets
the same ids for the same work.

Nothing is dropped silently. Ragged CSV lines are skipped by the reader (pyarrow's invalid_row_handler,
the same in planner and worker so row numbers agree) and reported as failed records "file:line"; a table
file that cannot be read at all, or an entry that is neither a file nor a folder (a broken link), is an
`ItemProblem`. Hidden files are items like any other file: a folder's every regular file is input.

Datasets (source "dataset") go through the data layer: see partition_data.py. The worker imports this
module, so it imports nothing heavy at module level (pyarrow and pandas only when a table is read).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from runyard.errors import InvalidInputError
from runyard.parallel import tables
from runyard.parallel.tables import TableCache

if TYPE_CHECKING:
    import pyarrow as pa

    from runyard.engine.graph_parallel import ParallelSettings

__all__ = [
    "InputEntry",
    "ItemProblem",
    "MiniBatch",
    "Plan",
    "TableCache",
    "list_files",
    "load_mini_batch",
    "plan_mini_batches",
]

#: Rows of one corrupt file reported one by one; the rest are counted in one problem per file.
MAX_ROW_PROBLEMS = 100


class InputEntry(Protocol):
    """The job file's input entry (parallel/job.py defines the model)."""

    @property
    def name(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def path(self) -> str | None: ...


@dataclass(frozen=True)
class MiniBatch:
    id: int
    input: str
    kind: str
    files: tuple[str, ...]
    rows: tuple[int, int] | None = None
    items: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "input": self.input,
            "kind": self.kind,
            "files": list(self.files),
            "rows": list(self.rows) if self.rows is not None else None,
            "items": self.items,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MiniBatch:
        rows = d.get("rows")
        return cls(
            id=int(d["id"]),
            input=str(d["input"]),
            kind=str(d["kind"]),
            files=tuple(d["files"]),
            rows=(int(rows[0]), int(rows[1])) if rows is not None else None,
            items=int(d.get("items", 0)),
        )


@dataclass(frozen=True)
class ItemProblem:
    """Items found broken while planning: they count as failed. `item` is a path or "path:line"."""

    input: str
    item: str
    message: str
    items: int = 1


@dataclass
class Plan:
    """The mini-batches to run, the problems found on the way, and every item counted (problems' too)."""

    mini_batches: list[MiniBatch] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)
    total_items: int = 0
    #: lines for the master log: how each input was read (e.g. "materialised to parquet because ...")
    notes: list[str] = field(default_factory=list)
    #: folders whose location may change from one step run to the next, by role ("cache", "input
    #: images"): key() names files relative to them
    roots: dict[str, str] = field(default_factory=dict)

    def key(self) -> str:
        """The plan's identity for resuming: its mini-batches with file paths relative to `roots`, so
        the same work in another run's folder (a new cache, a new mount point) has the same key."""
        import hashlib
        import json

        prefixes = sorted(((p.rstrip("/") + "/", role) for role, p in self.roots.items()), reverse=True)

        def rel(path: str) -> str:
            for prefix, role in prefixes:  # reverse order: a nested root comes before its parent
                if path.startswith(prefix):
                    return f"<{role}>/{path[len(prefix) :]}"
            return path

        digest = hashlib.sha256()
        for mb in self.mini_batches:
            data = mb.to_json() | {"files": [rel(f) for f in mb.files]}
            digest.update(json.dumps(data, sort_keys=True).encode() + b"\n")
        return digest.hexdigest()

    def add(
        self, input_name: str, kind: str, files: tuple[str, ...], rows: tuple[int, int] | None, items: int
    ) -> None:
        self.mini_batches.append(MiniBatch(len(self.mini_batches), input_name, kind, files, rows, items))
        self.total_items += items

    def problem(self, problem: ItemProblem) -> None:
        self.problems.append(problem)
        self.total_items += problem.items


# -- listing ---------------------------------------------------------------------------------------
def list_files(root: Path) -> tuple[list[str], list[str]]:
    """Every regular file below `root` (or `root` itself), sorted by relative path, and the entries that
    are neither file nor folder (broken links, sockets). os.scandir: no stat beyond what it gives."""
    if root.is_file():
        return [str(root)], []
    files: list[tuple[str, str]] = []
    odd: list[str] = []
    stack = [(str(root), "")]
    while stack:
        folder, rel = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                sub = f"{rel}/{entry.name}" if rel else entry.name
                if entry.is_dir():
                    stack.append((entry.path, sub))
                elif entry.is_file():
                    files.append((sub, entry.path))
                else:
                    odd.append(entry.path)
    files.sort()
    return [path for _, path in files], sorted(odd)


# -- planning --------------------------------------------------------------------------------------
def plan_mini_batches(
    inputs: Sequence[InputEntry],
    settings: ParallelSettings,
    cache_dir: Path,
    datasets: Mapping[str, Any] | None = None,
) -> Plan:
    """Cut every input into mini-batches (inputs in the given order, never mixed in one mini-batch).

    `datasets`: the dataset objects of "dataset" inputs by name (Run.get_context().input_datasets when
    None, as in the driver; tests and tools pass them).
    InvalidInputError when there is nothing at all to process, naming each input and where it looked."""
    cache_dir = Path(cache_dir).absolute()
    plan = Plan(roots={"cache": str(cache_dir)})
    looked: list[str] = []
    for entry in inputs:
        if entry.source == "dataset":
            from runyard.parallel.partition_data import plan_dataset

            where = plan_dataset(entry, settings, cache_dir, plan, datasets)
        else:
            where = _plan_path(entry, settings, plan)
        looked.append(f"input {entry.name!r} ({where})")
    if not plan.mini_batches and not plan.problems:
        raise InvalidInputError(
            f"ParallelRunStep has nothing to process: {'; '.join(looked)} holds no files or rows. "
            "Check that the input points at the data (and that the data was written before this step)."
        )
    return plan


def _plan_path(entry: InputEntry, settings: ParallelSettings, plan: Plan) -> str:
    if not entry.path:
        raise InvalidInputError(
            f"Input {entry.name!r} has no local path: the step was given no data for it. Pass a dataset, "
            "a DataReference or a PipelineData as this input."
        )
    root = Path(entry.path).absolute()
    if not root.exists():
        raise InvalidInputError(f"Input {entry.name!r}: {root} does not exist. Check the input's path.")
    files, odd = list_files(root)
    plan.roots[f"input {entry.name}"] = str(root if root.is_dir() else root.parent)
    for path in odd:
        plan.problem(ItemProblem(entry.name, path, "not a regular file (a broken link?): it cannot be read"))
    if entry.kind == "tabular":
        for path in files:
            plan_table_file(entry.name, path, path, os.path.getsize(path), settings.mini_batch_size, plan)
    else:
        add_file_batches(entry.name, files, settings.mini_batch_size, plan)
    return str(root)


def add_file_batches(input_name: str, files: Sequence[str], size: int, plan: Plan) -> None:
    """`size` files per mini-batch, in the given order."""
    step = max(1, size)
    for start in range(0, len(files), step):
        chunk = tuple(files[start : start + step])
        plan.add(input_name, "file", chunk, None, len(chunk))


def plan_table_file(
    input_name: str, local: str, display: str, file_bytes: int, size: int, plan: Plan
) -> None:
    """Count a table file's rows (recording its corrupt lines) and add its mini-batches."""
    try:
        rows, bad = count_rows(local)
    except (OSError, InvalidInputError) as err:
        plan.problem(ItemProblem(input_name, display, _reason(err)))
        return
    record_bad_rows(input_name, display, bad, plan)
    add_row_batches(input_name, local, rows, file_bytes, size, plan)


def record_bad_rows(input_name: str, display: str, bad: Sequence[tuple[int | None, str]], plan: Plan) -> None:
    """One failed record "file:line" per corrupt row (the first MAX_ROW_PROBLEMS; then one for the rest)."""
    for line, text in bad[:MAX_ROW_PROBLEMS]:
        where = f"{display}:{line}" if line is not None else display
        plan.problem(ItemProblem(input_name, where, f"corrupt row skipped: {text}"))
    if len(bad) > MAX_ROW_PROBLEMS:
        more = len(bad) - MAX_ROW_PROBLEMS
        plan.problem(ItemProblem(input_name, display, f"{more} more corrupt rows skipped", items=more))


def add_row_batches(input_name: str, local: str, rows: int, file_bytes: int, size: int, plan: Plan) -> None:
    per_batch = max(1, rows * size // max(1, file_bytes))
    for start in range(0, rows, per_batch):
        stop = min(rows, start + per_batch)
        plan.add(input_name, "tabular", (local,), (start, stop), stop - start)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"cannot be read: {err.strerror}" + (f" ({err.filename})" if err.filename else "")
    return f"cannot be read: {str(err).splitlines()[0] if str(err) else type(err).__name__}"


# -- reading table files (the same code in planner and worker) -------------------------------------
def count_rows(path: str) -> tuple[int, list[tuple[int | None, str]]]:
    """Rows of a table file, and its corrupt lines (line number, text)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(path).metadata.num_rows, []
        except OSError:
            raise
        except Exception as err:  # pyarrow's errors: not a parquet file, truncated, ...
            raise InvalidInputError(f"not a readable parquet file: {err}") from None
    table, bad = read_csv(path)
    return table.num_rows, bad


def read_csv(
    path: str, numbered: bool = True, separator: str = ",", encoding: str = "utf8", header: bool = True
) -> tuple[pa.Table, list[tuple[int | None, str]]]:
    """tables.read_csv, its TableReadError as InvalidInputError (the planner's error)."""
    try:
        return tables.read_csv(path, numbered, separator, encoding, header)
    except tables.TableReadError as err:
        raise InvalidInputError(str(err)) from None


def load_mini_batch(mb: MiniBatch, cache: MutableMapping[str, Any] | None = None) -> list[str] | Any:
    """What the entry script's run() gets: the list of file paths (file kind) or a pandas DataFrame of
    the mini-batch's rows (tabular). `cache`: the worker's TableCache (a module-wide one when None).
    The worker itself reads through parallel/tables.py directly (it does not import this module)."""
    if mb.kind == "file":
        return list(mb.files)
    try:
        return tables.load_rows(mb.files[0], mb.rows, cache)
    except tables.TableReadError as err:
        raise InvalidInputError(str(err)) from None
