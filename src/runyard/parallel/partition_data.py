"""Partitioning a dataset input (source "dataset") through runyard's data layer.

The driver gets the FileDataset or TabularDataset with `Run.get_context().input_datasets[name]`.
Files on a local datastore (or local sources) are used in place; remote ones are fetched once and
linked into the job's cache folder, so workers only ever open local paths.

A TabularDataset keeps its own reading options. Where the worker's plain reader (CSV with a header and
commas, or a .parquet file) reads a file exactly as the dataset would, the file is used in place.
Otherwise each file is read here with the dataset's options (separator, header, encoding, column types,
path columns, keep/drop_columns) and written to parquet in the cache folder, one parquet file per source
file, so mini-batches still never cross a source file. Transforms that need the whole table (take, skip,
take_sample, random_split) or headers shared between files make per-file reading wrong: then the dataset
is materialised once to parquet and that is partitioned. Plan.notes says which way each input went.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config
from runyard.errors import InvalidInputError, RunyardError
from runyard.parallel.partition import (
    InputEntry,
    ItemProblem,
    Plan,
    _plan_path,
    _reason,
    add_file_batches,
    add_row_batches,
    plan_table_file,
    read_csv,
    record_bad_rows,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from runyard.data.resolve import Located
    from runyard.engine.graph_parallel import ParallelSettings

__all__ = ["plan_dataset"]

#: Transforms that apply to each file's rows on their own; any other needs the whole table.
PER_FILE_TRANSFORMS = ("keep_columns", "drop_columns")


def input_dataset(entry: InputEntry, datasets: Mapping[str, Any] | None) -> Any:
    """The dataset object (or a local path, for a mounted input) behind a "dataset" input."""
    if datasets is None and not os.environ.get(config.ENV_RUN_ID):
        datasets = {}  # outside a submitted run there are no inputs (and no offline run is started for it)
    elif datasets is None:
        from runyard.core.run import Run

        datasets = Run.get_context().input_datasets
    if entry.name not in datasets:
        known = ", ".join(sorted(datasets)) or "none"
        raise InvalidInputError(
            f"Input {entry.name!r} is a dataset input, but the job has no dataset of that name (its inputs: "
            f"{known}). Pass the dataset as a named input, e.g. ds.as_named_input({entry.name!r})."
        )
    return datasets[entry.name]


def plan_dataset(
    entry: InputEntry,
    settings: ParallelSettings,
    cache_dir: Path,
    plan: Plan,
    datasets: Mapping[str, Any] | None = None,
) -> str:
    """Add the mini-batches of one dataset input to `plan`; returns where it looked (for messages)."""
    dataset = input_dataset(entry, datasets)
    if isinstance(dataset, str | os.PathLike):  # a mounted/downloaded input: its files are a folder
        path_entry = _PathEntry(entry.name, entry.kind, "path", str(dataset))
        return _plan_path(path_entry, settings, plan)
    from runyard.data.tabular_dataset import TabularDataset

    where = f"dataset {dataset.name or '(unregistered)'}: {_sources(dataset)}"
    folder = Path(cache_dir) / entry.name
    if isinstance(dataset, TabularDataset):
        _plan_tabular(entry.name, dataset, settings.mini_batch_size, folder, plan)
    else:
        files = []
        for item in dataset._files():
            try:
                files.append(_local(item, folder))
            except (OSError, RunyardError) as err:  # one file that cannot be fetched fails alone
                plan.problem(ItemProblem(entry.name, item.file.path, _reason(err)))
        add_file_batches(entry.name, files, settings.mini_batch_size, plan)
    return where


class _PathEntry:
    def __init__(self, name: str, kind: str, source: str, path: str) -> None:
        self.name, self.kind, self.source, self.path = name, kind, source, path


def _sources(dataset: Any) -> str:
    parts = []
    for source in dataset.definition.sources:
        if "datastore" in source:
            parts.append(f"datastore {source['datastore']!r} path {source['path']!r}")
        else:
            parts.append(str(source.get("local") or source.get("url")))
    return ", ".join(parts)


def _local(item: Located, folder: Path) -> str:
    """The file's local path: in place on a local store, else a copy linked into `folder`."""
    in_place = item.backend.local_path(item.store_path)
    if in_place is not None:
        return str(in_place)
    fetched = Path(item.backend.fetch(item.store_path))
    target = folder / "files" / item.rel
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
        try:
            os.link(fetched, partial)
        except OSError:
            shutil.copyfile(fetched, partial)
        os.replace(partial, target)
    return str(target)


