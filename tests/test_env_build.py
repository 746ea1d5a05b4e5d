"""Environment builds for real: uv, the package index, subprocesses racing for one build, a build killed
halfway, and jobs importing runyard from inside the built environment.

Tests that need the package index skip when it is unreachable. Builds go to the session-wide cache
(RUNYARD_ENV_CACHE, set by conftest) unless a test needs a cache of its own to watch it being built.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from runyard.environments import build, layer
from runyard.environments.build import index_reachable, list_builds, prepare_environment, remove_build
from runyard.environments.interpreters import find_interpreter
from runyard.environments.plan import BuildPlan, plan_environment
from runyard.errors import EnvironmentBuildError

INDEX_PROBLEM = index_reachable()
needs_index = pytest.mark.skipif(
    INDEX_PROBLEM is not None, reason=f"the package index is unreachable ({INDEX_PROBLEM})"
)

PREPARE = textwrap.dedent(
    """
    import json, sys
    from runyard.environments.build import prepare_environment
    from runyard.environments.plan import plan_environment
    said = []
    prepared = prepare_environment(plan_environment(json.loads(sys.argv[1])), said.append)
    print(json.dumps({"built": prepared.built, "waited": prepared.waited, "said": said}))
    """
)


def definition(name: str, *pip: str, python: str | None = None) -> dict[str, Any]:
    dependencies: list[Any] = [f"python={python}"] if python else []
    return {
        "name": name,
        "python": {"condaDependencies": {"dependencies": [*dependencies, {"pip": list(pip)}]}},
    }


def run_in(prepared_python: str, code: str) -> str:
    done = subprocess.run([prepared_python, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def start_prepare(defn: dict[str, Any], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", PREPARE, json.dumps(defn)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def small_env(env_cache: Path) -> Iterator[BuildPlan]:
    """tabulate plus an older six than runyard's own (six comes with runyard through python-dateutil),
    built once for this module in the session's cache."""
    if INDEX_PROBLEM is not None:
        pytest.skip(f"the package index is unreachable ({INDEX_PROBLEM})")
    with pytest.MonkeyPatch.context() as patch:  # module fixtures run before conftest's per-test setting
        patch.setenv("RUNYARD_ENV_CACHE", str(env_cache))
        plan = plan_environment(definition("small", "tabulate==0.9.0", "six==1.16.0", "azureml-defaults"))
        first = prepare_environment(plan)
        assert first.location.startswith(str(env_cache)) and Path(first.python).exists()
        yield plan


@needs_index
def test_a_small_real_package_is_built_then_reused(small_env: BuildPlan) -> None:
    again = prepare_environment(small_env)
    assert (again.built, again.build_log, again.waited) == (False, "", False)
    assert again.seconds < 0.05
    assert run_in(again.python, "import tabulate; print(tabulate.__version__)") == "0.9.0"
    log = (Path(again.location) / build.LOG_FILE).read_text()
    assert "uv pip install" in log and "azureml-defaults: provided by runyard" in log
    # six is in runyard's closure at another version: the environment's copy wins, so the build checked
    assert (
        f"the environment installs its own six 1.16.0 (runyard has {importlib.metadata.version('six')})"
        in log
    )
    assert any(info.hash == small_env.hash and info.name == "small" for info in list_builds())


@needs_index
def test_the_environments_own_version_wins_over_runyards(small_env: BuildPlan) -> None:
    assert importlib.metadata.version("six") != "1.16.0", "pick a six runyard's closure does not have"
    prepared = prepare_environment(small_env)
    assert run_in(prepared.python, "import six; print(six.__version__)") == "1.16.0"
    # runyard and its dependencies come from the layer; other packages of runyard's venv do not
    out = run_in(
        prepared.python, "import runyard, pandas; from runyard.v1.core import Run; print(runyard.__version__)"
    )
    assert out == importlib.metadata.version("runyard")
    missing = subprocess.run([prepared.python, "-c", "import pytest"], capture_output=True, text=True)
    assert "ModuleNotFoundError" in missing.stderr


