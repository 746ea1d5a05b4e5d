"""What a datastore, dataset or lineage record must look like before SqlStore writes it.

The data half of store/validation.py (which keeps the generic rules these build on): SqlStore checks
every record with these, so SQLite, PostgreSQL, the REST server and the Python API accept and refuse
the same data records. Three promises of issue 12 are kept here, at the one place every writer passes:

- credentials never reach the database: not as an option (SECRET_OPTION_KEYS), not inside a datastore
  URL (`s3://KEY:SECRET@bucket`, `az://c/p?sig=...`);
- a recorded file never leaves its datastore: a datastore file's path is the clean relative path its
  backend lists ('..', a leading '/' or a NUL would make the server stat and hash its own files);
- a version's content_hash is the hash of its files (`content_hash` below, the one definition the data
  layer uses too), so step reuse can trust it: a record cannot claim another version's fingerprint.

`check_server_dataset` adds the rule for records posted over REST: a client's local paths and URLs mean
nothing on the server, and reading them there would let any token holder probe the server's files or
make it fetch URLs of their choosing.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from runyard.errors import InvalidInputError
from runyard.store.records import DatasetRecord, DatasetUse, DatastoreRecord
from runyard.store.validation import (
    INT64_MAX,
    MAX_NAME_LENGTH,
    MAX_PAYLOAD_DEPTH,
    check_json,
    check_run_id,
    check_text,
    check_time,
    shown,
    validate_tags,
)

#: The datastores every workspace has (folders of its artifact store, or the server's); never records.
#: v1 workspaces have both; 'workspaceblobstore' is the default unless another one is set.
BUILTIN_DATASTORES: tuple[str, ...] = ("workspaceblobstore", "workspacefilestore")
BUILTIN_DATASTORE: str = BUILTIN_DATASTORES[0]
DATASTORE_NAME: re.Pattern[str] = re.compile(r"[A-Za-z0-9_]{1,255}")
DATASTORE_SCHEMES: tuple[str, ...] = ("file", "s3", "az", "abfs", "abfss", "gs", "gcs", "memory")
#: Azure's URL form container@account.dfs.core.windows.net puts the container in the userinfo.
AZURE_SCHEMES = ("az", "abfs", "abfss")
#: Option keys that hold credentials (compared lowercased). They belong in the workspace secrets file or
#: the environment, never in the database: refusing them here keeps that promise for every writer.
# fmt: off
SECRET_OPTION_KEYS: frozenset[str] = frozenset((
    "account_key", "sas_token", "key", "secret", "secret_access_key", "aws_secret_access_key",
    "password", "token", "connection_string", "client_secret", "credential",
))
# fmt: on
WHERE_CREDENTIALS_GO = (
    "Pass it to Datastore.register_*'s key arguments (account_key=, sas_token=, key=, secret=, ...: they go "
    "to the workspace's secrets.json, readable only by you) or set RUNYARD_DATASTORE_<NAME>__<OPTION> in "
    "the environment (docs/datastores.md)."
)
DATASET_KINDS: tuple[str, ...] = ("file", "tabular")
MAX_DATASET_NAME = 250
DATASET_FILE_KEYS: tuple[str, ...] = ("datastore", "path", "size", "sha256")
USE_DIRECTIONS = ("input", "output")
_HEX64 = re.compile(r"[0-9a-f]{64}")


# -- datastores ---------------------------------------------------------------------------------------


def check_datastore_name(name: Any) -> str:
    """v1's rule (letters, digits and '_', 1-255 characters); names are case-insensitive, so the lowercased
    name is returned and stored."""
    if not isinstance(name, str) or not DATASTORE_NAME.fullmatch(name):
        raise InvalidInputError(
            f"Datastore name {name!r:.60} is not valid: use 1 to 255 letters, digits or '_' "
            "(for example 'training_data')."
        )
    return name.lower()


def is_builtin_datastore(name: Any) -> bool:
    return isinstance(name, str) and name.lower() in BUILTIN_DATASTORES


def refuse_builtin_datastore(name: str, action: str) -> None:
    if is_builtin_datastore(name):
        raise InvalidInputError(
            f"'{name.lower()}' is a built-in datastore and cannot be {action} (every workspace has "
            f"{' and '.join(BUILTIN_DATASTORES)}); register your store under another name."
        )


def _check_no_secrets(what: str, value: Any, depth: int = 0) -> None:
    if depth > MAX_PAYLOAD_DEPTH or not isinstance(value, Mapping | list | tuple):
        return
    items = value.items() if isinstance(value, Mapping) else enumerate(value)
    for key, item in items:
        if isinstance(key, str) and key.lower() in SECRET_OPTION_KEYS:
            raise InvalidInputError(
                f"{what} holds {key!r}, which looks like a credential; runyard never stores credentials in "
                "the database. Pass it to Datastore.register_* (it goes to the workspace secrets file, "
                "readable only by you) or set it in the environment (docs/datasets.md)."
            )
        _check_no_secrets(what, item, depth + 1)


def _redacted(url: str) -> str:
    """The URL as a message may show it: scheme and host, without userinfo, path or query."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return shown(url)
    host = rest.split("/", 1)[0].rpartition("@")[2].split("?", 1)[0].split("#", 1)[0]
    return repr(f"{scheme}://{host}/…"[:80])


