"""Security review of publishing, the REST trigger and schedules (issue 15): attacks from the principals of
docs/security.md against a real `runyard server --auth` started as compute, and the workspace's own schedule
ticker (engine/schedules.py) firing in this process on the server's SQLite file.

Tests that fail mark a hole (their docstrings say the attack and what should happen); the passing ones
pin attacks that are refused today. No test here submits successfully through the REST door: that would
start the server's background scheduler, whose ticker would fire these schedules concurrently.
"""

from __future__ import annotations

import copy
import html
import shlex
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SourceDir, kill_strays
from runyard import Workspace
from runyard.engine.placement import Submitters
from runyard.engine.schedules import ScheduleTicker, next_fire_time
from runyard.errors import NotFoundError
from runyard.pipeline import Pipeline, PythonScriptStep
from runyard.pipeline.endpoint import PipelineEndpoint
from runyard.pipeline.published import ENDPOINT_SUBMIT_PATH, PUBLISHED_SUBMIT_PATH, PublishedPipeline
from runyard.server.app import create_app
from runyard.server.auth import create_token
from runyard.store import RunRecord, SqlStore
from runyard.store.records import ACTIVE, DISABLED, ScheduleRecord
from runyard.store.rest_store import RestStore
from server_process import running_server
from store_suite import make_run

with warnings.catch_warnings():  # starlette may warn that httpx is deprecated for its TestClient
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

HOURLY = {"frequency": "Hour", "interval": 1}  # no start_time: fires at the first tick
EVIL = "<img src=x onerror=alert(1)>'$(touch pwned)"


def schedule_body(pipeline_id: str, **fields: Any) -> dict[str, Any]:
    """A POST /api/v1/schedules body: an hourly schedule of `pipeline_id`, with `fields` over the defaults."""
    body = {"id": str(uuid.uuid4()), "name": "sched", "status": ACTIVE, "experiment_name": "scheduled",
            "created_time": time.time(), "pipeline_id": pipeline_id, "recurrence": HOURLY}  # fmt: skip
    return {**body, **fields}


