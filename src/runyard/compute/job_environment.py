"""A job's environment, as its log folder tells it: what ProcessJob says in 65_job_prep.txt and
20_image_build_log.txt, the error of a run whose environment could not be prepared, the variables an
environment sets, and the import-failure diagnosis (runyard.environments.diagnosis).

Kept apart from process_job.py so that a job without an environment never imports the environments
package (YAML, packaging, uv): `definition is None` is the old, fast path.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runyard.errors import EnvironmentBuildError, EnvironmentDefinitionError, EnvironmentNotFound

if TYPE_CHECKING:
    from runyard.environments.build import PreparedEnvironment
    from runyard.environments.plan import BuildPlan

#: v1's name for the log of the image build; here the log of the virtual environment's build.
BUILD_LOG = "20_image_build_log.txt"
#: The run error's code when its environment could not be prepared (no process was started).
ERROR_CODE = "EnvironmentError"
#: Lines of the build log quoted in the run's error message (the whole log is in BUILD_LOG).
ERROR_LOG_LINES = 20
#: What fails a job's environment: an unknown name, a definition that cannot be built, a failed build.
ENVIRONMENT_PROBLEMS = (EnvironmentBuildError, EnvironmentDefinitionError, EnvironmentNotFound)


def plan_for(definition: Mapping[str, Any] | None) -> BuildPlan:
    from runyard.environments.plan import plan_environment

    return plan_environment(definition)


def prepare(plan: BuildPlan, say: Any) -> PreparedEnvironment:
    from runyard.environments.build import prepare_environment

    return prepare_environment(plan, say=say)


def display_name(plan: BuildPlan) -> str:
    return f"Environment {plan.name!r}" if plan.name else "The environment"


def prep_lines(prepared: PreparedEnvironment) -> list[str]:
    """65_job_prep.txt's account of the environment: which one, its hash, reused or built, where, how long,
    and its requirements. The plan's notes (conda packages mapped, azureml-* packages runyard stands in for,
    Python chosen) only when this job built it, as the build log holds them too: a run that reuses a build
    says so in two lines, not the notes again on every run."""
    plan = prepared.plan
    who = display_name(plan)
    if plan.user_managed:
        lines = [f"{who}: user-managed, the job runs with {prepared.python} as it is (nothing built)"]
        return lines + _notes(who, plan)
    if prepared.built:
        how = f"built in {prepared.seconds:.1f} s into {prepared.location}, log in azureml-logs/{BUILD_LOG}"
    elif prepared.waited:
        how = (
            f"waited for another job's build of the same hash, then reused it in {prepared.location} "
            f"({prepared.seconds:.3f} s)"
        )
    else:
        how = f"reused the build in {prepared.location} ({prepared.seconds:.3f} s)"
    lines = [f"{who} (hash {plan.hash[:12]}, Python {plan.python}): {how}"]
    if plan.requirements:
        from runyard.environments.redact import redact_urls  # a requirement's URL may hold a token

        lines.append(f"{who}: requirements {', '.join(redact_urls(r) for r in plan.requirements)}")
    return lines + (_notes(who, plan) if prepared.built else [])


def _notes(who: str, plan: BuildPlan) -> list[str]:
    """The plan's notes, each once (a definition listing azureml-defaults twice is told once)."""
    return [f"{who}: {note}" for note in dict.fromkeys(plan.notes)]


def variables(definition: Mapping[str, Any] | None) -> dict[str, str]:
    """The environment's own variables (v1's Environment.environment_variables)."""
    given = (definition or {}).get("environmentVariables") or {}
    return {str(k): str(v) for k, v in given.items()} if isinstance(given, Mapping) else {}


#: What MLflow reads to find its tracking server, run and experiment (what Azure ML sets for a job too).
MLFLOW_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_TRACKING_TOKEN")
#: MLflow settings a job does not inherit from the process that submitted it: they name another run,
#: experiment or server credential (the job's own MLFLOW_VARIABLES replace them).
MLFLOW_INHERITED = (*MLFLOW_VARIABLES, "MLFLOW_EXPERIMENT_ID")


#: What a notebook front end sets in its kernel's process, which a job submitted from the kernel must not
#: inherit (on Azure ML a job never sees the notebook's variables): jupyter_client's JPY_PARENT_PID /
#: JPY_INTERRUPT_EVENT, the server's JPY_SESSION_NAME, the debugger's PYDEVD_* (ipykernel, VS Code).
FRONT_END_PREFIXES = ("JPY_", "PYDEVD_")
FRONT_END_VARIABLES = ("IPY_INTERRUPT_EVENT",)
#: ipykernel's inline plotting backend: `import matplotlib` in a job dies on it (no kernel to draw in).
#: Any module:// backend goes (it names code of the submitting front end); a named one ("Agg") stays.
KERNEL_BACKEND_PREFIX = "module://matplotlib_inline"
#: The terminal settings ipykernel's shell gives its process (colors forced, pagers off); dropped only
#: when they hold exactly those values and the submitter is a kernel, so a terminal's own settings stay.
KERNEL_SHELL_VALUES = {
    "TERM": "xterm-color",
    "CLICOLOR": "1",
    "FORCE_COLOR": "1",
    "CLICOLOR_FORCE": "1",
    "PAGER": "cat",
    "GIT_PAGER": "cat",
}


