"""The interactive Run API (experiment.start_logging()): metrics, tags, properties, children, details, files.

Every test here runs against a SQLite workspace and a PostgreSQL one (the `workspace` fixture).
"""

from __future__ import annotations

import io
import math
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

from runyard import Experiment, Run, Workspace
from runyard.errors import (
    ConflictError,
    InvalidInputError,
    MetricValueError,
    NotFoundError,
    RunFailedError,
    RunFinishedError,
    RunNotFound,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _start(workspace: Workspace, name: str = "interactive") -> Run:
    return Experiment(workspace, name).start_logging()


def _parse_utc(value: str) -> datetime:
    assert value.endswith("Z"), value
    return datetime.fromisoformat(value[:-1] + "+00:00")


def _png_file(path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0, 1], [1, 0])
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


# -- metrics: shapes ------------------------------------------------------------------------------
def test_scalar_logged_once_is_bare_and_n_times_is_a_list_in_order(workspace: Workspace) -> None:
    run = _start(workspace)
    run.log("once", 0.25)
    values = [5.0, 3.5, 4.25, 1.0, 2.0]
    for v in values:
        run.log("loss", v)
    metrics = run.get_metrics()
    assert metrics["once"] == 0.25
    assert metrics["loss"] == values
    assert run.get_metrics(name="loss") == {"loss": values}
    # Another handle (a fresh read from the store) sees the same thing.
    assert Run.get(workspace, run.id).get_metrics() == metrics


def test_log_list_comes_back_as_a_list_even_with_one_element(workspace: Workspace) -> None:
    run = _start(workspace)
    run.log_list("accs", [0.1, 0.5, 0.9])
    run.log_list("single", [7])
    metrics = run.get_metrics()
    assert metrics["accs"] == [0.1, 0.5, 0.9]
    assert metrics["single"] == [7]


def test_log_row_and_log_table_come_back_as_columns(workspace: Workspace) -> None:
    run = _start(workspace)
    run.log_row("one_row", epoch=1, loss=0.5)
    for epoch in range(3):
        run.log_row("rows", epoch=epoch, loss=1.0 / (epoch + 1))
    run.log_table("table", {"x": [1, 2, 3], "y": [0.5, 0.25, 0.125]})
    metrics = run.get_metrics()
    assert metrics["one_row"] == {"epoch": 1, "loss": 0.5}
    assert metrics["rows"] == {"epoch": [0, 1, 2], "loss": [1.0, 0.5, 1.0 / 3]}
    assert metrics["table"] == {"x": [1, 2, 3], "y": [0.5, 0.25, 0.125]}


