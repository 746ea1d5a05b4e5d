"""Everything around one process of a run: its log folder, environment, start and wrap-up.

Shared by the one-run supervisor (`compute/supervisor.py`) and the pipeline scheduler
(`engine/`), so a pipeline step's log folder looks exactly like a script run's. Both therefore drain the
job's metric spool the same way: a thread started with the process moves what the script logs into the
store (core/metric_drain.py), and wrap_up drains it a last time once the process has ended.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard import config, v1_imports
from runyard.compute import job_environment
from runyard.core.metric_background import DrainThread
from runyard.core.processes import identity, stop_run_processes, stop_tree
from runyard.core.run_end import spool_drain, utc_now, write_job_end
from runyard.core.run_files import DRIVER_LOG, LOG_DIR
from runyard.core.workspace import Workspace
from runyard.store.rest_artifacts import MirrorSync, RestArtifactStore

if TYPE_CHECKING:
    from runyard.core.metric_drain import SpoolDrain
    from runyard.environments.build import PreparedEnvironment
    from runyard.environments.plan import BuildPlan

TAIL_LINES = 30
#: Seconds between SIGTERM and SIGKILL for processes a finished script left behind.
LEFTOVER_GRACE_SECONDS = 2.0


def script_argv(script: str, arguments: list[str], python: str | None = None) -> list[str]:
    """How a job runs a user's script: `python -u script args`, through the launcher in
    `runyard/v1_imports.py`, so its `azureml.*` imports resolve to runyard.v1 (see docs/azureml-differences.md,
    "Porting"). Run by path with -P, the launcher imports nothing of runyard before the script does; the
    script runs as __main__, with its own sys.argv, sys.path[0], exit code, signals and traceback.
    `python`: the job's environment's interpreter (runyard is importable in every built environment)."""
    return [python or sys.executable, "-u", "-P", os.path.abspath(v1_imports.__file__), script, *arguments]


def with_v1_imports(argv: list[str], python: str | None = None) -> list[str]:
    """`[python, -u, script, args...]` as `script_argv` runs it, with the environment's `python`; anything
    else (a run's own `command`, an argv already in launcher form) is left as it is."""
    if len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-u" and not argv[2].startswith("-"):
        return script_argv(argv[2], argv[3:], python)
    return argv


def tail_lines(path: Path, lines: int = TAIL_LINES, max_bytes: int = 16384) -> list[str]:
    if not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - max_bytes))
        data = fh.read()
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def describe_exit(code: int | None, ended: str, max_seconds: Any = None) -> str:
    if ended == "timeout":
        return f"The run exceeded max_run_duration_seconds={max_seconds} and was stopped."
    if ended == "interrupted":
        return "The scheduler stopped while this step was running, so its result is unknown."
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        return f"The script was killed by signal {name} (exit code {code})."
    return f"The script exited with code {code}."


