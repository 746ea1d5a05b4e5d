"""ScheduleRecurrence and TimeZone: v1's timetable for a Schedule, checked where it is written.

The rules are store/publish_rules.py's `check_recurrence` (v1's validate(), plus what v1's service refused
later), so the Python API, the store and the REST server accept and refuse the same recurrences. When the
timetable fires is engine/schedules.py's business (APScheduler's triggers).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import Enum
from typing import Any

from tzlocal.windows_tz import win_tz

from runyard.compat import v1_keywords
from runyard.store.publish_rules import check_recurrence

#: v1's time zones: the Windows zone names (tzlocal's table, plus two v1 still lists that Windows retired).
#: A member's name is its value without spaces or punctuation: TimeZone.PacificStandardTime.
_ZONES = sorted({*win_tz, "Mid-Atlantic Standard Time", "Kamchatka Standard Time"})
TimeZone = Enum(  # type: ignore[misc]  # members come from the table, as v1's hand-written enum lists them
    "TimeZone", {re.sub(r"[^A-Za-z0-9]", "", zone): zone for zone in _ZONES}, module=__name__
)
TimeZone.__doc__ = "The time zones a ScheduleRecurrence's start_time may be given in (v1's Windows names)."


@v1_keywords
class ScheduleRecurrence:
    """How often a schedule fires: every `interval` `frequency`s ("Minute", "Hour", "Day", "Week", "Month"),
    optionally at given hours/minutes or time_of_day, on given week days, from start_time in time_zone.

    Checked when it is made and again by validate(): a mistake fails on the line that wrote it."""

    def __init__(
        self,
        frequency: str,
        interval: int,
        start_time: datetime | str | None = None,
        time_zone: Any = None,
        hours: list[int] | None = None,
        minutes: list[int] | None = None,
        week_days: list[str] | None = None,
        time_of_day: str | None = None,
    ) -> None:
        self.frequency, self.interval = frequency, interval
        self.start_time, self.time_zone = start_time, time_zone
        self.hours, self.minutes, self.week_days, self.time_of_day = hours, minutes, week_days, time_of_day
        normal = self.validate_json()
        self.start_time = normal["start_time"]  # v1 keeps start_time as 'YYYY-MM-DDThh:mm:ss' text
        if normal["time_zone"] is not None and self.time_zone is None:
            self.time_zone = TimeZone["UTC"]  # v1: a start time without a zone is UTC

    def _json(self) -> dict[str, Any]:
        zone = self.time_zone.value if isinstance(self.time_zone, TimeZone) else self.time_zone
        return {
            "frequency": self.frequency,
            "interval": self.interval,
            "start_time": self.start_time,
            "time_zone": zone,
            "hours": self.hours,
            "minutes": self.minutes,
            "week_days": self.week_days,
            "time_of_day": self.time_of_day,
        }

    def validate_json(self) -> dict[str, Any]:
        """The recurrence as stored (normalised JSON), or InvalidInputError naming the field and the fix."""
        return check_recurrence(self._json())

    def validate(self) -> None:
        """v1's check: InvalidInputError (a ValueError too) naming the field and the fix."""
        self.validate_json()

    @classmethod
    def _from_json(cls, data: dict[str, Any]) -> ScheduleRecurrence:
        zone = data.get("time_zone")
        member = next((z for z in TimeZone if z.value == zone), None)
        values = {k: data.get(k) for k in ("hours", "minutes", "week_days", "time_of_day")}
        return cls(data["frequency"], data["interval"], data.get("start_time"), member or zone, **values)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self._json().items() if v is not None}
        return "ScheduleRecurrence(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