def test_log_table_rejects_unequal_columns_and_non_dicts(workspace: Workspace) -> None:
    run = _start(workspace)
    with pytest.raises(InvalidInputError, match="different lengths"):
        run.log_table("t", {"x": [1, 2], "y": [1]})
    with pytest.raises(InvalidInputError, match="dict"):
        run.log_table("t", [1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="keyword"):
        run.log_row("t")
    assert "t" not in run.get_metrics()


def test_get_metric_series_always_returns_lists(workspace: Workspace) -> None:
    run = _start(workspace)
    run.log("once", 3)
    run.log("twice", 1)
    run.log("twice", 2)
    run.log_row("row", a=1, b="x")
    series = run.get_metric_series()
    assert series["once"] == [3]
    assert series["twice"] == [1, 2]
    assert series["row"] == {"a": [1], "b": ["x"]}
    assert run.get_metric_series("once") == {"once": [3]}


def test_values_keep_their_types(workspace: Workspace) -> None:
    run = _start(workspace)
    run.log("an_int", 5)
    run.log("a_float", 5.0)
    run.log("a_bool", True)
    run.log("false", False)
    run.log("a_str", "hello")
    run.log("big_int", 2**62 + 1)
    metrics = run.get_metrics()
    assert metrics["an_int"] == 5 and type(metrics["an_int"]) is int
    assert metrics["a_float"] == 5.0 and type(metrics["a_float"]) is float
    assert metrics["a_bool"] is True
    assert metrics["false"] is False
    assert metrics["a_str"] == "hello"
    assert metrics["big_int"] == 2**62 + 1  # exact: not squeezed through a float


def test_numpy_scalars_are_accepted_as_plain_python_values(workspace: Workspace) -> None:
    run = _start(workspace)
    run.log("f32", np.float32(1.5))
    run.log("f64", np.float64(0.125))
    run.log("i64", np.int64(42))
    run.log("b", np.bool_(True))
    run.log_list("arr", np.array([1, 2, 3]))
    run.log_row("row", n=np.int32(3), v=np.float64(2.5))
    metrics = run.get_metrics()
    assert metrics["f32"] == 1.5 and type(metrics["f32"]) is float
    assert metrics["f64"] == 0.125
    assert metrics["i64"] == 42 and type(metrics["i64"]) is int
    assert metrics["b"] is True
    assert metrics["arr"] == [1, 2, 3]
    assert metrics["row"] == {"n": 3, "v": 2.5}


def test_step_is_accepted_and_values_are_returned(workspace: Workspace) -> None:
    run = _start(workspace)
    for step in range(3):
        run.log("acc", step / 10, step=step)
    assert run.get_metrics()["acc"] == [0.0, 0.1, 0.2]


# -- metrics: bad input -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (float("nan"), "finite"),
        (float("inf"), "finite"),
        (-math.inf, "finite"),
        (np.float64("nan"), "finite"),
        ([1, 2, 3], "log_list"),
        (range(3), "log_list"),
        ({"a": 1}, "cannot log"),
        (object(), "cannot log"),
    ],
    ids=["nan", "inf", "-inf", "numpy-nan", "list", "range", "dict", "object"],
)
def test_bad_values_raise_metric_value_error_and_store_nothing(
    workspace: Workspace, value: object, hint: str
) -> None:
    run = _start(workspace)
    with pytest.raises(MetricValueError, match=hint) as info:
        run.log("bad", value)
    assert "bad" in str(info.value)  # the message names the metric
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, ValueError)
    assert run.get_metrics() == {}


def test_non_finite_values_are_rejected_inside_lists_and_rows(workspace: Workspace) -> None:
    run = _start(workspace)
    with pytest.raises(MetricValueError, match="finite"):
        run.log_list("l", [1.0, float("nan")])
    with pytest.raises(MetricValueError, match="finite"):
        run.log_row("r", a=float("inf"))
    with pytest.raises(InvalidInputError, match="list"):
        run.log_list("l", "abc")
    assert run.get_metrics() == {}


@pytest.mark.parametrize(
    ("name", "hint"),
    [("", "non-empty"), ("   ", "non-empty"), (None, "non-empty"), ("x" * 256, "256 characters")],
    ids=["empty", "blank", "none", "256-chars"],
)
def test_bad_metric_names_raise_with_a_helpful_message(workspace: Workspace, name: object, hint: str) -> None:
    run = _start(workspace)
    with pytest.raises(MetricValueError, match=hint):
        run.log(name, 1.0)  # type: ignore[arg-type]
    run.log("x" * 255, 1.0)  # the limit itself is fine
    assert run.get_metrics() == {"x" * 255: 1.0}


@pytest.mark.parametrize("step", ["1", 1.5, True], ids=["str", "float", "bool"])
def test_non_integer_step_is_rejected(workspace: Workspace, step: object) -> None:
    run = _start(workspace)
    with pytest.raises(InvalidInputError, match="step must be an int"):
        run.log("acc", 0.5, step=step)  # type: ignore[arg-type]
    assert run.get_metrics() == {}


@pytest.mark.parametrize(
    "action",
    [
        lambda r: r.log("x", 1),
        lambda r: r.log_list("x", [1]),
        lambda r: r.log_row("x", a=1),
        lambda r: r.log_table("x", {"a": [1]}),
    ],
    ids=["log", "log_list", "log_row", "log_table"],
)
def test_logging_to_a_completed_run_raises(workspace: Workspace, action) -> None:  # type: ignore[no-untyped-def]
    run = _start(workspace)
    run.log("before", 1)
    run.complete()
    assert run.get_status() == "Completed"
    with pytest.raises(RunFinishedError, match="Completed"):
        action(run)
    # A handle opened after the run ended refuses too.
    with pytest.raises(RunFinishedError):
        action(Run(run.experiment, run.id))
    assert run.get_metrics() == {"before": 1}


