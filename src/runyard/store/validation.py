"""What a record must look like before SqlStore writes it: one set of rules at the store boundary.

SqlStore calls these on every write, so SQLite, PostgreSQL, the REST server (which wraps SqlStore)
and the Python API all accept and refuse exactly the same input. Without them each database decides
on its own: SQLite stores a 100,000-character name or a NUL without complaint, PostgreSQL refuses
both with a DataError, and JSON's `Infinity` reaches one as a float and breaks the other.

The Python API (core/) checks the same things earlier, so that a bad value fails at the user's call
(`run.log`, `start_logging`) rather than in a background writer; these rules are never stricter than
core's for metrics, which are written in the background and must not be refused there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from runyard.errors import InvalidInputError, MetricValueError
from runyard.status import RunStatus
from runyard.store.records import (
    DatasetRecord,
    DatasetUse,
    DatastoreRecord,
    MetricRow,
    ModelRecord,
    RunRecord,
)

MAX_NAME_LENGTH = 255  # experiment names, metric names, tag and property keys (the database columns)
MAX_RUN_ID_BYTES = 255  # a run id names a folder (runs/<run_id>/); file names stop at 255 bytes
MAX_DISPLAY_NAME_LENGTH = 256  # Azure ML's limit, and the column's
MAX_SHORT_FIELD = {"run_type": 64, "target": 256, "experiment_id": 64, "fingerprint": 64, "writer": 64}
METRIC_KINDS = ("scalar", "list", "row", "image")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_PAYLOAD_DEPTH = 64

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _shown(text: str) -> str:
    return repr(text[:40]) + ("…" if len(text) > 40 else "")


def check_text(what: str, value: Any, *, limit: int | None = None, controls: bool = True) -> str:
    """A string without NUL (PostgreSQL cannot store it) and, with `limit`, 1..limit characters long.
    `controls=False` also refuses the other control characters (for names that appear in paths and URLs)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__} {value!r:.60}.")
    if limit is not None and not 1 <= len(value) <= limit:
        raise InvalidInputError(
            f"{what} {_shown(value)} is {len(value)} characters long; use 1 to {limit} characters."
        )
    if "\x00" in value:
        raise InvalidInputError(f"{what} {_shown(value)} contains a NUL character (\\x00); remove it.")
    if not controls and _CONTROL.search(value):
        raise InvalidInputError(
            f"{what} {_shown(value)} contains a control character (tab, newline, …); remove it."
        )
    return value


def check_experiment_name(name: Any) -> str:
    """Looser than the Python API's rule (letters, digits, '_', '-'): MLflow clients name experiments
    like paths ("/Users/me/exp"), and those names must work over the MLflow routes."""
    return check_text("Experiment name", name, limit=MAX_NAME_LENGTH, controls=False)


def check_run_id(run_id: Any, what: str = "Run id") -> str:
    """A run id names the run's folder in the artifact store, so it must be one safe path component."""
    text = check_text(what, run_id, controls=False)
    if (
        not text
        or len(text.encode()) > MAX_RUN_ID_BYTES
        or text in (".", "..")
        or any(c in text for c in "/\\")
    ):
        raise InvalidInputError(
            f"{what} {_shown(text)} is not allowed: use 1-{MAX_RUN_ID_BYTES} bytes without '/' or '\\', "
            "and not '.' or '..'. Leave the run id out to get a generated one."
        )
    return text


def check_status(status: Any) -> str:
    if status not in RunStatus.__members__.values():
        raise InvalidInputError(
            f"Unknown run status {status!r}; use one of {', '.join(s.value for s in RunStatus)}."
        )
    return str(status)


def check_display_name(value: Any) -> str | None:
    if value is None:
        return None
    text = check_text("Display name", value)
    if len(text) > MAX_DISPLAY_NAME_LENGTH:
        raise InvalidInputError(
            f"Display name {_shown(text)} is {len(text)} characters long; the limit is {MAX_DISPLAY_NAME_LENGTH}."
        )
    return text


def _check_short(what: str, value: Any, *, required: bool = True) -> None:
    if value is None and not required:
        return
    check_text(what, value, limit=MAX_SHORT_FIELD[what], controls=False)


