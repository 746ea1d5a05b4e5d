"""A 1 GiB artifact up and down through the `mlflow` client and runyard's MLflow artifact proxy, with the
server's memory watched the whole time.

MLflow's client uploads a file in ONE streamed PUT and downloads it in one streamed GET, so the server
must pass the bytes through without holding them: the upload is written piece by piece into a temporary
file (ArtifactStore.writer), the download is served 1 MiB at a time. The bound asserted on the server's
resident memory, 250 MB of growth over its idle size, is a quarter of the file: buffering the file (or a
large part of it) anywhere in the server would cross it, while what a streaming server legitimately adds
(the threadpool's stacks, allocator slack, a few MiB of socket and chunk buffers) stays far below. The
file's page cache is the kernel's, not the process's, so it does not count. The bytes are checked by
their sha256 at the end.

The file is sparse with random blocks at scattered offsets: fast to create, yet a part written at the
wrong place or dropped changes the digest.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from runyard import Workspace
from server_process import ServerProcess, running_server

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

SIZE = 1024**3
GROWTH_LIMIT = 250 * 1024**2


class PeakRss:
    """Polls a process's resident memory in a thread; `peak` is the highest value seen."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("mlflow-large")
    ws = Workspace.create(root / "ws" / ".runyard")
    with running_server(ws.path, root / "server.log") as server:
        yield server


def _sparse_file(path: Path) -> str:
    """SIZE bytes: holes, with 64 random 1 MiB blocks spread over the file; returns the sha256."""
    with path.open("wb") as fh:
        fh.truncate(SIZE)
        for i in range(64):
            fh.seek(i * (SIZE // 64) + i * 4099)
            fh.write(os.urandom(1024 * 1024))
    return _sha256(path)


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def test_one_gib_up_and_down_with_flat_server_memory(
    server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "600")
    mlflow.set_tracking_uri(server.url)
    src = tmp_path / "big.bin"
    digest = _sparse_file(src)
    assert server.proc is not None
    with mlflow.start_run() as active:
        run_id = active.info.run_id
    client = MlflowClient()
    client.log_text(run_id, "warm", "warm.txt")  # the upload path's modules are loaded before the baseline
    baseline = psutil.Process(server.proc.pid).memory_info().rss

    started = time.monotonic()
    with PeakRss(server.proc.pid) as up:
        client.log_artifact(run_id, str(src), artifact_path="data")
    uploaded = time.monotonic()
    stored = Workspace.get(server.workspace).artifacts.local_path(f"runs/{run_id}/data/big.bin")
    assert stored.stat().st_size == SIZE
    src.unlink()  # the disk holds at most two copies at a time

    with PeakRss(server.proc.pid) as down:
        back = Path(client.download_artifacts(run_id, "data/big.bin", str(tmp_path / "back")))
    downloaded = time.monotonic()

    assert back.stat().st_size == SIZE
    assert _sha256(back) == digest
    growth = max(up.peak, down.peak) - baseline
    assert growth < GROWTH_LIMIT, (
        f"the server's RSS grew by {growth / 1024**2:.0f} MiB moving a {SIZE / 1024**3:.0f} GiB file "
        f"(upload peak {up.peak / 1024**2:.0f} MiB, download peak {down.peak / 1024**2:.0f} MiB, "
        f"baseline {baseline / 1024**2:.0f} MiB, up {uploaded - started:.1f} s, down {downloaded - uploaded:.1f} s)"
    )
    server.check_healthy()
