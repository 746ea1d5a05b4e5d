"""Which Python interpreters this machine has, for environments that ask for a Python version.

Looked for, in this order: the interpreter running runyard, `python3.N` on PATH, pyenv's versions
($PYENV_ROOT or ~/.pyenv), /usr/bin/python3.* and /usr/local/bin/python3.*. pyenv's *shims* are skipped: a
shim answers for every version name but fails for the versions not selected in the current folder, which
is also why uv is always given an absolute interpreter path rather than a version to discover.

An interpreter's version is read by running it once; the answer is kept in <cache>/interpreters.json keyed
by the real path and its mtime, so a reinstalled interpreter is asked again and nothing else is.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from runyard.config import env_cache_dir
from runyard.environments.cache import owned

_VERSIONED = re.compile(r"^python(\d+)\.(\d+)$")
_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


def current_version() -> str:
    """major.minor of the interpreter running runyard."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv").expanduser()


def _candidates() -> list[str]:
    """Interpreter paths worth asking, best first, without shims and without duplicates."""
    found: list[str] = [sys.executable]
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or "shims" in Path(folder).parts:
            continue
        with contextlib.suppress(OSError):
            found += sorted(str(p) for p in Path(folder).glob("python3.*") if _VERSIONED.match(p.name))
    versions = _pyenv_root() / "versions"
    with contextlib.suppress(OSError):
        found += sorted(str(p / "bin" / "python3") for p in versions.iterdir() if p.name[:1].isdigit())
    for folder in ("/usr/bin", "/usr/local/bin"):
        with contextlib.suppress(OSError):
            found += sorted(str(p) for p in Path(folder).glob("python3.*") if _VERSIONED.match(p.name))
    unique: list[str] = []
    seen: set[str] = set()
    for path in found:
        try:
            real = os.path.realpath(path)
            if real in seen or not os.access(real, os.X_OK) or not Path(real).is_file():
                continue
        except OSError:
            continue
        seen.add(real)
        unique.append(path)
    return unique


def _cache_file() -> Path:
    return env_cache_dir() / "interpreters.json"


def _read_cache() -> dict[str, str]:
    """The answers kept so far; {} unless the file is this user's own (another user's could lie)."""
    if not owned(_cache_file()):
        return {}
    try:
        data = json.loads(_cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(data: dict[str, str]) -> None:
    target = _cache_file()
    with contextlib.suppress(OSError):
        os.makedirs(target.parent, mode=0o700, exist_ok=True)
        temp = target.with_name(f".interpreters.{os.getpid()}-{threading.get_ident()}.json")
        temp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(temp, target)


def _key(path: str) -> str | None:
    try:
        real = os.path.realpath(path)
        return f"{real}|{os.stat(real).st_mtime_ns}"
    except OSError:
        return None


def _probe(path: str) -> str | None:
    try:
        done = subprocess.run(
            [path, "-c", _PROBE], capture_output=True, text=True, timeout=15, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and re.fullmatch(r"\d+\.\d+\.\d+", out) else None


def full_versions(paths: list[str]) -> dict[str, str]:
    """path -> "3.12.1" for each path that runs; each interpreter is run at most once per (path, mtime)."""
    cache = _read_cache()
    answers: dict[str, str] = {}
    changed = False
    for path in paths:
        if os.path.realpath(path) == os.path.realpath(sys.executable):
            answers[path] = ".".join(map(str, sys.version_info[:3]))
            continue
        key = _key(path)
        if key is None:
            continue
        if key not in cache:
            version = _probe(path)
            cache[key] = version or ""
            changed = True
        if cache[key]:
            answers[path] = cache[key]
    if changed:
        _write_cache(cache)
    return answers


def version_of(path: str) -> str | None:
    """major.minor of the interpreter at `path`, or None when it does not run."""
    full = full_versions([path]).get(path)
    return ".".join(full.split(".")[:2]) if full else None


def _might_be(path: str, version: str) -> bool:
    """Whether a candidate's name could be `version`, so only those are run."""
    name = Path(path).name
    if _VERSIONED.match(name):
        return name == f"python{version}"
    parent = Path(path).parent.parent.name  # pyenv: versions/3.12.1/bin/python3
    return parent == version or parent.startswith(version + ".")


def find_interpreter(version: str) -> str | None:
    """An interpreter whose major.minor is `version` ("3.12"), or None."""
    if version == current_version():
        return sys.executable
    paths = [p for p in _candidates()[1:] if _might_be(p, version)]
    for path, full in full_versions(paths).items():
        if ".".join(full.split(".")[:2]) == version:
            return path
    return None


def found_versions() -> list[str]:
    """Every major.minor found on this machine, oldest first ("3.10", "3.11", ...)."""
    majors = {".".join(v.split(".")[:2]) for v in full_versions(_candidates()).values()}
    return sorted(majors, key=lambda v: tuple(int(part) for part in v.split(".")))


def has_runyard(path: str) -> bool:
    """Whether `path` can `import runyard` (a user-managed interpreter runs the job's `azureml` imports
    through it). The interpreter running runyard can; another is asked once and a yes is kept in the cache
    by (path, mtime). A no is asked again next time: runyard may be installed there meanwhile. The path is
    not resolved: a virtual environment's python is a symlink to its base interpreter, whose site-packages
    differ from the environment's."""
    if os.path.abspath(path) == os.path.abspath(sys.executable):
        return True
    key = _key(path)
    if key is None:
        return False
    key = f"runyard:{os.path.abspath(path)}|{key}"
    cache = _read_cache()
    if cache.get(key) == "yes":
        return True
    try:
        done = subprocess.run([path, "-c", "import runyard"], capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return False
    if done.returncode != 0:
        return False
    cache[key] = "yes"
    _write_cache(cache)
    return True
