"""BuildPlan -> a ready virtual environment: one per content hash, built once, reused in milliseconds.

<cache>/<hash>/ is a finished environment exactly when its ready marker `runyard-env.json` exists. A build
happens under an flock on <cache>/locks/<hash>.lock (a second process needing the same hash waits, and
says so), in <cache>/.<hash>.building-<pid>, which is renamed into place only after the marker is written:
a failed or killed build leaves at most a .building folder, which the next builder (holding the lock, so
its owner is dead) removes. The lock's file descriptor is passed to uv, so a builder killed mid-install
keeps the lock until its uv child is gone too.

uv creates the environment (`uv venv --relocatable`, then `uv pip install`), first offline from uv's
cache, then from the index after checking it answers; `python -m venv` + pip stand in only when uv cannot
run. Every command and its output go into the build log (20_image_build_log.txt of the run that built it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import runyard
from runyard.environments import interpreters, layer
from runyard.environments.buildlog import BuildLog as _Log
from runyard.environments.buildlog import build_env as _build_env
from runyard.environments.buildlog import default_index, index_reachable, option_args
from runyard.environments.buildlog import key_lines as _key_lines
from runyard.environments.buildlog import uv_env as _uv_env
from runyard.environments.cache import (
    LAST_USED,
    MARKER,
    BuildInfo,
    Leftover,
    cache_dir,
    list_builds,
    list_leftovers,
    open_lock,
    owned,
    remove_build,
    remove_leftover,
    trusted_root,
    write_holder,
)
from runyard.environments.interpreters import current_version
from runyard.environments.plan import BuildPlan
from runyard.environments.redact import redact_urls
from runyard.errors import EnvironmentBuildError

__all__ = [
    "BuildInfo", "Leftover", "PreparedEnvironment", "cache_dir", "default_index", "index_reachable",
    "list_builds", "list_leftovers", "prepare_environment", "remove_build", "remove_leftover",
]  # fmt: skip
LOG_FILE = "build-log.txt"


@dataclass(frozen=True)
class PreparedEnvironment:
    plan: BuildPlan
    python: str  # the executable to start the job with
    built: bool  # this call built it (so the caller writes 20_image_build_log.txt)
    build_log: str  # "" when reused
    location: str  # the venv folder ("" when user-managed)
    seconds: float
    waited: bool  # another process was building the same hash and this call waited for it


def _label(plan: BuildPlan) -> str:
    return f"environment {plan.name or '(unnamed)'!r} (hash {plan.hash[:12]})"


@contextlib.contextmanager
def _hash_lock(root: Path, plan: BuildPlan, say: Callable[[str], None]) -> Iterator[tuple[int, bool]]:
    """Hold <cache>/locks/<hash>.lock; yields (fd, waited). Released when this process (and every child it
    gave the fd to) is gone, so a killed builder never leaves it held."""
    fd = open_lock(root, plan.hash)  # a planted symlink or another user's file is refused, not written
    waited = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            say(f"waiting for {holder} to finish building {_label(plan)}")
            fcntl.flock(fd, fcntl.LOCK_EX)
            waited = True
        run_id = os.environ.get("RUNYARD_RUN_ID")
        holder = f"process {os.getpid()}" + (f" (run {run_id})" if run_id else "")
        write_holder(fd, holder)
        yield fd, waited
    finally:
        os.close(fd)


def _touch_last_used(target: Path) -> None:
    """Record a use at most once a minute: one stat on the hot path."""
    path = target / LAST_USED
    now = time.time()
    try:
        if now - path.stat().st_mtime < 60:
            return
        os.utime(path, (now, now))
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            path.touch()
    except OSError:
        pass


def _ready(target: Path) -> bool:
    """Built by this user and still usable: the folder and its marker are ours, and bin/python still
    resolves (its base interpreter). A folder someone else put there is never run."""
    return owned(target) and owned(target / MARKER) and (target / "bin" / "python").exists()


def _reused(plan: BuildPlan, target: Path, start: float, waited: bool) -> PreparedEnvironment:
    layer.ensure_pth(target, plan.python)
    _touch_last_used(target)
    python, seconds = str(target / "bin" / "python"), time.perf_counter() - start
    return PreparedEnvironment(plan, python, False, "", str(target), seconds, waited)


def prepare_environment(plan: BuildPlan, say: Callable[[str], None] | None = None) -> PreparedEnvironment:
    """The environment a job runs in: reused when built before, else built now (once across processes).
    `say` gets progress lines for 65_job_prep.txt. Raises EnvironmentBuildError; nothing failed is cached."""
    start = time.perf_counter()
    if plan.user_managed or not plan.hash:
        _check_user_managed(plan)
        return PreparedEnvironment(plan, plan.interpreter, False, "", "", time.perf_counter() - start, False)
    root = trusted_root()
    target = root / plan.hash
    if _ready(target):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile (a prune): build it under the lock
            return _reused(plan, target, start, waited=False)
    say = say or (lambda line: None)
    with _hash_lock(root, plan, say) as (fd, waited):
        if _ready(target):  # under the lock nothing removes it
            try:
                return _reused(plan, target, start, waited)
            except OSError as exc:  # broken (e.g. emptied by hand): built again below
                say(f"the build of {_label(plan)} in {target} is broken ({exc}): building it again")
        for stale in [*root.glob(f".{plan.hash}.building-*"), target]:
            shutil.rmtree(stale, ignore_errors=True)  # the lock is ours: their builders are dead
        say(f"building {_label(plan)}: {len(plan.requirements)} requirement(s)")
        log = _build(plan, root, target, fd)
    return PreparedEnvironment(plan, str(target / "bin" / "python"), True, log, str(target),
                               time.perf_counter() - start, waited)  # fmt: skip


_uv_state: dict[str, str | None] = {}


def _uv_bin(log: _Log) -> str | None:
    """uv's executable when it runs, else None (and the reason goes into the log)."""
    if "bin" not in _uv_state:
        try:
            import uv

            path: str | None = uv.find_uv_bin()
            done = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30)
            _uv_state["why"] = None if done.returncode == 0 else (done.stderr or done.stdout).strip()
            _uv_state["version"] = done.stdout.strip()
        except (ImportError, OSError, subprocess.SubprocessError) as exc:
            path, _uv_state["why"] = None, f"{type(exc).__name__}: {exc}"
        _uv_state["bin"] = path if not _uv_state["why"] else None
    if _uv_state["bin"] is None:
        log.add(f"uv is unusable ({_uv_state['why']}): falling back to `python -m venv` + pip")
    else:
        log.add(f"builder: {_uv_state['version']} ({_uv_state['bin']})")
    return _uv_state["bin"]


