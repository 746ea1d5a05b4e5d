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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard import config
from runyard.core.azure_identity import AzureIdentity, find_config, project_folder
from runyard.errors import ConflictError, InvalidInputError, WorkspaceNotFound

CONFIG_FILE = "config.json"
CONFIG_LOCK = ".config.lock"
#: The key an Azure config written by `ws.write_config()` uses to point back at its runyard workspace.
LINK_KEY = "runyard_workspace"


@dataclass(frozen=True)
class Located:
    folder: Path  # the workspace folder (holds config.json)
    azure: AzureIdentity | None = None  # the identity of the Azure config that led here, if any
    config_file: Path | None = None


def read_config(path: Path) -> dict[str, Any]:
    cfg_file = path / CONFIG_FILE
    if not cfg_file.is_file():
        raise WorkspaceNotFound(path, [cfg_file])
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{cfg_file} is not valid JSON ({exc}); fix or delete it.") from exc
    for key in ("tracking_uri", "artifact_root"):
        if key not in cfg:
            raise InvalidInputError(f"{cfg_file} lacks {key!r}; recreate it with `runyard init`.")
    # Relative entries are relative to the workspace folder, so a workspace can be moved or copied.
    root = cfg["artifact_root"]
    if "://" not in root and not os.path.isabs(root):
        cfg["artifact_root"] = str((path / root).resolve())
    uri = cfg["tracking_uri"]
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        cfg["tracking_uri"] = "sqlite:///" + str((path / uri[len("sqlite:///") :]).resolve())
    return dict(cfg)


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


def _linked(config_file: Path) -> Path | None:
    """The runyard workspace a config written by ws.write_config() names, when it still exists."""
    try:
        raw = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return None
    link = raw.get(LINK_KEY) if isinstance(raw, dict) else None
    if not isinstance(link, str):
        return None
    folder = (project_folder(config_file) / link).resolve()
    return folder if (folder / CONFIG_FILE).is_file() else None


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
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid JSON ({exc}); fix or delete it.") from exc
    return dict(value) if isinstance(value, dict) else {}


def write_config(folder: Path, cfg: dict[str, Any]) -> None:
    tmp = folder / f".{CONFIG_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, folder / CONFIG_FILE)
