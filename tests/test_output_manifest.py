"""The file manifest of a step output (engine/output_manifest.py, engine/data_paths.py), on real files.

What reuse relies on: two different folders never share a hash; every file is recorded with its size
and sha256; links are recorded as links and never followed; and `verify_output` names the first file
that was deleted, added or changed, reading only files whose size or mtime moved.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from conftest import SourceDir
from runyard.engine.data_paths import describe_output, verify_output
from runyard.engine.output_manifest import BIG_FILE, FileEntry, LinkEntry, OutputManifest, _hash_all, scan
from runyard.errors import ConflictError, InvalidInputError


def stream_hash_before_v3(path: Path) -> str:
    """How engine/data_paths.py hashed an output folder before fingerprint version 3."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        digest.update(file.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def recorded_output(folder: Path, tmp_path: Path, run_id: str = "run-1") -> dict[str, object]:
    """What finish_step records for an output named 'model' of `run_id`."""
    return {
        **describe_output(folder, tmp_path / "manifests" / "model.json"),
        "mode": "mount",
        "output": "model",
        "run_id": run_id,
    }


@pytest.fixture
def output(tmp_path: Path) -> SourceDir:
    return SourceDir(tmp_path / "out").gen(
        {"model.pkl": b"\x80weights" * 100, "metrics/score.json": '{"acc": 0.9}', "README": "hi"}
    )


def test_a_one_file_and_a_two_file_folder_that_collided_before_now_hash_apart(tmp_path: Path) -> None:
    one = SourceDir(tmp_path / "one").gen({"a": b"x\0b\0y"})  # one file whose bytes look like a second file
    two = SourceDir(tmp_path / "two").gen({"a": b"x", "b": b"y"})
    assert stream_hash_before_v3(one.path) == stream_hash_before_v3(two.path)  # the old collision
    assert describe_output(one.path)["hash"] != describe_output(two.path)["hash"]


