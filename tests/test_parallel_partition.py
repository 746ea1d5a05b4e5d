"""ParallelRunStep partitioning: files and tables cut into mini-batches by v1's rules, corrupt rows and
unreadable files reported (never dropped), the empty-input message, a worker loading its rows, and
datasets (local datastore, S3 through moto, tabular options and transforms) partitioned through the
data layer."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parallel_helpers import driver_settings
from runyard import Workspace
from runyard.data import Dataset, Datastore, DataType
from runyard.engine.graph_parallel import ParallelSettings, parse_mini_batch_size
from runyard.errors import InvalidInputError
from runyard.parallel.partition import MiniBatch, TableCache, load_mini_batch, plan_mini_batches
from s3_fixture import s3_client, s3_datastore


@dataclasses.dataclass
class Entry:
    """The job file's input entry as the driver hands it over (any object with these attributes)."""

    name: str
    kind: str
    path: str | None
    source: str = "path"


def settings(kind: str, size: Any = None) -> ParallelSettings:
    return driver_settings(
        kind=kind, mini_batch_size=parse_mini_batch_size(size, kind), run_invocation_timeout=60
    )


def write(root: Path, files: dict[str, str | bytes]) -> Path:
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    return root


def rows_csv(start: int, count: int) -> str:
    return "id,name\n" + "".join(f"{i},name{i:04d}\n" for i in range(start, start + count))


# -- file inputs ------------------------------------------------------------------------------------
def test_files_sorted_by_relative_path_in_batches_of_mini_batch_size(tmp_path: Path) -> None:
    root = write(
        tmp_path / "in",
        {"b/2.txt": "", "b/10.txt": "", "a.txt": "", ".hidden": "", "c/d/e.png": b"\x89PNG", "z.txt": "z"},
    )
    os.symlink(tmp_path / "gone", root / "broken")
    plan = plan_mini_batches([Entry("images", "file", str(root))], settings("file", 4), tmp_path / "cache")

    rel = [[os.path.relpath(f, root) for f in mb.files] for mb in plan.mini_batches]
    # hidden files are items too; the order is by relative path, so resuming cuts the same batches
    assert rel == [[".hidden", "a.txt", "b/10.txt", "b/2.txt"], ["c/d/e.png", "z.txt"]]
    assert [(mb.id, mb.items, mb.kind, mb.input, mb.rows) for mb in plan.mini_batches] == [
        (0, 4, "file", "images", None),
        (1, 2, "file", "images", None),
    ]
    # the broken link is reported, not skipped: it counts as a failed item
    assert [(p.item, p.items) for p in plan.problems] == [(str(root / "broken"), 1)]
    assert "broken link" in plan.problems[0].message
    assert plan.total_items == 7
    assert load_mini_batch(plan.mini_batches[1], TableCache()) == [
        str(root / "c/d/e.png"),
        str(root / "z.txt"),
    ]

    again = plan_mini_batches([Entry("images", "file", str(root))], settings("file", 4), tmp_path / "cache")
    assert again.mini_batches == plan.mini_batches
    assert [MiniBatch.from_json(mb.to_json()) for mb in plan.mini_batches] == plan.mini_batches


def test_inputs_are_pooled_never_mixed_and_a_single_file_is_an_input(tmp_path: Path) -> None:
    write(tmp_path / "one", {f"{i}.txt": "" for i in range(3)})
    single = write(tmp_path / "two", {"only.bin": "x"}) / "only.bin"
    plan = plan_mini_batches(
        [Entry("one", "file", str(tmp_path / "one")), Entry("two", "file", str(single))],
        settings("file", 2),
        tmp_path / "cache",
    )
    assert [(mb.id, mb.input, len(mb.files)) for mb in plan.mini_batches] == [
        (0, "one", 2),
        (1, "one", 1),
        (2, "two", 1),
    ]
    assert plan.mini_batches[2].files == (str(single),)


