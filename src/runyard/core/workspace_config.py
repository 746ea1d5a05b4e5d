"""A workspace folder on disk: its config.json, creating one, and finding one from a start folder.

Kept apart from `core/workspace.py` (the public class) so the search rules can be read in one place:

`locate(start)` finds the workspace that `Workspace.from_config()` opens. Two kinds of marker count:
runyard's `.runyard/` (the nearest one walking up) and an Azure ML config file, found with v1's own
search order (`core/azure_identity.py`), whose project folder's `.runyard/` is its local workspace.
When both are found the nearer one to the start folder wins; at the same folder `.runyard/` wins,
which is the same workspace anyway once the Azure config has been used there. So a project that
carries its own `.azureml/config.json` is never captured by a `.runyard/` in a folder above it, and a
`.runyard/` inside the project is never bypassed for an Azure config higher up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard import config
from runyard.core.azure_identity import AzureIdentity, caller_level, find_config, project_folder
from runyard.errors import ConflictError, InvalidInputError, WorkspaceNotFound

CONFIG_FILE = "config.json"
CONFIG_LOCK = ".config.lock"
#: The key an Azure config written by `ws.write_config()` uses to point back at its runyard workspace.
LINK_KEY = "runyard_workspace"
#: The key in a workspace's config.json listing the Azure config files its write_config() wrote (see _linked).
WRITTEN_KEY = "azure_configs"
REQUIRED = ("tracking_uri", "artifact_root")
#: The type each known entry must have (None is allowed for all but REQUIRED).
TYPES: dict[str, type] = {
    **dict.fromkeys(("tracking_uri", "artifact_root", "name", "token", "studio_url", "id"), str),
    **dict.fromkeys(("sku", "location"), str),
    **dict.fromkeys(("tags", "azure", "default_compute_targets"), dict),
}


@dataclass(frozen=True)
class Located:
    folder: Path  # the workspace folder (holds config.json)
    azure: AzureIdentity | None = None  # the identity of the Azure config that led here, if any
    config_file: Path | None = None


def read_config(path: Path) -> dict[str, Any]:
    """The workspace's config.json, checked: a file that is not a JSON object of strings where strings
    belong is an InvalidInputError naming it, never a raw TypeError deep in Workspace."""
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise WorkspaceNotFound(path, [cfg_file])
    cfg = _load_object(cfg_file)
    for key in REQUIRED:
        if key not in cfg:
            raise InvalidInputError(f"{cfg_file} lacks {key!r}; recreate it with `runyard init`.")
    for key, kind in TYPES.items():
        if key in cfg and not isinstance(cfg[key], kind) and (key in REQUIRED or cfg[key] is not None):
            what = "a string" if kind is str else "an object"
            raise InvalidInputError(
                f"{cfg_file}: {key!r} must be {what}, not {type(cfg[key]).__name__} ({cfg[key]!r}). "
                "Fix that entry, or recreate the file with `runyard init`."
            )
    # Relative entries are relative to the workspace folder, so a workspace can be moved or copied.
    root = cfg["artifact_root"]
    if "://" not in root and not os.path.isabs(root):
        cfg["artifact_root"] = str((path / root).resolve())
    uri = cfg["tracking_uri"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        cfg["tracking_uri"] = "sqlite:///" + str((path / uri[len("sqlite:///") :]).resolve())
    return cfg


def _load_object(cfg_file: Path) -> dict[str, Any]:
    """A workspace config.json's JSON object, or InvalidInputError saying what is wrong and how to fix it."""
    try:
        value = json.loads(cfg_file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"{cfg_file} is not UTF-8 text ({exc}); save it as UTF-8 JSON, or recreate it with `runyard init`."
        ) from exc
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{cfg_file} is not valid JSON ({exc}); fix or delete it.") from exc
    if not isinstance(value, dict):
        raise InvalidInputError(
            f"{cfg_file} holds a JSON {type(value).__name__}, not an object such as "
            '{"tracking_uri": "sqlite:///runyard.db", "artifact_root": "artifacts"}; fix it, or recreate it '
            "with `runyard init`."
        )
    return value


def create_folder(folder: Path, settings: dict[str, Any], exist_ok: bool) -> bool:
    """Write a new workspace's config.json into `folder`; False when one exists (and exist_ok)."""
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(
            f"Cannot create a workspace at {folder}: it is a file, not a folder. "
            "Choose another path, or move the file away."
        )
    if (folder / CONFIG_FILE).exists():
        if not exist_ok:
            raise ConflictError(
                f"A workspace already exists at {folder}. Open it with Workspace.get({str(folder)!r}) "
                "or pass exist_ok=True."
            )
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise InvalidInputError(
            f"Cannot create a workspace at {folder}: {exc.filename or 'a folder above it'} is a file, not a "
            "folder. Choose another path, or move the file away."
        ) from exc
    cfg = {
        "name": folder.parent.name if folder.name == config.DEFAULT_WORKSPACE_DIRNAME else folder.name,
        "tracking_uri": "sqlite:///runyard.db",
        "artifact_root": "artifacts",
        **{k: v for k, v in settings.items() if v is not None},
        "id": uuid.uuid4().hex,
    }
    with config_lock(folder):
        if (folder / CONFIG_FILE).exists():  # another process won the race: theirs stands
            return False
        write_config(folder, cfg)
    return True


