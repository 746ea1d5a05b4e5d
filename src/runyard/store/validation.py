"""What a record must look like before SqlStore writes it: one set of rules at the store boundary.

SqlStore calls these on every write, so SQLite, PostgreSQL, the REST server (which wraps SqlStore)
and the Python API all accept and refuse exactly the same input. Without them each database decides
on its own: SQLite stores a 100,000-character name or a NUL without complaint, PostgreSQL refuses
both with a DataError, and JSON's `Infinity` reaches one as a float and breaks the other.

The Python API (core/) checks the same things earlier, so that a bad value fails at the user's call
(`run.log`, `start_logging`) rather than in a background writer; these rules are never stricter than
core's for metrics, which are written in the background and must not be refused there.

The rules for datastores, datasets and lineage build on these and live in store/data_rules.py; those for
registered environments in store/env_rules.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runyard.errors import InvalidInputError, MetricValueError
from runyard.status import RunStatus
from runyard.store.records import (
    MetricBatch,
    MetricRow,
    ModelRecord,
    RunRecord,
)

if TYPE_CHECKING:  # numpy loads with the first batch: a job that only logs imports this module, not numpy
    import numpy as np
    from numpy.typing import NDArray

MAX_NAME_LENGTH = 255  # experiment names, metric names, tag and property keys (the database columns)
MAX_RUN_ID_BYTES = 255  # a run id names a folder (runs/<run_id>/); file names stop at 255 bytes
MAX_DISPLAY_NAME_LENGTH = 256  # Azure ML's limit, and the column's
MAX_SHORT_FIELD = {"run_type": 64, "target": 256, "experiment_id": 64, "fingerprint": 64, "writer": 64}
METRIC_KINDS = ("scalar", "list", "row", "image")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_PAYLOAD_DEPTH = 64

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def shown(text: str) -> str:
    return repr(text[:40]) + ("…" if len(text) > 40 else "")


def check_text(what: str, value: Any, *, limit: int | None = None, controls: bool = True) -> str:
    """A string without NUL (PostgreSQL cannot store it) and, with `limit`, 1..limit characters long.
    `controls=False` also refuses the other control characters (for names that appear in paths and URLs)."""
    if not isinstance(value, str):
        raise InvalidInputError(f"{what} must be a string, got {type(value).__name__} {value!r:.60}.")
    if limit is not None and not 1 <= len(value) <= limit:
        raise InvalidInputError(
            f"{what} {shown(value)} is {len(value)} characters long; use 1 to {limit} characters."
        )
    if "\x00" in value:
        raise InvalidInputError(f"{what} {shown(value)} contains a NUL character (\\x00); remove it.")
    if not controls and _CONTROL.search(value):
        raise InvalidInputError(
            f"{what} {shown(value)} contains a control character (tab, newline, …); remove it."
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
            f"{what} {shown(text)} is not allowed: use 1-{MAX_RUN_ID_BYTES} bytes without '/' or '\\', "
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
            f"Display name {shown(text)} is {len(text)} characters long; the limit is {MAX_DISPLAY_NAME_LENGTH}."
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
            f"Metric name {shown(name)} is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}. "
            "Shorten it, or log a row metric (run.log_row) with the variable part as a column."
        )
    if "\x00" in name:
        raise MetricValueError(f"Metric name {shown(name)} contains a NUL character (\\x00); remove it.")
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
    # Each check tries the common case first (a float, an int) and builds its message only on a fault:
    # the server's /metrics route checks every row of every batch.
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
        value, timestamp, step, seq = row.value, row.timestamp, row.step, row.seq
        if (
            value is not None
            and not (type(value) is float and math.isfinite(value))
            and not _finite_number(value)
        ):
            raise MetricValueError(
                f"Metric {name!r}: {value!r:.40} is not a finite number. Log finite numbers only; "
                "check for a division by zero or a diverging loss before logging."
            )
        if not (type(timestamp) is float and math.isfinite(timestamp)) and not _finite_time(timestamp):
            raise MetricValueError(f"Metric {name!r}: timestamp must be a finite number, got {timestamp!r}.")
        if row.text is not None:
            check_text(f"Metric {name!r} text", row.text)
        if step is not None and not (type(step) is int and INT64_MIN <= step <= INT64_MAX):
            _check_int64(f"Metric {name!r} step", step)
        if seq is not None and not (type(seq) is int and INT64_MIN <= seq <= INT64_MAX):
            _check_int64(f"Metric {name!r} seq", seq)
        if row.writer is not None and row.writer not in writers:
            _check_short("writer", row.writer)
            writers.add(row.writer)
        if row.payload is not None:
            check_json(f"Metric {name!r}", row.payload)


@dataclass(frozen=True)
class MetricColumns:
    """A MetricBatch's columns as numpy arrays: a None step or value is 0 or NaN, its mask says where."""

    name_ids: NDArray[np.intp]
    steps: NDArray[np.int64]
    step_none: NDArray[np.bool_] | None
    values: NDArray[np.float64]
    value_none: NDArray[np.bool_] | None
    timestamps: NDArray[np.float64]
    seqs: NDArray[np.int64]