@dataclass
class Box:
    ws: Workspace
    tokens: dict[str, str]  # name -> bearer token
    ids: dict[str, str]  # name -> token id
    src: Path
    client: httpx.Client  # the real server's, or a TestClient of the same app for dos_box

    @property
    def store(self) -> SqlStore:
        assert isinstance(self.ws.store, SqlStore)
        return self.ws.store

    def call(self, method: str, path: str, who: str | None, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return self.client.request(method, path, json=body, headers=headers)

    def publish(self, name: str) -> PublishedPipeline:
        """The owner publishes a one-step pipeline with the Python API (direct database access)."""
        step = PythonScriptStep("step.py", name="s", source_directory=str(self.src), arguments=["owner"])
        return Pipeline(self.ws, [step]).publish(name=name)

    def tick(self) -> list[str]:
        """One tick of a fresh ticker (its first tick also recovers claimed firings); returns what it said."""
        said: list[str] = []
        ScheduleTicker(self.ws, said.append).tick(time.time())
        return said

    def fired_run(self, schedule_id: str) -> RunRecord:
        record = self.store.get_schedule(schedule_id)
        assert record.last_run_id is not None, f"the schedule did not fire: {record}"
        try:
            return self.store.get_run(record.last_run_id)
        except NotFoundError:
            raise AssertionError(f"the firing left no run: {record.data.get('lastError')}") from None

    def owner_schedule(self, **fields: Any) -> str:
        """A schedule the owner makes with direct database access (no createdBy: its firings run as the owner)."""
        record = ScheduleRecord(
            id=str(uuid.uuid4()),
            name="owner-nightly",
            status=ACTIVE,
            experiment_name="owner-scheduled",
            created_time=time.time(),
            recurrence=HOURLY,
            **fields,
        )
        return self.store.create_schedule(record).id

    def mallory_pipeline(self, like: PublishedPipeline) -> tuple[str, dict[str, Any]]:
        """Mallory (write, no compute) publishes over REST a copy of `like` whose step runs her arguments."""
        graph = copy.deepcopy(self.store.get_published_pipeline(like.id).graph)
        graph["steps"][0]["arguments"] = [{"literal": "MALLORY"}]
        pipeline_id = f"mallory-{uuid.uuid4().hex[:8]}"
        body = {
            "id": pipeline_id,
            "name": "innocent",
            "status": ACTIVE,
            "created_time": time.time(),
            "graph": graph,
        }
        answer = self.call("POST", "/api/v1/published-pipelines", "mallory", body)
        assert answer.status_code == 200, answer.text  # publishing alone runs nothing: allowed
        return pipeline_id, graph


def _workspace(root: Path) -> tuple[Workspace, dict[str, str], dict[str, str], Path]:
    """A workspace with the owner's sources and three tokens (reader; mallory: write without compute;
    runner: write with compute on local)."""
    ws = Workspace.create(root / "ws")
    assert isinstance(ws.store, SqlStore)
    tokens: dict[str, str] = {}
    ids: dict[str, str] = {}
    for name, scope, compute in [
        ("reader", "read", ()),
        ("mallory", "write", ()),
        ("runner", "write", ("local",)),
    ]:
        tokens[name], record = create_token(ws.store, scope, name=name, compute=compute)
        ids[name] = record.token_id
    src = root / "src"
    SourceDir(src).gen({"step.py": "import sys\nprint(sys.argv[1:])\n"})
    return ws, tokens, ids, src


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """A real `runyard server --auth` started as compute, and a job's run token."""
    root = tmp_path_factory.mktemp("review-publishing")
    ws, tokens, ids, src = _workspace(root)
    env = {"RUNYARD_SERVER_COMPUTE": "1", "RUNYARD_SCHEDULER_IDLE_SECONDS": "3"}
    with running_server(ws.path, root / "server.log", auth=True, env=env) as server:
        writer = RestStore(server.url, tokens["runner"])
        tokens["job"] = writer.create_run_token(make_run(writer, "jobs").run_id)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            yield Box(ws, tokens, ids, src, client)
    kill_strays(root)


@pytest.fixture(scope="module")
def dos_box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Box]:
    """The same app in this process (TestClient, 500s answered, not raised) on a second workspace: the
    records these tests make break pages, and would spoil the other tests' pages and server log."""
    ws, tokens, ids, src = _workspace(tmp_path_factory.mktemp("review-publishing-dos"))
    app = create_app(ws, auth=True, host_is_compute=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Box(ws, tokens, ids, src, client)


# -- holes ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["versions-set-default", "patch-default-version"])
def test_a_write_token_cannot_swap_the_pipeline_an_owners_endpoint_schedule_runs(box: Box, how: str) -> None:
    """Attack: Mallory holds a write token without compute. She publishes her own pipeline, adds it to the
    owner's endpoint and makes it the default (POST .../versions with set_default, or PATCH default_version).
    The owner's schedule on that endpoint then fires her graph as the owner (no submittedBy), so her code
    runs on the server's machine although no compute grant allows it (same with a REST-door or Python
    submit of the endpoint by someone who has compute).
    Expected: only the endpoint's creator (or admin) may add versions or change its default; in any case
    a firing of the owner's schedule never runs Mallory's graph unless it is submitted as Mallory."""
    owners = box.publish("owner-first")
    endpoint = PipelineEndpoint.publish(box.ws, f"nightly-{uuid.uuid4().hex[:6]}", "owner's", owners)
    schedule_id = box.owner_schedule(pipeline_endpoint_id=endpoint.id)
    evil_id, evil_graph = box.mallory_pipeline(owners)
    if how == "versions-set-default":
        box.call("POST", f"/api/v1/pipeline-endpoints/{endpoint.id}/versions", "mallory",
                 {"pipeline_id": evil_id, "set_default": True})  # fmt: skip
    else:
        added = box.call("POST", f"/api/v1/pipeline-endpoints/{endpoint.id}/versions", "mallory",
                         {"pipeline_id": evil_id})  # fmt: skip
        if added.status_code == 200:
            version = next(v for v, p in added.json()["versions"].items() if p == evil_id)
            box.call(
                "PATCH", f"/api/v1/pipeline-endpoints/{endpoint.id}", "mallory", {"default_version": version}
            )
    box.tick()
    run = box.fired_run(schedule_id)
    runs_her_graph = run.data["graph"]["steps"][0]["arguments"] == evil_graph["steps"][0]["arguments"]
    refusal = Submitters(box.ws).refusal(run, "local")
    assert not runs_her_graph or refusal is not None, (
        f"Mallory's pipeline {evil_id} is fired by the owner's schedule and would run as {run.data.get('submittedBy')}"
    )


def test_a_write_token_cannot_rename_an_owners_endpoint_to_take_its_name(box: Box) -> None:
    """Attack: Mallory (write, no compute) renames the owner's endpoint (PATCH name) and creates her own
    endpoint under the old name with her pipeline. The owner's `PipelineEndpoint.get(ws, name=...).submit()`
    and the v1 REST recipe that looks an endpoint up by name then run her graph with the owner's rights.
    Expected: only the endpoint's creator (or admin) may rename it; the name keeps naming the owner's endpoint."""
    owners = box.publish("owner-renamed")
    name = f"scoring-{uuid.uuid4().hex[:6]}"
    endpoint = PipelineEndpoint.publish(box.ws, name, "owner's", owners)
    evil_id, _ = box.mallory_pipeline(owners)
    box.call("PATCH", f"/api/v1/pipeline-endpoints/{endpoint.id}", "mallory", {"name": name + "-old"})
    box.call("POST", "/api/v1/pipeline-endpoints", "mallory", {
        "id": f"mallory-{uuid.uuid4().hex[:8]}", "name": name, "status": ACTIVE, "created_time": time.time(),
        "default_version": "0", "versions": {"0": evil_id},
    })  # fmt: skip
    assert box.store.get_pipeline_endpoint(name=name).id == endpoint.id


@pytest.mark.parametrize("what", ["schedule", "published-pipeline"])
def test_a_write_token_cannot_reenable_what_the_owner_disabled(box: Box, what: str) -> None:
    """Attack: the owner disabled a schedule (or the published pipeline it fires) because it must not run.
    Mallory (write, no compute) PUTs status Active; the owner's schedule then fires as the owner, so a
    token with no compute grant decides that code runs on the server's machine.
    Expected: enabling a schedule or published pipeline is refused (403) unless the caller created it
    (or is admin); the record stays Disabled."""
    published = box.publish("owner-disabled")
    pipeline_id = published.id
    schedule_id = box.owner_schedule(pipeline_id=pipeline_id)
    if what == "schedule":
        box.store.set_schedule_status(schedule_id, DISABLED)
        answer = box.call("PUT", f"/api/v1/schedules/{schedule_id}/status", "mallory", {"status": ACTIVE})
        status = box.store.get_schedule(schedule_id).status
    else:
        box.store.set_published_pipeline_status(pipeline_id, DISABLED)
        answer = box.call(
            "PUT", f"/api/v1/published-pipelines/{pipeline_id}/status", "mallory", {"status": ACTIVE}
        )
        status = box.store.get_published_pipeline(pipeline_id).status
    assert answer.status_code == 403 and status == DISABLED, answer.text


def test_a_disabled_schedule_posted_with_a_last_run_id_never_fires(box: Box) -> None:
    """Attack: a write token POSTs a schedule that is already Disabled but carries a made-up `last_run_id`
    (fields only the ticker should write: next_fire_time, last_fire_time, last_run_id, data["firing"]).
    The ticker's recovery (ScheduleTicker.recover) takes it for a firing that was claimed but not created
    and submits that run, so a Disabled schedule fires.
    Expected: the REST create refuses (or drops) the ticker's fields, and recover() skips schedules that
    are not Active; no run with that id is ever created."""
    published = box.publish("owner-recover")
    pipeline_id = published.id
    forged = str(uuid.uuid4())
    body = schedule_body(pipeline_id, status=DISABLED, last_run_id=forged)
    answer = box.call("POST", "/api/v1/schedules", "runner", body)
    box.tick()
    with pytest.raises(NotFoundError):
        box.store.get_run(forged)
    assert answer.status_code in (200, 400, 422), answer.text


def test_a_published_graph_that_is_not_a_pipeline_does_not_break_the_studio(dos_box: Box) -> None:
    """Attack: a write token publishes a graph that is JSON but not a pipeline (`{"steps": 5, "parameters":
    []}`); nothing checks it before a submit does. The studio's Pipelines page (`published.html`: steps |
    length) and the pipeline's own page then answer 500 for every user.
    Expected: the REST create refuses a graph the scheduler would refuse (400/422), or the pages render."""
    pipeline_id = f"junk-{uuid.uuid4().hex[:8]}"
    body = {"id": pipeline_id, "name": "junk", "status": ACTIVE, "created_time": time.time(),
            "graph": {"steps": 5, "parameters": []}}  # fmt: skip
    answer = dos_box.call("POST", "/api/v1/published-pipelines", "mallory", body)
    try:
        if answer.status_code == 200:
            for path in ("/published", f"/published/{pipeline_id}"):
                page = dos_box.call("GET", path, "reader")
                assert page.status_code == 200, f"{path}: {page.status_code} {page.text[:300]}"
        else:
            assert answer.status_code in (400, 422), answer.text
    finally:
        if answer.status_code == 200:
            dos_box.store.set_published_pipeline_status(pipeline_id, DISABLED)


@pytest.mark.parametrize(
    "recurrence",
    [
        {"frequency": "Minute", "interval": 10**15, "start_time": "2020-01-01T00:00:00"},  # OverflowError
        {
            "frequency": "Day",
            "interval": 10**9,
            "start_time": "2020-01-31T00:00:00",
            "hours": list(range(24)),
            "minutes": list(range(60)),
        },  # 10,000 cron candidates, None, every tick
    ],
    ids=["overflow", "slow"],
)
def test_a_schedule_with_an_absurd_interval_is_refused(dos_box: Box, recurrence: dict[str, Any]) -> None:
    """Attack: a write token (no compute needed) creates Active schedules with an absurd interval. With
    10**15 minutes next_fire_time raises OverflowError (not a RunyardError): the studio's Schedules page
    and the pipeline's page answer 500 and `runyard schedule list` fails; the ticker prints a traceback
    every second. With 10**9 days over all hours and minutes each next_fire_time costs ~1 s of CPU and
    returns None, so the ticker recomputes it every tick (a few such schedules stall the scheduler).
    Expected: store/publish_rules.check_recurrence bounds `interval` (400/422 on create)."""
    published = dos_box.publish("owner-absurd")
    pipeline_id = published.id
    body = schedule_body(pipeline_id, recurrence=recurrence)
    schedule_id = body["id"]
    answer = dos_box.call("POST", "/api/v1/schedules", "mallory", body)
    try:
        if answer.status_code == 200 and recurrence["frequency"] == "Minute":
            page = dos_box.call("GET", "/schedules", "reader")
            assert page.status_code == 200, page.text[:300]
        elif answer.status_code == 200:
            started = time.monotonic()
            next_fire_time(dos_box.store.get_schedule(schedule_id), time.time())
            assert time.monotonic() - started < 0.25, "one next_fire_time took a long time"
        else:
            assert answer.status_code in (400, 422), answer.text
    finally:
        if answer.status_code == 200:
            dos_box.store.set_schedule_status(schedule_id, DISABLED)


# -- attacks refused today --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "status"),
    [(None, 401), ("job", 403), ("reader", 403), ("mallory", 403), ("revoked", 401)],
)
def test_the_rest_door_needs_a_write_token_with_compute(box: Box, who: str | None, status: int) -> None:
    """Attack: trigger a published pipeline through the REST door with no token (server has --auth), a
    run token, a read token, a write token without compute, or a revoked token with compute.
    Expected: 401/403 before anything is created."""
    published = box.publish("owner-door")
    pipeline_id = published.id
    if who == "revoked" and "revoked" not in box.tokens:
        box.tokens["revoked"], record = create_token(box.store, "write", name="revoked", compute=("local",))
        box.store.revoke_token(record.token_id)
    before = len(box.store.list_runs(run_type="azureml.PipelineRun"))
    for path in (PUBLISHED_SUBMIT_PATH.format(id=pipeline_id),):
        answer = box.call("POST", path, who, {"ExperimentName": "door"})
        assert answer.status_code == status, answer.text
    assert len(box.store.list_runs(run_type="azureml.PipelineRun")) == before


