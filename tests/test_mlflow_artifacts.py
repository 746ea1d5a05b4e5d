"""MLflow's artifact proxy on a real `runyard server --auth`, through the real `mlflow` client.

A run's MLflow artifacts are its runyard files (runs/<id>/...), so what mlflow logs is what runyard's
own API reads, and the other way round. Tokens keep their meaning: a read token cannot upload, a job's
run token reaches only its own run family, paths that leave the run are refused, and a symbolic link a
job left in its run folder is neither followed nor listed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from runyard import Workspace
from runyard.server.auth import create_token
from server_process import ServerProcess, running_server

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402

SECRET = b"outside-the-workspace\n"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


@dataclass
class Served:
    ws: Workspace
    server: ServerProcess
    tokens: dict[str, str]
    outside: Path

    def http(self, token: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("mlflow-artifacts")
    outside = root / "outside.txt"
    outside.write_bytes(SECRET)
    ws = Workspace.create(root / "ws" / ".runyard")
    tokens = {
        "write": create_token(ws.store, "write")[0],  # type: ignore[arg-type]
        "read": create_token(ws.store, "read")[0],  # type: ignore[arg-type]
    }
    with running_server(ws.path, root / "server.log", auth=True) as server:
        yield Served(ws, server, tokens, outside)


@pytest.fixture
def as_token(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """mlflow pointed at the server; `as_token("read")` switches the token the client sends."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(served.server.url)

    def use(name: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", served.tokens[name])

    use("write")
    yield use
    while mlflow.active_run() is not None:
        mlflow.end_run()
    served.server.check_healthy()


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    return int(getattr(response, "status_code", 0) or 0)


def test_log_list_load_and_download(served: Served, as_token: Callable[[str], None], tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "top.txt").write_text("top")
    (src / "deep" / "er" / "leaf.bin").write_bytes(os.urandom(3000))
    single = tmp_path / "notes.md"
    single.write_text("# notes")
    with mlflow.start_run() as active:
        run_id = active.info.run_id
        assert active.info.artifact_uri == f"mlflow-artifacts:/runs/{run_id}"
        mlflow.log_artifact(str(single))
        mlflow.log_artifacts(str(src), artifact_path="tree")
        mlflow.log_dict({"a": [1, 2]}, "cfg/config.json")
        mlflow.log_text("hello text", "texts/hello.txt")
        mlflow.log_text("grüße", 'texts/grüße "quoted".txt')

    assert mlflow.artifacts.load_text(f"runs:/{run_id}/texts/hello.txt") == "hello text"
    assert mlflow.artifacts.load_dict(f"runs:/{run_id}/cfg/config.json") == {"a": [1, 2]}
    assert mlflow.artifacts.load_text(f'runs:/{run_id}/texts/grüße "quoted".txt') == "grüße"
    client = MlflowClient()
    top = {f.path: (f.is_dir, f.file_size) for f in client.list_artifacts(run_id)}
    assert top["notes.md"] == (False, len("# notes"))
    assert top["tree"][0] and top["cfg"][0] and top["texts"][0]
    nested = client.list_artifacts(run_id, "tree/deep/er")
    assert [(f.path, f.file_size) for f in nested] == [("tree/deep/er/leaf.bin", 3000)]
    assert client.list_artifacts(run_id, "no/such/folder") == []

    out = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="tree", dst_path=str(tmp_path / "dl")
        )
    )
    assert (out / "top.txt").read_text() == "top"
    assert (out / "deep" / "er" / "leaf.bin").read_bytes() == (src / "deep" / "er" / "leaf.bin").read_bytes()

    # the same files are the run's runyard files
    run = served.ws.get_run(run_id)
    names = set(run.get_file_names())
    assert {
        "notes.md",
        "tree/top.txt",
        "tree/deep/er/leaf.bin",
        "cfg/config.json",
        "texts/hello.txt",
    } <= names
    assert served.ws.artifacts.read_bytes(f"runs/{run_id}/texts/hello.txt") == b"hello text"