def test_azureml_defaults_alone_builds_a_layer_only_environment_offline() -> None:
    plan = plan_environment(
        definition("azureml-only", "azureml-defaults", "azureml-core==1.61.0", python="3.8")
    )
    assert plan.requirements == () and plan.satisfied_by_runyard
    prepared = prepare_environment(plan)
    assert prepared.built or prepared.location
    assert run_in(prepared.python, "from runyard.v1.core import Run; import runyard; print('ok')") == "ok"
    if prepared.built:
        assert "uv pip install" not in prepared.build_log
        assert "azureml-defaults: provided by runyard" in prepared.build_log


def test_a_stale_layer_file_is_rewritten_when_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """runyard upgraded or moved: reusing the environment points its .pth at the current layer. (A cache of
    its own: other tests' jobs use the shared layer-only environment.)"""
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    plan = plan_environment(definition("azureml-only", "azureml-defaults", python="3.8"))
    prepared = prepare_environment(plan)
    pth = layer.site_packages(Path(prepared.location), plan.python) / layer.PTH_NAME
    pth.write_text("/nowhere/old-layer\n")
    prepare_environment(plan)
    assert pth.read_text() == f"{layer.layer_folder(plan.python)}\n"


@needs_index
def test_two_concurrent_first_uses_build_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    defn = definition("raced", "tabulate==0.8.10")
    procs = [start_prepare(defn) for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["built"] for r in results) == [False, True]
    waiter = next(r for r in results if not r["built"])
    if waiter["waited"]:
        assert any("waiting for process" in line and "'raced'" in line for line in waiter["said"])
    assert [info.name for info in list_builds()] == ["raced"]


@needs_index
def test_a_failed_build_caches_nothing_and_the_next_try_rebuilds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    plan = plan_environment(definition("broken", "runyard-no-such-package-zzz==1.0"))
    for _attempt in range(2):
        with pytest.raises(EnvironmentBuildError) as caught:
            prepare_environment(plan)
        message = str(caught.value)
        assert "'broken'" in message and "runyard-no-such-package-zzz" in message
        # uv's own words: "not found in the package registry" (its wording varies with what the index said)
        assert "unsatisfiable" in message or "not found in the package registry" in message
        assert "uv pip install" in caught.value.log and "FAILED" in caught.value.log
        assert not (tmp_path / plan.hash).exists()
        assert not list(tmp_path.glob(f".{plan.hash}*"))
    assert list_builds() == []


@needs_index
def test_a_killed_build_is_never_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    defn = definition("killed", "tabulate==0.9.0")
    plan = plan_environment(defn)
    # a cold uv cache makes uv download, so the install is surely still running when it is frozen
    proc = start_prepare(defn, UV_CACHE_DIR=str(tmp_path / "uv-cache"))
    installer = None
    deadline = time.monotonic() + 60
    while installer is None and time.monotonic() < deadline:
        for child in psutil.Process(proc.pid).children(recursive=True):
            try:
                if "install" in child.cmdline():
                    installer = child
            except psutil.Error:
                pass
        time.sleep(0.002)
    assert installer is not None, "the build never reached `uv pip install`"
    installer.suspend()  # frozen mid-install; then the whole build dies at once
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / plan.hash).exists()
    assert list(tmp_path.glob(f".{plan.hash}.building-*")), "the half-built folder is left behind"
    prepared = prepare_environment(plan)
    assert prepared.built and not list(tmp_path.glob(f".{plan.hash}.building-*"))
    assert run_in(prepared.python, "import tabulate; print(tabulate.__version__)") == "0.9.0"


def test_the_package_index_unreachable_fails_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    plan = plan_environment(definition("offline", "--index-url http://127.0.0.1:9/simple", "tabulate==0.9.0"))
    start = time.monotonic()
    with pytest.raises(EnvironmentBuildError) as caught:
        prepare_environment(plan)
    assert time.monotonic() - start < 15
    message = str(caught.value)
    assert "http://127.0.0.1:9/simple is unreachable" in message and "tabulate==0.9.0" in message
    assert "UV_INDEX_URL" in message
    assert not (tmp_path / plan.hash).exists()


