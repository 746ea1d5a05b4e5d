"""The local compute target: each run gets a supervisor process on this machine."""

from __future__ import annotations

import os
import subprocess
import sys

from runyard import config
from runyard.core.run_files import LOG_DIR
from runyard.core.workspace import Workspace


class LocalLauncher:
    def start(self, workspace: Workspace, run_id: str) -> None:
        """Spawn `python -m runyard.compute.supervisor` in its own session, so closing the notebook or
        pressing Ctrl-C in the submitting terminal does not stop the run."""
        log_dir = workspace.artifacts.local_path(f"runs/{run_id}/{LOG_DIR}")
        log_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        if workspace.token:  # a server workspace opened with token=...: the supervisor needs it too
            env[config.ENV_TOKEN] = workspace.token
        with open(log_dir / "60_control_log.txt", "ab") as control_log:
            subprocess.Popen(
                [sys.executable, "-m", "runyard.compute.supervisor", str(workspace.path), run_id],
                stdin=subprocess.DEVNULL,
                stdout=control_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
                env=env,
            )
