"""Security review of issue 12's data features: holes an attacker or a faulty environment can open.

Each test here FAILS on the code as reviewed and says, in its docstring, what is wrong and what the fix
should be. They use real components only: a real workspace (SQLite), a real `runyard server` subprocess
with auth on 127.0.0.1, real tokens, real HTTP, a real HTTP server standing in for an internal service.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.data import Dataset, Datastore
from runyard.data.secrets import resolve_secrets, stored_secrets
from runyard.errors import InvalidInputError
from runyard.server.auth import create_token
from runyard.store import SqlStore
from runyard.store.records import DatasetUse
from server_process import running_server

ZERO_HASH = "0" * 64


def _served(tmp_path: Path) -> Workspace:
    ws = Workspace.create(tmp_path / "server" / ".runyard")
    assert isinstance(ws.store, SqlStore)
    return ws


def _put(ws: Workspace, rel: str, text: str) -> None:
    """A file of the server's workspaceblobstore, written where the server keeps it."""
    target = Path(ws.artifacts.local_path(f"datastores/workspaceblobstore/{rel}"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tabular_body(name: str, files: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "tabular",
        "definition": {
            "v": 1,
            "kind": "tabular",
            "sources": [{"datastore": "workspaceblobstore", "path": "x.csv"}],
            "format": {"type": "delimited", "separator": ",", "header": True},
        },
        "files": files,
        "content_hash": ZERO_HASH,
        **extra,
    }


# -- 1. a run token reads far more than the glob recorded as its input ----------------------------------
def test_a_run_token_reads_only_what_its_input_glob_matches(tmp_path: Path) -> None:
    """server/run_inputs.py `_covers` grants, for an unregistered dataset input, everything under the glob's
    *folder* (`_glob_root`) and also uses fnmatch, whose '*' crosses '/'. A job whose recorded input is
    the glob '*.csv' (top-level CSV files of the datastore) may therefore read EVERY file of the datastore
    with its run token (all but azureml/<run>/, which routes_artifacts family-checks first): other
    datasets' folders, which docs/security.md says stay private to workspace tokens ("Nothing else on
    the datastore").
    Likewise 'public/*.csv' grants 'public/private/secret.csv'.

    Fix: match the requested path with the same glob semantics resolve.py uses (resolve.glob_regex: '*'
    stays within a folder, '**' crosses), and allow a folder *listing* only for prefixes of what the glob
    can match (or answer listings with only the matching files), never the whole folder tree below the
    glob's base."""
    served = _served(tmp_path)
    _put(served, "top.csv", "a\n1\n")
    _put(served, "public/p.csv", "a\n2\n")
    _put(served, "public/private/secret.csv", "s\nhidden\n")
    _put(served, "theirs/secret.csv", "s\nhidden\n")
    run = Experiment(served, "probe").start_logging()
    definition = {
        "v": 1,
        "kind": "tabular",
        "sources": [
            {"datastore": "workspaceblobstore", "path": "*.csv"},
            {"datastore": "workspaceblobstore", "path": "public/*.csv"},
        ],
    }
    served.store.record_dataset_uses(
        [DatasetUse(run.id, "input", "raw", ZERO_HASH, None, {"definition": definition})]
    )
    token, _ = create_token(served.store, "run", run_id=run.id, expires_in=3600)  # type: ignore[arg-type]
    try:
        with running_server(served.path, tmp_path / "server.log", auth=True) as server:

            def read(rel: str) -> int:
                return httpx.get(
                    f"{server.url}/api/v1/artifacts/file",
                    params={"path": f"datastores/workspaceblobstore/{rel}"},
                    headers=_auth(token),
                ).status_code

            # what the globs match: readable (the rule works for its own inputs)
            assert read("top.csv") == 200
            assert read("public/p.csv") == 200
            # what they do not match: must be refused
            leaked = {rel: read(rel) for rel in ("public/private/secret.csv", "theirs/secret.csv")}
            assert all(code == 403 for code in leaked.values()), leaked
    finally:
        run.complete()


# -- 2. a job publishes datasets as nobody ----------------------------------------------------------------
def test_a_dataset_version_registered_with_a_run_token_names_that_run(tmp_path: Path) -> None:
    """routes_data.register_dataset checks a run token only when the body names a run_id
    (`if body.run_id is not None: family_check`). With run_id omitted (which is what
    AbstractDataset.register always sends), any job may register a new *latest* version of ANY dataset
    name, e.g. swap the files behind another team's 'training-data', and the record says no run produced
    it, so the studio and lineage cannot tell it came from a job. docs/security.md: "datasets need write
    or the run token of the run that produced them".

    Fix (routes_data.register_dataset): for a run token, stamp `run_id = who.run_id` when the body has
    none (so every version a job registers names its run), or refuse it; a stronger rule also refuses a
    new version of a name first registered outside the token's run family."""
    served = _served(tmp_path)
    _put(served, "x.csv", "a\n1\n")
    Dataset.Tabular.from_delimited_files((served.get_default_datastore(), "x.csv")).register(
        served, "training-data"
    )
    run = Experiment(served, "job").start_logging()
    token, _ = create_token(served.store, "run", run_id=run.id, expires_in=3600)  # type: ignore[arg-type]
    try:
        with running_server(served.path, tmp_path / "server.log", auth=True) as server:
            forged = _tabular_body(
                "training-data",
                [{"datastore": "workspaceblobstore", "path": "x.csv", "size": 4, "sha256": ZERO_HASH}],
            )
            answer = httpx.post(
                f"{server.url}/api/v1/datasets",
                params={"create_new_version": "true"},
                json=forged,
                headers=_auth(token),
            )
        if answer.status_code == 403:
            return
        assert answer.status_code == 200, answer.text
        latest = served.store.get_dataset("training-data")
        assert latest.version == 2
        assert latest.run_id == run.id, (
            f"a job registered {latest.name!r} version {latest.version} and the record names run "
            f"{latest.run_id!r}, not the job's run {run.id!r}"
        )
    finally:
        run.complete()


# -- 3. recorded file paths are not held to their datastore ----------------------------------------------
def test_a_dataset_file_path_with_dotdot_is_refused_over_rest(tmp_path: Path) -> None:
    """store/validation.py `_check_dataset_file` checks a recorded file's path only as text: a write token
    (or a run token, see above) can register a version whose file is
    {"datastore": "shared", "path": "../secret.txt"} on a file:// datastore (LocalBackend). Then
    resolve._current os.stat()s and hashing.hash_files *reads and hashes* f"{root}/../secret.txt" on the
    server whenever the version is read or previewed (the studio's dataset page does so for every
    visitor), and the error shown leaks the file's size ("size 1 -> N bytes") and the first 12 hex digits
    of its sha256. Only LocalBackend.fetch (clean_store_path) stops the bytes themselves. (The built-in
    workspaceblobstore is not affected: its ArtifactBackend cleans the path and answers "is gone".)

    Fix: validate_dataset refuses a file whose datastore is set and whose path is not
    `clean_store_path(path) == path` (no '..', no leading '/', no NUL), and locate_record/_current/
    hash_files go through the backend's path check instead of f"{base}/{path}"."""
    served = _served(tmp_path)
    root = tmp_path / "shared-data"
    root.mkdir()
    Datastore.register_fsspec(served, "shared", root.as_uri())
    token, _ = create_token(served.store, "write", name="w")  # type: ignore[arg-type]
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's private bytes\n" * 37)
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        answer = httpx.post(
            f"{server.url}/api/v1/datasets",
            json=_tabular_body(
                "escape",
                [{"datastore": "shared", "path": "../secret.txt", "size": 1, "sha256": ZERO_HASH}],
            ),
            headers=_auth(token),
        )
        page = httpx.get(f"{server.url}/datasets/escape", cookies={"runyard_studio": token})
    size = secret.stat().st_size
    assert f"{size} bytes" not in page.text, (
        "the studio page reveals the size of a file outside the datastore"
    )
    assert answer.status_code in (400, 422), (answer.status_code, answer.text)


def test_the_studio_does_not_reveal_server_files_named_by_a_remote_record(tmp_path: Path) -> None:
    """A record's file with datastore "" is a *local path* (resolve._local_groups roots it at '/'). Over
    REST, a write or run token registers a tabular version listing {"datastore": "", "path":
    "/any/file/on/the/server", "size": 1, "sha256": "0"*64}; every visit of its studio page makes the
    server stat and hash that file (resolve.locate_record) and show "… changed since it was registered
    (size 1 -> N bytes)" / "is gone": an oracle for the existence and size of any file the server can
    stat, and a full read of it (hashing) per page view. A client's local path means nothing on the server
    anyway: its files were never uploaded there.

    Fix: the server refuses dataset records whose files (or definition sources) are local paths (the
    client should upload first: Datastore.upload), or the server-side preview never touches files outside
    its datastores (show "preview not available on the server: local files")."""
    served = _served(tmp_path)
    token, _ = create_token(served.store, "write", name="w")  # type: ignore[arg-type]
    secret = tmp_path / "server-only.key"
    secret.write_text("k" * 1234)
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        httpx.post(
            f"{server.url}/api/v1/datasets",
            json=_tabular_body(
                "probe", [{"datastore": "", "path": str(secret), "size": 1, "sha256": ZERO_HASH}]
            ),
            headers=_auth(token),
        )
        page = httpx.get(f"{server.url}/datasets/probe", cookies={"runyard_studio": token})
    assert "1234 bytes" not in page.text, "the page leaks the size of a file on the server"


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        _Counter.hits.append(self.path)
        body = b"a\n1\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.fixture
def internal_service() -> Iterator[str]:
    """An HTTP service on 127.0.0.1 standing in for one only the server's host can reach."""
    _Counter.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_viewing_a_dataset_page_does_not_make_the_server_fetch_urls_a_token_holder_chose(
    tmp_path: Path, internal_service: str
) -> None:
    """Server-side request forgery: a record's file whose path is an http(s) URL is downloaded by the
    *server* (resolve._local_groups -> _url_copy, no size limit, into <workspace>/cache/urls/) every time
    anyone opens the dataset's studio page, because the preview verifies the recorded files. Any write
    or run token can so make the server issue GETs to hosts only it can reach (cloud metadata
    endpoints, admin ports on 127.0.0.1) and fill its disk with an endless response.

    Fix: the server refuses URL files/sources in records posted over REST (or keeps them but its studio
    preview does not fetch them: "preview not available: the data is at a URL"), and _url_copy gets a
    size cap."""
    served = _served(tmp_path)
    token, _ = create_token(served.store, "write", name="w")  # type: ignore[arg-type]
    url = f"{internal_service}/admin/secret.csv"
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        registered = httpx.post(
            f"{server.url}/api/v1/datasets",
            json=_tabular_body("ssrf", [{"datastore": "", "path": url, "size": 4, "sha256": ZERO_HASH}]),
            headers=_auth(token),
        )
        if registered.status_code in (400, 403, 422):
            return  # refused at the door: the fix
        httpx.get(f"{server.url}/datasets/ssrf", cookies={"runyard_studio": token})
    assert _Counter.hits == [], f"the server fetched {_Counter.hits} for a studio visitor"


# -- 4. credentials in the environment reach the wrong datastore -------------------------------------------
def test_an_environment_credential_is_read_only_by_its_own_datastore(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """data/secrets.py env_name joins datastore and option with '_' although both may hold '_':
    RUNYARD_DATASTORE_MY_BLOB_ACCOUNT_KEY is datastore 'my_blob' option 'account_key' AND datastore
    'my_blob_account' option 'key'. resolve_secrets also adopts any secret-looking option the environment
    offers under the datastore's prefix, so the Azure account key meant for 'my_blob' is handed to
    'my_blob_account''s backend as its 'key' (for s3fs: the access key id, sent to whatever endpoint that
    datastore names).

    Fix: an unambiguous variable name (e.g. a double underscore between name and option,
    RUNYARD_DATASTORE_MY_BLOB__ACCOUNT_KEY), or at least: do not adopt an environment-only option whose
    variable also parses as another option of a longer datastore name (prefer the longest datastore
    match, and refuse when two parses exist)."""
    monkeypatch.setenv("RUNYARD_DATASTORE_MY_BLOB_ACCOUNT_KEY", "azure-account-key-of-my_blob")
    got = resolve_secrets(tmp_path, "my_blob_account", [])
    assert "azure-account-key-of-my_blob" not in got.values(), got


# -- 5. an interrupted upload stays in the datastore, and datasets pick it up -------------------------------
UPLOAD = """
import sys
from runyard import Workspace
Workspace.get(sys.argv[1]).get_default_datastore().upload(sys.argv[2], target_path="up", show_progress=False)
"""


def test_a_killed_upload_leaves_nothing_a_dataset_reads(tmp_path: Path) -> None:
    """LocalBackend.put_file (data/backends.py) writes `.<name>.partial-<hex>` *inside the destination
    folder* and renames it; readers never see half of `big.bin` under its own name, but they do see the
    partial file itself while the copy runs, and for ever when the uploading process is killed (nothing
    sweeps it). LocalBackend.list_files lists it like any file, so `Dataset.File.from_files((ds, 'up'))`
    registers it, a glob 'up/**' matches it, reuse hashes it, and downloads/mounts copy it: a
    half-written file IS visible, against issue 12 ("a half-written file is never visible").

    Fix: write partials outside the listed tree (a `.runyard-partial/` folder at the datastore root
    that list_files skips, as the server's uploads/ folder is), or have list_files skip the
    `.*.partial-*` names put_file and transfer.py create, and sweep stale ones."""
    ws = Workspace.create(tmp_path / "ws")
    source = tmp_path / "src"
    source.mkdir()
    with (source / "big.bin").open("wb") as fh:  # sparse: cheap to make, slow enough to copy
        fh.truncate(3 * 1024**3)
    root = Path(ws.artifacts.local_path("datastores/workspaceblobstore"))

    def partials() -> list[str]:  # wherever the upload keeps its partial copy, listed or not
        return [str(p) for p in root.rglob("*") if p.is_file() and p.name != "big.bin"]

    try:
        proc = subprocess.Popen([sys.executable, "-c", UPLOAD, str(ws.path), str(source)])
        try:
            deadline = time.monotonic() + 60
            seen: list[str] = []
            while time.monotonic() < deadline and proc.poll() is None and not seen:
                seen = partials()
        finally:
            proc.kill()
            proc.wait()
        if not seen:
            pytest.skip("the copy finished before a partial file could be seen; nothing shown")
        assert partials(), "the killed upload left no partial copy to check against"
        store = ws.get_default_datastore()
        listed = [f.path for f in store.backend().list_files("")]
        with pytest.raises(InvalidInputError, match="matched no files"):  # nothing a dataset could read
            Dataset.File.from_files((store, "**"))
    finally:
        shutil.rmtree(root, ignore_errors=True)  # up to 3 GiB: do not leave it in the tmp folder
    assert listed == [], listed


# -- 6. datastore credentials travel in snapshots -------------------------------------------------------------
def test_datastore_secrets_never_reach_a_snapshot(tmp_path: Path) -> None:
    """core/snapshot.py skips a workspace folder only when it holds runyard.db (WORKSPACE_MARKER) or is
    named .runyard/. A workspace folder inside the project whose database lives elsewhere (PostgreSQL,
    or sqlite:////abs/path) holds config.json and data/secrets.py's secrets.json but no runyard.db, so
    every ScriptRunConfig / pipeline step over the project folder copies secrets.json (the datastores'
    account keys) into the content-addressed snapshot store (readable by any read token of a server
    workspace, kept for ever) and into every job's working folder.

    Fix: snapshots always leave out secrets.json (add it to ALWAYS_IGNORED) and treat a folder holding
    a workspace config.json (or secrets.json) as a workspace, like runyard.db; docs/datastores.md
    should say credentials never leave the workspace folder."""
    project = tmp_path / "project"
    project.mkdir()
    ws = Workspace.create(
        project / "team_ws", tracking_uri=f"sqlite:///{tmp_path / 'elsewhere.db'}", show_output=False
    )
    Datastore.register_fsspec(ws, "lake", "s3://bucket/data", key="AKIAEXAMPLE", secret="TOPSECRET-9f1c")
    (project / "job.py").write_text(
        "import pathlib\n"
        "p = pathlib.Path('team_ws/secrets.json')\n"
        "print('SECRETS IN JOB:', p.read_text() if p.exists() else 'absent')\n"
    )
    run = Experiment(ws, "snap").submit(ScriptRunConfig(str(project), "job.py"))
    run.wait_for_completion(show_output=False)
    log = run.read_log().decode()
    assert run.get_status() == "Completed", log
    assert "TOPSECRET-9f1c" not in log, log


# -- 7. credentials inside a datastore URL are stored in clear text ---------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAEXAMPLE:TOPSECRET-77@bucket/data",  # user:password@ (fsspec reads it as key/secret)
        "az://container/data?sv=2022-11-02&sig=TOPSECRET-77",  # a SAS token pasted as the query
    ],
)
def test_a_datastore_url_holding_a_credential_is_refused(tmp_path: Path, url: str) -> None:
    """store/validation.py check_datastore_url accepts a URL with userinfo or a query string, so the
    credential in it lands in the database in clear text and GET /api/v1/datastores hands it to every
    token, run tokens included. Issue 12: "Credentials are not stored in the database in clear text";
    studio/dataset_views.shown_url even says "The store refuses such URLs already" (it does not; the
    studio only hides them).

    Fix: check_datastore_url refuses a URL whose netloc has '@' with a ':' in the userinfo (or any
    userinfo, except abfs's container@account form) and any query string or fragment, with a message
    that says to pass the key to register_* (secrets file) or RUNYARD_DATASTORE_<NAME>_<OPTION>."""
    ws = Workspace.create(tmp_path / "ws", show_output=False)
    try:
        Datastore.register_fsspec(ws, "lake", url)
    except InvalidInputError:
        return
    stored = ws.store.get_datastore("lake")
    assert "TOPSECRET-77" not in stored.url, f"the database holds the credential: {stored.url}"


# -- 8. a record's content hash is believed, not computed ---------------------------------------------------
def test_a_version_with_other_files_never_fingerprints_like_the_old_one(tmp_path: Path) -> None:
    """store/validation.validate_dataset checks that content_hash *looks like* a sha256, never that it is
    data/hashing.content_hash(files). Step fingerprints use the record's content_hash for a registered
    input (engine/dataset_inputs.resolve_dataset: `content = record.content_hash`), and locate_record only
    checks each file against its own recorded hash. So a version registered over REST (any write or run
    token, or a buggy client) with new files but the previous version's content_hash fingerprints exactly
    like the previous version: a step that read version 1 is reused for version 2 although the bytes
    differ, the silent stale reuse issue 12 forbids.

    Fix: SqlStore.register_dataset recomputes content_hash from the files (content_hash(ResolvedFile...)),
    refusing a record whose given hash differs (or simply storing the computed one)."""
    from runyard.data.dataset import dataset_payload
    from runyard.data.hashing import ResolvedFile, content_hash
    from runyard.engine.dataset_inputs import resolve_dataset
    from runyard.store.records import DatasetRecord

    ws = Workspace.create(tmp_path / "ws", show_output=False)
    _put(ws, "v1/data.csv", "a\n1\n")
    _put(ws, "v2/data.csv", "a\n2\n")
    store_ = ws.get_default_datastore()
    first = Dataset.Tabular.from_delimited_files((store_, "v1/data.csv")).register(ws, "numbers")
    second_files = [
        ResolvedFile("workspaceblobstore", "v2/data.csv", 4, hashlib.sha256(b"a\n2\n").hexdigest()).to_json()
    ]
    forged = DatasetRecord(
        id="",
        name="numbers",
        version=0,
        kind="tabular",
        definition=dict(first._record.definition),  # type: ignore[union-attr]
        files=second_files,
        content_hash=str(first.content_hash),  # version 1's hash, version 2's files
        created_time=time.time(),
    )
    try:
        second = ws.store.register_dataset(forged, create_new_version=True)
    except InvalidInputError:
        return
    old = resolve_dataset(ws, "numbers", "direct", dataset_payload(first))
    new = resolve_dataset(ws, "numbers", "direct", dataset_payload(Dataset.get_by_name(ws, "numbers", 2)))
    assert old.content_hash != new.content_hash, "versions 1 and 2 give a step the same fingerprint input"
    assert second.content_hash == content_hash([ResolvedFile.from_json(f) for f in second.files]), (
        "the store kept a content_hash that is not the hash of the version's files"
    )


# -- 9. a partition_format that takes the server down ---------------------------------------------------------
def test_a_partition_format_matches_in_linear_time() -> None:
    """data/partition_format.py turns each '*' into '.*?' and each '{x}' into '[^/]+?' and runs
    regex.search on every file's path: a format like '*a*a*a*a*a*a*a*a*a*a*x' backtracks polynomially
    (8 stars on a 40-character path: ~3 s; 12 on 60: hours). A definition with such a partition_format
    is accepted over REST (validate_dataset does not even parse definitions), and the studio previews
    every tabular version on each page view, so one record from any write or run token pins a server
    thread per visit (and any step reading the dataset hangs).

    Fix: make '*' match within one folder ('[^/]*', as v1's globs) and match folder by folder, or cap
    the number of wildcards/keys in a partition_format (refused in DatasetDefinition), or both."""
    code = (
        "from runyard.data.partition_format import PartitionFormat\n"
        "PartitionFormat('*a' * 12 + 'x').values('/' + 'a' * 60)\n"
    )
    try:
        done = subprocess.run([sys.executable, "-c", code], timeout=10, capture_output=True)
    except subprocess.TimeoutExpired:
        pytest.fail("PartitionFormat.values ran for more than 10 s on a 61-character path")
    assert done.returncode == 0, done.stderr.decode()


# -- 10. a "read-only" mount writes through to the datastore ---------------------------------------------
def test_writing_into_a_mount_never_changes_the_datastore(tmp_path: Path) -> None:
    """data/materialize.py mounts a local datastore's files as symlinks to the datastore's own files
    ("a read-only view"), but nothing makes them read-only: a job that opens a mounted file for writing
    (an in-place pandas to_csv, an append, a tool that normalises its input) rewrites the datastore's
    master copy, i.e. every registered version over it and every other job's input. v1 mounts are
    read-only FUSE mounts, where the same write fails.

    Fix: mount local files so that a write cannot reach the datastore: links to read-only (0444)
    content-addressed copies in the workspace cache (verified by hash, shared between jobs), or a
    reflink/copy; at least, a write must fail rather than change the datastore."""
    ws = Workspace.create(tmp_path / "ws", show_output=False)
    _put(ws, "mounted/data.csv", "a\n1\n")
    master = Path(ws.artifacts.local_path("datastores/workspaceblobstore/mounted/data.csv"))
    dataset = Dataset.File.from_files((ws.get_default_datastore(), "mounted/data.csv"))
    with dataset.mount() as ctx:
        try:
            with open(os.path.join(ctx.mount_point, "data.csv"), "a") as fh:
                fh.write("2\n")
        except OSError:
            pass  # refused: the fix
    assert master.read_text() == "a\n1\n", "a write into the mount changed the datastore's file"


# -- 11. concurrent registrations lose each other's credentials ---------------------------------------------
REGISTER_MANY = """
import sys
from runyard import Workspace
from runyard.data import Datastore
ws = Workspace.get(sys.argv[1])
for i in range(40):
    Datastore.register_fsspec(ws, f"{sys.argv[2]}_{i}", "s3://bucket/x", key="k", secret=f"s-{sys.argv[2]}-{i}")
"""


def test_datastores_registered_at_once_by_two_processes_keep_their_secrets(tmp_path: Path) -> None:
    """data/secrets.save_secrets reads secrets.json, changes one entry and writes the whole file back under
    a *threading* lock only: two processes (two notebooks, a CI job and a shell) registering datastores at
    the same time overwrite each other's entries. The database then lists a datastore whose credentials
    are gone (measured: 15 to 66 of 120 lost with three processes); it fails later, far from the cause, with an
    authentication error against the store.

    Fix: a cross-process lock (fcntl.flock on a `secrets.json.lock` beside it) around the
    read-modify-write in save_secrets and restore_secrets."""
    ws = Workspace.create(tmp_path / "ws", show_output=False)
    procs = [
        subprocess.Popen([sys.executable, "-c", REGISTER_MANY, str(ws.path), name])
        for name in ("a", "b", "c")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    names = sorted(d.name for d in ws.store.list_datastores())
    assert len(names) == 120
    lost = [name for name in names if not stored_secrets(ws.path, name)]
    assert lost == [], f"{len(lost)} datastores lost their secrets: {lost[:5]}..."


# -- 12. parallel readers of one file on a server workspace break each other ------------------------------
def test_parallel_downloads_of_one_file_from_a_server_workspace_all_succeed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a server workspace, workspaceblobstore files are fetched into the shared cache folder
    (ArtifactBackend.fetch -> RestArtifactStore.get_file), whose temporary file has a FIXED name,
    `.<name>.part`, next to the target. Two readers of the same file at once (parallel pipeline steps
    reading one dataset, hashing for reuse, threads of one job) open, truncate and rename the same
    temporary file: the others fail with FileNotFoundError on the rename (3 of 4 here), and a reader
    can rename a file another reader has just truncated, i.e. hash or read a prefix of the data.

    Fix: a unique temporary name per download (`.<name>.part-<uuid>`, as LocalBackend.put_file does),
    renamed into place with os.replace (the last complete copy wins; every copy is whole)."""
    monkeypatch.setenv("RUNYARD_CACHE_DIR", str(tmp_path / "cache"))
    served = _served(tmp_path)
    token, _ = create_token(served.store, "write", name="w")  # type: ignore[arg-type]
    data = os.urandom(32 * 1024 * 1024)
    big = Path(served.artifacts.local_path("datastores/workspaceblobstore/big.bin"))
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(data)
    want = hashlib.sha256(data).hexdigest()
    results: list[str] = []
    with running_server(served.path, tmp_path / "server.log", auth=True) as server:
        ws = Workspace.get(server.url, token=token)
        dataset = Dataset.File.from_files((ws.get_default_datastore(), "big.bin"))

        def download(i: int) -> None:
            try:
                (path,) = dataset.download(str(tmp_path / f"copy{i}"))
                results.append(
                    "ok" if hashlib.sha256(Path(path).read_bytes()).hexdigest() == want else "wrong bytes"
                )
            except Exception as exc:  # what a reader sees is the finding
                results.append(f"{type(exc).__name__}: {exc}"[:160])

        threads = [threading.Thread(target=download, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == ["ok"] * 4, results
