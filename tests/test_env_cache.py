"""The build cache is trusted only when it is the user's own, and builds leak nothing: real cache folders,
real uv builds (offline: runyard's layer only, or a hand-made wheel), real lock holders in subprocesses.

Each test builds into a cache of its own (RUNYARD_ENV_CACHE under tmp_path): it changes the cache's
permissions, plants things in it, or prunes it.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runyard.config import env_cache_dir
from runyard.environments import build, layer
from runyard.environments.build import list_leftovers, prepare_environment, remove_leftover
from runyard.environments.plan import plan_environment
from runyard.environments.redact import redact_urls
from runyard.errors import EnvironmentBuildError
from test_env_build import _tiny_wheel

NOBODY = 65534


def definition(name: str, *pip: str) -> dict[str, Any]:
    return {"name": name, "python": {"condaDependencies": {"dependencies": [{"pip": list(pip)}]}}}


LAYER_ONLY = definition("layer-only", "azureml-defaults")  # builds offline: runyard's layer alone


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(folder))
    return folder


def test_redact_urls_masks_passwords_and_lone_user_names() -> None:
    said = redact_urls(
        "$ uv pip install --index-url 'https://alice:s3cret@pkgs.example/simple' "
        "x @ git+https://ghp_token@github.com/o/r.git@v1 y @ file:///tmp/y.whl https://host/p?q=a@b"
    )
    assert "s3cret" not in said and "ghp_token" not in said
    assert "https://alice:****@pkgs.example/simple" in said
    assert "git+https://****@github.com/o/r.git@v1" in said
    assert "file:///tmp/y.whl" in said and "https://host/p?q=a@b" in said  # nothing to mask there


def test_the_cache_is_created_private_and_refused_when_others_can_write_it(cache: Path) -> None:
    prepared = prepare_environment(plan_environment(LAYER_ONLY))
    assert prepared.built and stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE((cache / "locks").stat().st_mode) == 0o700
    os.chmod(cache, 0o775)  # a team sharing it
    with pytest.raises(EnvironmentBuildError, match=r"cannot be trusted.*chmod 700"):
        prepare_environment(plan_environment(LAYER_ONLY))
    with pytest.raises(EnvironmentBuildError, match="cannot be trusted"):
        build.list_builds()  # `runyard env list --builds` and prune say so too
    os.chmod(cache, 0o755)  # readable by others is fine: only writing plants builds
    assert prepare_environment(plan_environment(LAYER_ONLY)).built is False


@pytest.mark.skipif(os.geteuid() != 0, reason="making a folder another user's needs root")
def test_another_users_cache_and_build_are_not_used(cache: Path) -> None:
    plan = plan_environment(LAYER_ONLY)
    first = prepare_environment(plan)
    target = Path(first.location)
    os.lchown(target / "runyard-env.json", NOBODY, NOBODY)  # a marker planted by someone else
    again = prepare_environment(plan)
    assert again.built, "a build whose marker is another user's was reused"
    assert os.lstat(Path(again.location) / "runyard-env.json").st_uid == 0
    os.chown(cache, NOBODY, NOBODY)
    with pytest.raises(EnvironmentBuildError, match="belongs to user id 65534"):
        prepare_environment(plan)


def test_a_planted_lock_symlink_is_refused_and_its_target_untouched(cache: Path, tmp_path: Path) -> None:
    plan = plan_environment(LAYER_ONLY)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    (cache / "locks").mkdir(parents=True, mode=0o700)
    os.chmod(cache, 0o700)
    lock = cache / "locks" / f"{plan.hash}.lock"
    lock.symlink_to(victim)
    with pytest.raises(EnvironmentBuildError, match=r"not a plain file of yours.*rm "):
        prepare_environment(plan)
    assert victim.read_text() == "keep\n"
    lock.unlink()
    assert prepare_environment(plan).built and lock.is_file() and not lock.is_symlink()


def test_a_relative_cache_setting_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RUNYARD_ENV_CACHE", "rel/cache")
    assert env_cache_dir() == tmp_path / "rel" / "cache"
    monkeypatch.delenv("RUNYARD_ENV_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "relative-xdg")  # the XDG spec: ignored when relative
    assert env_cache_dir() == Path.home().absolute() / ".cache" / "runyard" / "envs"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert env_cache_dir() == tmp_path / "xdg" / "runyard" / "envs"


def test_build_commands_get_no_runyard_or_azureml_variables(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pip fallback's commands and uv's environment: no workspace token, no run identity."""
    for key in ("RUNYARD_TOKEN", "RUNYARD_RUN_ID", "AZUREML_RUN_ID", "RUNYARD_TRACKING_URI"):
        monkeypatch.setenv(key, "secret-" + key)
    monkeypatch.setenv("UV_INDEX_URL", "https://pkgs.example/simple")  # uv's own settings stay
    log = build._Log(os.open(os.devnull, os.O_RDONLY), tmp_path)
    done = log.run([sys.executable, "-c", "import json, os; print(json.dumps(sorted(os.environ)))"])
    seen = json.loads(done.stdout)
    assert not [key for key in seen if key.startswith(("RUNYARD_", "AZUREML_"))]
    uv_env = build._uv_env()
    assert uv_env["UV_INDEX_URL"] == "https://pkgs.example/simple"
    assert not [key for key in uv_env if key.startswith(("RUNYARD_", "AZUREML_"))]


