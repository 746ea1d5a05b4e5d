"""Settings read from RUNYARD_* environment variables, in one place."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_WORKSPACE_DIRNAME = ".runyard"
#: The compute target every workspace has: this machine's processes. It is not a record and cannot be
#: replaced (store/sql_compute.py).
LOCAL_TARGET = "local"

#: Environment variables a submitted run's process receives. The AZUREML_* twins let v1 code that reads
#: them directly keep working.
ENV_RUN_ID = "RUNYARD_RUN_ID"
ENV_WORKSPACE = "RUNYARD_WORKSPACE"
ENV_TRACKING_URI = "RUNYARD_TRACKING_URI"
ENV_EXPERIMENT = "RUNYARD_EXPERIMENT_NAME"
ENV_SPOOL_DIR = "RUNYARD_SPOOL_DIR"
#: The job's run type, beside RUNYARD_RUN_ID, so that Run.get_context() in a job needs no store read.
ENV_RUN_TYPE = "RUNYARD_RUN_TYPE"
ENV_TOKEN = "RUNYARD_TOKEN"
ENV_ENV_CACHE = "RUNYARD_ENV_CACHE"


def cache_dir() -> Path:
    """Local folder for server workspaces' working copies (RUNYARD_CACHE_DIR, default ~/.cache/runyard)."""
    return Path(os.environ.get("RUNYARD_CACHE_DIR") or Path.home() / ".cache" / "runyard").expanduser()


def env_cache_dir() -> Path:
    """Where built environments live, shared by every workspace on this machine (RUNYARD_ENV_CACHE, else
    $XDG_CACHE_HOME/runyard/envs, else ~/.cache/runyard/envs).

    Always absolute: builds run uv in other folders and jobs start from their snapshot, so a relative
    RUNYARD_ENV_CACHE is taken from the current folder now, and a relative XDG_CACHE_HOME is ignored (as the
    XDG spec says)."""
    value = os.environ.get(ENV_ENV_CACHE)
    if value:
        return Path(value).expanduser().absolute()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base.absolute() / "runyard" / "envs"


def env_workspace() -> Path | None:
    value = os.environ.get(ENV_WORKSPACE)
    return Path(value).expanduser() if value else None


def metric_flush_interval() -> float:
    """Seconds between background metric flushes (RUNYARD_METRIC_FLUSH_SECONDS, default 0.5): how often a
    job's supervisor (or an interactive run's flusher) moves the metric spool into the store when nobody
    asks sooner (a flush, get_metrics, a spool half full)."""
    return float(os.environ.get("RUNYARD_METRIC_FLUSH_SECONDS", "0.5"))


#: Records in one process's metric spool ring (RUNYARD_METRIC_SPOOL_RECORDS): 40 bytes each, so the
#: default takes 10 MiB of disk and page cache per logging process, whatever the number of values logged.
DEFAULT_METRIC_SPOOL_RECORDS = 256 * 1024
MIN_METRIC_SPOOL_RECORDS = 16


def metric_spool_records() -> int:
    """How many values a process's metric spool holds before run.log() waits for the supervisor to store
    some (RUNYARD_METRIC_SPOOL_RECORDS, default 262,144, at least 16)."""
    value = os.environ.get("RUNYARD_METRIC_SPOOL_RECORDS")
    if not value:
        return DEFAULT_METRIC_SPOOL_RECORDS
    try:
        return max(MIN_METRIC_SPOOL_RECORDS, int(value))
    except ValueError:
        from runyard.errors import InvalidInputError

        raise InvalidInputError(
            f"RUNYARD_METRIC_SPOOL_RECORDS={value!r} is not a whole number. Set it to how many metric values "
            f"one process may hold before they are stored (default {DEFAULT_METRIC_SPOOL_RECORDS}), or unset it."
        ) from None


def cancel_grace_seconds() -> float:
    """Seconds between SIGTERM and SIGKILL when a run is canceled (RUNYARD_CANCEL_GRACE_SECONDS, default 10)."""
    return float(os.environ.get("RUNYARD_CANCEL_GRACE_SECONDS", "10"))


def studio_url(default: str = "http://127.0.0.1:8765") -> str:
    """Base address of the studio used in portal URLs (RUNYARD_STUDIO_URL; default http://127.0.0.1:8765,
    or the server's own address for a workspace opened by URL)."""
    return (os.environ.get("RUNYARD_STUDIO_URL") or default).rstrip("/")


def scheduler_idle_seconds() -> float:
    """Seconds a background scheduler waits without work before exiting (RUNYARD_SCHEDULER_IDLE_SECONDS, default 60)."""
    return float(os.environ.get("RUNYARD_SCHEDULER_IDLE_SECONDS", "60"))


def local_slots() -> int:
    """How many steps run at once on the local target (RUNYARD_LOCAL_SLOTS, default: the number of CPU cores)."""
    return int(os.environ.get("RUNYARD_LOCAL_SLOTS") or os.cpu_count() or 1)


def server_retry_seconds() -> float:
    """How long a client keeps retrying a runyard server that is unreachable or answers 502/503/504 before it
    fails (RUNYARD_SERVER_RETRY_SECONDS, default 60; 0 tries once). Covers a server restart."""
    return max(0.0, float(os.environ.get("RUNYARD_SERVER_RETRY_SECONDS", "60")))


def max_upload_bytes() -> int:
    """The largest file a runyard server accepts (RUNYARD_MAX_UPLOAD_BYTES on the server, default 1 TiB).
    Large files arrive in parts (upload sessions), so this bounds disk use, not memory."""
    return int(os.environ.get("RUNYARD_MAX_UPLOAD_BYTES") or 1024**4)


def upload_part_bytes() -> int:
    """How much one request of a client upload carries (RUNYARD_UPLOAD_PART_BYTES, default 64 MiB): larger
    files go in parts, each streamed from disk and resent on its own after a broken connection."""
    return max(1, int(os.environ.get("RUNYARD_UPLOAD_PART_BYTES") or 64 * 1024 * 1024))


def max_request_bytes() -> int:
    """The largest body one artifact request may carry on a runyard server (RUNYARD_MAX_REQUEST_BYTES on the
    server, default 1 GiB); larger files go in parts through upload sessions (server/uploads.py)."""
    return int(os.environ.get("RUNYARD_MAX_REQUEST_BYTES") or 1024**3)


def server_write_wait_seconds() -> float:
    """How long a server on a SQLite workspace lets a write wait, first for its turn and then for the
    database's write lock, before answering 503 with Retry-After (RUNYARD_SERVER_WRITE_WAIT_SECONDS,
    default 5). Short, so that a lock held by another process never ties up the server's threads."""
    return max(0.1, float(os.environ.get("RUNYARD_SERVER_WRITE_WAIT_SECONDS", "5")))
