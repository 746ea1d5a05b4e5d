"""The job supervisor: prepares, runs, watches and finalises one script run.

It runs in its own process (`python -m runyard.compute.supervisor WORKSPACE RUN_ID`) and writes the
documented log folder: 65_job_prep.txt (what was prepared), 70_driver_log.txt (the script's stdout and
stderr, written by the script's process directly, so nothing is lost if the supervisor dies),
process_info.json, process_status.json and 75_job_post.txt (exit code, timings, what was collected).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from runyard import config
from runyard.core.metrics import replay_spool
from runyard.core.run_files import DRIVER_LOG, LOG_DIR
from runyard.core.workspace import Workspace
from runyard.status import RunStatus

TAIL_LINES = 30


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def tail_lines(path: Path, lines: int = TAIL_LINES, max_bytes: int = 16384) -> list[str]:
    if not path.exists():
        return []
    with path.open("rb") as fh:
        fh.seek(max(0, path.stat().st_size - max_bytes))
        data = fh.read()
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


class JobSupervisor:
    def __init__(self, workspace: Workspace, run_id: str) -> None:
        self.ws = workspace
        self.store = workspace.store
        self.run_id = run_id
        self.record = self.store.get_run(run_id)
        self.definition: dict[str, Any] = self.record.data.get("runDefinition", {})
        self.run_dir = workspace.artifacts.local_path(f"runs/{run_id}")
        self.log_dir = self.run_dir / LOG_DIR
        self.work = workspace.work_dir / run_id
        self.cwd = self.work / "snapshot"
        self.spool = self.work / "spool"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._prep_log = (self.log_dir / "65_job_prep.txt").open("a", encoding="utf-8")

    def _prep(self, message: str) -> None:
        self._prep_log.write(f"{_now()} {message}\n")
        self._prep_log.flush()

    def _write_json(self, name: str, data: Any) -> None:
        self.ws.artifacts.put_bytes(
            f"runs/{self.run_id}/{LOG_DIR}/{name}", json.dumps(data, indent=2).encode()
        )

    def _cancel_requested(self) -> bool:
        return self.store.get_run(self.run_id).status in (RunStatus.CANCEL_REQUESTED, RunStatus.CANCELED)

    def _set(self, status: str, error: dict[str, Any] | None = None) -> None:
        self.record = self.store.set_run_status(self.run_id, status, error=error)

    # -- stages ---------------------------------------------------------------------------------
    def prepare(self) -> list[str]:
        self.store.update_run_data(
            self.run_id, {"supervisor": {"pid": os.getpid(), "host": socket.gethostname()}}
        )
        self._set(RunStatus.PREPARING)
        self._prep(f"Preparing run {self.run_id} on target 'local' (host {socket.gethostname()})")
        self._prep(
            f"Snapshot of {self.definition.get('sourceDirectory')}: "
            f"{self.record.data.get('snapshotFileCount', '?')} files in {self.cwd}"
        )
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
            self._prep(
                f"./{folder} is linked to the run's folder {stored}: files written there are kept live"
            )
        if self.definition.get("command"):
            command = self.definition["command"]
            argv = command.split() if isinstance(command, str) else [str(c) for c in command]
        else:
            argv = [sys.executable, "-u", self.definition["script"], *self.definition.get("arguments", [])]
        self._prep(f"Interpreter: {sys.executable} (Python {sys.version.split()[0]})")
        self._prep(f"Command: {' '.join(argv)}")
        return argv

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                config.ENV_RUN_ID: self.run_id,
                config.ENV_WORKSPACE: str(self.ws.path),
                config.ENV_TRACKING_URI: self.ws.tracking_uri,
                config.ENV_EXPERIMENT: self.record.experiment_name,
                config.ENV_SPOOL_DIR: str(self.spool),
                "AZUREML_RUN_ID": self.run_id,
                "AZUREML_ARM_PROJECT_NAME": self.record.experiment_name,
                "AZUREML_ARM_WORKSPACE_NAME": self.ws.name,
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def execute(self, argv: list[str]) -> tuple[int | None, str]:
        """Run the script; returns (exit code, how it ended: 'exited' | 'canceled' | 'timeout')."""
        self._set(RunStatus.STARTING)
        if self._cancel_requested():
            return None, "canceled"
        driver_log = self.run_dir / DRIVER_LOG
        with driver_log.open("ab") as out:
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=self.cwd,
                    env=self.environment(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                out.write(f"runyard: could not start {argv[0]!r}: {exc}\n".encode())
                return 127, "exited"
        started = time.time()
        self._write_json(
            "process_info.json",
            {
                "processes": [
                    {
                        "rank": 0,
                        "pid": proc.pid,
                        "host": socket.gethostname(),
                        "command": argv,
                        "cwd": str(self.cwd),
                        "startTimeUtc": _now(),
                        "logFile": DRIVER_LOG,
                    }
                ]
            },
        )
        self._write_json(
            "process_status.json", {"processes": [{"rank": 0, "pid": proc.pid, "status": "Running"}]}
        )
        self._set(RunStatus.RUNNING)
        self._prep(f"Started process {proc.pid}")
        limit = float(self.definition.get("maxRunDurationSeconds") or 2592000)
        ended = "exited"
        while True:
            try:
                proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            if self._cancel_requested():
                ended = "canceled"
            elif time.time() - started > limit:
                ended = "timeout"
            else:
                continue
            self._stop(proc)
            break
        return proc.returncode, ended

    def _stop(self, proc: subprocess.Popen[bytes]) -> None:
        grace = config.cancel_grace_seconds()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            proc.wait()

    def finalize(self, code: int | None, ended: str, started: float) -> None:
        if ended != "canceled":
            self._set(RunStatus.FINALIZING)
        post = [f"{_now()} Process ended: {ended}, exit code {code}"]
        replayed = replay_spool(self.store, self.spool) if self.spool.exists() else 0
        post.append(
            f"{_now()} Metrics recovered from the spool (not written before the process ended): {replayed}"
        )
        outputs = [p for p in (self.run_dir / "outputs").rglob("*") if p.is_file()]
        post.append(
            f"{_now()} Kept {len(outputs)} files in outputs/ ({sum(p.stat().st_size for p in outputs)} bytes)"
        )
        state = {
            "exited": "Completed" if code == 0 else "Failed",
            "canceled": "Canceled",
            "timeout": "Failed",
        }[ended]
        self._write_json(
            "process_status.json", {"processes": [{"rank": 0, "status": state, "exitCode": code}]}
        )
        duration = time.time() - started
        post.append(f"{_now()} Run took {duration:.2f}s; cleaning up {self.work}")
        (self.log_dir / "75_job_post.txt").write_text("\n".join(post) + "\n", encoding="utf-8")
        if os.environ.get("RUNYARD_KEEP_WORK") != "1":
            shutil.rmtree(self.work, ignore_errors=True)
        if ended == "canceled":
            self._set(RunStatus.CANCELED)
        elif code == 0:
            self._set(RunStatus.COMPLETED)
        else:
            self.store.update_run_data(self.run_id, {"exitCode": code})
            self._set(RunStatus.FAILED, self._error(code, ended))

    def _error(self, code: int | None, ended: str) -> dict[str, Any]:
        tail = tail_lines(self.run_dir / DRIVER_LOG)
        if ended == "timeout":
            what = f"The run exceeded max_run_duration_seconds={self.definition.get('maxRunDurationSeconds')} and was stopped."
        elif code is not None and code < 0:
            what = f"The script was killed by signal {signal.Signals(-code).name} (exit code {code})."
        else:
            what = f"The script exited with code {code}."
        return {
            "code": "UserError",
            "message": what + (f"\nLast lines of {DRIVER_LOG}:\n" + "\n".join(tail) if tail else ""),
            "exitCode": code,
            "logTail": tail,
        }

    def run(self) -> None:
        started = time.time()
        try:
            argv = self.prepare()
            code, ended = self.execute(argv)
            self.finalize(code, ended, started)
        except Exception as exc:
            traceback.print_exc()
            self._set(
                RunStatus.FAILED,
                {
                    "code": "SystemError",
                    "message": f"runyard could not run this job: {type(exc).__name__}: {exc}. "
                    f"Details in {LOG_DIR}/60_control_log.txt.",
                },
            )
        finally:
            self._prep_log.close()


def main(argv: list[str]) -> None:
    workspace_path, run_id = argv
    JobSupervisor(Workspace.get(workspace_path), run_id).run()


if __name__ == "__main__":
    main(sys.argv[1:])
