"""The studio's Pipelines pages (published pipelines, endpoints) and Schedules page, over HTTP against the
app in-process with --auth on: records written through the real store, runs created by the real
engine.submission.submit_published (no scheduler is started, so they stay NotStarted)."""

from __future__ import annotations

import html
import json
import shlex
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard import Workspace
from runyard.engine.submission import ENDPOINT_ID_PROPERTY, submit_published
from runyard.pipeline import Pipeline, PipelineParameter, PythonScriptStep
from runyard.pipeline.pipeline import _snapshot_sources
from runyard.server.app import create_app
from runyard.server.auth import create_token
from runyard.store.records import (
    ACTIVE,
    DISABLED,
    PipelineEndpointRecord,
    PublishedPipelineRecord,
    ScheduleRecord,
)
from runyard.studio.published_pages import recurrence_words

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

EVIL = "<script>alert(1)</script>"


@dataclass
class Studio:
    ws: Workspace
    client: TestClient  # signed in with a read token
    pipeline: PublishedPipelineRecord
    old: PublishedPipelineRecord
    endpoint: PipelineEndpointRecord
    runs: list[str]  # [direct run, endpoint run]


def published(
    ws: Workspace, src: Path, name: str, *, status: str = ACTIVE, **kw: object
) -> PublishedPipelineRecord:
    params = [PipelineParameter("greeting", default_value="it's me"), PipelineParameter("n", default_value=2)]
    step = PythonScriptStep("hello.py", name="hello", source_directory=str(src), arguments=params)
    graph = Pipeline(ws, [step]).graph
    _snapshot_sources(ws, graph)
    record = PublishedPipelineRecord(
        id=str(uuid.uuid4()), name=name, status=status, created_time=time.time(), graph=graph, **kw
    )  # type: ignore[arg-type]
    return ws.store.create_published_pipeline(record)  # type: ignore[attr-defined,no-any-return]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    root = tmp_path_factory.mktemp("studio-published")
    ws = Workspace.create(root / "ws")
    src = SourceDir(root / "src").gen({"hello.py": "print('hello')"})
    stamp = {"token": "abcdef012345", "scope": "write"}
    pipeline = published(ws, Path(src), "nightly", version="2.1", description=EVIL, data={"createdBy": stamp})
    old = published(ws, Path(src), "nightly-old", status=DISABLED)
    endpoint = PipelineEndpointRecord(
        id=str(uuid.uuid4()),
        name="scoring",
        status=ACTIVE,
        created_time=time.time(),
        default_version="1",
        versions={"0": old.id, "1": pipeline.id},
        description="the scoring door",
    )
    ws.store.create_pipeline_endpoint(endpoint)  # type: ignore[attr-defined]
    direct = submit_published(ws, pipeline, "studio-direct", {"n": 5})
    through = submit_published(
        ws, pipeline, "studio-endpoint", properties={ENDPOINT_ID_PROPERTY: endpoint.id}
    )
    for schedule in (
        ScheduleRecord(
            id=str(uuid.uuid4()),
            name="weekday-mornings",
            status=ACTIVE,
            experiment_name="scheduled",
            created_time=time.time(),
            pipeline_id=pipeline.id,
            recurrence={
                "frequency": "Week",
                "interval": 1,
                "week_days": ["Monday", "Friday"],
                "time_of_day": "09:30",
                "time_zone": "Pacific Standard Time",
                "start_time": "2026-01-01T00:00:00",
            },
            last_run_id=direct.run_id,
        ),
        ScheduleRecord(
            id=str(uuid.uuid4()),
            name="watch-inbox",
            status=DISABLED,
            experiment_name="scheduled",
            created_time=time.time(),
            pipeline_endpoint_id=endpoint.id,
            datastore_name="workspaceblobstore",
            path_on_datastore="inbox",
            polling_interval=5,
        ),
    ):
        ws.store.create_schedule(schedule)  # type: ignore[attr-defined]
    token, _ = create_token(ws.store, "read", name="viewer")  # type: ignore[arg-type]
    with TestClient(create_app(ws, auth=True), headers={"Authorization": f"Bearer {token}"}) as client:
        yield Studio(ws, client, pipeline, old, endpoint, [direct.run_id, through.run_id])


def page(studio: Studio, path: str) -> str:
    response = studio.client.get(path)
    assert response.status_code == 200, response.text
    return response.text