def _build(plan: BuildPlan, root: Path, target: Path, lock_fd: int) -> str:
    """Build into a temporary folder, write the marker, rename into place. Returns the build log."""
    log = _Log(lock_fd, root)
    log.add(f"Building {_label(plan)} with Python {plan.python} ({plan.interpreter}) at {time.ctime()}")
    log.add("requirements: " + (", ".join(plan.requirements) or "(none: runyard's layer only)"))
    log.add("pip options: " + (" ".join(plan.pip_options) or "(none)"))
    log.add("satisfied by runyard: " + (", ".join(plan.satisfied_by_runyard) or "(none)"))
    for note in plan.notes:
        log.add(f"note: {note}")
    temp = root / f".{plan.hash}.building-{os.getpid()}"
    try:
        builder = _create_and_install(plan, temp, target, log, _uv_bin(log))
        log.add(f"ready: {target}")
        (temp / LOG_FILE).write_text(log.text())
        marker = {"summary": plan.summary(), "created": time.time(), "log": LOG_FILE, "builder": builder,
                  "interpreter": plan.interpreter, "pipOptions": [redact_urls(o) for o in plan.pip_options],
                  "satisfiedByRunyard": list(plan.satisfied_by_runyard), "notes": [redact_urls(n) for n in plan.notes],
                  "runyard": runyard.__version__}  # fmt: skip
        (temp / MARKER).write_text(json.dumps(marker, indent=1))
        (temp / LAST_USED).touch()
        os.rename(temp, target)
    except OSError as exc:  # the disk, not the requirements: a clear error, never a bare OSError
        shutil.rmtree(temp, ignore_errors=True)
        raise _failed(
            plan, log, f"{type(exc).__name__}: {exc} (is {root} writable, with space left?)"
        ) from exc
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    return log.text()


