"""Reading a tabular dataset's local files into one pyarrow Table.

This is the pure reading layer under TabularDataset: it knows formats, not datastores. It takes
(local path, display path) pairs, where the display path is the file's path on its datastore: that is
what `include_path`'s "Path" column shows and what `partition_format` is matched against. pyarrow does
the parsing (multithreaded CSV, Parquet, JSON lines); this module adds v1's options on top and turns
pyarrow's terse failures into errors that name the file, the line and the fix.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

from runyard.data.data_type import DataType, convert_column
from runyard.data.partition_format import PartitionFormat
from runyard.data.tabular_ops import apply_transforms, rows_needed, write_csv_files, write_parquet_files
from runyard.errors import DataAccessError, InvalidInputError

__all__ = [
    "apply_transforms",
    "read_table",
    "rows_needed",
    "table_to_pandas",
    "write_csv_files",
    "write_parquet_files",
]

# v1 encoding names (from_delimited_files(encoding=...)) -> Python codec names.
_ENCODINGS = {
    "utf8": "utf8",
    "utf-8": "utf8",
    "utf8bom": "utf-8-sig",
    "iso88591": "iso-8859-1",
    "latin1": "iso-8859-1",
    "ascii": "ascii",
    "utf16": "utf-16",
    "utf32": "utf-32",
    "windows1252": "cp1252",
}
# v1's PromoteHeadersBehavior names and values; header=True is ALL_FILES_HAVE_SAME_HEADERS, False NO_HEADERS.
_HEADERS = {
    "NO_HEADERS": "none",
    "ONLY_FIRST_FILE_HAS_HEADERS": "first",
    "COMBINE_ALL_FILES_HEADERS": "combine",
    "ALL_FILES_HAVE_SAME_HEADERS": "same",
}
_HEADER_VALUES = {0: "none", 1: "first", 2: "combine", 3: "same"}
# Text read as null: empty fields and the usual spellings (pyarrow's longer default list costs ~20% CPU).
_NULLS = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"]


def read_table(
    files: Iterable[tuple[Path, str]],
    fmt: dict[str, Any],
    include_path: bool = False,
    partition_format: str | None = None,
    set_column_types: dict[str, Any] | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Read `files` (local path, display path) in order into one table.

    `files` may be a generator that fetches each remote file as it is asked for: with `limit`, the files
    after the ones needed are never asked for.
    `limit` stops reading once that many rows are in (take(n) on a thousand files reads the first few).
    Files' schemas are promoted (missing columns become null, int widens to float); a real conflict is an
    InvalidInputError naming both files. Columns then come as: "Path" (include_path), the data columns,
    the partition columns; set_column_types is applied last.
    """
    kind = fmt.get("type", "delimited")
    partitions = PartitionFormat(partition_format) if partition_format else None
    tables: list[tuple[str, pa.Table]] = []
    rows = 0
    header_names: list[str] | None = None
    seen = 0
    for local, display in files:  # lazily: files past `limit` are never fetched
        seen += 1
        remaining = None if limit is None else limit - rows
        if kind != "parquet" and _is_empty(Path(local), display):
            continue  # an empty part file (Spark writes them) adds no rows and no columns
        if kind == "delimited":
            table, names = _read_delimited(Path(local), display, fmt, header_names, remaining)
            header_names = header_names or names
        elif kind == "parquet":
            table = _guard(display, "", lambda p=Path(local): pq.read_table(p))
        elif kind == "json_lines":
            table = _read_json_lines(Path(local), display, fmt)
        else:
            raise InvalidInputError(
                f"Unknown tabular format {kind!r}: use 'delimited', 'parquet' or 'json_lines'."
            )
        if remaining is not None and table.num_rows > remaining:
            table = table.slice(0, remaining)
        rows += table.num_rows
        tables.append((display, add_path_columns(table, display, include_path, partitions)))
        if limit is not None and rows >= limit:
            break  # before the next file is asked for (and fetched)
    if not seen:
        raise InvalidInputError("The dataset has no files to read: check its path or glob.")
    if not tables:
        return pa.table({})
    if partitions is not None:
        partitions.check_matched([d for d, _ in tables])
    return set_column_types_of(_concat(tables, loose=kind == "delimited"), set_column_types, "the data")


