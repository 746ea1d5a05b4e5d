"""Schedules fire here: the workspace's scheduler service ticks them about once a second.

A schedule is a recurrence or a datastore watch (store/records.py ScheduleRecord). What is worked out
where (docs/schedules.md):

- *When* a recurrence fires comes from APScheduler 3's triggers, never from hand-written calendar
  arithmetic: Minute and Hour are an IntervalTrigger from the anchor; Day, Week and Month are a
  CronTrigger on the anchor's wall-clock time (or the given hours/minutes/week_days/time_of_day) in the
  schedule's time zone, so a daily 09:00 stays 09:00 across daylight-saving changes. An interval above 1
  keeps every n-th day, week or month counted from the anchor (the trigger has no "every n-th" for those).
  The anchor is `start_time`, or, without one, the schedule's first firing (v1 fires at once then).
- *Exactly once*: the run id is chosen first and the firing claimed with a compare-and-set on
  `next_fire_time` (SqlStore.claim_schedule_firing), then the run is created with that id. A scheduler
  killed in between creates that run when it starts again (`ScheduleTicker.recover`), once.
- *Missed firings*: the stored `next_fire_time` is in the past when no scheduler ran at that time; the
  firing happens once on the next tick and the following time is computed from now, so a week without a
  scheduler is one run, not one per missed interval.
- *Failures* (a disabled pipeline, a parameter the pipeline no longer has) are kept in the schedule's
  `data["lastError"]` (a watch that cannot list its store: `data["watchError"]`) and printed; they never
  stop the service.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from runyard.core.workspace import Workspace
from runyard.data.datastore import Datastore
from runyard.engine.submission import (
    ENDPOINT_ID_PROPERTY,
    SCHEDULE_ID_PROPERTY,
    published_for_endpoint,
    submit_published,
)
from runyard.errors import NotFoundError, PipelineDisabled, RunyardError
from runyard.store import SqlStore
from runyard.store.publish_rules import zone_of
from runyard.store.records import ACTIVE, PublishedPipelineRecord, ScheduleRecord

#: How many kept days/weeks/months a recurrence with an interval above 1 tries for its next firing (a
#: kept month may lack the day: Feb 29 every 12 months fires in leap years only).
_MAX_JUMPS = 100
_CRON_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEK_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# -- when a recurrence fires ------------------------------------------------------------------------
def _anchor(record: ScheduleRecord, recurrence: dict[str, Any]) -> datetime:
    """The recurrence's origin in its zone: start_time (naive text is wall-clock time in time_zone),
    else the first firing (kept in data["firstFireTime"]), else the schedule's creation."""
    zone = zone_of(recurrence.get("time_zone"))
    start = recurrence.get("start_time")
    if start:
        parsed = datetime.fromisoformat(str(start))
        return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed.astimezone(zone)
    first = record.data.get("firstFireTime")
    return datetime.fromtimestamp(float(first if first is not None else record.created_time), zone)


def _cron(recurrence: dict[str, Any], anchor: datetime) -> CronTrigger:
    """Day, Week and Month recurrences: the wall-clock times of one day, on the days the frequency keeps."""
    hours, minutes = recurrence.get("hours"), recurrence.get("minutes")
    if recurrence.get("time_of_day"):
        hh, _, mm = str(recurrence["time_of_day"]).partition(":")
        hours, minutes = [int(hh)], [int(mm)]
    second = anchor.second if hours is None and minutes is None else 0
    fields: dict[str, Any] = {
        "hour": ",".join(str(h) for h in sorted(hours or [anchor.hour])),
        "minute": ",".join(str(m) for m in sorted(minutes or [anchor.minute])),
        "second": second,
    }
    frequency = recurrence["frequency"]
    if frequency == "Week":
        days = recurrence.get("week_days") or [_WEEK_DAYS[anchor.weekday()]]
        fields["day_of_week"] = ",".join(_CRON_DAYS[_WEEK_DAYS.index(d)] for d in days)
    elif frequency == "Month":
        fields["day"] = anchor.day  # months without that day are skipped, as v1's recurrences do
    start = anchor.replace(microsecond=0)
    if hours is not None or minutes is not None:  # the given times from the anchor's day on
        start = start.replace(hour=0, minute=0, second=0)
    return CronTrigger(start_date=start, timezone=anchor.tzinfo, **fields)


