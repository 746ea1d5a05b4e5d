"""How runyard itself is importable in every built environment, without installing it from an index.

A job's script does `from azureml.core import Run`, so runyard (and what runyard imports) must be
importable inside each environment, while the environment's own packages win where both have one.

For an environment on runyard's own Python minor version, runyard's dependency closure (its Requires-Dist,
markers evaluated, extras ignored, followed recursively) is exposed through a *layer*: a folder
<cache>/layers/<key>/ of symlinks to each closure distribution's top-level entries (package folders,
modules, .dist-info, *.libs) and to the `runyard` package. The environment's site-packages gets
`_runyard_layer.pth` naming that folder, and Python appends .pth folders *after* site-packages, so an
environment that pins an older `six` imports its own. The key hashes sys.prefix, runyard's version and the
closure's name==version list; it is computed once per change of the site-packages folders (their mtimes),
so preparing an environment never scans metadata.

The consequence: runyard's dependencies (pandas, numpy, pyarrow, ...) are importable in every environment
even when it does not declare them; every other package must be declared.

Compiled extensions only load in the Python minor version they were built for, so an environment on another
version gets runyard's own requirements installed by the build (runyard_requirements()) and a layer holding
only the `runyard` package.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as metadata
import json
import os
import re
import shutil
import sys
import threading
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import runyard
from runyard.config import env_cache_dir
from runyard.environments.interpreters import current_version

PTH_NAME = "_runyard_layer.pth"
_READY = ".ready"
#: A same-minor layer's folder name: the first 16 hex digits of its key.
_LAYER_KEY = re.compile(r"[0-9a-f]{16}")
_memo: dict[str, Path] = {}


def _unique() -> str:
    """A temporary name no other process or thread uses at the same time."""
    return f"{os.getpid()}-{threading.get_ident()}"


def _package_dir() -> Path:
    return Path(runyard.__file__).resolve().parent


def _requirements_of(dist: metadata.Distribution) -> list[Requirement]:
    found = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            found.append(req)
    return found


def runyard_requirements() -> list[str]:
    """runyard's own Requires-Dist without extras, markers kept (for an environment on another Python)."""
    try:
        texts = metadata.distribution("runyard").requires or []
    except metadata.PackageNotFoundError:
        return []
    return [t for t in texts if "extra" not in str(Requirement(t).marker or "")]


#: Version constraints packages need but do not declare (binary ABI): (package, a requirement on it that
#: excludes `first_bad` and every later version listed, the constraint to add). pyarrow 26 is built against
#: NumPy 2 and refuses to import with NumPy 1.x (checked: pyarrow 21-25 work with numpy 1.26.4).
ABI_CONSTRAINTS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("numpy", ("2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0", "3.0.0"), "pyarrow<26"),
)


def abi_constraints(requirements: tuple[str, ...] | list[str]) -> list[str]:
    """The undeclared constraints (ABI_CONSTRAINTS) the environment's requirements call for: e.g. a numpy
    pin below 2 -> "pyarrow<26"."""
    found: list[str] = []
    for text in requirements:
        try:
            req = Requirement(text)
        except ValueError:
            continue
        for package, excluded, constraint in ABI_CONSTRAINTS:
            if canonicalize_name(req.name) != package or not req.specifier or constraint in found:
                continue
            if not any(req.specifier.contains(v, prereleases=True) for v in excluded):
                found.append(constraint)
    return found


#: What a job needs to import in its environment: runyard's v1 API and its data stack.
DATA_CHECK = "import runyard.v1.core, pandas, pyarrow"
DATA_PACKAGES = ("numpy", "pandas", "pyarrow")


def _closure() -> list[metadata.Distribution]:
    """runyard's installed distribution and every distribution it needs, recursively."""
    seen: dict[str, metadata.Distribution] = {}
    todo = ["runyard"]
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        todo += [req.name for req in _requirements_of(dist)]
    return [seen[name] for name in sorted(seen)]