def is_path(name: str | os.PathLike[str]) -> bool:
    """Whether `Workspace.create`/`get` were given a folder rather than a v1 workspace name."""
    if not isinstance(name, str):
        return True
    return (
        "/" in name
        or os.sep in name
        or name.startswith((".", "~"))
        or name.endswith(config.DEFAULT_WORKSPACE_DIRNAME)
    )


def _nearest_runyard(start: Path) -> tuple[int, Path] | None:
    for depth, folder in enumerate([start, *start.parents]):
        for candidate in (folder, folder / config.DEFAULT_WORKSPACE_DIRNAME):
            if candidate.name == config.DEFAULT_WORKSPACE_DIRNAME and (candidate / CONFIG_FILE).is_file():
                return depth, candidate
    return None


class WorkspaceLinkIgnored(UserWarning):
    """An Azure config's runyard_workspace link led outside its project to a workspace that never wrote it."""


def _linked(config_file: Path) -> Path | None:
    """The runyard workspace a config written by ws.write_config() names, when it may be opened.

    A config file travels with its project (a cloned sample, a colleague's repository), so its link is
    only a claim: it is followed to a workspace inside the config's project folder, or to one whose own
    config.json lists this very file as written by its write_config() (`write_config(path=elsewhere)`),
    which a project cannot forge. Any other link is ignored with a warning, and the project's own
    `.runyard/` is used: a project never opens, and never writes runs into, someone else's workspace."""
    try:
        raw = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    link = raw.get(LINK_KEY) if isinstance(raw, dict) else None
    if not isinstance(link, str) or not link or "\x00" in link:
        return None
    project = project_folder(config_file).resolve()
    folder = (project / link).expanduser().resolve()
    if not (folder / CONFIG_FILE).is_file():
        return None
    if folder.is_relative_to(project) or str(config_file.resolve()) in _written_by(folder):
        return folder
    warnings.warn(
        f"{config_file} links to the runyard workspace {folder} ({LINK_KEY!r}), which lies outside its project "
        f"{project} and did not write this file; the link is ignored and {project / config.DEFAULT_WORKSPACE_DIRNAME} "
        "is used. If that workspace is yours, open it with Workspace.get(path), set RUNYARD_WORKSPACE to it, or "
        "run its ws.write_config(path) again to write a config file it trusts.",
        WorkspaceLinkIgnored,
        stacklevel=caller_level(),
    )
    return None


def _written_by(folder: Path) -> list[str]:
    """The Azure config files the workspace at `folder` wrote with write_config() (see _linked)."""
    try:
        recorded = json.loads((folder / CONFIG_FILE).read_text()).get(WRITTEN_KEY)
    except (OSError, ValueError, AttributeError):
        return []
    return [str(p) for p in recorded] if isinstance(recorded, list) else []


def locate(start: Path, file_name: str | None = None) -> Located:
    """The workspace `from_config(start)` opens (see the module docstring); WorkspaceNotFound if none.

    An Azure config whose project has no workspace yet gets `<project>/.runyard/`, created here with
    that config's names recorded."""
    if start.is_file() and start.parent.name == config.DEFAULT_WORKSPACE_DIRNAME:
        return Located(start.parent)  # runyard's own config.json, named directly
    ours = None if start.is_file() else _nearest_runyard(start)
    azure = find_config(start, file_name)
    if azure is not None:
        config_file, identity, _ = azure
        project = project_folder(config_file)
        depth = [start, *start.parents].index(project) if project in [start, *start.parents] else -1
        if ours is None or depth < ours[0]:
            folder = _linked(config_file) or project / config.DEFAULT_WORKSPACE_DIRNAME
            create_folder(
                folder,
                {"name": identity.workspace_name, "azure": identity.as_config()},
                exist_ok=True,
            )
            return Located(folder, identity, config_file)
    if ours is not None:
        return Located(ours[1])
    checked = [f / config.DEFAULT_WORKSPACE_DIRNAME for f in [start, *start.parents]]
    if azure is None and not start.is_file():
        checked.append(start / ".azureml" / CONFIG_FILE)
    raise WorkspaceNotFound(start, checked)


@contextlib.contextmanager
def config_lock(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write of config.json between processes (flock on a side file)."""
    with (folder / CONFIG_LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def read_json(path: Path) -> dict[str, Any]:
    """A config.json to read-modify-write: {} when missing; malformed is an error (never overwritten)."""
    if not path.exists():
        return {}
    return _load_object(path)


def write_config(folder: Path, cfg: dict[str, Any]) -> None:
    tmp = folder / f".{CONFIG_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, folder / CONFIG_FILE)
