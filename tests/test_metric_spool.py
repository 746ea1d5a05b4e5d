"""The metric spool in one process: a real ring file, a real SQLite workspace, the real drain.

What a job writes (core/metric_spool.py) and what its supervisor makes of it (core/metric_drain.py):
every kind of value comes back as logged, in order, exactly once; the ring wraps only after its values
were consumed; a gap, a torn line, a corrupt or truncated file costs at most the broken values; a
StoreError keeps everything for the next pass; a job's values for runs outside its family are dropped.
The jobs themselves (SIGKILL, concurrency, memory) are in tests/test_metric_spool_jobs.py.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from runyard import Experiment, Run, Workspace
from runyard.core import metrics
from runyard.core.metric_drain import SpoolDrain
from runyard.core.metric_spool import HEADER_BYTES, RECORD_BYTES, T_BOOL, T_NONE, SpoolRing
from runyard.errors import InvalidInputError, RunFinishedError, RunyardError, StoreError
from runyard.store.rest_store import RestStore


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.create(tmp_path / "ws" / ".runyard")


def new_run(ws: Workspace, parent: Run | None = None) -> Run:
    return parent.child_run() if parent is not None else Experiment(ws, "spool").start_logging()


def ring_in(folder: Path, capacity: int = 64, writer: str = "w1") -> SpoolRing:
    return SpoolRing(folder, writer, capacity, itertools.count())


def lines(reported: list[str]) -> str:
    return "\n".join(reported)


def test_every_kind_of_value_comes_back_as_logged(ws: Workspace, tmp_path: Path) -> None:
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    loss, flag, empty = ring.define(run.id, "loss"), ring.define(run.id, "flag"), ring.define(run.id, "empty")
    ring.put_float(loss, 0.5, None)
    ring.put_int(loss, 7, 3)  # an int stays an int
    ring.put_float(loss, -1.25, 2**62)
    ring.put_int(flag, 1, None, T_BOOL)
    ring.put_int(empty, 0, None, T_NONE)
    ring.put_row(
        {
            "r": run.id,
            "n": "note",
            "k": "scalar",
            "t": time.time(),
            "v": None,
            "x": "text",
            "p": None,
            "s": None,
        }
    )
    ring.put_row(
        {
            "r": run.id,
            "n": "row",
            "k": "row",
            "t": time.time(),
            "v": None,
            "x": None,
            "p": {"a": 1},
            "s": None,
        }
    )
    ring.put_float(loss, 2.0, None)
    drain = SpoolDrain(ws.store, tmp_path / "spool", root_run=run.id, report=print)

    assert drain.drain_once() == 8
    got = run.get_metrics()
    assert got == {"loss": [0.5, 7, -1.25, 2.0], "flag": True, "empty": None, "note": "text", "row": {"a": 1}}
    assert type(got["loss"][1]) is int
    rows = ws.store.get_metric_rows([run.id], "loss")
    assert [r.step for r in rows] == [None, 3, 2**62, None]
    assert [r.seq for r in rows] == [0, 1, 2, 7]  # logging order across the ring and the side file
    assert ring.consumed() == 8 and drain.drain_once() == 0


def test_a_run_logged_through_the_writer_reads_back_exactly(ws: Workspace) -> None:
    """The interactive path end to end: Run.log's fast and checked paths, every log_* kind."""
    run = new_run(ws)
    for i in range(3):
        run.log("loss", i / 4)  # a float: the fast path after the first call
        run.log("epoch", i, step=i)  # an int with a step
    run.log("flag", False)
    run.log("nothing", None)
    run.log("note", "half way")
    run.log("big", 2**63)  # beyond 64 bits: the side file
    run.log_list("accs", [0.25, 0.5])
    run.log_row("table", epoch=1, acc=0.5)
    run.log_table("t2", {"a": [1, 2], "b": ["x", "y"]})
    for value in (np.float64(0.5), np.float64(1.5), np.int64(2)):  # numpy scalars: plain numbers back
        run.log("np", value)
    got = run.get_metrics()
    assert got == {
        "loss": [0.0, 0.25, 0.5],
        "epoch": [0, 1, 2],
        "flag": False,
        "nothing": None,
        "note": "half way",
        "big": 2**63,
        "accs": [0.25, 0.5],
        "table": {"epoch": 1, "acc": 0.5},
        "t2": {"a": [1, 2], "b": ["x", "y"]},
        "np": [0.5, 1.5, 2],
    }
    assert [type(v) for v in got["np"]] == [float, float, int]
    assert [type(v) for v in got["epoch"]] == [int, int, int]
    assert [r.step for r in ws.store.get_metric_rows([run.id], "epoch")] == [0, 1, 2]