class ProcessJob:
    def __init__(self, workspace: Workspace, run_id: str, experiment_name: str, work: Path) -> None:
        self.ws = workspace
        self.run_id = run_id
        self.experiment_name = experiment_name
        self.work = work
        self.cwd = work / "snapshot"
        #: pid, host and start time of the spawned process: what a run record keeps as data["process"].
        self.process: dict[str, Any] = {}
        #: What went wrong around the process while wrapping up (a full disk): the run's warnings.
        self.problems: list[str] = []
        self.spool = work / "spool"
        #: the job's run token against a server (environment()): the drain writes metrics with it
        self.run_token: str | None = None
        self._run_type: str | None = None
        self._drain_thread: DrainThread | None = None
        self.run_dir = workspace.artifacts.local_path(f"runs/{run_id}")
        self.log_dir = self.run_dir / LOG_DIR
        self.log_dir.mkdir(parents=True, exist_ok=True)
        #: The environment the process runs in (prepare_environment); None: the submitting interpreter.
        self.prepared: PreparedEnvironment | None = None
        #: The environment's own variables (v1's Environment.environment_variables).
        self.env_variables: dict[str, str] = {}
        # A server workspace: files are written to a local mirror and sent to the server while the job runs.
        self._sync = (
            MirrorSync(workspace.artifacts, f"runs/{run_id}")
            if isinstance(workspace.artifacts, RestArtifactStore)
            else None
        )

    def prep(self, message: str) -> None:
        """Append a line to 65_job_prep.txt (opened per line: it stays readable while the job runs)."""
        with (self.log_dir / "65_job_prep.txt").open("a", encoding="utf-8") as fh:
            fh.write(f"{utc_now()} {message}\n")

    def write_json(self, name: str, data: Any) -> None:
        self.ws.artifacts.put_bytes(
            f"runs/{self.run_id}/{LOG_DIR}/{name}", json.dumps(data, indent=2).encode()
        )

    def link_run_folders(self) -> None:
        """Point ./outputs and ./logs of the working copy at the run's folder, so files are kept live."""
        for folder in ("outputs", "logs"):
            stored = self.run_dir / folder
            stored.mkdir(parents=True, exist_ok=True)
            local = self.cwd / folder
            if local.is_dir() and not local.is_symlink():
                shutil.copytree(local, stored, dirs_exist_ok=True)
                shutil.rmtree(local)
            elif local.exists() or local.is_symlink():
                local.unlink()
            local.symlink_to(stored, target_is_directory=True)
        self.prep(f"./outputs and ./logs are linked to the run's folder {self.run_dir}")

    def prepare_environment(
        self, definition: Mapping[str, Any] | None, plan: BuildPlan | None = None
    ) -> PreparedEnvironment:
        """Build the job's environment, or reuse the build of the same hash (docs/environments.md); say so in
        65_job_prep.txt, and keep the build's log in 20_image_build_log.txt when this job built it.

        `plan`: the definition's plan when the caller already has it (the scheduler plans each step once).
        Raises what job_environment.ENVIRONMENT_PROBLEMS lists; `environment_failure` turns it into the
        run's error. The spawned process then runs with the environment's interpreter and variables."""
        self.env_variables = job_environment.variables(definition)
        plan = plan if plan is not None else job_environment.plan_for(definition)
        prepared = job_environment.prepare(plan, self.prep)
        if prepared.built:
            self.ws.artifacts.put_bytes(
                f"runs/{self.run_id}/{LOG_DIR}/{job_environment.BUILD_LOG}", prepared.build_log.encode()
            )
        for line in job_environment.prep_lines(prepared):
            self.prep(line)
        self.prepared = prepared
        # what the run record shows (studio, `runyard runs show`): which build ran the job, and how it came
        self.ws.store.update_run_data(
            self.run_id,
            {
                "environmentUsed": {
                    **plan.summary(),
                    "interpreter": prepared.python,
                    "location": prepared.location,
                    "built": prepared.built,
                    "waited": prepared.waited,
                    "seconds": round(prepared.seconds, 4),
                }
            },
        )
        return prepared

    def environment_failure(self, exc: Exception, name: str) -> dict[str, Any]:
        """The run's error for an environment that could not be prepared; the whole build log goes to
        20_image_build_log.txt and the reason to 65_job_prep.txt."""
        log = getattr(exc, "log", "") or ""
        if log:
            self.ws.artifacts.put_bytes(
                f"runs/{self.run_id}/{LOG_DIR}/{job_environment.BUILD_LOG}", log.encode()
            )
        error = job_environment.failure(exc, name)
        self.prep(f"The environment {name!r} could not be prepared: {exc}")
        self.prep("No process was started")
        return error

    @property
    def python(self) -> str:
        """The interpreter the job's script runs with."""
        return self.prepared.python if self.prepared is not None else sys.executable

    def environment(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        create_run_token = getattr(self.ws.store, "create_run_token", None)
        # against a server: the job gets a token for its own run only (runyard's and MLflow's client)
        token = create_run_token(self.run_id) if create_run_token is not None else None
        self.run_token = token
        # MLflow's stale settings from the submitting shell (another run's id, an experiment id) and what a
        # notebook kernel set there (its inline plot backend, its front end's ids) go; the job's own come
        # next, then the environment's and the run's variables, which may override them
        env = job_environment.inherited(os.environ)
        given = {**self.env_variables, **(extra or {})}
        env.update(
            job_environment.mlflow_variables(
                self.ws.get_mlflow_tracking_uri(), self.run_id, self.experiment_name, token, given
            )
        )
        env.update(self.env_variables)  # the environment's variables; the run's win over them
        env.update(job_environment.activation(self.prepared))
        # the run's own variables (RunConfiguration.environment_variables, data references, parameters),
        # then runyard's: a job must not be told it is another run, nor get another tracking URI or token
        env.update(extra or {})
        env.update(
            {
                config.ENV_RUN_ID: self.run_id,
                config.ENV_WORKSPACE: str(self.ws.path),
                config.ENV_TRACKING_URI: self.ws.tracking_uri,
                config.ENV_EXPERIMENT: self.experiment_name,
                config.ENV_SPOOL_DIR: str(self.spool),
                config.ENV_RUN_TYPE: self.run_type,
                "AZUREML_RUN_ID": self.run_id,
                "AZUREML_ARM_PROJECT_NAME": self.experiment_name,
                "AZUREML_ARM_WORKSPACE_NAME": self.ws.name,
                "PYTHONUNBUFFERED": "1",
            }
        )
        if token is not None:
            env[config.ENV_TOKEN] = token
            env[config.ENV_TRACKING_URI] = self.ws.tracking_uri
        return env

    @property
    def run_type(self) -> str:
        """The run's type (azureml.scriptrun, azureml.StepRun, ...), read once, for the job's environment."""
        if self._run_type is None:
            self._run_type = self.ws.store.get_run(self.run_id).run_type
        return self._run_type

    def spawn(self, argv: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start the process in its own process group; stdout and stderr go straight to the driver log.

        A user's script (`[python, -u, script, args...]`) starts through the azureml -> runyard.v1 launcher."""
        argv = with_v1_imports(argv, self.python)
        if self.prepared is None:
            self.prep(f"Interpreter: {sys.executable} (Python {sys.version.split()[0]})")
        else:
            self.prep(f"Interpreter: {self.python} (Python {self.prepared.plan.python})")
        self.prep(f"Command: {' '.join(argv)}")
        with (self.run_dir / DRIVER_LOG).open("ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                env=self.environment(extra_env),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.process = identity(proc.pid)
        self.start_drain()
        self.write_json(
            "process_info.json",
            {
                "processes": [
                    {
                        "rank": 0,
                        **self.process,
                        "command": argv,
                        "cwd": str(self.cwd),
                        "startTimeUtc": utc_now(),
                        "logFile": DRIVER_LOG,
                    }
                ]
            },
        )
        self.write_json(
            "process_status.json", {"processes": [{"rank": 0, "pid": proc.pid, "status": "Running"}]}
        )
        self.prep(f"Started process {proc.pid}")
        return proc

    def start_drain(self) -> None:
        """Move what the job logs into the store while it runs (with the job's rights: its run and that
        run's children only; against a server, with its run token)."""
        if self._drain_thread is None:
            self._drain_thread = DrainThread(
                lambda: spool_drain(self.ws, self.run_id, self.spool, self.run_token),
                config.metric_flush_interval(),
            ).start()

    def stop_drain(self) -> SpoolDrain | None:
        """Stop the background drain; returns its drain (for the final pass), if it got going."""
        thread, self._drain_thread = self._drain_thread, None
        if thread is None:
            return None
        thread.stop()
        return thread.drain

    def stop_leftovers(self, grace: float = LEFTOVER_GRACE_SECONDS) -> None:
        """Stop what the process left running when it ended (forked or setsid children): they must not
        outlive the run. Their pid, group or RUNYARD_RUN_ID ties them to it."""
        if stop_run_processes(self.run_id, {"process": self.process}, grace, own_root=True):
            self.prep("Stopped processes the script left running")

    def wrap_up(
        self,
        code: int | None,
        ended: str,
        started: float,
        extra: list[str] | None = None,
        max_seconds: Any = None,
        keep_work: bool = False,
    ) -> dict[str, Any] | None:
        """Recover spooled metrics, write process_status.json and 75_job_post.txt, clean the working copy.

        Returns the error dict for a failed run, or None when the process succeeded. Processes the job
        left behind are stopped first: nothing of the run may log or write after its post file exists."""
        self.stop_leftovers()
        drain = self.stop_drain()  # every writer is gone: the final drain below takes the rest, gaps and all
        if self._sync is not None:  # the last bytes of the driver log reach the server before the post file
            self._sync.stop()
            self._sync = None
        end = write_job_end(
            self.ws, self.run_id, self.work, code, ended, started, extra, keep_work, drain=drain
        )
        self.problems = end.problems
        if ended == "canceled" or (ended == "exited" and code == 0):
            return None
        tail = tail_lines(self.run_dir / DRIVER_LOG)
        what = " ".join(
            [*(p.rstrip(".") + "." for p in end.problems), describe_exit(code, ended, max_seconds)]
        )
        error = {
            "code": "UserError"
            if ended == "exited"
            else "SystemError"
            if ended == "interrupted"
            else "Timeout",
            "message": what + (f"\nLast lines of {DRIVER_LOG}:\n" + "\n".join(tail) if tail else ""),
            "exitCode": code,
            "logTail": tail,
        }
        if ended == "exited":  # an import that failed: which package, which environment, the fix
            job_environment.diagnose(error, tail, self.prepared)
        return error

    def close(self) -> None:
        """Stop the spool's drain (wrap_up has drained it) and send the last changes of a mirrored run
        folder to the server."""
        self.stop_drain()
        if self._sync is not None:
            self._sync.stop()
            self._sync = None


def stop_process_group(proc: subprocess.Popen[bytes] | int, grace: float | None = None) -> None:
    """Stop a run's process: its group, every descendant (also those that left the group) and every
    process that carries its run id; SIGKILL after `grace` seconds; returns when all of them are gone.

    Kept for callers holding a Popen or a bare pid; `runyard.core.processes.stop_run_processes` is the
    same for a run record (and checks the recorded start time, so a reused pid is never signalled)."""
    stop_tree(proc, grace)
