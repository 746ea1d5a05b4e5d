"""Helpers the ParallelRunStep test modules share: the driver's settings with test defaults, the
authoring tests' source folder and datasets, the pipeline tests' datasets and process lookup, and the
entry scripts the runtime and pipeline tests run.

Kept apart from conftest.py because only the parallel tests use them; the test modules import them by
name, as they do `from conftest import ...` (tests/ is on sys.path).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil

from runyard import Workspace
from runyard.data.dataset import Dataset
from runyard.engine.graph_parallel import ParallelSettings
from runyard.environments import Environment
from runyard.parallel import ParallelRunConfig
from runyard.parallel.job import ParallelJob
from runyard.pipeline.graph import compile_graph

V1 = json.loads((Path(__file__).resolve().parent.parent / "tools" / "v1-signatures.json").read_text())

#: What a driver runs with unless a test says otherwise (a file input, one file per mini-batch).
DRIVER_DEFAULTS: dict[str, Any] = {
    "kind": "file",
    "mini_batch_size": 1,
    "error_threshold": -1,
    "output_action": "append_row",
    "append_row_file_name": "parallel_run_step.txt",
    "node_count": 1,
    "process_count_per_node": 2,
    "logging_level": "INFO",
    "run_invocation_timeout": 30,
    "run_max_try": 3,
}


def driver_settings(**changes: Any) -> ParallelSettings:
    """`ParallelSettings` with DRIVER_DEFAULTS, `changes` replacing any of them."""
    return ParallelSettings(**{**DRIVER_DEFAULTS, **changes})


# -- the authoring tests (test_parallel_config.py, test_parallel_step.py) ---------------------------
def prs_files(tmp_path: Path) -> dict[str, Any]:
    """A source folder with score.py, a folder of three images and a CSV table: the datasets over them."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "score.py").write_text("def init():\n    pass\n\ndef run(mini_batch):\n    return mini_batch\n")
    (src / "sub" / "deep.py").write_text("def run(mb):\n    return mb\n")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(3):
        (images / f"{i}.png").write_bytes(b"png")
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    return {
        "src": src,
        "file": Dataset.File.from_files(str(images)),
        "table": Dataset.Tabular.from_delimited_files(str(tmp_path / "rows.csv")),
    }


def config(files: dict[str, Any], **kwargs: Any) -> ParallelRunConfig:
    args: dict[str, Any] = {
        "environment": Environment("score-env"),
        "entry_script": "score.py",
        "source_directory": files["src"],
        "error_threshold": 10,
        "output_action": "append_row",
        "compute_target": "local",
        "node_count": 1,
    }
    return ParallelRunConfig(**{**args, **kwargs})


def compiled(*steps: Any, **values: Any) -> tuple[dict[str, Any], list[str]]:
    graph, errors, _ = compile_graph(
        list(steps), description=None, default_source_directory=None, parameter_values=values or None
    )
    return graph, errors


def parallel_of(graph: dict[str, Any], name: str = "score-digits") -> dict[str, Any]:
    return next(s for s in graph["steps"] if s["name"] == name)["parallel"]


# -- the pipeline tests (test_parallel_pipeline.py) ------------------------------------------------
def files_dataset(ws: Workspace, tmp_path: Path, name: str, contents: dict[str, str]) -> Any:
    """A registered FileDataset of `contents` (file name -> text), uploaded to the default datastore."""
    folder = tmp_path / name
    folder.mkdir()
    for file_name, text in contents.items():
        (folder / file_name).write_text(text)
    store = ws.get_default_datastore()
    store.upload(str(folder), target_path=name, overwrite=True, show_progress=False)
    return Dataset.File.from_files((store, name)).register(ws, name)


def table_dataset(
    ws: Workspace, tmp_path: Path, name: str, files: dict[str, list[tuple[int, int, int]]]
) -> Any:
    """A TabularDataset over CSV files of (id, a, b) rows, uploaded to the default datastore."""
    folder = tmp_path / name
    folder.mkdir()
    for file_name, rows in files.items():
        lines = ["id,a,b", *(f"{i},{a},{b}" for i, a, b in rows)]
        (folder / file_name).write_text("\n".join(lines) + "\n")
    store = ws.get_default_datastore()
    store.upload(str(folder), target_path=name, overwrite=True, show_progress=False)
    return Dataset.Tabular.from_delimited_files((store, f"{name}/*.csv"))


def run_processes(run_id: str) -> list[psutil.Process]:
    """Every live process of a step run (its driver and workers carry RUNYARD_RUN_ID)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("RUNYARD_RUN_ID") == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


# -- entry scripts the driver tests run (test_parallel_runtime.py) ----------------------------------
ECHO = """
import argparse, os, sys
from azureml_user.parallel_run import EntryScript
from entry_script import EntryScript as OldName
from azureml.core import Run

def init():
    global args
    args, _ = argparse.ArgumentParser().parse_known_args()
    parser = argparse.ArgumentParser()
    parser.add_argument("--model_name")
    args, _ = parser.parse_known_args()
    es = EntryScript()
    assert es is OldName() and Run.__module__.startswith("runyard")
    es.logger.info("init in %s model=%s out=%s", es.agent_name, args.model_name, es.output_dir)
    print("init", es.agent_name, es.working_dir == os.getcwd(), os.path.isdir(es.log_dir))

