"""v1's column types for `set_column_types`, and the conversions they stand for.

v1 code writes `set_column_types={"age": DataType.to_long(), "when": DataType.to_datetime(["%d/%m/%Y"])}`.
A dataset definition is stored as JSON, so each DataType has a text form (`to_spec()`, e.g. `"long"` or
`'datetime:{"formats": ["%d/%m/%Y"]}'`) and plain names ("int", "float", "string", "bool", "datetime")
are accepted wherever a DataType is. Values that do not convert become null, as v1's on_error='null'
does: a column of mostly numbers with one "n/a" keeps its numbers instead of failing the whole read.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from runyard.compat import v1_keywords
from runyard.errors import InvalidInputError

_ALIASES = {
    "int": "long",
    "long": "long",
    "integer": "long",
    "float": "float",
    "double": "float",
    "str": "string",
    "string": "string",
    "bool": "bool",
    "boolean": "bool",
    "datetime": "datetime",
    "date": "datetime",
    "timestamp": "datetime",
}
_TRUE = ["true", "1", "yes", "t", "y"]
_FALSE = ["false", "0", "no", "f", "n"]
_INT_RE = r"^\s*[+-]?\d+\s*$"
_FLOAT_RE = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$|^\s*[+-]?(inf|infinity|nan)\s*$"
# Tried in order when to_datetime() is given no formats (ISO 8601 is tried first, by a plain cast).
_DATETIME_FORMATS = [
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%m/%d/%Y",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y",
]


@v1_keywords
class DataType:
    """A column type for `set_column_types` (v1's azureml.data.dataset_factory.DataType).

    Build one with the static `to_*` methods; the constructor is v1's and not meant to be called.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # v1 builds DataTypes only through the static methods; keep its (*args, **kwargs) shape.
        self.name: str = str(args[0]) if args else str(kwargs.pop("name", "string"))
        self.params: dict[str, Any] = dict(kwargs)

    @staticmethod
    def to_bool() -> DataType:
        """Convert to bool: true/false, 1/0, yes/no (any case); anything else becomes null."""
        return DataType("bool")

    @staticmethod
    def to_datetime(formats: Any = None) -> DataType:
        """Convert to a timestamp, trying `formats` (strftime codes such as "%d-%m-%Y") in order; without
        formats, ISO 8601 and a few common layouts are tried."""
        if isinstance(formats, str):
            formats = [formats]
        return DataType("datetime", formats=list(formats) if formats else None)

    @staticmethod
    def to_float(decimal_mark: str = ".") -> DataType:
        """Convert to float; `decimal_mark` is '.' or ','."""
        if decimal_mark not in (".", ","):
            raise InvalidInputError(f"decimal_mark must be '.' or ',', got {decimal_mark!r}.")
        return DataType("float", decimal_mark=decimal_mark)

    @staticmethod
    def to_long() -> DataType:
        """Convert to a 64-bit integer."""
        return DataType("long")

    @staticmethod
    def to_string() -> DataType:
        """Convert to text."""
        return DataType("string")

    @staticmethod
    def to_stream(workspace: Any, escaped: bool = False) -> DataType:
        """Refused: v1 turns a column of URLs into file streams read through the Azure service; runyard's
        tabular datasets hold values only. Keep the URLs as strings and open them with fsspec."""
        raise InvalidInputError(
            "DataType.to_stream is not supported by runyard: a tabular column cannot hold file streams. "
            "Keep the column as text (DataType.to_string()) and open each URL with fsspec.open(url)."
        )

    def to_spec(self) -> str:
        """The text form stored in a dataset definition's set_column_types."""
        params = {
            k: v for k, v in self.params.items() if v is not None and not (k == "decimal_mark" and v == ".")
        }
        return f"{self.name}:{json.dumps(params, sort_keys=True)}" if params else self.name

    @staticmethod
    def from_spec(spec: DataType | str) -> DataType:
        """A DataType from itself, a name such as "int" or "datetime", or a `to_spec()` text."""
        if isinstance(spec, DataType):
            return spec
        if not isinstance(spec, str):
            raise InvalidInputError(
                f"A column type must be a DataType or one of {sorted(set(_ALIASES))}, got {spec!r}."
            )
        name, _, raw = spec.partition(":")
        canonical = _ALIASES.get(name.strip().lower())
        if canonical is None:
            raise InvalidInputError(
                f"Unknown column type {spec!r}: use DataType.to_long()/to_float()/to_string()/to_bool()/"
                f"to_datetime() or one of {sorted(set(_ALIASES))}."
            )
        try:
            params = json.loads(raw) if raw else {}
        except json.JSONDecodeError as err:
            raise InvalidInputError(
                f"Column type {spec!r} has unreadable options after ':' ({err})."
            ) from None
        return DataType(canonical, **params)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DataType) and self.to_spec() == other.to_spec()

    def __hash__(self) -> int:
        return hash(self.to_spec())

    def __repr__(self) -> str:
        return f"DataType({self.to_spec()!r})"