def set_column_types_of(table: pa.Table, types: dict[str, Any] | None, what: str) -> pa.Table:
    """`table` with set_column_types applied; a column it lacks is an error naming `what` was read."""
    for column, data_type in (types or {}).items():
        if column not in table.column_names:
            raise InvalidInputError(
                f"set_column_types names column {column!r}, which {what} does not have; "
                f"its columns are {table.column_names}."
            )
        at = table.column_names.index(column)
        table = table.set_column(
            at, column, convert_column(table.column(column), DataType.from_spec(data_type))
        )
    return table


def _is_empty(path: Path, display: str) -> bool:
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        raise DataAccessError(f"File {display!r} of the dataset is gone ({path}).") from None


def table_to_pandas(table: pa.Table) -> Any:
    """The table as a pandas DataFrame, converted the cheap way (no consolidation into 2-D blocks)."""
    return table.to_pandas(split_blocks=True, self_destruct=False)


def encoding_of(fmt: dict[str, Any]) -> str:
    name = str(fmt.get("encoding") or "utf8")
    return _ENCODINGS.get(name.lower().replace("-", "").replace("_", ""), name)


def header_mode(header: Any) -> str:
    if header is True or header is None:
        return "same"
    if header is False:
        return "none"
    name = getattr(header, "name", header)
    if isinstance(name, str) and name.upper() in _HEADERS:
        return _HEADERS[name.upper()]
    value = getattr(header, "value", header)
    if isinstance(value, int) and value in _HEADER_VALUES:
        return _HEADER_VALUES[value]
    raise InvalidInputError(
        f"header={header!r} is not understood: use True, False or a PromoteHeadersBehavior "
        f"({', '.join(_HEADERS)})."
    )


def _read_delimited(
    path: Path,
    display: str,
    fmt: dict[str, Any],
    first_names: list[str] | None,
    limit: int | None,
) -> tuple[pa.Table, list[str]]:
    separator = str(fmt.get("separator", ","))
    if len(separator) != 1:
        raise InvalidInputError(
            f"separator must be a single character, got {separator!r} (use '\\t' for tabs)."
        )
    mode = header_mode(fmt.get("header", True))
    encoding = encoding_of(fmt)
    # pyarrow's 1 MiB blocks keep both cores busy; read_csv re-infers a column whose type changes later on.
    read = pacsv.ReadOptions(use_threads=True, encoding=encoding)
    if mode == "none":
        read.autogenerate_column_names = True
    elif first_names is not None and mode in ("first", "same"):
        read.column_names = first_names  # later files: the first file's names ("same" skips their header row)
        read.skip_rows = 1 if mode == "same" else 0
    parse = pacsv.ParseOptions(
        delimiter=separator, newlines_in_values=bool(fmt.get("support_multi_line", False))
    )
    convert = pacsv.ConvertOptions(
        null_values=_NULLS, strings_can_be_null=not fmt.get("empty_as_string", False)
    )

    def open_reader() -> Any:
        return pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=convert)

    if not fmt.get("infer_column_types", True):  # every column text: name them all (first block only)
        names = _guard(display, encoding, lambda: open_reader().schema.names, path, separator)
        convert.column_types = {n: pa.string() for n in names}
    if limit is not None:  # stream batches and stop early instead of parsing the whole file
        try:
            table = _guard(display, encoding, lambda: _read_some(open_reader(), limit), path, separator)
        except InvalidInputError as err:  # the streaming reader fixes types on its first block: read it all
            if "conversion error" not in str(err):
                raise
            table = _guard(
                display, encoding, lambda: pacsv.read_csv(path, read, parse, convert), path, separator
            )
    else:
        table = _guard(display, encoding, lambda: pacsv.read_csv(path, read, parse, convert), path, separator)
    if any(pa.types.is_binary(f.type) for f in table.schema):  # pyarrow keeps undecodable text as bytes
        raise InvalidInputError(_undecodable_message(path, display, encoding))
    if mode == "none":
        table = table.rename_columns([f"Column{i + 1}" for i in range(table.num_columns)])
    elif len(set(table.column_names)) != table.num_columns:  # a data row taken as header: "1,0,0"
        table = table.rename_columns(unique_names(table.column_names))
    return table, list(table.column_names)