def _kept(frequency: str, interval: int, anchor: datetime, when: datetime) -> bool:
    """With an interval above 1, only every n-th day / week / month (counted from the anchor's) fires."""
    if interval == 1:
        return True
    local = when.astimezone(anchor.tzinfo)
    if frequency == "Day":
        return (local.date() - anchor.date()).days % interval == 0
    if frequency == "Week":
        monday = anchor.date() - timedelta(days=anchor.weekday())
        return ((local.date() - monday).days // 7) % interval == 0
    return ((local.year - anchor.year) * 12 + local.month - anchor.month) % interval == 0


def _next_kept_start(frequency: str, interval: int, anchor: datetime, when: datetime) -> datetime:
    """Midnight (in the anchor's zone) starting the first kept day / week / month after `when`'s, so a
    large interval jumps there instead of stepping through every candidate in between."""
    local = when.astimezone(anchor.tzinfo)
    if frequency == "Day":
        passed = (local.date() - anchor.date()).days
        day = anchor.date() + timedelta(days=-(-passed // interval) * interval)
    elif frequency == "Week":
        monday = anchor.date() - timedelta(days=anchor.weekday())
        passed = (local.date() - monday).days // 7
        day = monday + timedelta(weeks=-(-passed // interval) * interval)
    else:
        passed = (local.year - anchor.year) * 12 + local.month - anchor.month
        month = anchor.year * 12 + anchor.month - 1 + -(-passed // interval) * interval
        day = date(month // 12, month % 12 + 1, 1)
    return datetime.combine(day, datetime.min.time(), anchor.tzinfo)


def next_fire_time(record: ScheduleRecord, after: float) -> float | None:
    """The first time after `after` (epoch seconds) the schedule fires; None when it never does.

    A recurrence without start_time that never fired fires at once (`after` itself), as v1 does. A
    datastore watch is polled every `polling_interval` minutes: its next poll is `after` plus that.
    A time past what dates can hold (year 9999) is "never": a stored record is input, and its fault
    must not break the ticker or the pages that show it."""
    try:
        return _next_fire_time(record, after)
    except (OverflowError, ValueError, OSError):  # OSError: fromtimestamp beyond the platform's range
        return None


def _next_fire_time(record: ScheduleRecord, after: float) -> float | None:
    if record.recurrence is None:
        minutes = float(record.polling_interval or 0)
        return after + minutes * 60 if minutes > 0 else None
    recurrence = record.recurrence
    if not recurrence.get("start_time") and record.last_fire_time is None:
        return after
    anchor = _anchor(record, recurrence)
    frequency, interval = recurrence["frequency"], int(recurrence.get("interval") or 1)
    now = datetime.fromtimestamp(after, anchor.tzinfo) + timedelta(milliseconds=1)  # strictly after
    if frequency in ("Minute", "Hour"):
        unit = "minutes" if frequency == "Minute" else "hours"
        trigger: IntervalTrigger | CronTrigger = IntervalTrigger(
            **{unit: interval}, start_date=anchor, timezone=anchor.tzinfo
        )
        found = trigger.get_next_fire_time(None, now)
        return None if found is None else found.timestamp()
    trigger = _cron(recurrence, anchor)
    found = trigger.get_next_fire_time(None, now)
    for _ in range(_MAX_JUMPS):
        if found is None or _kept(frequency, interval, anchor, found):
            return None if found is None else found.timestamp()
        found = trigger.get_next_fire_time(None, _next_kept_start(frequency, interval, anchor, found))
    return None


def _inputs(record: ScheduleRecord) -> str:
    """What next_fire_time's answer depends on besides `after` (a later `after` never turns None into a
    time), so the ticker computes a recurrence that never fires once per change, not once per tick."""
    fields = [record.recurrence, record.created_time, record.last_fire_time, record.data.get("firstFireTime")]
    return json.dumps(fields, sort_keys=True, default=str)


# -- the datastore watch ----------------------------------------------------------------------------
def watch_listing(ws: Workspace, record: ScheduleRecord) -> dict[str, list[Any]]:
    """{path: [size, mtime_ns or version tag]} of every file under the watched path, through the data
    layer (local folders, fsspec stores, the server's artifact API alike). Schedule.create keeps the
    first one in data["watch"] as the baseline."""
    assert record.datastore_name is not None
    backend = Datastore.get(ws, record.datastore_name).backend()
    files = backend.list_files(record.path_on_datastore or "")
    return {f.path: [f.size, f.mtime_ns if f.mtime_ns is not None else f.version_tag] for f in files}


def changed_paths(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Files that are new or whose size or stamp changed (a deleted file fires nothing)."""
    return sorted(p for p, stamp in after.items() if before.get(p) != stamp)


def changed_location(paths: list[str]) -> str:
    """What a watch firing passes as its DataPath: the changed file, or the folder holding all of them."""
    if len(paths) == 1:
        return paths[0]
    return posixpath.commonpath(paths) if paths else ""


def _datapath_value(record: ScheduleRecord, path: str | None) -> dict[str, Any]:
    values = dict(record.pipeline_parameters or {})
    if record.data_path_parameter_name and path is not None:
        values[record.data_path_parameter_name] = {
            "datapath": {"datastore": record.datastore_name, "path": path}
        }
    return values


def _shown(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


# -- the ticker -------------------------------------------------------------------------------------
class ScheduleTicker:
    """Fires the due schedules of a workspace whose store is a SqlStore (only the workspace's own
    scheduler fires schedules; clients of a server never do). The service calls `tick` once a second."""

    def __init__(self, ws: Workspace, echo: Callable[[str], None]) -> None:
        self.ws = ws
        store = ws.store
        if not isinstance(store, SqlStore):
            raise TypeError("ScheduleTicker needs the workspace's own database (a SqlStore).")
        self.store = store
        self.echo = echo
        self._active = False
        self._recovered = False
        #: schedule id -> what its "never fires" answer was computed from (`_never_fires`)
        self._never: dict[str, str] = {}

    def active(self) -> bool:
        """True when the last tick saw an Active schedule (the service then stays up)."""
        return self._active

    def tick(self, now: float) -> None:
        if not self._recovered:
            self._recovered = True
            self._guarded("recovery", self.recover)
        schedules = self.store.list_schedules(active_only=True)
        self._active = bool(schedules)
        for record in schedules:
            self._guarded(f"schedule {record.name!r} ({record.id})", self._tick_one, record, now)

    def _guarded(self, what: str, action: Callable[..., None], *args: Any) -> None:
        """One schedule's fault is printed and the others still tick: the service never dies of it."""
        try:
            action(*args)
        except Exception:  # logged whole: the service must keep serving the others
            self.echo(f"{what}: {traceback.format_exc().rstrip()}")

    def _tick_one(self, record: ScheduleRecord, now: float) -> None:
        if record.recurrence is None:
            self._poll_watch(record, now)
            return
        due, data = record.next_fire_time, record.data
        if due is None:
            # First sight: from the schedule's creation, so a start_time a slow scheduler saw late still
            # fires (once). Seen before and re-enabled: from now, with no catch-up.
            seen = "seenTime" in data
            if self._never.get(record.id) == _inputs(record):
                return
            due = next_fire_time(record, now if seen else min(now, record.created_time))
            if due is None:  # remembered: the answer stays None for every later `now`
                self._never[record.id] = _inputs(record)
                return
            data = data if seen else {**data, "seenTime": now}
            if due > now:
                if self.store.claim_schedule_firing(record.id, None, due, data=None if seen else data):
                    self.echo(f"schedule {record.name} ({record.id}): next firing {_shown(due)}")
                return
        if due > now:
            return
        if not record.recurrence.get("start_time") and "firstFireTime" not in data:
            data = {**data, "firstFireTime": now}  # the anchor of a recurrence without start_time
        fired = dataclasses.replace(record, last_fire_time=now, data=data)
        self._fire(fired, record.next_fire_time, now, next_fire_time(fired, now), {})

    def _poll_watch(self, record: ScheduleRecord, now: float) -> None:
        if record.next_fire_time is not None and record.next_fire_time > now:
            return
        following = next_fire_time(record, now)
        data = dict(record.data)
        try:
            listing = watch_listing(self.ws, record)
        except RunyardError as exc:  # the datastore is gone or unreachable: say so, poll again later
            error = {"time": now, "message": f"Could not list the watched path: {exc}"}
            if self.store.claim_schedule_firing(
                record.id, record.next_fire_time, following, data={"watchError": error}
            ):
                self.echo(f"schedule {record.name} ({record.id}): {error['message']}")
            return
        baseline = data.get("watch")
        data["watch"] = listing
        data["watchError"] = None
        changed = changed_paths(baseline, listing) if isinstance(baseline, dict) else []
        if not changed:  # the first listing is the baseline; a deletion only updates it
            same = listing == baseline and record.data.get("watchError") is None
            self.store.claim_schedule_firing(
                record.id, record.next_fire_time, following, data=None if same else data
            )
            return
        fired = dataclasses.replace(record, data=data)
        self._fire(fired, record.next_fire_time, now, following, {"dataPath": changed_location(changed)})

    def _fire(
        self,
        record: ScheduleRecord,
        expected: float | None,
        now: float,
        following: float | None,
        firing: dict[str, Any],
    ) -> None:
        """Claim this firing under a new run id, then create that run (see the module docstring)."""
        run_id = str(uuid.uuid4())
        data = {**record.data, "lastError": None}  # claim_schedule_firing merges top-level keys
        data["firing"] = {"runId": run_id, "time": now, **firing}
        if not self.store.claim_schedule_firing(
            record.id, expected, following, fired_time=now, run_id=run_id, data=data
        ):
            return  # disabled, or another tick moved it meanwhile
        self._submit(dataclasses.replace(record, data=data, last_run_id=run_id), run_id)

    def _submit(self, record: ScheduleRecord, run_id: str) -> None:
        firing = record.data.get("firing") or {}
        path = firing.get("dataPath") if firing.get("runId") == run_id else None
        try:
            published, properties = self._target(record)
            submit_published(
                self.ws,
                published,
                record.experiment_name,
                _datapath_value(record, path),
                submitter=record.data.get("createdBy"),
                continue_on_step_failure=record.continue_on_step_failure,
                run_id=run_id,
                properties=properties,
            )
        except RunyardError as exc:
            if not self._exists(run_id):  # else another folder's scheduler on this database created it
                self._record_error(record.id, run_id, str(exc))
            return
        following = self.store.get_schedule(record.id).next_fire_time
        after = f"; next firing {_shown(following)}" if following is not None else ""
        self.echo(f"schedule {record.name} ({record.id}): fired pipeline run {run_id}{after}")

    def _target(self, record: ScheduleRecord) -> tuple[PublishedPipelineRecord, dict[str, str]]:
        properties = {SCHEDULE_ID_PROPERTY: record.id}
        if record.pipeline_endpoint_id is not None:
            endpoint = self.store.get_pipeline_endpoint(record.pipeline_endpoint_id)
            if endpoint.status != ACTIVE:
                raise PipelineDisabled(
                    f"Pipeline endpoint {endpoint.name!r} ({endpoint.id}) is {endpoint.status}, so its schedule "
                    "cannot submit it; enable it first: PipelineEndpoint.get(ws, id=...).enable()."
                )
            properties[ENDPOINT_ID_PROPERTY] = endpoint.id
            return published_for_endpoint(self.store, endpoint), properties
        assert record.pipeline_id is not None
        return self.store.get_published_pipeline(record.pipeline_id), properties

    def _record_error(self, schedule_id: str, run_id: str, message: str) -> None:
        latest = self.store.get_schedule(schedule_id)
        data = {**latest.data, "lastError": {"runId": run_id, "time": time.time(), "message": message}}
        self.store.claim_schedule_firing(schedule_id, latest.next_fire_time, latest.next_fire_time, data=data)
        self.echo(f"schedule {latest.name} ({schedule_id}): firing {run_id} failed: {message}")

    def _exists(self, run_id: str) -> bool:
        try:
            self.store.get_run(run_id)
        except NotFoundError:
            return False
        return True

    def recover(self) -> None:
        """A scheduler killed between claiming a firing and creating its run: create that run now, once
        (the claim recorded its id; a failed firing recorded its error instead and is not retried).
        Only Active schedules: a claim happens only while a schedule is Active, so a Disabled one that
        names a run that does not exist was disabled since (it must not fire) or was written that way."""
        for record in self.store.list_schedules(active_only=False):
            if record.status != ACTIVE:  # a Disabled record's last_run_id may be made up: it never fires
                continue
            run_id = record.last_run_id
            failed = (record.data.get("lastError") or {}).get("runId") == run_id
            if run_id is None or failed or self._exists(run_id):
                continue
            self.echo(f"schedule {record.name} ({record.id}): creating run {run_id} of its last firing")
            self._submit(record, run_id)


def fire_now(
    ws: Workspace, record: ScheduleRecord, now: float, echo: Callable[[str], None] | None = None
) -> str | None:
    """Give `record` the tick a scheduler would give it at `now`, here and now; the run id it fired, if any.

    `Schedule.create` calls it for a recurrence without start_time, which v1 fires at once: the run then
    exists when create returns (DP-100's next cell lists the experiment's runs). It is the ticker's own
    code (the same claim on next_fire_time), so a scheduler ticking at the same moment cannot fire it a
    second time; afterwards next_fire_time is set and the scheduler goes on from there."""
    ticker = ScheduleTicker(ws, echo or (lambda _line: None))
    ticker._tick_one(record, now)
    fired = ticker.store.get_schedule(record.id).last_run_id
    return fired if fired != record.last_run_id else None


def upcoming(ws: Workspace) -> list[tuple[ScheduleRecord, float | None]]:
    """The Active schedules with when each fires next (a watch: its next poll), soonest first; for
    `runyard up` and `runyard schedule list`."""
    now = time.time()
    rows = []
    for record in ws.store.list_schedules(active_only=True):
        when = record.next_fire_time if record.next_fire_time is not None else next_fire_time(record, now)
        rows.append((record, when))
    return sorted(rows, key=lambda row: (row[1] is None, row[1] or 0.0))


def describe_recurrence(record: ScheduleRecord) -> str:
    """One line for tables: "every 2 Day at 09:00 (Pacific Standard Time)" or "watch store/path every 5 min"."""
    if record.recurrence is None:
        where = f"{record.datastore_name}/{record.path_on_datastore or ''}".rstrip("/")
        return f"watch {where} every {record.polling_interval:g} min"
    r = record.recurrence
    text = f"every {r.get('interval', 1)} {r['frequency']}"
    if r.get("week_days"):
        text += " on " + ",".join(d[:3] for d in r["week_days"])
    if r.get("time_of_day"):
        text += f" at {r['time_of_day']}"
    elif r.get("hours") or r.get("minutes"):
        text += f" at hours {r.get('hours') or '-'} minutes {r.get('minutes') or '-'}"
    if r.get("start_time"):
        text += f" from {r['start_time']}"
    return text + f" ({r.get('time_zone') or 'UTC'})"
