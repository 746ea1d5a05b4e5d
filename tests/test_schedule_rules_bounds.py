"""Bounds on what a schedule or published pipeline may hold (issue 15 security review, holes 6 and size):
an interval longer than ten years is refused where it is written (store/publish_rules.py), a recurrence
with a large interval finds its next firing by jumping to the next kept day/week/month instead of
stepping through every candidate, a time past what dates can hold is "never" (no exception for the
ticker or the pages), and a published graph and a schedule's parameters have a size limit."""

from __future__ import annotations

import dataclasses
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.engine.schedules import ScheduleTicker, next_fire_time, upcoming
from runyard.errors import InvalidInputError
from runyard.pipeline import Pipeline, PythonScriptStep
from runyard.store.publish_rules import (
    MAX_GRAPH_BYTES,
    MAX_INTERVALS,
    MAX_PARAMETERS_BYTES,
    check_published_pipeline,
    check_recurrence,
)
from runyard.store.records import ACTIVE, PublishedPipelineRecord, ScheduleRecord


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def record_with(recurrence: dict[str, Any], **fields: Any) -> ScheduleRecord:
    """A record as a stored one may look (not checked: older runyards stored any interval)."""
    return ScheduleRecord(
        id="s", name="s", status=ACTIVE, experiment_name="e", created_time=at("2020-01-01T00:00:00+00:00"),
        pipeline_id="p", recurrence={"time_zone": "UTC", **recurrence}, **fields,
    )  # fmt: skip


@pytest.mark.parametrize("frequency", sorted(MAX_INTERVALS))
def test_an_interval_above_ten_years_is_refused_with_its_bound(frequency: str) -> None:
    most = MAX_INTERVALS[frequency]
    assert check_recurrence({"frequency": frequency, "interval": most})["interval"] == most
    with pytest.raises(
        InvalidInputError, match=rf"interval must be 1\.\.{most:,} for frequency '{frequency}'"
    ):
        check_recurrence({"frequency": frequency, "interval": most + 1})
    with pytest.raises(InvalidInputError, match="must be 1"):
        check_recurrence({"frequency": frequency, "interval": 10**15})


def test_a_large_interval_jumps_to_its_next_kept_day_week_or_month() -> None:
    now = at("2026-03-05T12:00:00+00:00")
    every_minute = {"hours": list(range(24)), "minutes": list(range(60))}  # 1,440 candidates a day
    cases = [
        ({"frequency": "Day", "interval": 3650, "start_time": "2020-01-31T00:00:00", **every_minute},
         datetime.combine(date(2020, 1, 31) + timedelta(days=3650), datetime.min.time(), UTC)),
        ({"frequency": "Week", "interval": 520, "start_time": "2020-01-29T00:00:00", **every_minute},
         datetime.combine(date(2020, 1, 29) + timedelta(weeks=520), datetime.min.time(), UTC)),  # a Wednesday
        ({"frequency": "Month", "interval": 120, "start_time": "2020-01-31T10:00:00"},
         datetime(2030, 1, 31, 10, tzinfo=UTC)),
        ({"frequency": "Month", "interval": 12, "start_time": "2024-02-29T10:00:00"},  # leap years only
         datetime(2028, 2, 29, 10, tzinfo=UTC)),
        ({"frequency": "Month", "interval": 2, "start_time": "2026-01-31T10:00:00"},  # Mar, May, Jul: 31st
         datetime(2026, 3, 31, 10, tzinfo=UTC)),
    ]  # fmt: skip
    for recurrence, expected in cases:
        started = time.monotonic()
        found = next_fire_time(record_with(check_recurrence(recurrence)), now)
        assert time.monotonic() - started < 0.1, recurrence
        assert found == expected.timestamp(), (recurrence, found and datetime.fromtimestamp(found, UTC))


def test_a_time_past_year_9999_is_never_and_raises_nothing() -> None:
    """Records a check would refuse today, or whose data was written by hand: None, not OverflowError."""
    last = at("9999-06-01T00:00:00+00:00")
    records = [
        record_with({"frequency": "Minute", "interval": 10**15, "start_time": "2020-01-01T00:00:00"}),
        record_with(
            {
                "frequency": "Day",
                "interval": 10**9,
                "start_time": "2020-01-31T00:00:00",
                "hours": list(range(24)),
                "minutes": list(range(60)),
            }
        ),
        record_with({"frequency": "Month", "interval": 120, "start_time": "9999-01-01T00:00:00"}),
        record_with({"frequency": "Hour", "interval": 1}, last_fire_time=1.0, data={"firstFireTime": 1e20}),
    ]
    for record in records:
        started = time.monotonic()
        assert next_fire_time(record, last) is None, record.recurrence
        assert time.monotonic() - started < 0.1, record.recurrence


def test_a_published_graph_and_schedule_parameters_have_a_size_limit(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    big_graph = {"steps": [], "parameters": {}, "blob": "x" * MAX_GRAPH_BYTES}
    record = PublishedPipelineRecord(id="big", name="big", status=ACTIVE, created_time=1.0, graph=big_graph)
    with pytest.raises(
        InvalidInputError, match=r"graph is 4,194,3\d\d bytes as JSON; the limit is 4,194,304"
    ):
        check_published_pipeline(record)
    src = SourceDir(tmp_path / "src").gen({"s.py": "print('hi')\n"})
    published = Pipeline(sqlite_workspace, [PythonScriptStep("s.py", name="s", source_directory=src)])
    pipeline_id = published.publish(name="bounded").id
    schedule = ScheduleRecord(
        id=str(uuid.uuid4()), name="big", status=ACTIVE, experiment_name="e", created_time=time.time(),
        pipeline_id=pipeline_id, recurrence={"frequency": "Hour", "interval": 1},
        pipeline_parameters={"p": "x" * MAX_PARAMETERS_BYTES},
    )  # fmt: skip
    with pytest.raises(InvalidInputError, match=r"pipeline_parameters is 262,1\d\d bytes as JSON; the limit"):
        sqlite_workspace.store.create_schedule(schedule)  # type: ignore[attr-defined]
    fits = dataclasses.replace(schedule, pipeline_parameters={"p": "x" * 1000})
    assert sqlite_workspace.store.create_schedule(fits).id == schedule.id  # type: ignore[attr-defined]


def test_the_ticker_skips_a_schedule_that_never_fires_without_a_traceback(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    """A stored schedule whose next firing is past what dates hold: no traceback at any tick, nothing
    claimed or fired, and `upcoming` (runyard schedule list, the studio) shows it without a time."""
    ws = sqlite_workspace
    src = SourceDir(tmp_path / "src").gen({"s.py": "print('hi')\n"})
    pipeline_id = (
        Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory=src)]).publish(name="n").id
    )
    forged = ScheduleRecord(
        id=str(uuid.uuid4()), name="never", status=ACTIVE, experiment_name="never", created_time=time.time(),
        pipeline_id=pipeline_id, recurrence={"frequency": "Hour", "interval": 1}, last_fire_time=time.time(),
        data={"firstFireTime": 1e20},
    )  # fmt: skip
    ws.store.create_schedule(forged)  # type: ignore[attr-defined]
    said: list[str] = []
    ticker = ScheduleTicker(ws, said.append)
    for _ in range(3):
        ticker.tick(time.time())
    assert said == []
    stored = ws.store.get_schedule(forged.id)  # type: ignore[attr-defined]
    assert stored.next_fire_time is None and stored.last_run_id is None
    assert [(r.id, when) for r, when in upcoming(ws)] == [(forged.id, None)]
    assert ws.store.list_runs(experiment_name="never") == []