def test_empty_input_names_the_input_and_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match=r"input 'images' \(.*empty\) holds no files or rows"):
        plan_mini_batches(
            [Entry("images", "file", str(tmp_path / "empty"))], settings("file"), tmp_path / "c"
        )
    write(tmp_path / "tables", {"a.csv": "", "b.csv": "id,name\n"})  # an empty file and a header only
    with pytest.raises(InvalidInputError, match=r"input 'rows' .* holds no files or rows"):
        plan_mini_batches(
            [Entry("rows", "tabular", str(tmp_path / "tables"))], settings("tabular"), tmp_path / "c"
        )
    with pytest.raises(InvalidInputError, match=r"Input 'images': .*missing does not exist"):
        plan_mini_batches(
            [Entry("images", "file", str(tmp_path / "missing"))], settings("file"), tmp_path / "c"
        )


# -- tabular inputs -------------------------------------------------------------------------------
def test_tabular_sizes_follow_the_file_bytes_and_never_cross_files(tmp_path: Path) -> None:
    root = write(tmp_path / "in", {"a.csv": rows_csv(0, 300), "b.csv": rows_csv(300, 30)})
    a_bytes = (root / "a.csv").stat().st_size
    pq.write_table(pa.table({"id": list(range(330, 380))}), root / "c.parquet")

    plan = plan_mini_batches(
        [Entry("rows", "tabular", str(root))], settings("tabular", "1KB"), tmp_path / "cache"
    )

    per_batch_a = max(1, 300 * 1024 // a_bytes)  # v1: rows * size // file_bytes
    batches_a = [mb for mb in plan.mini_batches if mb.files == (str(root / "a.csv"),)]
    assert [mb.rows for mb in batches_a][:2] == [(0, per_batch_a), (per_batch_a, 2 * per_batch_a)]
    assert sum(mb.items for mb in batches_a) == 300 and batches_a[-1].rows[1] == 300  # type: ignore[index]
    # every mini-batch reads one file; rows of b.csv and c.parquet are never put together with a.csv's
    assert all(len(mb.files) == 1 for mb in plan.mini_batches)
    assert {mb.files[0] for mb in plan.mini_batches} == {
        str(root / n) for n in ("a.csv", "b.csv", "c.parquet")
    }
    assert plan.total_items == 380 and not plan.problems

    cache = TableCache(maxsize=1)
    frames = [load_mini_batch(mb, cache) for mb in plan.mini_batches]
    ids = [int(i) for frame in frames for i in frame["id"]]
    assert ids == list(range(380)) and list(frames[0].columns) == ["id", "name"]
    assert len(cache) == 1  # the worker's cache keeps its last few table files

    whole = plan_mini_batches(
        [Entry("rows", "tabular", str(root / "a.csv"))], settings("tabular", "1MB"), tmp_path
    )
    assert [mb.rows for mb in whole.mini_batches] == [(0, 300)]


def test_corrupt_rows_are_failed_records_with_line_numbers_and_good_rows_stay(tmp_path: Path) -> None:
    text = "id,name\n1,a\n2\n3,c\n4,d,extra\n5,e\n"
    root = write(
        tmp_path / "in", {"bad.csv": text, "good.csv": rows_csv(10, 3), "zz.parquet": b"not parquet"}
    )
    plan = plan_mini_batches([Entry("rows", "tabular", str(root))], settings("tabular", 10), tmp_path / "c")

    bad = str(root / "bad.csv")
    corrupt = [(p.item, p.items) for p in plan.problems if p.item.startswith(bad)]
    assert corrupt == [(f"{bad}:3", 1), (f"{bad}:5", 1)]
    assert "expected 2 fields, got 3" in plan.problems[1].message
    unreadable = [p for p in plan.problems if p.item == str(root / "zz.parquet")]
    assert len(unreadable) == 1 and "not a readable parquet file" in unreadable[0].message
    # the good rows of bad.csv are still processed, and the worker sees the same rows the planner counted
    rows = [load_mini_batch(mb) for mb in plan.mini_batches if mb.files[0] == bad]
    assert [int(i) for frame in rows for i in frame["id"]] == [1, 3, 5]
    assert plan.total_items == 3 + 3 + 2 + 1


def test_an_unreadable_table_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    root = write(
        tmp_path / "in",
        {"a.csv": rows_csv(0, 5), "binary.csv": b"id,name\n1,\xff\xfe\n", "locked.csv": rows_csv(5, 5)},
    )
    (root / "locked.csv").chmod(0)
    plan = plan_mini_batches([Entry("rows", "tabular", str(root))], settings("tabular"), tmp_path / "c")
    problems = {Path(p.item).name: p.message for p in plan.problems}
    assert "not a readable CSV file" in problems.pop("binary.csv")
    if os.geteuid() != 0:  # root reads any file
        assert "cannot be read: Permission denied" in problems.pop("locked.csv")
    assert problems == {}
    assert plan.total_items == sum(mb.items for mb in plan.mini_batches) + len(plan.problems)


# -- datasets through the data layer ---------------------------------------------------------------
def _datastore_root(ws: Workspace) -> tuple[Datastore, Path]:
    store = Datastore.get(ws, "workspaceblobstore")
    root = Path(store.backend().local_path("") or "")
    root.mkdir(parents=True, exist_ok=True)
    return store, root


def test_registered_file_dataset_files_are_used_in_place(workspace: Workspace, tmp_path: Path) -> None:
    store, root = _datastore_root(workspace)
    write(root, {f"digits/{i}.png": b"png" for i in range(5)} | {"digits/notes.txt": "x"})
    ds = Dataset.File.from_files((store, "digits/*.png")).register(workspace, "digits")
    entry = Entry("digits", "file", None, source="dataset")

    plan = plan_mini_batches(
        [entry], settings("file", 2), tmp_path / "cache", datasets={"digits": ds.take(4)}
    )
    assert [[Path(f).name for f in mb.files] for mb in plan.mini_batches] == [
        ["0.png", "1.png"],
        ["2.png", "3.png"],
    ]
    assert all(Path(f).parent == root / "digits" for mb in plan.mini_batches for f in mb.files)
    assert not (tmp_path / "cache").exists()  # nothing copied for a local datastore

    with pytest.raises(InvalidInputError, match=r"no dataset of that name \(its inputs: other\)"):
        plan_mini_batches([entry], settings("file"), tmp_path / "cache", datasets={"other": ds})


def test_tabular_dataset_keeps_its_options_and_per_file_transforms(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    store, root = _datastore_root(sqlite_workspace)
    write(root, {"t/a.csv": "id;score\n1;0,5\n2;x;y\n3;1\n", "t/b.csv": "id;score\n4;2\n"})
    ds = Dataset.Tabular.from_delimited_files(
        (store, "t/*.csv"), separator=";", include_path=True, set_column_types={"id": DataType.to_string()}
    ).drop_columns("score")
    plan = plan_mini_batches(
        [Entry("rows", "tabular", None, "dataset")], settings("tabular"), tmp_path / "cache", {"rows": ds}
    )
    # the ragged line of a.csv is a failed record; each file became its own parquet copy with the options
    assert [(p.item, p.items) for p in plan.problems] == [("t/a.csv:3", 1)]
    assert [(mb.rows, mb.items) for mb in plan.mini_batches] == [((0, 2), 2), ((0, 1), 1)]
    frames = [load_mini_batch(mb) for mb in plan.mini_batches]
    assert list(frames[0].columns) == ["Path", "id"]
    assert [(p.rsplit("/", 1)[-1], i) for f in frames for p, i in zip(f["Path"], f["id"], strict=True)] == [
        ("a.csv", "1"),
        ("a.csv", "3"),
        ("b.csv", "4"),
    ]
    assert plan.notes and "stored as parquet" in plan.notes[0]


def test_tabular_dataset_with_a_whole_table_transform_is_materialised_once(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    store, root = _datastore_root(sqlite_workspace)
    write(root, {"t/a.csv": rows_csv(0, 40), "t/b.csv": rows_csv(40, 40)})
    ds = Dataset.Tabular.from_delimited_files((store, "t/*.csv")).skip(10).take(50)
    plan = plan_mini_batches(
        [Entry("rows", "tabular", None, "dataset")],
        settings("tabular", "300"),
        tmp_path / "cache",
        {"rows": ds},
    )
    frames = [load_mini_batch(mb) for mb in plan.mini_batches]
    assert [int(i) for f in frames for i in f["id"]] == list(range(10, 60))
    assert len(plan.mini_batches) > 1 and plan.total_items == 50
    assert "transform skip needs the whole table" in plan.notes[0]

    plain = Dataset.Tabular.from_delimited_files((store, "t/*.csv"))  # default options: read in place
    in_place = plan_mini_batches(
        [Entry("rows", "tabular", None, "dataset")], settings("tabular"), tmp_path / "c2", {"rows": plain}
    )
    assert [mb.files[0] for mb in in_place.mini_batches] == [str(root / "t/a.csv"), str(root / "t/b.csv")]
    assert not in_place.notes


def test_remote_dataset_files_are_fetched_into_the_cache(
    sqlite_workspace: Workspace, s3_bucket: tuple[str, str], tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    store = s3_datastore(sqlite_workspace, "lake", endpoint, bucket)
    client = s3_client(endpoint)
    for i in range(3):
        client.put_object(Bucket=bucket, Key=f"data/img/{i}.txt", Body=f"image {i}".encode())
    ds = Dataset.File.from_files((store, "img/*.txt"))
    plan = plan_mini_batches(
        [Entry("img", "file", None, "dataset")], settings("file", 2), tmp_path / "cache", {"img": ds}
    )
    files = [Path(f) for mb in plan.mini_batches for f in mb.files]
    assert [f.relative_to(tmp_path / "cache" / "img") for f in files] == [
        Path(f"files/{i}.txt") for i in range(3)
    ]
    assert [f.read_text() for f in files] == ["image 0", "image 1", "image 2"]


def test_plan_key_is_the_same_work_in_another_folder(tmp_path: Path) -> None:
    """A resumed step run has a new working folder (and cache): the same work must keep its key."""
    for run in ("run1", "run2"):
        write(tmp_path / run / "in", {f"{i}.csv": rows_csv(i * 10, 10) for i in range(3)})

    def plan(run: str, size: Any = "1KB") -> Any:
        entry = Entry("rows", "tabular", str(tmp_path / run / "in"))
        return plan_mini_batches([entry], settings("tabular", size), tmp_path / run / "cache")

    first, second = plan("run1"), plan("run2")
    assert first.mini_batches != second.mini_batches  # other paths...
    assert first.key() == second.key()  # ...the same work
    assert plan("run1", "100").key() != first.key()
    write(tmp_path / "run2" / "in", {"3.csv": rows_csv(30, 1)})
    assert plan("run2").key() != first.key()


def test_outside_a_job_a_dataset_input_says_what_is_missing(tmp_path: Path) -> None:
    entry = Entry("digits", "file", None, source="dataset")
    with pytest.raises(
        InvalidInputError, match=r"no dataset of that name \(its inputs: none\).*as_named_input"
    ):
        plan_mini_batches([entry], settings("file"), tmp_path / "cache")


def test_parquet_dataset_in_place_and_json_lines_converted(
    sqlite_workspace: Workspace, tmp_path: Path
) -> None:
    store, root = _datastore_root(sqlite_workspace)
    (root / "p").mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3]}), root / "p" / "a.parquet")
    write(root, {"j/a.jsonl": '{"id": 4}\n{"id": 5}\n'})
    parquet = Dataset.Tabular.from_parquet_files((store, "p/*.parquet"))
    lines = Dataset.Tabular.from_json_lines_files((store, "j/*.jsonl"))
    entries = [Entry("p", "tabular", None, "dataset"), Entry("j", "tabular", None, "dataset")]
    plan = plan_mini_batches(entries, settings("tabular"), tmp_path / "cache", {"p": parquet, "j": lines})
    assert [(mb.input, Path(mb.files[0]).parent) for mb in plan.mini_batches] == [
        ("p", root / "p"),
        ("j", tmp_path / "cache" / "j" / "tables"),
    ]
    assert [int(i) for mb in plan.mini_batches for i in load_mini_batch(mb)["id"]] == [1, 2, 3, 4, 5]
