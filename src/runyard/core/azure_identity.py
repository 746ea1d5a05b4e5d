"""An Azure ML workspace's identity, and finding it in the config files v1 code leaves behind.

v1 code names a cloud workspace: `Workspace(subscription_id, resource_group, workspace_name)`,
`Workspace.get(name)`, or a `config.json` that `Workspace.from_config()` finds. runyard maps each of
these to the local workspace of the project folder (see `Workspace`), and records the Azure triple in
that workspace's config.json under "azure", so properties such as `ws.subscription_id` answer with
the values the code expects.

The search for a config file follows v1 exactly (reference §1.1): for each place, in the order
`.azureml/`, `aml_config/`, the folder itself, and for each name, `config.json` then the legacy
`project.json`, walk up from the start folder; the first hit wins. So `.azureml/config.json` in any
ancestor beats a plain `config.json` in the start folder, as in v1.
"""

from __future__ import annotations

import json
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInputError

PLACES = (".azureml", "aml_config", "")
FILE_NAMES = ("config.json", "project.json")

_said: set[tuple[str, ...]] = set()
_said_lock = threading.Lock()


@dataclass(frozen=True)
class AzureIdentity:
    subscription_id: str | None
    resource_group: str | None
    workspace_name: str
    location: str | None = None

    def as_config(self) -> dict[str, Any]:
        found = {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.workspace_name,
            "location": self.location,
        }
        return {k: v for k, v in found.items() if v is not None}

    def same_workspace(self, other: AzureIdentity) -> bool:
        """Both name one cloud workspace (an unset subscription or group matches any)."""
        pairs = (
            (self.subscription_id, other.subscription_id),
            (self.resource_group, other.resource_group),
        )
        return self.workspace_name == other.workspace_name and all(
            a is None or b is None or a == b for a, b in pairs
        )

    @classmethod
    def from_recorded(cls, value: Any) -> AzureIdentity | None:
        """The identity a runyard config.json recorded under "azure", or None."""
        if not isinstance(value, dict) or not isinstance(value.get("workspace_name"), str):
            return None
        return cls(
            _str_or_none(value.get("subscription_id")),
            _str_or_none(value.get("resource_group")),
            value["workspace_name"],
            _str_or_none(value.get("location")),
        )


def _str_or_none(value: Any) -> str | None:
    return str(value) if value is not None else None


def parse_config(path: Path, strict: bool) -> AzureIdentity | None:
    """The identity in an Azure config file: the flat form or write_config's "Scope" form.

    With `strict` (a file in `.azureml/` or `aml_config/`, or one named explicitly) a file without an
    identity is an error; otherwise it is not an Azure config and the search goes on."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if not strict:
            return None
        raise InvalidInputError(
            f"{path} is not a readable Azure ML config file ({exc}); fix or delete it."
        ) from exc
    if not isinstance(raw, dict):
        raw = {}
    scope = raw.get("Scope")
    if isinstance(scope, str):
        parts = scope.split("/")
        if len(parts) >= 9:
            return AzureIdentity(parts[2], parts[4], parts[8])
    if all(isinstance(raw.get(k), str) for k in ("subscription_id", "resource_group", "workspace_name")):
        return AzureIdentity(raw["subscription_id"], raw["resource_group"], raw["workspace_name"])
    if not strict:
        return None
    raise InvalidInputError(
        f"{path} names no Azure ML workspace: it needs subscription_id, resource_group and workspace_name "
        '(or the "Scope" that ws.write_config() writes). Fix it, or delete it to use a runyard workspace.'
    )


def project_folder(config_file: Path) -> Path:
    """The folder a config file belongs to: the parent of `.azureml/` or `aml_config/`, else its own folder."""
    folder = config_file.parent
    return folder.parent if folder.name in (".azureml", "aml_config") else folder


def find_config(start: Path, file_name: str | None = None) -> tuple[Path, AzureIdentity, list[Path]] | None:
    """(config file, identity, folders checked) of the Azure config v1 would find from `start`, or None.

    `start` may be the config file itself. A plain `config.json` in a folder that is not an Azure
    config (a project's own settings, runyard's `.runyard/config.json`) is skipped, not an error."""
    if start.is_file():
        return start, _strict(start), [start]
    names = (file_name,) if file_name else FILE_NAMES
    checked: list[Path] = []
    for place in PLACES:
        for name in names:
            for folder in [start, *start.parents]:
                candidate = folder / place / name if place else folder / name
                checked.append(candidate)
                if not candidate.is_file():
                    continue
                identity = parse_config(candidate, strict=bool(place) or file_name is not None)
                if identity is not None:
                    return candidate, identity, checked
    return None


def _strict(path: Path) -> AzureIdentity:
    identity = parse_config(path, strict=True)
    assert identity is not None
    return identity


def write_azure_config(identity: AzureIdentity, path: Path | None, file_name: str | None) -> Path:
    """Write v1's config.json form (flat keys, which from_config and v1 both read) to `<path>/.azureml/`."""
    folder = (path or Path(".")).expanduser().resolve()
    if folder.name != ".azureml":
        folder = folder / ".azureml"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (file_name or "config.json")
    target.write_text(json.dumps(identity.as_config(), indent=2) + "\n")
    return target


def say_once(*key: str, message: str) -> None:
    """Print `message` on stderr the first time this key is seen in this process."""
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    print(message, file=sys.stderr)


class AzureIdentityMismatch(UserWarning):
    """A local workspace records one Azure workspace and the code asked for another."""


def warn_mismatch(folder: Path, recorded: AzureIdentity, wanted: AzureIdentity) -> None:
    """Warn once per (folder, wanted) that the project's local workspace belongs to another Azure name."""
    key = ("mismatch", str(folder), repr(wanted))
    with _said_lock:
        if key in _said:
            return
        _said.add(key)
    warnings.warn(
        f"Azure ML workspace {wanted.workspace_name!r} (resource group {wanted.resource_group!r}) was asked for, "
        f"but the local runyard workspace at {folder} records {recorded.workspace_name!r} "
        f"(resource group {recorded.resource_group!r}). runyard keeps one local workspace per project folder "
        "and opened it anyway; its records stay as they are. To keep them apart, run this project from "
        "another folder, or set RUNYARD_WORKSPACE to another workspace folder.",
        AzureIdentityMismatch,
        stacklevel=caller_level(),
    )


def caller_level() -> int:
    """The stacklevel of the first frame outside runyard, so the warning points at the user's line
    (the call passes through a varying number of runyard wrappers)."""
    package = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level
