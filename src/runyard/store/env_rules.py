"""What a registered environment must look like before SqlStore writes it.

An environment is v1's environment JSON (what azureml-core's `Environment._serialize_to_dict` writes, see
EnvironmentRecord). It is code that runs: its requirements are installed and its interpreter started for
every job that names it, so the store refuses shapes the build would misread instead of storing them and
failing later, in some other run. The rules are strict on what runyard reads (the Python section's conda
dependencies, environment variables, interpreter) and lenient on the other keys v1 writes (docker, spark,
databricks, r, ...): those are kept as given, so a definition written by v1 round-trips unchanged.

SqlStore checks every registration with `validate_environment`, so SQLite, PostgreSQL, the REST server and
the client accept and refuse the same definitions. `definition_hash` is the one definition of "the same
environment": registering an unchanged definition again returns the version that holds it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from runyard.errors import InvalidInputError
from runyard.store.validation import MAX_PAYLOAD_DEPTH, check_text, shown

#: v1's rule for environment names, plus the database column's length.
ENVIRONMENT_NAME: re.Pattern[str] = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
#: Names v1 keeps for Microsoft's curated environments (compared case-insensitively).
RESERVED_PREFIXES: tuple[str, ...] = ("AzureML", "Microsoft")
#: A definition is a description, not a payload: 256 KB of canonical JSON is far more than any real one.
MAX_DEFINITION_BYTES = 256 * 1024
#: The keys the definition hash leaves out: they say where a definition is registered or which file it was
#: read from (runyard's own "runyard" notes: source file, curated name), not what it builds.
UNHASHED_KEYS: tuple[str, ...] = ("name", "version", "runyard")


# -- the shapes runyard reads ----------------------------------------------------------------------------


class _Lenient(BaseModel):
    """Unknown keys are kept (v1 writes many runyard does not read); known ones are type-checked strictly,
    so "false" never becomes False and 3 never becomes "3"."""

    model_config = ConfigDict(strict=True, extra="allow")


class PipDependencies(BaseModel):
    """The one dict a conda `dependencies` list may hold: {"pip": ["pkg==1.0", "--extra-index-url URL"]}."""

    model_config = ConfigDict(strict=True, extra="forbid")

    pip: list[str]


class CondaSection(_Lenient):
    name: str | None = None
    dependencies: list[Any] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)

    @field_validator("dependencies")
    @classmethod
    def _check_dependencies(cls, items: list[Any]) -> list[Any]:
        """Each item is a conda spec ("numpy", "python=3.10") or {"pip": [...]}; one message per bad item
        (a union type would report every way the item failed to be each alternative)."""
        for index, item in enumerate(items):
            if isinstance(item, str):
                continue
            if isinstance(item, dict):
                try:
                    PipDependencies.model_validate(item)
                    continue
                except ValidationError:
                    pass
            raise ValueError(
                f"item {index} is {item!r:.60}; each item must be a conda package string such as "
                "'numpy=1.26' or {'pip': ['package==1.0', ...]} (a list of pip requirement strings)"
            )
        return items


def _no_nul(value: str | None) -> str | None:
    """A path runyard opens (interpreterPath, condaDependenciesFile, runyard.source) cannot hold NUL: no
    file system path can, and the planner would fail on it with a bare ValueError instead of saying so."""
    if value is not None and "\x00" in value:
        raise ValueError(
            f"{value!r:.80} contains a NUL character (\\x00), which no file path can hold; write the path "
            "without it"
        )
    return value


class PythonSection(_Lenient):
    userManagedDependencies: bool = False
    interpreterPath: str | None = None
    condaDependenciesFile: str | None = None
    baseCondaEnvironment: str | None = None
    condaDependencies: CondaSection | None = None

    @field_validator("interpreterPath", "condaDependenciesFile")
    @classmethod
    def _check_paths(cls, value: str | None) -> str | None:
        return _no_nul(value)


class RunyardSection(_Lenient):
    curated: str | None = None
    source: str | None = None

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str | None) -> str | None:
        return _no_nul(value)


class EnvironmentDefinitionModel(_Lenient):
    """v1's environment JSON as far as runyard reads it."""

    name: str | None = None
    version: str | int | None = None
    environmentVariables: dict[str, str] | None = None
    python: PythonSection | None = None
    docker: dict[str, Any] | None = None
    spark: dict[str, Any] | None = None
    databricks: dict[str, Any] | None = None
    inferencingStackVersion: str | None = None
    runyard: RunyardSection | None = None


# -- names -----------------------------------------------------------------------------------------------