def convert_column(
    column: pa.ChunkedArray | pa.Array, data_type: DataType | str
) -> pa.ChunkedArray | pa.Array:
    """`column` converted to `data_type`; values that do not convert become null (v1's on_error='null')."""
    dt = DataType.from_spec(data_type)
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if dt.name == "string":
        return arr if pa.types.is_string(arr.type) else pc.cast(arr, pa.string())
    if dt.name == "long":
        return _to_long(arr)
    if dt.name == "float":
        return _to_float(arr, dt.params.get("decimal_mark") or ".")
    if dt.name == "bool":
        return _to_bool(arr)
    return _to_datetime(arr, dt.params.get("formats"))


def _text(arr: pa.Array) -> pa.Array:
    return (
        arr
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
        else pc.cast(arr, pa.string())
    )


def _masked(arr: pa.Array, ok: pa.Array) -> pa.Array:
    return pc.if_else(ok, arr, pa.nulls(len(arr), arr.type))


def _to_long(arr: pa.Array) -> pa.Array:
    if pa.types.is_integer(arr.type) or pa.types.is_boolean(arr.type) or pa.types.is_null(arr.type):
        return pc.cast(arr, pa.int64())
    if pa.types.is_floating(arr.type):
        whole = pc.and_(pc.equal(pc.floor(arr), arr), pc.less(pc.abs(arr), 2.0**63))
        return pc.cast(_masked(arr, whole), pa.int64())
    text = _text(arr)
    ok = pc.match_substring_regex(text, _INT_RE)
    return pc.cast(pc.utf8_trim_whitespace(_masked(text, ok)), pa.int64(), safe=False)


def _to_float(arr: pa.Array, decimal_mark: str) -> pa.Array:
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_null(arr.type):
        return pc.cast(arr, pa.float64())
    if pa.types.is_boolean(arr.type):
        return pc.cast(pc.cast(arr, pa.int8()), pa.float64())
    text = _text(arr)
    if decimal_mark == ",":
        text = pc.replace_substring(text, ",", ".")
    ok = pc.match_substring_regex(text, _FLOAT_RE, ignore_case=True)
    return pc.cast(pc.utf8_trim_whitespace(_masked(text, ok)), pa.float64())


def _to_bool(arr: pa.Array) -> pa.Array:
    if pa.types.is_boolean(arr.type) or pa.types.is_null(arr.type):
        return pc.cast(arr, pa.bool_())
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type):
        return pc.not_equal(arr, 0)
    text = pc.utf8_lower(pc.utf8_trim_whitespace(_text(arr)))
    is_true = pc.is_in(text, value_set=pa.array(_TRUE))
    is_false = pc.is_in(text, value_set=pa.array(_FALSE))
    return _masked(is_true, pc.or_(is_true, is_false))


def _to_datetime(arr: pa.Array, formats: list[str] | None) -> pa.Array:
    target = pa.timestamp("us")
    if pa.types.is_timestamp(arr.type) or pa.types.is_date(arr.type) or pa.types.is_null(arr.type):
        return pc.cast(arr, target)
    text = pc.utf8_trim_whitespace(_text(arr))
    if not formats:
        try:  # the common case, ISO 8601 throughout, in one vectorised cast
            return pc.cast(text, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            formats = _DATETIME_FORMATS
    parsed = [pc.strptime(text, format=f, unit="us", error_is_null=True) for f in formats]
    return pc.coalesce(*parsed) if len(parsed) > 1 else parsed[0]