def unique_names(names: list[str]) -> list[str]:
    """Repeated header names made unique the way pandas.read_csv does ("a", "a.1", "a.2"): pyarrow keeps
    them, and two files with repeated names then cannot be combined ("duplicate field names")."""
    taken, used = set(names), set()
    result = []
    for name in names:
        unique, count = name, 0
        while unique in used:  # a suffix never takes a name that is a real column ("a", "a", "a.1")
            count += 1
            unique = f"{name}.{count}"
            unique = unique if unique not in taken else name
        used.add(unique)
        result.append(unique)
    return result


def _read_some(reader: Any, limit: int) -> pa.Table:
    batches = []
    rows = 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows >= limit:
            break
    return pa.Table.from_batches(batches, schema=reader.schema)


def _guard(display: str, encoding: str, read: Any, path: Path | None = None, separator: str = ",") -> Any:
    """Run `read`, turning pyarrow's and the codecs' errors into ones that name the file and the fix."""
    try:
        return read()
    except FileNotFoundError as err:
        raise DataAccessError(f"File {display!r} of the dataset is gone ({err.filename}).") from None
    except UnicodeDecodeError as err:
        raise InvalidInputError(
            f"File {display!r} is not valid {encoding or 'utf8'} text (byte {err.start}: {err.reason}): "
            "pass the file's real encoding, e.g. encoding='latin1' or 'utf16'."
        ) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        text = str(err)
        if "UTF8" in text or ("utf8" in text.lower() and "invalid" in text.lower()):
            raise InvalidInputError(
                f"File {display!r} is not valid {encoding or 'utf8'} text ({text.splitlines()[0]}): "
                "pass the file's real encoding, e.g. encoding='latin1' or 'utf16'."
            ) from None
        if path is not None and "Expected" in text and "columns" in text:
            raise InvalidInputError(_ragged_message(path, display, separator, encoding)) from None
        raise InvalidInputError(f"File {display!r} could not be read: {text.splitlines()[0]}") from None


