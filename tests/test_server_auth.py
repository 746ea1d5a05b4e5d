"""`runyard server --auth`: tokens from the CLI, scopes, run tokens, and the exact error bodies.

One real server subprocess (on 127.0.0.1) serves the module; tokens are made with the real
`runyard token` commands and sent as `Authorization: Bearer ...` over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import invoke_cli, wait_for
from runyard import Workspace
from runyard.errors import AuthError
from runyard.store.rest_store import RestStore
from server_process import ServerProcess, running_server
from store_suite import make_model, make_run, scalar

INVALID_TOKEN = {
    "code": "Unauthorized",
    "statusCode": 401,
    "message": "Unauthorized",
    "details": [
        {
            "code": "InvalidOrExpiredToken",
            "message": "The request token was either invalid or expired. Please try again with a valid token.",
        }
    ],
}
AUTH_FAILED = {"error": {"code": "AuthenticationFailed", "message": "Authentication failed."}}
#: The same refusal under /api/2.0/mlflow, in MLflow's error shape.
MLFLOW_AUTH_FAILED = {"error_code": "UNAUTHENTICATED", "message": "Authentication failed."}
TOKEN_RE = re.compile(r"^ry_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


@dataclass
class AuthServer:
    server: ServerProcess
    workspace: Path
    tokens: dict[str, str] = field(default_factory=dict)  # scope -> token

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def store(self, token: str) -> RestStore:
        return RestStore(self.url, token)


def cli_token(workspace: Path, scope: str, *extra: str) -> dict[str, Any]:
    done = invoke_cli("-w", str(workspace), "token", "create", "--scope", scope, "--json", *extra)
    assert done.returncode == 0, done.stderr
    created: dict[str, Any] = json.loads(done.stdout)
    assert TOKEN_RE.match(created["token"]), created
    return created


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    root = tmp_path_factory.mktemp("auth")
    ws = Workspace.create(root / "ws" / ".runyard")
    tokens = {"admin": cli_token(ws.path, "admin", "--name", "admin-token")["token"]}
    with running_server(ws.path, root / "server.log", auth=True) as server:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {tokens['admin']}"}
        ) as admin:
            for scope in ("write", "read"):  # an admin makes the others over the API
                made = admin.post(
                    "/api/v1/tokens", json={"scope": scope, "name": f"{scope}-token"}, timeout=60
                )
                assert made.status_code == 200, made.text
                tokens[scope] = made.json()["token"]
        yield AuthServer(server, ws.path, tokens)


def is_mlflow(response: httpx.Response) -> bool:
    """MLflow's routes answer in MLflow's error shape, `{"error_code", "message"}`."""
    return response.request.url.path.startswith("/api/2.0/mlflow/")


def assert_forbidden(response: httpx.Response, *words: str) -> str:
    assert response.status_code == 403, (response.status_code, response.text)
    body = response.json()
    message: str
    if is_mlflow(response):
        assert sorted(body) == ["error_code", "message"], body
        assert body["error_code"] == "PERMISSION_DENIED"
        message = body["message"]
    else:
        assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"], body
        assert body["error"]["code"] == "AuthorizationFailed"
        message = body["error"]["message"]
    for word in words:
        assert word in message, (word, message)
    return message


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    if is_mlflow(response):
        body = response.json()
        assert sorted(body) == ["error_code", "message"] and body["error_code"] == "UNAUTHENTICATED", body
        # a sentence that says what is wrong, not runyard's own error JSON quoted inside MLflow's
        assert body["message"] == INVALID_TOKEN["details"][0]["message"], body  # type: ignore[index]
    else:
        assert response.json() == INVALID_TOKEN
    assert response.headers["www-authenticate"] == "Bearer"


# -- tokens on disk and in the CLI --------------------------------------------------------------------
def test_tokens_are_stored_hashed(auth: AuthServer) -> None:
    created = cli_token(auth.workspace, "write", "--name", "hashed", "--expires-in", "30m")
    token_id, secret = TOKEN_RE.match(created["token"]).groups()  # type: ignore[union-attr]
    assert token_id == created["token_id"]
    assert created["expires_time"] == pytest.approx(time.time() + 1800, abs=120)
    db = auth.workspace / "runyard.db"
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT secret_hash, scope, name FROM tokens WHERE token_id = ?", (token_id,)
        ).fetchone()
    assert row == (hashlib.sha256(secret.encode()).hexdigest(), "write", "hashed")
    for path in auth.workspace.glob("runyard.db*"):  # the database and its WAL: no secret anywhere
        assert secret.encode() not in path.read_bytes(), path

    listed = invoke_cli("-w", str(auth.workspace), "token", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    entries = {t["token_id"]: t for t in json.loads(listed.stdout)}
    assert entries[token_id]["scope"] == "write" and entries[token_id]["name"] == "hashed"
    assert "token" not in entries[token_id] and "secret_hash" not in entries[token_id]
    assert {"admin", "write", "read"} <= {t["scope"] for t in entries.values()}


def test_token_create_prints_just_the_token_on_stdout(auth: AuthServer) -> None:
    done = invoke_cli("-w", str(auth.workspace), "token", "create", "--scope", "read")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert TOKEN_RE.match(token), done.stdout  # so TOKEN=$(runyard token create ...) works
    assert "shown only now" in done.stderr
    with auth.client(token) as client:
        assert client.get("/api/v1/experiments").status_code == 200


# -- 401: missing, malformed, invalid, expired, revoked --------------------------------------------------
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ry_",
        "Basic dXNlcjpwYXNzd29yZA==",
        "Bearer not-a-runyard-token",
        "Bearer ry_abc_def",
        "Bearer ry_ZZZZZZZZZZZZ_aaaaaaaaaaaaaaaaaaaaaaaa",
        "Token ry_0123456789ab_aaaaaaaaaaaaaaaaaaaaaaaa",
    ],
)
def test_missing_or_malformed_credentials(auth: AuthServer, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = httpx.get(f"{auth.url}/api/v1/experiments", headers=headers, timeout=60)
    assert response.status_code == 401
    assert response.json() == AUTH_FAILED
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/experiments", {"name": "x"}),
        ("POST", "/api/v1/metrics", {"rows": []}),
        ("GET", "/api/v1/runs/any-run", None),
        ("GET", "/api/v1/artifacts/file?path=runs/x/y.txt", None),
        ("PUT", "/api/v1/artifacts/file?path=runs/x/y.txt", None),
        ("GET", "/api/v1/tokens", None),
        ("POST", "/api/2.0/mlflow/runs/search", {}),
    ],
)
def test_every_route_needs_a_token(auth: AuthServer, method: str, path: str, body: Any) -> None:
    response = httpx.request(method, auth.url + path, json=body, timeout=60)
    refused = MLFLOW_AUTH_FAILED if is_mlflow(response) else AUTH_FAILED
    assert (response.status_code, response.json()) == (401, refused)
    bogus = {"Authorization": "Bearer ry_0123456789ab_" + "x" * 43}
    assert_invalid_token(httpx.request(method, auth.url + path, json=body, headers=bogus, timeout=60))
    assert not (auth.workspace / "artifacts" / "runs" / "x").exists()


def test_health_is_open_and_says_auth_is_on(auth: AuthServer) -> None:
    health = httpx.get(f"{auth.url}/health", timeout=60).json()
    assert health["auth"] == "on"


def test_unknown_token_and_wrong_secret_are_invalid(auth: AuthServer) -> None:
    admin = auth.tokens["admin"]
    token_id, secret = TOKEN_RE.match(admin).groups()  # type: ignore[union-attr]
    wrong_secret = f"ry_{token_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    unknown_id = f"ry_{'0' * 12}_{secret}"
    for token in (wrong_secret, unknown_id):
        with auth.client(token) as client:
            assert_invalid_token(client.get("/api/v1/experiments"))
    with pytest.raises(AuthError, match="invalid or expired"):
        auth.store(unknown_id).list_experiments()
    with pytest.raises(AuthError, match="Authentication failed"):
        RestStore(auth.url).list_experiments()


def test_token_expires_via_cli(auth: AuthServer) -> None:
    created = cli_token(auth.workspace, "read", "--expires-in", "1s")
    assert created["expires_time"] == pytest.approx(time.time() + 1, abs=30)
    wait_for(lambda: time.time() > created["expires_time"] + 0.2, timeout=30)
    with auth.client(created["token"]) as client:
        assert_invalid_token(client.get("/api/v1/experiments"))


def test_token_works_until_it_expires(auth: AuthServer) -> None:
    with auth.client(auth.tokens["admin"]) as admin:
        made = admin.post("/api/v1/tokens", json={"scope": "read", "expires_in": 5})
    assert made.status_code == 200, made.text
    new = made.json()
    assert new["scope"] == "read" and new["expires_time"] == pytest.approx(new["created_time"] + 5)
    with auth.client(new["token"]) as client:
        first = client.get("/api/v1/experiments")
        if time.time() < new["expires_time"]:  # (a badly stalled machine may pass the 5 s first)
            assert first.status_code == 200, first.text
        wait_for(lambda: time.time() > new["expires_time"] + 0.2, timeout=30)
        assert_invalid_token(client.get("/api/v1/experiments"))


def test_revoked_token_is_refused(auth: AuthServer) -> None:
    with auth.client(auth.tokens["admin"]) as admin:
        created = admin.post("/api/v1/tokens", json={"scope": "write"}).json()
    with auth.client(created["token"]) as client:
        assert client.get("/api/v1/experiments").status_code == 200
        done = invoke_cli("-w", str(auth.workspace), "token", "revoke", created["token_id"])
        assert done.returncode == 0, done.stderr
        assert_invalid_token(client.get("/api/v1/experiments"))
    listed = json.loads(invoke_cli("-w", str(auth.workspace), "token", "list", "--json").stdout)
    (entry,) = [t for t in listed if t["token_id"] == created["token_id"]]
    assert entry["revoked_time"] is not None

    # and over the API, by an admin
    with auth.client(auth.tokens["admin"]) as admin:
        made = admin.post("/api/v1/tokens", json={"scope": "read", "name": "short"}).json()
        with auth.client(made["token"]) as client:
            assert client.get("/api/v1/experiments").status_code == 200
            assert admin.delete(f"/api/v1/tokens/{made['token_id']}").status_code == 204
            assert_invalid_token(client.get("/api/v1/experiments"))
        assert admin.delete("/api/v1/tokens/000000000000").status_code == 404


# -- 403: scopes --------------------------------------------------------------------------------------
def test_read_scope_reads_but_cannot_write(auth: AuthServer) -> None:
    with auth.client(auth.tokens["write"]) as writer:
        assert writer.post("/api/v1/experiments", json={"name": "scoped"}).status_code == 200
    with auth.client(auth.tokens["read"]) as reader:
        assert reader.get("/api/v1/experiments/scoped").json()["name"] == "scoped"
        assert reader.get("/api/v1/runs").status_code == 200
        message = assert_forbidden(
            reader.post("/api/v1/experiments", json={"name": "nope"}), "'write'", "'read'"
        )
        assert "scope" in message
        assert_forbidden(reader.post("/api/2.0/mlflow/runs/create", json={}), "'write'")
        assert_forbidden(reader.put("/api/v1/artifacts/file?path=models/x/f.bin", content=b"x"), "'write'")
        assert_forbidden(reader.post("/api/v1/tokens", json={"scope": "read"}), "'admin'")
    with pytest.raises(AuthError, match="'write'"):
        auth.store(auth.tokens["read"]).get_or_create_experiment("through-the-client")
    assert not (auth.workspace / "artifacts" / "models" / "x").exists()
    assert "nope" not in [e.name for e in Workspace.get(auth.workspace).store.list_experiments()]


def test_write_scope_cannot_manage_tokens(auth: AuthServer) -> None:
    with auth.client(auth.tokens["write"]) as writer:
        assert_forbidden(writer.post("/api/v1/tokens", json={"scope": "admin"}), "'admin'", "'write'")
        assert_forbidden(writer.get("/api/v1/tokens"), "'admin'")
        assert_forbidden(writer.delete("/api/v1/tokens/000000000000"), "'admin'")
    with auth.client(auth.tokens["admin"]) as admin:
        made = admin.post("/api/v1/tokens", json={"scope": "write", "name": "by-admin"})
        assert made.status_code == 200, made.text
        assert TOKEN_RE.match(made.json()["token"])
        assert "by-admin" in [t["name"] for t in admin.get("/api/v1/tokens").json()]
        assert all("token" not in t and "secret_hash" not in t for t in admin.get("/api/v1/tokens").json())


# -- run tokens ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def family(auth: AuthServer) -> dict[str, Any]:
    """parent P with child C, an unrelated run O, and a run token for P issued by a write token."""
    store = auth.store(auth.tokens["write"])
    parent = make_run(store, "family").run_id
    child = make_run(store, "family", parent_id=parent).run_id
    other = make_run(store, "family").run_id
    return {
        "P": parent,
        "C": child,
        "O": other,
        "token": store.create_run_token(parent),
        "child_token": store.create_run_token(child),
    }


def test_run_token_is_short_lived_and_bound_to_its_run(auth: AuthServer, family: dict[str, Any]) -> None:
    token_id = TOKEN_RE.match(family["token"]).groups()[0]  # type: ignore[union-attr]
    with sqlite3.connect(auth.workspace / "runyard.db") as conn:
        scope, run_id, created, expires = conn.execute(
            "SELECT scope, run_id, created_time, expires_time FROM tokens WHERE token_id = ?", (token_id,)
        ).fetchone()
    assert (scope, run_id) == ("run", family["P"])
    assert expires is not None and 0 < expires - created <= 7 * 24 * 3600


def test_run_token_writes_its_run_and_children(auth: AuthServer, family: dict[str, Any]) -> None:
    p, c = family["P"], family["C"]
    job = auth.store(family["token"])
    job.append_metrics([scalar(p, "loss", 0.5), scalar(c, "loss", 0.25)])
    job.set_tags(p, {"stage": "train"})
    job.set_tags(c, {"stage": "child"})
    job.add_properties(p, {"seed": "1"})
    job.set_run_status(c, "Running")
    grandchild = make_run(job, "family", parent_id=c)
    job.append_metrics([scalar(grandchild.run_id, "depth", 2.0)])
    model = job.register_model(make_model("from-the-job", run_id=p))
    assert model.version == 1
    with auth.client(family["token"]) as client:
        assert (
            client.put(
                f"/api/v1/artifacts/file?path=runs/{p}/outputs/model.txt", content=b"weights"
            ).status_code
            == 204
        )
        assert client.get(f"/api/v1/artifacts/file?path=runs/{p}/outputs/model.txt").content == b"weights"
        assert client.get("/api/v1/runs", params={"parent_id": p}).json()[0]["run_id"] == c
        assert client.get("/api/v1/models/from-the-job").status_code == 200  # reads the workspace's models

    local = Workspace.get(auth.workspace).store
    assert [r.value for r in local.get_metric_rows([p, c])] == [0.5, 0.25]
    assert local.get_tags(c) == {"stage": "child"} and local.get_properties(p) == {"seed": "1"}
    assert local.get_run(grandchild.run_id).parent_id == c
    assert local.count_metric_rows(grandchild.run_id) == 1


def test_run_token_cannot_touch_another_run(auth: AuthServer, family: dict[str, Any]) -> None:
    p, o = family["P"], family["O"]
    before = Workspace.get(auth.workspace).store.count_metric_rows(p)
    with auth.client(family["token"]) as client:
        assert_forbidden(client.put(f"/api/v1/runs/{o}/tags", json={"tags": {"x": "1"}}), p, o)
        assert_forbidden(client.get(f"/api/v1/runs/{o}"), "may not read")
        assert_forbidden(client.post(f"/api/v1/runs/{o}/status", json={"status": "Failed"}))
        assert_forbidden(client.post(f"/api/v1/runs/{o}/properties", json={"properties": {"x": "1"}}))
        mixed = {"rows": [_row(p, 1.0), _row(o, 2.0)]}
        assert_forbidden(client.post("/api/v1/metrics", json=mixed), o)
        assert_forbidden(client.get("/api/v1/metrics", params={"run_id": o}))
        assert_forbidden(client.put(f"/api/v1/artifacts/file?path=runs/{o}/outputs/x.txt", content=b"x"))
        assert_forbidden(client.put("/api/v1/artifacts/file?path=models/sneaky/1/x.bin", content=b"x"))
        assert_forbidden(
            client.post("/api/2.0/mlflow/runs/set-tag", json={"run_id": o, "key": "k", "value": "v"})
        )
        assert_forbidden(
            client.post(
                "/api/2.0/mlflow/runs/log-metric", json={"run_id": o, "key": "k", "value": 1, "timestamp": 1}
            )
        )
    # the child's token may read its parent but not write to it
    with auth.client(family["child_token"]) as child:
        assert child.get(f"/api/v1/runs/{p}").json()["run_id"] == p
        assert_forbidden(child.put(f"/api/v1/runs/{p}/tags", json={"tags": {"x": "1"}}), "may not write")
    with pytest.raises(AuthError):
        auth.store(family["token"]).set_tags(o, {"x": "1"})

    local = Workspace.get(auth.workspace).store
    assert local.get_tags(o) == {} and local.get_properties(o) == {}
    assert local.get_run(o).status == "NotStarted"
    assert local.count_metric_rows(o) == 0
    assert local.count_metric_rows(p) == before  # the mixed batch wrote nothing
    assert not (auth.workspace / "artifacts" / "runs" / o).exists()
    assert not (auth.workspace / "artifacts" / "models" / "sneaky").exists()


def test_run_token_reads_only_its_family(auth: AuthServer, family: dict[str, Any]) -> None:
    p, c, o = family["P"], family["C"], family["O"]
    with auth.client(auth.tokens["read"]) as reader:
        named = reader.get("/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "family"})
        experiment_ids = [named.json()["experiment"]["experiment_id"]]
    with auth.client(family["token"]) as client:
        assert (
            client.post("/api/2.0/mlflow/runs/search", json={}).json() == {}
        )  # as MLflow: no experiment, no runs
        found = client.post("/api/2.0/mlflow/runs/search", json={"experiment_ids": experiment_ids}).json()[
            "runs"
        ]
        ids = {r["info"]["run_id"] for r in found}
        assert {p, c} <= ids and o not in ids
        assert_forbidden(client.get("/api/2.0/mlflow/runs/get", params={"run_id": o}))
        assert_forbidden(client.get("/api/v1/artifacts", params={"prefix": "runs"}), "own run")
        assert_forbidden(client.get("/api/v1/artifacts", params={"prefix": f"runs/{o}"}))
        assert client.get("/api/v1/artifacts", params={"prefix": f"runs/{p}"}).status_code == 200
    with auth.client(auth.tokens["read"]) as reader:  # a workspace token sees them all
        everything = reader.post(
            "/api/2.0/mlflow/runs/search", json={"experiment_ids": experiment_ids}
        ).json()["runs"]
        assert {p, c, o} <= {r["info"]["run_id"] for r in everything}
        assert reader.get("/api/v1/artifacts", params={"prefix": "runs"}).status_code == 200


def test_run_token_is_refused_management_operations(auth: AuthServer, family: dict[str, Any]) -> None:
    p, o = family["P"], family["O"]
    with auth.client(family["token"]) as client:
        assert_forbidden(client.post("/api/v1/tokens", json={"scope": "admin"}), "run token", "management")
        assert_forbidden(client.get("/api/v1/tokens"), "run token")
        assert_forbidden(client.post(f"/api/v1/runs/{p}/token"), "run token")
        assert_forbidden(client.post(f"/api/v1/runs/{o}/token"), "run token")
        unattached = {"name": "m", "version": 0, "path": "models/m/{version}/m.pkl", "created_time": 1.0}
        assert_forbidden(client.post("/api/v1/models", json=unattached), "register_model")
        assert_forbidden(client.post("/api/v1/models", json={**unattached, "run_id": o}), o)
        top_level = _run_json(auth, "sneaky-top-level", parent_id=None)
        assert_forbidden(client.post("/api/v1/runs", json=[top_level]), "child runs")
        assert_forbidden(client.post("/api/v1/runs", json=[_run_json(auth, "under-other", parent_id=o)]))
        assert_forbidden(client.get("/api/v1/runs"), "parent_id")
        assert_forbidden(client.get("/api/v1/metrics/count"), "run token")
        assert_forbidden(client.post("/api/2.0/mlflow/runs/create", json={}), "run token")
        assert_forbidden(
            client.post("/api/2.0/mlflow/experiments/create", json={"name": "job-made"}), "run token"
        )
        assert client.post("/api/v1/experiments", json={"name": "job-made"}).status_code == 404  # no new ones
    with pytest.raises(AuthError, match="run token"):
        auth.store(family["token"]).create_run_token(p)

    local = Workspace.get(auth.workspace).store
    assert [m.name for m in local.list_models(name="m")] == []
    assert "job-made" not in [e.name for e in local.list_experiments()]
    for run_id in ("sneaky-top-level", "under-other"):
        assert run_id not in [r.run_id for r in local.list_runs()]


def _row(run_id: str, value: float) -> dict[str, Any]:
    return {"run_id": run_id, "name": "m", "kind": "scalar", "timestamp": time.time(), "value": value}


def _run_json(auth: AuthServer, run_id: str, parent_id: str | None) -> dict[str, Any]:
    exp = Workspace.get(auth.workspace).store.get_experiment("family")
    return {
        "run_id": run_id,
        "experiment_id": exp.id,
        "experiment_name": exp.name,
        "status": "NotStarted",
        "run_type": "azureml.scriptrun",
        "created_time": time.time(),
        "parent_id": parent_id,
    }


def test_mlflow_client_sends_its_token(auth: AuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    mlflow = pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    client = mlflow.MlflowClient(tracking_uri=auth.url)
    with pytest.raises(MlflowException, match=r"401|Authentication failed"):
        client.search_experiments()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", auth.tokens["write"])  # sent as `Authorization: Bearer`
    run = client.create_run(client.create_experiment("mlflow-with-auth"))
    client.log_metric(run.info.run_id, "acc", 0.5)
    client.set_terminated(run.info.run_id)
    got = Workspace.get(auth.workspace).get_run(run.info.run_id)
    assert got.get_metrics() == {"acc": 0.5} and got.get_status() == "Completed"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", auth.tokens["read"])
    with pytest.raises(MlflowException, match="'write'"):
        client.log_metric(run.info.run_id, "acc", 0.6)