def _check_url_credentials(scheme: str, rest: str) -> None:
    """A password in the userinfo (fsspec reads s3://KEY:SECRET@bucket as credentials) or a query string
    (an Azure SAS token is one) would sit in the database in clear text and reach every token holder
    through GET /api/v1/datastores. The message never repeats the URL: it holds the secret."""
    netloc = rest.split("/", 1)[0]
    userinfo = netloc.rpartition("@")[0]
    named = _redacted(f"{scheme}://{rest}")
    if userinfo and (":" in userinfo or scheme not in AZURE_SCHEMES):
        raise InvalidInputError(
            f"Datastore URL {named} holds a user name or password before '@'; runyard never stores "
            f"credentials in the database. Remove them from the URL. {WHERE_CREDENTIALS_GO}"
        )
    if "?" in rest or "#" in rest:
        raise InvalidInputError(
            f"Datastore URL {named} has a query string or fragment ('?…' or '#…'), which is where SAS tokens "
            "and signatures go; runyard never stores credentials in the database. Remove it from the URL "
            f"(percent-encode a '?' or '#' that is part of a folder name). {WHERE_CREDENTIALS_GO}"
        )


def check_datastore_url(url: Any) -> str:
    """An fsspec URL whose scheme runyard can open: file:///abs, s3://bucket/..., az://container/...,
    without credentials in it."""
    text = check_text("Datastore URL", url, limit=2048, controls=False)
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if (
        not sep
        or scheme not in DATASTORE_SCHEMES
        or not rest.strip("/")
        or (scheme == "file" and rest[:1] != "/")
    ):
        raise InvalidInputError(
            f"Datastore URL {_redacted(text)} is not an fsspec URL runyard can open; use one of "
            f"{', '.join(s + '://' for s in DATASTORE_SCHEMES)} followed by the bucket, container or "
            "absolute folder (for example 's3://my-bucket/data' or 'file:///srv/data')."
        )
    _check_url_credentials(scheme, rest)
    return text


def validate_datastore(record: DatastoreRecord) -> str:
    """Every field of a datastore record; returns the (lowercased) name it is stored under."""
    name = check_datastore_name(record.name)
    refuse_builtin_datastore(name, "saved as a record")
    check_text("Datastore kind", record.kind, limit=64, controls=False)
    check_datastore_url(record.url)
    for what, value in (("options", record.options), ("data", record.data)):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise InvalidInputError(f"Datastore {name!r}: {what} must be a dict with string keys.")
        check_json(f"Datastore {name!r} {what}", dict(value))
        _check_no_secrets(f"Datastore {name!r} {what}", value)
    if not isinstance(record.secret_names, list | tuple):
        raise InvalidInputError(f"Datastore {name!r}: secret_names must be a list of option names.")
    for secret in record.secret_names:
        check_text(f"Datastore {name!r} secret name", secret, limit=MAX_NAME_LENGTH, controls=False)
    check_time(f"Datastore {name!r}", record.created_time)
    return name


