"""A TabularDataset's recorded transforms, applied to a pyarrow Table, and its writers.

Transforms are plain dicts in the dataset definition ({"op": "take", "count": 5}, ...), applied in order.
Random ones (take_sample, random_split) are deterministic for a seed: a row's fate depends only on the
seed and the row's position, so random_split's two sides partition the rows exactly and re-reading a
registered dataset gives the same rows. `rows_needed` tells the reader how many leading rows the
transforms can look at, so take(10) on a thousand files reads one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from runyard.errors import InvalidInputError

#: Rows per part file written by to_csv_files / to_parquet_files.
ROWS_PER_PART = 1_000_000


def rows_needed(transforms: Sequence[dict[str, Any]]) -> int | None:
    """How many leading rows of the data `transforms` can reach, or None when they need all of it."""
    need: int | None = None
    for step in reversed(transforms):
        op = step.get("op")
        if op == "take":
            count = max(int(step["count"]), 0)
            need = count if need is None else min(need, count)
        elif op == "skip":
            need = None if need is None else need + max(int(step["count"]), 0)
        elif op in ("take_sample", "random_split"):
            need = None  # which rows survive depends on every row's position
    return need


def apply_transforms(table: pa.Table, transforms: Sequence[dict[str, Any]]) -> pa.Table:
    """`table` after each transform in order. InvalidInputError for an unknown op or bad parameters."""
    for step in transforms:
        table = _apply(table, step)
    return table


def _apply(table: pa.Table, step: dict[str, Any]) -> pa.Table:
    op = step.get("op")
    if op == "skip":
        return table.slice(min(_count(step), table.num_rows))
    if op == "take":
        return table.slice(0, _count(step))
    if op == "take_sample":
        probability = _fraction(step, "probability")
        keep = _uniform(table.num_rows, step.get("seed")) < probability
        return table.filter(pa.array(keep))
    if op == "random_split":
        percentage = _fraction(step, "percentage")
        if step.get("seed") is None:
            raise InvalidInputError(
                "random_split needs a seed so that its two sides partition the same rows."
            )
        first = _uniform(table.num_rows, step["seed"]) < percentage
        side = step.get("side", "first")
        if side not in ("first", "second"):
            raise InvalidInputError(f"random_split side must be 'first' or 'second', got {side!r}.")
        return table.filter(pa.array(first if side == "first" else ~first))
    if op == "keep_columns":
        columns = _columns(step)
        missing = [c for c in columns if c not in table.column_names]
        if missing and step.get("validate", False):
            raise InvalidInputError(
                f"keep_columns names columns the data does not have: {missing}; its columns are {table.column_names}."
            )
        return table.select([c for c in columns if c in table.column_names])
    if op == "drop_columns":
        return table.drop_columns([c for c in _columns(step) if c in table.column_names])
    raise InvalidInputError(
        f"Unknown transform {op!r}: expected skip, take, take_sample, random_split, keep_columns or drop_columns."
    )


def _count(step: dict[str, Any]) -> int:
    count = step.get("count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise InvalidInputError(f"{step.get('op')} needs a whole number count >= 0, got {count!r}.")
    return count


def _fraction(step: dict[str, Any], key: str) -> float:
    value = step.get(key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
        raise InvalidInputError(f"{step.get('op')} needs {key} between 0.0 and 1.0, got {value!r}.")
    return float(value)


def _columns(step: dict[str, Any]) -> list[str]:
    columns = step.get("columns")
    if isinstance(columns, str):
        return [columns]
    if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
        raise InvalidInputError(f"{step.get('op')} needs a column name or a list of names, got {columns!r}.")
    return list(columns)


def _uniform(rows: int, seed: Any) -> np.ndarray:
    """One number in [0, 1) per row, the same for the same seed and row position."""
    return np.random.default_rng(None if seed is None else int(seed)).random(rows)


def write_csv_files(table: pa.Table, folder: str | os.PathLike[str], separator: str = ",") -> list[Path]:
    """Write `table` as part-00000.csv, part-00001.csv, ... under `folder` (created); returns the files.

    Each part is written under a temporary name and renamed, so a reader never sees half a file.
    """
    if len(separator) != 1:
        raise InvalidInputError(f"separator must be a single character, got {separator!r}.")
    options = pacsv.WriteOptions(delimiter=separator)
    return _write_parts(table, Path(folder), "csv", lambda part, p: pacsv.write_csv(part, p, options))


def write_parquet_files(table: pa.Table, folder: str | os.PathLike[str]) -> list[Path]:
    """Write `table` as part-00000.parquet, ... under `folder` (created), atomically per file."""
    return _write_parts(table, Path(folder), "parquet", lambda part, p: pq.write_table(part, p))


def _write_parts(table: pa.Table, folder: Path, ext: str, write: Any) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    starts = range(0, max(table.num_rows, 1), ROWS_PER_PART)
    for number, start in enumerate(starts):
        final = folder / f"part-{number:05d}.{ext}"
        temporary = folder / f".{final.name}.{uuid.uuid4().hex}.tmp"
        try:
            write(table.slice(start, ROWS_PER_PART), str(temporary))
            os.replace(temporary, final)
        finally:
            temporary.unlink(missing_ok=True)
        written.append(final)
    return written