def check_json(what: str, value: Any, depth: int = 0) -> None:
    """JSON that both databases store and give back: finite numbers only (SQLite would keep the non-JSON
    token NaN, PostgreSQL refuses it). A NUL in a string is fine here: JSON escapes it, and a failed
    run's last log lines may hold one."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise InvalidInputError(f"{what} is nested deeper than {MAX_PAYLOAD_DEPTH} levels; flatten it.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(
            f"{what} holds {value}, which is not a finite number; runyard stores finite numbers only."
        )
    if isinstance(value, Mapping):
        for item in value.values():
            check_json(what, item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_json(what, item, depth + 1)


def validate_runs(runs: Iterable[RunRecord]) -> None:
    """Every field of new runs. Whether each parent exists is checked by the store, in the same
    transaction as the insert."""
    for run in runs:
        check_run_id(run.run_id)
        if run.parent_id is not None:
            check_run_id(run.parent_id, "Parent run id")
            if run.parent_id == run.run_id:
                raise InvalidInputError(f"Run {run.run_id!r} cannot be its own parent.")
        check_status(run.status)
        _check_short("experiment_id", run.experiment_id)
        _check_short("run_type", run.run_type)
        _check_short("target", run.target)
        _check_short("fingerprint", run.fingerprint, required=False)
        check_display_name(run.display_name)
        for name in ("created_time", "start_time", "end_time"):
            value = getattr(run, name)
            if value is not None and not (isinstance(value, int | float) and math.isfinite(value)):
                raise InvalidInputError(f"Run {run.run_id!r}: {name} must be a finite number, got {value!r}.")
        check_json(f"The data of run {run.run_id!r}", run.data)


def validate_data_patch(patch: Mapping[str, Any]) -> None:
    if "display_name" in patch:
        check_display_name(patch["display_name"])
    check_json("The run data", dict(patch))


def validate_tags(tags: Mapping[str, Any], what: str = "Tag") -> None:
    for key, value in tags.items():
        check_text(f"{what} name", key, limit=MAX_NAME_LENGTH)  # a str: a None key is not the tag "None"
        if value is not None:
            check_text(f"{what} {key!r} value", str(value))


def check_metric_name(name: Any) -> str:
    """The Python API's rule (core/metrics.py check_name), so that a name run.log() accepted is never
    refused later by the background writer."""
    if not isinstance(name, str) or not name.strip():
        raise MetricValueError(f"Metric name must be a non-empty string, got {name!r:.60}.")
    if len(name) > MAX_NAME_LENGTH:
        raise MetricValueError(
            f"Metric name {_shown(name)} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}. "
            "Shorten it, or log a row metric (run.log_row) with the variable part as a column."
        )
    if "\x00" in name:
        raise MetricValueError(f"Metric name {_shown(name)} contains a NUL character (\\x00); remove it.")
    return name


def _check_int64(what: str, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not INT64_MIN <= value <= INT64_MAX:
        raise MetricValueError(f"{what}={value!r} is not an integer that fits in 64 bits.")


def validate_metric_rows(rows: Iterable[MetricRow]) -> None:
    """Every row of a batch, before any is written (a batch is stored whole or not at all).

    Non-finite values (NaN, Infinity) are refused as the Python API refuses them (run.log): they break
    every min, max and chart downstream, and JSON has no standard spelling for them.
    """
    checked: set[tuple[str, str]] = set()  # a batch repeats a few (run, name) pairs many times
    writers: set[str] = set()
    for row in rows:
        name = row.name
        if (row.run_id, name) not in checked:
            check_run_id(row.run_id)
            check_metric_name(name)
            checked.add((row.run_id, name))
        if row.kind not in METRIC_KINDS:
            raise MetricValueError(
                f"Metric {name!r} has kind {row.kind!r:.40}; use one of {', '.join(METRIC_KINDS)}."
            )
        if row.value is not None and not (
            isinstance(row.value, int | float)
            and not isinstance(row.value, bool)
            and math.isfinite(row.value)
        ):
            raise MetricValueError(
                f"Metric {name!r}: {row.value!r:.40} is not a finite number. Log finite numbers only; "
                "check for a division by zero or a diverging loss before logging."
            )
        if not (isinstance(row.timestamp, int | float) and math.isfinite(row.timestamp)):
            raise MetricValueError(
                f"Metric {name!r}: timestamp must be a finite number, got {row.timestamp!r}."
            )
        if row.text is not None:
            check_text(f"Metric {name!r} text", row.text)
        _check_int64(f"Metric {name!r} step", row.step)
        _check_int64(f"Metric {name!r} seq", row.seq)
        if row.writer is not None and row.writer not in writers:
            _check_short("writer", row.writer)
            writers.add(row.writer)
        check_json(f"Metric {name!r}", row.payload)


def validate_model(model: ModelRecord) -> None:
    """A model's name names its folder (models/<name>/<version>/), like a run id; the rest is JSON."""
    name = check_text("Model name", model.name, limit=MAX_NAME_LENGTH, controls=False)
    if name in (".", "..") or any(c in name for c in "/\\"):
        raise InvalidInputError(
            f"Model name {_shown(name)} is not allowed: it names a folder, so use no '/' or '\\' and not "
            "'.' or '..' (e.g. 'digits-classifier')."
        )
    check_text("Model path", model.path)
    if model.run_id is not None:
        check_run_id(model.run_id)
    if model.description is not None:
        check_text("Model description", model.description)
    if model.framework is not None:
        check_text("Model framework", model.framework, limit=MAX_NAME_LENGTH)
    validate_tags(model.tags, "Model tag")
    check_json(f"The tags of model {name!r}", dict(model.tags))
    check_json(f"The properties of model {name!r}", dict(model.properties))
    _check_model_path(name, model.path)  # last: the checks above name the more basic fault


