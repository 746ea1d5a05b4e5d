"""The Store conformance suite on SqlStore: a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from runyard.store.sql_store import SqlStore
from store_suite import StoreSuite, make_run, scalar


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
