"""MLflow's input rules for keys, values and batch sizes, with its wording, so a client that works
against `mlflow server` sees the same refusals here (the numbers and messages are MLflow's facts; see
mlflow/utils/validation.py).

Over-long param and tag values are cut to MLflow's limit rather than refused, as MLflow's server does
by default (MLFLOW_TRUNCATE_LONG_VALUES).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Sequence
from typing import Any

from runyard.mlflow_api.errors import invalid

MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_ENTITIES_PER_BATCH = 1000
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_KEY_LENGTH = 250
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_ENTITY_KEY_LENGTH = 250
#: runyard's own columns (tag/property keys, experiment names) hold 255 characters
RUNYARD_NAME_LENGTH = 255

_NAME_OK = re.compile(r"[/\w.\- :]*")
_BAD_CHARACTERS = (
    "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), "
    "colon(:) and slashes (/)."
)


def _path(parent: str, child: str) -> str:
    return f"{parent}.{child}" if parent else child


def invalid_value(path: str, value: Any, why: str | None = None) -> str:
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return f"Invalid value {shown} for parameter '{path}' supplied" + (f": {why}" if why else ".")


def too_long(what: str, limit: int) -> str:
    return f"'{what}' exceeds the maximum length of {limit} characters"


def check_name(name: str, path: str) -> None:
    """A param, tag or metric name: MLflow's characters, and no path that resolves elsewhere."""
    if not _NAME_OK.fullmatch(name):
        raise invalid(invalid_value(path, name, _BAD_CHARACTERS))
    normal = posixpath.normpath(name)
    if normal != name or normal == "." or normal.startswith("..") or normal.startswith("/"):
        raise invalid(
            invalid_value(
                path,
                name,
                "Names may be treated as files in certain cases, and must not resolve to other names when "
                f"treated as such. This name would resolve to {normal!r}",
            )
        )


def _key_length(what: str, key: str, limit: int = MAX_ENTITY_KEY_LENGTH) -> None:
    if len(key) > limit:
        raise invalid(too_long(what, limit))


def check_param(key: str, value: str, path: str = "") -> str:
    """The value to store (cut to MLflow's limit)."""
    check_name(key, _path(path, "key"))
    _key_length("Param key", key)
    return value[:MAX_PARAM_VAL_LENGTH]


def check_tag(key: str, value: str, path: str = "") -> str:
    """The value to store (cut to MLflow's limit)."""
    check_name(key, _path(path, "key"))
    _key_length(_path(path, "key"), key)
    return value[:MAX_TAG_VAL_LENGTH]


def check_metric_name(key: str, path: str = "") -> None:
    check_name(key, _path(path, "key"))
    _key_length("Metric name", key)


def check_experiment_name(name: str) -> None:
    if not name.strip():
        raise invalid(f"Invalid experiment name: '{name}'")
    if len(name) > MAX_EXPERIMENT_NAME_LENGTH:
        raise invalid(too_long("name", MAX_EXPERIMENT_NAME_LENGTH))
    if len(name) > RUNYARD_NAME_LENGTH:
        raise invalid(too_long("name", RUNYARD_NAME_LENGTH) + " (runyard's limit)")


def check_experiment_tag(key: str, value: str) -> None:
    check_name(key, "key")
    _key_length("key", key, MAX_EXPERIMENT_TAG_KEY_LENGTH)
    if len(value) > MAX_EXPERIMENT_TAG_VAL_LENGTH:
        raise invalid(too_long("value", MAX_EXPERIMENT_TAG_VAL_LENGTH))


def _batch_limit(what: str, limit: int, count: int) -> None:
    if count > limit:
        raise invalid(
            f"A batch logging request can contain at most {limit} {what}. Got {count} {what}. "
            f"Please split up {what} across multiple requests and try again."
        )


def check_batch(metrics: int, params: int, tags: int) -> None:
    _batch_limit("metrics", MAX_METRICS_PER_BATCH, metrics)
    _batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, params)
    _batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, tags)
    _batch_limit("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, metrics + params + tags)


def check_params_unique(keys: Sequence[str]) -> None:
    seen: set[str] = set()
    dupes = []
    for key in keys:
        if key in seen:
            dupes.append(key)
        seen.add(key)
    if dupes:
        raise invalid(
            f"Duplicate parameter keys have been submitted: {dupes}. Please ensure the request contains "
            "only one param value per param key."
        )