def _stamp() -> str:
    """Changes whenever a package is installed, upgraded or removed where runyard runs."""
    parts = [sys.prefix, runyard.__version__, str(_package_dir())]
    for entry in sys.path:
        if not entry.endswith(("site-packages", "dist-packages")):
            continue  # the script's folder or the cwd change for other reasons
        with contextlib.suppress(OSError):
            parts.append(f"{entry}:{os.stat(entry or '.').st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _top_levels(dist: metadata.Distribution) -> dict[str, Path]:
    """name -> path of each top-level entry a distribution installed into site-packages."""
    entries: dict[str, Path] = {}
    for file in dist.files or []:
        parts = file.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith(".pth"):
            continue
        if parts[0] not in entries:
            entries[parts[0]] = Path(str(dist.locate_file(parts[0])))
    return entries


def _runyard_metadata() -> dict[str, Path]:
    """runyard's own .dist-info folder by name: its entry points (MLflow's `mlflow.tracking_store` plugin
    `runyard`) must be found by importlib.metadata inside every environment, and an editable install's
    file list may not name it (an egg-link or a backend that records no files)."""
    try:
        dist = metadata.distribution("runyard")
    except metadata.PackageNotFoundError:
        return {}
    found = {n: p for n, p in _top_levels(dist).items() if n.endswith((".dist-info", ".egg-info"))}
    folder = getattr(dist, "_path", None)  # PathDistribution's metadata folder (no public name for it)
    if not found and isinstance(folder, Path) and folder.name.endswith((".dist-info", ".egg-info")):
        found[folder.name] = folder
    return found


def _make_private(folder: Path) -> None:
    """Create the cache root and `folder` (inside it) as 0o700 folders: makedirs gives the mode to the last
    folder only, so the root is made first."""
    os.makedirs(env_cache_dir(), mode=0o700, exist_ok=True)
    os.makedirs(folder, mode=0o700, exist_ok=True)


def _make_layer(folder: Path, entries: dict[str, Path]) -> None:
    """Create the layer folder atomically: symlinks into a temporary folder, then rename. A symlink in the
    folder's place (a layer is a real folder in the cache) is removed and the layer made again."""
    if folder.is_symlink():
        with contextlib.suppress(OSError):
            folder.unlink()
    elif (folder / _READY).exists():
        return
    _make_private(folder.parent)
    temp = folder.with_name(f".{folder.name}.tmp-{_unique()}")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    for name, target in sorted(entries.items()):
        if target.exists():
            (temp / name).symlink_to(target, target_is_directory=target.is_dir())
    (temp / _READY).write_text(json.dumps(sorted(entries)))
    try:
        os.rename(temp, folder)
    except OSError:  # another process made it first (or a stale one without .ready is in the way)
        if not (folder / _READY).exists():
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rename(temp, folder)
        shutil.rmtree(temp, ignore_errors=True)


def _indexed_layer(layers: Path, index: Path) -> Path | None:
    """The layer folder a stamp index names, or None when the index is missing, unreadable or names
    anything but a key (16 hex digits) folder strictly inside `layers`: the index is a file in the cache,
    and whatever folder it names is imported by every job, so it is checked like the build hashes are."""
    try:
        name = json.loads(index.read_text())["layer"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(name, str) or not _LAYER_KEY.fullmatch(name):
        return None
    folder = layers / name
    try:
        inside = folder.resolve().parent == layers.resolve()
    except (OSError, RuntimeError):
        return None
    return folder if inside else None


def _same_minor_layer() -> Path:
    layers = env_cache_dir() / "layers"
    stamp = _stamp()
    memo_key = f"{layers}\n{stamp}"  # one process may prepare environments of two caches (tests do)
    if memo_key in _memo and (_memo[memo_key] / _READY).exists():
        return _memo[memo_key]
    index = layers / f"stamp-{stamp}.json"
    folder = _indexed_layer(layers, index)
    if folder is None or not (folder / _READY).exists():
        dists = _closure()
        listing = sorted(f"{canonicalize_name(d.metadata['Name'])}=={d.version}" for d in dists)
        key = hashlib.sha256("\n".join([sys.prefix, runyard.__version__, *listing]).encode()).hexdigest()
        folder = layers / key[:16]
        entries: dict[str, Path] = {}
        for dist in dists:
            for name, path in _top_levels(dist).items():
                entries.setdefault(name, path)
        entries["runyard"] = _package_dir()
        entries.update(_runyard_metadata())
        _make_layer(folder, entries)
        _make_private(layers)
        temp = index.with_name(f".{index.name}.{_unique()}")
        temp.write_text(json.dumps({"layer": folder.name, "closure": listing}))
        os.replace(temp, index)
    _memo[memo_key] = folder
    return folder


def _runyard_only_layer() -> Path:
    package = _package_dir()
    key = hashlib.sha256(f"{package}\n{runyard.__version__}".encode()).hexdigest()[:16]
    folder = env_cache_dir() / "layers" / f"runyard-{key}"
    entries = {"runyard": package, **_runyard_metadata()}
    _make_layer(folder, entries)
    return folder


def layer_folder(python: str) -> Path:
    """The layer an environment on Python `python` (major.minor) lists in its .pth."""
    if python == current_version():
        return _same_minor_layer()
    return _runyard_only_layer()


def site_packages(venv: Path, python: str) -> Path:
    return venv / "lib" / f"python{python}" / "site-packages"


def shadowed(venv: Path, python: str) -> list[str]:
    """The distributions of runyard's closure that the environment installed itself at another version than
    the layer's (its copies come first on sys.path), as "name 1.0 (runyard has 2.0)": only these can keep
    runyard from importing in a job, so a build with none skips the check."""
    ours = {canonicalize_name(dist.metadata["Name"]): dist.version for dist in _closure()}
    found = []
    for entry in sorted(site_packages(venv, python).glob("*.dist-info")):
        name, _, version = entry.name.removesuffix(".dist-info").rpartition("-")
        have = ours.get(canonicalize_name(name))
        if have is not None and have != version:
            found.append(f"{canonicalize_name(name)} {version} (runyard has {have})")
    return found


def ensure_pth(venv: Path, python: str) -> bool:
    """Make the environment's .pth name the current layer (runyard upgraded or moved: rewritten atomically).
    True when it was (re)written."""
    wanted = f"{layer_folder(python)}\n"
    target = site_packages(venv, python) / PTH_NAME
    try:
        if target.read_text() == wanted:
            return False
    except OSError:
        pass
    temp = target.with_name(f".{PTH_NAME}.{_unique()}")
    temp.write_text(wanted)
    os.replace(temp, target)
    return True