def inherited(environ: Mapping[str, str]) -> dict[str, str]:
    """What a job keeps of the submitting process's variables: all but MLflow's stale settings
    (MLFLOW_INHERITED) and what a notebook kernel or its front end set there (see FRONT_END_*). The
    job's own variables (its environment's, its run's) are added after this and may set any of them."""
    kernel = environ.get("MPLBACKEND", "").startswith(KERNEL_BACKEND_PREFIX) or "JPY_PARENT_PID" in environ

    def front_end(name: str, value: str) -> bool:
        if name in FRONT_END_VARIABLES or name.startswith(FRONT_END_PREFIXES):
            return True
        if name == "MPLBACKEND":
            return value.startswith("module://")
        return kernel and KERNEL_SHELL_VALUES.get(name) == value

    return {k: v for k, v in environ.items() if k not in MLFLOW_INHERITED and not front_end(k, v)}


def mlflow_variables(
    tracking_uri: str, run_id: str, experiment_name: str, token: str | None, given: Mapping[str, str]
) -> dict[str, str]:
    """MLflow's variables for a job, so `mlflow.log_metric` in the script lands in the job's own run:
    the workspace's MLflow address (the plugin URI of an embedded workspace, the server's URL), the run's
    id, its experiment, and for a server the job's run token (it may write to its own run only).

    `given`: the job's own variables (its environment's and run's), which win over these, as in Azure
    ML. One naming another MLflow (MLFLOW_TRACKING_URI) gets none of them: this run's id, experiment and
    token mean nothing there."""
    if given.get("MLFLOW_TRACKING_URI", tracking_uri) != tracking_uri:
        return {}
    found = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_RUN_ID": run_id,
        "MLFLOW_EXPERIMENT_NAME": experiment_name,
    }
    if token is not None:
        found["MLFLOW_TRACKING_TOKEN"] = token
    return found


def activation(prepared: PreparedEnvironment | None) -> dict[str, str]:
    """A built environment comes first on PATH (a run's own `command` saying `python` gets the environment's
    interpreter, as in v1's activated conda environment) and is named by VIRTUAL_ENV."""
    if prepared is None or prepared.plan.user_managed or not prepared.location:
        return {}
    bin_dir = os.path.dirname(prepared.python)
    return {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "VIRTUAL_ENV": prepared.location}


def failure(exc: Exception, name: str) -> dict[str, Any]:
    """The run's error when its environment could not be prepared: the exception's message, then the last
    lines of the build log (all of it is in azureml-logs/20_image_build_log.txt)."""
    log = getattr(exc, "log", "") or ""
    tail = log.splitlines()[-ERROR_LOG_LINES:]
    message = f"The environment {name!r} could not be prepared, so no process was started: {exc}"
    if tail:
        message += f"\nLast lines of azureml-logs/{BUILD_LOG}:\n" + "\n".join(tail)
    return {"code": ERROR_CODE, "message": message, "exceptionType": type(exc).__name__, "logTail": tail}


def stand_in(python: str = sys.executable) -> PreparedEnvironment | None:
    """The submitting interpreter as a PreparedEnvironment, for diagnosing a job that ran without one."""
    try:
        from runyard.environments.build import PreparedEnvironment

        plan = plan_for(None)
    except (ImportError, EnvironmentDefinitionError):
        return None
    return PreparedEnvironment(
        plan=plan, python=python, built=False, build_log="", location="", seconds=0.0, waited=False
    )


def diagnose(error: dict[str, Any], tail: list[str], prepared: PreparedEnvironment | None) -> None:
    """Add error["diagnosis"] (which package is missing from which environment, and the fix) when the log
    shows an import or version problem, and put its summary first in the message."""
    try:
        from runyard.environments.diagnosis import diagnose_failure
    except ImportError:
        return
    prepared = prepared if prepared is not None else stand_in()
    if prepared is None:
        return
    try:
        found = diagnose_failure(tail, prepared)
    except Exception as exc:  # a diagnosis that fails must not hide the job's own failure
        error["diagnosisProblem"] = f"{type(exc).__name__}: {exc}"
        return
    if found:
        error["diagnosis"] = found
        if found.get("summary"):
            error["message"] = f"{found['summary']}\n{error['message']}"
