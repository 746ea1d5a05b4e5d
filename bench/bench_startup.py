"""What a job pays before its first run.log(): `import runyard` and `Run.get_context()`.

Cases, all measured in one run on one machine, 20 times each (min and median):
- `python -c pass`: the floor any Python process pays.
- `python -c "import runyard"`.
- the job's process, replayed: a submitted script records its own command line (sys.orig_argv: the
  interpreter, `-u -P`, the azureml launcher runyard/v1_imports.py, the script) and environment (what
  its supervisor set: RUNYARD_RUN_ID, the workspace, the spool...), and while its run is still Running
  the bench starts that exact command, with that environment and working folder, on a script that
  does `import runyard; runyard.Run.get_context()`. Wall time is taken around the process, from
  spawn to exit (interpreter start-up and shutdown included); peak RSS is the kernel's own accounting
  for that child (os.wait4's ru_maxrss), spawned from a small stdlib-only interpreter (MEASURER).
- the same replay on a ported v1 script, `from azureml.core import Run; Run.get_context()`: what a
  training script rewritten from azureml to runyard.v1 pays (azureml is runyard.v1 in every job).
- inside real submitted jobs (Experiment.submit(ScriptRunConfig)): the script reports, after
  `import runyard; runyard.Run.get_context()`, its peak RSS (ru_maxrss), the CPU time its process has
  used since the interpreter started (user + system: start-up included; a lower bound of wall time,
  since a process that waits uses none), and the wall time of those two lines themselves. Peak RSS
  is VmHWM from /proc/self/status (Linux), the process's own high-water mark since its exec.
- per step of a 20-step chain (a process per step, scheduler already running): steps whose script is
  `import runyard; runyard.Run.get_context().log("v", 1.0)` against steps whose script is `pass`;
  each chain timed from submit to Finished, three times, fastest kept.

The targets (issue 17): `import runyard` + `Run.get_context()` in a job under 100 ms wall and 40 MiB
RSS, judged on the replayed job process (median), the most complete of the measures. CPU time (user +
system, from the same accounting) is printed beside wall time: on a busy machine wall time includes
waiting for a core, CPU time does not.

Bytecode: by default the processes may cache compiled modules, in a private folder
(PYTHONPYCACHEPREFIX; the checkout stays clean), and every case is run once before it is timed, as an
installed runyard has them (pip compiles at install). `--compile-each-time` measures a checkout whose
interpreter writes no bytecode (PYTHONDONTWRITEBYTECODE, as in this repository's dev setup): every
runyard module is compiled at every start.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

RUNS = 20
CHAIN = 20
TARGET_MS = 100.0
TARGET_MIB = 40.0

CONTEXT_SCRIPT = "import runyard\nrunyard.Run.get_context()\n"
#: The same two lines as a ported v1 script has them (azureml is runyard.v1 in every job).
V1_CONTEXT_SCRIPT = "from azureml.core import Run\nRun.get_context()\n"

#: A submitted script that records how it was started, then stays Running until `release` exists.
RECORDER = """
    import json, os, pathlib, sys, time

    pathlib.Path("outputs").mkdir(exist_ok=True)
    seen = {"argv": sys.orig_argv, "env": dict(os.environ), "cwd": os.getcwd()}
    pathlib.Path("outputs", "started.json").write_text(json.dumps(seen))
    deadline = time.monotonic() + 300
    while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
        time.sleep(0.02)
"""

#: A submitted script that measures itself (see the module docstring).
IN_JOB = """
    import time
    started = time.perf_counter()
    import runyard
    runyard.Run.get_context()
    wall = time.perf_counter() - started
    import json, pathlib, resource
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # VmHWM: this process's own peak (ru_maxrss would count the supervisor's memory before the exec)
    status = pathlib.Path("/proc/self/status").read_text().splitlines()
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    pathlib.Path("outputs").mkdir(exist_ok=True)
    pathlib.Path("outputs", "startup.json").write_text(
        json.dumps({"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_kib": hwm})
    )
"""

LOG_STEP = "import runyard\nrunyard.Run.get_context().log('v', 1.0)\n"
PASS_STEP = "pass\n"


#: Spawns a command RUNS + 1 times and prints [[wall s, CPU s, peak RSS KiB], ...] (the first is the warm-up).
#: It runs as its own small interpreter (-I -S: stdlib only) because a child's ru_maxrss counts the
#: memory of the process it was spawned from until its exec: spawned from this bench (which has
#: imported runyard) or from a supervisor, `python -c pass` would report their size, not its own.
MEASURER = """
import json, os, sys, time
argv, env, runs, errors = json.loads(sys.stdin.read())
out = []
for _ in range(runs + 1):
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
               (os.POSIX_SPAWN_OPEN, 2, errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)]
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} exited with {os.waitstatus_to_exitcode(status)}: {open(errors).read()[-2000:]}")
    out.append([wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss])