def _failed(plan: BuildPlan, log: _Log, why: str) -> EnvironmentBuildError:
    log.add(f"FAILED: {why}")
    return EnvironmentBuildError(redact_urls(f"Could not build {_label(plan)}: {why}"), log=log.text())


def _check_index(plan: BuildPlan, requirements: list[str], log: _Log) -> None:
    if "--no-index" in plan.pip_options:
        return
    index = default_index(plan.pip_options)
    first = re.split(r"[\s\[<>=!~;@]", requirements[0], maxsplit=1)[0]
    problem = index_reachable(index, first)
    log.add(f"package index {index}: " + (f"unreachable ({problem})" if problem else "reachable"))
    if problem:
        raise _failed(
            plan,
            log,
            f"the package index {index} is unreachable ({problem}); the environment needs: "
            f"{', '.join(requirements)}, which are not all in uv's cache. Connect to the network, or set "
            "--index-url in the environment's pip options (or UV_INDEX_URL) to an index you can reach, or "
            "build it once where the index is reachable (uv's cache then serves it offline).",
        )


def _create_and_install(plan: BuildPlan, temp: Path, target: Path, log: _Log, uv: str | None) -> str:
    """Create the venv in `temp` (it will be renamed to `target`), link runyard's layer, install the
    requirements, check that runyard imports with them. Returns the builder's name ("uv" or "pip")."""
    requirements = list(plan.requirements)
    if plan.python != current_version():
        extra = layer.runyard_requirements() + layer.abi_constraints(plan.requirements)
        log.add(f"Python {plan.python} is not runyard's ({current_version()}): installing runyard's own "
                f"requirements too: {', '.join(extra)}")  # fmt: skip
        requirements += extra
    python = str(temp / "bin" / "python")
    if uv is not None:
        builder, env = "uv", _uv_env()
        command = [
            uv,
            "venv",
            "--color",
            "never",
            "--relocatable",
            "--no-project",
            "--python",
            plan.interpreter,
        ]
        created = log.run([*command, str(temp)], env)
    else:
        builder, env = "pip", _build_env()
        created = log.run(
            [plan.interpreter, "-m", "venv", *([] if requirements else ["--without-pip"]), str(temp)]
        )
    if created.returncode != 0:
        what = "uv could not create the virtual environment" if uv else "python -m venv failed"
        raise _failed(plan, log, f"{what}:\n  {_key_lines(created.stdout)}")
    layer.ensure_pth(temp, plan.python)

    def install(wanted: list[str]) -> str | None:
        """Install `wanted`; None when done, else the key lines of the failure."""
        if uv is None:
            _check_index(plan, wanted, log)
            done = log.run([python, "-m", "pip", "install", "--disable-pip-version-check", "--no-color",
                            *option_args(plan.pip_options), *wanted], env)  # fmt: skip
            return None if done.returncode == 0 else _key_lines(done.stdout)
        command = [
            uv,
            "pip",
            "install",
            "--color",
            "never",
            "--python",
            python,
            *option_args(plan.pip_options),
        ]
        log.add("trying uv's cache first (--offline): a miss only means something is not cached yet")
        if log.run([*command, "--offline", *wanted], env, cache_miss=True).returncode == 0:
            return None
        log.add("installing from the package index")
        _check_index(plan, wanted, log)
        done = log.run([*command, *wanted], env)
        return None if done.returncode == 0 else _key_lines(done.stdout)

    if requirements:
        problem = install(requirements)
        if problem:
            raise _failed(plan, log, f"{builder} could not install the requirements:\n  {problem}\nFix the "
                          f"package names or versions in the environment and run again.{_python_hint(plan)}")  # fmt: skip
    if plan.requirements:
        _ensure_runyard_imports(plan, python, log, install, requirements)
    if uv is None:
        _fix_shebangs(temp, target, log)
    return builder


def _python_hint(plan: BuildPlan) -> str:
    """When the plan replaced a requested Python older than runyard's minimum: say so (pinned old versions
    often have no wheels for the Python used, and building them from source fails)."""
    for note in plan.notes:
        match = re.match(r"^Python (\d+\.\d+) requested:.* uses Python (\d+\.\d+)", note)
        if match:
            asked, used = match.groups()
            return (f"\nThe environment asks for Python {asked}, which runyard replaced with Python {used} "
                    f"(jobs need 3.11 or newer): pinned versions may publish no wheels for Python {used}. Pin "
                    f"versions that have wheels for Python {used}.")  # fmt: skip
    return ""


