"""Reading one table file of a ParallelRunStep input, shared by the planner and the workers.

This module imports nothing of runyard: a worker (started by path, parallel/worker.py) loads it by path, so
a tabular worker pays for pyarrow and pandas but not for the `runyard` package (about a second per worker,
and again for every replacement after a timeout). Errors are `TableReadError`; the planner turns them into
InvalidInputError (parallel/partition.py).
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import MutableMapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["TableCache", "TableReadError", "load_rows", "read_csv", "read_table_file"]


class TableReadError(ValueError):
    """A table file that cannot be read; the message says why."""


def read_csv(
    path: str, numbered: bool = True, separator: str = ",", encoding: str = "utf8", header: bool = True
) -> tuple[pa.Table, list[tuple[int | None, str]]]:
    """A CSV file (a header row unless `header` is False), ragged lines skipped and returned (line, text).

    Threaded parsing does not know line numbers; when there are bad lines and `numbered`, the file is read
    once more single-threaded to name them (only files with problems pay for that)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if os.path.getsize(path) == 0:
        return pa.table({}), []
    bad: list[tuple[int | None, str]] = []

    def handler(row: Any) -> str:
        text = f"{row.text[:200]} (expected {row.expected_columns} fields, got {row.actual_columns})"
        bad.append((row.number, text))
        return "skip"

    def read(threads: bool) -> pa.Table:
        bad.clear()
        try:
            return pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(
                    use_threads=threads, encoding=encoding, autogenerate_column_names=not header
                ),
                parse_options=pacsv.ParseOptions(delimiter=separator, invalid_row_handler=handler),
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError) as err:
            raise TableReadError(f"not a readable CSV file: {str(err).splitlines()[0]}") from None

    table = read(True)
    if bad and numbered:
        table = read(False)
    if any(pa.types.is_binary(f.type) for f in table.schema):  # pyarrow keeps undecodable text as bytes
        raise TableReadError(f"not a readable CSV file: it is not valid {encoding} text")
    if not header:
        table = table.rename_columns([f"Column{i + 1}" for i in range(table.num_columns)])
    return table, bad


def read_table_file(path: str) -> pa.Table:
    """The whole table file as the planner counted it (parquet or CSV with corrupt lines skipped)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        return pq.read_table(path, memory_map=True)
    return read_csv(path, numbered=False)[0]


class TableCache(OrderedDict[str, Any]):
    """A worker's last few table files (mini-batches of one file usually come one after another)."""

    def __init__(self, maxsize: int = 2) -> None:
        super().__init__()
        self.maxsize = maxsize


_DEFAULT_CACHE = TableCache()


def load_rows(path: str, rows: Sequence[int] | None, cache: MutableMapping[str, Any] | None = None) -> Any:
    """Rows [start, stop) of a table file as a pandas DataFrame (all of it when `rows` is None).
    `cache`: the worker's TableCache (a module-wide one when None)."""
    store = _DEFAULT_CACHE if cache is None else cache
    table = store.get(path)
    if table is None:
        table = read_table_file(path)
        store[path] = table
        limit = getattr(store, "maxsize", 2)
        while len(store) > limit:
            del store[next(iter(store))]
    elif isinstance(store, OrderedDict):
        store.move_to_end(path)
    start, stop = (int(rows[0]), int(rows[1])) if rows is not None else (0, table.num_rows)
    return table.slice(start, stop - start).to_pandas(split_blocks=True, self_destruct=False)
