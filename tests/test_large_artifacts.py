"""Large files between a client and a server: parts, resends, cut-off connections, limits and scope
(issue 10, Medium 9: "A 1.1 GiB output" and the client half of "Whole-file buffering").

Sizes are scaled down: the client sends 5 MiB parts (RUNYARD_UPLOAD_PART_BYTES), the server takes files
up to 48 MiB (RUNYARD_MAX_UPLOAD_BYTES) and one request body up to 6 MiB (RUNYARD_MAX_REQUEST_BYTES, the
stand-in for the old 1 GiB cliff), so a 13 MiB file takes three parts. bench/bench_large_upload.py
moves a real 1.1 GiB file.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import SourceDir, free_port
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.errors import InvalidInputError
from runyard.server.auth import Principal, create_token
from runyard.server.routes_artifacts import _check
from runyard.server.uploads import UPLOADS_DIR, UploadSessions
from runyard.store import ArtifactStore
from runyard.store.rest_artifacts import RestArtifactStore
from runyard.store.rest_store import RestStore
from server_process import ServerProcess, running_server
from store_suite import make_run

MIB = 1024 * 1024
PART = 5 * MIB
LIMIT = 48 * MIB
REQUEST_LIMIT = 6 * MIB


@dataclass
class Served:
    ws: Workspace
    server: ServerProcess
    token: str
    root: Path

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=60
        )

    def artifacts(self, url: str | None = None) -> RestArtifactStore:
        return RestArtifactStore(
            url or self.server.url, self.token, self.root / f"mirror-{time.monotonic_ns()}"
        )

    def stored(self, rel: str) -> Path:
        return self.ws.path / "artifacts" / rel


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("large")
    ws = Workspace.create(root / "ws")
    token, _ = create_token(ws.store, "write")  # type: ignore[arg-type]
    env = {"RUNYARD_MAX_UPLOAD_BYTES": str(LIMIT), "RUNYARD_MAX_REQUEST_BYTES": str(REQUEST_LIMIT)}
    with running_server(ws.path, root / "server.log", auth=True, env=env) as server:
        yield Served(ws, server, token, root)


@pytest.fixture(autouse=True)
def _small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_UPLOAD_PART_BYTES", str(PART))
    monkeypatch.setenv("RUNYARD_SERVER_RETRY_SECONDS", "20")


def _write(path: Path, size: int, seed: bytes) -> str:
    """A file of `size` bytes that differ from part to part (so a misplaced part shows); its sha256."""
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        for i in range(size // MIB):
            piece = i.to_bytes(4, "big") + block[4:]
            fh.write(piece)
            digest.update(piece)
        tail = block[: size % MIB]
        fh.write(tail)
        digest.update(tail)
    return digest.hexdigest()


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


class Proxy:
    """A TCP relay on 127.0.0.1 that counts the requests passing through it and, when `cut_after` is set,
    breaks the first connection that has carried that many bytes to the server (a lost network)."""

    def __init__(
        self,
        upstream_port: int,
        cut_after: int | None = None,
        on_request: Callable[[bytes], None] | None = None,
    ) -> None:
        self.upstream_port, self.cut_after, self.on_request = upstream_port, cut_after, on_request
        self.sent = b""  # request lines seen (the first line of each request, roughly)
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool) -> None:
        carried = 0
        try:
            while data := src.recv(256 * 1024):
                if to_server:
                    for line in data.split(b"\r\n"):
                        if b" HTTP/1.1" in line:
                            self.sent += line + b"\n"
                            if self.on_request:
                                self.on_request(line)
                    carried += len(data)
                    if self.cut_after is not None and self.cuts == 0 and carried > self.cut_after:
                        self.cuts += 1
                        break
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


def test_a_file_larger_than_a_part_arrives_whole_in_parts(served: Served, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    expected = _write(src, 13 * MIB + 123, b"three parts")
    proxy = Proxy(served.server.port)
    try:
        served.artifacts(proxy.url).put_file("runs/big/outputs/model.bin", src)
    finally:
        proxy.close()
    assert _sha(served.stored("runs/big/outputs/model.bin")) == expected
    assert proxy.sent.count(b"PUT /api/v1/artifacts/uploads/") == 3
    assert b"PUT /api/v1/artifacts/file" not in proxy.sent
    leftovers = [p for p in (served.ws.path / "artifacts" / UPLOADS_DIR).rglob("data")]
    assert leftovers == [], "the parts were moved into place, not copied"


def test_client_memory_stays_flat_up_and_down(served: Served, tmp_path: Path) -> None:
    src = tmp_path / "flat.bin"
    expected = _write(src, 40 * MIB, b"flat")
    artifacts = served.artifacts()
    artifacts.put_bytes("runs/flat/warmup.txt", b"warm")  # connect before measuring
    tracemalloc.start()
    try:
        artifacts.put_file("runs/flat/outputs/flat.bin", src)
        _, up_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        artifacts.get_file("runs/flat/outputs/flat.bin", tmp_path / "back.bin")
        _, down_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert _sha(served.stored("runs/flat/outputs/flat.bin")) == expected
    assert _sha(tmp_path / "back.bin") == expected
    # reading the file whole would take 40 MiB; a part is streamed 1 MiB at a time, so is a range
    assert up_peak < 8 * MIB, f"uploading 40 MiB took {up_peak / MIB:.1f} MiB of client memory"
    assert down_peak < 8 * MIB, f"downloading 40 MiB took {down_peak / MIB:.1f} MiB of client memory"


def test_a_file_over_the_servers_limit_is_refused_before_any_byte_is_sent(
    served: Served, tmp_path: Path
) -> None:
    src = tmp_path / "huge.bin"
    with src.open("wb") as fh:
        fh.truncate(LIMIT + 1)  # sparse: no time spent writing it
    proxy = Proxy(served.server.port)
    try:
        with pytest.raises(Exception, match="RUNYARD_MAX_UPLOAD_BYTES") as raised:
            served.artifacts(proxy.url).put_file("runs/huge/outputs/huge.bin", src)
    finally:
        proxy.close()
    assert f"({LIMIT + 1} bytes)" in str(raised.value)
    assert b"PUT " not in proxy.sent, "no part may be sent once the size is known to be too large"
    assert not served.stored("runs/huge/outputs/huge.bin").exists()


def test_a_resent_part_does_not_duplicate_bytes(served: Served) -> None:
    data = b"abcdefghijkl"
    with served.client() as client:
        opened = client.post("/api/v1/artifacts/uploads", params={"path": "runs/resend/x.txt", "size": 12})
        assert opened.status_code == 201, opened.text
        base = f"/api/v1/artifacts/uploads/{opened.json()['id']}"
        for offset, part in [(0, data[:6]), (0, data[:6]), (6, data[6:]), (6, data[6:])]:  # each sent twice
            put = client.put(base, params={"offset": offset}, content=part)
            assert put.status_code == 200, put.text
            assert put.json()["received"] == offset + len(part)
        gap = client.put(base, params={"offset": 20}, content=b"z")
        assert gap.status_code == 409 and "resume from 12" in gap.json()["error"]["message"]
        too_far = client.put(base, params={"offset": 10}, content=b"xyz")
        assert too_far.status_code == 400 and "opened for 12 bytes" in too_far.json()["error"]["message"]
        sha = hashlib.sha256(data).hexdigest()
        done = client.post(f"{base}/complete", params={"sha256": sha})
        again = client.post(f"{base}/complete", params={"sha256": sha})  # its answer was lost: resent
    assert done.status_code == 204 and again.status_code == 204, (done.text, again.text)
    assert served.stored("runs/resend/x.txt").read_bytes() == data


def test_an_incomplete_or_corrupt_upload_is_never_put_in_place(served: Served) -> None:
    with served.client() as client:
        opened = client.post("/api/v1/artifacts/uploads", params={"path": "runs/bad/y.txt", "size": 8})
        base = f"/api/v1/artifacts/uploads/{opened.json()['id']}"
        client.put(base, params={"offset": 0}, content=b"1234")
        early = client.post(f"{base}/complete")
        assert early.status_code == 409 and "holds 4 of 8 bytes" in early.json()["error"]["message"]
        client.put(base, params={"offset": 4}, content=b"5678")
        wrong = client.post(f"{base}/complete", params={"sha256": "0" * 64})
        assert wrong.status_code == 400 and "Upload it again" in wrong.json()["error"]["message"]
        gone = client.get(base)  # a corrupt session is thrown away
    assert gone.status_code == 404
    assert not served.stored("runs/bad/y.txt").exists()


def test_a_connection_cut_mid_part_resumes_without_corrupting_the_file(
    served: Served, tmp_path: Path
) -> None:
    src = tmp_path / "cut.bin"
    expected = _write(src, 13 * MIB, b"cut")
    proxy = Proxy(served.server.port, cut_after=7 * MIB)  # in the middle of the second part
    try:
        served.artifacts(proxy.url).put_file("runs/cut/outputs/cut.bin", src)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert proxy.sent.count(b"PUT /api/v1/artifacts/uploads/") == 4, "the cut part, and only it, was resent"
    assert _sha(served.stored("runs/cut/outputs/cut.bin")) == expected


def test_an_upload_whose_session_the_server_lost_starts_over(served: Served, tmp_path: Path) -> None:
    src = tmp_path / "lost.bin"
    expected = _write(src, 11 * MIB, b"lost")
    sessions = served.ws.path / "artifacts" / UPLOADS_DIR

    def lose_session(line: bytes) -> None:  # before the second part arrives, the session disappears
        if line.startswith(b"PUT /api/v1/artifacts/uploads/") and b"offset=0 " not in line and not lost:
            session = line.split(b"/")[5].split(b"?")[0].decode()
            shutil.rmtree(sessions / session)
            lost.append(session)

    lost: list[str] = []
    proxy = Proxy(served.server.port, on_request=lose_session)
    try:
        served.artifacts(proxy.url).put_file("runs/lost/outputs/lost.bin", src)
    finally:
        proxy.close()
    assert len(lost) == 1
    assert proxy.sent.count(b"POST /api/v1/artifacts/uploads?") == 2, "a second session was opened"
    assert _sha(served.stored("runs/lost/outputs/lost.bin")) == expected


def test_the_mirror_sends_a_grown_file_in_appends_of_one_part(served: Served) -> None:
    artifacts = served.artifacts()
    log = artifacts.local_path("runs/grow/logs/log.bin")
    log.parent.mkdir(parents=True)
    log.write_bytes(b"start\n")
    assert artifacts.sync("runs/grow") == 1
    with log.open("ab") as fh:
        fh.write(os.urandom(12 * MIB))
    assert artifacts.sync("runs/grow") == 1
    assert _sha(served.stored("runs/grow/logs/log.bin")) == _sha(log)


def test_run_tokens_open_and_complete_uploads_only_in_their_run(served: Served) -> None:
    store = RestStore(served.server.url, served.token)
    own, other = make_run(store, "large").run_id, make_run(store, "large").run_id
    run_token = store.create_run_token(own)
    with served.client(run_token) as job, served.client() as writer:
        refused = job.post("/api/v1/artifacts/uploads", params={"path": f"runs/{other}/x.bin", "size": 3})
        assert refused.status_code == 403, refused.text
        reserved = writer.post("/api/v1/artifacts/uploads", params={"path": f"{UPLOADS_DIR}/x", "size": 3})
        assert reserved.status_code == 400, reserved.text
        opened = job.post(
            "/api/v1/artifacts/uploads", params={"path": f"runs/{own}/outputs/x.bin", "size": 3}
        )
        assert opened.status_code == 201, opened.text
        base = f"/api/v1/artifacts/uploads/{opened.json()['id']}"
        # another token cannot see, feed or finish this job's session
        assert writer.put(base, params={"offset": 0}, content=b"abc").status_code == 404
        assert writer.post(f"{base}/complete").status_code == 404
        assert job.put(base, params={"offset": 0}, content=b"abc").status_code == 200
        assert job.post(f"{base}/complete").status_code == 204
    assert served.stored(f"runs/{own}/outputs/x.bin").read_bytes() == b"abc"


def test_the_final_path_is_checked_again_at_completion(served: Served) -> None:
    """A folder swapped for a link that leaves the run while the parts were sent is refused at the end."""
    with served.client() as client:
        opened = client.post(
            "/api/v1/artifacts/uploads", params={"path": "runs/swap/outputs/z.bin", "size": 3}
        )
        base = f"/api/v1/artifacts/uploads/{opened.json()['id']}"
        assert client.put(base, params={"offset": 0}, content=b"abc").status_code == 200
        outside = served.root / "outside"
        outside.mkdir()
        served.stored("runs/swap").mkdir(parents=True)
        served.stored("runs/swap/outputs").symlink_to(outside)
        done = client.post(f"{base}/complete")
    assert done.status_code == 400 and "symbolic link" in done.json()["error"]["message"]
    assert list(outside.iterdir()) == []


def test_abandoned_sessions_are_swept(tmp_path: Path) -> None:
    artifacts = ArtifactStore(str(tmp_path / "artifacts"))
    sessions = UploadSessions(artifacts)
    who = Principal(scope="admin")  # a server without --auth
    old = sessions.create("runs/a/old.bin", 10, who)["id"]
    fresh = sessions.create("runs/a/new.bin", 10, who)["id"]
    day_ago = time.time() - 25 * 3600
    for path in [sessions.base / old, *(sessions.base / old).iterdir()]:
        os.utime(path, (day_ago, day_ago))
    assert sessions.sweep() == 1
    assert not (sessions.base / old).exists() and (sessions.base / fresh).exists()
    with pytest.raises(InvalidInputError, match="not an artifact path"):
        _check(None, who, f"{UPLOADS_DIR}/{fresh}/data", write=False)  # type: ignore[arg-type]


def test_a_step_output_over_the_request_limit_no_longer_fails_the_run(
    served: Served, source_dir: SourceDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported failure, scaled down: a script in server mode writes an output larger than one request
    may carry; the run completes and the server holds the output byte for byte."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    with served.client() as client:  # the old cliff: the whole file in one request is refused
        whole = client.put(
            "/api/v1/artifacts/file", params={"path": "runs/cliff/a.bin"}, content=b"x" * (13 * MIB)
        )
    assert whole.status_code == 413 and "upload session" in whole.json()["error"]["message"]
    source_dir.gen(
        {
            "train.py": """
                import hashlib, os
                os.makedirs("outputs", exist_ok=True)
                data = b"".join(hashlib.sha256(str(i).encode()).digest() * 32768 for i in range(13))
                open("outputs/model.bin", "wb").write(data)
                print("SHA", hashlib.sha256(data).hexdigest())
            """
        }
    )
    ws = Workspace.get(served.server.url, token=served.token)
    run = Experiment(ws, "large-output").submit(ScriptRunConfig(source_dir, "train.py"))
    details = run.wait_for_completion(raise_on_error=False)
    log = served.stored(f"runs/{run.id}/azureml-logs/70_driver_log.txt").read_text()
    assert details["status"] == "Completed", (details, log)
    stored = served.stored(f"runs/{run.id}/outputs/model.bin")
    assert stored.stat().st_size == 13 * MIB
    assert f"SHA {_sha(stored)}" in log
