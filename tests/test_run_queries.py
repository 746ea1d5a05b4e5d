"""The Run API makes one query where it made N: listing runs with v1's filters, building Run objects from
the listed records, and waiting for a pipeline (one change-marker query per polling round).

SQL statements are counted with an SQLAlchemy `before_cursor_execute` listener on the store's engines
(transaction control — BEGIN, COMMIT, ROLLBACK — left out). Each count is taken for a few runs and for
many, on SQLite and PostgreSQL (the `workspace` fixture runs every test on both), and each filter's
result is compared with a plain Python filter over every run's tags and properties read one by one.
"""

from __future__ import annotations

import itertools
import time
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

import runyard.pipeline.runs as pipeline_runs
from runyard import Experiment, Run, Workspace
from runyard.core.run_files import DRIVER_LOG
from runyard.core.run_values import PIPELINE_RUN_TYPE, STEP_RUN_TYPE
from runyard.errors import AuthError, InvalidInputError
from runyard.pipeline import PipelineRun, StepRun
from runyard.server.auth import create_token
from runyard.status import RunStatus
from runyard.store import RunRecord, SqlStore
from runyard.store.rest_store import RestStore
from server_process import running_server

FEW, MANY = 2, 40


@contextmanager
def counted(store: Any) -> Iterator[list[str]]:
    """The SQL statements `store` runs inside the block (reads and writes; no transaction control)."""
    statements: list[str] = []

    def hook(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            statements.append(statement)

    engines = list({id(e): e for e in (store.engine, store.write_engine)}.values())
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", hook)
    try:
        yield statements
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", hook)


def add_runs(ws: Workspace, experiment: str, count: int, parent_id: str | None = None) -> list[str]:
    """`count` runs in one transaction with a spread of tags, properties, types, statuses and targets."""
    exp = ws.store.get_or_create_experiment(experiment)
    now = time.time()
    records = [
        RunRecord(
            run_id=f"{experiment}-{parent_id or 'top'}-{i}",
            experiment_id=exp.id,
            experiment_name=exp.name,
            status=RunStatus.COMPLETED if i % 3 else RunStatus.FAILED,
            run_type="azureml.scriptrun" if i % 4 else "azureml.hyperdrive",
            created_time=now + i / 1000,
            parent_id=parent_id,
            target="gpu" if i % 2 else "local",
        )
        for i in range(count)
    ]
    ws.store.create_runs(records)
    for i, record in enumerate(records):
        tags: dict[str, Any] = {"seed": str(i)}
        if i % 3:
            tags["team"] = "vision" if i % 2 else "speech"
        if i % 5 == 0:
            tags["team"] = None  # a tag without a value
        ws.store.set_tags(record.run_id, tags)
        ws.store.add_properties(record.run_id, {"kind": "sweep" if i % 4 == 1 else "plain"})
    return [r.run_id for r in records]


def plain_filter(values: dict[str, Any], wanted: Any) -> bool:
    """What a filter means, written out: a key name must be present; each key of a dict (or (key, value)
    pair) must hold str(value), or for a None value be absent or hold None."""
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted in values
    items = list(wanted.items()) if isinstance(wanted, dict) else list(wanted)
    for item in items:
        if isinstance(item, str):
            if item not in values:
                return False
        elif values.get(item[0]) != (None if item[1] is None else str(item[1])):
            return False
    return True


def expected_ids(ws: Workspace, experiment: str, include_children: bool = False, **wanted: Any) -> list[str]:
    """The runs a filter keeps, found the slow way: every run, then its tags and properties one by one."""
    kept = []
    for record in ws.store.list_runs(experiment_name=experiment, top_level_only=not include_children):
        if wanted.get("type") is not None and record.run_type != wanted["type"]:
            continue
        if wanted.get("status") is not None and record.status != wanted["status"]:
            continue
        if not plain_filter(ws.store.get_tags(record.run_id), wanted.get("tags")):
            continue
        if plain_filter(ws.store.get_properties(record.run_id), wanted.get("properties")):
            kept.append(record.run_id)
    return kept


FILTERS: list[dict[str, Any]] = [
    {},
    {"tags": {"team": "vision"}},
    {"tags": "team"},
    {"tags": {"team": None}},
    {"tags": {"seed": 3}},  # values compare as text, as v1's do
    {"tags": ["team", ("team", "speech")]},
    {"properties": {"kind": "sweep"}},
    {"properties": "kind"},
    {"type": "azureml.hyperdrive", "status": RunStatus.FAILED},
    {"tags": {"team": "vision"}, "properties": {"kind": "sweep"}, "status": RunStatus.COMPLETED},
]


@pytest.fixture
def populated(workspace: Workspace) -> Workspace:
    add_runs(workspace, "few", FEW)
    parents = add_runs(workspace, "many", MANY)
    add_runs(workspace, "many", 3, parent_id=parents[0])  # children: listed only with include_children
    return workspace


@pytest.mark.parametrize("wanted", FILTERS, ids=[str(f) for f in FILTERS])
def test_get_runs_is_one_query_however_many_runs_and_keeps_what_the_filter_means(
    populated: Workspace, wanted: dict[str, Any]
) -> None:
    ws = populated
    counts = {}
    for name in ("few", "many"):
        experiment = Experiment(ws, name)
        with counted(ws.store) as statements:
            runs = list(experiment.get_runs(**wanted))
            assert [r.experiment.name for r in runs] == [name] * len(runs)  # no query for the experiment
        counts[name] = len(statements)
        assert [r.id for r in runs] == expected_ids(ws, name, **wanted)
        with counted(ws.store) as statements:
            listed = list(Run.list(experiment, include_children=True, **wanted))
        assert len(statements) == counts[name]
        assert [r.id for r in listed] == expected_ids(ws, name, include_children=True, **wanted)
    assert counts["few"] == counts["many"] == 1, counts


def test_listed_runs_come_back_as_their_run_class_without_more_queries(workspace: Workspace) -> None:
    exp = workspace.store.get_or_create_experiment("typed")
    now = time.time()
    pipeline = RunRecord("pipe", exp.id, exp.name, RunStatus.COMPLETED, PIPELINE_RUN_TYPE, now)
    steps = [
        RunRecord(
            f"step-{i}", exp.id, exp.name, RunStatus.COMPLETED, STEP_RUN_TYPE, now + i, parent_id="pipe"
        )
        for i in range(MANY)
    ]
    workspace.store.create_runs([pipeline, *steps])
    experiment = Experiment(workspace, "typed")
    with counted(workspace.store) as statements:
        runs = list(experiment.get_runs(include_children=True))
        children = list(runs[-1].get_children())
    assert isinstance(runs[-1], PipelineRun) and all(isinstance(r, StepRun) for r in runs[:-1])
    assert [c.id for c in children] == [s.run_id for s in steps]
    assert len(statements) == 2, statements  # the listing, then the children


def test_descendants_and_target_filters_are_applied_in_the_query(workspace: Workspace) -> None:
    """Store-level filters for get_children and Run.list_by_compute: one query per generation of
    children, one for a target's runs, whatever their number; the same runs as a filter in Python."""
    ws = workspace
    counts = {}
    for name, count in (("few", FEW), ("many", MANY)):
        parent = add_runs(ws, name, 1)[0]
        children = add_runs(ws, name, count, parent_id=parent)
        add_runs(ws, name, 2, parent_id=children[1])  # grandchildren
        every = [r.run_id for r in ws.store.list_descendants(parent, recursive=True)]
        with counted(ws.store) as statements:
            found = ws.store.list_descendants(
                parent, recursive=True, tags={"team": "vision"}, properties="kind", status=["Completed"]
            )
            on_gpu = ws.store.list_runs(experiment_name=name, target="gpu", tags="team")
        counts[name] = len(statements)
        kept = [
            i
            for i in every
            if plain_filter(ws.store.get_tags(i), {"team": "vision"})
            and ws.store.get_run(i).status == RunStatus.COMPLETED
        ]
        assert [r.run_id for r in found] == kept
        assert [r.run_id for r in on_gpu] == [
            r.run_id
            for r in ws.store.list_runs(experiment_name=name)
            if r.target == "gpu" and "team" in ws.store.get_tags(r.run_id)
        ]
    assert counts["few"] == counts["many"] == 4, counts  # three generations, one target listing


@pytest.mark.parametrize("bad", [5, 2.5, {1: "a"}, [("team",)], [["team", "a", "b"]]], ids=lambda b: repr(b))
def test_a_filter_that_means_nothing_is_refused_with_the_forms_that_work(
    workspace: Workspace, bad: Any
) -> None:
    add_runs(workspace, "refused", 1)
    with pytest.raises(InvalidInputError, match="pass a key name, a dict of key -> value"):
        list(Experiment(workspace, "refused").get_runs(tags=bad, properties=None))
    with pytest.raises(InvalidInputError, match="not a properties filter"):
        workspace.store.list_runs(properties=bad)


# -- waiting for a pipeline -------------------------------------------------------------------------------


def add_pipeline(ws: Workspace, steps: int) -> tuple[str, list[str]]:
    """A Running pipeline run whose first half of steps run (each with a driver log) and the rest wait."""
    exp = ws.store.get_or_create_experiment(f"wait-{steps}")
    names = [f"step{i}" for i in range(steps)]
    graph = {"steps": [{"name": n, "outputs": []} for n in names]}
    now = time.time()
    pipe = RunRecord(f"pipe-{steps}", exp.id, exp.name, RunStatus.RUNNING, PIPELINE_RUN_TYPE, now)
    pipe.data = {"graph": graph}
    records = [
        RunRecord(
            f"pipe-{steps}-{n}",
            exp.id,
            exp.name,
            RunStatus.RUNNING if i < steps // 2 else RunStatus.NOT_STARTED,
            STEP_RUN_TYPE,
            now + i / 1000,
            parent_id=pipe.run_id,
            display_name=n,
        )
        for i, n in enumerate(names)
    ]
    ws.store.create_runs([pipe, *records])
    for record in records[: steps // 2]:
        ws.artifacts.put_bytes(
            f"runs/{record.run_id}/{DRIVER_LOG}", f"{record.display_name} starts\n".encode()
        )
    return pipe.run_id, [r.run_id for r in records]


def frozen_clock(on_sleep: Callable[[], None]) -> types.SimpleNamespace:
    """The wait loop's `time`: a clock that stands still (no timeout, no periodic scheduler check, so every
    round is the same) and a sleep that calls `on_sleep` instead of sleeping."""
    start = time.monotonic()
    return types.SimpleNamespace(monotonic=lambda: start, sleep=lambda _seconds: on_sleep())


ROUNDS = 6


def statements_per_round(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch, wait: Callable[[], Any], run_id: str, append_to: str
) -> list[int]:
    """Statements in each polling round after the first (nothing changes in the database meanwhile; a
    step's log grows in round 3), then the run ends, which the next round must notice."""
    marks: list[int] = []

    def on_sleep() -> None:
        marks.append(len(statements))
        if len(marks) == 3:
            ws.artifacts.put_bytes(append_to, b"step0 starts\nstep0 grew in round 3\n")
        if len(marks) == ROUNDS:
            ws.store.set_run_status(run_id, RunStatus.COMPLETED)

    monkeypatch.setattr(pipeline_runs, "time", frozen_clock(on_sleep))
    with counted(ws.store) as statements:
        wait()
    assert len(marks) == ROUNDS, "the wait must end in the round after the run ended"
    return [after - before for before, after in itertools.pairwise(marks)]


@pytest.mark.parametrize("show_output", [True, False])
def test_waiting_for_a_pipeline_costs_the_same_queries_per_round_however_many_steps(
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    show_output: bool,
) -> None:
    per_round = {}
    for steps in (FEW, MANY):
        pipe_id, step_ids = add_pipeline(workspace, steps)
        run = PipelineRun.get(workspace, pipe_id)
        log = f"runs/{step_ids[0]}/{DRIVER_LOG}"
        per_round[steps] = statements_per_round(
            workspace, monkeypatch, lambda r=run: r.wait_for_completion(show_output=show_output), pipe_id, log
        )
        out = capsys.readouterr().out
        if show_output:  # logs still stream while the database stays quiet
            assert "[step0] step0 starts\n" in out and "[step0] step0 grew in round 3\n" in out
            assert f"StepRun(step{steps - 1}) Status: NotStarted" in out
    assert per_round[FEW] == per_round[MANY] == [1] * (ROUNDS - 1), per_round  # the change marker only


def test_waiting_for_a_step_polls_its_change_marker(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _pipe_id, step_ids = add_pipeline(workspace, FEW)
    step = StepRun(Experiment(workspace, f"wait-{FEW}"), step_ids[0])
    log = f"runs/{step_ids[0]}/{DRIVER_LOG}"
    per_round = statements_per_round(
        workspace, monkeypatch, lambda: step.wait_for_completion(show_output=True), step_ids[0], log
    )
    assert per_round == [1] * (ROUNDS - 1)
    assert "step0 starts\nstep0 grew in round 3\n" in capsys.readouterr().out


def test_the_change_marker_moves_with_a_tag_value_and_with_a_step_status(workspace: Workspace) -> None:
    ws = workspace
    pipe_id, step_ids = add_pipeline(ws, FEW)
    marker = ws.store.change_marker(pipe_id)
    for change in (
        lambda: ws.store.set_tags(step_ids[1], {"stage": "fit"}),
        lambda: ws.store.set_tags(step_ids[1], {"stage": "score"}),  # as many tags, another value
        lambda: ws.store.set_run_status(step_ids[1], RunStatus.RUNNING),
    ):
        change()
        assert ws.store.change_marker(pipe_id) != marker
        marker = ws.store.change_marker(pipe_id)
    assert ws.store.change_marker(pipe_id) == marker  # nothing changed: nothing moved


# -- the same filters and marker over REST -------------------------------------------------------------------


def test_filters_and_the_change_marker_over_rest_follow_the_server_rules(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    ws = sqlite_workspace
    assert isinstance(ws.store, SqlStore)
    parents = add_runs(ws, "remote", 6)
    add_runs(ws, "remote", 4, parent_id=parents[1])
    reader, _ = create_token(ws.store, "read")
    job, _ = create_token(ws.store, "run", run_id=parents[2])
    with running_server(ws.path, tmp_path / "server.log", auth=True) as server:
        rest = RestStore(server.url, reader)
        for wanted in FILTERS:
            args = {"tags": wanted.get("tags"), "properties": wanted.get("properties")}
            assert rest.list_runs(experiment_name="remote", target="gpu", **args) == ws.store.list_runs(
                experiment_name="remote", target="gpu", **args
            )
            assert rest.list_descendants(parents[1], True, **args) == ws.store.list_descendants(
                parents[1], True, **args
            )
        # blake2b, not hash(): the server's marker is the one this process computes
        assert rest.change_marker(parents[1]) == ws.store.change_marker(parents[1])
        assert rest.change_marker() == ws.store.change_marker()
        with pytest.raises(InvalidInputError, match="not a tags filter"):
            rest.list_runs(tags=5)  # type: ignore[arg-type]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {reader}"}) as client:
            refused = client.get("/api/v1/runs", params={"tags": '["team"]'})
            assert refused.status_code == 400 and "is not a run filter" in refused.text, refused.text
        as_job = RestStore(server.url, job)
        assert as_job.change_marker(parents[2]) == ws.store.change_marker(parents[2])
        with pytest.raises(AuthError, match="may not read run"):
            as_job.change_marker(parents[1])  # the same rule as reading that run
        with pytest.raises(AuthError, match="not allowed with a run token"):
            as_job.change_marker()
