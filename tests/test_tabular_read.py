"""The tabular reading layer on real files: formats, v1's options, transforms, writers and its errors."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from runyard.data.data_type import DataType, convert_column
from runyard.data.tabular_read import (
    apply_transforms,
    read_table,
    rows_needed,
    table_to_pandas,
    write_csv_files,
    write_parquet_files,
)
from runyard.errors import InvalidInputError

CSV = {"type": "delimited", "separator": ",", "header": True, "infer_column_types": True}


def write(path: Path, text: str, encoding: str = "utf8") -> tuple[Path, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path, path.name


def test_csv_types_are_inferred(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.csv", "id,score,name,day\n1,0.5,ann,2024-01-02\n2,1.5,bob,2024-01-03\n")]
    table = read_table(files, CSV, include_path=False, partition_format=None, set_column_types=None)
    assert table.column_names == ["id", "score", "name", "day"]
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("score").type == pa.float64()
    assert table.schema.field("name").type == pa.string()
    assert pa.types.is_date(table.schema.field("day").type) or pa.types.is_timestamp(
        table.schema.field("day").type
    )
    assert table.column("name").to_pylist() == ["ann", "bob"]


def test_infer_column_types_false_keeps_text(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.csv", "id,score\n1,0.5\n2,1.5\n")]
    table = read_table(files, {**CSV, "infer_column_types": False}, False, None, None)
    assert table.column("id").to_pylist() == ["1", "2"]
    assert table.column("score").type == pa.string()


def test_set_column_types_converts_and_nulls_what_does_not_convert(tmp_path: Path) -> None:
    text = "n,f,b,d,s\n1,1.5,true,03/01/2024,7\nx,oops,no,not a date,8\n"
    files = [write(tmp_path / "a.csv", text)]
    types = {
        "n": "int",
        "f": DataType.to_float(),
        "b": DataType.to_bool(),
        "d": DataType.to_datetime(["%d/%m/%Y"]),
    }
    table = read_table(files, {**CSV, "infer_column_types": False}, False, None, {**types, "s": "string"})
    assert table.column("n").to_pylist() == [1, None]
    assert table.column("f").to_pylist() == [1.5, None]
    assert table.column("b").to_pylist() == [True, False]
    assert table.column("d").to_pylist() == [datetime(2024, 1, 3), None]
    assert table.column("s").to_pylist() == ["7", "8"]


def test_set_column_types_missing_column_names_the_columns(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.csv", "id,score\n1,0.5\n")]
    with pytest.raises(InvalidInputError, match=r"'age'.*\['id', 'score'\]"):
        read_table(files, CSV, False, None, {"age": "int"})


@pytest.mark.parametrize(
    ("header", "expected_columns", "rows"),
    [
        (True, ["a", "b"], [1, 3]),
        ("ALL_FILES_HAVE_SAME_HEADERS", ["a", "b"], [1, 3]),
        ("ONLY_FIRST_FILE_HAS_HEADERS", ["a", "b"], [1, None, 3]),  # second file's "a" is data: text -> null
        ("COMBINE_ALL_FILES_HEADERS", ["a", "b", "c"], [1, 3]),
        (False, ["Column1", "Column2"], ["a", "1", "a", "3"]),
    ],
)
def test_header_modes(
    tmp_path: Path, header: object, expected_columns: list[str], rows: list[object]
) -> None:
    one = write(tmp_path / "1.csv", "a,b\n1,2\n")
    two = write(tmp_path / "2.csv", "a,c\n3,4\n" if header == "COMBINE_ALL_FILES_HEADERS" else "a,b\n3,4\n")
    fmt = {**CSV, "header": header}
    if header == "ONLY_FIRST_FILE_HAS_HEADERS":
        table = read_table([one, two], fmt, False, None, {"a": "int"})
    else:
        table = read_table([one, two], fmt, False, None, None)
    assert table.column_names == expected_columns
    first = table.column(expected_columns[0]).to_pylist()
    assert first == rows


def test_header_mode_combine_fills_missing_columns_with_null(tmp_path: Path) -> None:
    files = [write(tmp_path / "1.csv", "a,b\n1,2\n"), write(tmp_path / "2.csv", "a,c\n3,4\n")]
    table = read_table(files, {**CSV, "header": "COMBINE_ALL_FILES_HEADERS"}, False, None, None)
    assert table.column("b").to_pylist() == [2, None]
    assert table.column("c").to_pylist() == [None, 4]


@pytest.mark.parametrize("separator", ["\t", ";", "|"])
def test_separators(tmp_path: Path, separator: str) -> None:
    files = [write(tmp_path / "a.txt", f"x{separator}y\n1{separator}a b\n")]
    table = read_table(files, {**CSV, "separator": separator}, False, None, None)
    assert table.to_pylist() == [{"x": 1, "y": "a b"}]


def test_empty_values_are_null_unless_empty_as_string(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.csv", "k,v\n1,\n2,x\n")]
    assert read_table(files, CSV, False, None, None).column("v").to_pylist() == [None, "x"]
    kept = read_table(files, {**CSV, "empty_as_string": True}, False, None, None)
    assert kept.column("v").to_pylist() == ["", "x"]


def test_multi_line_values(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.csv", 'k,v\n1,"two\nlines"\n2,x\n')]
    table = read_table(files, {**CSV, "support_multi_line": True}, False, None, None)
    assert table.column("v").to_pylist() == ["two\nlines", "x"]


def test_two_files_concatenated_with_promoted_types_and_path(tmp_path: Path) -> None:
    one = (write(tmp_path / "a.csv", "id,v\n1,2\n")[0], "raw/a.csv")
    two = (write(tmp_path / "b.csv", "id,v\n3,4.5\n")[0], "raw/b.csv")
    table = read_table([one, two], CSV, include_path=True, partition_format=None, set_column_types=None)
    assert table.column_names == ["Path", "id", "v"]
    assert table.column("Path").to_pylist() == ["raw/a.csv", "raw/b.csv"]
    assert table.column("v").to_pylist() == [2.0, 4.5]


def test_csv_columns_inferred_differently_become_text(tmp_path: Path) -> None:
    one = write(tmp_path / "a.csv", "id,v\n1,2\n")
    two = write(tmp_path / "b.csv", "id,v\n3,abc\n")
    table = read_table([one, two], CSV, False, None, None)
    assert table.column("v").to_pylist() == ["2", "abc"]


def test_parquet_schema_conflict_names_both_files(tmp_path: Path) -> None:
    pq.write_table(pa.table({"v": [1, 2]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"v": ["x"]}), tmp_path / "b.parquet")
    files = [(tmp_path / "a.parquet", "p/a.parquet"), (tmp_path / "b.parquet", "p/b.parquet")]
    with pytest.raises(InvalidInputError, match=r"'p/a.parquet' and 'p/b.parquet' disagree on column 'v'"):
        read_table(files, {"type": "parquet"}, False, None, None)


def test_parquet_files(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"a": [3]}), tmp_path / "2.parquet")
    files = [(tmp_path / "1.parquet", "1.parquet"), (tmp_path / "2.parquet", "2.parquet")]
    table = read_table(files, {"type": "parquet"}, False, None, {"a": "float"})
    assert table.to_pylist() == [{"a": 1.0, "b": "x"}, {"a": 2.0, "b": "y"}, {"a": 3.0, "b": None}]


def test_partition_format_string_and_datetime_columns(tmp_path: Path) -> None:
    files = [
        (write(tmp_path / "x1.csv", "v\n1\n")[0], "sales/Accounts/2019/01/02/data.csv"),
        (write(tmp_path / "x2.csv", "v\n2\n")[0], "sales/HR/2020/12/31/data.csv"),
    ]
    fmt = "/{Department}/{PartitionDate:yyyy/MM/dd}/data.csv"
    table = read_table(files, CSV, include_path=True, partition_format=fmt, set_column_types=None)
    assert table.column_names == ["Path", "v", "Department", "PartitionDate"]
    assert table.column("Department").to_pylist() == ["Accounts", "HR"]
    assert table.column("PartitionDate").to_pylist() == [datetime(2019, 1, 2), datetime(2020, 12, 31)]


def test_partition_format_separate_date_parts_make_one_column(tmp_path: Path) -> None:
    files = [(write(tmp_path / "x.csv", "v\n1\n")[0], "raw/ca/2024/03/part-7.csv")]
    table = read_table(files, CSV, False, "{state}/{year:yyyy}/{month:MM}/*.csv", None)
    assert table.to_pylist() == [{"v": 1, "state": "ca", "year": datetime(2024, 3, 1)}]


def test_partition_format_matching_no_file_is_an_error(tmp_path: Path) -> None:
    files = [(write(tmp_path / "x.csv", "v\n1\n")[0], "raw/x.csv")]
    with pytest.raises(InvalidInputError, match="matches none of the files"):
        read_table(files, CSV, False, "/{year:yyyy}/data.csv", None)


def test_json_lines(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.jsonl", '{"a": 1, "b": "x"}\n{"a": 2}\n')]
    table = read_table(files, {"type": "json_lines", "invalid_lines": "error"}, False, None, None)
    assert table.to_pylist() == [{"a": 1, "b": "x"}, {"a": 2, "b": None}]


def test_json_lines_bad_line_is_named_or_dropped(tmp_path: Path) -> None:
    files = [write(tmp_path / "a.jsonl", '{"a": 1}\n{"a": 2}\n{broken\n{"a": 4}\n')]
    with pytest.raises(InvalidInputError, match=r"'a.jsonl' line 3 is not a JSON object"):
        read_table(files, {"type": "json_lines", "invalid_lines": "error"}, False, None, None)
    table = read_table(files, {"type": "json_lines", "invalid_lines": "drop"}, False, None, None)
    assert table.column("a").to_pylist() == [1, 2, 4]


def test_ragged_csv_names_file_and_line(tmp_path: Path) -> None:
    rows = "".join(f"{i},{i * 2},x\n" for i in range(500))
    files = [write(tmp_path / "bad.csv", "a,b,c\n" + rows + "1,2,3,4\n" + "5,6,7\n")]
    with pytest.raises(
        InvalidInputError, match=r"'bad.csv' line 502 has 4 fields where the lines before have 3"
    ):
        read_table(files, CSV, False, None, None)


def test_undecodable_bytes_name_file_and_encoding(tmp_path: Path) -> None:
    files = [write(tmp_path / "latin.csv", "name\ncafé\n", encoding="latin1")]
    with pytest.raises(InvalidInputError, match=r"'latin.csv' is not valid utf8 text"):
        read_table(files, CSV, False, None, None)
    table = read_table(files, {**CSV, "encoding": "latin1"}, False, None, None)
    assert table.column("name").to_pylist() == ["café"]


def test_no_files_says_so() -> None:
    with pytest.raises(InvalidInputError, match="no files"):
        read_table([], CSV, False, None, None)


def test_limit_reads_only_the_files_it_needs(tmp_path: Path) -> None:
    good = [write(tmp_path / f"{i}.csv", "v\n" + "".join(f"{i}\n" for _ in range(10))) for i in range(2)]
    broken = write(tmp_path / "z.csv", "v\n1,2,3\n")  # would fail if it were read
    table = read_table([*good, broken], CSV, False, None, None, limit=15)
    assert table.column("v").to_pylist() == [0] * 10 + [1] * 5


def test_transforms_skip_take_columns(tmp_path: Path) -> None:
    table = pa.table({"a": list(range(10)), "b": list(range(10)), "c": list(range(10))})
    steps = [
        {"op": "skip", "count": 2},
        {"op": "take", "count": 3},
        {"op": "drop_columns", "columns": ["c", "zz"]},
    ]
    assert apply_transforms(table, steps).to_pydict() == {"a": [2, 3, 4], "b": [2, 3, 4]}
    kept = apply_transforms(table, [{"op": "keep_columns", "columns": ["b", "nope"], "validate": False}])
    assert kept.column_names == ["b"]
    with pytest.raises(InvalidInputError, match=r"\['nope'\]"):
        apply_transforms(table, [{"op": "keep_columns", "columns": ["b", "nope"], "validate": True}])
    assert rows_needed(steps) == 5
    assert (
        rows_needed([{"op": "take", "count": 3}, {"op": "random_split", "percentage": 0.5, "seed": 1}]) == 3
    )
    assert (
        rows_needed([{"op": "random_split", "percentage": 0.5, "seed": 1}, {"op": "take", "count": 3}])
        is None
    )


def test_random_split_partitions_exactly_and_is_deterministic() -> None:
    table = pa.table({"i": list(range(10_000))})
    split = {"op": "random_split", "percentage": 0.3, "seed": 42}
    first = apply_transforms(table, [{**split, "side": "first"}]).column("i").to_pylist()
    second = apply_transforms(table, [{**split, "side": "second"}]).column("i").to_pylist()
    assert sorted(first + second) == list(range(10_000))
    assert not set(first) & set(second)
    assert 2_700 < len(first) < 3_300
    assert apply_transforms(table, [{**split, "side": "first"}]).column("i").to_pylist() == first
    other = apply_transforms(table, [{**split, "seed": 7, "side": "first"}]).column("i").to_pylist()
    assert other != first
    sample = apply_transforms(table, [{"op": "take_sample", "probability": 0.1, "seed": 3}])
    assert 800 < sample.num_rows < 1_200


def test_data_type_conversions_and_specs() -> None:
    assert convert_column(pa.array(["1", " 2 ", "3.5", None]), DataType.to_long()).to_pylist() == [
        1,
        2,
        None,
        None,
    ]
    assert convert_column(pa.array([1.0, 2.5]), "int").to_pylist() == [1, None]
    assert convert_column(pa.array(["1,5", "x"]), DataType.to_float(decimal_mark=",")).to_pylist() == [
        1.5,
        None,
    ]
    assert convert_column(pa.array(["Yes", "0", "maybe"]), DataType.to_bool()).to_pylist() == [
        True,
        False,
        None,
    ]
    iso = convert_column(pa.array(["2024-01-02T03:04:05", None]), DataType.to_datetime())
    assert iso.to_pylist() == [datetime(2024, 1, 2, 3, 4, 5), None]
    mixed = convert_column(pa.array(["2024-01-02", "01/31/2024", "bad"]), "datetime")
    assert mixed.to_pylist() == [datetime(2024, 1, 2), datetime(2024, 1, 31), None]
    assert convert_column(pa.array([1, 2]), DataType.to_string()).to_pylist() == ["1", "2"]
    spec = DataType.to_datetime(["%d/%m/%Y"]).to_spec()
    assert DataType.from_spec(spec) == DataType.to_datetime(["%d/%m/%Y"])
    assert DataType.from_spec("int") == DataType.to_long()
    with pytest.raises(InvalidInputError, match="Unknown column type"):
        DataType.from_spec("decimal")
    with pytest.raises(InvalidInputError, match="to_stream is not supported"):
        DataType.to_stream(workspace=None)


def test_writers_round_trip_atomically(tmp_path: Path) -> None:
    table = pa.table({"a": [1, 2], "when": pa.array([datetime(2024, 1, 1), None], pa.timestamp("us"))})
    csv_files = write_csv_files(table, tmp_path / "csv", separator=";")
    assert [p.name for p in csv_files] == ["part-00000.csv"]
    parse = pacsv.ParseOptions(delimiter=";")
    assert pacsv.read_csv(csv_files[0], parse_options=parse).column("a").to_pylist() == [1, 2]
    parquet_files = write_parquet_files(table, tmp_path / "pq")
    assert pq.read_table(parquet_files[0]).equals(table)
    assert sorted(p.name for p in (tmp_path / "pq").iterdir()) == [
        "part-00000.parquet"
    ]  # no temporaries left
    frame = table_to_pandas(
        read_table([(parquet_files[0], "pq/part-00000.parquet")], {"type": "parquet"}, False, None, None)
    )
    assert list(frame["a"]) == [1, 2]


def test_json_lines_in_another_encoding(tmp_path: Path) -> None:
    path = tmp_path / "u16.jsonl"
    path.write_bytes((json.dumps({"name": "café"}) + "\n").encode("utf-16"))
    table = read_table([(path, "u16.jsonl")], {"type": "json_lines", "encoding": "utf16"}, False, None, None)
    assert table.column("name").to_pylist() == ["café"]


def test_a_type_that_changes_late_in_a_big_file_is_widened(tmp_path: Path) -> None:
    body = "".join(f"{i},x\n" for i in range(300_000))
    files = [write(tmp_path / "late.csv", "a,b\n" + body + "1.5,y\n")]
    assert read_table(files, CSV, False, None, None).column("a").type == pa.float64()
    limited = read_table(files, CSV, False, None, None, limit=10)
    assert limited.column("a").to_pylist()[:3] == [0, 1, 2]


def test_usual_null_spellings_are_null(tmp_path: Path) -> None:
    files = [write(tmp_path / "n.csv", "v,s\n1.5,a\nNA,NULL\n,\n")]
    table = read_table(files, CSV, False, None, None)
    assert table.column("v").to_pylist() == [1.5, None, None]
    assert table.column("s").to_pylist() == ["a", None, None]


def test_empty_part_files_are_skipped(tmp_path: Path) -> None:
    files = [write(tmp_path / "part-0.csv", ""), write(tmp_path / "part-1.csv", "v\n1\n")]
    assert read_table(files, CSV, False, None, None).to_pylist() == [{"v": 1}]
    assert read_table(files[:1], CSV, False, None, None).num_rows == 0


def test_files_after_the_limit_are_never_asked_for(tmp_path: Path) -> None:
    asked: list[str] = []

    def files():  # type: ignore[no-untyped-def]
        for i in range(5):
            asked.append(f"{i}.csv")
            yield write(tmp_path / f"{i}.csv", "v\n1\n2\n")

    assert read_table(files(), CSV, False, None, None, limit=3).num_rows == 3
    assert asked == ["0.csv", "1.csv"]


def test_limit_with_text_columns_skips_later_headers(tmp_path: Path) -> None:
    files = [write(tmp_path / "1.csv", "a,b\n1,2\n"), write(tmp_path / "2.csv", "a,b\n3,4\n5,6\n")]
    table = read_table(files, {**CSV, "infer_column_types": False}, False, None, None, limit=2)
    assert table.to_pylist() == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