def _check_model_path(name: str, path: str) -> None:
    """A model's files live under models/<name>/ in the artifact store; a path elsewhere (a run's snapshot,
    another model, an absolute or '..' path) would make Model.download hand out files it does not own."""
    parts = path.split("/")
    if (
        "\\" in path
        or len(parts) < 3
        or parts[:2] != ["models", name]
        or any(part in ("", ".", "..") for part in parts[2:])
    ):
        raise InvalidInputError(
            f"Model path {_shown(path)} is not allowed: a model's files live in models/{name}/<version>/ "
            f"(e.g. 'models/{name}/{{version}}/model.pkl'), with no '..', '.', '\\' or empty parts."
        )


# -- datastores, datasets, lineage -------------------------------------------------------------------

#: The datastore every workspace has (its artifact folder, or the server's); never a record.
BUILTIN_DATASTORE = "workspaceblobstore"
DATASTORE_NAME = re.compile(r"[A-Za-z0-9_]{1,255}")
DATASTORE_SCHEMES = ("file", "s3", "az", "abfs", "abfss", "gs", "gcs", "memory")
#: Option keys that hold credentials (compared lowercased). They belong in the workspace secrets file or
#: the environment, never in the database: refusing them here keeps that promise for every writer.
# fmt: off
SECRET_OPTION_KEYS = frozenset((
    "account_key", "sas_token", "key", "secret", "secret_access_key", "aws_secret_access_key",
    "password", "token", "connection_string", "client_secret", "credential",
))
# fmt: on
DATASET_KINDS = ("file", "tabular")
MAX_DATASET_NAME = 250
DATASET_FILE_KEYS = ("datastore", "path", "size", "sha256")
USE_DIRECTIONS = ("input", "output")
_HEX64 = re.compile(r"[0-9a-f]{64}")


def check_datastore_name(name: Any) -> str:
    """v1's rule (letters, digits and '_', 1-255 characters); names are case-insensitive, so the lowercased
    name is returned and stored."""
    if not isinstance(name, str) or not DATASTORE_NAME.fullmatch(name):
        raise InvalidInputError(
            f"Datastore name {name!r:.60} is not valid: use 1 to 255 letters, digits or '_' "
            "(for example 'training_data')."
        )
    return name.lower()


def refuse_builtin_datastore(name: str, action: str) -> None:
    if name.lower() == BUILTIN_DATASTORE:
        raise InvalidInputError(
            f"'{BUILTIN_DATASTORE}' is the workspace's built-in datastore and cannot be {action}; "
            "register your store under another name."
        )


def _check_no_secrets(what: str, value: Any, depth: int = 0) -> None:
    if depth > MAX_PAYLOAD_DEPTH or not isinstance(value, Mapping | list | tuple):
        return
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and key.lower() in SECRET_OPTION_KEYS:
            raise InvalidInputError(
                f"{what} holds {key!r}, which looks like a credential; runyard never stores credentials in "
                "the database. Pass it to Datastore.register_* (it goes to the workspace secrets file, "
                "readable only by you) or set it in the environment (docs/datasets.md)."
            )
        _check_no_secrets(what, item, depth + 1)


def check_datastore_url(url: Any) -> str:
    """An fsspec URL whose scheme runyard can open: file:///abs, s3://bucket/..., az://container/..."""
    text = check_text("Datastore URL", url, limit=2048, controls=False)
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if (
        not sep
        or scheme not in DATASTORE_SCHEMES
        or not rest.strip("/")
        or (scheme == "file" and rest[:1] != "/")
    ):
        raise InvalidInputError(
            f"Datastore URL {_shown(text)} is not an fsspec URL runyard can open; use one of "
            f"{', '.join(s + '://' for s in DATASTORE_SCHEMES)} followed by the bucket, container or "
            "absolute folder (for example 's3://my-bucket/data' or 'file:///srv/data')."
        )
    return text


