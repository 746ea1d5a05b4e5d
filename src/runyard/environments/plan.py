"""v1's environment JSON -> a BuildPlan: the pip requirements, the Python interpreter and a content hash.

The hash is what decides whether two runs share one built environment, so it covers exactly what the built
environment contains: the normalised requirements, pip options, Python major.minor and platform. The name,
version, environment variables and docker settings are left out, as v1 leaves them out of its image hash.

Planning runs for every step of every pipeline, so it does no subprocess and no metadata scan when the
environment uses the current interpreter; parsed requirement lines are memoised.

A local wheel or folder (`name @ file:///...`, a --find-links folder) enters the hash by its content
(conda_map.local_fingerprint: a memoised sha256, a folder's listing), since its path alone says nothing of
what gets installed. `pip_options` are "--name value" strings (or a lone "--flag") whose value conda_map
guarantees to be one token (no whitespace, quotes or backslashes, not starting with '-'), so build.py's
`shlex.split` of one yields exactly [name, value]. What is meant to be read (notes, summary(), errors) has the
credentials of every URL masked (redact.redact_urls); `requirements` and `pip_options` keep them, for uv.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

import runyard
from runyard.environments import interpreters
from runyard.environments.conda_map import (
    CondaSpecError,
    azureml_brings,
    conda_to_pip,
    local_fingerprint,
    pip_line_requirement,
    pip_option,
    vcs_problem,
)
from runyard.environments.definition import conda_dependencies_of, requirement_origin
from runyard.environments.redact import redact_urls
from runyard.errors import EnvironmentDefinitionError

_RUNYARD_MIN = (3, 11)
#: Options whose value may name a local folder or file the build reads packages from.
_LOCAL_OPTIONS = ("--find-links", "--index-url", "--extra-index-url")


@dataclass(frozen=True)
class BuildPlan:
    """What to build for one environment definition (see docs/environments.md)."""

    name: str
    hash: str
    python: str
    interpreter: str
    requirements: tuple[str, ...]
    pip_options: tuple[str, ...]
    satisfied_by_runyard: tuple[str, ...]
    notes: tuple[str, ...]
    user_managed: bool

    def summary(self) -> dict[str, Any]:
        """JSON for a step's material and run records (readable by every read token: URL credentials
        masked; the hash still tells two credentials apart)."""
        return {
            "name": self.name,
            "hash": self.hash,
            "python": self.python,
            "requirements": [redact_urls(r) for r in self.requirements],
            "userManaged": self.user_managed,
        }


@dataclass(frozen=True)
class _Parsed:
    text: str  # canonical rendering
    name: str  # canonical name
    exact: str | None  # the version of a single `==` pin without wildcard
    bare: bool  # name only: no version, extras, marker or URL
    url: str | None  # `name @ URL`


@functools.lru_cache(maxsize=4096)
def _parse(line: str) -> _Parsed:
    """One pip requirement line -> its canonical form. Raises InvalidRequirement."""
    req = Requirement(line)
    req.name = canonicalize_name(req.name)
    specs = list(req.specifier)
    exact = specs[0].version if len(specs) == 1 and specs[0].operator == "==" else None
    if exact is not None and exact.endswith(".*"):
        exact = None
    bare = not specs and not req.extras and req.marker is None and req.url is None
    return _Parsed(text=str(req), name=req.name, exact=exact, bare=bare, url=req.url)


def _is_azureml(name: str) -> bool:
    canonical = canonicalize_name(name)
    return canonical == "azureml" or canonical.startswith("azureml-")


def _platform() -> str:
    return f"{sys.platform}-{platform.machine()}"


def _content_hash(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _as_is(name: str, interpreter: str, python: str, notes: tuple[str, ...] = ()) -> BuildPlan:
    """A plan that builds nothing: run `interpreter` as it is."""
    return BuildPlan(name, "", python, interpreter, (), (), (), notes, user_managed=True)


def _user_managed(name: str, interpreter_path: str) -> BuildPlan:
    """userManagedDependencies: run the given interpreter as it is, build nothing."""
    if interpreter_path in ("", "python", "python3"):
        found: str | None = sys.executable
    else:
        path = Path(interpreter_path).expanduser()
        found = str(path) if path.is_absolute() and path.exists() else shutil.which(interpreter_path)
    if not found:
        raise EnvironmentDefinitionError(
            f"Environment {name!r} has user-managed dependencies with interpreterPath {interpreter_path!r}, "
            "which does not exist on this machine. Set env.python.interpreter_path to an existing "
            "Python executable (an absolute path or a name on PATH)."
        )
    version = interpreters.version_of(found) or interpreters.current_version()
    return _as_is(name, found, version, (f"user-managed dependencies: running {found} as it is",))


@functools.lru_cache(maxsize=64)
def _find(version: str) -> str | None:
    return interpreters.find_interpreter(version)


def _choose_python(name: str, spec: str | None) -> tuple[str, str, list[str]]:
    """(major.minor, interpreter path, notes) for a conda `python` spec (None: not given)."""
    current = interpreters.current_version()
    if not spec:
        return current, sys.executable, []
    match = re.match(r"^==\s*(\d+)\.(\d+)", spec)
    if not match:
        try:
            accepted = SpecifierSet(spec).contains(".".join(map(str, sys.version_info[:3])))
        except InvalidSpecifier:
            accepted = False
        if not accepted:
            raise EnvironmentDefinitionError(
                f"Environment {name!r} asks for python{spec}, which the current Python {current} does not "
                "satisfy. Ask for one version (python=3.12) that is installed on this machine."
            )
        return current, sys.executable, []
    wanted = f"{match.group(1)}.{match.group(2)}"
    if wanted == current:
        return current, sys.executable, []
    if (int(match.group(1)), int(match.group(2))) < _RUNYARD_MIN:
        return (
            current,
            sys.executable,
            [
                f"Python {wanted} requested: jobs need Python 3.11 or newer for runyard to provide "
                f"azureml's API, so this environment uses Python {current} ({sys.executable})"
            ],
        )
    found = _find(wanted)
    if found is None:
        versions = ", ".join(interpreters.found_versions()) or "none"
        raise EnvironmentDefinitionError(
            f"Environment {name!r} asks for Python {wanted}, which is not installed on this machine "
            f"(found: {versions}). Install it (for example `pyenv install {wanted}`), or change the "
            "environment's python version (CondaDependencies python_version / python=3.x)."
        )
    return wanted, found, [f"Python {wanted}: {found}"]


def _azureml_notes(satisfied: list[str], by_name: dict[str, list[_Parsed]]) -> list[str]:
    """A note per azureml-* requirement runyard stands in for; the third-party packages such a package
    brought in v1 (conda_map.azureml_brings: azureml-mlflow's mlflow client, the pandas below 3 of
    azureml-dataprep[pandas]) join `by_name` unless the
    environment lists them (or what covers them) itself."""
    notes = []
    for text in satisfied:
        provided = f"{text}: provided by runyard {runyard.__version__}"
        brings = azureml_brings(text)
        if brings is None:
            notes.append(f"{provided} (not installed from the index)")
        elif listed := [n for n in brings.covered_by if n in by_name]:
            notes.append(f"{provided}; {brings.what} is the environment's own {listed[0]}")
        else:
            for requirement in brings.requirements:
                by_name.setdefault(_parse(requirement).name, [_parse(requirement)])
            notes.append(f"{provided}; {brings.what} comes from {', '.join(brings.requirements)}")
    return notes


def plan_environment(definition: Mapping[str, Any] | None) -> BuildPlan:
    """Turn an environment definition (v1's JSON) into a BuildPlan. None -> run the current interpreter as is.

    Raises EnvironmentDefinitionError for what cannot be built as written: a conda package PyPI does not
    have, an unreadable requirement, two different pins of one package, a Python version not installed."""
    if definition is None:
        return _as_is("", sys.executable, interpreters.current_version())
    name = str(definition.get("name") or "")
    python_section = definition.get("python") or {}
    if python_section.get("userManagedDependencies"):
        return _user_managed(name, str(python_section.get("interpreterPath") or "python"))
    conda = conda_dependencies_of(name, python_section)

    notes: list[str] = []
    lines: list[tuple[str, str | int]] = []  # (pip requirement, where it came from: text or pip list index)
    options: list[str] = []
    conda_only: list[str] = []
    python_spec: str | None = None
    for item in conda.get("dependencies") or []:
        if isinstance(item, str):
            conda_name = re.split(r"[=<>!~\s\[]", item.split("::")[-1].strip(), maxsplit=1)[0]
            if _is_azureml(conda_name):
                lines.append((conda_name, f"conda dependency {item!r}"))
                continue
            try:
                spec = conda_to_pip(item)
            except CondaSpecError as exc:
                raise EnvironmentDefinitionError(
                    f"Environment {name!r}: cannot read the conda dependency {redact_urls(item)!r}: {exc}."
                ) from exc
            if spec.conda_only:
                conda_only.append(item)
            elif spec.python is not None:
                python_spec = spec.python
            if spec.note:
                notes.append(spec.note)
            if spec.pip:
                lines.append((spec.pip, f"conda dependency {item!r}"))
        elif isinstance(item, Mapping) and "pip" in item:
            for index, raw in enumerate(item["pip"] or []):
                line = str(raw).split(" #", 1)[0].strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith("-"):
                    option = pip_option(name, " ".join(line.split()))
                    if option is not None and option not in options:
                        options.append(option)
                    continue
                lines.append((pip_line_requirement(line), index))
        else:
            raise EnvironmentDefinitionError(
                f"Environment {name!r}: the conda dependency {redact_urls(repr(item))} is neither a package spec nor a "
                '{"pip": [...]} list.'
            )
    if conda_only:
        raise EnvironmentDefinitionError(
            f"Environment {name!r} lists conda packages that are not on PyPI under a name runyard knows: "
            f"{', '.join(conda_only)}. runyard builds environments from pip packages (conda is not used): "
            "move each one to the pip packages under its PyPI name if PyPI has it, or drop it (the PyPI "
            "wheels of torch and tensorflow bring their own CUDA libraries)."
        )

    by_name: dict[str, list[_Parsed]] = {}
    local: dict[str, str] = {}  # local wheel / folder -> what it holds (conda_map.local_fingerprint)
    satisfied: list[str] = []
    for line, where in lines:
        try:
            parsed = _parse(line)
        except InvalidRequirement as exc:
            vcs = vcs_problem(line)
            how = (
                ""
                if vcs
                else " Write requirements as pip does, for example 'scikit-learn==1.0' or 'numpy>=1.21'."
            )
            raise EnvironmentDefinitionError(
                f"Environment {name!r}: cannot read the pip requirement {redact_urls(line)!r} "
                f"({requirement_origin(definition, line, where)}): {redact_urls(vcs or str(exc))}.{how}"
            ) from exc
        if _is_azureml(parsed.name):
            if parsed.text not in satisfied:
                satisfied.append(parsed.text)
            continue
        if parsed.url and "+" in parsed.url.split("://", 1)[0] and parsed not in by_name.get(parsed.name, ()):
            notes.append(
                f"{parsed.text}: installed from version control; the build is reused while this line is "
                "unchanged, so name a tag or commit rather than a branch"
            )
        group = by_name.setdefault(parsed.name, [])
        if parsed not in group:
            group.append(parsed)
    notes += _azureml_notes(satisfied, by_name)
    requirements: list[str] = []
    for package, group in by_name.items():
        pins = sorted({p.exact for p in group if p.exact is not None})
        if len(pins) > 1:
            both = redact_urls(" and ".join(p.text for p in group if p.exact is not None))
            raise EnvironmentDefinitionError(
                f"Environment {name!r} pins {package} to different versions: {both}. Keep one of them."
            )
        kept = [p for p in group if not p.bare] or group[:1]
        requirements += [p.text for p in kept]
        local.update({p.url: f for p in kept if p.url and (f := local_fingerprint(p.url)) is not None})
    requirements.sort()
    for option in options:  # a local --find-links folder or file: index: its listing
        head, _, value = option.partition(" ")
        if value and head in _LOCAL_OPTIONS and (found := local_fingerprint(value)) is not None:
            local[value] = found

    python, interpreter, python_notes = _choose_python(name, python_spec)
    notes = python_notes + notes
    inputs: dict[str, Any] = {
        "v": 1,
        "python": python,
        "platform": _platform(),
        "requirements": requirements,
        "pip_options": options,
    }
    if python != interpreters.current_version():
        # runyard's own requirements are installed into such an environment (layer.py)
        inputs["runyard"] = runyard.__version__
    if local:  # only then, so the hash of every other environment stays what it was
        inputs["local"] = local
    return BuildPlan(
        name=name,
        hash=_content_hash(inputs),
        python=python,
        interpreter=interpreter,
        requirements=tuple(requirements),
        pip_options=tuple(options),
        satisfied_by_runyard=tuple(sorted(redact_urls(s) for s in satisfied)),
        notes=tuple(redact_urls(note) for note in notes),
        user_managed=False,
    )


def _shown(requirement: str) -> tuple[str, str]:
    """'scikit-learn==1.4' -> ('scikit-learn', '1.4'); other specifiers shown whole."""
    try:
        parsed = _parse(requirement)
    except InvalidRequirement:
        return requirement, requirement
    shown = parsed.text[len(parsed.name) :]
    return parsed.name, parsed.exact if parsed.exact is not None and shown == f"=={parsed.exact}" else shown


def requirement_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[str]:
    """What changed between two BuildPlan summaries, in words: ["scikit-learn 1.4 → 1.5", "added tabulate",
    "removed numpy", "Python 3.11 → 3.12"]. Empty when nothing that matters changed."""
    old, new = old or {}, new or {}
    changes: list[str] = []
    if old.get("python") and new.get("python") and old["python"] != new["python"]:
        changes.append(f"Python {old['python']} → {new['python']}")
    if bool(old.get("userManaged")) != bool(new.get("userManaged")):
        changes.append("user-managed → built" if old.get("userManaged") else "built → user-managed")

    def grouped(summary: Mapping[str, Any]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for requirement in summary.get("requirements") or []:
            package, shown = _shown(str(requirement))
            groups.setdefault(package, []).append(shown)
        return groups

    before, after = grouped(old), grouped(new)
    for package in sorted(before.keys() | after.keys()):
        was, now = before.get(package), after.get(package)
        if was == now:
            continue
        if was is None:
            changes.append(f"added {package}{_versions(now)}")
        elif now is None:
            changes.append(f"removed {package}")
        else:
            changes.append(f"{package} {_versions(was).strip() or 'any'} → {_versions(now).strip() or 'any'}")
    if not changes and old.get("hash") != new.get("hash"):
        changes.append("pip options or platform changed")
    return changes


def _versions(shown: list[str] | None) -> str:
    text = ", ".join(s for s in shown or [] if s)
    if not text:
        return ""
    return text if text[0] in "<>=!~[;@" else " " + text