def test_the_rest_door_refuses_a_disabled_pipeline_and_a_disabled_endpoint(box: Box) -> None:
    """Attack: submit a Disabled published pipeline, or an Active one through a Disabled endpoint, with a
    token that may run code. Expected: 409 PipelineDisabled and no run."""
    published = box.publish("owner-off")
    pipeline_id = published.id
    endpoint = PipelineEndpoint.publish(box.ws, f"off-{uuid.uuid4().hex[:6]}", "off", published)
    box.store.update_pipeline_endpoint(endpoint.id, status=DISABLED)
    answer = box.call("POST", ENDPOINT_SUBMIT_PATH.format(id=endpoint.id), "runner", {"ExperimentName": "x"})
    assert answer.status_code == 409, answer.text
    box.store.set_published_pipeline_status(pipeline_id, DISABLED)
    answer = box.call("POST", PUBLISHED_SUBMIT_PATH.format(id=pipeline_id), "runner", {"ExperimentName": "x"})
    assert answer.status_code == 409, answer.text


def test_a_run_token_cannot_publish_add_versions_schedule_or_enable(box: Box) -> None:
    """Attack: a job's run token publishes, adds a version, creates a schedule or enables one (a schedule
    would let the job outlive its run). Expected: 403 for each, nothing stored."""
    published = box.publish("owner-job")
    pipeline_id = published.id
    endpoint = PipelineEndpoint.publish(box.ws, f"job-{uuid.uuid4().hex[:6]}", "job", published)
    schedule_id = box.owner_schedule(pipeline_id=pipeline_id)
    graph = box.store.get_published_pipeline(pipeline_id).graph
    calls = [
        ("POST", "/api/v1/published-pipelines",
         {"id": "job-pp", "name": "j", "status": ACTIVE, "created_time": time.time(), "graph": graph}),
        ("POST", f"/api/v1/pipeline-endpoints/{endpoint.id}/versions", {"pipeline_id": pipeline_id}),
        ("PATCH", f"/api/v1/pipeline-endpoints/{endpoint.id}", {"name": "job-owned"}),
        ("POST", "/api/v1/schedules",
         {"id": "job-sc", "name": "j", "status": ACTIVE, "experiment_name": "j", "created_time": time.time(),
          "pipeline_id": pipeline_id, "recurrence": HOURLY}),
        ("PUT", f"/api/v1/schedules/{schedule_id}/status", {"status": DISABLED}),
    ]  # fmt: skip
    for method, path, body in calls:
        answer = box.call(method, path, "job", body)
        assert answer.status_code == 403, f"{method} {path}: {answer.text}"
    assert box.store.get_schedule(schedule_id).status == ACTIVE
    assert box.store.get_pipeline_endpoint(endpoint.id).name != "job-owned"