def validate_datastore(record: DatastoreRecord) -> str:
    """Every field of a datastore record; returns the (lowercased) name it is stored under."""
    name = check_datastore_name(record.name)
    refuse_builtin_datastore(name, "saved as a record")
    check_text("Datastore kind", record.kind, limit=64, controls=False)
    check_datastore_url(record.url)
    for what, value in (("options", record.options), ("data", record.data)):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise InvalidInputError(f"Datastore {name!r}: {what} must be a dict with string keys.")
        check_json(f"Datastore {name!r} {what}", dict(value))
        _check_no_secrets(f"Datastore {name!r} {what}", value)
    if not isinstance(record.secret_names, list | tuple):
        raise InvalidInputError(f"Datastore {name!r}: secret_names must be a list of option names.")
    for secret in record.secret_names:
        check_text(f"Datastore {name!r} secret name", secret, limit=MAX_NAME_LENGTH, controls=False)
    _check_time(f"Datastore {name!r}", record.created_time)
    return name


def _check_time(what: str, value: Any) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value)):
        raise InvalidInputError(f"{what}: created_time must be a finite number, got {value!r}.")


def check_content_hash(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidInputError(f"{what} must be a sha256 as 64 lowercase hex digits, got {value!r:.80}.")
    return value


def check_dataset_name(name: Any) -> str:
    """Printable names, spaces allowed (v1's 'diabetes dataset'), but no '/' (it appears in URLs)."""
    text = check_text("Dataset name", name, limit=MAX_DATASET_NAME, controls=False)
    if not text.strip() or "/" in text or not text.isprintable():
        raise InvalidInputError(
            f"Dataset name {_shown(text)} is not allowed: use 1 to {MAX_DATASET_NAME} printable characters, "
            "not only spaces and without '/' (for example 'diabetes dataset')."
        )
    return text


def _check_dataset_file(name: str, index: int, item: Any) -> None:
    where = f"Dataset {name!r} file {index}"
    if not isinstance(item, Mapping) or set(item) != set(DATASET_FILE_KEYS):
        raise InvalidInputError(
            f"{where} must be a dict with exactly the keys {', '.join(DATASET_FILE_KEYS)}, got {item!r:.120}."
        )
    if not isinstance(item["datastore"], str):
        raise InvalidInputError(f"{where}: datastore must be a string ('' for a URL or local file).")
    check_text(f"{where} path", item["path"], limit=4096)
    size = item["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= INT64_MAX:
        raise InvalidInputError(f"{where}: size must be a whole number of bytes >= 0, got {size!r}.")
    check_text(f"{where} sha256", item["sha256"], limit=1024, controls=False)


def validate_dataset(record: DatasetRecord) -> None:
    """A dataset version as registered (its id and version are assigned by the store)."""
    name = check_dataset_name(record.name)
    if record.kind not in DATASET_KINDS:
        raise InvalidInputError(
            f"Dataset {name!r} has kind {record.kind!r:.40}; use one of {', '.join(DATASET_KINDS)}."
        )
    if not isinstance(record.definition, Mapping):
        raise InvalidInputError(f"Dataset {name!r}: definition must be a dict (the definition's JSON).")
    check_json(f"The definition of dataset {name!r}", dict(record.definition))
    if not isinstance(record.files, list | tuple):
        raise InvalidInputError(f"Dataset {name!r}: files must be a list of resolved files.")
    for index, item in enumerate(record.files):
        _check_dataset_file(name, index, item)
    check_content_hash(f"Dataset {name!r} content_hash", record.content_hash)
    if record.description is not None:
        check_text(f"Dataset {name!r} description", record.description)
    if not isinstance(record.tags, Mapping):
        raise InvalidInputError(f"Dataset {name!r}: tags must be a dict.")
    validate_tags(record.tags, "Dataset tag")
    check_json(f"The tags of dataset {name!r}", dict(record.tags))
    if record.run_id is not None:
        check_run_id(record.run_id)
    _check_time(f"Dataset {name!r}", record.created_time)


def validate_dataset_use(use: DatasetUse) -> None:
    """One lineage row; whether its run and dataset exist is checked by the store, in its transaction."""
    check_run_id(use.run_id)
    if use.direction not in USE_DIRECTIONS:
        raise InvalidInputError(
            f"Dataset use {use.name!r:.60} of run {use.run_id!r}: direction must be 'input' or 'output', "
            f"got {use.direction!r:.40}."
        )
    check_text("Dataset use name", use.name, limit=MAX_NAME_LENGTH, controls=False)
    check_content_hash(f"Dataset use {use.name!r} content_hash", use.content_hash)
    if use.dataset_id is not None:
        check_text(f"Dataset use {use.name!r} dataset_id", use.dataset_id, limit=64, controls=False)
    if not isinstance(use.detail, Mapping):
        raise InvalidInputError(f"Dataset use {use.name!r}: detail must be a dict.")
    check_json(f"The detail of dataset use {use.name!r}", dict(use.detail))
    _check_time(f"Dataset use {use.name!r}", use.created_time)