# -- datasets -----------------------------------------------------------------------------------------


class FileFields(Protocol):
    """What content_hash reads of a file: data/hashing.py's ResolvedFile has these fields."""

    @property
    def datastore(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...


def _hash_rows(rows: Iterable[tuple[str, str, int, str]]) -> str:
    return hashlib.sha256(json.dumps(sorted(rows), separators=(",", ":")).encode()).hexdigest()


def content_hash(files: Iterable[FileFields]) -> str:
    """sha256 of the files' canonical JSON, sorted by (datastore, path): the identity of a version's bytes.
    Each file is the array [datastore, path, size, sha256] (compact, cheap to build for 100k files)."""
    return _hash_rows((f.datastore, f.path, f.size, f.sha256) for f in files)


def record_content_hash(files: Iterable[Mapping[str, Any]]) -> str:
    """content_hash of a record's files as stored (dicts with DATASET_FILE_KEYS, already validated)."""
    return _hash_rows((str(f["datastore"]), str(f["path"]), int(f["size"]), str(f["sha256"])) for f in files)


def check_content_hash(what: str, value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise InvalidInputError(f"{what} must be a sha256 as 64 lowercase hex digits, got {value!r:.80}.")
    return value


def check_dataset_name(name: Any) -> str:
    """Printable names, spaces allowed (v1's 'diabetes dataset'), but no '/' (it appears in URLs)."""
    text = check_text("Dataset name", name, limit=MAX_DATASET_NAME, controls=False)
    if not text.strip() or "/" in text or not text.isprintable():
        raise InvalidInputError(
            f"Dataset name {shown(text)} is not allowed: use 1 to {MAX_DATASET_NAME} printable characters, "
            "not only spaces and without '/' (for example 'diabetes dataset')."
        )
    return text


def _has_dotdot(path: str) -> bool:
    return ".." in path.replace("\\", "/").split("/")


def check_store_path(where: str, path: str) -> None:
    """A datastore file's path as its backend lists it: relative, normalised, inside the datastore.
    The same rule as data/backends.clean_store_path (clean_store_path(path) == path)."""
    text = path.replace("\\", "/")
    clean = posixpath.normpath(text.strip("/")) if text.strip("/") else ""
    if _has_dotdot(path) or clean != path:
        raise InvalidInputError(
            f"{where}: path {shown(path)} is not a path inside its datastore; use the relative path the "
            "datastore lists (for example 'raw/2024/data.csv': no '..', no leading '/', no '\\', './' or "
            "'//')."
        )


def _check_dataset_file(name: str, index: int, item: Any) -> None:
    where = f"Dataset {name!r} file {index}"
    if not isinstance(item, Mapping) or set(item) != set(DATASET_FILE_KEYS):
        raise InvalidInputError(
            f"{where} must be a dict with exactly the keys {', '.join(DATASET_FILE_KEYS)}, got {item!r:.120}."
        )
    if not isinstance(item["datastore"], str):
        raise InvalidInputError(f"{where}: datastore must be a string ('' for a URL or local file).")
    path = check_text(f"{where} path", item["path"], limit=4096)
    if item["datastore"]:
        check_store_path(where, path)
    elif _has_dotdot(path):
        raise InvalidInputError(
            f"{where}: path {shown(path)} holds '..'; record the absolute path or URL without '..'."
        )
    size = item["size"]
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= INT64_MAX:
        raise InvalidInputError(f"{where}: size must be a whole number of bytes >= 0, got {size!r}.")
    check_text(f"{where} sha256", item["sha256"], limit=1024, controls=False)


def _sources(definition: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    sources = definition.get("sources")
    return [s for s in sources if isinstance(s, Mapping)] if isinstance(sources, list | tuple) else []


def _check_definition_paths(name: str, definition: Mapping[str, Any]) -> None:
    """data/definition.py parses definitions; the store only keeps '..' out of their sources' paths."""
    for index, source in enumerate(_sources(definition)):
        for key in ("path", "local", "url"):
            value = source.get(key)
            if isinstance(value, str) and _has_dotdot(value):
                raise InvalidInputError(
                    f"Dataset {name!r} source {index}: {key} {shown(value)} holds '..'; a source may not "
                    "leave its datastore or folder. Name the files without '..'."
                )


def validate_dataset(record: DatasetRecord) -> None:
    """A dataset version as registered (its id and version are assigned by the store). Its content_hash
    must be well formed; the store then keeps the hash of the files (record_content_hash), not the one
    given."""
    name = check_dataset_name(record.name)
    if record.kind not in DATASET_KINDS:
        raise InvalidInputError(
            f"Dataset {name!r} has kind {record.kind!r:.40}; use one of {', '.join(DATASET_KINDS)}."
        )
    if not isinstance(record.definition, Mapping):
        raise InvalidInputError(f"Dataset {name!r}: definition must be a dict (the definition's JSON).")
    check_json(f"The definition of dataset {name!r}", dict(record.definition))
    _check_definition_paths(name, record.definition)
    if not isinstance(record.files, list | tuple):
        raise InvalidInputError(f"Dataset {name!r}: files must be a list of resolved files.")
    for index, item in enumerate(record.files):
        _check_dataset_file(name, index, item)
    check_content_hash(f"Dataset {name!r} content_hash", record.content_hash)
    if record.description is not None:
        check_text(f"Dataset {name!r} description", record.description)
    if not isinstance(record.tags, Mapping):
        raise InvalidInputError(f"Dataset {name!r}: tags must be a dict.")
    validate_tags(record.tags, "Dataset tag")
    check_json(f"The tags of dataset {name!r}", dict(record.tags))
    if record.run_id is not None:
        check_run_id(record.run_id)
    check_time(f"Dataset {name!r}", record.created_time)


def check_server_dataset(record: DatasetRecord) -> None:
    """A version posted to a server names only datastore files. A local path or URL (datastore "", or a
    {"local"}/{"url"} source) was never uploaded there: reading it on the server would stat and hash the
    server's own files, or fetch a URL of the poster's choosing, whenever anyone previews the version.
    Call after validate_dataset (it relies on the files' shape)."""
    how = (
        "A server workspace reads only datastore files: upload the data first "
        "(ws.get_default_datastore().upload(src_dir, target_path=...)) and build the dataset from the "
        "datastore (Dataset.File.from_files((datastore, 'path/**'))). Local paths and URLs are for "
        "workspaces opened from a folder."
    )
    for index, source in enumerate(_sources(record.definition)):
        if "local" in source or "url" in source:
            kind = "a local path" if "local" in source else "a URL"
            raise InvalidInputError(f"Dataset {record.name!r} source {index} is {kind}. {how}")
    for index, item in enumerate(record.files):
        if not item["datastore"]:
            raise InvalidInputError(
                f"Dataset {record.name!r} file {index} ({shown(str(item['path']))}) is a local path or URL, "
                f"not a datastore file. {how}"
            )


# -- lineage ------------------------------------------------------------------------------------------


def validate_dataset_use(use: DatasetUse) -> None:
    """One lineage row; whether its run and dataset exist is checked by the store, in its transaction."""
    check_run_id(use.run_id)
    if use.direction not in USE_DIRECTIONS:
        raise InvalidInputError(
            f"Dataset use {use.name!r:.60} of run {use.run_id!r}: direction must be 'input' or 'output', "
            f"got {use.direction!r:.40}."
        )
    check_text("Dataset use name", use.name, limit=MAX_NAME_LENGTH, controls=False)
    check_content_hash(f"Dataset use {use.name!r} content_hash", use.content_hash)
    if use.dataset_id is not None:
        check_text(f"Dataset use {use.name!r} dataset_id", use.dataset_id, limit=64, controls=False)
    if not isinstance(use.detail, Mapping):
        raise InvalidInputError(f"Dataset use {use.name!r}: detail must be a dict.")
    check_json(f"The detail of dataset use {use.name!r}", dict(use.detail))
    check_time(f"Dataset use {use.name!r}", use.created_time)
