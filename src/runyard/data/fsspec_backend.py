"""Datastores that are not a plain local folder: any fsspec filesystem, and the built-in datastores.

`FsspecBackend` opens a registered store's URL (s3://, az://, abfs://, gs://, ...) with its options and
secrets. The filesystem is created on first use, so a store whose fsspec package is missing can still be
registered and listed; using it says which extra to install. Every failure of the remote side becomes a
DataAccessError naming the URL and endpoint, and S3 gets short connect/read timeouts and few retries, so an
unreachable endpoint is an error within seconds rather than a hang.

Reads of remote files go through a local cache folder keyed by (store URL, path, version tag): `fetch` of
a file whose ETag/generation is unchanged returns the cached copy without downloading it again.

`ArtifactBackend` is a built-in datastore (workspaceblobstore, workspacefilestore): a folder of the
workspace's artifact store. In an embedded workspace that is a LocalBackend; in a server workspace every
file goes through the server's artifact API.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runyard.data.backends import (
    PARTIAL_DIR,
    LocalBackend,
    StorageBackend,
    StoredFile,
    clean_store_path,
)
from runyard.errors import DataAccessError, NotFoundError, RunyardError
from runyard.store.rest_artifacts import RestArtifactStore

if TYPE_CHECKING:
    from runyard.core.workspace import Workspace

#: The pip extra that brings each protocol's fsspec implementation.
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "gs": "gcs",
    "gcs": "gcs",
}
#: S3 client settings unless the store's options say otherwise: fail fast on an unreachable endpoint.
S3_TIMEOUTS: dict[str, Any] = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}
S3_FS_RETRIES = 2  # s3fs's own retry loop (5 by default, with back-off)


def _join(root: str, rel: str) -> str:
    return posixpath.join(root, rel) if rel else root


def version_tag(info: Mapping[str, Any]) -> str | None:
    """The store's own version of a file: S3/Azure ETag, GCS generation, or an md5, when reported."""
    for key in ("ETag", "etag", "generation", "md5Hash", "md5", "VersionId", "version_id"):
        value = info.get(key)
        if value not in (None, ""):
            return str(value).strip('"')
    return None


class FsspecBackend:
    """A registered datastore on any fsspec filesystem (StorageBackend)."""

    def __init__(self, url: str, options: Mapping[str, Any] | None = None, *, cache_dir: Path) -> None:
        self.root_url = url.rstrip("/")
        self.protocol = url.partition("://")[0].lower()
        self._options = dict(options or {})
        self._cache_dir = Path(cache_dir)
        client = self._options.get("client_kwargs") or {}
        self.endpoint = self._options.get("endpoint_url") or (
            client.get("endpoint_url") if isinstance(client, Mapping) else None
        )
        self.url = f"{self.root_url} (endpoint {self.endpoint})" if self.endpoint else self.root_url
        self._fs: Any = None
        self._root = ""
        self._lock = threading.Lock()

    # -- the filesystem, opened on first use ----------------------------------------------------------
    def _open(self) -> tuple[Any, str]:
        with self._lock:
            if self._fs is None:
                import fsspec

                options = dict(self._options)
                if self.protocol in ("s3", "s3a"):
                    config = dict(S3_TIMEOUTS)
                    config.update(options.get("config_kwargs") or {})
                    options["config_kwargs"] = config
                    options.setdefault("use_listings_cache", False)
                try:
                    fs, root = fsspec.core.url_to_fs(self.root_url, **options)
                except ImportError as exc:
                    extra = EXTRAS.get(self.protocol)
                    hint = f"pip install 'runyard[{extra}]'" if extra else "install the fsspec package for it"
                    raise DataAccessError(
                        f"Datastore {self.url} needs an fsspec backend for '{self.protocol}://' that is not "
                        f"installed ({exc}). Run: {hint}"
                    ) from None
                except ValueError as exc:
                    raise DataAccessError(
                        f"Datastore {self.url} cannot be opened: {exc}. Check its URL and options "
                        "(Datastore.register_fsspec(ws, name, url, overwrite=True, ...))."
                    ) from None
                if self.protocol in ("s3", "s3a"):
                    fs.retries = S3_FS_RETRIES
                self._fs, self._root = fs, str(root).rstrip("/")
            return self._fs, self._root

    @contextmanager
    def _errors(self, action: str, path: str) -> Iterator[None]:
        try:
            yield
        except RunyardError:
            raise
        except FileNotFoundError:
            raise DataAccessError(
                f"{path!r} is not on datastore {self.url} (while trying to {action})."
            ) from None
        except Exception as exc:
            raise DataAccessError(
                f"Could not {action} {path!r} on datastore {self.url}: {type(exc).__name__}: {exc}. Check that "
                "the endpoint is reachable and the credentials (secrets file or RUNYARD_DATASTORE_* variables) "
                "are right."
            ) from exc

    def _rel(self, full: str) -> str:
        full = full.split("://", 1)[-1] if "://" in full else full
        return full[len(self._root) :].lstrip("/") if full.startswith(self._root) else full

    # -- StorageBackend -------------------------------------------------------------------------------
    def list_files(self, prefix: str = "") -> list[StoredFile]:
        rel = clean_store_path(prefix)
        fs, root = self._open()
        base = _join(root, rel)
        with self._errors("list", rel or "/"):
            fs.invalidate_cache()
            try:
                found = fs.find(base, detail=True)
            except FileNotFoundError:
                return []
            if not found and rel:
                try:
                    info = fs.info(base)
                except FileNotFoundError:
                    return []
                found = {base: info} if info.get("type") == "file" else {}
        files = [
            StoredFile(self._rel(path), int(info.get("size") or 0), None, version_tag(info))
            for path, info in found.items()
            if info.get("type", "file") == "file"
        ]
        return sorted(files, key=lambda f: f.path)

    def local_path(self, path: str) -> Path | None:
        return None

    def _cached(self, rel: str, tag: str) -> Path:
        key = hashlib.sha256(f"{self.root_url}\0{rel}\0{tag}".encode()).hexdigest()[:40]
        return self._cache_dir / key[:2] / key / posixpath.basename(rel)

    def fetch(self, path: str) -> Path:
        rel = clean_store_path(path)
        fs, root = self._open()
        full = _join(root, rel)
        with self._errors("read", rel):
            info = fs.info(full)
            if info.get("type") == "directory":
                raise DataAccessError(f"{rel!r} on datastore {self.url} is a folder; fetch reads one file.")
            size = int(info.get("size") or 0)
            tag = version_tag(info) or f"{size}-{info.get('LastModified') or info.get('mtime') or ''}"
            target = self._cached(rel, tag)
            if target.is_file() and target.stat().st_size == size:
                return target
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.partial-{uuid.uuid4().hex[:8]}")
            try:
                fs.get_file(full, str(partial))
                os.chmod(partial, 0o444)  # a cached copy is read-only: writing it would corrupt the cache
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    def put_file(self, local: Path, path: str, overwrite: bool) -> bool:
        rel = clean_store_path(path)
        fs, root = self._open()
        full = _join(root, rel)
        with self._errors("write", rel):
            if not overwrite and fs.exists(full):
                return False
            fs.put_file(str(local), full)  # one PUT, or a multipart upload that appears only when complete
        return True


