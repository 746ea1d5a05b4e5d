"""Files and folders through the port: which files, their unified diffs, and atomic writes.

A `.py` file keeps its encoding (PEP 263 cookie, BOM) and line endings; a notebook keeps its outputs and
metadata (only cell sources change). Nothing is written unless asked, and a write is a temporary file
renamed over the original, so an interrupted port never leaves half a file.

What a port never touches, as black and ruff: symbolic links met while walking a folder (a link may lead
out of it, into another project or a shared library; a link named on the command line is followed), files
without write permission (a rename would bypass it), and a notebook nbformat cannot write back.
"""

from __future__ import annotations

import difflib
import io
import os
import stat
import tempfile
import tokenize
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInputError
from runyard.porting.notebook import CellResult, port_cell
from runyard.porting.python import PortError, port_source

SUFFIXES = (".py", ".ipynb")
#: Folders a port never enters: tools' state, not the user's code.
SKIP_DIRS = {".venv", ".git", ".runyard", "__pycache__", ".ipynb_checkpoints", "node_modules"}


@dataclass
class FileResult:
    path: Path
    rewrites: int = 0
    #: Unified diffs: one for a .py file, one per changed cell for a notebook.
    diffs: list[str] = field(default_factory=list)
    #: What could not be ported and was left unchanged ("cell 4: not valid Python ...").
    problems: list[str] = field(default_factory=list)
    #: Set by `write()`: the new content is on disk.
    written: bool = False
    _data: bytes | None = None

    @property
    def changed(self) -> bool:
        return self._data is not None

    def write(self) -> bool:
        """Write the port; False (and a problem added) when the file may not or could not be written."""
        if self._data is None:
            return True
        try:
            if read_only(self.path):
                self.problems.append(
                    "read-only, not written (it has no write permission); make it writable "
                    "(chmod u+w) and port it again"
                )
                return False
            write_atomic(self.path, self._data)
        except OSError as exc:
            self.problems.append(f"cannot be written ({exc.strerror or exc}); left as it is")
            return False
        self.written = True
        return True


def read_only(path: Path) -> bool:
    """No write permission for us. The mode bits decide also for root (for whom `os.access` always says
    yes): a file the user made read-only stays so, whoever runs the port."""
    info = path.stat()
    geteuid = getattr(os, "geteuid", None)
    bits = stat.S_IWUSR if geteuid is not None and geteuid() == info.st_uid else 0o222
    return not info.st_mode & bits or not os.access(path, os.W_OK)


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and rename it over `path` (keeping its mode).
    A symbolic link stays a link: its target is what is rewritten."""
    path = path.resolve()
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".port")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _link_problem(link: Path) -> str:
    return (
        f"a symbolic link (to {os.readlink(link)}); not followed: a port of a folder edits only files "
        "that lie in it. Name the link on the command line to port its target"
    )


def find_files(paths: Iterable[Path], on_skip: Callable[[Path, str], None] | None = None) -> Iterator[Path]:
    """Each file named, and every .py / .ipynb below each folder named (sorted, skipping SKIP_DIRS and
    virtual environments). A path that does not exist is an error before anything is read. Symbolic
    links met below a folder (to files or folders) are not followed but passed to `on_skip` with why."""
    paths = list(paths)
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise InvalidInputError(
            f"No such file or folder: {', '.join(missing)}. Give the .py files, notebooks or folders to port."
        )
    seen: set[Path] = set()
    for path in paths:
        found = [path] if path.is_file() else []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(
                d for d in dirs if d not in SKIP_DIRS and not (Path(root) / d / "pyvenv.cfg").exists()
            )
            for name in [d for d in dirs if (Path(root) / d).is_symlink()]:
                dirs.remove(name)  # os.walk does not enter it either; say so
                if on_skip is not None:
                    on_skip(Path(root) / name, _link_problem(Path(root) / name))
            for name in sorted(files):
                if not name.endswith(SUFFIXES):
                    continue
                if (Path(root) / name).is_symlink():
                    if on_skip is not None:
                        on_skip(Path(root) / name, _link_problem(Path(root) / name))
                    continue
                found.append(Path(root) / name)
        for file in found:
            if file.resolve() not in seen:  # a file named twice (or through a link) is ported once
                seen.add(file.resolve())
                yield file


def _diff(old: str, new: str, label: str) -> str:
    lines = difflib.unified_diff(
        old.splitlines(keepends=True), new.splitlines(keepends=True), f"a/{label}", f"b/{label}"
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def port_python_file(path: Path) -> FileResult:
    result = FileResult(path)
    data = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        result.problems.append(f"cannot be read as Python source ({exc}); left as it is")
        return result
    try:
        ported = port_source(text)
    except PortError as exc:
        result.problems.append(f"{exc}; left as it is")
        return result
    result.problems.extend(m.message() for m in ported.missing)
    if ported.rewrites:
        result.rewrites = ported.rewrites
        result.diffs.append(_diff(text, ported.code, str(path)))
        result._data = ported.code.encode(encoding)
    return result


def _port_cells(notebook: Any, bound: bool) -> list[tuple[int, Any, CellResult | PortError]]:
    """(number, cell, its port or why not) for each code cell."""
    ported: list[tuple[int, Any, CellResult | PortError]] = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") != "code":
            continue
        try:
            ported.append((number, cell, port_cell(cell.source, bound=bound)))
        except PortError as exc:
            ported.append((number, cell, exc))
    return ported


def port_notebook_file(path: Path) -> FileResult:
    # imported here: nbformat's schema validation costs ~2 s at import, and every CLI process imports this
    # module (runyard server, runyard up) while few ever port a notebook
    import nbformat

    result = FileResult(path)
    try:
        notebook: Any = nbformat.reads(path.read_text(encoding="utf-8"), as_version=nbformat.NO_CONVERT)
    except Exception as exc:  # nbformat raises many kinds (JSON, schema, version): all mean "not readable"
        result.problems.append(f"cannot be read as a notebook ({exc}); left as it is")
        return result
    if notebook.get("nbformat", 0) < 4:
        result.problems.append(
            f"notebook format {notebook.get('nbformat')} is too old to port; open and save it in Jupyter "
            "(it upgrades to format 4), then port it again"
        )
        return result
    cells = _port_cells(notebook, bound=False)
    # One namespace: `import azureml.core` in one cell binds the `azureml` another cell uses.
    if any(isinstance(done, CellResult) and done.binds for _, _, done in cells):
        cells = _port_cells(notebook, bound=True)
    for number, cell, done in cells:
        if isinstance(done, PortError):
            result.problems.append(f"cell {number}: {done}; left as it is")
            continue
        if done.skipped:
            result.problems.append(f"cell {number}: {done.skipped}")
        result.problems.extend(f"cell {number}, {m.message()}" for m in done.missing)
        if done.rewrites and done.source != cell.source:
            result.rewrites += done.rewrites
            result.diffs.append(_diff(cell.source, done.source, f"{path} [cell {number}]"))
            cell.source = done.source
    if result.rewrites:
        try:
            result._data = nbformat.writes(notebook, version=nbformat.NO_CONVERT).encode("utf-8")
        except Exception as exc:  # a notebook nbformat read but cannot write (a code cell without outputs)
            result.problems.append(
                f"cannot be written back as a notebook ({type(exc).__name__}: {exc}); left as it is. "
                "Open and save it in Jupyter (which repairs it), then port it again"
            )
            result.rewrites, result.diffs = 0, []
    return result


def port_file(path: Path) -> FileResult:
    """The port of one file, not yet written (call `.write()`)."""
    return port_notebook_file(path) if path.suffix == ".ipynb" else port_python_file(path)
