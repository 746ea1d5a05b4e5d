"""The values a Run is made of, checked before they reach the store: run ids (each names a folder),
display names, tag and property names; and how a run's submitter and times are shown (v1's forms)."""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Any

from runyard.errors import InvalidInputError

SCRIPT_RUN_TYPE = "azureml.scriptrun"
INTERACTIVE_RUN_TYPE = "runyard.interactive"
#: A pipeline run and its steps' runs (their classes: pipeline/runs.py; the scheduler: engine/).
PIPELINE_RUN_TYPE = "azureml.PipelineRun"
STEP_RUN_TYPE = "azureml.StepRun"
#: The run property naming the published pipeline a pipeline run came from (v1's name).
PIPELINE_ID_PROPERTY = "azureml.pipelineid"
MAX_ID_LENGTH = 256  # display names (Azure ML's limit, and the database column's)
MAX_ID_BYTES = 255  # run ids: each names a folder (runs/<run_id>/), and file names stop at 255 bytes
MAX_KEY_LENGTH = 255  # tag and property names (the database column)


def check_text(what: str, value: Any, limit: int | None = None, *, empty_ok: bool = False) -> str:
    """Refuse what one database would store and the other would not: over-long ids and keys, NUL characters."""
    text = str(value)
    if limit is not None and (len(text) > limit or not (text or empty_ok)):
        raise InvalidInputError(f"{what} {text[:40]!r} must be 1-{limit} characters long, not {len(text)}.")
    if "\x00" in text:
        raise InvalidInputError(f"{what} {text[:40]!r} contains a NUL character (\\x00); remove it.")
    return text


def check_key(what: str, key: Any) -> None:
    """Tag and property names are strings: str(None) would quietly store a tag named "None"."""
    if not isinstance(key, str) or not key.strip():
        raise InvalidInputError(
            f"{what} names must be non-empty strings, got {key!r}. Pass the name first: run.tag('name', value)."
            if what == "Tag"
            else f"{what} names must be non-empty strings, got {key!r}."
        )


def check_run_id(run_id: Any) -> str:
    """A run id names the run's folder in the artifact store, so it must be one safe path component."""
    text = check_text("Run id", run_id)
    if not text or len(text.encode()) > MAX_ID_BYTES or text in (".", "..") or any(c in text for c in "/\\"):
        raise InvalidInputError(
            f"Run id {text[:40]!r} is not allowed: use 1-{MAX_ID_BYTES} bytes without '/' or '\\', "
            "not '.' or '..'. Leave run_id out to get a generated one."
        )
    return text


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def describe_submitter(value: Any) -> str | None:
    """v1's submittedBy is a name. A server replaces what a client sends with a stamp of the token that
    created the run (docs/security.md); show that stamp as a name too."""
    if not isinstance(value, dict):
        return None if value is None else str(value)
    if value.get("auth") == "off":
        return "anonymous (server without --auth)"
    return f"token {value.get('token')} ({value.get('scope')})"


def submitted_by() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in containers without /etc/passwd entries
        return "unknown"
