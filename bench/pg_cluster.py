"""A throwaway PostgreSQL 15 cluster for the benchmarks, started as tests/conftest.py starts one (as user
postgres when root, trust auth on 127.0.0.1, a free port), with an empty database `bench`."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def installed() -> bool:
    return (PG_BIN / "initdb").exists()


@contextlib.contextmanager
def postgres_cluster(*, fsync: bool = True) -> Iterator[str]:
    """Yields the URI of the empty database; the cluster is stopped and removed afterwards. fsync=False
    (`-F`) measures the client and server work without the disk's flushes."""
    root = Path(tempfile.mkdtemp(prefix="runyard-bench-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data, pg_ctl = root / "data", str(PG_BIN / "pg_ctl")
    try:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "runyard"],
            check=True,
            capture_output=True,
        )
        options = f"-k {root} -h 127.0.0.1 -p {port}" + ("" if fsync else " -F")
        start = [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
        subprocess.run([*as_postgres, *start], check=True, capture_output=True)
        import psycopg

        with psycopg.connect(f"postgresql://runyard@127.0.0.1:{port}/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        yield f"postgresql://runyard@127.0.0.1:{port}/bench"
    finally:
        subprocess.run(
            [*as_postgres, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)
