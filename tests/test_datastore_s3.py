"""Datastores on S3, against moto in server mode on 127.0.0.1 (tests/s3_fixture.py).

Registration with an endpoint and credentials (kept out of the database), uploads, listings, downloads,
v1's overwrite rules, the version-keyed read cache, the environment overriding the secrets file, an
unreachable endpoint failing fast with its address, and atomicity: a transfer cut off midway by the
network (a real TCP proxy that drops the connection) leaves no partial object and no partial file.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import free_port
from runyard import Workspace
from runyard.data.datastore import Datastore
from runyard.data.secrets import env_name
from runyard.errors import DataAccessError
from s3_fixture import S3_KEY, S3_SECRET, s3_client, s3_datastore


def register(ws: Workspace, name: str, endpoint: str, bucket: str, **extra: object) -> Datastore:
    """s3_fixture.s3_datastore, with extra register_fsspec options (config_kwargs=...) when given."""
    if not extra:
        return s3_datastore(ws, name, endpoint, bucket)  # type: ignore[no-any-return]
    options: dict[str, object] = {
        "key": S3_KEY,
        "secret": S3_SECRET,
        "client_kwargs": {"endpoint_url": endpoint},
    }
    options.update(extra)
    return Datastore.register_fsspec(ws, name, f"s3://{bucket}/data", **options)


def test_upload_list_download_and_overwrite_on_s3(
    workspace: Workspace, s3_bucket: tuple[str, str], tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    endpoint, bucket = s3_bucket
    store = register(workspace, "raw", endpoint, bucket)
    assert store.datastore_type == "fsspec" and endpoint in store.backend().url
    record = workspace.store.get_datastore("raw")
    assert record.secret_names == ("key", "secret") and S3_SECRET not in json.dumps(record.options)

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.csv").write_text("x\n1\n")
    (src / "sub" / "b.csv").write_text("x\n2\n")
    store.upload(src, target_path="in", show_progress=False)
    keys = sorted(o["Key"] for o in s3_client(endpoint).list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["data/in/a.csv", "data/in/sub/b.csv"]
    listed = store.backend().list_files("in")
    assert [(f.path, f.size) for f in listed] == [("in/a.csv", 4), ("in/sub/b.csv", 4)]
    assert all(f.version_tag for f in listed)  # the ETag: the hash cache keys remote files on it
    assert store.backend().list_files("in/a.csv")[0].path == "in/a.csv"
    assert store.backend().list_files("nothing/here") == []

    (src / "a.csv").write_text("x\n9\n")
    store.upload(src, target_path="in", show_progress=False)
    assert "2 of 2 files were already on datastore 'raw'" in capsys.readouterr().err
    out = tmp_path / "out"
    assert store.download(out, prefix="in", show_progress=False) == 2
    assert (out / "in" / "a.csv").read_text() == "x\n1\n"
    store.upload(src, target_path="in", overwrite=True, show_progress=False)
    assert store.download(out, prefix="in", show_progress=False) == 0
    assert store.download(out, prefix="in", overwrite=True, show_progress=False) == 2
    assert (out / "in" / "a.csv").read_text() == "x\n9\n"


def test_fetch_reads_an_unchanged_file_from_the_cache(
    sqlite_workspace: Workspace, s3_bucket: tuple[str, str]
) -> None:
    endpoint, bucket = s3_bucket
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="data/f.txt", Body=b"first")
    backend = register(sqlite_workspace, "raw", endpoint, bucket).backend()
    first = backend.fetch("f.txt")
    assert first.read_bytes() == b"first" and first.is_relative_to(sqlite_workspace.path / "cache")
    stamp = first.stat().st_mtime_ns
    again = backend.fetch("f.txt")
    assert again == first and again.stat().st_mtime_ns == stamp  # not downloaded again
    client.put_object(Bucket=bucket, Key="data/f.txt", Body=b"second")
    assert backend.fetch("f.txt").read_bytes() == b"second"  # a new ETag is a new cache entry
    with pytest.raises(DataAccessError, match=r"'gone\.txt' is not on datastore s3://"):
        backend.fetch("gone.txt")


def test_the_environment_wins_over_the_secrets_file(
    sqlite_workspace: Workspace, s3_bucket: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, bucket = s3_bucket
    s3_client(endpoint).put_object(Bucket=bucket, Key="data/f.txt", Body=b"ok")
    # moto checks the access key's shape only in the signature; a wrong secret file value is overridden
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    store = Datastore.register_fsspec(
        sqlite_workspace,
        "envstore",
        f"s3://{bucket}/data",
        client_kwargs={"endpoint_url": endpoint},
        key="AKIAWRONG",
    )
    monkeypatch.setenv(env_name("envstore", "key"), S3_KEY)
    monkeypatch.setenv(env_name("envstore", "secret"), S3_SECRET)
    backend = store.backend()
    assert backend._options["key"] == S3_KEY and backend._options["secret"] == S3_SECRET  # type: ignore[attr-defined]
    assert backend.fetch("f.txt").read_bytes() == b"ok"


def test_an_unreachable_endpoint_fails_fast_and_names_it(sqlite_workspace: Workspace, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    store = register(sqlite_workspace, "down", closed, "bucket")
    started = time.monotonic()
    with pytest.raises(DataAccessError, match=rf"endpoint {closed}"):
        store.download(tmp_path / "out", show_progress=False)
    assert time.monotonic() - started < 15

    silent = socket.socket()  # accepts connections and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    try:
        mute = f"http://127.0.0.1:{silent.getsockname()[1]}"
        slow = register(sqlite_workspace, "mute", mute, "bucket", config_kwargs={"read_timeout": 0.25})
        started = time.monotonic()
        with pytest.raises(DataAccessError, match=rf"endpoint {mute}"):
            slow.backend().list_files()
        assert time.monotonic() - started < 30
    finally:
        silent.close()


class CuttingProxy:
    """A TCP proxy to the S3 server that drops a connection once `limit` bytes went either way: a
    network failure in the middle of a request or response body."""

    def __init__(self, target: str, limit: int) -> None:
        self.target = ("127.0.0.1", int(target.rsplit(":", 1)[1]))
        self.limit = limit
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, client, upstream), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, *both: socket.socket) -> None:
        sent = 0
        try:
            while chunk := src.recv(65536):
                if sent + len(chunk) > self.limit:
                    dst.sendall(chunk[: self.limit - sent])
                    break
                dst.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        for sock in both:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def cutting_proxy(s3_server: str) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(s3_server, limit=256 * 1024)
    yield proxy
    proxy.close()


def test_a_transfer_cut_midway_leaves_no_partial_file(
    sqlite_workspace: Workspace, s3_bucket: tuple[str, str], cutting_proxy: CuttingProxy, tmp_path: Path
) -> None:
    endpoint, bucket = s3_bucket
    big = b"0123456789abcdef" * (128 * 1024)  # 2 MiB: far more than the proxy lets through
    client = s3_client(endpoint)
    client.put_object(Bucket=bucket, Key="data/big.bin", Body=big)
    client.put_object(Bucket=bucket, Key="data/small.txt", Body=b"small")
    store = register(sqlite_workspace, "cut", cutting_proxy.url, bucket)

    out = tmp_path / "out"
    with pytest.raises(DataAccessError, match=rf"endpoint {cutting_proxy.url}"):
        store.download(out, show_progress=False)
    on_disk = [p for p in [*out.rglob("*"), *(sqlite_workspace.path / "cache").rglob("*")] if p.is_file()]
    assert all(p.read_bytes() in (big, b"small") for p in on_disk), on_disk  # whole files or none
    assert not any(p.name == "big.bin" for p in on_disk)

    src = tmp_path / "src"
    src.mkdir()
    (src / "upload.bin").write_bytes(big)
    with pytest.raises(DataAccessError, match=r"upload\.bin"):
        store.upload(src, target_path="up", show_progress=False)
    listed = client.list_objects_v2(Bucket=bucket, Prefix="data/up/")
    assert listed.get("KeyCount", 0) == 0  # never a partial object