def test_a_cached_name_is_refused_after_the_run_ended(ws: Workspace) -> None:
    run = new_run(ws)
    run.log("x", 1.0)
    run.log("x", 2.0)  # cached for the fast path
    run.complete()
    with pytest.raises(RunFinishedError):
        run.log("x", 3.0)
    assert run.get_metrics() == {"x": [1.0, 2.0]}


def test_a_mistyped_keyword_is_named(ws: Workspace) -> None:
    run = new_run(ws)
    with pytest.raises(TypeError, match=r"'stepp'\. Did you mean 'step'"):
        run.log("x", 1.0, stepp=3)


def test_threads_logging_at_once_lose_nothing(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """No lock on the hot path: four threads share one counter and one ring that wraps many times."""
    monkeypatch.setenv("RUNYARD_METRIC_SPOOL_RECORDS", "256")
    monkeypatch.setattr(metrics, "_writers", {})
    run = new_run(ws)

    def work(k: int) -> None:
        for i in range(3000):
            run.log(f"t{k}", float(i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = run.get_metrics()
    assert {k: got[f"t{k}"] for k in range(4)} == {k: [float(i) for i in range(3000)] for k in range(4)}
    writer = metrics.writer_for(ws)
    assert writer.ring is not None and writer.ring.capacity == 256


def test_the_ring_wraps_only_after_its_values_were_consumed(ws: Workspace, tmp_path: Path) -> None:
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool", capacity=16)
    sid = ring.define(run.id, "m")
    for i in range(16):
        ring.put_float(sid, float(i), None)
    blocked = threading.Thread(target=ring.put_float, args=(sid, 16.0, None))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive()  # the ring is full: the 17th value waits for the consumer
    assert ring.logged() == 17 and ring.consumed() == 0
    drain = SpoolDrain(ws.store, tmp_path / "spool", root_run=None)
    drain.drain_once()
    blocked.join(10)
    assert not blocked.is_alive()
    drain.drain_once()
    assert run.get_metrics()["m"] == [float(i) for i in range(17)]
    assert ring.path.stat().st_size == HEADER_BYTES + 16 * RECORD_BYTES


def test_a_gap_holds_back_a_live_writer_and_not_a_dead_one(ws: Workspace, tmp_path: Path) -> None:
    """A seq taken but never written (a thread stopped between the two): while the writer may live, the
    drain stores the values before it and waits; after the writer died it skips the gap."""
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    sid = ring.define(run.id, "m")
    ring.put_float(sid, 0.0, None)
    next(ring._seqs)  # seq 1: taken, never written
    ring.put_float(sid, 2.0, None)
    drain = SpoolDrain(ws.store, tmp_path / "spool", root_run=None)
    assert drain.drain_once() == 1 and ring.consumed() == 1
    assert drain.drain_once(final=True) == 1 and ring.consumed() == 3
    assert run.get_metrics()["m"] == [0.0, 2.0]


def test_a_torn_side_line_is_waited_for_then_ignored(ws: Workspace, tmp_path: Path) -> None:
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    sid = ring.define(run.id, "m")
    ring.put_float(sid, 1.0, None)
    seq = next(ring._seqs)  # a side row cut short by a kill: the seq is taken, the line has no newline
    with ring.side_path.open("ab") as fh:
        fh.write(b'{"q":%d,"r":"%s","n":"s","k":"scalar","t":1.0,"v":null,"x":"cut' % (seq, run.id.encode()))
    drain = SpoolDrain(ws.store, tmp_path / "spool", root_run=None)
    assert drain.drain_once() == 1 and ring.consumed() == 1
    assert drain.drain_once(final=True) == 0
    assert run.get_metrics() == {"m": 1.0}


def test_corrupt_files_cost_only_their_own_values(ws: Workspace, tmp_path: Path) -> None:
    """Spool files come from an untrusted job: a foreign file, a bad header, a truncated ring, junk lines
    and records of undefined series are reported and skipped; the good writer's values all arrive."""
    run = new_run(ws)
    spool = tmp_path / "spool"
    good = ring_in(spool, writer="good")
    sid = good.define(run.id, "m")
    for i in range(10):
        good.put_float(sid, float(i), None)
    good.put_float(sid + 5, 99.0, None)  # a series never defined
    with good.side_path.open("ab") as fh:
        fh.write(b'not json\n[1, 2]\n{"q": -4}\n')
    (spool / "foreign.ring").write_bytes(b"x" * 5000)
    truncated = ring_in(spool, writer="truncated")
    tsid = truncated.define(run.id, "t")
    truncated.put_float(tsid, 1.0, None)
    os.truncate(truncated.path, HEADER_BYTES + 10)  # the job cut its file short: reads come back short
    (spool / "link.ring").symlink_to(good.path)
    reported: list[str] = []
    drain = SpoolDrain(ws.store, spool, root_run=None, report=reported.append)

    drain.drain_once(final=True)
    assert run.get_metrics()["m"] == [float(i) for i in range(10)]
    text = lines(reported)
    assert "foreign.ring" in text and "not a version-1 metric spool" in text
    assert "link.ring" in text
    assert "truncated.ring" in text
    assert "undefined series" in text
    assert text.count("skipped a line that is not a spool record") == 3


def test_a_second_drain_after_a_crash_stores_nothing_twice(ws: Workspace, tmp_path: Path) -> None:
    """The supervisor died after the store took a batch and before `consumed` moved: whoever drains next
    sends the batch again, and the store keeps each (run, writer, seq) once."""
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    sid = ring.define(run.id, "m")
    for i in range(20):
        ring.put_float(sid, float(i), None)
    SpoolDrain(ws.store, tmp_path / "spool", root_run=None).drain_once()
    os.pwrite(os.open(ring.path, os.O_RDWR), (0).to_bytes(8, "little"), 24)  # `consumed` back to 0
    assert ring.consumed() == 0
    SpoolDrain(ws.store, tmp_path / "spool", root_run=None).drain_once(final=True)
    assert ws.store.count_metric_rows(run.id) == 20
    assert [(s.name, s.count) for s in ws.store.get_metric_summaries([run.id])] == [("m", 20)]


def test_a_refused_value_is_dropped_once_and_the_rest_stored(ws: Workspace, tmp_path: Path) -> None:
    """The store refuses a batch (its run does not exist): the drain writes it value by value, drops only
    what is refused, reports that once, and goes on with the rest."""
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    sid, lost = ring.define(run.id, "m"), ring.define("no-such-run", "m")
    ring.put_float(sid, 1.0, None)
    ring.put_float(lost, 2.0, None)
    ring.put_float(sid, 3.0, None)
    reported: list[str] = []
    SpoolDrain(ws.store, tmp_path / "spool", root_run=None, report=reported.append).drain_once()
    assert run.get_metrics()["m"] == [1.0, 3.0]
    assert ring.consumed() == 3
    assert len(reported) == 1 and "refused 1 metric value" in reported[0] and "'no-such-run'" in reported[0]


def test_values_no_job_could_log_are_dropped_by_the_drain(ws: Workspace, tmp_path: Path) -> None:
    """run.log refuses NaN and bad names; a ring holding them was written by something else: the drain drops
    them itself (not the store, one value at a time) and keeps the rest."""
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    sid, bad = ring.define(run.id, "m"), ring.define(run.id, "x" * 300)
    ring.put_float(sid, 1.0, None)
    ring.put_float(sid, float("nan"), None)
    ring.put_float(bad, 2.0, None)
    ring.put_int(sid, 5, None, tag=9)  # no such type
    ring.put_float(sid, 3.0, None)
    reported: list[str] = []
    SpoolDrain(ws.store, tmp_path / "spool", root_run=None, report=reported.append).drain_once()
    assert run.get_metrics() == {"m": [1.0, 3.0]}
    assert ring.consumed() == 5
    assert any("1 value(s) that are not finite were dropped" in line for line in reported)
    assert any("1 record(s) of an unknown type were dropped" in line for line in reported)
    assert any("300 characters long" in line for line in reported)


def test_a_store_outage_keeps_the_values_for_the_next_pass(
    ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_SERVER_RETRY_SECONDS", "0")
    run = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    sid = ring.define(run.id, "m")
    for i in range(5):
        ring.put_float(sid, float(i), None)
    drain = SpoolDrain(RestStore("http://127.0.0.1:9"), tmp_path / "spool", root_run=None)  # nothing listens
    with pytest.raises(StoreError):
        drain.drain_once()
    assert ring.consumed() == 0
    drain.store = ws.store  # the store is back
    assert drain.drain_once() == 5
    assert run.get_metrics()["m"] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_values_for_runs_outside_the_jobs_family_are_dropped(ws: Workspace, tmp_path: Path) -> None:
    """The drain writes with the job's rights: its run and that run's descendants, nothing else."""
    job = new_run(ws)
    grandchild = new_run(ws, new_run(ws, job))
    other = new_run(ws)
    ring = ring_in(tmp_path / "spool")
    for run in (job, grandchild, other):
        ring.put_float(ring.define(run.id, "m"), 1.0, None)
    ring.put_row(
        {"r": other.id, "n": "s", "k": "scalar", "t": 1.0, "v": None, "x": "hijack", "p": None, "s": None}
    )
    reported: list[str] = []
    SpoolDrain(ws.store, tmp_path / "spool", root_run=job.id, report=reported.append).drain_once()
    assert job.get_metrics() == {"m": 1.0} and grandchild.get_metrics() == {"m": 1.0}
    assert other.get_metrics() == {}
    assert len(reported) == 1 and f"for run {other.id!r}" in reported[0]


def test_a_spool_that_cannot_be_written_falls_back_to_the_store(
    ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A job whose spool folder cannot be made still logs (here its path is a file): straight to the store,
    said once on stderr."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    writer = metrics.MetricWriter(ws, blocker / "spool")
    run = new_run(ws)
    for i in range(3):
        writer.add(run.id, "m", "scalar", {"value": float(i), "text": None, "payload": None})
    writer.add(run.id, "s", "scalar", {"value": None, "text": "t", "payload": None})
    writer.flush(30)
    assert run.get_metrics() == {"m": [0.0, 1.0, 2.0], "s": "t"}
    assert capsys.readouterr().err.count("metrics are now sent to the store directly") == 1


def test_a_job_flush_without_a_supervisor_says_what_is_wrong(ws: Workspace, tmp_path: Path) -> None:
    """RUNYARD_SPOOL_DIR set by hand outside a submitted run: nothing drains, and flush says so."""
    writer = metrics.MetricWriter(ws, tmp_path / "spool")
    run = new_run(ws)
    writer.add(run.id, "m", "scalar", {"value": 1.0, "text": None, "payload": None})
    with pytest.raises(RunyardError, match=r"nothing drained its spool .* Is RUNYARD_SPOOL_DIR set outside"):
        writer.flush(timeout=0.3)
    SpoolDrain(ws.store, tmp_path / "spool", root_run=run.id).drain_once()  # a supervisor after all
    writer.flush(timeout=5)
    assert run.get_metrics() == {"m": 1.0}


def test_a_spool_size_that_is_not_a_number_is_named(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    """A mistyped RUNYARD_METRIC_SPOOL_RECORDS is said in words at the first value, and leaves no folder."""
    monkeypatch.setenv("RUNYARD_METRIC_SPOOL_RECORDS", "10k")
    (ws.path.parent / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(ws.path.parent / "tmp"))
    writer = metrics.MetricWriter(ws, None)
    run = new_run(ws)
    with pytest.raises(InvalidInputError, match=r"RUNYARD_METRIC_SPOOL_RECORDS='10k' is not a whole number"):
        writer.add(run.id, "m", "scalar", {"value": 1.0, "text": None, "payload": None})
    assert list((ws.path.parent / "tmp").iterdir()) == []
    monkeypatch.setenv("RUNYARD_METRIC_SPOOL_RECORDS", "1024")
    writer.add(run.id, "m", "scalar", {"value": 1.0, "text": None, "payload": None})
    writer.flush(30)
    assert run.get_metrics() == {"m": 1.0}
