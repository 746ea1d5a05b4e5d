"""The server moves files with constant memory and checks tokens before reading bodies (issue 10,
Medium 9), measured on a real `runyard server --auth` process with psutil."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psutil
import pytest

from conftest import wait_for
from runyard import Workspace
from runyard.server.auth import create_token
from server_process import ServerProcess, running_server

MIB = 1024 * 1024
SIZE = 160 * MIB


@dataclass
class Served:
    ws: Workspace
    server: ServerProcess
    token: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.server.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=120
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("streaming")
    ws = Workspace.create(root / "ws")
    token, _ = create_token(ws.store, "write")  # type: ignore[arg-type]
    with running_server(ws.path, root / "server.log", auth=True) as server:
        yield Served(ws, server, token)


class PeakRss:
    """Samples a process's resident memory every 10 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.idle = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.idle) / MIB


def _pieces(total: int, seed: bytes) -> Iterator[bytes]:
    block = hashlib.sha256(seed).digest() * (MIB // 32)
    for _ in range(total // MIB):
        yield block


def test_a_large_upload_and_download_do_not_grow_the_server(served: Served) -> None:
    assert served.server.proc is not None
    expected = hashlib.sha256()
    for piece in _pieces(SIZE, b"up"):
        expected.update(piece)
    with served.client() as client:
        client.get("/api/v1/experiments")  # warm up the routes before measuring
        with PeakRss(served.server.proc.pid) as upload:
            put = client.put(
                "/api/v1/artifacts/file", params={"path": "big/model.bin"}, content=_pieces(SIZE, b"up")
            )
        assert put.status_code == 204, put.text
        got = hashlib.sha256()
        with (
            PeakRss(served.server.proc.pid) as download,
            client.stream("GET", "/api/v1/artifacts/file", params={"path": "big/model.bin"}) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-length"] == str(SIZE)
            for chunk in response.iter_bytes():
                got.update(chunk)
        tail = client.get(
            "/api/v1/artifacts/file",
            params={"path": "big/model.bin"},
            headers={"Range": f"bytes={SIZE - 5}-"},
        )
    assert got.hexdigest() == expected.hexdigest()
    assert tail.status_code == 206 and tail.headers["content-range"] == f"bytes {SIZE - 5}-{SIZE - 1}/{SIZE}"
    assert tail.content == b"".join(_pieces(MIB, b"up"))[-5:]
    # buffering whole would add at least SIZE (160 MiB); streaming stays within a few MiB of chunks
    assert upload.growth_mib < 48, f"upload grew the server by {upload.growth_mib:.0f} MiB"
    assert download.growth_mib < 48, f"download grew the server by {download.growth_mib:.0f} MiB"


def _raw(served: Served, request: bytes, body: bytes = b"", close_early: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as sock:
        sock.sendall(request + body)
        if close_early:
            return b""
        try:
            return sock.recv(4096)
        except TimeoutError:
            return b"(no answer in 10 s: the server waits for the body)"


@pytest.mark.parametrize("auth", ["", "Authorization: Bearer ry_000000000000_notarealtokenatallxxxxx\r\n"])
@pytest.mark.parametrize(
    "route", ["POST /api/v1/metrics", "POST /api/v1/runs", "PUT /api/v1/artifacts/file?path=x.bin"]
)
def test_a_request_without_a_valid_token_is_refused_before_its_body_is_read(
    served: Served, route: str, auth: str
) -> None:
    head = (
        f"{route} HTTP/1.1\r\nHost: 127.0.0.1:{served.server.port}\r\n{auth}"
        "Content-Type: application/json\r\nContent-Length: 50000000\r\n\r\n"
    ).encode()
    answer = _raw(served, head)  # not one byte of the announced 50 MB is sent
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


def test_an_upload_cut_off_midway_leaves_nothing_behind(served: Served) -> None:
    folder = served.ws.artifacts.local_path("cut")
    head = (
        f"PUT /api/v1/artifacts/file?path=cut/part.bin HTTP/1.1\r\nHost: 127.0.0.1:{served.server.port}\r\n"
        f"Authorization: Bearer {served.token}\r\nContent-Length: {8 * MIB}\r\n\r\n"
    ).encode()
    _raw(served, head, b"x" * MIB, close_early=True)
    wait_for(lambda: not folder.exists() or not any(folder.iterdir()), timeout=10)
    time.sleep(0.5)
    assert not (folder / "part.bin").exists()
    assert not folder.exists() or list(folder.iterdir()) == []  # the temporary file is gone too
