"""Which files of a source directory a run takes with it, and copying them.

Ignore rules come from the first of `.runyardignore`, `.amlignore`, `.gitignore` found in the source
directory (gitignore syntax). Limits follow Azure ML: 300 MB and 2,000 files per snapshot.

A workspace folder inside the project is never taken: a snapshot is kept for ever in the snapshot store
(readable by any read token of a server workspace) and copied into every job's working folder, so the
workspace's datastore credentials (secrets.json) must not ride along. A folder is a workspace when it
holds runyard.db or a workspace config.json (one with tracking_uri and artifact_root: a workspace whose
database is PostgreSQL or elsewhere has no runyard.db). secrets.json itself is left out wherever it is.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pathspec

from runyard.errors import InvalidInputError

IGNORE_FILES = (".runyardignore", ".amlignore", ".gitignore")
ALWAYS_IGNORED = [
    ".git/",
    "__pycache__/",
    ".runyard/",
    ".venv/",
    "*.pyc",
    ".ipynb_checkpoints/",
    # A workspace's database, wherever it sits: copying it opens and closes the file, and closing any
    # descriptor of a SQLite file drops that process's locks on it (POSIX), which can lose writes.
    "runyard.db",
    "runyard.db-*",
    # Datastore credentials (data/secrets.py): never copied, whatever folder they are in.
    "secrets.json",
    "secrets.json.lock",
    ".secrets.json.*",
]
#: A folder holding this file is a workspace (whatever its name): never part of a snapshot.
WORKSPACE_MARKER = "runyard.db"
#: ... and so is a folder whose config.json has these keys (what core/workspace_config.py writes).
WORKSPACE_CONFIG = "config.json"
WORKSPACE_CONFIG_KEYS = ("tracking_uri", "artifact_root")
MAX_FILES = 2000
MAX_BYTES = 300 * 1024 * 1024


def ignore_spec(source_dir: Path) -> tuple[pathspec.PathSpec, str | None]:
    for name in IGNORE_FILES:
        path = source_dir / name
        if path.is_file():
            lines = path.read_text(errors="replace").splitlines()
            return pathspec.GitIgnoreSpec.from_lines([*ALWAYS_IGNORED, *lines]), name
    return pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED), None


def is_workspace_folder(folder: Path, names: list[str] | None = None) -> bool:
    """Whether `folder` is a runyard workspace: it holds runyard.db, or a config.json naming a
    tracking_uri and an artifact_root (an Azure config.json names a subscription instead)."""
    names = os.listdir(folder) if names is None else names
    if WORKSPACE_MARKER in names:
        return True
    if WORKSPACE_CONFIG not in names:
        return False
    try:
        with open(folder / WORKSPACE_CONFIG, "rb") as fh:
            data = json.loads(fh.read(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(key in data for key in WORKSPACE_CONFIG_KEYS)


def snapshot_files(source_dir: Path) -> list[Path]:
    """Relative paths of the files that make up the snapshot, sorted; raises past the limits."""
    spec, used = ignore_spec(source_dir)
    files: list[Path] = []
    total = 0
    for root, dirs, names in os.walk(source_dir):
        rel_root = Path(root).relative_to(source_dir)
        if rel_root != Path(".") and is_workspace_folder(Path(root), names):
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if not spec.match_file(f"{(rel_root / d).as_posix()}/"))
        for name in sorted(names):
            rel = rel_root / name
            if spec.match_file(rel.as_posix()):
                continue
            files.append(rel)
            total += (source_dir / rel).stat().st_size
            if len(files) > MAX_FILES or total > MAX_BYTES:
                hint = f" (ignore rules from {used})" if used else ""
                raise InvalidInputError(
                    f"The source directory {source_dir} holds more than {MAX_FILES} files or "
                    f"{MAX_BYTES // 2**20} MB{hint}. Move data out of it, or list what to leave out in "
                    f"{source_dir / '.runyardignore'} (gitignore syntax)."
                )
    return sorted(files)


def copy_snapshot(source_dir: Path, dest: Path) -> list[Path]:
    files = snapshot_files(source_dir)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source_dir / rel, target)
    dest.mkdir(parents=True, exist_ok=True)
    return files