# -- images -----------------------------------------------------------------------------------------
def test_log_image_from_a_png_path(workspace: Workspace, tmp_path: Path) -> None:
    run = _start(workspace)
    png = _png_file(tmp_path / "plot.png")
    run.log_image("curve", path=str(png))
    ref = run.get_metrics()["curve"]
    assert isinstance(ref, str)
    assert ref.startswith(f"aml://artifactId/ExperimentRun/dcid.{run.id}/")
    stored = ref.split(f"dcid.{run.id}/", 1)[1]
    assert stored in run.get_file_names()
    assert stored.endswith(".png")
    out = run.download_file(stored, tmp_path / "back.png")
    assert Path(out).read_bytes() == png.read_bytes()


def test_log_image_from_a_matplotlib_figure(workspace: Workspace, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = _start(workspace)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([1, 2, 3], [3, 1, 2])
    run.log_image("fig", plot=fig)
    run.log_image("fig", plot=plt)  # the pyplot module works too (its current figure)
    plt.close(fig)
    refs = run.get_metrics()["fig"]
    assert isinstance(refs, list) and len(refs) == 2
    for ref in refs:
        stored = ref.split(f"dcid.{run.id}/", 1)[1]
        assert stored in run.get_file_names()
        data = Path(run.download_file(stored, tmp_path / Path(stored).name)).read_bytes()
        assert data.startswith(PNG_MAGIC)
    assert run.get_metric_series()["fig"] == refs


def test_log_image_needs_exactly_one_source(workspace: Workspace, tmp_path: Path) -> None:
    run = _start(workspace)
    with pytest.raises(InvalidInputError, match="exactly one"):
        run.log_image("img")
    with pytest.raises(InvalidInputError):
        run.log_image("img", path=str(tmp_path / "missing.png"))
    assert "img" not in run.get_metrics()


# -- tags and properties ----------------------------------------------------------------------------
def test_tags_merge_and_remove(workspace: Workspace) -> None:
    run = _start(workspace)
    run.tag("flag")
    run.tag("stage", "dev")
    run.set_tags({"lr": "0.1", "stage": "prod"})
    assert run.get_tags() == {"flag": None, "stage": "prod", "lr": "0.1"}
    run.set_tags({"new": "1"})  # merge: the others are untouched
    assert run.get_tags() == {"flag": None, "stage": "prod", "lr": "0.1", "new": "1"}
    run.remove_tags(["flag", "lr"])
    assert run.get_tags() == {"stage": "prod", "new": "1"}
    assert Run.get(workspace, run.id).tags == {"stage": "prod", "new": "1"}
    with pytest.raises(InvalidInputError):
        run.set_tags(["not", "a", "dict"])  # type: ignore[arg-type]


def test_tags_can_change_after_the_run_ended(workspace: Workspace) -> None:
    run = _start(workspace)
    run.complete()
    run.tag("reviewed", "yes")
    assert run.get_tags() == {"reviewed": "yes"}


def test_properties_are_immutable(workspace: Workspace) -> None:
    run = _start(workspace)
    run.add_properties({"dataset": "v1", "n": 3})
    assert run.get_properties() == {"dataset": "v1", "n": "3"}
    with pytest.raises(ConflictError, match="dataset"):
        run.add_properties({"dataset": "v2"})
    run.add_properties({"dataset": "v1"})  # the same value again is fine
    run.add_properties({})
    assert run.get_properties() == {"dataset": "v1", "n": "3"}
    assert run.get_details()["properties"] == {"dataset": "v1", "n": "3"}


# -- children ---------------------------------------------------------------------------------------
def test_child_runs_start_running_and_are_listed(workspace: Workspace) -> None:
    parent = _start(workspace, "family")
    child = parent.child_run(name="child-a")
    other = parent.child_run(run_id="my-own-child-id")
    grandchild = child.child_run()
    assert child.get_status() == "Running"
    assert child.name == "child-a"
    assert other.id == "my-own-child-id"
    assert child.parent is not None and child.parent.id == parent.id
    assert grandchild.parent is not None and grandchild.parent.id == child.id
    assert parent.parent is None
    assert {r.id for r in parent.get_children()} == {child.id, other.id}
    assert {r.id for r in parent.get_children(recursive=True)} == {child.id, other.id, grandchild.id}
    assert list(grandchild.get_children()) == []
    # Each child has its own metrics; recursive get_metrics keys them by run id.
    parent.log("p", 1)
    child.log("c", 2)
    grandchild.log("g", 3)
    everything = parent.get_metrics(recursive=True)
    assert everything[parent.id] == {"p": 1}
    assert everything[child.id] == {"c": 2}
    assert everything[grandchild.id] == {"g": 3}
    assert everything[other.id] == {}


def test_child_run_as_context_manager(workspace: Workspace) -> None:
    parent = _start(workspace)
    with parent.child_run() as child:
        child.log("x", 1)
    assert child.get_status() == "Completed"
    assert parent.get_status() == "Running"


def test_create_children_tags_them(workspace: Workspace) -> None:
    parent = _start(workspace)
    kids = parent.create_children(count=3)
    assert sorted(k.get_tags()["azureml.batch_child_number"] for k in kids) == ["0", "1", "2"]
    with pytest.raises(InvalidInputError, match="100"):
        parent.create_children(count=101)


# -- lifecycle --------------------------------------------------------------------------------------
def test_with_statement_completes_the_run(workspace: Workspace) -> None:
    exp = Experiment(workspace, "ctx")
    with exp.start_logging() as run:
        assert run.get_status() == "Running"
        run.log("inside", 1)
    assert run.get_status() == "Completed"
    assert Run.get(workspace, run.id).get_status() == "Completed"
    assert run.get_metrics() == {"inside": 1}


def test_with_statement_fails_the_run_on_exception(workspace: Workspace) -> None:
    exp = Experiment(workspace, "ctx")
    with pytest.raises(ZeroDivisionError), exp.start_logging() as run:
        run.log("before", 1)
        1 / 0  # noqa: B018
    details = Run.get(workspace, run.id).get_details()
    assert details["status"] == "Failed"
    assert "ZeroDivisionError" in details["error"]["message"]
    assert run.get_metrics() == {"before": 1}  # what was logged before the error is kept
    with pytest.raises(RunFailedError, match="ZeroDivisionError"):
        run.wait_for_completion(raise_on_error=True)
    assert run.wait_for_completion(raise_on_error=False)["status"] == "Failed"


def test_fail_and_cancel_of_interactive_runs(workspace: Workspace) -> None:
    exp = Experiment(workspace, "ends")
    failed = exp.start_logging()
    failed.fail(error_details="bad data", error_code="DataError")
    details = failed.get_details()
    assert details["status"] == "Failed"
    assert details["error"]["message"] == "bad data"
    assert details["error"]["code"] == "DataError"
    canceled = exp.start_logging()
    canceled.cancel()
    assert canceled.get_status() == "Canceled"
    # A terminal status is final: completing afterwards does not change it.
    canceled.complete()
    assert Run.get(workspace, canceled.id).get_status() == "Canceled"


def test_get_details_keys_while_running_and_after(workspace: Workspace) -> None:
    run = _start(workspace)
    details = run.get_details()
    assert details["runId"] == run.id
    assert details["status"] == "Running"
    assert details["target"] == "local"
    assert "endTimeUtc" not in details
    for key in ("startTimeUtc", "properties", "logFiles", "submittedBy", "runDefinition"):
        assert key in details, key
    assert details["logFiles"] == {}
    assert "error" not in details
    start = _parse_utc(details["startTimeUtc"])
    run.complete()
    done = run.get_details()
    assert done["status"] == "Completed"
    end = _parse_utc(done["endTimeUtc"])
    assert end >= start
    assert _parse_utc(done["startTimeUtc"]) == start


# -- files ------------------------------------------------------------------------------------------
def test_upload_and_download_files(workspace: Workspace, tmp_path: Path) -> None:
    run = _start(workspace)
    src = tmp_path / "local.txt"
    src.write_text("payload")
    run.upload_file("outputs/a.txt", str(src))
    run.upload_file("notes/b.bin", io.BytesIO(b"\x00\x01\x02"))
    folder = tmp_path / "folder"
    (folder / "deep").mkdir(parents=True)
    (folder / "x.txt").write_text("x")
    (folder / "deep" / "y.txt").write_text("y")
    uploaded = run.upload_folder("data", folder)
    assert sorted(uploaded) == ["data/deep/y.txt", "data/x.txt"]
    assert sorted(run.get_file_names()) == sorted(
        ["outputs/a.txt", "notes/b.bin", "data/x.txt", "data/deep/y.txt"]
    )

    # download_file: to a path, into a folder, and by default into the cwd under the base name.
    target = tmp_path / "dl"
    target.mkdir()
    assert Path(run.download_file("outputs/a.txt", target / "renamed.txt")).read_text() == "payload"
    assert Path(run.download_file("notes/b.bin", target)).read_bytes() == b"\x00\x01\x02"
    with pytest.raises(NotFoundError, match="get_file_names"):
        run.download_file("outputs/missing.txt", target / "m.txt")

    # download_files: keeps the prefix by default, drops it with append_prefix=False.
    got = run.download_files(prefix="data", output_directory=tmp_path / "all")
    assert sorted(Path(p).relative_to(tmp_path / "all").as_posix() for p in got) == [
        "data/deep/y.txt",
        "data/x.txt",
    ]
    assert (tmp_path / "all" / "data" / "deep" / "y.txt").read_text() == "y"
    got = run.download_files(prefix="data/", output_directory=tmp_path / "flat", append_prefix=False)
    assert (tmp_path / "flat" / "deep" / "y.txt").read_text() == "y"
    assert len(got) == 2


def test_upload_rejects_bad_paths(workspace: Workspace, tmp_path: Path) -> None:
    run = _start(workspace)
    src = tmp_path / "f.txt"
    src.write_text("x")
    with pytest.raises(InvalidInputError, match="not a file"):
        run.upload_file("a.txt", tmp_path / "missing.txt")
    with pytest.raises(InvalidInputError, match="not a folder"):
        run.upload_folder("d", tmp_path / "missing")
    for escaping in ("../evil.txt", "/abs.txt", "a/../../evil.txt"):
        with pytest.raises(InvalidInputError, match="relative path"):
            run.upload_file(escaping, src)
    assert run.get_file_names() == []


# -- lookups ----------------------------------------------------------------------------------------
def test_unknown_run_id_raises_run_not_found(workspace: Workspace) -> None:
    exp = Experiment(workspace, "lookup")
    with pytest.raises(RunNotFound, match="no-such-run"):
        Run(exp, "no-such-run")
    with pytest.raises(RunNotFound):
        workspace.get_run("no-such-run")
    with pytest.raises(RunNotFound):
        Run.get(workspace, "no-such-run")


def test_get_runs_newest_first_top_level_unless_include_children(workspace: Workspace) -> None:
    exp = Experiment(workspace, "listing")
    first = exp.start_logging()
    second = exp.start_logging()
    child = second.child_run()
    third = exp.start_logging()
    assert [r.id for r in exp.get_runs()] == [third.id, second.id, first.id]
    with_children = [r.id for r in exp.get_runs(include_children=True)]
    assert sorted(with_children) == sorted([first.id, second.id, third.id, child.id])
    assert with_children.index(third.id) < with_children.index(second.id) < with_children.index(first.id)
    assert [r.id for r in Run.list(exp)] == [third.id, second.id, first.id]
    first.complete()
    assert [r.id for r in exp.get_runs(status="Completed")] == [first.id]
    # Runs of another experiment do not show up.
    Experiment(workspace, "other").start_logging()
    assert len(list(exp.get_runs())) == 3
    # run numbers grow per experiment
    assert first.number < second.number < third.number


@pytest.mark.parametrize(
    "name", ["", "has space", "-leading-dash", "_leading", "x" * 256, "semi;colon", 42, None]
)
def test_experiment_name_validation(workspace: Workspace, name: object) -> None:
    with pytest.raises(InvalidInputError, match="not allowed"):
        Experiment(workspace, name)  # type: ignore[arg-type]


def test_experiment_names_that_are_allowed(workspace: Workspace) -> None:
    for name in ("train-digits", "exp_1", "A" * 36):
        assert Experiment(workspace, name).name == name
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert Experiment(workspace, "ab").name == "ab"
        assert Experiment(workspace, "x" * 255).name == "x" * 255
    assert len(caught) == 2
    assert {e.name for e in Experiment.list(workspace)} >= {"train-digits", "exp_1", "ab"}


# -- input both databases must treat alike -------------------------------------------------------------
# PostgreSQL refuses NUL characters, over-long keys and integers beyond its column types where SQLite
# would store them; runyard refuses them up front on every database, with a message, not a raw SQL error.
@pytest.mark.parametrize("step", [2**63, -(2**63) - 1, 2**70], ids=["2^63", "-2^63-1", "2^70"])
def test_step_outside_the_stored_range_is_rejected(workspace: Workspace, step: int) -> None:
    run = _start(workspace)
    with pytest.raises(InvalidInputError, match="outside the range"):
        run.log("acc", 0.5, step=step)
    run.log("acc", 0.5, step=2**63 - 1)
    run.log("acc", 0.25, step=-(2**63))
    run.log("acc", 0.125, step=2**40)  # beyond 32 bits: steps are 64-bit on both databases
    assert run.get_metrics() == {"acc": [0.5, 0.25, 0.125]}


def test_nul_characters_are_rejected(workspace: Workspace) -> None:
    run = _start(workspace)
    with pytest.raises(MetricValueError, match="NUL"):
        run.log("text", "a\x00b")
    with pytest.raises(MetricValueError, match="NUL"):
        run.log("bad\x00name", 1)
    with pytest.raises(MetricValueError, match="NUL"):
        run.log_row("row", col="x\x00")
    with pytest.raises(InvalidInputError, match="NUL"):
        run.tag("k", "v\x00")
    with pytest.raises(InvalidInputError, match="NUL"):
        run.add_properties({"k\x00": "v"})
    run.log("text", "fine ✓")
    run.flush()
    assert run.get_metrics() == {"text": "fine ✓"}
    assert run.get_tags() == {} and run.get_properties() == {}


def test_over_long_keys_names_and_ids_are_rejected(workspace: Workspace) -> None:
    exp = Experiment(workspace, "limits")
    run = exp.start_logging()
    with pytest.raises(InvalidInputError, match="1-255 characters"):
        run.tag("k" * 256, "v")
    with pytest.raises(InvalidInputError, match="1-255 characters"):
        run.add_properties({"p" * 256: "v"})
    with pytest.raises(InvalidInputError, match="1-256 characters"):
        run.child_run(name="n" * 257)
    for bad_id in ("r" * 256, "é" * 128, "a/b", "..", ".", "a\\b"):
        with pytest.raises(InvalidInputError, match="Run id"):
            exp.start_logging(run_id=bad_id)
    with pytest.raises(InvalidInputError, match="1-256 characters"):
        run.display_name = "d" * 257
    run.tag("k" * 255, "v" * 5000)  # values have no length limit
    run.add_properties({"p" * 255: "v"})
    child = run.child_run(name="n" * 256, run_id="c" * 255)  # a run id names a folder: 255 bytes
    run.display_name = "d" * 256
    assert Run.get(workspace, child.id).name == "n" * 256
    assert Run.get(workspace, run.id).display_name == "d" * 256
    assert run.get_tags() == {"k" * 255: "v" * 5000}
    assert [r.id for r in run.get_children()] == ["c" * 255]
    child.upload_file("outputs/x.txt", io.BytesIO(b"x"))
    assert child.get_file_names() == ["outputs/x.txt"]


def test_a_row_the_store_refuses_does_not_hold_back_the_others(
    workspace: Workspace, capsys: pytest.CaptureFixture[str]
) -> None:
    """The background writer drops a row the database refuses (here: for a run that does not exist)
    instead of retrying its whole batch forever, which would block every later metric and flush()."""
    from runyard.core import metrics

    run = _start(workspace)
    writer = metrics.writer_for(workspace)
    run.log("before", 1)
    writer.add("no-such-run", "orphan", "scalar", {"value": 1.0, "text": None, "payload": None})
    run.log("after", 2)
    run.flush(timeout_seconds=20)
    assert run.get_metrics() == {"before": 1, "after": 2}
    assert workspace.store.count_metric_rows("no-such-run") == 0
    assert "'orphan'" in capsys.readouterr().err
    run.log("later", 3)
    run.complete()
    assert run.get_metrics()["later"] == 3
