"""Scheduler overhead: per-step cost of no-op steps, and a fully reused resubmit.

Cases, all measured in one run on one machine:
- bare `python -c pass` subprocesses (the floor any process-isolated step pays)
- runyard: a 20-step chain and a 50-step fan-out of no-op steps (allow_reuse=False), each step a
  separate process with its own log folder and recorded state; timed from submit to pipeline Completed
  with the scheduler already running (`runyard up` / a warm background service)
- runyard: resubmitting a fully reusable 100-step pipeline
- Metaflow (local runtime, a process per step) and Prefect (tasks in-process, no isolation) running
  the same 20-step chain, from bench/.venv-compare (`make bench` creates it)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

COMPARE_PY = Path(__file__).resolve().parent / ".venv-compare" / "bin" / "python"  # made by `make bench`
CHAIN = 20
FANOUT = 50
REUSE = 100


def bare_python(n: int = 20) -> float:
    start = time.perf_counter()
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    return (time.perf_counter() - start) / n


def _steps(root: Path, n: int, chain: bool, allow_reuse: bool) -> list[Any]:
    from runyard.pipeline import PythonScriptStep, StepSequence

    steps = []
    for i in range(n):
        folder = root / f"s{i}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "noop.py").write_text(f"# step {i}\n")
        steps.append(
            PythonScriptStep("noop.py", name=f"s{i}", source_directory=folder, allow_reuse=allow_reuse)
        )
    if chain:
        StepSequence(steps)
    return steps


def _time_pipeline(ws: Any, steps: list[Any]) -> tuple[float, str]:
    from runyard.pipeline import Pipeline
    from runyard.status import TERMINAL_STATUSES

    pipeline = Pipeline(ws, steps)
    start = time.perf_counter()
    run = pipeline.submit("bench", show_output=False)
    while run._refresh().status not in TERMINAL_STATUSES:
        time.sleep(0.002)
    return time.perf_counter() - start, run._record.status


def runyard_cases() -> dict[str, Any]:
    from runyard import Workspace
    from runyard.engine.service import SchedulerService

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = Workspace.create(root / ".runyard")
        service = subprocess.Popen(
            [sys.executable, "-m", "runyard", "-w", str(ws.path), "up"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.time() + 30
            while not (ws.path / "scheduler.json").exists() and time.time() < deadline:
                time.sleep(0.05)
            _time_pipeline(ws, _steps(root / "warm", 2, True, False))  # warm caches and imports
            total, status = _time_pipeline(ws, _steps(root / "chain", CHAIN, True, False))
            results["chain"] = (total / CHAIN, status)
            total, status = _time_pipeline(ws, _steps(root / "fan", FANOUT, False, False))
            results["fanout"] = (total / FANOUT, status)
            steps = _steps(root / "reuse", REUSE, False, True)
            first, _ = _time_pipeline(ws, steps)
            total, status = _time_pipeline(ws, _steps(root / "reuse", REUSE, False, True))
            results["reuse"] = (total, status, first)
        finally:
            service.terminate()
            service.wait(timeout=30)
        del SchedulerService
    return results


METAFLOW_FLOW = """
from metaflow import FlowSpec, step

class Chain(FlowSpec):
{steps}

if __name__ == "__main__":
    Chain()
"""


def _compare_has(module: str) -> bool:
    """Metaflow and Prefect live in their own venv: their pins (Prefect's FastAPI) must not shape runyard's."""
    return COMPARE_PY.exists() and subprocess.run([str(COMPARE_PY), "-c", f"import {module}"]).returncode == 0


def metaflow_chain() -> float | None:
    if not _compare_has("metaflow"):
        return None
    names = ["start", *[f"s{i}" for i in range(1, CHAIN - 1)], "end"]
    body = []
    for index, name in enumerate(names):
        nxt = f"        self.next(self.{names[index + 1]})" if index + 1 < len(names) else "        pass"
        body.append(f"    @step\n    def {name}(self):\n{nxt}\n")
    with tempfile.TemporaryDirectory() as tmp:
        flow = Path(tmp) / "chain_flow.py"
        flow.write_text(METAFLOW_FLOW.format(steps="\n".join(body)))
        env = {
            **os.environ,
            "USERNAME": "bench",
            "USER": "bench",
            "METAFLOW_HOME": tmp,
            "METAFLOW_DEFAULT_DATASTORE": "local",
            "METAFLOW_DATASTORE_SYSROOT_LOCAL": tmp,
        }
        start = time.perf_counter()
        subprocess.run(
            [str(COMPARE_PY), str(flow), "--quiet", "run"], cwd=tmp, env=env, check=True, capture_output=True
        )
        return (time.perf_counter() - start) / CHAIN


PREFECT_SCRIPT = textwrap.dedent("""
    import time
    from prefect import flow, task

    @task
    def noop(x):
        return x

    @flow
    def chain(n):
        x = 0
        for _ in range(n):
            x = noop(x)
        return x

    chain(2)  # start the ephemeral API and warm up
    start = time.perf_counter()
    chain({n})
    print((time.perf_counter() - start) / {n})
""")


def prefect_chain() -> float | None:
    if not _compare_has("prefect"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PREFECT_HOME": tmp, "PREFECT_LOGGING_LEVEL": "ERROR"}
        env.pop("PREFECT_API_URL", None)
        out = subprocess.run(
            [str(COMPARE_PY), "-c", PREFECT_SCRIPT.format(n=CHAIN)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        return float(out.stdout.strip().splitlines()[-1])


def main() -> list[str]:
    import platform

    bare = bare_python()
    r = runyard_cases()
    mf = metaflow_chain()
    pf = prefect_chain()
    ms = lambda s: f"{s * 1000:.1f} ms"  # noqa: E731
    lines = [
        f"### Scheduler overhead — {time.strftime('%Y-%m-%d')}, {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "",
        "| case | per step | vs. bare `python -c pass` |",
        "|---|---|---|",
        f"| bare `python -c pass` subprocess | {ms(bare)} | 1.0x |",
        f"| runyard, {CHAIN}-step chain, process per step ({r['chain'][1]}) | {ms(r['chain'][0])} | "
        f"{r['chain'][0] / bare:.1f}x |",
        f"| runyard, {FANOUT}-step fan-out, process per step ({r['fanout'][1]}) | {ms(r['fanout'][0])} | "
        f"{r['fanout'][0] / bare:.1f}x |",
    ]
    lines.append(
        f"| Metaflow {CHAIN}-step chain, local runtime (process per step) | "
        + (f"{ms(mf)} | {mf / bare:.1f}x |" if mf else "not installed | |")
    )
    lines.append(
        f"| Prefect {CHAIN}-task chain, in-process (no isolation) | "
        + (f"{ms(pf)} | {pf / bare:.1f}x |" if pf else "not installed | |")
    )
    lines += [
        "",
        f"Fully reused {REUSE}-step resubmit, submit to Completed: **{r['reuse'][0]:.2f} s** "
        f"({r['reuse'][1]}; the first run of those {REUSE} steps took {r['reuse'][2]:.2f} s).",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(main()))
