"""The build log and the environment of build commands: plain text, no colour, no credentials.

Every build command's output goes into the log (20_image_build_log.txt of the run that built it) and its
key lines into the error a failed build raises. Jupyter's kernel sets FORCE_COLOR=1 and CLICOLOR_FORCE=1,
which make uv write ANSI colour codes even into a pipe; build commands therefore get NO_COLOR=1 without
those two, and whatever escape codes still come through are stripped before a line is kept.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from runyard.environments.redact import redact_urls

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
#: uv's hints that never help a runyard user (they name uv's project settings, which runyard does not use)
_IRRELEVANT = re.compile(r"extra-build-dependencies|tool\.uv\.")
_COLOUR_FORCING = ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS")


def strip_ansi(text: str) -> str:
    """`text` without terminal escape sequences (colours, cursor movement)."""
    return _ANSI.sub("", text) if "\x1b" in text else text


def build_env() -> dict[str, str]:
    """The environment of every build command: this process's, less runyard's run variables and colour
    forcing. Building runs third-party code (setup.py, build backends), which must not get the workspace
    token (RUNYARD_TOKEN) nor pose as a run (RUNYARD_RUN_ID, AZUREML_*): a job only ever gets a token for
    its own run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNYARD_", "AZUREML_"))}
    for name in _COLOUR_FORCING:
        env.pop(name, None)
    env["NO_COLOR"] = "1"
    return env


def uv_env() -> dict[str, str]:
    env = {**build_env(), "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    return env


def key_lines(output: str) -> str:
    """The lines of uv's (or pip's) output that say why: from the first error on, a few lines, without
    colour codes and without uv's hints about its own project settings."""
    lines = [strip_ansi(line).rstrip() for line in output.splitlines()]
    lines = [line for line in lines if line.strip() and not _IRRELEVANT.search(line)]
    first = next((i for i, line in enumerate(lines) if re.match(r"^\s*(error|ERROR|×)", line)), None)
    picked = lines[first : first + 8] if first is not None else lines[-8:]
    return "\n  ".join(picked)


class BuildLog:
    """The build log: every command, its output, exit status and time."""

    def __init__(self, lock_fd: int, cwd: Path) -> None:
        self.lines: list[str] = []
        self.lock_fd = lock_fd
        self.cwd = cwd

    def add(self, text: str) -> None:
        self.lines.append(redact_urls(strip_ansi(text)))  # an index's credentials never reach the log

    def run(
        self, command: list[str], env: dict[str, str] | None = None, cache_miss: bool = False
    ) -> subprocess.CompletedProcess[str]:
        """Run a build command and log it. `cache_miss`: a failure is expected (uv's offline attempt) and is
        logged as one line saying so, not as an error block."""
        self.add("$ " + shlex.join(command))
        started = time.perf_counter()
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
            env=env if env is not None else build_env(), cwd=self.cwd, stdin=subprocess.DEVNULL,
            pass_fds=(self.lock_fd,),
        )  # fmt: skip
        done.stdout = strip_ansi(done.stdout)
        seconds = time.perf_counter() - started
        if cache_miss and done.returncode != 0:
            why = key_lines(done.stdout).split("\n")[0].strip()
            why = re.sub(r"^(error|ERROR|×):?\s*", "", why)
            self.add(f"(cache miss, expected: {why or 'not in the cache'}; {seconds:.2f} s)")
            return done
        if done.stdout.strip():
            self.add(done.stdout.rstrip("\n"))
        self.add(f"(exit {done.returncode}, {seconds:.2f} s)")
        return done

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"