def _finite_number(v: Any) -> bool:
    try:
        return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    except OverflowError:  # an int beyond float's range
        return False


def _finite_time(v: Any) -> bool:
    try:
        return isinstance(v, int | float) and math.isfinite(v)
    except OverflowError:
        return False


def _int64(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and INT64_MIN <= v <= INT64_MAX


def _column(data: Any, rule: Callable[[Any], bool], *, integer: bool, nullable: bool, finite: bool) -> Any:
    """(array, None mask or None, index of the first value refused or None) for one column, a list or a
    numpy array. Plain floats and ints (and None) cost a few C loops; other types go through `rule`, the
    row path's rule, one value at a time."""
    import numpy as np

    dtype = np.int64 if integer else np.float64
    none = None
    if isinstance(data, np.ndarray) and data.dtype.kind in ("iu" if integer else "fiu"):
        if data.dtype.kind == "u" and len(data) and data.max() > INT64_MAX:
            return None, None, int(np.argmax(data > INT64_MAX))
        arr = data.astype(dtype)
    else:
        items = data.tolist() if isinstance(data, np.ndarray) else list(data)
        kinds = set(map(type, items))
        if not kinds <= ({int} if integer else {int, float}) | {type(None)}:
            bad = next((i for i, v in enumerate(items) if not (v is None or rule(v))), None)
            if bad is not None:
                return None, None, bad
        if type(None) in kinds:
            if not nullable:
                return None, None, next(i for i, v in enumerate(items) if v is None)
            none = np.fromiter((v is None for v in items), dtype=bool, count=len(items))
            fill = 0 if integer else math.nan
            items = [fill if v is None else v for v in items]
        try:
            arr = np.array(items, dtype=dtype)
        except OverflowError:  # an int beyond int64's or float's range
            return None, None, next(i for i, v in enumerate(items) if not rule(v))
    if finite:
        refused = ~np.isfinite(arr) if none is None else ~np.isfinite(arr) & ~none
        if refused.any():
            return arr, none, int(np.argmax(refused))
    return arr, none, None


def validate_metric_batch(batch: MetricBatch, *, non_finite: bool = False) -> MetricColumns:
    """validate_metric_rows for a column-wise batch, a column at a time. The first row with a fault is then
    checked by validate_metric_rows itself, so the message is the row path's, for the row it would name.
    `non_finite=True` lets NaN and ±inf values through (rows that already passed validate_metric_rows).
    A batch's payloads are what run.log keeps beside the float: an int, a bool or None."""
    import numpy as np

    n = len(batch.seqs)
    if any(
        len(c) != n for c in (batch.name_ids, batch.steps, batch.values, batch.payloads, batch.timestamps)
    ):
        raise InvalidInputError(f"A MetricBatch's columns must be equally long ({n} seqs); fix its builder.")
    check_run_id(batch.run_id)
    name_ids, _, bad_id = _column(batch.name_ids, _int64, integer=True, nullable=False, finite=False)
    if bad_id is not None or (n and not (name_ids.min() >= 0 and name_ids.max() < len(batch.names))):
        raise InvalidInputError(f"A MetricBatch's name_ids must index its {len(batch.names)} names.")
    name_ids = name_ids.astype(np.intp)
    steps, step_none, bad_step = _column(batch.steps, _int64, integer=True, nullable=True, finite=False)
    values, value_none, bad_value = _column(
        batch.values, _finite_number, integer=False, nullable=True, finite=not non_finite
    )
    times, _, bad_time = _column(batch.timestamps, _finite_time, integer=False, nullable=False, finite=True)
    seqs, _, bad_seq = _column(batch.seqs, _int64, integer=True, nullable=False, finite=False)
    faults = [i for i in (bad_step, bad_value, bad_time, bad_seq) if i is not None]
    if not set(map(type, batch.payloads)) <= {type(None), int, bool}:
        faults.append(next(i for i, p in enumerate(batch.payloads) if not isinstance(p, int | None)))
    for used in np.flatnonzero(np.bincount(name_ids, minlength=len(batch.names))):
        if _refuses(check_metric_name, batch.names[used]):
            faults.append(int(np.argmax(name_ids == used)))
    if n and _refuses(lambda w: _check_short("writer", w), batch.writer):
        faults.append(0)  # the same for every row: the row path names the first
    if faults:
        row = min(faults)
        value = _at(batch.values, row)
        probe = MetricRow(
            batch.run_id,
            batch.names[name_ids[row]],
            "scalar",
            _at(batch.timestamps, row),
            value=0.0 if non_finite and isinstance(value, float) else value,
            payload=_at(batch.payloads, row),
            step=_at(batch.steps, row),
            writer=batch.writer,
            seq=_at(batch.seqs, row),
        )
        validate_metric_rows([probe])  # raises the row path's message for this row, if it has a rule
        name, payload = batch.names[name_ids[row]], _at(batch.payloads, row)
        if isinstance(payload, int | None):  # the only other fault the row path has no rule for
            raise MetricValueError(
                f"Metric {name!r} seq=None: every row of a MetricBatch has a seq, so that a resent batch "
                "is stored once; number the rows."
            )
        raise MetricValueError(
            f"Metric {name!r}: payload {payload!r:.40} is not an int, a bool or None; a MetricBatch's payload "
            "keeps the int or bool that run.log was given (its float is the value)."
        )
    return MetricColumns(name_ids, steps, step_none, values, value_none, times, seqs)


def _refuses(check: Callable[[Any], Any], value: Any) -> bool:
    try:
        check(value)
    except (InvalidInputError, MetricValueError):
        return True
    return False


def _at(column: Any, i: int) -> Any:
    """Row i of a column as the Python value a MetricRow would hold."""
    value = column[i]
    return value.item() if hasattr(value, "item") else value


def validate_model(model: ModelRecord) -> None:
    """A model's name names its folder (models/<name>/<version>/), like a run id; the rest is JSON."""
    name = check_text("Model name", model.name, limit=MAX_NAME_LENGTH, controls=False)
    if name in (".", "..") or any(c in name for c in "/\\"):
        raise InvalidInputError(
            f"Model name {shown(name)} is not allowed: it names a folder, so use no '/' or '\\' and not "
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
            f"Model path {shown(path)} is not allowed: a model's files live in models/{name}/<version>/ "
            f"(e.g. 'models/{name}/{{version}}/model.pkl'), with no '..', '.', '\\' or empty parts."
        )


def check_time(what: str, value: Any) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value)):
        raise InvalidInputError(f"{what}: created_time must be a finite number, got {value!r}.")