def test_the_pipelines_page_lists_published_pipelines_and_endpoints(studio: Studio) -> None:
    text = page(studio, "/published")
    assert 'href="/published" aria-current="page">Pipelines</a>' in text  # the nav link
    assert f'href="/published/{studio.pipeline.id}">nightly</a>' in text
    assert f'href="/published/{studio.old.id}">nightly-old</a>' in text and "Disabled" in text
    assert f'href="/endpoints/{studio.endpoint.id}">scoring</a>' in text
    assert "token abcdef012345 (write)" in text
    assert EVIL not in text and html.escape(EVIL) in text  # a description is user input
    assert 'href="/schedules">Schedules (2)</a>' in text


def test_a_published_pipeline_page_shows_parameters_steps_runs_and_a_curl_line(studio: Studio) -> None:
    text = page(studio, f"/published/{studio.pipeline.id}")
    assert "version 2.1" in text and "hello.py" in text and "PythonScriptStep" in text
    assert "greeting" in text and "it&#39;s me" in text
    for run_id in studio.runs:  # both runs carry azureml.pipelineid
        assert f'href="/runs/{run_id}"' in text
    assert f'href="/endpoints/{studio.endpoint.id}">scoring</a> version 1 (default)' in text
    assert "weekday-mornings" in text and "Every week on Monday and Friday at 09:30" in text
    curl = html.unescape(text.split('<pre class="curl"><code>')[1].split("</code>")[0])
    words = shlex.split(curl.replace("\\\n", " "))
    assert words[:3] == ["curl", "-X", "POST"]
    assert words[3] == f"http://testserver/pipelines/v1.0/PipelineRuns/PipelineSubmit/{studio.pipeline.id}"
    body = json.loads(words[words.index("-d") + 1])
    assert body == {"ExperimentName": "nightly", "ParameterAssignments": {"greeting": "it's me", "n": "2"}}


def test_an_endpoint_page_shows_versions_default_and_runs(studio: Studio) -> None:
    text = page(studio, f"/endpoints/{studio.endpoint.id}")
    assert "the scoring door" in text
    assert f'href="/published/{studio.old.id}">nightly-old</a>' in text
    assert f"/pipelines/v1.0/PipelineRuns/PipelineEndpointSubmit/Id/{studio.endpoint.id}" in text
    assert f'href="/runs/{studio.runs[1]}"' in text and f'href="/runs/{studio.runs[0]}"' not in text
    assert "watch-inbox" in text


def test_the_schedules_page_says_when_and_what_ran_last(studio: Studio) -> None:
    text = page(studio, "/schedules")
    assert (
        "Every week on Monday and Friday at 09:30, starting 2026-01-01T00:00:00 (Pacific Standard Time)"
        in text
    )
    assert "When files change on workspaceblobstore/inbox (looked at every 5 minutes)" in text
    assert f'href="/runs/{studio.runs[0]}"' in text  # the last run of the weekday schedule
    assert f'endpoint <a href="/endpoints/{studio.endpoint.id}">scoring</a>' in text
    assert "none yet" in text  # the watch never fired


@pytest.mark.parametrize(
    ("recurrence", "words"),
    [
        ({"frequency": "Minute", "interval": 15}, "Every 15 minutes (UTC)"),
        ({"frequency": "Hour", "interval": 1, "time_zone": "UTC"}, "Every hour (UTC)"),
        (
            {"frequency": "Day", "interval": 2, "hours": [6, 18], "minutes": [0]},
            "Every 2 days at 06:00 and 18:00 (UTC)",
        ),
        (
            {"frequency": "Month", "interval": 1, "start_time": "2026-02-01T08:00:00"},
            "Every month, starting 2026-02-01T08:00:00 (UTC)",
        ),
    ],
)
def test_recurrences_in_words(recurrence: dict[str, object], words: str) -> None:
    record = ScheduleRecord(
        id="s",
        name="s",
        status=ACTIVE,
        experiment_name="e",
        created_time=0.0,
        pipeline_id="p",
        recurrence=recurrence,
    )
    assert recurrence_words(record) == words


def test_unknown_ids_are_404_pages_and_strangers_sign_in_first(studio: Studio) -> None:
    missing = studio.client.get("/published/no-such-id")
    assert missing.status_code == 404 and "No published pipeline with id" in missing.text
    assert studio.client.get("/endpoints/no-such-id").status_code == 404
    stranger = TestClient(studio.client.app)
    for path in ("/published", "/schedules", f"/endpoints/{studio.endpoint.id}"):
        response = stranger.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")