def _ragged_message(path: Path, display: str, separator: str, encoding: str) -> str:
    """Re-scan the file with the csv module (only on error) to name the first line of the wrong width."""
    with open(path, newline="", encoding=encoding or "utf8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=separator)
        expected = None
        for row in reader:
            if not row:
                continue
            if expected is None:
                expected = len(row)
            elif len(row) != expected:
                return (
                    f"File {display!r} line {reader.line_num} has {len(row)} fields where the lines before "
                    f"have {expected}: fix that line, or check the separator ({separator!r})."
                )
    return f"File {display!r} has rows with different numbers of fields: check the separator ({separator!r})."


def _undecodable_message(path: Path, display: str, encoding: str) -> str:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError as err:
                return (
                    f"File {display!r} is not valid {encoding} text (line {number}, byte {err.start}: "
                    f"{err.reason}): pass the file's real encoding, e.g. encoding='latin1' or 'utf16'."
                )
    return f"File {display!r} is not valid {encoding} text: pass the file's real encoding, e.g. encoding='latin1'."


def _read_json_lines(path: Path, display: str, fmt: dict[str, Any]) -> pa.Table:
    encoding = encoding_of(fmt)
    drop = fmt.get("invalid_lines", "error") == "drop"
    if encoding in ("utf8", "utf-8-sig") and not drop:
        try:
            return _guard(display, encoding, lambda: pajson.read_json(path))
        except InvalidInputError:
            pass  # find the bad line below
    kept = io.BytesIO()
    with open(path, encoding=encoding, errors="strict", newline=None) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    json.loads(line)
                except json.JSONDecodeError as err:
                    if drop:
                        continue
                    raise InvalidInputError(
                        f"File {display!r} line {number} is not a JSON object ({err.msg}): fix it, or read with "
                        "invalid_lines='drop' to skip such lines."
                    ) from None
                kept.write(line.rstrip("\r\n").encode("utf8") + b"\n")
        except UnicodeDecodeError as err:
            raise InvalidInputError(
                f"File {display!r} is not valid {encoding} text (byte {err.start}: {err.reason}): "
                "pass the file's real encoding."
            ) from None
    if not kept.getvalue():
        return pa.table({})
    kept.seek(0)
    return _guard(display, encoding, lambda: pajson.read_json(kept))


def add_path_columns(
    table: pa.Table, display: str, include_path: bool, partitions: PartitionFormat | None
) -> pa.Table:
    rows = table.num_rows
    if partitions is not None:
        found = partitions.values(display)
        for name in partitions.names():
            value = None if found is None else found[name]
            kind = pa.timestamp("us") if name == partitions.date_column else pa.string()
            column = pa.repeat(pa.scalar(value, type=kind), rows)
            table = table.set_column(table.column_names.index(name), name, column) if name in table.column_names else table.append_column(name, column)  # fmt: skip
    if include_path:
        column = pa.repeat(pa.scalar(display, type=pa.string()), rows)
        table = table.drop_columns(["Path"]) if "Path" in table.column_names else table
        table = table.add_column(0, "Path", column)
    return table


def _concat(tables: list[tuple[str, pa.Table]], loose: bool) -> pa.Table:
    """One table from many: promote compatible schemas; CSV columns whose inferred types disagree become
    text (what inference over all the rows would give); any other conflict names both files."""
    if len(tables) == 1:
        return tables[0][1]
    try:
        return pa.concat_tables([t for _, t in tables], promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        if any(len(set(t.column_names)) != t.num_columns for _, t in tables):  # no promotion mends that
            raise InvalidInputError(_concat_problem(tables, str(err))) from None
    types: dict[str, tuple[str, pa.DataType]] = {}
    for display, table in tables:
        for field in table.schema:
            if pa.types.is_null(field.type):
                continue
            seen = types.setdefault(field.name, (display, field.type))
            if seen[1] != field.type and not _numeric_pair(seen[1], field.type):
                if not loose:
                    raise InvalidInputError(
                        f"Files {seen[0]!r} and {display!r} disagree on column {field.name!r}: {seen[1]} vs "
                        f"{field.type}. Read them as separate datasets, or convert the files to one schema."
                    )
                types[field.name] = (display, pa.string())
    fixed = []
    for _, table in tables:
        for name, (_, wanted) in types.items():
            if wanted == pa.string() and name in table.column_names:
                at = table.column_names.index(name)
                table = table.set_column(at, name, convert_column(table.column(name), "string"))
        fixed.append(table)
    try:
        return pa.concat_tables(fixed, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:  # never pyarrow's own words: name file and column
        raise InvalidInputError(_concat_problem(tables, str(err))) from None


def _concat_problem(tables: list[tuple[str, pa.Table]], text: str) -> str:
    for display, table in tables:
        names = table.column_names
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice is not None:
            return (
                f"File {display!r} has column {twice!r} more than once, so its files cannot be combined: "
                "rename the column in the file, or read them as separate datasets."
            )
    first = text.splitlines()[0] if text else "unknown reason"
    files = ", ".join(repr(d) for d, _ in tables[:3]) + (" ..." if len(tables) > 3 else "")
    return (
        f"The files {files} cannot be combined into one table ({first}): read them as separate "
        "datasets, or convert the files to one schema."
    )


def _numeric_pair(a: pa.DataType, b: pa.DataType) -> bool:
    return (pa.types.is_integer(a) or pa.types.is_floating(a)) and (
        pa.types.is_integer(b) or pa.types.is_floating(b)
    )
