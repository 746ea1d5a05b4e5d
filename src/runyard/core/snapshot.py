"""Which files of a source directory a run takes with it, and copying them.

Ignore rules come from the first of `.runyardignore`, `.amlignore`, `.gitignore` found in the source
directory (gitignore syntax). Limits follow Azure ML: 300 MB and 2,000 files per snapshot.
"""

from __future__ import annotations

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
]
#: A folder holding this file is a workspace (whatever its name): never part of a snapshot.
WORKSPACE_MARKER = "runyard.db"
MAX_FILES = 2000
MAX_BYTES = 300 * 1024 * 1024


def ignore_spec(source_dir: Path) -> tuple[pathspec.PathSpec, str | None]:
    for name in IGNORE_FILES:
        path = source_dir / name
        if path.is_file():
            lines = path.read_text(errors="replace").splitlines()
            return pathspec.GitIgnoreSpec.from_lines([*ALWAYS_IGNORED, *lines]), name
    return pathspec.GitIgnoreSpec.from_lines(ALWAYS_IGNORED), None


def snapshot_files(source_dir: Path) -> list[Path]:
    """Relative paths of the files that make up the snapshot, sorted; raises past the limits."""
    spec, used = ignore_spec(source_dir)
    files: list[Path] = []
    total = 0
    for root, dirs, names in os.walk(source_dir):
        rel_root = Path(root).relative_to(source_dir)
        if WORKSPACE_MARKER in names and rel_root != Path("."):
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
