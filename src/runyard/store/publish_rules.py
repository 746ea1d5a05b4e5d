"""What published pipelines, pipeline endpoints and schedules must look like: one set of rules.

SqlStore checks every record with these before it writes (so SQLite, PostgreSQL and the REST server, which
wraps a SqlStore, accept and refuse the same records), RestStore checks them before it sends, and the Python
API (pipeline/published.py, pipeline/schedule.py) calls them at the user's call, so a bad recurrence fails
where it was written with a message naming the field and the fix.

The recurrence rules are v1's `ScheduleRecurrence.validate` (frequency names are case-sensitive, hours and
minutes only with Day or Week, week days only with Week, time_of_day not together with hours or minutes), plus
what v1's service refused later (an unknown time zone, a start time that is not a date). Time zones are v1's
`TimeZone` values (Windows names such as "Pacific Standard Time"), or IANA names such as "Europe/Berlin".
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tzlocal.windows_tz import win_tz

from runyard.errors import InvalidInputError
from runyard.store.data_rules import check_datastore_name
from runyard.store.records import (
    ACTIVE,
    DISABLED,
    PipelineEndpointRecord,
    PublishedPipelineRecord,
    ScheduleRecord,
)
from runyard.store.validation import (
    check_experiment_name,
    check_json,
    check_run_id,
    check_text,
    shown,
)

FREQUENCIES = ("Minute", "Hour", "Day", "Week", "Month")
WEEK_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
STATUSES = (ACTIVE, DISABLED)
RECURRENCE_KEYS = (
    "frequency",
    "interval",
    "start_time",
    "time_zone",
    "hours",
    "minutes",
    "week_days",
    "time_of_day",
)
MAX_NAME = 255
MAX_ID = 64
MAX_PATH = 1024
#: The largest `interval` per frequency: ten years of 365 days. A longer one never fires in a schedule's
#: life, and a huge one overflows the date arithmetic of the next firing (docs/security.md).
MAX_INTERVALS = {"Minute": 5_256_000, "Hour": 87_600, "Day": 3_650, "Week": 520, "Month": 120}
#: Size caps, measured as JSON text: a published graph is read by every page and submit that shows or
#: runs it, and a schedule's parameters are copied into each run it fires.
MAX_GRAPH_BYTES = 4 * 1024 * 1024
MAX_PARAMETERS_BYTES = 256 * 1024
#: v1 TimeZone values that tzlocal's table (the current Windows list) no longer carries.
_RETIRED_WINDOWS_ZONES = {
    "Mid-Atlantic Standard Time": "Etc/GMT+2",
    "Kamchatka Standard Time": "Asia/Kamchatka",
}
_TIME_OF_DAY = re.compile(r"([0-9]{1,2}):([0-9]{2})")


def check_name(what: str, value: Any) -> str:
    """1-255 characters without control characters: names show up in tables, URLs and log lines."""
    return check_text(what, value, limit=MAX_NAME, controls=False)


def check_id(what: str, value: Any) -> str:
    """An id is text that fits one URL path segment (the REST routes put it in the path)."""
    text = check_text(what, value, limit=MAX_ID, controls=False)
    if text in (".", "..") or any(c in text for c in "/\\?#%"):
        raise InvalidInputError(
            f"{what} {shown(text)} is not allowed: use 1-{MAX_ID} characters without '/', '\\', '?', '#' "
            "or '%', and not '.' or '..'. Leave it out to get a generated id."
        )
    return text


def check_status(what: str, value: Any) -> str:
    if value not in STATUSES:
        raise InvalidInputError(
            f"{what} status {value!r:.60} is not known; use {ACTIVE!r} or {DISABLED!r} (enable() or disable())."
        )
    return str(value)


def check_epoch(what: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value)):
        raise InvalidInputError(
            f"{what} must be a finite number of seconds since the epoch, got {value!r:.60}."
        )


def _optional_text(what: str, value: Any, limit: int | None = None) -> None:
    if value is not None:
        check_text(what, value, limit=limit)


def _json_object(what: str, value: Any) -> None:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError(f"{what} must be a JSON object with text keys, got {type(value).__name__}.")
    check_json(what, value)


def _json_size(what: str, value: Any, limit: int, fix: str) -> None:
    """Refuse JSON whose text form is larger than `limit` bytes (checked after check_json, so it encodes)."""
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"))
    if size > limit:
        raise InvalidInputError(
            f"{what} is {size:,} bytes as JSON; the limit is {limit:,} bytes ({limit // 1024:,} KiB). {fix}"
        )


def _flag(what: str, value: Any, *, optional: bool = False) -> None:
    if not isinstance(value, bool) and not (optional and value is None):
        raise InvalidInputError(f"{what} must be True or False, got {value!r:.60}.")


def zone_of(name: str | None) -> ZoneInfo:
    """The zone a v1 TimeZone value ("UTC", "Pacific Standard Time") or an IANA name ("Europe/Berlin")
    stands for; None is UTC, as in v1."""
    if name is None:
        return ZoneInfo("UTC")
    if not isinstance(name, str) or not name or "\x00" in name:
        raise InvalidInputError(
            f"time_zone must be a TimeZone value such as 'UTC' or 'Pacific Standard Time', got {name!r:.60}."
        )
    key = win_tz.get(name) or _RETIRED_WINDOWS_ZONES.get(name) or name
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder of zones, such as "Pacific"
        raise InvalidInputError(
            f"time_zone {shown(name)} is not a known time zone. Use a TimeZone member (for example "
            "TimeZone.PacificStandardTime, whose value is 'Pacific Standard Time'), 'UTC', or an IANA name "
            "such as 'Europe/Berlin'."
        ) from None


def _start_time(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(
                f"start_time {shown(value)} is not a date and time; write it as YYYY-MM-DDThh:mm:ss "
                "(for example '2024-05-20T16:00:00') or pass a datetime."
            ) from None
    else:
        raise InvalidInputError(
            f"start_time must be a datetime or text like '2024-05-20T16:00:00', got {value!r:.60}."
        )
    if parsed.tzinfo is not None:
        raise InvalidInputError(
            "Can not specify tzinfo for start_time, use time_zone instead: give the local time without an "
            "offset (e.g. '2024-05-20T16:00:00') and the zone as time_zone=TimeZone.PacificStandardTime."
        )
    return parsed.strftime("%Y-%m-%dT%H:%M:%S")


def _int_list(what: str, value: Any, low: int, high: int) -> list[int] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInputError(
            f"{what} must be a non-empty list of whole numbers from {low} to {high} (e.g. [{low}, {high}]), "
            f"or None; got {value!r:.60}."
        )
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not low <= item <= high:
            label = what.capitalize()
            raise InvalidInputError(f"{label} must be between {low} and {high}; {item!r:.40} is not.")
    return sorted(set(value))


def _time_of_day(value: Any) -> str | None:
    if value is None:
        return None
    match = _TIME_OF_DAY.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidInputError(
            f"time_of_day should be in the format hh:mm (e.g. '18:30'), got {value!r:.60}."
        )
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23:
        raise InvalidInputError(f"Time of day hour value must be between 0 and 23; {value!r} has {hour}.")
    if minute > 59:
        raise InvalidInputError(f"Time of day minute value must be between 0 and 59; {value!r} has {minute}.")
    return f"{hour:02d}:{minute:02d}"


def check_recurrence(value: Any) -> dict[str, Any]:
    """v1's ScheduleRecurrence rules; returns the recurrence JSON with every key, normalised (start_time as
    'YYYY-MM-DDThh:mm:ss', time_zone 'UTC' when a start time came without one, lists sorted)."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"recurrence must be a ScheduleRecurrence (JSON object with {', '.join(RECURRENCE_KEYS)}), "
            f"got {type(value).__name__}."
        )
    unknown = sorted(str(k) for k in value if k not in RECURRENCE_KEYS)
    if unknown:
        raise InvalidInputError(
            f"recurrence has unknown field(s) {', '.join(unknown)}; use only {', '.join(RECURRENCE_KEYS)}."
        )
    frequency = value.get("frequency")
    if frequency not in FREQUENCIES:
        raise InvalidInputError(
            f"Invalid value for frequency {frequency!r:.40}, only one of Minute, Hour, Day, Week, or Month "
            "accepted (with that capitalisation)."
        )
    interval = value.get("interval")
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
        raise InvalidInputError(f"Interval must be an integer greater than 0, got {interval!r:.40}.")
    if interval > MAX_INTERVALS[frequency]:
        raise InvalidInputError(
            f"interval must be 1..{MAX_INTERVALS[frequency]:,} for frequency {frequency!r} (at most ten years), "
            f"got {interval:,}; use a longer frequency or a smaller interval."
        )
    hours = _int_list("hours", value.get("hours"), 0, 23)
    minutes = _int_list("minutes", value.get("minutes"), 0, 59)
    time_of_day = _time_of_day(value.get("time_of_day"))
    if time_of_day is not None and (hours is not None or minutes is not None):
        raise InvalidInputError(
            "Can not specify time_of_day and hours or minutes: give time_of_day='18:30', or hours=[18] and "
            "minutes=[30]."
        )
    if frequency not in ("Day", "Week"):
        for field, given in (("hours", hours), ("minutes", minutes), ("time_of_day", time_of_day)):
            if given is not None:
                raise InvalidInputError(
                    f"Can only specify {field.replace('_', ' ')} if frequency is Week or Day (this one is "
                    f"{frequency!r}); use frequency='Day' or 'Week', or leave {field} out."
                )
    week_days = value.get("week_days")
    if week_days is not None:
        if frequency != "Week":
            raise InvalidInputError(
                f"Can only specify week days if frequency is Week (this one is {frequency!r}); use "
                "frequency='Week' or leave week_days out."
            )
        if (
            not isinstance(week_days, list | tuple)
            or not week_days
            or any(d not in WEEK_DAYS for d in week_days)
        ):
            raise InvalidInputError(
                "Week days must be a non-empty list of str, accepted values: Monday, Tuesday, Wednesday, "
                f"Thursday, Friday, Saturday, Sunday (with that capitalisation); got {week_days!r:.80}."
            )
        week_days = [d for d in WEEK_DAYS if d in week_days]
    start_time = _start_time(value.get("start_time"))
    time_zone = value.get("time_zone")
    zone_of(time_zone)
    if start_time is not None and time_zone is None:
        time_zone = "UTC"  # v1's ScheduleRecurrence does the same
    return {
        "frequency": frequency,
        "interval": interval,
        "start_time": start_time,
        "time_zone": time_zone,
        "hours": hours,
        "minutes": minutes,
        "week_days": week_days,
        "time_of_day": time_of_day,
    }