def _import_problem(python: str, log: _Log) -> str | None:
    """None when runyard and its data stack import with the environment's Python, else the error's last line."""
    done = log.run([python, "-c", layer.DATA_CHECK])
    if done.returncode == 0:
        return None
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit {done.returncode}"


def _ensure_runyard_imports(
    plan: BuildPlan,
    python: str,
    log: _Log,
    install: Callable[[list[str]], str | None],
    requirements: list[str],
) -> None:
    """A job does `from azureml.core import Run`: runyard (and pandas, pyarrow) must import next to the
    environment's own packages. When a pin breaks that (numpy<2 against the layer's pandas 3 / pyarrow 26),
    runyard's own requirements are installed into the environment together with its requirements, so the
    resolver picks versions that fit the pins; if none do, the build fails naming the conflict."""
    if plan.python == current_version():  # runyard's own packages come from the layer unless replaced
        replaced = layer.shadowed(Path(python).parent.parent, plan.python)
        if not replaced:
            log.add(
                "the environment replaces none of runyard's own packages (at another version): no import check needed"
            )
            return
        log.add(
            f"the environment installs its own {', '.join(replaced)}: checking that runyard still imports"
        )
    problem = _import_problem(python, log)
    if problem is None:
        return
    abi = layer.abi_constraints(plan.requirements)
    extra = [r for r in layer.runyard_requirements() + abi if r not in requirements]
    log.add(f"runyard does not import with this environment's packages ({problem}): installing runyard's own "
            "requirements into the environment together with the environment's, so that versions compatible "
            f"with its pins are chosen: {', '.join(extra)}")  # fmt: skip
    failed = install([*requirements, *extra]) if extra else None
    still = failed or _import_problem(python, log)
    if still is None:
        log.add("runyard imports in the environment now")
        return
    ours = {canonicalize_name(Requirement(r).name) for r in layer.runyard_requirements()}
    pins = [r for r in plan.requirements if _name(r) in ours | set(layer.DATA_PACKAGES)]
    needed = [r for r in layer.runyard_requirements() + abi if _name(r) in layer.DATA_PACKAGES]
    with_abi = f" (and {', '.join(abi)} with NumPy 1.x)" if abi else ""
    raise _failed(
        plan, log,
        f"environment {plan.name or '(unnamed)'!r} pins {', '.join(pins) or ', '.join(plan.requirements)}, but "
        f"runyard's data features need {', '.join(n for n in needed if n not in abi) or 'pandas and pyarrow'}"
        f"{with_abi} in the job's environment, and no versions fit both:\n  {still}\nLoosen the pin (for "
        "example numpy>=2, or a range that those accept) and run again.",
    )  # fmt: skip


def _name(requirement: str) -> str:
    try:
        return canonicalize_name(Requirement(requirement).name)
    except ValueError:
        return ""


def _check_user_managed(plan: BuildPlan) -> None:
    """A user-managed interpreter runs the job's `azureml` imports through runyard: refuse before the job
    starts when runyard is not installed there."""
    if not plan.user_managed or interpreters.has_runyard(plan.interpreter):
        return
    full = interpreters.full_versions([plan.interpreter]).get(plan.interpreter) or plan.python
    raise EnvironmentBuildError(
        f"runyard is not installed in {plan.interpreter} (Python {full}), which environment "
        f"{plan.name or '(unnamed)'!r} names as its user-managed interpreter: install it there "
        f"(`{plan.interpreter} -m pip install runyard`) or set python.user_managed_dependencies=False to let "
        "runyard build the environment.",
        log="",
    )


def _fix_shebangs(temp: Path, target: Path, log: _Log) -> None:
    """`python -m venv` writes its own folder into bin/ (shebangs, activate scripts): point them at where
    the folder will be after the rename."""
    old, new = str(temp).encode(), str(target).encode()
    for script in (temp / "bin").iterdir():
        with contextlib.suppress(OSError):
            if script.is_file() and not script.is_symlink() and script.stat().st_size < 1_000_000:
                data = script.read_bytes()
                if old in data:
                    script.write_bytes(data.replace(old, new))
    log.add(f"scripts in bin/ point at {target}")
