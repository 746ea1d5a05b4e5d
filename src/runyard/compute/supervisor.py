"""The job supervisor: prepares, runs, watches and finalises one script run.

It runs in its own process (`python -m runyard.compute.supervisor WORKSPACE RUN_ID`, started by the
local launcher in a new session) so that closing the notebook does not stop the run. The log folder
and the environment come from ProcessJob, the same code that runs pipeline steps. A run on a named
compute target first waits (Queued) for one of that target's slots (compute/slots.py).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import traceback
from typing import Any

from runyard.compute.job_environment import ENVIRONMENT_PROBLEMS
from runyard.compute.process_job import ProcessJob
from runyard.compute.slots import wait_for_slot
from runyard.core.processes import identity, stop_tree
from runyard.core.run_end import disk_full_reason
from runyard.core.run_files import LOG_DIR
from runyard.core.script_outputs import finish_outputs
from runyard.core.workspace import Workspace
from runyard.status import TERMINAL_STATUSES, RunStatus


class JobSupervisor:
    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self.ws = workspace
        self.store = workspace.store
        self.run_id = run_id
        self.record = self.store.get_run(run_id)
        self.definition: dict[str, Any] = self.record.data.get("runDefinition", {})
        self.job = ProcessJob(workspace, run_id, self.record.experiment_name, workspace.work_dir / run_id)

    def _set(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.record = self.store.set_run_status(self.run_id, status, error=error)

    def _cancel_requested(self) -> bool:
        return self.store.get_run(self.run_id).status in (RunStatus.CANCEL_REQUESTED, RunStatus.CANCELED)

    def prepare_environment(self, started: float) -> bool:
        """Build (or reuse) the run's environment while the run is Preparing. False when it could not be
        prepared: the run is then Failed with the reason and the build log's tail, and nothing was started."""
        definition = self.definition.get("environmentDefinition")
        if definition is None:  # no environment: the submitting interpreter, as it is
            return True
        try:
            self.job.prepare_environment(definition)
            return True
        except ENVIRONMENT_PROBLEMS as exc:
            name = str(definition.get("name") or self.definition.get("environment") or "")
            error = self.job.environment_failure(exc, name)
            self.job.wrap_up(None, "not-started", started, ["No process was started: see 65_job_prep.txt"])
            self._set(RunStatus.FAILED, error)
            return False

    def environment_variables(self) -> dict[str, str] | None:
        """RunConfiguration.environment_variables and the output folders' AZUREML_DATAREFERENCE_<name>."""
        given = self.definition.get("environmentVariables") or {}
        return {str(k): str(v) for k, v in given.items()} if isinstance(given, dict) and given else None

    def argv(self) -> list[str]:
        command = self.definition.get("command")
        if command:
            return command.split() if isinstance(command, str) else [str(c) for c in command]
        return [sys.executable, "-u", self.definition["script"], *self.definition.get("arguments", [])]

    def execute(self) -> tuple[int | None, str]:
        """Run the script; returns (exit code, how it ended: 'exited' | 'canceled' | 'timeout')."""
        self._set(RunStatus.STARTING)
        if self._cancel_requested():
            return None, "canceled"
        try:
            proc = self.job.spawn(self.argv(), self.environment_variables())
        except OSError as exc:
            self.job.prep(f"Could not start the process: {exc}")
            return 127, "exited"
        self.record = self.store.set_run_status(
            self.run_id, RunStatus.RUNNING, data={"process": self.job.process}
        )
        limit = float(self.definition.get("maxRunDurationSeconds") or 2592000)
        started = time.time()
        while True:
            try:
                proc.wait(timeout=0.2)
                self.job.stop_leftovers()  # before Finalizing: nothing of the run outlives its script
                return proc.returncode, "exited"
            except subprocess.TimeoutExpired:
                pass
            ended = (
                "canceled" if self._cancel_requested() else "timeout" if time.time() - started > limit else ""
            )
            if ended:
                stop_tree(proc, run_ids=[self.run_id])
                return proc.returncode, ended

    def finish_outputs(self, succeeded: bool) -> tuple[dict[str, Any] | None, list[str]]:
        """Register the outputs asked for (register_on_complete) and record the outputs' lineage, before
        the post file: whoever waits for the run sees its datasets. Returns (error, warnings)."""
        outputs = self.record.data.get("outputDatasets") or []
        if not outputs:
            return None, []
        updated, failure, warnings = finish_outputs(self.ws, self.run_id, outputs, succeeded)
        self.store.update_run_data(self.run_id, {"outputDatasets": updated})
        if failure is not None:
            self.job.prep(failure)
            if self.store.get_run(self.run_id).status in TERMINAL_STATUSES:
                warnings.append(failure)  # the script ended its run itself: the failure can only be noted
        return (None if failure is None else {"code": "UserError", "message": failure}), warnings

    def run(self) -> None:
        started = time.time()
        if self.record.status in (RunStatus.CANCELED, RunStatus.FAILED, RunStatus.COMPLETED):
            # Canceled before this supervisor got going: nothing to run, but the working copy goes away
            # and the log folder says what happened.
            self.job.prep(f"Run {self.run_id} was {self.record.status} before it started; nothing to run")
            self.job.wrap_up(None, "canceled", started)
            return
        try:
            self.store.update_run_data(self.run_id, {"supervisor": identity()})
            target = self.record.target or "local"
            if not wait_for_slot(self.ws, self.run_id, target, self._cancel_requested):
                self.job.prep(f"Run {self.run_id} was canceled while it waited for a slot on {target!r}")
                self.job.wrap_up(None, "canceled", started)
                self._set(RunStatus.CANCELED)
                return
            self.job.prep(f"Preparing run {self.run_id} on target {target!r} (host {socket.gethostname()})")
            self.job.prep(
                f"Snapshot of {self.definition.get('sourceDirectory')}: "
                f"{self.record.data.get('snapshotFileCount', '?')} files in {self.job.cwd}"
            )
            self.job.link_run_folders()
            if not self.prepare_environment(started):
                return
            code, ended = self.execute()
            output_error: dict[str, Any] | None = None
            output_warnings: list[str] = []
            if ended != "canceled":
                self._set(RunStatus.FINALIZING)
                output_error, output_warnings = self.finish_outputs(ended == "exited" and code == 0)
            error = self.job.wrap_up(
                code, ended, started, max_seconds=self.definition.get("maxRunDurationSeconds")
            )
            error = error if error is not None else output_error
            if self.job.problems or output_warnings:
                warnings = [
                    {"source": "runyard", "message": p} for p in [*self.job.problems, *output_warnings]
                ]
                self.store.update_run_data(self.run_id, {"warnings": warnings})
            if ended == "canceled":
                self._set(RunStatus.CANCELED)
            elif error is None:
                self._set(RunStatus.COMPLETED)
            else:
                self.store.update_run_data(self.run_id, {"exitCode": code})
                self._set(RunStatus.FAILED, error)
        except Exception as exc:
            with contextlib.suppress(OSError):  # a full disk may refuse the control log too
                traceback.print_exc()
            full = disk_full_reason(self.job.spool, exc)
            self._set(
                RunStatus.FAILED,
                {
                    "code": "SystemError",
                    "message": (f"{full.rstrip('.')}. " if full else "")
                    + f"runyard could not run this job: {type(exc).__name__}: {exc}. "
                    f"Details in {LOG_DIR}/60_control_log.txt.",
                },
            )
        finally:
            self.job.close()


def main(argv: list[str]) -> None:
    workspace_path, run_id = argv
    JobSupervisor(Workspace.get(workspace_path), run_id).run()


if __name__ == "__main__":
    main(sys.argv[1:])
