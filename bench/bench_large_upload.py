"""A 1.1 GiB step output through a real `runyard server --auth` (issue 10, Medium 9, "A 1.1 GiB output"):
runyard's client (RestArtifactStore) uploads it in parts and downloads it back, while the resident set
size (psutil) of the client (this process) and of the server are sampled every 10 ms.

The file arrived whole if the server's copy and the downloaded copy have the source's sha256; a run
that passed the old 1 GiB per-file limit would fail here with "Files are limited to ... bytes".

    python bench/bench_large_upload.py [--mib 1126]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
from bench_server import free_port, wait_http

from runyard import Workspace
from runyard.server.auth import create_token
from runyard.store.rest_artifacts import RestArtifactStore

MIB = 1024 * 1024


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.idle = self.peak = self.proc.memory_info().rss
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def stop(self) -> str:
        self.done.set()
        self.join()
        return f"idle {self.idle / MIB:.0f} MiB, peak {self.peak / MIB:.0f} MiB (+{(self.peak - self.idle) / MIB:.0f})"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(MIB):
            digest.update(chunk)
    return digest.hexdigest()


def measure(mib: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="runyard-bench-large-") as tmp:
        ws = Workspace.create(Path(tmp) / "ws")
        token, _ = create_token(ws.store, "write")  # type: ignore[arg-type]
        source = Path(tmp) / "output.bin"
        digest = hashlib.sha256()
        with source.open("wb") as fh:
            for i in range(mib):
                piece = hashlib.sha256(i.to_bytes(4, "big")).digest() * (MIB // 32)
                fh.write(piece)
                digest.update(piece)
        expected = digest.hexdigest()
        port = free_port()
        log = (Path(tmp) / "server.log").open("wb")
        argv = [sys.executable, "-m", "runyard", "-w", str(ws.path), "server", "--auth", "--port", str(port)]
        server = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", server)
            client = RestArtifactStore(f"http://127.0.0.1:{port}", token, Path(tmp) / "mirror")
            client.put_bytes("warm/x.txt", b"warm")  # imports and connections before measuring
            client.get_file("warm/x.txt", Path(tmp) / "warm.txt")
            time.sleep(0.5)
            lines = [
                f"{mib} MiB ({mib / 1024:.2f} GiB), parts of {os.environ.get('RUNYARD_UPLOAD_PART_BYTES') or '64 MiB (default)'}:"
            ]
            for what in ("upload", "download"):
                me, them = Sampler(os.getpid()), Sampler(server.pid)
                me.start()
                them.start()
                start = time.perf_counter()
                if what == "upload":
                    client.put_file("runs/bench/outputs/output.bin", source)
                else:
                    client.get_file("runs/bench/outputs/output.bin", Path(tmp) / "back.bin")
                seconds = time.perf_counter() - start
                lines.append(f"- {what} in {seconds:.1f} s; client {me.stop()}; server {them.stop()}")
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
        stored = ws.artifacts.local_path("runs/bench/outputs/output.bin")
        if sha256(stored) != expected or sha256(Path(tmp) / "back.bin") != expected:
            raise SystemExit("the file did not arrive whole")
        lines.append("- server copy and downloaded copy match the source's sha256")
        return lines


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mib", type=int, default=1126)  # 1.1 GiB
    args = parser.parse_args(argv)
    return measure(args.mib)


if __name__ == "__main__":
    print("\n".join(main()))
