"""Symbolic links a job leaves in its run folder never reach outside it (issue 10, High 4).

A real `runyard server --auth` serves a workspace whose run folder holds links to a file and a folder
outside the workspace, a dangling link, a link into another run, and a run folder that is itself a
link. Reads (API and studio) and writes (upload, append) through any of them are refused; links that
stay inside the run's folder still work; listings never show links.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runyard import Experiment, Workspace
from runyard.server.auth import create_token
from server_process import ServerProcess, running_server

SECRET = b"root:x:0:0:secret-outside-the-workspace\n"


@dataclass
class Linked:
    ws: Workspace
    server: ServerProcess
    run_id: str
    outside: Path
    read: httpx.Client
    write: httpx.Client


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Linked]:
    root = tmp_path_factory.mktemp("links")
    outside = root / "outside"
    (outside / "etc").mkdir(parents=True)
    (outside / "passwd").write_bytes(SECRET)
    (outside / "etc" / "passwd").write_bytes(SECRET)
    ws = Workspace.create(root / "ws")
    other = Experiment(ws, "other").start_logging()
    other.upload_file("outputs/theirs.txt", io.BytesIO(b"another run's file"))
    run = Experiment(ws, "links").start_logging()
    run.upload_file("outputs/real.txt", io.BytesIO(b"real"))
    folder = ws.artifacts.local_path(f"runs/{run.id}/outputs")
    os.symlink(outside / "passwd", folder / "link.txt")  # what a job can leave behind
    os.symlink(outside / "etc", folder / "dirlink")
    os.symlink(outside / "created.txt", folder / "dangling.txt")
    os.symlink(ws.artifacts.local_path(f"runs/{other.id}/outputs"), folder / "sibling")
    os.symlink("real.txt", folder / "inside.txt")  # stays in the run's folder: fine
    os.symlink(outside, ws.artifacts.local_path("runs/fake"))  # a "run folder" that is a link
    run.complete()
    other.complete()
    read, _ = create_token(ws.store, "read")  # type: ignore[arg-type]
    write, _ = create_token(ws.store, "write")  # type: ignore[arg-type]
    with running_server(ws.path, root / "server.log", auth=True) as server:
        clients = [
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {t}"}, timeout=60)
            for t in (read, write)
        ]
        try:
            yield Linked(ws, server, run.id, outside, *clients)
        finally:
            for client in clients:
                client.close()


def refused(response: httpx.Response) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "symbolic link" in response.text and SECRET not in response.content


ESCAPES = ["outputs/link.txt", "outputs/dirlink/passwd", "outputs/sibling/theirs.txt", "outputs/dangling.txt"]


@pytest.mark.parametrize("name", ESCAPES)
def test_the_api_refuses_to_read_through_links_that_leave_the_run(linked: Linked, name: str) -> None:
    path = f"runs/{linked.run_id}/{name}"
    refused(linked.read.get("/api/v1/artifacts/file", params={"path": path}))
    refused(linked.read.get("/api/v1/artifacts/file", params={"path": path}, headers={"Range": "bytes=0-3"}))
    refused(linked.read.get("/api/v1/artifacts/stat", params={"path": path}))


def test_listings_leave_links_out_and_do_not_descend_into_them(linked: Linked) -> None:
    listed = linked.read.get("/api/v1/artifacts", params={"prefix": f"runs/{linked.run_id}"})
    assert listed.status_code == 200
    assert [p for p in listed.json() if p.startswith("outputs/")] == ["outputs/real.txt"]
    refused(linked.read.get("/api/v1/artifacts", params={"prefix": f"runs/{linked.run_id}/outputs/dirlink"}))
    refused(linked.read.get("/api/v1/artifacts", params={"prefix": "runs/fake"}))
    refused(linked.read.get("/api/v1/artifacts/file", params={"path": "runs/fake/passwd"}))


def test_a_link_inside_the_run_folder_still_reads(linked: Linked) -> None:
    inside = linked.read.get(
        "/api/v1/artifacts/file", params={"path": f"runs/{linked.run_id}/outputs/inside.txt"}
    )
    assert inside.status_code == 200 and inside.content == b"real"


@pytest.mark.parametrize("name", ESCAPES)
def test_the_studio_refuses_links_that_leave_the_run(linked: Linked, name: str) -> None:
    for download in (False, True):
        page = linked.read.get(f"/runs/{linked.run_id}/files/{name}", params={"download": download})
        refused(page)
    live = linked.read.get("/studio/api/live", params={"log_run": linked.run_id, "log": name})
    refused(live)


def test_the_studio_files_tab_and_zip_hold_no_linked_content(linked: Linked) -> None:
    page = linked.read.get(f"/runs/{linked.run_id}", params={"tab": "files"})
    assert page.status_code == 200 and "real.txt" in page.text
    assert "link.txt" not in page.text and "dirlink" not in page.text and "secret-outside" not in page.text
    archive = linked.read.get(f"/runs/{linked.run_id}/download.zip")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as zipped:
        names = zipped.namelist()
        assert f"{linked.run_id}/outputs/real.txt" in names
        assert all(SECRET not in zipped.read(n) for n in names)
    assert not any("link" in n or "sibling" in n for n in names)


def test_writes_through_links_are_refused_and_touch_nothing_outside(linked: Linked) -> None:
    run = f"runs/{linked.run_id}/outputs"
    refused(linked.write.put("/api/v1/artifacts/file", params={"path": f"{run}/dangling.txt"}, content=b"x"))
    refused(
        linked.write.put("/api/v1/artifacts/file", params={"path": f"{run}/dirlink/new.txt"}, content=b"x")
    )
    refused(linked.write.put("/api/v1/artifacts/file", params={"path": f"{run}/link.txt"}, content=b"x"))
    refused(
        linked.write.put("/api/v1/artifacts/file", params={"path": f"{run}/sibling/theirs.txt"}, content=b"x")
    )
    for name in ("link.txt", "dirlink/passwd", "dangling.txt"):
        appended = linked.write.post(
            "/api/v1/artifacts/append",
            params={"path": f"{run}/{name}", "offset": len(SECRET)},
            content=b"evil",
        )
        refused(appended)
    assert not (linked.outside / "created.txt").exists()
    assert not (linked.outside / "etc" / "new.txt").exists()
    assert (linked.outside / "passwd").read_bytes() == SECRET
    assert (linked.outside / "etc" / "passwd").read_bytes() == SECRET
    other_file = next(linked.ws.artifacts.local_path("runs").glob("*/outputs/theirs.txt"))
    assert other_file.read_bytes() == b"another run's file"
    linked.server.check_healthy()  # refusals are answers, not server errors