def test_a_schedule_runs_as_its_creator_whatever_createdBy_the_body_claims(box: Box) -> None:
    """Attack: Mallory (write, no compute) POSTs a schedule whose data claims another creator (the runner
    token, which has compute), hoping its firings run with that grant.
    Expected: the server stamps her own token as createdBy; the fired run is submitted by her and the
    scheduler refuses it (no compute grant)."""
    published = box.publish("owner-forged")
    pipeline_id = published.id
    body = schedule_body(pipeline_id, data={"createdBy": {"token": box.ids["runner"], "scope": "write"}})
    schedule_id = body["id"]
    answer = box.call("POST", "/api/v1/schedules", "mallory", body)
    assert answer.status_code == 200, answer.text
    assert box.store.get_schedule(schedule_id).data["createdBy"] == {
        "token": box.ids["mallory"],
        "scope": "write",
    }
    box.tick()
    run = box.fired_run(schedule_id)
    assert run.data["submittedBy"]["token"] == box.ids["mallory"]
    assert "may not run code" in (Submitters(box.ws).refusal(run, "local") or "")


def test_a_schedule_of_a_revoked_token_is_refused_when_it_fires(box: Box) -> None:
    """Attack: a token with compute creates a schedule, then is revoked (or expires); the schedule keeps
    firing. Expected: each firing is refused at run time (the run's submittedBy is the revoked token and
    the scheduler's Submitters says so), or no run is created at all."""
    token, record = create_token(box.store, "write", name="leaver", compute=("local",))
    box.tokens["leaver"] = token
    published = box.publish("owner-leaver")
    pipeline_id = published.id
    body = schedule_body(pipeline_id)
    schedule_id = body["id"]
    answer = box.call("POST", "/api/v1/schedules", "leaver", body)
    assert answer.status_code == 200, answer.text
    box.store.revoke_token(record.token_id)
    box.tick()
    fired = box.store.get_schedule(schedule_id)
    if (
        fired.last_run_id is not None
        and (fired.data.get("lastError") or {}).get("runId") != fired.last_run_id
    ):
        run = box.store.get_run(fired.last_run_id)
        assert "was revoked" in (Submitters(box.ws).refusal(run, "local") or "")