def test_the_manifest_records_every_file_and_the_hash_covers_path_size_and_sha256(
    output: SourceDir, tmp_path: Path
) -> None:
    described = describe_output(output.path, tmp_path / "m" / "model.json")
    assert described["files"] == 3 and described["size"] == 800 + 12 + 2
    written = json.loads(Path(str(described["manifest"])).read_bytes())
    assert written["version"] == 1
    score = output.path / "metrics" / "score.json"
    assert written["files"]["metrics/score.json"] == {
        "size": 12,
        "sha256": hashlib.sha256(b'{"acc": 0.9}').hexdigest(),
        "mtime_ns": score.stat().st_mtime_ns,
    }
    canonical = {
        "v": 1,
        "files": {rel: {"size": e["size"], "sha256": e["sha256"]} for rel, e in written["files"].items()},
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    assert described["hash"] == hashlib.sha256(text.encode()).hexdigest()
    os.utime(score, ns=(1, 1))  # timestamps are not content ...
    assert describe_output(output.path)["hash"] == described["hash"]
    (output.path / "metrics" / "score.json").rename(output.path / "score.json")  # ... but paths are
    assert describe_output(output.path)["hash"] != described["hash"]


def test_links_are_recorded_as_links_and_their_targets_are_never_read(
    output: SourceDir, tmp_path: Path
) -> None:
    secret = SourceDir(tmp_path / "outside").gen({"secret.txt": "v1", "dir/inner.txt": "x"})
    (output.path / "to_file").symlink_to(secret.path / "secret.txt")
    (output.path / "to_dir").symlink_to(secret.path / "dir", target_is_directory=True)
    (output.path / "dangling").symlink_to("../no/such/file")
    manifest = scan(output.path)
    assert manifest.entries["to_file"] == LinkEntry(str(secret.path / "secret.txt"))
    assert manifest.entries["dangling"] == LinkEntry("../no/such/file")  # as written, not resolved
    assert "to_dir/inner.txt" not in manifest.entries  # a folder link is not walked into
    assert manifest.file_count == 3 and manifest.link_count == 3
    described = describe_output(output.path)
    secret.gen({"secret.txt": "v2, longer"})  # what a link points at is not part of the output
    assert describe_output(output.path)["hash"] == described["hash"]
    (output.path / "to_file").unlink()
    (output.path / "to_file").symlink_to(secret.path / "dir" / "inner.txt")  # but where it points is
    assert describe_output(output.path)["hash"] != described["hash"]


def test_an_untouched_output_verifies(output: SourceDir, tmp_path: Path) -> None:
    assert verify_output(recorded_output(output.path, tmp_path)) is None


def test_a_deleted_file_with_its_folder_kept_is_named(output: SourceDir, tmp_path: Path) -> None:
    recorded = recorded_output(output.path, tmp_path)
    (output.path / "model.pkl").unlink()
    assert verify_output(recorded) == "file model.pkl in output 'model' of run run-1 was deleted"


def test_an_added_file_is_named_and_several_problems_are_counted(output: SourceDir, tmp_path: Path) -> None:
    recorded = recorded_output(output.path, tmp_path)
    output.gen({"extra.txt": "new"})
    assert verify_output(recorded) == "file extra.txt in output 'model' of run run-1 was added"
    (output.path / "metrics" / "score.json").unlink()
    (output.path / "README").write_text("changed")
    assert (
        verify_output(recorded)
        == "file README in output 'model' of run run-1 was changed (and 2 other files)"
    )


def test_a_file_whose_mtime_moved_is_rehashed_and_accepted_only_with_the_same_bytes(
    output: SourceDir, tmp_path: Path
) -> None:
    recorded = recorded_output(output.path, tmp_path)
    model = output.path / "model.pkl"
    os.utime(model, ns=(10**18, 10**18))  # touched: same bytes, new mtime
    assert verify_output(recorded) is None
    model.write_bytes(b"\x80WEIGHTS" * 100)  # same size, other bytes
    assert verify_output(recorded) == "file model.pkl in output 'model' of run run-1 was changed"


def test_a_file_with_its_size_and_mtime_unchanged_is_not_read(output: SourceDir, tmp_path: Path) -> None:
    """The cheap check trusts size + mtime, as the manifest promises: the bytes are not read again. A
    writer that keeps both (same size, mtime set back) is the one case this check does not catch."""
    recorded = recorded_output(output.path, tmp_path)
    model = output.path / "model.pkl"
    before = model.stat()
    model.write_bytes(b"\x80WEIGHTS" * 100)
    os.utime(model, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert verify_output(recorded) is None


def test_a_link_changed_into_a_file_or_retargeted_is_named(output: SourceDir, tmp_path: Path) -> None:
    (output.path / "latest").symlink_to("model.pkl")
    recorded = recorded_output(output.path, tmp_path)
    assert verify_output(recorded) is None
    (output.path / "latest").unlink()
    (output.path / "latest").symlink_to("README")
    assert verify_output(recorded) == "file latest in output 'model' of run run-1 was changed"
    (output.path / "latest").unlink()
    (output.path / "latest").write_bytes((output.path / "model.pkl").read_bytes())
    assert verify_output(recorded) == "file latest in output 'model' of run run-1 was changed"


def test_a_missing_folder_a_missing_or_edited_manifest_and_an_old_record_stop_reuse(
    output: SourceDir, tmp_path: Path
) -> None:
    recorded = recorded_output(output.path, tmp_path)
    manifest_file = Path(str(recorded["manifest"]))
    forged = json.loads(manifest_file.read_bytes())
    forged["files"]["model.pkl"]["sha256"] = "0" * 64  # a job rewrote its run folder's manifest
    manifest_file.write_text(json.dumps(forged))
    assert verify_output(recorded) == (
        f"the file manifest {manifest_file} of output 'model' of run run-1 was changed after the step recorded it"
    )
    manifest_file.write_text('{"version": 99, "files": {}}')
    assert "manifest version 99; this runyard reads version 1" in str(verify_output(recorded))
    manifest_file.unlink()
    assert str(verify_output(recorded)).startswith(
        "the file manifest of output 'model' of run run-1 cannot be read"
    )
    old = {"path": str(output.path), "size": 814, "files": 3, "hash": stream_hash_before_v3(output.path)}
    assert verify_output(old) == (
        f"output {output.path} was recorded without a file manifest (by an older runyard), "
        "so its files cannot be checked"
    )
    for child in sorted(output.path.rglob("*"), reverse=True):
        child.rmdir() if child.is_dir() else child.unlink()
    output.path.rmdir()
    assert verify_output(recorded) == f"the folder {output.path} of output 'model' of run run-1 is missing"


def test_a_manifest_round_trips_and_refuses_what_is_not_one(output: SourceDir) -> None:
    manifest = scan(output.path)
    assert OutputManifest.from_json(manifest.to_json()) == manifest
    assert isinstance(manifest.entries["README"], FileEntry)
    for junk in (b"", b"[]", b'{"version": 1}', b'{"version": 1, "files": {"a": {"size": 1}}}'):
        with pytest.raises(ValueError, match="not an output manifest"):
            OutputManifest.from_json(junk)


def test_big_files_hashed_in_threads_and_small_ones_inline_get_the_same_sha256(tmp_path: Path) -> None:
    big = bytes(range(256)) * (BIG_FILE // 256)  # BIG_FILE bytes: at the pool's threshold
    files = {"big-1.bin": big, "big-2.bin": big[::-1], "deep/big-3.bin": big[1:] + b"!", "small.txt": b"s"}
    folder = SourceDir(tmp_path / "out").gen(files)  # type: ignore[arg-type]
    manifest = scan(folder.path)
    assert {rel: e.sha256 for rel, e in manifest.entries.items() if isinstance(e, FileEntry)} == {
        rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()
    }


def test_an_output_folder_replaced_by_a_link_is_refused(output: SourceDir, tmp_path: Path) -> None:
    """Its hash would describe nothing while the next step reads whatever the link points at."""
    recorded = recorded_output(output.path, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    output.path.rename(elsewhere)
    output.path.symlink_to(elsewhere, target_is_directory=True)  # the same files, behind a link
    assert (
        verify_output(recorded)
        == f"the folder {output.path} of output 'model' of run run-1 was replaced by a link"
    )
    with pytest.raises(InvalidInputError, match=f"The output folder {output.path} was replaced by a link"):
        describe_output(output.path)


def test_a_file_that_vanishes_before_it_is_read_gives_a_runyard_error_naming_it(tmp_path: Path) -> None:
    """The race a stray process of the step causes (listed by the walk, deleted before the read), with
    the walk's result written out by hand: the step fails with this sentence, not a bare OSError."""
    gone = tmp_path / "out" / "part-1.txt"
    with pytest.raises(ConflictError, match=f"Output file {gone} could not be read .*No such file"):
        _hash_all({"part-1.txt": (gone, 1)})