def check_published_pipeline(record: PublishedPipelineRecord) -> PublishedPipelineRecord:
    check_id("Published pipeline id", record.id)
    check_name("Published pipeline name", record.name)
    check_status("Published pipeline", record.status)
    check_epoch("Published pipeline created_time", record.created_time)
    _optional_text("Published pipeline description", record.description)
    _optional_text("Published pipeline version", record.version, MAX_NAME)
    _flag("continue_on_step_failure", record.continue_on_step_failure)
    _json_object("The published pipeline's graph", record.graph)
    _json_size(
        "The published pipeline's graph",
        record.graph,
        MAX_GRAPH_BYTES,
        "Publish a smaller pipeline: keep data in datasets or datastores, not in arguments or defaults.",
    )
    _json_object("The published pipeline's data", record.data)
    return record


def check_version_key(value: Any) -> str:
    """Endpoint versions are "0", "1", … (v1 numbers them as text)."""
    if not isinstance(value, str) or not value.isdigit() or not value.isascii() or str(int(value)) != value:
        raise InvalidInputError(
            f"Pipeline endpoint version {value!r:.40} is not valid; versions are whole numbers as text "
            "('0', '1', …). Call list_versions() to see them."
        )
    return value


def check_pipeline_endpoint(record: PipelineEndpointRecord) -> PipelineEndpointRecord:
    check_id("Pipeline endpoint id", record.id)
    check_name("Pipeline endpoint name", record.name)
    check_status("Pipeline endpoint", record.status)
    check_epoch("Pipeline endpoint created_time", record.created_time)
    _optional_text("Pipeline endpoint description", record.description)
    if not isinstance(record.versions, Mapping) or not record.versions:
        raise InvalidInputError(
            "A pipeline endpoint needs at least one version: publish it with a pipeline, e.g. "
            "PipelineEndpoint.publish(ws, name, description, pipeline=published_pipeline)."
        )
    for key, pipeline_id in record.versions.items():
        check_version_key(key)
        check_id(f"The published pipeline id of version {key}", pipeline_id)
    if record.default_version not in record.versions:
        raise InvalidInputError(
            f"default_version {record.default_version!r:.40} is not one of the endpoint's versions "
            f"({', '.join(record.versions)}); pick one of those."
        )
    _json_object("The pipeline endpoint's data", record.data)
    return record


