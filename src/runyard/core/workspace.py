"""Workspace: a folder that holds a database (or points at one) and an artifact root.

Layout of the embedded default (`.runyard/`):

    config.json     tracking_uri, artifact_root, name
    runyard.db      SQLite database (WAL mode)
    artifacts/      runs/<run_id>/…, models/<name>/<version>/…
    work/           per-run working copies of source directories, removed when a run ends
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from runyard import config
from runyard.errors import ConflictError, InvalidInputError, WorkspaceNotFound
from runyard.store import ArtifactStore, Store, open_store
from runyard.store.rest_artifacts import RestArtifactStore

if TYPE_CHECKING:
    from runyard.core.experiment import Experiment
    from runyard.core.model import Model
    from runyard.core.run import Run

CONFIG_FILE = "config.json"
CONFIG_LOCK = ".config.lock"


class Workspace:
    """The root of everything runyard records. Cheap to construct; share one per process if you like."""

    def __init__(
        self, path: str | os.PathLike[str], *, token: str | None = None, _config: dict[str, Any] | None = None
    ) -> None:
        self.path = Path(path).expanduser().resolve()
        cfg = _config if _config is not None else self._read_config(self.path)
        # A server token: argument, else RUNYARD_TOKEN (how a submitted run gets its run token), else config.
        self.token: str | None = token or os.environ.get(config.ENV_TOKEN) or cfg.get("token")
        self.name: str = cfg.get("name") or self.path.parent.name or "runyard"
        self.tracking_uri: str = cfg["tracking_uri"]
        self.artifact_root: str = cfg["artifact_root"]
        remote = self.tracking_uri.startswith(("http://", "https://"))
        self.studio_url: str = cfg.get("studio_url") or (
            config.studio_url(self.tracking_uri) if remote else config.studio_url()
        )
        self._identity: str | None = cfg.get("id") if isinstance(cfg.get("id"), str) else None
        self._store: Store | None = None
        self._artifacts: ArtifactStore | RestArtifactStore | None = None

    # -- construction -------------------------------------------------------------------------
    @staticmethod
    def _read_config(path: Path) -> dict[str, Any]:
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
        if "://" not in root and not os.path.isabs(root):  # relative to the workspace folder
            cfg["artifact_root"] = str((path / root).resolve())
        uri = cfg["tracking_uri"]
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
            cfg["tracking_uri"] = "sqlite:///" + str((path / uri[len("sqlite:///") :]).resolve())
        return dict(cfg)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str] = config.DEFAULT_WORKSPACE_DIRNAME,
        *,
        name: str | None = None,
        tracking_uri: str | None = None,
        artifact_root: str | None = None,
        exist_ok: bool = False,
        **_azure_kwargs: Any,
    ) -> Workspace:
        """Create a workspace folder. Azure-only arguments (subscription_id, location, …) are accepted and ignored."""
        folder = Path(path).expanduser().resolve()
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
            return cls(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidInputError(
                f"Cannot create a workspace at {folder}: {exc.filename or 'a folder above it'} is a file, not a "
                "folder. Choose another path, or move the file away."
            ) from exc
        cfg = {
            "name": name
            or (folder.parent.name if folder.name == config.DEFAULT_WORKSPACE_DIRNAME else folder.name),
            "tracking_uri": tracking_uri or "sqlite:///runyard.db",
            "artifact_root": artifact_root or "artifacts",
            "id": uuid.uuid4().hex,
        }
        tmp = folder / f".{CONFIG_FILE}.tmp"
        tmp.write_text(json.dumps(cfg, indent=2) + "\n")
        os.replace(tmp, folder / CONFIG_FILE)
        ws = cls(folder)
        ws.store  # noqa: B018 - create the schema now, so later concurrent openers find it ready
        return ws

    @classmethod
    def get(
        cls,
        path: str | os.PathLike[str] = config.DEFAULT_WORKSPACE_DIRNAME,
        *,
        token: str | None = None,
        **_azure_kwargs: Any,
    ) -> Workspace:
        """Open a workspace folder (or a project folder that contains `.runyard/`), or a server's URL."""
        if str(path).startswith(("http://", "https://")):
            return cls._remote(str(path), token)
        folder = Path(path).expanduser().resolve()
        if (
            not (folder / CONFIG_FILE).exists()
            and (folder / config.DEFAULT_WORKSPACE_DIRNAME / CONFIG_FILE).exists()
        ):
            folder = folder / config.DEFAULT_WORKSPACE_DIRNAME
        return cls(folder, token=token)

    @classmethod
    def _remote(cls, url: str, token: str | None) -> Workspace:
        """A server's workspace. Its local folder (under ~/.cache/runyard) holds only what local
        processes need: working copies of runs and the mirror of files they write."""
        parsed = urlsplit(url)
        folder = config.cache_dir() / "servers" / re.sub(r"[^A-Za-z0-9.-]", "_", parsed.netloc + parsed.path)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = {"name": parsed.netloc, "tracking_uri": url.rstrip("/"), "artifact_root": url.rstrip("/")}
        with _config_lock(folder):
            current = _read_json(folder / CONFIG_FILE)
            kept = {"id": current["id"]} if isinstance(current.get("id"), str) else {}
            if {k: v for k, v in current.items() if k != "id"} != cfg:  # keep this client's identity
                _write_config(folder, {**cfg, **kept})
        return cls(folder, token=token)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **_azure_kwargs: Any) -> Workspace:
        """Find the workspace: RUNYARD_WORKSPACE, else the nearest `.runyard/` walking up from `path` (default cwd)."""
        uri = os.environ.get(config.ENV_TRACKING_URI, "")
        if path is None and uri.startswith(("http://", "https://")):
            return cls.get(uri)
        env = config.env_workspace()
        if env is not None and path is None:
            return cls.get(env)
        start = Path(path or ".").expanduser().resolve()
        checked = []
        for folder in [start, *start.parents]:
            for candidate in (folder, folder / config.DEFAULT_WORKSPACE_DIRNAME):
                if (candidate / CONFIG_FILE).is_file() and candidate.name == config.DEFAULT_WORKSPACE_DIRNAME:
                    return cls(candidate)
            checked.append(folder / config.DEFAULT_WORKSPACE_DIRNAME)
        raise WorkspaceNotFound(start, checked)

    @classmethod
    def find_or_create(cls, path: str | os.PathLike[str] | None = None) -> tuple[Workspace, bool]:
        """The nearest workspace, or a new `./.runyard/`; the flag says whether one was created."""
        try:
            return cls.from_config(path), False
        except WorkspaceNotFound:
            return cls.create(Path(path or ".") / config.DEFAULT_WORKSPACE_DIRNAME, exist_ok=True), True

    # -- parts ----------------------------------------------------------------------------------
    @property
    def is_remote(self) -> bool:
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def store(self) -> Store:
        if self._store is None:
            label = self.tracking_uri if self.is_remote else str(self.path)
            self._store = open_store(self.tracking_uri, workspace_label=label, token=self.token)
        return self._store

    @property
    def artifacts(self) -> ArtifactStore | RestArtifactStore:
        if self._artifacts is None:
            if self.artifact_root.startswith(("http://", "https://")):
                self._artifacts = RestArtifactStore(self.artifact_root, self.token, self.path / "mirror")
            else:
                self._artifacts = ArtifactStore(self.artifact_root)
        return self._artifacts

    @property
    def identity(self) -> str:
        """This workspace folder's stable id (a uuid in its config.json, added when missing).

        Pipelines record it as their placement, so a scheduler starts, recovers and stops only the
        runs submitted from its own folder, even when several folders share one database or server
        (docs/security.md). For a workspace opened by URL it is the client's own cache folder's id.
        """
        if self._identity is None:
            with _config_lock(self.path):
                current = _read_json(self.path / CONFIG_FILE)
                if not isinstance(current.get("id"), str):
                    current["id"] = uuid.uuid4().hex
                    _write_config(self.path, current)
                self._identity = str(current["id"])
        return self._identity

    @property
    def work_dir(self) -> Path:
        return self.path / "work"

    # -- Azure-style accessors -------------------------------------------------------------------
    @property
    def experiments(self) -> dict[str, Experiment]:
        from runyard.core.experiment import Experiment

        return {e.name: Experiment(self, e.name) for e in self.store.list_experiments()}

    @property
    def models(self) -> dict[str, Model]:
        from runyard.core.model import Model

        return {m.name: Model._from_record(self, m) for m in self.store.list_models(latest=True)}

    def get_run(self, run_id: str) -> Run:
        from runyard.core.run import Run

        return Run.get(self, run_id)

    def iter_runs(self, experiment_name: str | None = None, status: list[str] | None = None) -> Iterator[Run]:
        from runyard.core.run import Run

        for record in self.store.list_runs(experiment_name=experiment_name, status=status):
            yield Run._from_record(self, record)

    def get_details(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": str(self.path),
            "tracking_uri": self.tracking_uri,
            "artifact_root": self.artifact_root,
            "studio_url": self.studio_url,
        }

    def get_mlflow_tracking_uri(self) -> str:
        return self.tracking_uri

    def __repr__(self) -> str:
        return f"Workspace(name={self.name!r}, path={str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.path == self.path

    def __hash__(self) -> int:
        return hash(self.path)


@contextlib.contextmanager
def _config_lock(folder: Path) -> Iterator[None]:
    """Serialise read-modify-write of config.json between processes (flock on a side file)."""
    with (folder / CONFIG_LOCK).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"{path} is not valid JSON ({exc}); fix or delete it.") from exc
    return dict(value) if isinstance(value, dict) else {}


def _write_config(folder: Path, cfg: dict[str, Any]) -> None:
    tmp = folder / f".{CONFIG_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(cfg, indent=2) + "\n")
    os.replace(tmp, folder / CONFIG_FILE)
