"""One ParallelRunStep worker process: import the entry script once, init() once, run() per mini-batch.

The driver starts it as `python -u -P <this file>` (by path, not `-m`: importing the `runyard` package
costs a second, and a worker that is replaced after a timeout would pay it again). It imports only the
standard library until a mini-batch needs more: pyarrow and pandas for a tabular mini-batch (through
parallel/tables.py, loaded by path), runyard.v1 when the entry script imports `azureml`.

It talks to the driver over one multiprocessing connection (127.0.0.1, the driver's random authkey):
- worker -> driver: ("hello", agent), then ("ready", init_seconds) or ("init_failed", kind, summary,
  traceback); per mini-batch ("done", id, attempt, returned, results_file, seconds, run_seconds) or
  ("failed", id, attempt, summary, traceback, seconds).
- driver -> worker: ("run", mini_batch_json, attempt) (one may wait queued behind the running one), ("stop",).
A returned try's rows go to `<checkpoint>/results/<id:08d>.<attempt>.txt` (temp + rename) before "done";
the driver looks for that name itself (the results_file in "done" is informational only).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
USER_DIR = _HERE / "_user"
V1_IMPORTS = _HERE.parent / "v1_imports.py"
TABLES = _HERE / "tables.py"  # reads table files; imports nothing of runyard
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Linux: the kernel SIGKILLs this process when the driver dies (even by SIGKILL). The pipe's EOF
    covers the rest; a parent gone before prctl took effect is caught by the getppid check."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent and os.getppid() != parent:
        os._exit(3)


def _load_by_path(name: str, path: Path) -> Any:
    """A runyard module that imports nothing of runyard, loaded without importing the `runyard` package
    (whose __init__ costs about a second)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


def install_azureml_alias() -> None:
    """`azureml.*` -> runyard.v1.* (runyard/v1_imports.py, loaded by path: it imports only the standard
    library, and runyard itself is imported only if the entry script imports azureml)."""
    _load_by_path("_runyard_v1_imports", V1_IMPORTS).install()


def import_entry_script(path: str) -> Any:
    """Import the entry script as a module named after its file (as Azure's driver does)."""
    name = Path(path).stem
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a Python module (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def format_rows(result: Any) -> tuple[int, str]:
    """run()'s return value as (count, append_row text): one line per list element or DataFrame row
    (space-separated, no header). TypeError for values that are not a list or a DataFrame."""
    if hasattr(result, "to_csv") and hasattr(result, "columns"):  # a pandas DataFrame
        if len(result) == 0:
            return 0, ""
        return len(result), result.to_csv(sep=" ", header=False, index=False, lineterminator="\n")
    if result is None or isinstance(result, (str, bytes, dict)) or not hasattr(result, "__iter__"):
        kind = "None (nothing)" if result is None else f"a {type(result).__name__}"
        raise TypeError(
            f"run() returned {kind}; it must return a list (one element per successful item) or a pandas "
            "DataFrame (one row per successful item)."
        )
    items = [str(x) for x in result]
    return len(items), "".join(f"{x}\n" for x in items)


def _summary(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class Worker:
    def __init__(self, conn: Connection, agent: str, results: str | None, preload: bool) -> None:
        self.conn = conn
        self.agent = agent
        self.results = Path(results) if results else None
        self.preload = preload
        self.cache: Any = None
        self.tables: Any = None  # parallel/tables.py, loaded by path for the first tabular mini-batch
        self.module: Any = None

    def start(self, entry: str, arguments: list[str]) -> bool:
        """Import the entry script and call init(); tell the driver. False: the worker must stop."""
        sys.argv[:] = [entry, *arguments]
        sys.path[:0] = [str(Path(entry).resolve().parent), str(USER_DIR)]
        install_azureml_alias()
        began = time.perf_counter()
        if self.preload:
            with contextlib.suppress(Exception):  # a real problem shows again with the first mini-batch
                self.tables = _load_by_path("_runyard_parallel_tables", TABLES)
                self.cache = self.tables.TableCache()
        try:
            self.module = import_entry_script(entry)
        except BaseException as exc:
            self.conn.send(
                (
                    "init_failed",
                    "import",
                    f"the entry script {entry} failed to import: {_summary(exc)}",
                    traceback.format_exc(),
                )
            )
            return False
        missing = [n for n in ("init", "run") if not callable(getattr(self.module, n, None))]
        if missing:
            self.conn.send(
                (
                    "init_failed",
                    "missing",
                    f"the entry script {entry} has no "
                    f"{' and no '.join(f'{n}()' for n in missing)} function; a ParallelRunStep "
                    "entry script defines init() (called once per worker) and run(mini_batch).",
                    "",
                )
            )
            return False
        try:
            self.module.init()
        except BaseException as exc:
            self.conn.send(("init_failed", "init", f"init() raised {_summary(exc)}", traceback.format_exc()))
            return False
        self.conn.send(("ready", time.perf_counter() - began))
        return True

    def mini_batch(self, data: dict[str, Any]) -> Any:
        if data["kind"] == "file":
            return list(data["files"])
        if self.tables is None:
            self.tables = _load_by_path("_runyard_parallel_tables", TABLES)
            self.cache = self.tables.TableCache()
        return self.tables.load_rows(data["files"][0], data.get("rows"), self.cache)

    def run_one(self, data: dict[str, Any], attempt: int) -> None:
        began = time.perf_counter()
        mb_id = data["id"]
        try:
            batch = self.mini_batch(data)
            run_began = time.perf_counter()
            result = self.module.run(batch)
            run_seconds = time.perf_counter() - run_began
            count, text = format_rows(result)
            name = None
            if self.results is not None:
                name = f"{mb_id:08d}.{attempt}.txt"
                tmp = self.results / f".{name}.tmp"
                # O_NOFOLLOW: a link planted under that name makes the try fail, not write elsewhere
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with open(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(tmp, self.results / name)
        except Exception as exc:
            self.conn.send(
                ("failed", mb_id, attempt, _summary(exc), traceback.format_exc(), time.perf_counter() - began)
            )
            return
        self.conn.send(("done", mb_id, attempt, count, name, time.perf_counter() - began, run_seconds))

    def serve(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return  # the driver is gone
            if message[0] == "stop":
                return
            if message[0] == "run":
                self.run_one(message[1], message[2])


def read_plumbing() -> dict[str, Any]:
    """The driver writes the worker's plumbing to its stdin and closes it: JSON with address [host, port],
    authkey (hex), agent, driver_pid, entry_script (absolute), arguments, results (folder, or null with
    summary_only), level, preload (a tabular input: load pandas while starting, not in the first run()).
    Not an environment variable: /proc/<pid>/environ keeps the initial environment even after unsetenv(),
    and the entry script (or a child of it) could read the authkey there. stdin becomes /dev/null."""
    spec: dict[str, Any] = json.loads(sys.stdin.buffer.read())
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return spec


def main() -> int:
    spec = read_plumbing()
    die_with_parent(int(spec["driver_pid"]))
    logging.basicConfig(
        stream=sys.stdout,
        level=getattr(logging, spec["level"], logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    conn = Client(tuple(spec["address"]), authkey=bytes.fromhex(spec["authkey"]))
    with socket.socket(fileno=os.dup(conn.fileno())) as sock:  # same socket: no Nagle delay on replies
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.send(("hello", spec["agent"]))
    worker = Worker(conn, spec["agent"], spec["results"], spec["preload"])
    if worker.start(spec["entry_script"], spec["arguments"]):
        worker.serve()
    sys.stdout.flush()
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