def test_published_records_have_no_route_that_changes_their_graph_or_target(box: Box) -> None:
    """Attack: a write token changes a published graph (PUT, re-POST of the same id), an endpoint's
    versions or data (PATCH with extra fields), or a schedule's pipeline_id/createdBy (PUT/PATCH).
    Expected: 404/405 for routes that do not exist, 409 for a second create, 422 for unknown fields."""
    published = box.publish("owner-frozen")
    pipeline_id = published.id
    graph = box.store.get_published_pipeline(pipeline_id).graph
    endpoint = PipelineEndpoint.publish(box.ws, f"frozen-{uuid.uuid4().hex[:6]}", "frozen", published)
    schedule_id = box.owner_schedule(pipeline_id=pipeline_id)
    other = dict(graph, description="changed")
    attempts = [
        ("PUT", f"/api/v1/published-pipelines/{pipeline_id}", {"graph": other}, (404, 405)),
        ("PATCH", f"/api/v1/published-pipelines/{pipeline_id}", {"graph": other}, (404, 405)),
        ("POST", "/api/v1/published-pipelines",
         {"id": pipeline_id, "name": "x", "status": ACTIVE, "created_time": 1.0, "graph": other}, (409,)),
        ("PATCH", f"/api/v1/pipeline-endpoints/{endpoint.id}", {"versions": {"0": "x"}}, (422,)),
        ("PATCH", f"/api/v1/pipeline-endpoints/{endpoint.id}", {"data": {"createdBy": {}}}, (422,)),
        ("PUT", f"/api/v1/schedules/{schedule_id}", {"pipeline_id": "x"}, (404, 405)),
        ("PATCH", f"/api/v1/schedules/{schedule_id}", {"data": {"createdBy": {}}}, (422,)),
        ("PUT", f"/api/v1/schedules/{schedule_id}/status", {"status": ACTIVE, "pipeline_id": "x"}, (422,)),
    ]  # fmt: skip
    for method, path, body, allowed in attempts:
        answer = box.call(method, path, "runner", body)
        assert answer.status_code in allowed, f"{method} {path}: {answer.status_code} {answer.text}"
    assert box.store.get_published_pipeline(pipeline_id).graph == graph
    stored = box.store.get_schedule(schedule_id)
    assert stored.pipeline_id == pipeline_id and "createdBy" not in stored.data


