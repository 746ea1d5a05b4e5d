"""What a dataset is, as data: its sources, how to parse them, and the transforms applied on top.

A dataset object (data/dataset.py) is a thin handle around one `DatasetDefinition`; the definition is what
gets registered (DatasetRecord.definition), sent to a step in a pipeline graph (dataset_payload) and read
back on the other side. Keeping it a frozen, validated pydantic model means a graph or a database row with
a hand-edited definition is refused at the door instead of failing half-way through a read.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from runyard.errors import InvalidInputError

#: Transform operations a TabularDataset records (data/tabular_read.apply_transforms performs them).
TRANSFORM_OPS = frozenset({"take", "skip", "take_sample", "keep_columns", "drop_columns", "random_split"})
FORMAT_TYPES = frozenset({"delimited", "parquet", "json_lines"})
GLOB_CHARS = frozenset("*?[")


def is_glob(path: str) -> bool:
    return any(ch in path for ch in GLOB_CHARS)


class DatasetDefinition(BaseModel):
    """Sources + format + transforms. `v` is the definition format's version, for readers of old records.

    sources: each exactly one of {"datastore": name, "path": glob-or-path} (path relative to the datastore),
    {"url": "http(s)://..."} or {"local": "/abs/path-or-glob"} (runyard's local-first extension).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    kind: Literal["file", "tabular"]
    sources: tuple[dict[str, str], ...]
    format: dict[str, Any] | None = None
    include_path: bool = False
    partition_format: str | None = None
    set_column_types: dict[str, Any] = {}
    transforms: tuple[dict[str, Any], ...] = ()

    @field_validator("sources")
    @classmethod
    def _check_sources(cls, sources: tuple[dict[str, str], ...]) -> tuple[dict[str, str], ...]:
        if not sources:
            raise ValueError("a dataset needs at least one source")
        for source in sources:
            keys = set(source)
            if keys == {"datastore", "path"}:
                if not isinstance(source["datastore"], str) or not source["datastore"]:
                    raise ValueError(f"source {source!r}: 'datastore' must be a datastore name")
                if not isinstance(source["path"], str):
                    raise ValueError(f"source {source!r}: 'path' must be text")
                if ".." in source["path"].replace("\\", "/").split("/"):
                    raise ValueError(f"source {source!r}: the path may not leave its datastore ('..')")
            elif keys == {"url"}:
                if not str(source["url"]).startswith(("http://", "https://")):
                    raise ValueError(f"source {source!r}: 'url' must be an http(s) URL")
            elif keys == {"local"}:
                if not str(source["local"]).startswith("/"):
                    raise ValueError(f"source {source!r}: 'local' must be an absolute path")
            else:
                raise ValueError(
                    f"source {source!r} must be one of {{'datastore', 'path'}}, {{'url'}} or {{'local'}}"
                )
        return sources

    @field_validator("format")
    @classmethod
    def _check_format(cls, fmt: dict[str, Any] | None) -> dict[str, Any] | None:
        if fmt is not None and fmt.get("type") not in FORMAT_TYPES:
            raise ValueError(f"format type must be one of {sorted(FORMAT_TYPES)}, got {fmt.get('type')!r}")
        return fmt

    @field_validator("transforms")
    @classmethod
    def _check_transforms(cls, transforms: tuple[dict[str, Any], ...]) -> tuple[dict[str, Any], ...]:
        for step in transforms:
            if step.get("op") not in TRANSFORM_OPS:
                raise ValueError(
                    f"transform op must be one of {sorted(TRANSFORM_OPS)}, got {step.get('op')!r}"
                )
        return transforms

    def with_transform(self, op: str, **params: Any) -> DatasetDefinition:
        """A new definition with one more transform at the end (datasets are immutable, as in v1)."""
        return self.model_copy(update={"transforms": (*self.transforms, {"op": op, **params})})

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: Any) -> DatasetDefinition:
        """InvalidInputError (not a pydantic error) for a malformed definition, saying what is wrong."""
        if isinstance(data, DatasetDefinition):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'definition'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InvalidInputError(f"Not a valid dataset definition: {problems}.") from None