class ArtifactBackend:
    """A built-in datastore ('workspaceblobstore', 'workspacefilestore'): `datastores/<name>/` of the
    workspace's artifact store (StorageBackend).

    Embedded workspace with a local artifact root: a LocalBackend over that folder. An artifact root on
    an fsspec URL: a FsspecBackend under it. A server workspace: files go through the server's artifact
    API, downloads into the workspace's cache folder."""

    def __init__(self, workspace: Workspace, name: str = "workspaceblobstore") -> None:
        self.prefix = f"datastores/{name}"
        self._cache_dir = Path(workspace.path) / "cache" / "datastores" / name
        artifacts = workspace.artifacts
        self._rest: RestArtifactStore | None = None
        self._inner: StorageBackend | None = None
        if isinstance(artifacts, RestArtifactStore):
            self._rest = artifacts
            self.url = f"{artifacts.root}/{self.prefix} (runyard server)"
        elif artifacts.is_local:
            self._inner = LocalBackend(artifacts.local_path(self.prefix))
            self.url = self._inner.url
        else:
            self._inner = FsspecBackend(f"{artifacts.root}/{self.prefix}", cache_dir=self._cache_dir)
            self.url = self._inner.url

    def _rel(self, path: str) -> str:
        rel = clean_store_path(path)
        return f"{self.prefix}/{rel}" if rel else self.prefix

    def list_files(self, prefix: str = "") -> list[StoredFile]:
        if self._inner is not None:
            return self._inner.list_files(prefix)
        assert self._rest is not None
        rel = clean_store_path(prefix)
        names = self._rest.list(self._rel(rel))
        if not names:
            if rel and self._rest.exists(self._rel(rel)):
                return [StoredFile(rel, self._rest.size(self._rel(rel)))]
            return []
        paths = [f"{rel}/{n}" if rel else n for n in names]
        paths = [p for p in paths if PARTIAL_DIR not in p.split("/")]  # a local client's upload under way
        return sorted((StoredFile(p, self._rest.size(self._rel(p))) for p in paths), key=lambda f: f.path)

    def local_path(self, path: str) -> Path | None:
        return self._inner.local_path(path) if self._inner is not None else None

    def fetch(self, path: str) -> Path:
        if self._inner is not None:
            return self._inner.fetch(path)
        assert self._rest is not None
        rel = clean_store_path(path)
        target = self._cache_dir / "files" / rel
        try:
            self._rest.get_file(self._rel(rel), target)  # a ranged download renamed into place
        except NotFoundError:
            raise DataAccessError(f"{rel!r} is not on datastore {self.url}.") from None
        return target

    def put_file(self, local: Path, path: str, overwrite: bool) -> bool:
        if self._inner is not None:
            return self._inner.put_file(local, path, overwrite)
        assert self._rest is not None
        rel = self._rel(path)
        if not overwrite and self._rest.exists(rel):
            return False
        self._rest.put_file(rel, local)  # the server writes a temporary file and renames it
        return True
