"""Schedules from Python (v1's Schedule, ScheduleRecurrence, TimeZone): what is recorded, listed, disabled
and enabled, and the recurrences and settings refused with messages that name the fix. When schedules fire is
engine/schedules.py's (tests/test_schedules_fire.py); the schedules here start in 2099 so none fires."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.data.datapath import DataPath, DataPathComputeBinding
from runyard.data.datastore import Datastore
from runyard.errors import InvalidInputError, PublishedPipelineNotFound, ScheduleNotFound
from runyard.pipeline import (
    Pipeline,
    PipelineEndpoint,
    PipelineParameter,
    PublishedPipeline,
    PythonScriptStep,
    Schedule,
    ScheduleRecurrence,
    TimeZone,
)
from runyard.pipeline.pipeline import submitted_as

pytestmark = pytest.mark.usefixtures("no_stray_processes")

LATER = "2099-01-05T09:00:00"  # a Monday, long after this test ends


def published(ws: Workspace, tmp_path: Path) -> PublishedPipeline:
    source = SourceDir(tmp_path / "job").gen({"job.py": "import sys\nprint(sys.argv)\n"})
    folder = PipelineParameter(
        "folder", default_value=DataPath(Datastore.get(ws, "workspaceblobstore"), "in")
    )
    bound = (folder, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep(
        "job.py", name="job", arguments=[bound], inputs=[bound], source_directory=str(source)
    )
    return Pipeline(ws, [step]).publish(name="job")


def test_time_zones_are_v1s_windows_names() -> None:
    assert TimeZone.PacificStandardTime.value == "Pacific Standard Time"
    assert TimeZone.UTC.value == "UTC"
    assert TimeZone.UTC11.value == "UTC-11"
    assert TimeZone.PacificStandardTimeMexico.value == "Pacific Standard Time (Mexico)"
    assert (
        TimeZone.MidAtlanticStandardTime.value == "Mid-Atlantic Standard Time"
    )  # retired by Windows, kept by v1


def test_a_recurrence_schedule_is_recorded_listed_disabled_and_enabled(
    workspace: Workspace, tmp_path: Path
) -> None:
    pipeline = published(workspace, tmp_path)
    recurrence = ScheduleRecurrence(
        frequency="Week",
        interval=1,
        start_time=datetime(2099, 1, 5, 9, 0),
        time_zone=TimeZone.PacificStandardTime,
        week_days=["Friday", "Monday"],
        time_of_day="9:30",
    )
    assert recurrence.start_time == LATER
    with submitted_as({"token": "tok-2", "name": "ops"}):
        schedule = Schedule.create(
            workspace,
            name="weekly",
            pipeline_id=pipeline.id,
            experiment_name="nightly",
            recurrence=recurrence,
            description="every week",
            pipeline_parameters={"folder": DataPath(Datastore.get(workspace, "workspaceblobstore"), "other")},
            continue_on_step_failure=True,
        )
    got = Schedule.get(workspace, schedule.id)
    assert (got.name, got.description, got.status, got.pipeline_id, got.pipeline_endpoint_id) == (
        "weekly",
        "every week",
        "Active",
        pipeline.id,
        None,
    )
    assert got.continue_on_step_failure is True and got.datastore_name is None
    assert got.recurrence.frequency == "Week" and got.recurrence.week_days == ["Monday", "Friday"]
    assert got.recurrence.time_of_day == "09:30" and got.recurrence.time_zone is TimeZone.PacificStandardTime
    record = workspace.store.get_schedule(schedule.id)
    assert record.experiment_name == "nightly"
    assert record.data["createdBy"] == {"token": "tok-2", "name": "ops"}
    assert record.pipeline_parameters["folder"]["datapath"]["path"] == "other"

    assert [s.id for s in Schedule.list(workspace)] == [schedule.id]
    assert [s.id for s in Schedule.list(workspace, pipeline_id=pipeline.id)] == [schedule.id]
    assert [s.id for s in Schedule.get_schedules_for_pipeline_id(workspace, pipeline.id)] == [schedule.id]
    schedule.disable()
    assert schedule.status == "Disabled" and Schedule.get(workspace, schedule.id).status == "Disabled"
    assert Schedule.list(workspace) == []
    assert [s.id for s in Schedule.list(workspace, active_only=False)] == [schedule.id]
    assert [s.id for s in Schedule.get_schedules_for_pipeline_id(workspace, pipeline.id)] == [schedule.id]
    schedule.update(status="Active")
    assert Schedule.get(workspace, schedule.id).status == "Active"
    assert schedule.get_last_pipeline_run() is None and schedule.get_pipeline_runs() == []
    schedule.update(name="renamed", description="new")  # v1's update changes them (issue 15)
    assert (Schedule.get(workspace, schedule.id).name, schedule.description) == ("renamed", "new")
    with pytest.raises(ScheduleNotFound):
        Schedule.get(workspace, "no-such-schedule")


def test_endpoint_and_datastore_watch_schedules(workspace: Workspace, tmp_path: Path) -> None:
    pipeline = published(workspace, tmp_path)
    endpoint = PipelineEndpoint.publish(workspace, "door", "a door", pipeline)
    daily = Schedule.create_for_pipeline_endpoint(
        workspace,
        "daily",
        endpoint.id,
        "nightly",
        recurrence=ScheduleRecurrence("Day", 1, start_time=LATER, hours=[6, 18], minutes=[0]),
    )
    assert daily.pipeline_endpoint_id == endpoint.id and daily.pipeline_id is None
    assert daily.recurrence.time_zone is TimeZone.UTC  # v1: a start time without a zone is UTC
    found = Schedule.get_schedules_for_pipeline_endpoint_id(workspace, endpoint.id)
    assert [s.id for s in found] == [daily.id]

    watch = Schedule.create(
        workspace,
        "new files",
        pipeline.id,
        "nightly",
        datastore=Datastore.get(workspace, "workspaceblobstore"),
        path_on_datastore="in",
        polling_interval=0.5,
        data_path_parameter_name="folder",
    )
    got = Schedule.get(workspace, watch.id)
    assert got.recurrence is None
    assert (got.datastore_name, got.path_on_datastore, got.polling_interval) == (
        "workspaceblobstore",
        "in",
        0.5,
    )
    assert got.data_path_parameter_name == "folder"
    assert {s.id for s in Schedule.list(workspace)} == {daily.id, watch.id}

    with pytest.raises(
        InvalidInputError, match=r"data_path_parameter_name 'nope' must name a DataPath parameter.*: folder"
    ):
        Schedule.create(
            workspace, "w", pipeline.id, "x", datastore="workspaceblobstore", data_path_parameter_name="nope"
        )
    with pytest.raises(PublishedPipelineNotFound):
        Schedule.create(workspace, "w", "no-such-pipeline", "x", recurrence=ScheduleRecurrence("Hour", 2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"frequency": "Minutes", "interval": 1},
            r"Invalid value for frequency 'Minutes', only one of Minute, Hour",
        ),
        ({"frequency": "Day", "interval": 0}, r"Interval must be an integer greater than 0"),
        (
            {"frequency": "Hour", "interval": 1, "hours": [3]},
            r"Can only specify hours if frequency is Week or Day",
        ),
        (
            {"frequency": "Day", "interval": 1, "week_days": ["Monday"]},
            r"Can only specify week days if frequency is Week",
        ),
        (
            {"frequency": "Week", "interval": 1, "week_days": ["Funday"]},
            r"Week days must be .* Monday, Tuesday",
        ),
        ({"frequency": "Day", "interval": 1, "hours": [24]}, r"Hours must be between 0 and 23"),
        (
            {"frequency": "Day", "interval": 1, "time_of_day": "9:30", "hours": [9]},
            r"Can not specify time_of_day and hours",
        ),
        (
            {"frequency": "Day", "interval": 1, "time_of_day": "930"},
            r"time_of_day should be in the format hh:mm",
        ),
        ({"frequency": "Day", "interval": 1, "time_zone": "Mars Standard Time"}, r"not a known time zone"),
        (
            {"frequency": "Day", "interval": 1, "start_time": datetime(2099, 1, 1, tzinfo=UTC)},
            r"Can not specify tzinfo for start_time, use time_zone instead",
        ),
    ],
)
def test_bad_recurrences_are_refused_where_they_are_written(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ScheduleRecurrence(**kwargs)  # type: ignore[arg-type]


def test_validate_checks_a_recurrence_changed_after_it_was_made() -> None:
    recurrence = ScheduleRecurrence("Hour", 1)
    recurrence.frequency = "Fortnight"
    with pytest.raises(InvalidInputError, match="Invalid value for frequency 'Fortnight'"):
        recurrence.validate()


def test_a_schedule_is_a_recurrence_or_a_datastore_watch(sqlite_workspace: Workspace) -> None:
    ws, every_hour = sqlite_workspace, ScheduleRecurrence("Hour", 1)
    with pytest.raises(InvalidInputError, match="Can not specify both a Recurrence and a Datastore"):
        Schedule.create(ws, "s", "p", "e", recurrence=every_hour, datastore="workspaceblobstore")
    with pytest.raises(
        InvalidInputError, match=r"needs recurrence=ScheduleRecurrence\(frequency=..., interval=...\)"
    ):
        Schedule.create(ws, "s", "p", "e")
    with pytest.raises(
        InvalidInputError, match="path_on_datastore can only be specified for Datastore schedules"
    ):
        Schedule.create(ws, "s", "p", "e", recurrence=every_hour, path_on_datastore="in")
    with pytest.raises(InvalidInputError, match="recurrence must be a ScheduleRecurrence"):
        Schedule.create(ws, "s", "p", "e", recurrence={"frequency": "Hour", "interval": 1})  # type: ignore[arg-type]
