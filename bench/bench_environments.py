"""Environments (issue 13): what an environment costs a step once built, and what building it costs.

(a) Cached resolve per step: plan_environment(definition) + prepare_environment(plan) on an environment
    already built, median of 200 in one process, and the first call in a fresh process (where runyard is
    already imported, as in a job supervisor).
    Target: under 20 ms.
(b) A cold build of the same requirements, side by side in one run, median of REPEATS each, alternated:
    runyard into an empty build cache with uv's own cache warm; runyard with uv's cache empty too
    (UV_CACHE_DIR in a temporary folder); `python -m venv` + `pip install` with pip's cache warm and with
    --no-cache-dir. PIP_FIND_LINKS is cleared so pip reads the same index as uv.

Run from the repository root: `.venv/bin/python bench/bench_environments.py`. Needs the package index.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from runyard.environments.build import index_reachable, prepare_environment
from runyard.environments.plan import plan_environment

REQUIREMENTS = ["requests==2.32.3", "tabulate==0.9.0"]
RESOLVES = 200
REPEATS = 3
DEFINITION = {
    "name": "bench-env",
    "python": {
        "userManagedDependencies": False,
        "interpreterPath": "python",
        "condaDependencies": {
            "name": "project_environment",
            "dependencies": ["python=3.8.13", "pip=20.1.1", {"pip": ["azureml-defaults", *REQUIREMENTS]}],
            "channels": ["anaconda", "conda-forge"],
        },
    },
}
FRESH_PROCESS = """
import json, sys, time
import runyard
start = time.perf_counter()
from runyard.environments.build import prepare_environment
from runyard.environments.plan import plan_environment
imported = time.perf_counter()
prepared = prepare_environment(plan_environment(json.loads(sys.argv[1])))
assert not prepared.built
print(imported - start, time.perf_counter() - imported)
"""


def _cached_resolve(cache: Path) -> dict[str, float]:
    os.environ["RUNYARD_ENV_CACHE"] = str(cache)
    prepare_environment(plan_environment(DEFINITION))  # built once
    times = []
    for _ in range(RESOLVES):
        start = time.perf_counter()
        prepared = prepare_environment(plan_environment(DEFINITION))
        times.append(time.perf_counter() - start)
        assert not prepared.built
    fresh = [
        [float(x) for x in subprocess.run([sys.executable, "-c", FRESH_PROCESS, json.dumps(DEFINITION)],
                                          check=True, capture_output=True, text=True).stdout.split()]
        for _ in range(5)
    ]  # fmt: skip
    times.sort()
    return {
        "median": statistics.median(times),
        "p95": times[int(len(times) * 0.95)],
        "fresh_imports": statistics.median(f[0] for f in fresh),
        "fresh_call": statistics.median(f[1] for f in fresh),
    }


def _runyard_build(root: Path, uv_cache: Path | None) -> float:
    env = {**os.environ, "RUNYARD_ENV_CACHE": str(root)}
    if uv_cache is not None:
        env["UV_CACHE_DIR"] = str(uv_cache)
    code = (
        "import json, sys, time; from runyard.environments.build import prepare_environment; "
        "from runyard.environments.plan import plan_environment; s = time.perf_counter(); "
        "p = prepare_environment(plan_environment(json.loads(sys.argv[1]))); assert p.built; "
        "print(time.perf_counter() - s)"
    )
    out = subprocess.run([sys.executable, "-c", code, json.dumps(DEFINITION)], env=env, check=True,
                         capture_output=True, text=True)  # fmt: skip
    return float(out.stdout)


def _pip_build(folder: Path, no_cache: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
    base = getattr(sys, "_base_executable", sys.executable)
    start = time.perf_counter()
    subprocess.run([base, "-m", "venv", str(folder)], check=True, capture_output=True, env=env)
    extra = ["--no-cache-dir"] if no_cache else []
    subprocess.run([str(folder / "bin" / "python"), "-m", "pip", "install", "-q", *extra, *REQUIREMENTS],
                   check=True, capture_output=True, env=env)  # fmt: skip
    return time.perf_counter() - start


def _cold_builds(work: Path) -> dict[str, float]:
    runs: dict[str, list[float]] = {"uv_warm": [], "uv_cold": [], "pip_warm": [], "pip_cold": []}
    _pip_build(work / "pip-warmup", no_cache=False)  # fills pip's cache
    _runyard_build(work / "warmup", None)  # fills uv's cache
    for i in range(REPEATS):
        runs["uv_warm"].append(_runyard_build(work / f"uv-warm-{i}", None))
        runs["uv_cold"].append(_runyard_build(work / f"uv-cold-{i}", work / f"uv-cache-{i}"))
        runs["pip_warm"].append(_pip_build(work / f"pip-warm-{i}", no_cache=False))
        runs["pip_cold"].append(_pip_build(work / f"pip-cold-{i}", no_cache=True))
    return {name: statistics.median(values) for name, values in runs.items()}


def main() -> list[str]:
    problem = index_reachable()
    if problem:
        return [f"environments benchmark skipped: the package index is unreachable ({problem})"]
    work = Path(tempfile.mkdtemp(prefix="runyard-bench-env-"))
    try:
        resolve = _cached_resolve(work / "resolve-cache")
        builds = _cold_builds(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    met = "MET" if resolve["median"] < 0.020 else "NOT MET"
    faster = (
        "MET"
        if builds["uv_warm"] < builds["pip_warm"] and builds["uv_cold"] < builds["pip_cold"]
        else "NOT MET"
    )
    ms = 1000
    return [
        f"### Environments (issue 13), {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "",
        f"Requirements: {', '.join(REQUIREMENTS)} (+ azureml-defaults, satisfied by runyard).",
        "",
        "| case | time | target |",
        "|---|---|---|",
        f"| cached resolve per step (plan + prepare, median of {RESOLVES}) | **{resolve['median'] * ms:.2f} ms** "
        f"(p95 {resolve['p95'] * ms:.2f} ms) | < 20 ms: **{met}** |",
        f"| the same, first call in a fresh process (after `import runyard`) | {resolve['fresh_call'] * ms:.2f} ms "
        f"(+ {resolve['fresh_imports'] * ms:.0f} ms importing plan/build) | |",
        f"| cold build, runyard (uv), uv's cache warm | **{builds['uv_warm']:.2f} s** | faster than pip: **{faster}** |",
        f"| cold build, `python -m venv` + `pip install`, pip's cache warm | {builds['pip_warm']:.2f} s | |",
        f"| cold build, runyard (uv), uv's cache empty | **{builds['uv_cold']:.2f} s** | |",
        f"| cold build, `python -m venv` + `pip install --no-cache-dir` | {builds['pip_cold']:.2f} s | |",
    ]


if __name__ == "__main__":
    print("\n".join(main()))