print(json.dumps(out))
"""


def repeated(argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    """RUNS timed starts of `argv` after one warm-up (bytecode and page caches, as for an installed runyard):
    wall from spawn to exit, and the child's own peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        request = json.dumps([argv, env if env is not None else dict(os.environ), RUNS, f"{tmp}/stderr"])
        out = subprocess.run(
            [sys.executable, "-I", "-S", "-c", MEASURER],
            input=request,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    samples = json.loads(out.stdout)[1:]
    return summary([s[0] for s in samples], [s[1] for s in samples], [s[2] / 1024 for s in samples])


def summary(walls: list[float], cpus: list[float], rss_mib: list[float]) -> dict[str, Any]:
    return {
        "wall_min_ms": min(walls) * 1000,
        "wall_median_ms": statistics.median(walls) * 1000,
        "cpu_min_ms": min(cpus) * 1000,
        "cpu_median_ms": statistics.median(cpus) * 1000,
        "rss_min_mib": min(rss_mib),
        "rss_median_mib": statistics.median(rss_mib),
    }


def source(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return folder


def replayed_job(ws: Any, root: Path) -> dict[str, Any]:
    """The job's own command and environment, replayed on CONTEXT_SCRIPT while its run is Running."""
    from runyard import Experiment, ScriptRunConfig

    release = root / "release"
    folder = source(
        root / "recorder",
        {"recorder.py": RECORDER, "context.py": CONTEXT_SCRIPT, "v1_context.py": V1_CONTEXT_SCRIPT},
    )
    run = Experiment(ws, "startup").submit(ScriptRunConfig(folder, "recorder.py", arguments=[str(release)]))
    started = ws.artifacts.local_path(f"runs/{run.id}/outputs/started.json")
    deadline = time.monotonic() + 120
    while not started.exists():
        if time.monotonic() > deadline or run.get_status() in ("Failed", "Canceled", "Completed"):
            raise RuntimeError(f"the recorder job never started: {run.read_log().decode()[-2000:]}")
        time.sleep(0.02)
    time.sleep(0.1)  # the file is written in one call; let it land
    seen = json.loads(started.read_text())
    try:
        argv = [*seen["argv"][:-2], "context.py"]  # [python, -u, -P, launcher, recorder.py, release]
        v1_argv = [*seen["argv"][:-2], "v1_context.py"]
        return {
            **repeated(argv, seen["env"], seen["cwd"]),
            "argv": argv,
            "env": seen["env"],
            "v1": repeated(v1_argv, seen["env"], seen["cwd"]),
        }
    finally:
        release.touch()
        run.wait_for_completion(raise_on_error=True)


def in_job(ws: Any, root: Path) -> dict[str, Any]:
    """RUNS submitted jobs that measure their own start (sequential: they must not share the cores)."""
    from runyard import Experiment, ScriptRunConfig

    folder = source(root / "in-job", {"in_job.py": IN_JOB})
    exp = Experiment(ws, "startup-in-job")
    exp.submit(ScriptRunConfig(folder, "in_job.py")).wait_for_completion()  # warm
    rows = []
    for _ in range(RUNS):
        run = exp.submit(ScriptRunConfig(folder, "in_job.py"))
        run.wait_for_completion()
        rows.append(json.loads(ws.artifacts.local_path(f"runs/{run.id}/outputs/startup.json").read_text()))
    return {
        "cpu_min_ms": min(r["cpu_s"] for r in rows) * 1000,
        "cpu_median_ms": statistics.median(r["cpu_s"] for r in rows) * 1000,
        "lines_min_ms": min(r["wall_s"] for r in rows) * 1000,
        "lines_median_ms": statistics.median(r["wall_s"] for r in rows) * 1000,
        "rss_min_mib": min(r["rss_kib"] for r in rows) / 1024,
        "rss_median_mib": statistics.median(r["rss_kib"] for r in rows) / 1024,
    }


def _chain(root: Path, script: str) -> list[Any]:
    from runyard.pipeline import PythonScriptStep, StepSequence

    steps = [
        PythonScriptStep(
            "step.py",
            name=f"s{i}",
            source_directory=str(source(root / f"s{i}", {"step.py": f"# step {i}\n{script}"})),
            allow_reuse=False,
        )
        for i in range(CHAIN)
    ]
    StepSequence(steps)
    return steps


def _time_chain(ws: Any, root: Path, script: str) -> float:
    from runyard.pipeline import Pipeline

    pipeline = Pipeline(ws, _chain(root, script))
    start = time.perf_counter()
    run = pipeline.submit("startup-steps", show_output=False)
    status = run.wait_for_completion(show_output=False, timeout_seconds=600)
    if status != "Finished":
        raise RuntimeError(f"the {CHAIN}-step chain ended {status}")
    return time.perf_counter() - start


def per_step(ws: Any, root: Path) -> dict[str, float]:
    """Seconds per step of a CHAIN-step chain: steps that log one value, steps that only `pass`."""
    service = subprocess.Popen(
        [sys.executable, "-m", "runyard", "-w", str(ws.path), "up"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (ws.path / "scheduler.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        _time_chain(ws, root / "warm", LOG_STEP)
        best = {"log": float("inf"), "pass": float("inf")}
        for attempt in range(3):  # alternate, so a busy moment does not land on one case only
            for case, script in (("log", LOG_STEP), ("pass", PASS_STEP)):
                best[case] = min(best[case], _time_chain(ws, root / f"{case}{attempt}", script) / CHAIN)
        return best
    finally:
        service.terminate()
        service.wait(timeout=30)


def verdict(value: float, target: float) -> str:
    return "MET" if value < target else "NOT MET"


def main(argv: list[str] | None = None) -> list[str]:
    global RUNS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compile-each-time",
        action="store_true",
        help="no bytecode cache (PYTHONDONTWRITEBYTECODE): every start compiles runyard's modules",
    )
    parser.add_argument("--runs", type=int, default=RUNS, help=f"runs per case (default {RUNS})")
    args = parser.parse_args(argv)
    RUNS = args.runs
    cache = tempfile.TemporaryDirectory()
    if args.compile_each_time:
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
        mode = "no bytecode cache (PYTHONDONTWRITEBYTECODE=1): modules compiled at every start"
    else:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = cache.name  # children (supervisors, jobs) inherit it
        mode = "bytecode cached (as installed), in a private PYTHONPYCACHEPREFIX"

    from runyard import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bare = repeated([sys.executable, "-c", "pass"])
        imported = repeated([sys.executable, "-c", "import runyard"])
        ws = Workspace.create(root / ".runyard")
        job = replayed_job(ws, root)
        inside = in_job(ws, root)
        steps = per_step(ws, root)
    cache.cleanup()

    ms = lambda v: f"{v:.1f} ms"  # noqa: E731
    mib = lambda v: f"{v:.1f} MiB"  # noqa: E731
    run_type = "set" if "RUNYARD_RUN_TYPE" in job["env"] else "not set (the record is read)"
    lines = [
        f"### Job start-up: import runyard + Run.get_context() — {time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        f"{RUNS} runs per case, after one warm-up; {mode}. In the job's environment RUNYARD_RUN_TYPE is "
        f"{run_type}.",
        "",
        "| case | wall min | wall median | CPU min | CPU median | peak RSS min | peak RSS median |",
        "|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {ms(r['wall_min_ms'])} | {ms(r['wall_median_ms'])} | {ms(r['cpu_min_ms'])} "
            f"| {ms(r['cpu_median_ms'])} | {mib(r['rss_min_mib'])} | {mib(r['rss_median_mib'])} |"
            for name, r in (
                ("`python -c pass`", bare),
                ('`python -c "import runyard"`', imported),
                ("job process replayed (launcher + `import runyard; Run.get_context()`), spawn to exit", job),
                (
                    "the same, a ported v1 script (`from azureml.core import Run; Run.get_context()`)",
                    job["v1"],
                ),
            )
        ),
        "",
        "| inside submitted jobs | min | median |",
        "|---|---|---|",
        f"| process CPU time at get_context's return (start-up included) | {ms(inside['cpu_min_ms'])} "
        f"| {ms(inside['cpu_median_ms'])} |",
        f"| wall of `import runyard; Run.get_context()` lines | {ms(inside['lines_min_ms'])} "
        f"| {ms(inside['lines_median_ms'])} |",
        f"| peak RSS | {mib(inside['rss_min_mib'])} | {mib(inside['rss_median_mib'])} |",
        "",
        f"| {CHAIN}-step chain, per step (fastest of 3) | seconds |",
        "|---|---|",
        f"| steps `import runyard; Run.get_context().log('v', 1.0)` | {ms(steps['log'] * 1000)} |",
        f"| steps `pass` | {ms(steps['pass'] * 1000)} |",
        f"| overhead of importing runyard and logging, per step | {ms((steps['log'] - steps['pass']) * 1000)} |",
        "",
        "| target (job process replayed, median) | measured | verdict |",
        "|---|---|---|",
        f"| wall < {TARGET_MS:.0f} ms | {ms(job['wall_median_ms'])} | {verdict(job['wall_median_ms'], TARGET_MS)} |",
        f"| peak RSS < {TARGET_MIB:.0f} MiB | {mib(job['rss_median_mib'])} "
        f"| {verdict(job['rss_median_mib'], TARGET_MIB)} |",
        f"| (cross-check: CPU time < {TARGET_MS:.0f} ms) | {ms(job['cpu_median_ms'])} "
        f"| {verdict(job['cpu_median_ms'], TARGET_MS)} |",
    ]
    return lines


if __name__ == "__main__":
    print("\n".join(main(sys.argv[1:])))
