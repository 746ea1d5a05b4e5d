"""Datastore credentials: kept out of the database, in a file only the owner can read, or in the environment.

An account key, SAS token or secret access key given to `Datastore.register_*` is written to
`<workspace folder>/secrets.json` (mode 0600, created atomically so it is never readable by others, not
even for a moment). The database record only lists which options are secret (`secret_names`). A value in
the environment wins over the file: RUNYARD_DATASTORE_<NAME>__<OPTION> (a double underscore between the
name and the option), e.g. RUNYARD_DATASTORE_MY_BLOB__ACCOUNT_KEY, so CI and containers need no file at
all. Both names and options may hold '_', so a single '_' would be ambiguous (datastore 'my_blob' option
'account_key', or datastore 'my_blob_account' option 'key'?); no option name holds '__', so the double
underscore is not. A secrets file that group or others can read is refused (with the chmod that fixes it)
rather than used, as ssh does with keys.

Registrations run in many processes at once (notebooks, CI, a shell), so every read-modify-write of the
file holds an exclusive `fcntl.flock` on `secrets.json.lock` beside it: no process overwrites another's
entry.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from runyard.errors import InvalidInputError, RunyardError
from runyard.store.data_rules import SECRET_OPTION_KEYS

SECRETS_FILE = "secrets.json"
#: Held (flock) around every read-modify-write of the secrets file, by every process.
LOCK_FILE = "secrets.json.lock"
#: Between the datastore's name and the option in an environment variable's name.
ENV_SEPARATOR = "__"
_lock = threading.Lock()


class SecretsFileError(RunyardError):
    """The workspace secrets file is unsafe (readable by others) or unreadable."""


def is_secret_option(name: str) -> bool:
    """Whether a storage option holds a credential (the same names the store refuses to keep)."""
    return name.lower() in SECRET_OPTION_KEYS


def split_options(where: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plain options, secret options). A credential nested inside another option (say
    client_kwargs={'aws_secret_access_key': ...}) is refused: it would otherwise reach the database."""
    plain: dict[str, Any] = {}
    secret: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if is_secret_option(key):
            if not isinstance(value, str):
                raise InvalidInputError(f"{where}: the credential {key!r} must be a string.")
            secret[key] = value
        else:
            _refuse_nested(where, key, value)
            plain[key] = value
    return plain, secret


def _refuse_nested(where: str, outer: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str) and is_secret_option(key):
                raise InvalidInputError(
                    f"{where}: {outer}[{key!r}] looks like a credential. Pass it as a top-level option "
                    f"({key}=...) so runyard keeps it in the workspace secrets file, not in the database."
                )
            _refuse_nested(where, f"{outer}[{key!r}]", item)


def env_name(datastore: str, option: str) -> str:
    """RUNYARD_DATASTORE_<NAME>__<OPTION>, upper-case, anything but letters and digits as '_'. The double
    underscore keeps 'my_blob' + 'account_key' apart from 'my_blob_account' + 'key'."""
    return f"RUNYARD_DATASTORE_{_env_part(datastore)}{ENV_SEPARATOR}{_env_part(option)}"


def _env_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", text).upper()


def secrets_path(workspace_folder: Path) -> Path:
    return Path(workspace_folder) / SECRETS_FILE


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """This process's threads (a threading lock) and every other process (flock on the lock file beside
    `path`) wait for each other, so a read-modify-write of the secrets file never loses another's entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _lock:
        fd = os.open(path.with_name(LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the flock


def _read(path: Path) -> dict[str, Any]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return {}
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fh.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretsFileError(
                f"The datastore secrets file {path} can be read by other users (mode {stat.filemode(mode)}); "
                f"runyard will not use it. Run `chmod 600 {path}` (and consider rotating the keys in it)."
            )
        try:
            data = json.loads(fh.read() or b"{}")
        except ValueError as exc:
            raise SecretsFileError(
                f"The datastore secrets file {path} is not valid JSON ({exc}). Fix or delete it, then register "
                "the datastores again with their keys."
            ) from None
    if not isinstance(data, dict) or not isinstance(data.get("datastores", {}), dict):
        raise SecretsFileError(f"The datastore secrets file {path} is not a JSON object of datastores.")
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    """Write via a 0600 temporary file (mkstemp creates it so) renamed into place: never partial, never
    readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stored_secrets(workspace_folder: Path, datastore: str) -> dict[str, str]:
    """The secrets kept in the file for one datastore (names are case-insensitive)."""
    data = _read(secrets_path(workspace_folder))
    return dict(data.get("datastores", {}).get(datastore.lower(), {}))


def save_secrets(workspace_folder: Path, datastore: str, values: Mapping[str, str]) -> dict[str, str]:
    """Replace one datastore's secrets (none: remove its entry). Returns what was there before, so a
    failed registration can put it back."""
    path = secrets_path(workspace_folder)
    with _locked(path):
        data = _read(path)
        stores = data.setdefault("datastores", {})
        before = dict(stores.get(datastore.lower(), {}))
        if values:
            stores[datastore.lower()] = dict(values)
        else:
            stores.pop(datastore.lower(), None)
        if values or before or path.exists():
            _write(path, data)
    return before


def restore_secrets(
    workspace_folder: Path, datastore: str, wrote: Mapping[str, str], before: Mapping[str, str]
) -> None:
    """Undo save_secrets after a failed registration, unless someone else changed the entry since."""
    path = secrets_path(workspace_folder)
    with _locked(path):
        data = _read(path)
        stores = data.setdefault("datastores", {})
        if stores.get(datastore.lower(), {}) != dict(wrote):
            return
        if before:
            stores[datastore.lower()] = dict(before)
        else:
            stores.pop(datastore.lower(), None)
        if path.exists():
            _write(path, data)


def resolve_secrets(
    workspace_folder: Path, datastore: str, names: tuple[str, ...] | list[str]
) -> dict[str, str]:
    """The value of each secret option: the environment's RUNYARD_DATASTORE_<NAME>__<OPTION> first, then
    the file. An option found in neither is left out (fsspec then tries its own credential chain). The
    environment may also supply a credential that was not given at registration (key, secret, account_key,
    ...). The file is only read when the environment does not hold every value."""
    found: dict[str, str] = {}
    missing = []
    prefix = env_name(datastore, "")
    given = {key[len(prefix) :].lower() for key in os.environ if key.startswith(prefix)}
    # a credential only the environment supplies (CI, containers) counts too, if it is a known option name
    names = [*names, *sorted(n for n in given if is_secret_option(n) and n not in names)]
    for name in names:
        value = os.environ.get(env_name(datastore, name))
        if value is not None:
            found[name] = value
        else:
            missing.append(name)
    if missing:
        stored = stored_secrets(workspace_folder, datastore)
        found.update({name: stored[name] for name in missing if name in stored})
    return found