def run(mini_batch):
    return [f"{os.path.basename(p)}|{open(p).read().strip()}|{args.model_name}" for p in mini_batch]
"""

FAILURES = """
import os, time
from pathlib import Path

def init():
    pass

def run(mini_batch):
    names = [os.path.basename(p) for p in mini_batch]
    for path, name in zip(mini_batch, names):
        if name.startswith("bad"):
            raise ValueError("cannot score " + name)
        marker = Path(path + ".tried")
        if name.startswith("flaky") and not marker.exists():
            marker.write_text("x")
            raise RuntimeError("first try fails")
        if name.startswith("crash") and not marker.exists():
            marker.write_text("x")
            os._exit(7)  # the worker dies in run(): its try fails, a new worker takes over
    return [p for p, n in zip(mini_batch, names) if not n.startswith("short")]
"""

TIMEOUT = """
import os, subprocess, sys, time
from pathlib import Path
from azureml_user.parallel_run import EntryScript

def init():
    print("init", EntryScript().agent_name, flush=True)

def run(mini_batch):
    marker = Path(mini_batch[0] + ".tried")
    if os.path.basename(mini_batch[0]).startswith("slow") and not marker.exists():
        marker.write_text("x")
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        Path(mini_batch[0] + ".child").write_text(str(child.pid))
        time.sleep(60)
    return mini_batch
"""

SLOW = """
import os, time
from pathlib import Path

def init():
    pass

def run(mini_batch):
    with open(Path(mini_batch[0]).parent.parent / "calls.log", "a") as fh:
        fh.write(os.path.basename(mini_batch[0]) + "\\n")
    time.sleep(0.15)
    return [os.path.basename(p) for p in mini_batch]
"""


# -- entry scripts the pipeline tests run (test_parallel_pipeline.py) -------------------------------
SCORE_FILES = """
    import argparse, os, time
    from azureml_user.parallel_run import EntryScript

    def init():
        global DELAY
        parser = argparse.ArgumentParser()
        parser.add_argument("--delay", type=float, default=0.0)
        args, _ = parser.parse_known_args()
        DELAY = args.delay
        EntryScript().logger.info("init in %s", EntryScript().agent_name)

    def run(mini_batch):
        time.sleep(DELAY)
        out = []
        for path in mini_batch:
            with open(path) as fh:
                text = fh.read().strip()
            if text == "bad":
                raise ValueError(f"cannot score {os.path.basename(path)}")
            out.append(f"{os.path.basename(path)} {text}")
        return out
"""

#: Mini-batches of the files named in --free run at once; the others wait until the file --gate exists,
#: so a test can stop a job at a known point and let its resumed run through.
GATED = """
    import argparse, os, time
    from azureml_user.parallel_run import EntryScript

    def init():
        global GATE, FREE
        parser = argparse.ArgumentParser()
        parser.add_argument("--gate")
        parser.add_argument("--free")
        args, _ = parser.parse_known_args()
        GATE, FREE = args.gate, set(args.free.split(","))

    def run(mini_batch):
        names = [os.path.basename(p) for p in mini_batch]
        while not FREE.issuperset(names) and not os.path.exists(GATE):
            time.sleep(0.02)
        extra = os.path.join(EntryScript().output_dir, "extra")  # files of its own, as summary_only does
        os.makedirs(extra, exist_ok=True)
        for name in names:
            with open(os.path.join(extra, name + ".done"), "w") as fh:
                fh.write("1")
        return [f"{n} {open(p).read().strip()}" for n, p in zip(names, mini_batch)]
"""

SCORE_ROWS = """
    def init():
        pass

    def run(mini_batch):
        mini_batch["total"] = mini_batch["a"] + mini_batch["b"]
        return mini_batch[["id", "total"]]
"""

#: init() reads a side input's file and a registered model; run() scales each number by the model.
PREDICT = """
    import argparse, os
    from azureml.core.model import Model

    def init():
        global FACTOR, UNIT
        parser = argparse.ArgumentParser()
        parser.add_argument("--labels")
        args, _ = parser.parse_known_args()
        with open(os.path.join(args.labels, "unit.txt")) as fh:
            UNIT = fh.read().strip()
        with open(Model.get_model_path("prs-factor")) as fh:
            FACTOR = int(fh.read())

    def run(mini_batch):
        return [f"{os.path.basename(p)} {int(open(p).read()) * FACTOR}{UNIT}" for p in mini_batch]
"""

#: An upstream PythonScriptStep writing five numbers into its output folder.
MAKE = """
    import pathlib, sys
    out = pathlib.Path(sys.argv[1])
    for i in range(5):
        (out / f"n{i}.txt").write_text(str(i))
"""


def make_job(
    root: Path,
    script: str,
    names: Sequence[str],
    settings: dict[str, Any],
    arguments: Sequence[str] = (),
    kind: str = "file",
) -> Path:
    """A driver job folder: data/<name>.txt per name, the entry script score.py, job.json (returned)."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in names:
        (data / f"{name}.txt").write_text(f"content of {name}\n")
    (root / "score.py").write_text(textwrap.dedent(script))
    job = ParallelJob(
        step="score",
        entry_script="score.py",
        settings=settings,
        inputs=[{"name": "data", "kind": kind, "source": "path", "path": str(data)}],
        output=str(root / "out"),
        arguments=list(arguments),
        checkpoint=str(root / "ckpt"),
    )
    return job.save(root / "job.json")