@needs_index
@pytest.mark.skipif(
    find_interpreter("3.12") is None or sys.version_info[:2] == (3, 12), reason="no Python 3.12"
)
def test_an_environment_on_another_python_version(small_env: BuildPlan) -> None:
    """Built with the 3.12 interpreter; runyard's own requirements are installed for it (compiled wheels)."""
    plan = plan_environment(definition("py312", "six==1.16.0", python="3.12"))
    prepared = prepare_environment(plan)
    out = run_in(
        prepared.python, "import sys, six, runyard, pandas; print(sys.version_info[:2], six.__version__)"
    )
    assert out == "(3, 12) 1.16.0"


def test_remove_build_under_its_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    plan = plan_environment(definition("removable", "azureml-defaults"))
    prepared = prepare_environment(plan)
    assert [info.hash for info in list_builds()] == [plan.hash]
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)",
         str(tmp_path / "locks" / f"{plan.hash}.lock")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert remove_build(plan.hash) is False
    finally:
        holder.kill()
        holder.wait()
    assert remove_build(plan.hash) is True
    assert not Path(prepared.location).exists() and list_builds() == []
    assert remove_build(plan.hash) is False and remove_build("../etc") is False


def test_the_pip_fallback_when_uv_is_unusable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`python -m venv` + pip: scripts in bin/ point at the final folder after the rename."""
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    plan = plan_environment(definition("fallback", "azureml-defaults"))
    temp, target = tmp_path / f".{plan.hash}.building-1", tmp_path / plan.hash
    log = build._Log(os.open(os.devnull, os.O_RDONLY), tmp_path)
    assert build._create_and_install(plan, temp, target, log, uv=None) == "pip"
    os.rename(temp, target)
    assert run_in(str(target / "bin" / "python"), "import runyard; print('ok')") == "ok"
    activate = (target / "bin" / "activate").read_text()
    assert str(target) in activate and str(temp) not in activate
    assert "-m venv" in log.text()


def _tiny_wheel(folder: Path) -> Path:
    """A real (hand-made) pure-Python wheel, as add_private_pip_wheel stores one."""
    files = {
        "runyardtinywheel.py": b"VALUE = 42\n",
        "runyardtinywheel-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: runyardtinywheel\nVersion: 1.0\n",
        "runyardtinywheel-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [
        f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for name, data in files.items()
    ]
    files["runyardtinywheel-1.0.dist-info/RECORD"] = (
        "\n".join([*record, "runyardtinywheel-1.0.dist-info/RECORD,,"]) + "\n"
    ).encode()
    wheel = folder / "runyardtinywheel-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def test_a_wheel_given_by_its_path_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """add_private_pip_wheel returns a local path, which users add as a pip package: no index needed."""
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path / "cache"))
    wheel = _tiny_wheel(tmp_path)
    plan = plan_environment(definition("wheel", str(wheel)))
    assert plan.requirements == (f"runyardtinywheel @ {wheel.as_uri()}",)
    prepared = prepare_environment(plan)
    assert run_in(prepared.python, "import runyardtinywheel; print(runyardtinywheel.VALUE)") == "42"
    # nothing of runyard's layer replaced: the build skips the (seconds-long) check that runyard imports
    assert "replaces none of runyard's own packages (at another version): no import check needed" in (
        prepared.build_log
    )


@needs_index
def test_a_numpy_1_pin_gets_runyards_data_stack_built_for_it(env_cache: Path) -> None:
    """numpy<2 against the layer's pyarrow 26 (built for NumPy 2, not declaring it): the build installs
    runyard's own requirements with the pin, plus pyarrow<26, and a job's `from azureml.core import Run` works."""
    prepared = prepare_environment(plan_environment(definition("numpy1", "numpy==1.26.4")))
    out = run_in(prepared.python, "from runyard.v1.core import Run; import numpy; print(numpy.__version__)")
    assert out == "1.26.4"
    import_check = run_in(prepared.python, "import pyarrow, pandas; print(pyarrow.__version__)")
    assert int(import_check.split(".")[0]) < 26
    if prepared.built:  # a rerun of the session may find it built
        assert "installing runyard's own requirements into the environment" in prepared.build_log
        assert (
            "pyarrow<26" in prepared.build_log
            and "runyard imports in the environment now" in prepared.build_log
        )


@needs_index
def test_a_pin_no_data_stack_fits_fails_naming_the_conflict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    plan = plan_environment(definition("np-arrow", "numpy==1.26.4", "pyarrow==26.0.1"))
    with pytest.raises(EnvironmentBuildError) as caught:
        prepare_environment(plan)
    message = str(caught.value)
    assert (
        "environment 'np-arrow' pins numpy==1.26.4, pyarrow==26.0.1, but runyard's data features need"
        in message
    )
    assert "pyarrow<26 with NumPy 1.x" in message and "Loosen the pin" in message
    assert not (tmp_path / plan.hash).exists()


@needs_index
def test_forced_colour_never_reaches_the_log_or_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jupyter's kernel sets FORCE_COLOR and CLICOLOR_FORCE: uv gets NO_COLOR and `--color never`; the
    offline attempt's miss is logged as expected; a replaced Python 3.8 is named in the error."""
    monkeypatch.setenv("RUNYARD_ENV_CACHE", str(tmp_path))
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("CLICOLOR_FORCE", "1")
    plan = plan_environment(definition("colour", "runyard-no-such-package-zzz==1.0", python="3.8"))
    with pytest.raises(EnvironmentBuildError) as caught:
        prepare_environment(plan)
    message, log = str(caught.value), caught.value.log
    assert "\x1b[" not in message and "\x1b[" not in log
    assert "(cache miss, expected:" in log and "--color never" in log
    assert "asks for Python 3.8, which runyard replaced with Python" in message
    assert "Pin versions that have wheels for Python" in message


