"""The build log, the environment and arguments of build commands (plain text, no colour, no credentials),
and the package index they install from.

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
_IRRELEVANT_HINT = re.compile(r"pyproject\.toml|tool\.uv|no-build-isolation")
_FRAME = re.compile(r'^\s*File ".*", line \d+')
_COLOUR_FORCING = ("FORCE_COLOR", "CLICOLOR_FORCE", "PY_COLORS")
DEFAULT_INDEX = "https://pypi.org/simple"


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
    colour codes, without the frames of a build backend's traceback (its last line, the exception, stays)
    and without uv's advice about its own project settings (`[tool.uv.extra-build-dependencies]` in a
    pyproject.toml runyard does not have): of that hint only its first sentence is kept."""
    lines: list[str] = []
    for line in (strip_ansi(line).rstrip() for line in output.splitlines()):
        if line.lstrip().startswith("hint:") and _IRRELEVANT_HINT.search(line):
            lines.append(line.split(". ")[0].rstrip(".") + ".")
            break  # the rest of the output is that advice
        if line.strip() and not _IRRELEVANT.search(line):
            lines.append(line)
    first = next((i for i, line in enumerate(lines) if re.match(r"^\s*(error|ERROR|×)", line)), None)
    picked = _without_frames(lines[first:]) if first is not None else lines[-8:]
    return "\n  ".join(picked[:10])


def _without_frames(lines: list[str]) -> list[str]:
    """`lines` less Python traceback frames: a `File "…", line N` line and the lines indented under it."""
    kept: list[str] = []
    frame_indent: int | None = None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if frame_indent is not None and indent > frame_indent:
            continue
        frame_indent = None
        if _FRAME.match(line):
            frame_indent = indent
        elif not line.strip().startswith("Traceback (most recent call last)"):
            kept.append(line)
    return kept


def default_index(pip_options: tuple[str, ...] = ()) -> str:
    """The index a build installs from: --index-url in the pip options, UV_INDEX_URL, PIP_INDEX_URL, PyPI."""
    for option in pip_options:
        if option.startswith("--index-url "):
            return option.split(" ", 1)[1].strip()
    env = os.environ
    return env.get("UV_INDEX_URL") or env.get("UV_DEFAULT_INDEX") or env.get("PIP_INDEX_URL") or DEFAULT_INDEX


def index_reachable(url: str | None = None, package: str = "pip") -> str | None:
    """None when the package index answers (GET <index>/<package>/ within 3 s), else what went wrong."""
    import httpx

    url = url or default_index()
    if not url.startswith(("http://", "https://")):
        return None  # a local folder or file:// index
    try:  # the status line is enough: the page itself is not read
        with httpx.stream(
            "GET", f"{url.rstrip('/')}/{package}/", timeout=3.0, follow_redirects=True
        ) as answer:
            status = answer.status_code
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return f"HTTP {status}" if status >= 500 else None


def option_args(pip_options: tuple[str, ...]) -> list[str]:
    """The pip options as command-line arguments; PIP_INDEX_URL passed on to uv when uv has no index set."""
    args = [token for option in pip_options for token in shlex.split(option)]
    env = os.environ
    uv_index = env.get("UV_INDEX_URL") or env.get("UV_DEFAULT_INDEX")
    if env.get("PIP_INDEX_URL") and not uv_index and "--index-url" not in args and "--no-index" not in args:
        args += ["--index-url", env["PIP_INDEX_URL"]]
    return args


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