def test_runyard_files_are_mlflow_artifacts(
    served: Served, as_token: Callable[[str], None], tmp_path: Path
) -> None:
    """A file runyard's own API uploads is visible to mlflow, and mlflow can delete it."""
    with mlflow.start_run() as active:
        run_id = active.info.run_id
    served.ws.get_run(run_id).upload_file("outputs/model.txt", str(_write(tmp_path / "m.txt", b"weights")))
    client = MlflowClient()
    assert [f.path for f in client.list_artifacts(run_id, "outputs")] == ["outputs/model.txt"]
    path = client.download_artifacts(run_id, "outputs/model.txt", str(tmp_path / "back"))
    assert Path(path).read_bytes() == b"weights"
    with served.http("write") as http:
        assert http.delete(f"{PROXY}/runs/{run_id}/outputs/model.txt").json() == {}
        missing = http.get(f"{PROXY}/runs/{run_id}/outputs/model.txt")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert not served.ws.artifacts.exists(f"runs/{run_id}/outputs/model.txt")


def test_read_token_reads_but_cannot_upload(
    served: Served, as_token: Callable[[str], None], tmp_path: Path
) -> None:
    with mlflow.start_run() as active:
        run_id = active.info.run_id
        mlflow.log_text("kept", "kept.txt")
    as_token("read")
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/kept.txt") == "kept"
    with pytest.raises(Exception) as refused:
        MlflowClient().log_text(run_id, "sneaky", "sneaky.txt")
    assert _status(refused.value) == 403
    with served.http("read") as http:
        answer = http.put(f"{PROXY}/runs/{run_id}/sneaky.txt", content=b"x")
        deleted = http.delete(f"{PROXY}/runs/{run_id}/kept.txt")
    assert answer.status_code == 403 and answer.json()["error_code"] == "PERMISSION_DENIED"
    assert deleted.status_code == 403
    assert not served.ws.artifacts.exists(f"runs/{run_id}/sneaky.txt")
    assert served.ws.artifacts.exists(f"runs/{run_id}/kept.txt")


def test_run_token_touches_only_its_own_run(
    served: Served, as_token: Callable[[str], None], tmp_path: Path
) -> None:
    client = MlflowClient()
    mine = client.create_run("0").info.run_id
    theirs = client.create_run("0").info.run_id
    client.log_text(theirs, "private", "private.txt")
    served.tokens["run"] = create_token(served.ws.store, "run", run_id=mine)[0]  # type: ignore[arg-type]
    as_token("run")
    client.log_text(mine, "own", "own.txt")
    assert mlflow.artifacts.load_text(f"runs:/{mine}/own.txt") == "own"
    with pytest.raises(Exception) as write_refused:
        client.log_text(theirs, "overwrite", "private.txt")
    assert _status(write_refused.value) == 403
    with served.http("run") as http:
        read = http.get(f"{PROXY}/runs/{theirs}/private.txt")
        listed = http.get(PROXY, params={"path": f"runs/{theirs}"})
    assert read.status_code == 403 and b"private" not in read.content
    assert listed.status_code == 403
    assert served.ws.artifacts.read_bytes(f"runs/{theirs}/private.txt") == b"private"


def test_paths_outside_a_run_are_refused(served: Served, as_token: Callable[[str], None]) -> None:
    run_id = MlflowClient().create_run("0").info.run_id
    with served.http("write") as http:
        escape = http.put(f"{PROXY}/runs/{run_id}/..%2F..%2F..%2Fescaped.txt", content=b"x")
        up = http.get(PROXY, params={"path": f"runs/{run_id}/../../.."})
        other_area = http.get(PROXY, params={"path": "datastores"})
        root = http.get(PROXY)
        unknown_run = http.get(f"{PROXY}/runs/{'f' * 32}/a.txt")
    assert escape.status_code == 400 and escape.json() == {
        "error_code": "INVALID_PARAMETER_VALUE",
        "message": "Invalid path",
    }
    assert up.status_code == 400
    assert other_area.status_code == 403 and other_area.json()["error_code"] == "PERMISSION_DENIED"
    assert root.status_code == 403
    assert unknown_run.status_code == 404 and unknown_run.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert not (served.ws.path.parent / "escaped.txt").exists()
    assert not list(served.ws.path.rglob("escaped.txt"))


