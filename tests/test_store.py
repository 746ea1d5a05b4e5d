"""The Store conformance suite on SqlStore: a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.errors import ConflictError, InvalidInputError
from runyard.status import RunStatus
from runyard.store.sql_store import SqlStore
from store_suite import StoreSuite, make_run, scalar
from store_validation_suite import make_record


def _append_in_process(uri: str, run_id: str, writer: str, batches: int, batch_size: int) -> None:
    store = SqlStore(uri)
    for b in range(batches):
        store.append_metrics(
            [
                scalar(
                    run_id,
                    "loss" if i % 2 else "acc",
                    float(b * batch_size + i),
                    writer=writer,
                    seq=b * batch_size + i,
                )
                for i in range(batch_size)
            ]
        )
    store.engine.dispose()


class _SqlStoreExtras:
    """SqlStore-only checks: several processes writing to one database at once."""

    def test_concurrent_appends_from_processes(self, store: SqlStore) -> None:
        run_id = make_run(store, "exp").run_id
        procs, batches, batch_size = 4, 8, 20
        ctx = multiprocessing.get_context("spawn")
        workers = [
            ctx.Process(target=_append_in_process, args=(store.uri, run_id, f"p{i}", batches, batch_size))
            for i in range(procs)
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        assert [w.exitcode for w in workers] == [0] * procs

        total = procs * batches * batch_size
        assert store.count_metric_rows(run_id) == total
        summaries = {s.name: s.count for s in store.get_metric_summaries([run_id])}
        assert summaries == {"acc": total // 2, "loss": total // 2}
        for i in range(procs):
            assert store.last_metric_seq(run_id, f"p{i}") == batches * batch_size - 1

    def test_reopening_keeps_data(self, store: SqlStore) -> None:
        run = make_run(store, "exp", "keep-me")
        store.append_metrics([scalar(run.run_id, "m", 1.0)])
        again = SqlStore(store.uri)
        assert again.get_run("keep-me").number == 1
        assert again.count_metric_rows("keep-me") == 1

    def test_submission_keys_never_change(self, store: SqlStore) -> None:
        """SUBMISSION_KEYS are fixed once a run has them. (A server refuses any patch that names them, even
        with the same value, and stamps submittedBy itself: routes_store.py, tests/test_server_auth*.)"""
        graph = {"version": 1, "steps": {"a": {"script": "train.py"}}}
        run = store.create_run(make_record(store, data={"graph": graph, "submittedBy": "alice", "note": 1}))
        for patch in (
            {"graph": {"version": 1, "steps": {"a": {"script": "-c"}}}},
            {"submittedBy": "mallory"},
            {"runDefinition": {"script": "evil.py", "environmentVariables": {"LD_PRELOAD": "x.so"}}},
            {"placement": {"target": "server"}},  # absent at submission: adding it is a change too
            {"note": 2, "parameters": {"lr": 1}},
        ):
            with pytest.raises(ConflictError, match="cannot change"):
                store.update_run_data(run.run_id, patch)
            with pytest.raises(ConflictError, match="cannot change"):
                store.set_run_status(run.run_id, RunStatus.RUNNING, data=patch)
        stored = store.get_run(run.run_id)
        assert stored.status == RunStatus.NOT_STARTED  # the refused status change did not happen either
        assert stored.data == {"graph": graph, "submittedBy": "alice", "note": 1}
        # the same values again, and any other key, are fine
        store.update_run_data(run.run_id, {"graph": graph, "submittedBy": "alice", "note": 2})
        store.set_run_status(run.run_id, RunStatus.RUNNING, data={"graph": graph, "progress": 0.5})
        stored = store.get_run(run.run_id)
        assert stored.data == {"graph": graph, "submittedBy": "alice", "note": 2, "progress": 0.5}
        assert stored.status == RunStatus.RUNNING

    def test_non_finite_run_data_is_refused(self, store: SqlStore) -> None:
        """NaN in a run's data: SQLite would store it as the non-JSON token NaN, PostgreSQL refuses it."""
        for data in ({"loss": math.nan}, {"nested": [1.0, {"x": math.inf}]}):
            with pytest.raises(InvalidInputError, match="not a finite number"):
                store.create_run(make_record(store, data=data))
        run = store.create_run(make_record(store))
        with pytest.raises(InvalidInputError, match="not a finite number"):
            store.update_run_data(run.run_id, {"loss": -math.inf})
        with pytest.raises(InvalidInputError, match="not a finite number"):
            store.set_run_status(run.run_id, RunStatus.FAILED, error={"loss": math.nan})
        assert [(r.run_id, r.status, r.data) for r in store.list_runs()] == [
            (run.run_id, RunStatus.NOT_STARTED, {})
        ]


class TestSqliteStore(StoreSuite, _SqlStoreExtras):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SqlStore]:
        db = tmp_path / "x.db"
        store = SqlStore(f"sqlite:///{db}")
        assert db.is_file()
        yield store
        store.engine.dispose()

    def test_store_uses_wal(self, store: SqlStore, tmp_path: Path) -> None:
        make_run(store, "exp")
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


@pytest.mark.postgres
class TestPostgresStore(StoreSuite, _SqlStoreExtras):
    __test__ = True

    @pytest.fixture
    def store(self, postgres_uri: str) -> Iterator[SqlStore]:
        store = SqlStore(postgres_uri)
        yield store
        store.engine.dispose()  # each test has its own database: give its connections back
