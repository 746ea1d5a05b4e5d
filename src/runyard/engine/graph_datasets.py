"""The dataset parts of the pipeline graph (engine/graph_spec.py): dataset inputs of a step and dataset
values of parameters. Like the rest of the graph they are untrusted input: a datastore path may not
leave its datastore, and a dataset payload's definition must pass DatasetDefinition's checks.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
    model_validator,
)

from runyard.errors import InvalidInputError

#: As graph_spec.SafeName: input names end up in paths and environment variable names.
SafeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False)


def check_dataset_payload(payload: Any) -> dict[str, Any]:
    """A dataset as the graph carries it (data/dataset.py `dataset_payload`): its definition is checked
    by DatasetDefinition, so a hand-written graph cannot smuggle in a source runyard would not accept."""
    from runyard.data.definition import DatasetDefinition

    if not isinstance(payload, dict) or "definition" not in payload:
        raise ValueError("a dataset payload must be an object with a 'definition'")
    try:
        DatasetDefinition.from_json(payload["definition"])
    except InvalidInputError as exc:
        raise ValueError(str(exc)) from None
    registered = payload.get("registered")
    if registered is not None and not (
        isinstance(registered, dict)
        and isinstance(registered.get("id"), str)
        and isinstance(registered.get("name"), str)
        and type(registered.get("version")) is int
    ):
        raise ValueError("a dataset payload's 'registered' must be {id, name, version}")
    return payload


class DatasetValue(_Frozen):
    """A parameter value that is a dataset: {"dataset": <dataset payload>}."""

    dataset: dict[str, Any]

    @model_validator(mode="after")
    def _valid_payload(self) -> DatasetValue:
        check_dataset_payload(self.dataset)
        return self


class DatasetSourceSpec(_Frozen):
    """Where a dataset input's data comes from: exactly one of a dataset, a datastore path, a parameter."""

    dataset: dict[str, Any] | None = None
    datastore: SafeName | None = None
    path: str | None = None
    param: str | None = None

    @model_serializer(mode="wrap")
    def _only_set_keys(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}

    @model_validator(mode="after")
    def _exactly_one(self) -> DatasetSourceSpec:
        kinds = [
            k
            for k, present in (
                ("dataset", self.dataset is not None),
                ("datastore", self.datastore is not None),
                ("param", self.param is not None),
            )
            if present
        ]
        if len(kinds) != 1:
            raise ValueError("a dataset input's source must be exactly one of dataset, datastore+path, param")
        if (self.datastore is None) != (self.path is None):
            raise ValueError("a datastore source needs both 'datastore' and 'path'")
        if self.path is not None:
            parts = self.path.replace("\\", "/").split("/")
            if ".." in parts or "\x00" in self.path:
                raise ValueError(f"path {self.path!r} leaves its datastore: '..' and NUL are not allowed")
        if self.dataset is not None:
            check_dataset_payload(self.dataset)
        return self


class DatasetInputSpec(_Frozen):
    """A step input that is a dataset or a datastore path (not another step's output)."""

    name: SafeName
    mode: Literal["direct", "mount", "download"]
    source: DatasetSourceSpec


class DataPathValue(_Frozen):
    """A parameter value that is a DataPath: {"datapath": {"datastore": name, "path": path}}."""

    datapath: dict[str, str]

    @model_validator(mode="after")
    def _stays_inside(self) -> DataPathValue:
        if set(self.datapath) != {"datastore", "path"} or not all(
            isinstance(v, str) for v in self.datapath.values()
        ):
            raise ValueError("a DataPath value is {'datastore': name, 'path': path}")
        DatasetSourceSpec(datastore=self.datapath["datastore"], path=self.datapath["path"])  # same checks
        return self