def check_environment_name(name: Any) -> str:
    """v1's rule: 1 to 255 letters, digits, '-', '_' or '.', starting with a letter or digit; names that
    start with AzureML or Microsoft belong to curated environments and are refused."""
    if not isinstance(name, str) or not ENVIRONMENT_NAME.fullmatch(name):
        raise InvalidInputError(
            f"Environment name {shown(name) if isinstance(name, str) else repr(name)[:60]} is not valid: use "
            "1 to 255 letters, digits, '-', '_' or '.', starting with a letter or digit (e.g. 'train-env')."
        )
    for prefix in RESERVED_PREFIXES:
        if name.lower().startswith(prefix.lower()):
            raise InvalidInputError(
                f"Environment name {name!r} starts with {prefix!r}, which is reserved for curated "
                "environments and cannot be registered; clone it under your own name: "
                "env.clone('my-env').register(ws)"
            )
    return name


# -- definitions -----------------------------------------------------------------------------------------


def _plain(value: Any, where: str, depth: int = 0) -> Any:
    """A copy of `value` made of JSON's own types only (tuples become lists), or InvalidInputError naming
    the first thing JSON cannot carry unchanged: a non-text key, NaN, an object, too deep a nesting."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise InvalidInputError(f"{where} is nested deeper than {MAX_PAYLOAD_DEPTH} levels; flatten it.")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(
                f"{where} holds {value}, which is not a finite number; JSON cannot hold it."
            )
        return value
    if isinstance(value, Mapping):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where} has the key {key!r}; JSON object keys must be text.")
            copy[key] = _plain(item, f"{where}.{key}", depth + 1)
        return copy
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    raise InvalidInputError(
        f"{where} holds a {type(value).__name__} ({value!r:.60}); an environment definition is JSON: "
        "text, numbers, true/false, null, lists and objects only."
    )


def canonical_json(value: Any) -> str:
    """One spelling of a JSON value, whatever its key order (what the hash and the size limit read)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(definition: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `definition` without its name and version: the same environment
    registered under another name, or read back at another version, hashes the same."""
    body = {key: value for key, value in definition.items() if key not in UNHASHED_KEYS}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def _problems(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(part) for part in err["loc"]) or "the definition"
        message = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{loc}: {message}")
    return "; ".join(lines)


def _check_environment_variables(name: str, variables: Mapping[str, str]) -> None:
    for key, value in variables.items():
        if not key or "=" in key or "\x00" in key:
            raise InvalidInputError(
                f"Environment {name!r}: environment variable name {key!r:.60} is not valid; use a name "
                "without '=' or NUL characters (e.g. 'EXAMPLE_ENV_VAR')."
            )
        if "\x00" in value:
            raise InvalidInputError(
                f"Environment {name!r}: the value of environment variable {key!r} contains a NUL "
                "character (\\x00), which no process environment can hold; remove it."
            )


def validate_environment(name: Any, definition: Any, description: Any = None) -> tuple[str, dict[str, Any]]:
    """The checked name and a plain JSON copy of `definition` (unknown keys kept, "name" set to `name`),
    or InvalidInputError saying what is wrong and how to write it instead."""
    name = check_environment_name(name)
    if description is not None:
        check_text(f"The description of environment {name!r}", description)
    if not isinstance(definition, Mapping):
        raise InvalidInputError(
            f"The definition of environment {name!r} must be a JSON object (v1's environment JSON, as "
            f"Environment._serialize_to_dict writes it), got {type(definition).__name__}."
        )
    plain: dict[str, Any] = _plain(definition, f"Environment {name!r}: definition")
    given = plain.get("name")
    if given not in (None, name):
        raise InvalidInputError(
            f"The definition names environment {given!r:.60} but is registered as {name!r}; register it "
            f"under its own name, or clone it first: env.clone({name!r}).register(ws)"
        )
    plain["name"] = name
    size = len(canonical_json(plain).encode())
    if size > MAX_DEFINITION_BYTES:
        raise InvalidInputError(
            f"The definition of environment {name!r} is {size:,} bytes of JSON; the limit is "
            f"{MAX_DEFINITION_BYTES:,}. Keep long requirement lists in a requirements file and large "
            "settings out of the environment."
        )
    try:
        model = EnvironmentDefinitionModel.model_validate(plain)
    except ValidationError as exc:
        raise InvalidInputError(
            f"The definition of environment {name!r} is not valid: {_problems(exc)}. Write it as v1's "
            "environment JSON: python.condaDependencies.dependencies holds strings and {'pip': [...]}, "
            "environmentVariables maps text to text, python.interpreterPath is text."
        ) from None
    if model.environmentVariables:
        _check_environment_variables(name, model.environmentVariables)
    return name, plain
