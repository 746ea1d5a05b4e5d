"""`azureml.*` imports resolved to `runyard.v1.*`, so unported v1 code runs as it is.

A finder on `sys.meta_path` answers every `azureml` and `azureml.X.Y` import with the module object of
`runyard.v1.X.Y`: the same object, so `azureml.core.Workspace is runyard.v1.core.Workspace`. Nothing is
installed on disk under the name `azureml`; the alias exists only in a process that installed it.

Two ways in, one mechanism:
- `python -m runyard.v1 script.py [args]` (`runyard/v1/__main__.py`) for a user's unported script;
- every job runyard starts runs `python -u -P <this file> script.py [args]` (`compute/process_job.py`):
  inside a runyard job `azureml` can only sensibly mean runyard.v1 (a real azureml `Run.get_context()`
  there would log nowhere). Run by path, this file imports nothing of runyard until the script imports
  `azureml`, so a job whose script never does pays nothing for it.

This module therefore imports only the standard library at its top.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.machinery
import io
import os
import sys
import types
from collections.abc import Sequence
from types import ModuleType, TracebackType

ALIAS = "azureml"
TARGET = "runyard.v1"
SURFACE_DOC = "docs/v1-surface.md"


def target_name(fullname: str) -> str:
    """`azureml.core.run` -> `runyard.v1.core.run`."""
    return TARGET + fullname[len(ALIAS) :]


class _AliasLoader:
    """Hands the import system the already-imported runyard.v1 module instead of creating one. (A plain
    class: the import system needs only these methods, and importlib.abc costs a job ~20 ms to import.)"""

    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        # The import system sets __spec__ to the alias's spec before this call; the module keeps its own
        # (importlib.reload and tools that read __spec__.name see runyard.v1.X, as without the alias).
        module.__spec__ = self.spec


class AzuremlAlias:  # a meta path finder: find_spec is all the import system calls
    """Resolves `azureml[.X.Y]` to the module `runyard.v1[.X.Y]` (first on sys.meta_path)."""

    runyard_v1_alias = True  # how install() recognises a finder, also one from another copy of this file

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        name = target_name(fullname)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # something runyard.v1.X itself imports is missing: that error is the true one
            if exc.name in ("runyard", TARGET):  # runyard itself is not importable in this interpreter
                raise ModuleNotFoundError(
                    f"No module named 'runyard' (imported as {fullname!r}): runyard is not installed in "
                    f"{sys.executable}, and in a runyard job azureml.* is runyard.v1. Install it there "
                    f"({sys.executable} -m pip install runyard) or let runyard build the job's environment "
                    "(python.user_managed_dependencies=False).",
                    name="runyard",
                ) from None
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: runyard.v1 has no module {name!r}, so this part of the "
                f"Azure ML SDK v1 is not available in runyard yet. {SURFACE_DOC} lists what runyard.v1 "
                "provides and which issue brings the rest.",
                name=fullname,
            ) from None
        return importlib.machinery.ModuleSpec(
            fullname,
            _AliasLoader(module),  # type: ignore[arg-type]  # a Loader by its methods (see _AliasLoader)
            is_package=hasattr(module, "__path__"),
        )


def installed() -> bool:
    return any(getattr(finder, "runyard_v1_alias", False) for finder in sys.meta_path)


def install() -> None:
    """Put the alias first on sys.meta_path (first: the path finder would otherwise load runyard/v1's
    files a second time under the azureml name). Installing twice is harmless."""
    if not installed():
        sys.meta_path.insert(0, AzuremlAlias())


def uninstall() -> None:
    """Remove the alias and forget the azureml names it resolved (the runyard.v1 modules stay)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "runyard_v1_alias", False)]
    for name in [n for n in sys.modules if n == ALIAS or n.startswith(ALIAS + ".")]:
        del sys.modules[name]


def _user_traceback(tb: TracebackType | None, script: str) -> TracebackType | None:
    """The traceback from the script's first frame on, as `python script.py` would show it: the runner's
    frames are dropped. A SyntaxError in the script has no script frame: no frames."""
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename != script:
        first = first.tb_next
    return first


def run_script(argv: list[str], prog: str = "python -m runyard.v1", prepend_dir: bool = False) -> None:
    """Run `argv[0]` as __main__ with the alias installed, as `python script.py args` would.

    sys.argv is the script and its arguments; sys.path[0] is the script's folder (unless Python runs with
    -P / safe_path; `prepend_dir` adds it in any case). Exit codes, signals and KeyboardInterrupt are the
    interpreter's own: an uncaught exception leaves through sys.excepthook, which only trims our frames."""
    if not argv or argv[0].startswith("-"):
        sys.stderr.write(
            f"usage: {prog} SCRIPT.py [ARGS...]\n"
            "Runs an unported Azure ML SDK v1 script with every azureml.* import resolved to runyard.v1.\n"
        )
        raise SystemExit(2)
    script = os.path.abspath(argv[0])
    if not os.path.isfile(script):
        sys.stderr.write(f"{prog}: can't open file {script!r}: [Errno 2] No such file or directory\n")
        raise SystemExit(2)
    folder = os.path.dirname(os.path.realpath(script))
    if prepend_dir:
        sys.path.insert(0, folder)
    elif not sys.flags.safe_path and sys.path:
        sys.path[0] = folder  # under -m it is the current folder; `python script.py` puts the script's
    sys.argv[:] = list(argv)
    install()
    previous_hook = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        tb = _user_traceback(tb, script)  # the interpreter prints value.__traceback__, not tb
        previous_hook(kind, value.with_traceback(tb), tb)

    sys.excepthook = hook
    _exec_main(script)


def _exec_main(script: str) -> None:
    """Execute the file as the interpreter runs `python script.py`: a fresh `__main__` module whose
    `__file__` is the absolute path, `sys.argv[0]` left as the user wrote it (runpy.run_path would make it
    the absolute path), compiled without this module's `from __future__` flags."""
    with io.open_code(script) as fh:
        source = fh.read()
    code = compile(source, script, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(
        __file__=script,
        __cached__=None,
        __loader__=importlib.machinery.SourceFileLoader("__main__", script),
        __builtins__=builtins,
    )
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


if __name__ == "__main__":  # a job's launcher: python -u -P <this file> script.py [args]
    run_script(sys.argv[1:], prog="runyard job launcher", prepend_dir=True)
