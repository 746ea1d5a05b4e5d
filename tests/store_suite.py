"""Conformance tests for the Store protocol (runyard.store.base.Store).

Every implementation (SqlStore on SQLite and PostgreSQL today, a RestStore later) runs these same
tests by subclassing `StoreSuite` and providing a `store` fixture. The tests speak only through the
protocol's methods, so they hold for any implementation.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest

from runyard.errors import ConflictError, ExperimentNotFound, InvalidInputError, ModelNotFound, RunNotFound
from runyard.status import RunStatus
from runyard.store.base import Store
from runyard.store.records import ExperimentRecord, MetricRow, ModelRecord, RunRecord
from store_validation_suite import ValidationSuite

TERMINAL = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)


def _uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_run(
    store: Store,
    experiment: str | ExperimentRecord,
    run_id: str | None = None,
    *,
    parent_id: str | None = None,
    status: str = RunStatus.NOT_STARTED,
    created_time: float | None = None,
    data: dict[str, Any] | None = None,
    display_name: str | None = None,
) -> RunRecord:
    exp = store.get_or_create_experiment(experiment) if isinstance(experiment, str) else experiment
    record = RunRecord(
        run_id=run_id or _uid("run"),
        experiment_id=exp.id,
        experiment_name=exp.name,
        status=status,
        run_type="azureml.scriptrun",
        created_time=time.time() if created_time is None else created_time,
        parent_id=parent_id,
        display_name=display_name,
        data=dict(data or {}),
    )
    return store.create_run(record)


def scalar(run_id: str, name: str, value: float, step: int | None = None, **kw: Any) -> MetricRow:
    return MetricRow(
        run_id=run_id, name=name, kind="scalar", timestamp=time.time(), value=value, step=step, **kw
    )


def own_data(run: RunRecord) -> dict[str, Any]:
    """A run's data without `submittedBy`, which a server stamps with the token's principal whatever the
    client sent (docs/security.md); every other key round-trips unchanged."""
    return {k: v for k, v in run.data.items() if k != "submittedBy"}


def make_model(name: str, path: str | None = None, **kw: Any) -> ModelRecord:
    path = path or f"models/{name}/{{version}}/model.pkl"  # model paths stay in their model's folder
    return ModelRecord(name=name, version=0, path=path, created_time=time.time(), **kw)


class StoreSuite(ValidationSuite):
    """Subclasses provide a `store` fixture returning a fresh, empty Store. What every store refuses is
    in ValidationSuite (tests/store_validation_suite.py)."""

    __test__ = False

    # -- experiments ----------------------------------------------------------------------------
    def test_get_or_create_experiment_is_idempotent(self, store: Store) -> None:
        first = store.get_or_create_experiment("exp-a")
        again = store.get_or_create_experiment("exp-a")
        other = store.get_or_create_experiment("exp-b")
        assert first.name == "exp-a"
        assert again == first
        assert other.id != first.id
        assert store.get_experiment("exp-a") == first
        assert sorted(e.name for e in store.list_experiments()) == ["exp-a", "exp-b"]
        assert first.created_time == pytest.approx(time.time(), abs=60)

    def test_get_experiment_unknown_raises(self, store: Store) -> None:
        store.get_or_create_experiment("exists")
        with pytest.raises(ExperimentNotFound, match="nope"):
            store.get_experiment("nope")

    def test_list_experiments_empty(self, store: Store) -> None:
        assert store.list_experiments() == []

    # -- runs -----------------------------------------------------------------------------------
    def test_create_run_numbers_per_experiment(self, store: Store) -> None:
        a = [make_run(store, "exp-a") for _ in range(3)]
        b = [make_run(store, "exp-b") for _ in range(2)]
        assert [r.number for r in a] == [1, 2, 3]
        assert [r.number for r in b] == [1, 2]
        assert [store.get_run(r.run_id).number for r in a] == [1, 2, 3]

    def test_create_run_round_trips_fields(self, store: Store) -> None:
        parent = make_run(store, "exp")
        created = make_run(
            store,
            "exp",
            "child-1",
            parent_id=parent.run_id,
            created_time=1234.5,
            data={"definition": {"script": "train.py", "args": ["--lr", 0.1]}},
            display_name="nice name",
        )
        got = store.get_run("child-1")
        assert got.run_id == "child-1"
        assert got.experiment_name == "exp"
        assert got.experiment_id == store.get_experiment("exp").id
        assert got.parent_id == parent.run_id
        assert got.status == RunStatus.NOT_STARTED
        assert got.run_type == "azureml.scriptrun"
        assert got.created_time == 1234.5
        assert got.display_name == "nice name"
        assert got.target == "local"
        assert got.start_time is None and got.end_time is None
        assert got.number == created.number == 2
        assert own_data(got) == {"definition": {"script": "train.py", "args": ["--lr", 0.1]}}

    def test_create_run_duplicate_id_conflicts(self, store: Store) -> None:
        make_run(store, "exp", "dup")
        with pytest.raises(ConflictError, match="dup"):
            make_run(store, "exp", "dup")
        with pytest.raises(ConflictError):
            make_run(store, "other-exp", "dup")
        assert [r.run_id for r in store.list_runs()] == ["dup"]
        # the failed attempts did not consume a number
        assert make_run(store, "exp").number == 2

    def test_get_run_unknown_raises_helpful_error(self, store: Store) -> None:
        make_run(store, "exp")
        with pytest.raises(RunNotFound) as info:
            store.get_run("no-such-run-42")
        message = str(info.value)
        assert "no-such-run-42" in message
        assert "runyard runs list" in message

    def test_list_runs_newest_first_and_limit(self, store: Store) -> None:
        base = 1_700_000_000.0
        ids = [make_run(store, "exp", f"r{i}", created_time=base + i).run_id for i in range(5)]
        assert [r.run_id for r in store.list_runs()] == ids[::-1]
        assert [r.run_id for r in store.list_runs(limit=2)] == ["r4", "r3"]
        assert [r.run_id for r in store.list_runs(experiment_name="exp", limit=10)] == ids[::-1]

    def test_list_runs_newest_first_when_created_in_same_instant(self, store: Store) -> None:
        ids = [make_run(store, "exp", f"same{i}", created_time=5000.0).run_id for i in range(3)]
        assert [r.run_id for r in store.list_runs()] == ids[::-1]

    def test_list_runs_filters(self, store: Store) -> None:
        base = 1_700_000_000.0
        p1 = make_run(store, "exp-a", "p1", created_time=base + 1)
        make_run(store, "exp-a", "c1", parent_id="p1", created_time=base + 2)
        make_run(store, "exp-a", "c2", parent_id="p1", created_time=base + 3)
        make_run(store, "exp-a", "g1", parent_id="c1", created_time=base + 4)
        make_run(store, "exp-b", "q1", created_time=base + 5)
        make_run(store, "exp-b", "q2", created_time=base + 6)
        store.set_run_status("c2", RunStatus.RUNNING)
        store.set_run_status("q1", RunStatus.COMPLETED)
        store.set_run_status("q2", RunStatus.FAILED)

        def ids(**kw: Any) -> list[str]:
            return [r.run_id for r in store.list_runs(**kw)]

        assert ids(experiment_name="exp-a") == ["g1", "c2", "c1", "p1"]
        assert ids(experiment_name="exp-b") == ["q2", "q1"]
        assert ids(experiment_name="missing") == []
        assert ids(status=[RunStatus.RUNNING]) == ["c2"]
        assert ids(status=[RunStatus.COMPLETED, RunStatus.FAILED]) == ["q2", "q1"]
        assert ids(status=[RunStatus.NOT_STARTED], experiment_name="exp-a") == ["g1", "c1", "p1"]
        assert ids(parent_id=p1.run_id) == ["c2", "c1"]
        assert ids(parent_id="c1") == ["g1"]
        assert ids(top_level_only=True) == ["q2", "q1", "p1"]
        assert ids(top_level_only=True, experiment_name="exp-a") == ["p1"]
        assert ids(top_level_only=True, limit=1) == ["q2"]
        assert all(r.experiment_name == "exp-b" for r in store.list_runs(experiment_name="exp-b"))

    def test_metrics_for_an_unknown_run_raise_run_not_found(self, store: Store) -> None:
        run = make_run(store, "metrics-unknown")
        with pytest.raises(RunNotFound, match="ghost-run"):
            store.append_metrics([scalar(run.run_id, "m", 1.0), scalar("ghost-run", "m", 2.0)])
        assert store.count_metric_rows(run.run_id) == 0  # all or nothing

    def test_unknown_status_is_refused(self, store: Store) -> None:
        run = make_run(store, "statuses")
        with pytest.raises(InvalidInputError, match="Unknown run status 'Bogus'"):
            store.set_run_status(run.run_id, "Bogus")
        assert store.get_run(run.run_id).status == "NotStarted"

    def test_list_descendants(self, store: Store) -> None:
        base = 1_700_000_000.0
        make_run(store, "exp", "root", created_time=base)
        make_run(store, "exp", "a", parent_id="root", created_time=base + 1)
        make_run(store, "exp", "b", parent_id="root", created_time=base + 2)
        make_run(store, "exp", "a1", parent_id="a", created_time=base + 3)
        make_run(store, "exp", "a1x", parent_id="a1", created_time=base + 4)
        make_run(store, "exp", "b1", parent_id="b", created_time=base + 5)
        make_run(store, "exp", "unrelated", created_time=base + 6)

        direct = store.list_descendants("root", recursive=False)
        assert sorted(r.run_id for r in direct) == ["a", "b"]
        everything = store.list_descendants("root", recursive=True)
        assert sorted(r.run_id for r in everything) == ["a", "a1", "a1x", "b", "b1"]
        assert len(everything) == 5  # no duplicates
        assert sorted(r.run_id for r in store.list_descendants("a", recursive=True)) == ["a1", "a1x"]
        assert store.list_descendants("a1x", recursive=True) == []
        assert store.list_descendants("unrelated", recursive=False) == []

    # -- status ---------------------------------------------------------------------------------
    def test_set_run_status_stamps_times(self, store: Store) -> None:
        run = make_run(store, "exp")
        before = time.time()
        queued = store.set_run_status(run.run_id, RunStatus.QUEUED)
        assert queued.status == RunStatus.QUEUED
        assert queued.start_time is None and queued.end_time is None

        running = store.set_run_status(run.run_id, RunStatus.RUNNING)
        assert running.status == RunStatus.RUNNING
        assert running.start_time is not None and before - 1 <= running.start_time <= time.time() + 1
        assert running.end_time is None
        started = running.start_time

        # a second Running does not move the start time
        again = store.set_run_status(run.run_id, RunStatus.RUNNING)
        assert again.start_time == started

        done = store.set_run_status(run.run_id, RunStatus.COMPLETED)
        assert done.status == RunStatus.COMPLETED
        assert done.start_time == started
        assert done.end_time is not None and done.end_time >= started
        stored = store.get_run(run.run_id)
        assert (stored.status, stored.start_time, stored.end_time) == (
            RunStatus.COMPLETED,
            started,
            done.end_time,
        )

    def test_terminal_without_start_gets_both_times(self, store: Store) -> None:
        run = make_run(store, "exp")
        ended = store.set_run_status(run.run_id, RunStatus.FAILED)
        assert ended.start_time is not None and ended.end_time is not None
        assert ended.start_time <= ended.end_time
        stored = store.get_run(run.run_id)
        assert stored.start_time == ended.start_time and stored.end_time == ended.end_time

    @pytest.mark.parametrize("terminal", TERMINAL)
    def test_terminal_status_is_sticky(self, store: Store, terminal: str) -> None:
        run = make_run(store, "exp")
        store.set_run_status(run.run_id, RunStatus.RUNNING)
        first = store.set_run_status(run.run_id, terminal)
        for later in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.RUNNING):
            returned = store.set_run_status(run.run_id, later, error={"message": "late"})
            assert returned.status == terminal
        stored = store.get_run(run.run_id)
        assert stored.status == terminal
        assert stored.end_time == first.end_time
        assert "error" not in stored.data

    def test_force_does_not_override_terminal_status(self, store: Store) -> None:
        run = make_run(store, "exp")
        store.set_run_status(run.run_id, RunStatus.COMPLETED)
        with pytest.raises(ConflictError, match="already ended with status Completed"):
            store.set_run_status(run.run_id, RunStatus.FAILED, error={"message": "bad"}, force=True)
        stored = store.get_run(run.run_id)
        assert stored.status == RunStatus.COMPLETED
        assert "error" not in stored.data

    def test_cancel_requested_only_moves_to_terminal(self, store: Store) -> None:
        run = make_run(store, "exp")
        store.set_run_status(run.run_id, RunStatus.RUNNING)
        store.set_run_status(run.run_id, RunStatus.CANCEL_REQUESTED)
        for not_terminal in (RunStatus.RUNNING, RunStatus.FINALIZING, RunStatus.QUEUED):
            assert store.set_run_status(run.run_id, not_terminal).status == RunStatus.CANCEL_REQUESTED
            assert store.get_run(run.run_id).status == RunStatus.CANCEL_REQUESTED
        assert store.get_run(run.run_id).end_time is None
        canceled = store.set_run_status(run.run_id, RunStatus.CANCELED)
        assert canceled.status == RunStatus.CANCELED
        assert store.get_run(run.run_id).end_time is not None

    def test_cancel_requested_force_moves_anywhere(self, store: Store) -> None:
        run = make_run(store, "exp")
        store.set_run_status(run.run_id, RunStatus.CANCEL_REQUESTED)
        assert store.set_run_status(run.run_id, RunStatus.RUNNING, force=True).status == RunStatus.RUNNING
        assert store.get_run(run.run_id).status == RunStatus.RUNNING

    def test_set_run_status_error_stored_in_data(self, store: Store) -> None:
        run = make_run(store, "exp", data={"definition": {"script": "x.py"}})
        error = {"message": "Traceback: boom", "exit_code": 3, "details": ["line 1", "line 2"]}
        returned = store.set_run_status(run.run_id, RunStatus.FAILED, error=error)
        assert returned.data["error"] == error
        stored = store.get_run(run.run_id)
        assert stored.data["error"] == error
        assert stored.data["definition"] == {"script": "x.py"}

    def test_set_run_status_unknown_run(self, store: Store) -> None:
        with pytest.raises(RunNotFound, match="ghost"):
            store.set_run_status("ghost", RunStatus.RUNNING)

    # -- run data -------------------------------------------------------------------------------
    def test_update_run_data_merges(self, store: Store) -> None:
        run = make_run(store, "exp", data={"a": 1, "nested": {"x": 1}, "keep": "yes"})
        returned = store.update_run_data(run.run_id, {"a": 2, "nested": {"y": 2}, "new": [1, 2]})
        expected = {"a": 2, "nested": {"y": 2}, "keep": "yes", "new": [1, 2]}
        assert own_data(returned) == expected
        assert own_data(store.get_run(run.run_id)) == expected
        store.update_run_data(run.run_id, {"warnings": ["w1"]})
        assert own_data(store.get_run(run.run_id)) == {**expected, "warnings": ["w1"]}

    def test_update_run_data_unknown_run(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            store.update_run_data("ghost", {"a": 1})

    # -- tags and properties --------------------------------------------------------------------
    def test_tags_set_overwrite_remove(self, store: Store) -> None:
        run = make_run(store, "exp")
        other = make_run(store, "exp")
        assert store.get_tags(run.run_id) == {}
        store.set_tags(run.run_id, {"a": "1", "b": "2", "flag": None})
        assert store.get_tags(run.run_id) == {"a": "1", "b": "2", "flag": None}
        store.set_tags(run.run_id, {"a": "one", "c": "3"})
        assert store.get_tags(run.run_id) == {"a": "one", "b": "2", "c": "3", "flag": None}
        store.set_tags(run.run_id, {"b": None})
        assert store.get_tags(run.run_id)["b"] is None
        store.remove_tags(run.run_id, ["a", "flag", "not-there"])
        assert store.get_tags(run.run_id) == {"b": None, "c": "3"}
        assert store.get_tags(other.run_id) == {}

    def test_set_tags_unknown_run(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            store.set_tags("ghost", {"a": "1"})

    def test_properties_are_immutable(self, store: Store) -> None:
        run = make_run(store, "exp")
        store.add_properties(run.run_id, {"azureml.git.commit": "abc123", "k": "v"})
        store.add_properties(run.run_id, {"k": "v"})  # same value again: fine
        store.add_properties(run.run_id, {"k": "v", "extra": "e"})
        assert store.get_properties(run.run_id) == {"azureml.git.commit": "abc123", "k": "v", "extra": "e"}
        with pytest.raises(ConflictError) as info:
            store.add_properties(run.run_id, {"k": "changed"})
        assert "'k'" in str(info.value)
        assert store.get_properties(run.run_id)["k"] == "v"
        # a batch with one bad key changes nothing
        with pytest.raises(ConflictError):
            store.add_properties(run.run_id, {"brand-new": "x", "k": "other"})
        assert "brand-new" not in store.get_properties(run.run_id)

    def test_add_properties_unknown_run(self, store: Store) -> None:
        with pytest.raises(RunNotFound):
            store.add_properties("ghost", {"a": "1"})

    # -- metrics --------------------------------------------------------------------------------
    def test_append_and_get_metric_rows_in_order(self, store: Store) -> None:
        run = make_run(store, "exp")
        rid = run.run_id
        rows = [
            scalar(rid, "loss", 0.9, step=0),
            scalar(rid, "acc", 0.1, step=0),
            MetricRow(rid, "names", "list", time.time(), text="first"),
            MetricRow(rid, "table", "row", time.time(), payload={"epoch": 1, "score": 0.5}),
            scalar(rid, "loss", 0.5, step=1),
            MetricRow(rid, "plot", "image", time.time(), text="outputs/plot.png"),
            scalar(rid, "loss", 0.7, step=2),
        ]
        store.append_metrics(rows)
        got = store.get_metric_rows([rid])
        assert got == rows
        assert [r.value for r in store.get_metric_rows([rid], name="loss")] == [0.9, 0.5, 0.7]
        assert [r.step for r in store.get_metric_rows([rid], name="loss")] == [0, 1, 2]
        assert store.get_metric_rows([rid], name="table")[0].payload == {"epoch": 1, "score": 0.5}
        assert store.get_metric_rows([rid], name="missing") == []

        more = [scalar(rid, "loss", v) for v in (0.3, 0.2)]
        store.append_metrics(more)
        assert [r.value for r in store.get_metric_rows([rid], name="loss")] == [0.9, 0.5, 0.7, 0.3, 0.2]

    def test_metric_rows_across_runs(self, store: Store) -> None:
        r1, r2, r3 = (make_run(store, "exp").run_id for _ in range(3))
        store.append_metrics([scalar(r1, "m", 1), scalar(r2, "m", 2), scalar(r1, "m", 3)])
        store.append_metrics([scalar(r3, "m", 4), scalar(r2, "n", 5)])
        both = store.get_metric_rows([r1, r2])
        assert [(r.run_id, r.name, r.value) for r in both] == [
            (r1, "m", 1),
            (r2, "m", 2),
            (r1, "m", 3),
            (r2, "n", 5),
        ]
        assert [r.value for r in store.get_metric_rows([r2], name="m")] == [2]
        assert [r.value for r in store.get_metric_rows([r3])] == [4]
        assert store.get_metric_rows([]) == []

    def test_append_empty_batch_is_noop(self, store: Store) -> None:
        run = make_run(store, "exp")
        store.append_metrics([])
        assert store.count_metric_rows(run.run_id) == 0
        assert store.get_metric_summaries([run.run_id]) == []

    def test_metric_summaries_across_batches(self, store: Store) -> None:
        run = make_run(store, "exp")
        rid = run.run_id
        store.append_metrics([scalar(rid, "loss", 5.0, step=0), scalar(rid, "loss", 3.0, step=1)])
        store.append_metrics([scalar(rid, "loss", 4.0, step=2)])  # neither new min nor max
        store.append_metrics([scalar(rid, "loss", 1.0, step=3), scalar(rid, "loss", 2.0, step=4)])  # new min
        (summary,) = store.get_metric_summaries([rid])
        assert (summary.count, summary.last, summary.min, summary.max, summary.last_step) == (
            5,
            2.0,
            1.0,
            5.0,
            4,
        )

        store.append_metrics([scalar(rid, "loss", 9.0, step=5), scalar(rid, "loss", 6.0, step=6)])  # new max
        (summary,) = store.get_metric_summaries([rid])
        assert summary.run_id == rid and summary.name == "loss"
        assert (summary.count, summary.last, summary.min, summary.max, summary.last_step) == (
            7,
            6.0,
            1.0,
            9.0,
            6,
        )

    def test_metric_summaries_negative_values_and_several_metrics(self, store: Store) -> None:
        r1, r2 = make_run(store, "exp").run_id, make_run(store, "exp").run_id
        store.append_metrics([scalar(r1, "a", -1.0), scalar(r1, "b", 10.0), scalar(r2, "a", 0.0)])
        store.append_metrics([scalar(r1, "a", -7.5), scalar(r1, "b", 20.0), scalar(r1, "a", -3.0)])
        store.append_metrics([scalar(r2, "a", 100.0)])
        got = {
            (s.run_id, s.name): (s.count, s.last, s.min, s.max) for s in store.get_metric_summaries([r1, r2])
        }
        assert got == {
            (r1, "a"): (3, -3.0, -7.5, -1.0),
            (r1, "b"): (2, 20.0, 10.0, 20.0),
            (r2, "a"): (2, 100.0, 0.0, 100.0),
        }
        only_r2 = store.get_metric_summaries([r2])
        assert [(s.run_id, s.name) for s in only_r2] == [(r2, "a")]

    def test_non_scalar_rows_have_no_summary(self, store: Store) -> None:
        rid = make_run(store, "exp").run_id
        store.append_metrics(
            [
                MetricRow(rid, "lst", "list", time.time(), value=1.0),
                MetricRow(rid, "tbl", "row", time.time(), payload={"a": 1}),
                MetricRow(rid, "txt", "scalar", time.time(), text="not a number"),
                scalar(rid, "num", 1.5),
            ]
        )
        assert [s.name for s in store.get_metric_summaries([rid])] == ["num"]
        assert store.count_metric_rows(rid) == 4

    def test_last_metric_seq_per_writer(self, store: Store) -> None:
        rid = make_run(store, "exp").run_id
        other = make_run(store, "exp").run_id
        assert store.last_metric_seq(rid, "w1") == -1
        store.append_metrics([scalar(rid, "m", float(i), writer="w1", seq=i) for i in range(4)])
        store.append_metrics([scalar(rid, "m", float(i), writer="w2", seq=i) for i in range(10, 12)])
        store.append_metrics([scalar(rid, "m", 0.0)])  # no writer
        store.append_metrics([scalar(other, "m", 0.0, writer="w1", seq=99)])
        assert store.last_metric_seq(rid, "w1") == 3
        assert store.last_metric_seq(rid, "w2") == 11
        assert store.last_metric_seq(rid, "w3") == -1
        assert store.last_metric_seq(other, "w1") == 99
        assert store.last_metric_seq(other, "w2") == -1

    def test_count_metric_rows(self, store: Store) -> None:
        assert store.count_metric_rows() == 0
        r1, r2 = make_run(store, "exp").run_id, make_run(store, "exp").run_id
        store.append_metrics([scalar(r1, "m", float(i)) for i in range(7)])
        store.append_metrics([scalar(r2, "m", 1.0), MetricRow(r2, "t", "row", time.time(), payload={})])
        assert store.count_metric_rows(r1) == 7
        assert store.count_metric_rows(r2) == 2
        assert store.count_metric_rows() == 9
        assert store.count_metric_rows("ghost") == 0

    def test_concurrent_metric_appends(self, store: Store) -> None:
        rid = make_run(store, "exp").run_id
        threads, batches, batch_size = 6, 10, 25
        errors: list[BaseException] = []
        start = threading.Barrier(threads)

        def work(t: int) -> None:
            try:
                start.wait()
                for b in range(batches):
                    names = ["loss", "acc"] if (t + b) % 2 else ["acc", "loss"]  # vary the order
                    rows = [
                        scalar(
                            rid,
                            names[i % 2],
                            float(t * 1000 + b * batch_size + i),
                            writer=f"w{t}",
                            seq=b * batch_size + i,
                        )
                        for i in range(batch_size)
                    ]
                    store.append_metrics(rows)
            except BaseException as exc:  # collected and re-raised in the main thread
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert not errors, errors
        assert not any(w.is_alive() for w in workers)

        total = threads * batches * batch_size
        assert store.count_metric_rows(rid) == total
        assert len(store.get_metric_rows([rid])) == total
        summaries = {s.name: s for s in store.get_metric_summaries([rid])}
        assert sum(s.count for s in summaries.values()) == total
        assert summaries["loss"].count == summaries["acc"].count == total // 2
        all_values = [r.value for r in store.get_metric_rows([rid])]
        assert min(s.min for s in summaries.values()) == min(all_values)  # type: ignore[type-var]
        assert max(s.max for s in summaries.values()) == max(all_values)  # type: ignore[type-var]
        for t in range(threads):
            assert store.last_metric_seq(rid, f"w{t}") == batches * batch_size - 1
            # each writer's rows keep their order
            seqs = [r.seq for r in store.get_metric_rows([rid]) if r.writer == f"w{t}"]
            assert seqs == list(range(batches * batch_size))

    def test_concurrent_create_run_and_register_model(self, store: Store) -> None:
        exp = store.get_or_create_experiment("exp")
        threads, each = 6, 5
        numbers: list[int] = []
        versions: list[int] = []
        errors: list[BaseException] = []
        start = threading.Barrier(threads)

        def work() -> None:
            try:
                start.wait()
                for _ in range(each):
                    numbers.append(make_run(store, exp).number)
                    versions.append(store.register_model(make_model("shared")).version)
            except BaseException as exc:  # collected and re-raised in the main thread
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert not errors, errors
        expected = list(range(1, threads * each + 1))
        assert sorted(numbers) == expected
        assert sorted(versions) == expected
        assert sorted(r.number for r in store.list_runs(experiment_name="exp")) == expected
        assert store.get_model("shared").version == threads * each

    # -- models ---------------------------------------------------------------------------------
    def test_register_model_versions(self, store: Store) -> None:
        run = make_run(store, "exp")
        m1 = store.register_model(
            make_model(
                "clf",
                path="models/clf/{version}/model.pkl",
                tags={"stage": "dev"},
                properties={"auc": "0.9"},
                description="first",
                run_id=run.run_id,
                framework="ScikitLearn",
            )
        )
        m2 = store.register_model(make_model("clf", path="models/clf/{version}/model.pkl"))
        other = store.register_model(make_model("reg"))
        m3 = store.register_model(
            make_model("clf", path="models/clf/{version}/model.pkl", description="third")
        )
        assert [m1.version, m2.version, m3.version] == [1, 2, 3]
        assert other.version == 1
        assert m1.path == "models/clf/1/model.pkl"
        assert m3.path == "models/clf/3/model.pkl"

        got1 = store.get_model("clf", 1)
        assert got1.path == "models/clf/1/model.pkl"
        assert got1.tags == {"stage": "dev"}
        assert got1.properties == {"auc": "0.9"}
        assert got1.description == "first"
        assert got1.run_id == run.run_id
        assert got1.framework == "ScikitLearn"
        assert got1.created_time == pytest.approx(m1.created_time)
        assert store.get_model("clf", 2).description is None

    def test_register_model_ignores_given_version(self, store: Store) -> None:
        model = ModelRecord(name="m", version=42, path="models/m/x", created_time=time.time())
        assert store.register_model(model).version == 1
        assert store.get_model("m").version == 1

    def test_get_model_latest_and_unknown(self, store: Store) -> None:
        for i in range(3):
            store.register_model(make_model("clf", description=f"v{i + 1}"))
        latest = store.get_model("clf")
        assert (latest.version, latest.description) == (3, "v3")
        assert store.get_model("clf", version=2).description == "v2"
        with pytest.raises(ModelNotFound, match="nope"):
            store.get_model("nope")
        with pytest.raises(ModelNotFound, match="version 9"):
            store.get_model("clf", version=9)

    def test_list_models(self, store: Store) -> None:
        assert store.list_models() == []
        for name, count in (("b-model", 2), ("a-model", 3), ("c-model", 1)):
            for _ in range(count):
                store.register_model(make_model(name))
        everything = [(m.name, m.version) for m in store.list_models()]
        assert sorted(everything) == sorted(
            [("a-model", 1), ("a-model", 2), ("a-model", 3), ("b-model", 1), ("b-model", 2), ("c-model", 1)]
        )
        latest = sorted((m.name, m.version) for m in store.list_models(latest=True))
        assert latest == [("a-model", 3), ("b-model", 2), ("c-model", 1)]
        assert sorted(m.version for m in store.list_models(name="a-model")) == [1, 2, 3]
        assert [(m.name, m.version) for m in store.list_models(name="a-model", latest=True)] == [
            ("a-model", 3)
        ]
        assert store.list_models(name="missing") == []