def test_names_and_parameters_are_escaped_in_the_studio_and_quoted_in_the_curl_line(box: Box) -> None:
    """Attack: a write token publishes a pipeline, an endpoint and a schedule whose names, description and
    parameter name/default hold HTML and shell syntax. Expected: the pages show them escaped, and the curl
    line splits into exactly the words of the command (the body is one quoted word)."""
    owners = box.publish("owner-xss")
    graph = copy.deepcopy(box.store.get_published_pipeline(owners.id).graph)
    graph["parameters"] = {EVIL: {"default": EVIL}}
    pipeline_id = f"xss-{uuid.uuid4().hex[:8]}"
    made = [
        box.call("POST", "/api/v1/published-pipelines", "mallory", {
            "id": pipeline_id, "name": EVIL, "status": ACTIVE, "created_time": time.time(), "graph": graph,
            "description": EVIL}),
        box.call("POST", "/api/v1/pipeline-endpoints", "mallory", {
            "id": f"xss-{uuid.uuid4().hex[:8]}", "name": EVIL + uuid.uuid4().hex[:4], "status": ACTIVE,
            "created_time": time.time(), "default_version": "0", "versions": {"0": pipeline_id}}),
        box.call("POST", "/api/v1/schedules", "mallory",
                 schedule_body(pipeline_id, name=EVIL, status=DISABLED, description=EVIL)),
    ]  # fmt: skip
    for answer in made:
        assert answer.status_code == 200, answer.text
    for path in (
        "/published",
        f"/published/{pipeline_id}",
        f"/endpoints/{made[1].json()['id']}",
        "/schedules",
    ):
        page = box.call("GET", path, "reader")
        assert page.status_code == 200, f"{path}: {page.text[:300]}"
        assert "<img src=x" not in page.text and html.escape("<img src=x") in page.text, path
    text = box.call("GET", f"/published/{pipeline_id}", "reader").text
    curl = html.unescape(text.split('<pre class="curl"><code>')[1].split("</code>")[0])
    words = shlex.split(curl.replace("\\\n", " "))
    assert words[0] == "curl" and len(words) == 10 and EVIL in words[-1], words
    box.store.set_published_pipeline_status(pipeline_id, DISABLED)


