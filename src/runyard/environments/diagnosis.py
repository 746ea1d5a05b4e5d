"""A job that failed on an import or a version conflict: which module, which PyPI package, which
environment, whether the package is in its requirements, which versions are where, and the one-line fix.

Why here: "No module named 'sklearn'" is the commonest way a job in a built environment fails, and the
traceback alone does not say that the package is called scikit-learn, that the environment never listed
it, or that the notebook that submitted the job has 1.5.0. The job supervisor calls `diagnose_failure`
in the interpreter that submitted the job, so "the version where the job was submitted" is this process's
own `importlib.metadata`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name as canonical

from runyard.environments.diagnosis_patterns import (
    BUILT_FOR_NUMPY1,
    CANNOT_IMPORT,
    CHAINED,
    EXCEPTION,
    KNOWN_PACKAGES,
    NEEDS_NEWER_NUMPY,
    NO_MODULE,
    NOT_FOUND,
    PKG_RESOURCES_CONFLICT,
    REQUIRED_BUT_FOUND,
    REQUIRES_BUT_HAVE,
)

#: Modules only runyard provides in a job: missing, they mean runyard is not importable there.
_RUNYARD_MODULES = ("azureml", "runyard")


def diagnose_failure(log_tail: Sequence[str], prepared: Any) -> dict[str, Any] | None:
    """The import or version problem at the end of a failed job's driver log, or None when there is none.

    `prepared` is the job's PreparedEnvironment (duck-typed: .plan.name/.hash/.requirements/.user_managed,
    .python, .location). Problems with the standard library or with the job's own source files get None:
    no package or environment change fixes them."""
    problem = _find_problem(log_tail)
    if problem is None:
        return None
    kind, module, package, detail = problem
    env = _EnvironmentView(prepared)
    top = module.split(".")[0] if module else None
    if top in _RUNYARD_MODULES and package is None:
        return _runyard_missing(env, str(module), detail)
    if module is not None and package is None:
        if top in sys.stdlib_module_names or top == "__main__":
            return None
        if detail.get("path") and not env.installed_file(detail["path"]):
            return None  # "cannot import name 'x' from 'mymodule' (/src/mymodule.py)": the job's own code
        package = _package_for(module, env)
    return env.finish(kind, top, package, detail, module)


def _find_problem(log_tail: Sequence[str]) -> tuple[str, str | None, str | None, dict[str, Any]] | None:
    """The import or version problem that ended the job: (kind, module, package, details). Only the last
    exception counts, and the ones it was chained from (a `raise RuntimeError("install x")` in an
    `except ImportError`); an import error the job survived earlier in the log does not."""
    blocked = False
    for raw in reversed(list(log_tail)):
        line = raw.strip()
        if line.startswith(CHAINED):
            blocked = False
        match = EXCEPTION.match(line)
        if match is None or blocked:
            continue
        found = _classify(match["exc"], (match["msg"] or "").strip())
        if found is not None:
            return found
        blocked = True
    for raw in log_tail:  # NumPy's warning comes before the traceback it causes (whose last line varies)
        if BUILT_FOR_NUMPY1 in raw:
            return "version-conflict", None, "numpy", {"requirement": "numpy<2", "have": None}
    return None


def _classify(exc: str, msg: str) -> tuple[str, str | None, str | None, dict[str, Any]] | None:
    numpy = NEEDS_NEWER_NUMPY.search(msg)
    if numpy is not None:
        detail = {"requirement": f"numpy>={numpy['need']}", "have": numpy["have"], "by": numpy["by"]}
        return "version-conflict", None, "numpy", detail
    conflict = REQUIRES_BUT_HAVE.search(msg) or REQUIRED_BUT_FOUND.search(msg)
    if exc.endswith("VersionConflict"):
        conflict = conflict or PKG_RESOURCES_CONFLICT.search(msg)
    if conflict is not None:
        detail = {"requirement": conflict["req"].strip(), "have": conflict["have"]}
        return "version-conflict", None, canonical(conflict["name"]), detail
    missing = NOT_FOUND.search(msg) if exc in ("DistributionNotFound", "PackageNotFoundError") else None
    if missing:
        req = missing["req"] or missing["name"]
        name = _requirement_name(req)
        return "missing-module", None, name, {"requirement": req if req != name else None}
    if exc not in ("ModuleNotFoundError", "ImportError"):
        return None
    no_module = NO_MODULE.match(msg)
    if no_module:
        return "missing-module", no_module["module"], None, {}
    cannot = CANNOT_IMPORT.match(msg)
    if cannot and "partially initialized module" not in msg:
        path = cannot["path"] if cannot["path"] and cannot["path"] != "unknown location" else None
        return "import-error", cannot["module"], None, {"name": cannot["name"], "path": path}
    return None


def _runyard_missing(env: _EnvironmentView, module: str, detail: dict[str, Any]) -> dict[str, Any]:
    """`azureml.*` / `runyard.*` not found: never a file to add to the source directory. Either runyard
    itself is missing where the job ran, or it lacks that part of the v1 SDK."""
    d = env.finish("missing-module", module.split(".")[0], "runyard", detail, module)
    itself = module in _RUNYARD_MODULES or module == "runyard.v1" or "runyard is not installed" in str(detail)
    if itself and env.user_managed:
        d["fix"] = (
            f"{shlex.quote(env.python)} -m pip install runyard, or set "
            "python.user_managed_dependencies=False to let runyard build the environment"
        )
    elif itself:
        d["fix"] = (
            "remove the environment's build (`runyard env prune --older-than 0`) so that it is built again with runyard's layer"
        )
    else:
        d["fix"] = (
            f"'{module}' is a part of the Azure ML SDK v1 that runyard does not provide yet "
            "(docs/v1-surface.md lists what it provides): use another API or port that code"
        )
    what = "runyard is not importable" if itself else f"runyard.v1 has no module for '{module}'"
    d["summary"] = f"The job failed importing '{module}': {what} in {env.where()}. Fix: {d['fix']}"
    return d


def _requirement_name(req: str) -> str:
    return canonical(re.split(r"[\s\[<>=!~;@(]", req.strip(), maxsplit=1)[0])


def _package_for(module: str, env: _EnvironmentView) -> str | None:
    """The distribution that provides `module`: this interpreter's metadata, the environment's, the
    table of well-known names, then a requirement of the environment named like the module."""
    top = module.split(".")[0]
    here = metadata.packages_distributions().get(top)
    if here:
        return canonical(_narrow(module, here, list(metadata.distributions())))
    there = env.top_levels().get(top)
    if there:
        return canonical(_narrow(module, there, env.distributions))
    for name in (module, top):
        if name in KNOWN_PACKAGES:
            return canonical(KNOWN_PACKAGES[name])
    if canonical(top) in env.requirement_names():
        return canonical(top)
    return None


def _narrow(module: str, names: list[str], dists: Iterable[metadata.Distribution]) -> str:
    """Of several distributions sharing a top-level name (namespace packages like `google`), the one
    whose files hold the module's own folder."""
    if len(names) == 1 or "." not in module:
        return names[0]
    folder = "/".join(module.split(".")[:2])
    wanted = {canonical(n) for n in names}
    for dist in dists:
        files = (dist.files or []) if canonical(dist.metadata["Name"] or "") in wanted else []
        if any(str(f).startswith(folder + "/") or str(f) == folder + ".py" for f in files):
            return str(dist.metadata["Name"])
    return names[0]


