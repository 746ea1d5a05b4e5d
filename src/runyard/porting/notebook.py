"""The rewrite of one notebook cell: IPython syntax kept exactly, the Python around it ported.

libcst parses Python, not IPython, so:
- `%%writefile something.py` cells hold a script the notebook writes to disk and later submits: the body
  is ported as Python and the magic line kept. Cell magics whose body is Python (`%%time`, ...) likewise;
  other cell magics (`%%bash`, `%%writefile env.yml`) are not Python and stay as they are.
- Lines that start with `%` or `!` (and `files = !ls`) are masked with `pass` at the same indentation while
  the cell is ported, then put back byte for byte. A cell that still does not parse is left unchanged and
  reported: a port never breaks a notebook.
- The notebook's cells share one namespace: `import azureml.core` in one cell binds the name `azureml` that
  another cell uses (`bound`). A `%%writefile` body is a separate script and neither binds nor sees it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from runyard.porting.missing import Missing
from runyard.porting.python import OLD, Ported, PortError, port_source

#: A line IPython reads as a line magic or a shell command, also when assigned (`out = !ls`).
_IPYTHON_LINE = re.compile(r"^[ \t]*(?:[%!]|[A-Za-z_]\w*[ \t]*=[ \t]*[%!])")
#: Cell magics whose body is Python.
PYTHON_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "writefile"}


@dataclass
class CellResult:
    source: str
    rewrites: int
    #: Why the cell was left as it is, when that matters (it mentions azureml); None otherwise.
    skipped: str | None = None
    #: The cell binds the name `azureml` in the notebook's namespace (`import azureml.core`).
    binds: bool = False
    #: Imports of v1 modules runyard.v1 does not have; lines counted in the cell.
    missing: list[Missing] = field(default_factory=list)


def _port_masked(body: str, bound: bool) -> Ported:
    """Port `body`, masking IPython lines only if it does not parse as it is."""
    try:
        return port_source(body, bound=bound)
    except PortError as first_error:
        lines = body.splitlines(keepends=True)
        masked = {i: line for i, line in enumerate(lines) if _IPYTHON_LINE.match(line)}
        if not masked:
            raise first_error from None
        for i, line in masked.items():
            text = line.rstrip("\r\n")
            indent = text[: len(text) - len(text.lstrip())]
            lines[i] = indent + "pass" + line[len(text) :]
        ported = port_source("".join(lines), bound=bound)
        out = ported.code.splitlines(keepends=True)
        if len(out) != len(lines):  # a rewrite never adds or removes lines; refuse rather than misplace one
            raise PortError("the cell's lines moved while it was ported") from None
        for i, line in masked.items():
            out[i] = line
        return Ported("".join(out), ported.rewrites, ported.binds, ported.missing)


def port_cell(source: str, *, bound: bool = False) -> CellResult:
    """Port one code cell's source; raises PortError when its Python does not parse. `bound`: another
    cell of the notebook binds the name `azureml` by an import (see `CellResult.binds`)."""
    first, _, rest = source.partition("\n")
    if first.lstrip().startswith("%%"):
        words = first.lstrip()[2:].split()
        magic = words[0] if words else ""
        is_python = magic in PYTHON_CELL_MAGICS and (
            magic != "writefile" or (len(words) > 1 and words[-1].strip("\"'").endswith(".py"))
        )
        if not is_python:
            why = f"a %%{magic} cell is not Python; left as it is" if OLD + "." in rest else None
            return CellResult(source, 0, why)
        # the body's lines are the cell's from its second on
        ported = _port_masked(rest, bound and magic != "writefile")
        missing = [replace(m, line=m.line + 1) for m in ported.missing]
        if magic == "writefile":  # a script of its own, not the notebook's namespace
            return CellResult(f"{first}\n{ported.code}", ported.rewrites, missing=missing)
        return CellResult(f"{first}\n{ported.code}", ported.rewrites, binds=ported.binds, missing=missing)
    ported = _port_masked(source, bound)
    return CellResult(ported.code, ported.rewrites, binds=ported.binds, missing=ported.missing)