def check_polling_interval(value: Any) -> float:
    """Minutes between two looks at a watched datastore: > 0; fractions of a minute are a runyard extension."""
    if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value)) or value <= 0:
        raise InvalidInputError(
            f"polling_interval must be a number of minutes greater than 0 (e.g. 5), got {value!r:.40}."
        )
    return float(value)


def check_schedule(record: ScheduleRecord) -> ScheduleRecord:
    """Every field, and the two either-or rules: one pipeline or one endpoint; a recurrence or a datastore
    watch. Returns the record as stored: recurrence normalised, datastore name lowercased (v1's datastore
    names are case-insensitive), polling_interval a float."""
    check_id("Schedule id", record.id)
    check_name("Schedule name", record.name)
    check_status("Schedule", record.status)
    check_experiment_name(record.experiment_name)
    check_epoch("Schedule created_time", record.created_time)
    if (record.pipeline_id is None) == (record.pipeline_endpoint_id is None):
        raise InvalidInputError(
            "A schedule submits either a published pipeline or a pipeline endpoint: give exactly one of "
            "pipeline_id (Schedule.create) or pipeline_endpoint_id (Schedule.create_for_pipeline_endpoint)."
        )
    if record.pipeline_id is not None:
        check_id("pipeline_id", record.pipeline_id)
    if record.pipeline_endpoint_id is not None:
        check_id("pipeline_endpoint_id", record.pipeline_endpoint_id)
    _optional_text("Schedule description", record.description)
    watch = record.datastore_name is not None
    if (record.recurrence is None) == (not watch):
        raise InvalidInputError(
            "A schedule needs exactly one trigger: a recurrence (recurrence=ScheduleRecurrence(frequency="
            "'Hour', interval=1)) or a datastore to watch (datastore=..., polling_interval=5), not "
            f"{'both' if watch else 'neither'}."
        )
    recurrence = None if record.recurrence is None else check_recurrence(record.recurrence)
    datastore_name, polling_interval = None, None
    if watch:
        datastore_name = check_datastore_name(record.datastore_name)
        polling_interval = check_polling_interval(record.polling_interval)
        _optional_text("path_on_datastore", record.path_on_datastore, MAX_PATH)
        if record.data_path_parameter_name is not None:
            check_name("data_path_parameter_name", record.data_path_parameter_name)
    else:
        for field in ("polling_interval", "path_on_datastore", "data_path_parameter_name"):
            if getattr(record, field) is not None:
                raise InvalidInputError(
                    f"{field} only applies to a schedule that watches a datastore; leave it out with a "
                    "recurrence, or give datastore= instead of recurrence=."
                )
    _flag("continue_on_step_failure", record.continue_on_step_failure, optional=True)
    _json_object("The schedule's pipeline_parameters", record.pipeline_parameters)
    _json_size(
        "The schedule's pipeline_parameters",
        record.pipeline_parameters,
        MAX_PARAMETERS_BYTES,
        "Pass large values as a dataset or DataPath parameter instead of inline.",
    )
    check_epoch("Schedule next_fire_time", record.next_fire_time, optional=True)
    check_epoch("Schedule last_fire_time", record.last_fire_time, optional=True)
    if record.last_run_id is not None:
        check_run_id(record.last_run_id, "Schedule last_run_id")
    _json_object("The schedule's data", record.data)
    return replace(
        record, recurrence=recurrence, datastore_name=datastore_name, polling_interval=polling_interval
    )
