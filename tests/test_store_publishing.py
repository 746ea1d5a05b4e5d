"""Published pipelines, pipeline endpoints and schedules in the store: SqlStore on SQLite and PostgreSQL,
RestStore against a real `runyard server --auth`, the rules in store/publish_rules.py, and the REST routes'
answers to bad bodies and to tokens that may not publish.

The conformance tests run the same body on every store (`store` fixture: sqlite, postgres, rest). The REST
server is shared by the module, so those tests compare only the records they made (unique ids and names).
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard import Workspace
from runyard.errors import (
    ConflictError,
    InvalidInputError,
    PipelineEndpointNotFound,
    PublishedPipelineNotFound,
    ScheduleNotFound,
)
from runyard.server.auth import create_token
from runyard.store import SqlStore
from runyard.store import publish_rules as rules
from runyard.store.base import Store
from runyard.store.records import (
    ACTIVE,
    DISABLED,
    PipelineEndpointRecord,
    PublishedPipelineRecord,
    ScheduleRecord,
)
from runyard.store.rest_store import RestStore
from server_process import ServerProcess, running_server
from store_suite import make_run

GRAPH = {  # a graph a submit accepts (engine.submission.check_graph): the REST route checks it
    "version": 4,
    "description": None,
    "parameters": {},
    "steps": [
        {"name": "train", "type": "PythonScriptStep", "script": "train.py",
         "source": {"dir": "src", "snapshot": "0" * 64, "files": 1}, "arguments": [], "params": {},
         "inputs": [], "datasets": [], "outputs": [], "run_after": [], "compute_target": "local",
         "environment": {"name": None, "python": "3.11.7"}, "allow_reuse": True, "version": None}
    ],
}  # fmt: skip


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def published(name: str = "pipe", *, created: float | None = None, **kw: Any) -> PublishedPipelineRecord:
    return PublishedPipelineRecord(
        id=uid("pp"),
        name=name,
        status=ACTIVE,
        created_time=time.time() if created is None else created,
        graph=GRAPH,
        **kw,
    )


def endpoint(pipeline_id: str, name: str | None = None, **kw: Any) -> PipelineEndpointRecord:
    return PipelineEndpointRecord(
        id=uid("pe"),
        name=name or uid("endpoint"),
        status=ACTIVE,
        created_time=time.time(),
        default_version="0",
        versions={"0": pipeline_id},
        **kw,
    )


def schedule(pipeline_id: str | None = None, **kw: Any) -> ScheduleRecord:
    fields: dict[str, Any] = {
        "id": uid("sc"),
        "name": "nightly",
        "status": ACTIVE,
        "experiment_name": "scheduled",
        "created_time": time.time(),
        "pipeline_id": pipeline_id,
        "recurrence": {"frequency": "Hour", "interval": 1},
    }
    fields.update(kw)
    return ScheduleRecord(**fields)


# -- a shared server with auth, and the three stores ----------------------------------------------------
@dataclass
class Server:
    process: ServerProcess
    workspace: Path
    tokens: dict[str, str]

    def client(self, scope: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.process.url, headers={"Authorization": f"Bearer {self.tokens[scope]}"}, timeout=60
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("publish-server")
    ws = Workspace.create(root / "ws" / ".runyard")
    assert isinstance(ws.store, SqlStore)
    tokens = {"admin": create_token(ws.store, "admin")[0]}  # in-process: a CLI run costs a Python start
    with running_server(ws.path, root / "server.log", auth=True) as process:
        box = Server(process, ws.path, tokens)
        with box.client("admin") as admin:
            for scope in ("write", "read"):
                answer = admin.post("/api/v1/tokens", json={"scope": scope})
                assert answer.status_code == 200, answer.text
                tokens[scope] = answer.json()["token"]
        writer = RestStore(process.url, tokens["write"])
        tokens["run"] = writer.create_run_token(make_run(writer, "jobs").run_id)
        yield box


@pytest.fixture(params=["sqlite", "postgres", "rest"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """Like conftest's `workspace` (sqlite, postgres), plus a RestStore on the module's server."""
    if request.param == "rest":
        box: Server = request.getfixturevalue("server")
        return RestStore(box.process.url, box.tokens["write"])
    uri = None if request.param == "sqlite" else str(request.getfixturevalue("postgres_uri"))
    return Workspace.create(tmp_path / "ws" / ".runyard", tracking_uri=uri).store


def mine(records: list[Any], *ids: str) -> list[str]:
    """The ids of `records` that this test made, in the order the store listed them."""
    return [r.id for r in records if r.id in ids]


# -- published pipelines --------------------------------------------------------------------------------
def test_published_pipelines_are_listed_newest_first_and_disabled_on_request(store: Store) -> None:
    now = time.time()
    older = store.create_published_pipeline(published("a", created=now - 10, version="1.0", data={"k": 1}))
    newer = store.create_published_pipeline(published("b", created=now, continue_on_step_failure=True))
    got = store.get_published_pipeline(older.id)
    assert (got.name, got.version, got.graph, got.status) == ("a", "1.0", GRAPH, ACTIVE)
    assert got.data["k"] == 1 and store.get_published_pipeline(newer.id).continue_on_step_failure is True
    assert mine(store.list_published_pipelines(), older.id, newer.id) == [newer.id, older.id]

    assert store.set_published_pipeline_status(older.id, DISABLED).status == DISABLED
    assert mine(store.list_published_pipelines(), older.id, newer.id) == [newer.id]
    assert mine(store.list_published_pipelines(active_only=False), older.id, newer.id) == [newer.id, older.id]

    with pytest.raises(ConflictError, match="already exists"):
        store.create_published_pipeline(replace(published("c"), id=newer.id))
    with pytest.raises(PublishedPipelineNotFound, match=r"PublishedPipeline\.list"):
        store.get_published_pipeline("no-such-pipeline")
    with pytest.raises(PublishedPipelineNotFound):
        store.set_published_pipeline_status("no-such-pipeline", DISABLED)
    with pytest.raises(InvalidInputError, match="'Active' or 'Disabled'"):
        store.set_published_pipeline_status(newer.id, "active")


# -- pipeline endpoints ---------------------------------------------------------------------------------
def test_endpoint_versions_count_up_and_a_known_pipeline_keeps_its_version(store: Store) -> None:
    first, second, third = (store.create_published_pipeline(published(n)) for n in ("p1", "p2", "p3"))
    made = store.create_pipeline_endpoint(endpoint(first.id, uid("team/door?#%"), description="door"))
    assert store.get_pipeline_endpoint(name=made.name).id == made.id
    assert store.get_pipeline_endpoint(made.id, made.name).versions == {"0": first.id}

    added = store.add_pipeline_endpoint_version(made.id, second.id)
    assert (added.versions, added.default_version) == ({"0": first.id, "1": second.id}, "0")
    again = store.add_pipeline_endpoint_version(made.id, second.id, set_default=True)
    assert (again.versions, again.default_version) == ({"0": first.id, "1": second.id}, "1")
    third_added = store.add_pipeline_endpoint_version(made.id, third.id, set_default=True)
    assert third_added.versions["2"] == third.id and third_added.default_version == "2"

    with pytest.raises(PublishedPipelineNotFound, match="no-such"):
        store.add_pipeline_endpoint_version(made.id, "no-such")
    with pytest.raises(PipelineEndpointNotFound, match=r"PipelineEndpoint\.list"):
        store.add_pipeline_endpoint_version("no-such-endpoint", first.id)
    with pytest.raises(PipelineEndpointNotFound):
        store.get_pipeline_endpoint(made.id, "another-name")
    with pytest.raises(InvalidInputError, match="id or its name"):
        store.get_pipeline_endpoint()


def test_endpoint_updates_and_unique_names(store: Store) -> None:
    pipeline = store.create_published_pipeline(published())
    one = store.create_pipeline_endpoint(endpoint(pipeline.id))
    two = store.create_pipeline_endpoint(endpoint(pipeline.id))
    with pytest.raises(ConflictError, match="names are unique"):
        store.create_pipeline_endpoint(endpoint(pipeline.id, name=one.name))
    with pytest.raises(ConflictError, match="names are unique"):
        store.update_pipeline_endpoint(two.id, name=one.name)
    with pytest.raises(PublishedPipelineNotFound, match="names a version"):
        store.create_pipeline_endpoint(endpoint("never-published"))
    with pytest.raises(InvalidInputError, match="has no version '7'"):
        store.update_pipeline_endpoint(one.id, default_version="7")

    renamed = uid("renamed")
    changed = store.update_pipeline_endpoint(one.id, name=renamed, description="new", status=DISABLED)
    assert (changed.name, changed.description, changed.status) == (renamed, "new", DISABLED)
    assert store.update_pipeline_endpoint(one.id).name == renamed  # nothing given: nothing changes
    assert mine(store.list_pipeline_endpoints(), one.id, two.id) == [two.id]
    listed = store.list_pipeline_endpoints(active_only=False)
    assert mine(listed, one.id, two.id) == sorted(
        [one.id, two.id], key=lambda i: {one.id: renamed, two.id: two.name}[i]
    )


# -- schedules ------------------------------------------------------------------------------------------
def test_schedules_store_a_normalised_recurrence_or_a_watch(store: Store) -> None:
    pipeline = store.create_published_pipeline(published())
    door = store.create_pipeline_endpoint(endpoint(pipeline.id))
    timed = store.create_schedule(
        schedule(
            pipeline.id,
            recurrence={
                "frequency": "Week",
                "interval": 2,
                "week_days": ["Wednesday", "Monday"],
                "time_of_day": "6:30",
                "start_time": "2024-05-20T16:00",
            },
            pipeline_parameters={"lr": 0.1},
            continue_on_step_failure=True,
        )
    )
    assert timed.recurrence == {
        "frequency": "Week",
        "interval": 2,
        "start_time": "2024-05-20T16:00:00",
        "time_zone": "UTC",
        "hours": None,
        "minutes": None,
        "week_days": ["Monday", "Wednesday"],
        "time_of_day": "06:30",
    }
    watch = store.create_schedule(
        schedule(
            pipeline_endpoint_id=door.id,
            recurrence=None,
            datastore_name="WorkspaceBlobStore",
            polling_interval=0.25,
            path_on_datastore="incoming/",
            data_path_parameter_name="input_path",
        )
    )
    got = store.get_schedule(watch.id)
    assert (got.datastore_name, got.polling_interval, got.recurrence) == ("workspaceblobstore", 0.25, None)
    assert store.get_schedule(timed.id).pipeline_parameters == {"lr": 0.1}
    assert mine(store.list_schedules(), timed.id, watch.id) == [watch.id, timed.id]
    assert mine(store.list_schedules(pipeline_id=pipeline.id), timed.id, watch.id) == [timed.id]
    assert mine(store.list_schedules(pipeline_endpoint_id=door.id), timed.id, watch.id) == [watch.id]

    off = store.set_schedule_status(timed.id, DISABLED)
    assert (off.status, off.next_fire_time) == (DISABLED, None)
    assert mine(store.list_schedules(), timed.id, watch.id) == [watch.id]
    assert mine(store.list_schedules(active_only=False), timed.id, watch.id) == [watch.id, timed.id]

    with pytest.raises(ScheduleNotFound, match=r"Schedule\.list"):
        store.get_schedule("no-such-schedule")
    with pytest.raises(ScheduleNotFound):
        store.set_schedule_status("no-such-schedule", ACTIVE)
    with pytest.raises(PublishedPipelineNotFound, match="Schedule 'nightly' names a pipeline"):
        store.create_schedule(schedule("never-published"))
    with pytest.raises(PipelineEndpointNotFound):
        store.create_schedule(schedule(pipeline_endpoint_id="never-made"))


BAD_SCHEDULES = [
    ({"status": "enabled"}, "'Active' or 'Disabled'"),
    ({"name": "two\nlines"}, "control character"),
    ({"name": "x" * 256}, "1 to 255"),
    ({"pipeline_endpoint_id": "pe-1"}, "exactly one of pipeline_id"),
    ({"recurrence": None}, "neither"),
    ({"datastore_name": "store", "polling_interval": 5}, "not both"),
    ({"recurrence": None, "datastore_name": "store", "polling_interval": 0}, "greater than 0"),
    ({"recurrence": None, "datastore_name": "store", "polling_interval": math.nan}, "greater than 0"),
    ({"polling_interval": 5}, "only applies to a schedule that watches"),
    ({"recurrence": {"frequency": "hour", "interval": 1}}, "only one of Minute, Hour"),
    ({"recurrence": {"frequency": "Hour", "interval": 0}}, "greater than 0"),
    ({"recurrence": {"frequency": "Hour", "interval": True}}, "greater than 0"),
    ({"recurrence": {"frequency": "Hour", "interval": 1, "hours": [3]}}, "hours if frequency is Week or Day"),
    ({"recurrence": {"frequency": "Day", "interval": 1, "week_days": ["Monday"]}}, "week days if frequency"),
    ({"recurrence": {"frequency": "Day", "interval": 1, "hours": [24]}}, "between 0 and 23"),
    ({"recurrence": {"frequency": "Day", "interval": 1, "minutes": [60]}}, "between 0 and 59"),
    (
        {"recurrence": {"frequency": "Day", "interval": 1, "time_of_day": "7:30", "hours": [7]}},
        "time_of_day and",
    ),
    ({"recurrence": {"frequency": "Day", "interval": 1, "time_of_day": "7.30"}}, "format hh:mm"),
    ({"recurrence": {"frequency": "Day", "interval": 1, "time_of_day": "24:00"}}, "between 0 and 23"),
    ({"recurrence": {"frequency": "Week", "interval": 1, "week_days": ["monday"]}}, "Week days must be"),
    (
        {"recurrence": {"frequency": "Hour", "interval": 1, "time_zone": "Mars Standard Time"}},
        "not a known time",
    ),
    ({"recurrence": {"frequency": "Hour", "interval": 1, "start_time": "tomorrow"}}, "YYYY-MM-DDThh:mm:ss"),
    (
        {"recurrence": {"frequency": "Hour", "interval": 1, "start_time": "2024-01-01T00:00:00+02:00"}},
        "tzinfo",
    ),
    ({"recurrence": {"frequency": "Hour", "interval": 1, "every": 2}}, "unknown field"),
    ({"pipeline_parameters": {"x": math.inf}}, "finite"),
]


@pytest.mark.parametrize(("change", "words"), BAD_SCHEDULES, ids=[w for _c, w in BAD_SCHEDULES])
def test_bad_schedules_are_refused_naming_the_fix(change: dict[str, Any], words: str, tmp_path: Path) -> None:
    """The rules alone (every store calls them before it writes; the stores run a few below)."""
    with pytest.raises(InvalidInputError, match=words.replace("(", r"\(")):
        rules.check_schedule(schedule("pp-1", **change))


def test_every_store_refuses_bad_records(store: Store) -> None:
    pipeline = store.create_published_pipeline(published())
    with pytest.raises(InvalidInputError, match="control character"):
        store.create_published_pipeline(published("bad\x07name"))
    with pytest.raises(InvalidInputError, match="not a finite number"):
        store.create_published_pipeline(replace(published(), graph={"w": math.nan}))
    with pytest.raises(InvalidInputError, match="without '/'"):
        store.create_published_pipeline(replace(published(), id="a/b"))
    with pytest.raises(InvalidInputError, match="default_version"):
        store.create_pipeline_endpoint(replace(endpoint(pipeline.id), default_version="3"))
    with pytest.raises(InvalidInputError, match="whole numbers as text"):
        store.create_pipeline_endpoint(
            replace(endpoint(pipeline.id), versions={"01": pipeline.id}, default_version="01")
        )
    with pytest.raises(InvalidInputError, match="Minute, Hour"):
        store.create_schedule(schedule(pipeline.id, recurrence={"frequency": "Yearly", "interval": 1}))
    assert store.list_schedules(pipeline_id=pipeline.id, active_only=False) == []


# -- the recurrence rules and time zones ----------------------------------------------------------------
def test_recurrence_is_normalised_as_v1_fills_it() -> None:
    assert rules.check_recurrence({"frequency": "Minute", "interval": 15}) == {
        "frequency": "Minute",
        "interval": 15,
        "start_time": None,
        "time_zone": None,
        "hours": None,
        "minutes": None,
        "week_days": None,
        "time_of_day": None,
    }
    from datetime import datetime

    day = rules.check_recurrence(
        {
            "frequency": "Day",
            "interval": 1,
            "hours": [14, 10, 10],
            "minutes": [30],
            "start_time": datetime(2024, 5, 20, 16),
            "time_zone": "Pacific Standard Time",
        }
    )
    assert (day["hours"], day["start_time"], day["time_zone"]) == (
        [10, 14],
        "2024-05-20T16:00:00",
        "Pacific Standard Time",
    )
    with pytest.raises(InvalidInputError, match="ScheduleRecurrence"):
        rules.check_recurrence(["Hour", 1])
    with pytest.raises(InvalidInputError, match="non-empty list"):
        rules.check_recurrence({"frequency": "Day", "interval": 1, "hours": []})


@pytest.mark.parametrize(
    ("name", "key"),
    [
        (None, "UTC"),
        ("UTC", "Etc/UTC"),
        ("Pacific Standard Time", "America/Los_Angeles"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("UTC-11", "Etc/GMT+11"),
        ("Mid-Atlantic Standard Time", "Etc/GMT+2"),
        ("Europe/Berlin", "Europe/Berlin"),
    ],
)
def test_zone_of_takes_v1_windows_names_and_iana_names(name: str | None, key: str) -> None:
    assert rules.zone_of(name).key == key


def test_zone_of_refuses_unknown_zones() -> None:
    for bad in ("Pacific", "", "../etc/passwd", 5):
        with pytest.raises(InvalidInputError, match="time_zone"):
            rules.zone_of(bad)  # type: ignore[arg-type]


# -- claiming a firing (SqlStore only) --------------------------------------------------------------------
def test_claim_schedule_firing_is_a_compare_and_set(workspace: Workspace) -> None:
    store = workspace.store
    assert isinstance(store, SqlStore)
    pipeline = store.create_published_pipeline(published())
    made = store.create_schedule(schedule(pipeline.id, data={"createdBy": {"auth": "off"}}))
    assert store.claim_schedule_firing(made.id, 1.0, 2.0) is False  # expected a time, the row holds NULL
    assert store.claim_schedule_firing(made.id, None, 100.0) is True  # NULL-safe match
    assert store.claim_schedule_firing(made.id, None, 200.0) is False  # already claimed
    assert store.claim_schedule_firing(
        made.id, 100.0, 160.0, fired_time=100.5, run_id="run-1", data={"watch": {"a.csv": 1}}
    )
    got = store.get_schedule(made.id)
    assert (got.next_fire_time, got.last_fire_time, got.last_run_id) == (160.0, 100.5, "run-1")
    assert got.data == {"createdBy": {"auth": "off"}, "watch": {"a.csv": 1}}  # merged, createdBy kept
    assert store.claim_schedule_firing(made.id, 160.0, 220.0)  # nothing else given: those stay
    assert store.get_schedule(made.id).last_run_id == "run-1"

    store.set_schedule_status(made.id, DISABLED)
    assert store.claim_schedule_firing(made.id, None, 300.0) is False  # a disabled schedule never fires
    assert store.claim_schedule_firing("no-such-schedule", None, 1.0) is False
    with pytest.raises(InvalidInputError, match="finite"):
        store.claim_schedule_firing(made.id, None, math.inf)


def test_concurrent_claims_fire_once(workspace: Workspace) -> None:
    """Eight schedulers see the same due firing; exactly one takes it."""
    store = workspace.store
    assert isinstance(store, SqlStore)
    made = store.create_schedule(
        schedule(store.create_published_pipeline(published()).id, next_fire_time=50.0)
    )
    start, results = threading.Barrier(8), []

    def claim(n: int) -> None:
        start.wait()
        results.append(store.claim_schedule_firing(made.id, 50.0, 110.0, run_id=f"run-{n}"))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.get_schedule(made.id).next_fire_time == 110.0


def test_concurrent_version_adds_get_distinct_numbers(workspace: Workspace) -> None:
    """Six writers add six pipelines to one endpoint at once: versions 1-6, each pipeline once."""
    store = workspace.store
    pipelines = [store.create_published_pipeline(published(f"p{n}")).id for n in range(7)]
    door = store.create_pipeline_endpoint(endpoint(pipelines[0]))
    start = threading.Barrier(6)

    def add(pipeline_id: str) -> None:
        start.wait()
        store.add_pipeline_endpoint_version(door.id, pipeline_id)

    threads = [threading.Thread(target=add, args=(p,)) for p in pipelines[1:]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    versions = store.get_pipeline_endpoint(door.id).versions
    assert sorted(versions, key=int) == [str(n) for n in range(7)]
    assert sorted(versions.values()) == sorted(pipelines)


# -- the REST routes: tokens, the server's stamp, bad bodies, 404s ----------------------------------------
def _body(record: Any) -> dict[str, Any]:
    from pydantic import TypeAdapter

    return TypeAdapter(type(record)).dump_python(record, mode="json")


def test_only_write_tokens_publish_and_the_server_stamps_who(server: Server) -> None:
    record = replace(published(), data={"createdBy": {"token": "forged", "scope": "admin"}})
    for scope, words in (("read", "'write' scope"), ("run", "run token")):
        with server.client(scope) as client:
            answer = client.post("/api/v1/published-pipelines", json=_body(record))
            assert answer.status_code == 403, answer.text
            assert answer.json()["error"]["code"] == "AuthorizationFailed"
            assert words in answer.json()["error"]["message"]
    with server.client("write") as client:
        answer = client.post("/api/v1/published-pipelines", json=_body(record))
        assert answer.status_code == 200, answer.text
        stamp = answer.json()["data"]["createdBy"]
        assert stamp["scope"] == "write" and stamp["token"] == server.tokens["write"].split("_")[1]
        sched = client.post("/api/v1/schedules", json=_body(schedule(record.id, data={"createdBy": "me"})))
        assert sched.json()["data"]["createdBy"] == stamp
    with server.client("run") as client:  # a job may read, but not schedule or disable
        assert client.get(f"/api/v1/published-pipelines/{record.id}").status_code == 200
        for path, body in (
            (f"/api/v1/published-pipelines/{record.id}/status", {"status": DISABLED}),
            (f"/api/v1/schedules/{sched.json()['id']}/status", {"status": DISABLED}),
        ):
            assert client.put(path, json=body).status_code == 403
    with server.client("read") as client:
        listed = client.get("/api/v1/published-pipelines", params={"active_only": "false"}).json()
        assert record.id in [p["id"] for p in listed]
        assert (
            client.post("/api/v1/pipeline-endpoints/x/versions", json={"pipeline_id": record.id}).status_code
            == 403
        )


def test_bad_bodies_get_4xx_with_a_clear_message(server: Server) -> None:
    with server.client("write") as client:
        pipeline = client.post("/api/v1/published-pipelines", json=_body(published())).json()
        good = _body(schedule(pipeline["id"]))
        cases: list[tuple[dict[str, Any], int, str]] = [
            (
                {**good, "recurrence": None, "datastore_name": "s", "polling_interval": "5"},
                422,
                "polling_interval",
            ),
            ({**good, "created_time": "now"}, 422, "created_time"),
            ({**good, "continue_on_step_failure": 1}, 422, "continue_on_step_failure"),
            ({**good, "surprise": 1}, 422, "surprise"),
            ({**good, "status": "On"}, 400, "'Active' or 'Disabled'"),
            (
                {**good, "recurrence": {"frequency": "Day", "interval": 1, "hours": [25]}},
                400,
                "between 0 and 23",
            ),
        ]
        for body, status, words in cases:
            answer = client.post("/api/v1/schedules", json=body)
            assert answer.status_code == status, (body, answer.text)
            assert words in answer.json()["error"]["message"], answer.text
        answer = client.put(f"/api/v1/published-pipelines/{pipeline['id']}/status", json={"status": "off"})
        assert answer.status_code == 400 and "'Active' or 'Disabled'" in answer.json()["error"]["message"]
        answer = client.post("/api/v1/pipeline-endpoints/e/versions", json={"pipeline_id": 5})
        assert answer.status_code == 422 and "pipeline_id" in answer.json()["error"]["message"]


def test_unknown_records_answer_404_in_the_error_shape(server: Server) -> None:
    with server.client("read") as client:
        for path, kind in (
            ("/api/v1/published-pipelines/nope", "PublishedPipelineNotFound"),
            ("/api/v1/pipeline-endpoints/nope", "PipelineEndpointNotFound"),
            ("/api/v1/pipeline-endpoints/by-name/nope", "PipelineEndpointNotFound"),
            ("/api/v1/schedules/nope", "ScheduleNotFound"),
        ):
            answer = client.get(path)
            assert answer.status_code == 404, answer.text
            error = answer.json()["error"]
            assert (error["code"], error["type"]) == ("NotFound", kind) and "nope" in error["message"]


# -- answers lost after the server did the work ----------------------------------------------------------
class LosesAnswers(httpx.BaseTransport):
    """Passes every request to the app, then drops the first `times` answers to `method path-prefix`."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner, self.rule, self.lost = inner, ("", "", 0), 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        method, prefix, times = self.rule
        if request.method == method and request.url.path.startswith(prefix) and self.lost < times:
            self.lost += 1
            response.read()  # the app finishes its work, as a server does whatever the client sees
            response.close()
            raise httpx.ReadError("connection reset after the request was sent", request=request)
        return response


