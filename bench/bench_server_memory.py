"""The server's peak memory while it moves large files: 4 clients download a 512 MiB file and 4 upload
one, all at once, against a real `runyard server --auth` (issue 10, Medium 9; target: under 200 MiB
above idle).

The server's resident set size (psutil) is sampled every 10 ms from before the first request until the
last transfer ends; idle is measured after a warm-up request. Every download is checked by sha256 and
every upload by size, so a fast but wrong transfer fails the benchmark.

    python bench/bench_server_memory.py [--mib 512] [--clients 4]
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from bench_server import free_port, wait_http

from runyard import Workspace
from runyard.server.auth import create_token

MIB = 1024 * 1024
BLOCK = hashlib.sha256(b"runyard").digest() * (MIB // 32)  # 1 MiB, the same bytes every time


def pieces(mib: int) -> Iterator[bytes]:
    for _ in range(mib):
        yield BLOCK


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)


def measure(mib: int, clients: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="runyard-bench-mem-") as tmp:
        ws = Workspace.create(Path(tmp) / "ws")
        token, _ = create_token(ws.store, "write")  # type: ignore[arg-type]
        source = ws.artifacts.local_path("big/source.bin")
        source.parent.mkdir(parents=True)
        with source.open("wb") as fh:
            for piece in pieces(mib):
                fh.write(piece)
        expected = hashlib.sha256(source.read_bytes()).hexdigest()
        port = free_port()
        log = (Path(tmp) / "server.log").open("wb")
        argv = [sys.executable, "-m", "runyard", "-w", str(ws.path), "server", "--auth", "--port", str(port)]
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}
        errors: list[str] = []
        try:
            wait_http(f"{url}/health", server)
            with httpx.Client(base_url=url, headers=headers) as warm:  # routes and imports loaded
                warm.get("/api/v1/artifacts", params={"prefix": "big"}).raise_for_status()
                warm.put(
                    "/api/v1/artifacts/file", params={"path": "warm.bin"}, content=b"x"
                ).raise_for_status()
            time.sleep(0.5)
            idle = psutil.Process(server.pid).memory_info().rss
            sampler = Sampler(server.pid)
            sampler.start()

            def download() -> None:
                digest = hashlib.sha256()
                with (
                    httpx.Client(base_url=url, headers=headers, timeout=600) as client,
                    client.stream("GET", "/api/v1/artifacts/file", params={"path": "big/source.bin"}) as r,
                ):
                    r.raise_for_status()
                    for chunk in r.iter_bytes():
                        digest.update(chunk)
                if digest.hexdigest() != expected:
                    errors.append("a download came back different")

            def upload(index: int) -> None:
                with httpx.Client(base_url=url, headers=headers, timeout=600) as client:
                    path = f"big/upload-{index}.bin"
                    client.put(
                        "/api/v1/artifacts/file", params={"path": path}, content=pieces(mib)
                    ).raise_for_status()
                if ws.artifacts.size(path) != mib * MIB:
                    errors.append(f"upload {index} stored the wrong size")

            threads = [threading.Thread(target=download) for _ in range(clients)]
            threads += [threading.Thread(target=upload, args=(i,)) for i in range(clients)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            seconds = time.perf_counter() - start
            sampler.done.set()
            sampler.join()
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        if errors:
            raise SystemExit("; ".join(errors))
        moved = 2 * clients * mib
        return [
            f"Server memory, {clients} downloads + {clients} uploads of {mib} MiB at once "
            f"({moved / 1024:.1f} GiB moved in {seconds:.1f} s):",
            f"- idle RSS: {idle / MIB:.0f} MiB",
            f"- peak RSS: {sampler.peak / MIB:.0f} MiB ({(sampler.peak - idle) / MIB:.0f} MiB above idle; target < 200)",
        ]


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    return measure(args.mib, args.clients)


if __name__ == "__main__":
    print("\n".join(main()))