def _plan_tabular(name: str, dataset: Any, size: int, folder: Path, plan: Plan) -> None:
    from runyard.data.tabular_read import encoding_of, header_mode

    definition = dataset.definition
    fmt = dict(definition.format or {"type": "delimited"})
    kind = fmt.get("type", "delimited")
    transforms = list(definition.transforms)
    located = dataset._located()
    header = header_mode(fmt.get("header", True)) if kind == "delimited" else "same"
    whole = [t["op"] for t in transforms if t.get("op") not in PER_FILE_TRANSFORMS]
    if whole or (header in ("first", "combine") and len(located) > 1):
        why = (
            f"transform {whole[0]}"
            if whole
            else f"header={fmt.get('header')!r} (headers shared between files)"
        )
        _materialise(name, dataset, size, folder, plan, why)
        return
    extras = bool(
        transforms or definition.include_path or definition.partition_format or definition.set_column_types
    )
    simple_csv = kind == "delimited" and not (
        fmt.get("support_multi_line") or fmt.get("empty_as_string") or fmt.get("infer_column_types") is False
    )
    plain_csv = (
        simple_csv and fmt.get("separator", ",") == "," and encoding_of(fmt) == "utf8" and header == "same"
    )
    converted = 0
    for index, item in enumerate(located):
        display = item.file.path
        try:
            local = _local(item, folder)
            file_bytes = os.path.getsize(local)
        except (OSError, RunyardError) as err:
            plan.problem(ItemProblem(name, display, _reason(err)))
            continue
        if not extras and (
            (plain_csv and not local.endswith(".parquet"))
            or (kind == "parquet" and local.endswith(".parquet"))
        ):
            plan_table_file(name, local, display, file_bytes, size, plan)
            continue
        try:
            if simple_csv:
                table, bad = read_csv(
                    local, True, str(fmt.get("separator", ",")), encoding_of(fmt), header != "none"
                )
                record_bad_rows(name, display, bad, plan)
                table = _extras(table, display, definition, transforms)
            else:
                table = _read_one(local, display, fmt, definition, transforms)
        except (OSError, RunyardError) as err:
            plan.problem(ItemProblem(name, display, _reason(err)))
            continue
        target = folder / "tables" / f"{index:06d}.parquet"
        _write_parquet(table, target)
        converted += 1
        add_row_batches(name, str(target), table.num_rows, file_bytes, size, plan)
    if converted:
        plan.notes.append(
            f"Input {name!r}: {converted} file(s) read with the dataset's options and stored as parquet "
            f"in {folder / 'tables'} (one per source file)."
        )


def _extras(table: pa.Table, display: str, definition: Any, transforms: list[dict[str, Any]]) -> pa.Table:
    """Path/partition columns, set_column_types and per-file transforms, as the dataset applies them."""
    from runyard.data.partition_format import PartitionFormat
    from runyard.data.tabular_read import add_path_columns, apply_transforms, set_column_types_of

    partitions = PartitionFormat(definition.partition_format) if definition.partition_format else None
    table = add_path_columns(table, display, definition.include_path, partitions)
    table = set_column_types_of(table, dict(definition.set_column_types), "the file")
    return apply_transforms(table, transforms)


def _read_one(
    local: str, display: str, fmt: dict[str, Any], definition: Any, transforms: list[dict[str, Any]]
) -> pa.Table:
    from runyard.data.tabular_read import apply_transforms, read_table

    table = read_table(
        [(Path(local), display)],
        fmt,
        include_path=definition.include_path,
        partition_format=definition.partition_format,
        set_column_types=dict(definition.set_column_types) or None,
    )
    return apply_transforms(table, transforms)


def _write_parquet(table: pa.Table, target: Path) -> None:
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    pq.write_table(table, partial)
    os.replace(partial, target)


def _materialise(name: str, dataset: Any, size: int, folder: Path, plan: Plan, why: str) -> None:
    """Read the whole dataset once (its transforms need every row) and partition the parquet copy."""
    from runyard.data.tabular_read import write_parquet_files

    target = folder / "materialised"
    shutil.rmtree(target, ignore_errors=True)
    try:
        table = dataset._table()
    except (OSError, RunyardError) as err:
        plan.problem(ItemProblem(name, _sources(dataset), _reason(err)))
        return
    parts = write_parquet_files(table, target) if table.num_rows else []
    plan.notes.append(
        f"Input {name!r}: {why} needs the whole table, so the dataset was read once and stored as parquet "
        f"in {target} ({table.num_rows} rows); mini-batches are cut from that copy."
    )
    # mini_batch_size means bytes of the source files: scale each part by the source's bytes per row
    source_bytes = sum(item.file.size or 0 for item in dataset._located()) or 1
    for part in sorted(parts):
        rows = _parquet_rows(part)
        add_row_batches(name, str(part), rows, max(1, source_bytes * rows // table.num_rows), size, plan)


def _parquet_rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)