def test_key_lines_drop_colour_frames_and_uvs_project_hints() -> None:
    """uv's output for an old sdist that fails to build (as scikit-learn==0.22.1 does on Python 3.11)."""
    from runyard.environments.buildlog import key_lines

    output = textwrap.dedent(
        """\
        Resolved 5 packages in 742ms
        \x1b[31merror\x1b[0m: Failed to build `scikit-learn==0.22.1`
          cause: The build backend returned an error

                 [stderr]
                 Traceback (most recent call last):
                   File "<string>", line 14, in <module>
                     return self._get_build_requires(config_settings, requirements=[])
                            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
                 ModuleNotFoundError: No module named 'pkg_resources'

        {hint}

        [tool.uv.extra-build-dependencies]
        scikit-learn = ["pkg_resources"]

        or `uv pip install pkg_resources` into the environment and re-run with `--no-build-isolation`.
        """
    ).format(
        hint="hint: This error likely indicates that `scikit-learn@0.22.1` depends on `pkg_resources`, but "
        "doesn't declare it as a build dependency. Otherwise, either add it to your `pyproject.toml` under:"
    )
    lines = key_lines(output).split("\n  ")
    assert lines == [
        "error: Failed to build `scikit-learn==0.22.1`",
        "  cause: The build backend returned an error",
        "         [stderr]",
        "         ModuleNotFoundError: No module named 'pkg_resources'",
        "hint: This error likely indicates that `scikit-learn@0.22.1` depends on `pkg_resources`, but "
        "doesn't declare it as a build dependency.",
    ]


def test_abi_constraints_follow_a_numpy_pin_below_2() -> None:
    assert layer.abi_constraints(["numpy==1.26.4"]) == ["pyarrow<26"]
    assert layer.abi_constraints(["numpy<2", "tabulate"]) == ["pyarrow<26"]
    assert layer.abi_constraints(["numpy>=1.20"]) == [] and layer.abi_constraints(["numpy"]) == []
    assert layer.abi_constraints(["numpy==2.1.0", "pandas<3"]) == []


def test_a_user_managed_interpreter_without_runyard_is_refused(tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    python = str(bare / "bin" / "python")
    plan = plan_environment(
        {"name": "system", "python": {"userManagedDependencies": True, "interpreterPath": python}}
    )
    version = run_in(python, "import platform; print(platform.python_version())")
    with pytest.raises(EnvironmentBuildError) as caught:
        prepare_environment(plan)
    assert str(caught.value).startswith(f"runyard is not installed in {python} (Python {version})")
    assert "python.user_managed_dependencies=False" in str(caught.value)
    mine = plan_environment(
        {"name": "mine", "python": {"userManagedDependencies": True, "interpreterPath": sys.executable}}
    )
    assert prepare_environment(mine).python == sys.executable
