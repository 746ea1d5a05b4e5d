"""S3 for tests: moto's server mode on 127.0.0.1, so s3fs talks real HTTP to a real (fake-AWS) endpoint.

`s3_server` starts one ThreadedMotoServer per test process on a free port and yields its endpoint URL;
`s3_bucket` makes a fresh, empty bucket for one test and yields (endpoint, bucket). Credentials are
moto's dummies, set in the environment so boto3/s3fs never look for a real AWS profile.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

#: Dummy credentials moto accepts; tests pass them to register_fsspec(key=..., secret=...).
S3_KEY = "testing-key"
S3_SECRET = "testing-secret"
S3_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the whole test process; yields "http://127.0.0.1:PORT"."""
    moto_server = pytest.importorskip("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {
        k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    os.environ["AWS_ACCESS_KEY_ID"] = S3_KEY
    os.environ["AWS_SECRET_ACCESS_KEY"] = S3_SECRET
    os.environ["AWS_DEFAULT_REGION"] = S3_REGION
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(s3_server: str) -> tuple[str, str]:
    """A fresh, empty bucket on the moto server; returns (endpoint, bucket_name)."""
    import boto3

    bucket = f"test-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )
    client.create_bucket(Bucket=bucket)
    return s3_server, bucket


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client for the moto server at `endpoint`, with the dummy credentials (to put and delete
    objects behind runyard's back)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_KEY,
        aws_secret_access_key=S3_SECRET,
        region_name=S3_REGION,
    )


def s3_datastore(ws: Any, name: str, endpoint: str, bucket: str, prefix: str = "data") -> Any:
    """Datastore.register_fsspec of s3://bucket/prefix on the moto server at `endpoint`."""
    from runyard.data import Datastore

    return Datastore.register_fsspec(
        ws,
        name,
        f"s3://{bucket}/{prefix}",
        key=S3_KEY,
        secret=S3_SECRET,
        client_kwargs={"endpoint_url": endpoint},
    )