class _EnvironmentView:
    """What the job's environment holds, read from its site-packages metadata (never by importing)."""

    def __init__(self, prepared: Any) -> None:
        plan = prepared.plan
        self.name: str = plan.name or ""
        self.hash: str = plan.hash or ""
        self.requirements: tuple[str, ...] = tuple(plan.requirements)
        self.user_managed: bool = bool(plan.user_managed)
        self.python: str = prepared.python or plan.interpreter or sys.executable
        self.location: str = prepared.location or ""

    def requirement_names(self) -> dict[str, str]:
        return {_requirement_name(r): r for r in self.requirements if not r.startswith("-")}

    @cached_property
    def distributions(self) -> list[metadata.Distribution]:
        return list(metadata.distributions(path=self.paths))

    def installed_file(self, path: str) -> bool:
        """Whether a module file is an installed package's (site-packages, or a folder a .pth adds like
        runyard's layer), not the job's own source."""
        if any(part in ("site-packages", "dist-packages") for part in Path(path).parts):
            return True
        own = ("", ".", os.getcwd())  # where this process was started is no package folder
        return any(Path(path).is_relative_to(folder) for folder in self.paths if folder not in own)

    @cached_property
    def paths(self) -> list[str]:
        if self.location:
            found = sorted(Path(self.location).glob("lib/python*/site-packages"))
            found += [p for p in (Path(self.location) / "Lib" / "site-packages",) if p.is_dir()]
            return [str(p) for p in found] + [str(p) for site in found for p in _pth_folders(site)]
        if _same_file(self.python, sys.executable):
            return list(sys.path)
        try:  # a user-managed interpreter that is not this one: ask it where it looks
            out = subprocess.run(
                [self.python, "-c", "import json, sys; print(json.dumps(sys.path))"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            return [p for p in json.loads(out.stdout) if p] if out.returncode == 0 else []
        except (OSError, ValueError, subprocess.SubprocessError):
            return []

    def top_levels(self) -> dict[str, list[str]]:
        index: dict[str, list[str]] = {}
        for dist in self.distributions:
            name = dist.metadata["Name"]
            if not name:
                continue
            tops = (dist.read_text("top_level.txt") or "").split() or _inferred_tops(dist)
            for top in tops:
                index.setdefault(top, []).append(name)
        return index

    def version(self, package: str) -> str | None:
        for dist in self.distributions:
            if canonical(dist.metadata["Name"] or "") == package:
                return str(dist.version)
        return None

    def where(self) -> str:
        if self.user_managed and self.name:
            return f"the interpreter {self.python} (environment '{self.name}': user-managed dependencies)"
        if self.user_managed:
            return f"the interpreter {self.python} (the job names no environment and runs with it as it is)"
        return f"environment '{self.name or 'unnamed'}'"

    def finish(
        self, kind: str, module: str | None, package: str | None, detail: dict[str, Any], full: str | None
    ) -> dict[str, Any]:
        """The diagnosis record: fields, the fix and the summary paragraph."""
        listed = self.requirement_names()
        d: dict[str, Any] = {
            "kind": kind,
            "module": module,
            "package": package,
            "environment": self.name,
            "environmentHash": self.hash,
            "userManaged": self.user_managed,
            "interpreter": self.python,
            "inRequirements": package is not None and package in listed,
            "listedAs": listed.get(package) if package else None,
            "requirement": detail.get("requirement"),
            "environmentVersion": (self.version(package) if package else None) or detail.get("have"),
            "submittedVersion": _submitted_version(package) if package else None,
        }
        d["fix"] = self._fix(d, detail, full or module)
        if detail.get("by"):  # "pyarrow requires NumPy 2.0 or newer": the other way out is an older pyarrow
            d["fix"] += f", or pin a {detail['by']} version built for NumPy {detail.get('have')}"
        d["summary"] = self._summary(d, detail, full or module)
        return d

    def _fix(self, d: dict[str, Any], detail: dict[str, Any], full: str | None) -> str:
        package, submitted, env_version = d["package"], d["submittedVersion"], d["environmentVersion"]
        if package is None:
            path = str(full).replace(".", "/")
            return (
                f"add {path}.py (or the folder {path}/) to the source directory, or add the package "
                f"that provides '{full}': env.python.conda_dependencies.add_pip_package('<package>')"
            )
        wanted = f"{package}=={submitted}" if submitted and submitted != env_version else package
        spec = detail.get("requirement")
        if d["kind"] == "version-conflict" and spec and not (submitted and _satisfies(spec, submitted)):
            wanted = spec
        if self.user_managed:
            return f"{shlex.quote(self.python)} -m pip install {shlex.quote(wanted)}"
        if env_version is None and not d["inRequirements"]:
            return f"env.python.conda_dependencies.add_pip_package('{wanted}')"
        has = f" (it has {env_version})" if env_version else " (it is not installed there)"
        if wanted == package:  # nothing known to be better: say what to look for
            what = detail.get("name") or full
            return f"pin a version of {package} that provides '{what}' in {self.where()}{has}"
        return f"pin '{wanted}' in {self.where()}{has}"

    def _summary(self, d: dict[str, Any], detail: dict[str, Any], full: str | None) -> str:
        package, submitted, env_version = d["package"], d["submittedVersion"], d["environmentVersion"]
        where = self.where()
        if self.hash and not self.user_managed:
            reqs = list(self.requirements)
            shown = ", ".join(reqs[:10]) + (f" and {len(reqs) - 10} more" if len(reqs) > 10 else "")
            where += f" (hash {self.hash[:12]}; its requirements: {shown or 'none'})"
        if d["kind"] == "version-conflict":
            text = (
                f"The job failed on a version conflict: it needs {detail.get('requirement')}, "
                f"but {where} has {package} {env_version or detail.get('have') or '(another version)'}."
            )
        elif package is None:
            text = (
                f"The job failed importing '{full}': no installed package provides '{full}'; "
                "is it a file missing from the source directory?"
            )
        elif d["kind"] == "import-error":
            text = (
                f"The job failed importing '{detail.get('name')}' from '{full}': {package} "
                f"{env_version or '(not installed)'} in {where} does not provide it."
            )
        elif env_version is None:
            state = "is listed but not installed in" if d["inRequirements"] else "is not in"
            text = f"The job failed importing '{d['module']}': package {package} {state} {where}."
        else:
            text = (
                f"The job failed importing '{full}': {where} has {package} {env_version}, "
                "which does not provide it."
            )
        if package is not None and not (self.user_managed and _same_file(self.python, sys.executable)):
            same = " too" if submitted == env_version else ""
            text += (
                f" The interpreter that submitted the job has {package} {submitted}{same}."
                if submitted
                else f" The interpreter that submitted the job does not have {package} either."
            )
        return f"{text} Fix: {d['fix']}"


def _submitted_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _satisfies(spec: str, version: str) -> bool:
    from packaging.requirements import InvalidRequirement, Requirement  # only when diagnosing

    try:
        return Requirement(spec).specifier.contains(version, prereleases=True)
    except InvalidRequirement:
        return False


def _inferred_tops(dist: metadata.Distribution) -> list[str]:
    """Top-level import names from a distribution's file list, for wheels without top_level.txt."""
    tops: set[str] = set()
    for f in dist.files or []:
        parts = f.parts
        if not parts or parts[0] in ("..", "__pycache__") or parts[0].endswith((".dist-info", ".data")):
            continue
        if len(parts) > 1:
            tops.add(parts[0])
        elif f.suffix in (".py", ".so", ".pyd"):
            tops.add(parts[0].split(".")[0])
    return sorted(tops)


def _pth_folders(site: Path) -> list[Path]:
    """Folders the site-packages' .pth files add to sys.path, as `site` reads them (runyard's own layer
    of its dependencies is one: what it holds is importable in the environment too)."""
    folders: list[Path] = []
    for pth in sorted(site.glob("*.pth")):
        with contextlib.suppress(OSError):
            for line in pth.read_text(encoding="utf-8", errors="replace").splitlines():
                folder = site / line.strip()
                if line.strip() and not line.startswith(("#", "import ", "import\t")) and folder.is_dir():
                    folders.append(folder.resolve())
    return folders


def _same_file(a: str, b: str) -> bool:
    with contextlib.suppress(OSError):
        return os.path.samefile(a, b)
    return a == b


def diagnosis_rows(diagnosis: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The lines the studio's run page and `runyard runs show` print for a diagnosis, in order."""
    kind = {"missing-module": "missing module", "import-error": "import error"}.get(
        str(diagnosis.get("kind")), "version conflict"
    )
    if diagnosis.get("userManaged"):
        name, interpreter = diagnosis.get("environment"), diagnosis.get("interpreter")
        environment = f"{name}: {interpreter} (user-managed)" if name else f"{interpreter} (no environment)"
    else:
        environment = f"{diagnosis.get('environment') or 'unnamed'}"
        if diagnosis.get("environmentHash"):
            environment += f" (hash {str(diagnosis['environmentHash'])[:12]})"
    package = diagnosis.get("package") or "no installed package provides it"
    listed = diagnosis.get("listedAs")
    in_requirements = f"yes: {listed}" if listed else "yes" if diagnosis.get("inRequirements") else "no"
    rows = [
        ("Problem", kind),
        ("Module", str(diagnosis.get("module") or "-")),
        ("Package", str(package)),
        ("Environment", environment),
        ("In requirements", in_requirements),
        ("Version in environment", str(diagnosis.get("environmentVersion") or "not installed")),
        ("Version where submitted", str(diagnosis.get("submittedVersion") or "not installed")),
        ("Fix", str(diagnosis.get("fix") or "")),
    ]
    if diagnosis.get("requirement"):
        rows.insert(3, ("Required by the job", str(diagnosis["requirement"])))
    return rows