def test_index_credentials_never_reach_the_build_log_or_marker(cache: Path, tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _tiny_wheel(wheels)
    plan = plan_environment(
        definition(
            "private",
            f"--find-links {wheels}",
            "--extra-index-url http://alice:s3cret-token@127.0.0.1:9/simple",
            "runyardtinywheel==1.0",
        )
    )
    prepared = prepare_environment(plan)
    assert prepared.built
    marker = (Path(prepared.location) / "runyard-env.json").read_text()
    written_log = (Path(prepared.location) / "build-log.txt").read_text()
    for text in (prepared.build_log, written_log, marker):
        assert "s3cret-token" not in text and "alice:****@127.0.0.1:9" in text


def test_a_build_broken_meanwhile_is_built_again(cache: Path) -> None:
    """A cache hit whose folder lost its files (a prune or a hand racing it) rebuilds, never a bare
    FileNotFoundError."""
    plan = plan_environment(LAYER_ONLY)
    first = prepare_environment(plan)
    shutil.rmtree(layer.site_packages(Path(first.location), plan.python))
    said: list[str] = []
    again = prepare_environment(plan, said.append)
    assert again.built and any("building it again" in line for line in said)
    done = subprocess.run([again.python, "-c", "import runyard; print('ok')"], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr


def test_leftovers_are_removed_only_when_no_one_holds_their_lock(cache: Path) -> None:
    plan = plan_environment(LAYER_ONLY)
    prepare_environment(plan)  # makes the cache and its locks folder
    busy = cache / f".{plan.hash}.building-999999"
    dead = cache / f".{'c' * 64}.removing-999999"
    for folder in (busy, dead):
        (folder / "lib").mkdir(parents=True)
        (folder / "lib" / "data.bin").write_bytes(b"x" * 1000)
    (cache / ".not-a-leftover").mkdir()
    assert sorted(x.kind for x in list_leftovers()) == ["building", "removing"]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(cache / "locks" / f"{plan.hash}.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert remove_leftover(str(busy)) is False and busy.exists()  # its builder is alive
        assert remove_leftover(str(dead)) is True and not dead.exists()
    finally:
        holder.kill()
        holder.wait()
    assert remove_leftover(str(busy)) is True and not busy.exists()
    assert remove_leftover(str(cache / ".not-a-leftover")) is False
    assert remove_leftover(str(cache.parent / f".{'d' * 64}.building-1")) is False  # outside the cache


def test_the_interpreter_cache_is_private_and_only_ours_is_read(cache: Path) -> None:
    """interpreters.json (interpreter versions, which interpreters import runyard) is written into a 0o700
    cache; a file someone else owns is ignored, not believed."""
    from runyard.environments import interpreters

    interpreters.full_versions(["/usr/bin/python3.11", "/bin/sh"])  # a probe (or a failed one) writes it
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    saved = json.loads((cache / "interpreters.json").read_text())
    assert interpreters._read_cache() == saved and saved
    assert interpreters.has_runyard(sys.executable)
    if os.geteuid() == 0:
        os.chown(cache / "interpreters.json", NOBODY, NOBODY)
        assert interpreters._read_cache() == {}


def test_a_layer_created_in_a_new_cache_is_private(cache: Path) -> None:
    folder = layer.layer_folder(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
