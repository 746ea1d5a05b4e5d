"""The local compute target: each run gets a supervisor process on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from runyard import config
from runyard.config import LOCAL_TARGET as LOCAL
from runyard.core.processes import DETACHED_ENV, identity
from runyard.core.run_files import LOG_DIR
from runyard.core.workspace import Workspace
from runyard.errors import ComputeTargetException
from runyard.status import RunStatus


def spawn_detached(workspace: Workspace, module_args: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    """Start `python -m …` in its own session (closing the notebook or Ctrl-C in the submitting terminal
    does not stop it), with output appended to `log_file` and the workspace's token in its environment."""
    env = dict(os.environ)
    # The child serves the workspace, not the run whose code may have started it: it must not be taken
    # for one of that run's processes (and stopped with it) nor spool into that run's metrics.
    for name in (config.ENV_RUN_ID, config.ENV_SPOOL_DIR, "AZUREML_RUN_ID"):
        env.pop(name, None)
    env[DETACHED_ENV] = "1"
    if workspace.token:  # a server workspace opened with token=...: the child needs it too
        env[config.ENV_TOKEN] = workspace.token
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *module_args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env=env,
        )


class LocalLauncher:
    """Starts a run's supervisor on this machine: for 'local' and for every named compute target (their
    slot limits are applied by the supervisor, compute/slots.py)."""

    def start(self, workspace: Workspace, run_id: str) -> None:
        target = workspace.store.get_run(run_id).target
        if target != LOCAL:
            try:
                workspace.store.get_compute_target(target)
            except ComputeTargetException as exc:  # refuse before a process exists: the run ends here
                workspace.store.set_run_status(
                    run_id, RunStatus.FAILED, error={"code": "ComputeTargetNotFound", "message": str(exc)}
                )
                raise
        log = workspace.artifacts.local_path(f"runs/{run_id}/{LOG_DIR}/60_control_log.txt")
        proc = spawn_detached(workspace, ["runyard.compute.supervisor", str(workspace.path), run_id], log)
        # Recorded here as well as by the supervisor itself: one that dies before it writes anything
        # (a database that refuses it, a broken environment) is still noticed by whoever waits.
        workspace.store.update_run_data(run_id, {"supervisor": identity(proc.pid)})