def test_a_lost_answer_is_looked_up_not_repeated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The creates are not safe to send twice (the second would say "already exists"): after a lost
    answer RestStore finds what the first one made. Adding a version is safe to repeat."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from runyard.server.app import create_app

    monkeypatch.setenv("RUNYARD_SERVER_RETRY_SECONDS", "10")
    with TestClient(create_app(Workspace.create(tmp_path / "ws" / ".runyard"))) as client:
        gate = LosesAnswers(client._transport)
        client._transport = gate
        store = RestStore(f"http://testserver-{uuid.uuid4().hex[:8]}", client=client)
        gate.rule = ("POST", "/api/v1/published-pipelines", 1)
        made = store.create_published_pipeline(published())
        assert gate.lost == 1 and made.data["createdBy"] == {"auth": "off"}
        assert mine(store.list_published_pipelines(), made.id) == [made.id]

        gate.rule, gate.lost = ("POST", "/api/v1/schedules", 1), 0
        timed = store.create_schedule(
            schedule(made.id, recurrence={"frequency": "Day", "interval": 1, "hours": [3]})
        )
        assert gate.lost == 1 and timed.recurrence is not None and timed.recurrence["hours"] == [3]

        door = store.create_pipeline_endpoint(endpoint(made.id))
        second = store.create_published_pipeline(published())
        gate.rule, gate.lost = ("POST", f"/api/v1/pipeline-endpoints/{door.id}/versions", 2), 0
        added = store.add_pipeline_endpoint_version(door.id, second.id, set_default=True)
        assert (
            gate.lost == 2
            and added.versions == {"0": made.id, "1": second.id}
            and added.default_version == "1"
        )