def test_symlink_in_run_folder_is_not_followed(
    served: Served, as_token: Callable[[str], None], tmp_path: Path
) -> None:
    with mlflow.start_run() as active:
        run_id = active.info.run_id
        mlflow.log_text("real", "real.txt")
    folder = served.ws.artifacts.local_path(f"runs/{run_id}")
    os.symlink(served.outside, folder / "link.txt")  # what a job could leave behind
    os.symlink(served.outside.parent, folder / "dirlink")
    with served.http("write") as http:
        read = http.get(f"{PROXY}/runs/{run_id}/link.txt")
        through_dir = http.get(f"{PROXY}/runs/{run_id}/dirlink/outside.txt")
        write = http.put(f"{PROXY}/runs/{run_id}/dirlink/planted.txt", content=b"x")
    for answer in (read, through_dir, write):
        assert answer.status_code == 400, answer.text
        assert "symbolic link" in answer.json()["message"] and SECRET not in answer.content
    assert not (served.outside.parent / "planted.txt").exists()
    assert [f.path for f in MlflowClient().list_artifacts(run_id)] == ["real.txt"]


def test_multipart_upload_through_the_proxy(
    served: Served, as_token: Callable[[str], None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD: parts go up in parallel and land as one file."""
    monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(1024 * 1024))
    monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(1024 * 1024))
    data = os.urandom(3 * 1024 * 1024 + 12345)  # four parts
    src = _write(tmp_path / "big.bin", data)
    with mlflow.start_run() as active:
        run_id = active.info.run_id
        mlflow.log_artifact(str(src), artifact_path="parts")
    stored = served.ws.artifacts.read_bytes(f"runs/{run_id}/parts/big.bin")
    assert hashlib.sha256(stored).digest() == hashlib.sha256(data).digest()
    uploads = served.ws.artifacts.local_path("runs").parent / ".runyard-uploads"
    assert not list(uploads.glob("mpu-*"))  # completed uploads leave nothing behind


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_logged_model_files_follow_the_source_run(
    served: Served, as_token: Callable[[str], None], tmp_path: Path
) -> None:
    """A model's files (logged_models/<id>/...) belong to its source run's family."""
    client = MlflowClient()
    mine, theirs = (client.create_run("0").info.run_id for _ in range(2))
    own_model = client.create_logged_model("0", name="own", source_run_id=mine)
    their_model = client.create_logged_model("0", name="theirs", source_run_id=theirs)
    assert own_model.artifact_location == f"mlflow-artifacts:/logged_models/{own_model.model_id}"
    served.tokens["model-run"] = create_token(served.ws.store, "run", run_id=mine)[0]  # type: ignore[arg-type]
    with served.http("model-run") as http:
        own = http.put(f"{PROXY}/logged_models/{own_model.model_id}/MLmodel", content=b"flavors: {}")
        other = http.put(f"{PROXY}/logged_models/{their_model.model_id}/MLmodel", content=b"x")
        unknown = http.get(f"{PROXY}/logged_models/m-{'0' * 32}/MLmodel")
        listed = http.get(PROXY, params={"path": f"logged_models/{own_model.model_id}"})
    assert own.status_code == 200 and own.json() == {}
    assert other.status_code == 403 and other.json()["error_code"] == "PERMISSION_DENIED"
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert listed.json() == {
        "files": [{"path": "MLmodel", "is_dir": False, "file_size": len(b"flavors: {}")}]
    }
    assert served.ws.artifacts.read_bytes(f"logged_models/{own_model.model_id}/MLmodel") == b"flavors: {}"
    assert not served.ws.artifacts.exists(f"logged_models/{their_model.model_id}/MLmodel")