def test_deeply_nested_bodies_are_refused_cleanly(box: Box) -> None:
    """Attack: bodies nested 100,000 deep (ParameterAssignments at the REST door, pipeline_parameters of a
    schedule, a published graph) to exhaust the parser's stack. Expected: 4xx, no run or record, and
    the server logs no unhandled exception (the module's server is checked when it stops)."""
    published = box.publish("owner-nested")
    deep = "[" * 100_000 + "]" * 100_000
    attempts = [
        (PUBLISHED_SUBMIT_PATH.format(id=published.id), "runner",
         '{"ExperimentName": "x", "ParameterAssignments": {"a": ' + deep + "}}"),
        ("/api/v1/schedules", "runner",
         '{"id": "deep", "name": "d", "status": "Disabled", "experiment_name": "d", "created_time": 1.0, '
         f'"pipeline_id": "{published.id}", "recurrence": {{"frequency": "Hour", "interval": 1}}, '
         '"pipeline_parameters": {"a": ' + deep + "}}"),
        ("/api/v1/published-pipelines", "mallory",
         '{"id": "deep", "name": "d", "status": "Active", "created_time": 1.0, "graph": {"a": ' + deep + "}}"),
    ]  # fmt: skip
    for path, who, raw in attempts:
        headers = {"Authorization": f"Bearer {box.tokens[who]}", "Content-Type": "application/json"}
        answer = box.client.post(path, content=raw, headers=headers)
        assert 400 <= answer.status_code < 500, f"{path}: {answer.status_code} {answer.text[:200]}"
    with pytest.raises(NotFoundError):
        box.store.get_schedule("deep")
