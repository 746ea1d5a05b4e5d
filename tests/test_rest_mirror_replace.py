"""The mirror sync of RestArtifactStore against a real `runyard server` on 127.0.0.1.

A file that grows in place (a log) goes as appends of the new bytes; a file that is replaced (written
aside and os.replace'd, as logs/sys/progress.json is every second) is another file, with a new inode:
its bytes after the old size do not continue the server's copy, so it is sent whole. Appending it at the
old size tore the server's progress.json (`...}0,"failures":[]}`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runyard import Workspace
from runyard.store.rest_artifacts import RestArtifactStore
from server_process import ServerProcess, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("mirror-server")
    ws = Workspace.create(root / "ws" / ".runyard")
    with running_server(ws.path, root / "server.log") as server:
        yield server


class Requests:
    """The requests a client sends, seen by an httpx event hook (nothing of runyard is replaced)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)


def mirror_store(server: ServerProcess, tmp_path: Path) -> tuple[RestArtifactStore, Requests]:
    remote = RestArtifactStore(server.url, None, tmp_path / "mirror")
    seen = Requests()
    remote.http.client.event_hooks = {"request": [seen], "response": []}
    return remote, seen


def replace(path: Path, text: str) -> None:
    """Write aside and rename over, as the driver writes progress.json."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_a_replaced_file_is_sent_whole(server: ServerProcess, tmp_path: Path) -> None:
    remote, seen = mirror_store(server, tmp_path)
    rel = "runs/replaced/logs/sys/progress.json"
    local = remote.local_path(rel)
    local.parent.mkdir(parents=True)
    replace(local, json.dumps({"done": 1, "failures": []}))
    assert remote.sync("runs/replaced") == 1
    # longer than before, and a new file: appending its tail at the old size would tear the copy
    for done in (10, 100, 1000):
        replace(local, json.dumps({"done": done, "total": 1000, "failures": []}))
        assert remote.sync("runs/replaced") == 1
        assert json.loads(remote.read_bytes(rel)) == {"done": done, "total": 1000, "failures": []}
    assert "/api/v1/artifacts/append" not in seen.paths
    assert remote.sync("runs/replaced") == 0  # nothing changed: nothing sent


def test_a_file_growing_in_place_goes_as_appends(server: ServerProcess, tmp_path: Path) -> None:
    remote, seen = mirror_store(server, tmp_path)
    rel = "runs/grown/azureml-logs/70_driver_log.txt"
    local = remote.local_path(rel)
    local.parent.mkdir(parents=True)
    local.write_text("one\n")
    assert remote.sync("runs/grown") == 1
    with local.open("a") as fh:
        fh.write("two\n")
    assert remote.sync("runs/grown") == 1
    assert remote.read_bytes(rel) == b"one\ntwo\n"
    assert seen.paths.count("/api/v1/artifacts/append") == 1
    # then replaced by a longer file: sent whole, not appended
    replace(local, "first line, rewritten\nand more\n")
    assert remote.sync("runs/grown") == 1
    assert remote.read_bytes(rel) == b"first line, rewritten\nand more\n"
    assert seen.paths.count("/api/v1/artifacts/append") == 1
