"""`runyard env list | show NAME[:VERSION] | build NAME[:VERSION] | prune`

Environments as a user meets them on the command line: which ones the workspace has (registered, and the
curated names runyard resolves locally), what one installs once its conda spec is mapped to pip, building
one ahead of the first run, and freeing the disk that old builds hold. The work is done by
runyard.environments (Environment.get, plan_environment, prepare_environment, list_builds, remove_build);
this module only parses arguments and renders. Errors are RunyardErrors, which cli/main.py turns into one
"Error: ..." line and exit code 1.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import typer
from rich.filesize import decimal
from rich.markup import escape

from runyard import Workspace
from runyard.cli import runs
from runyard.cli.render import console, err_console, print_json, table, when
from runyard.environments.redact import redact_urls
from runyard.errors import EnvironmentBuildError, InvalidInputError, RunyardError

env_app = typer.Typer(
    help="Environments: registered and curated ones, their builds, and the build cache.", no_args_is_help=True
)
LOG_TAIL_LINES = 30


def _workspace() -> Workspace:
    """The workspace `-w/--workspace` names (cli/main.py stores it on cli/runs.py), else the nearest one."""
    return Workspace.get(runs.workspace_path) if runs.workspace_path else Workspace.from_config()


def parse_reference(reference: str) -> tuple[str, str | None]:
    """'train-env:3' -> ('train-env', '3'); 'train-env' -> ('train-env', None). Environment names never
    hold ':', so the last ':' separates the version."""
    name, sep, version = reference.rpartition(":")
    if not sep:
        return reference, None
    if not name or not version.isdigit():
        raise InvalidInputError(
            f"{reference!r} is not NAME or NAME:VERSION (e.g. 'train-env' or 'train-env:3'); versions are "
            "whole numbers."
        )
    return name, version


def _redacted(value: Any) -> Any:
    """`value` (a definition, a list of pip options) with every URL's credentials masked: a definition's
    pip options and requirements may name a private index as https://user:token@host/simple, and what
    `runyard env` prints ends up in terminals, CI logs and issue reports."""
    if isinstance(value, str):
        return redact_urls(value)
    if isinstance(value, Mapping):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _definition(reference: str) -> dict[str, Any]:
    """The environment JSON of a registered (or curated) environment."""
    from runyard.environments import Environment
    from runyard.environments.definition import environment_definition

    name, version = parse_reference(reference)
    env = Environment.get(_workspace(), name, version)
    definition = environment_definition(env)
    if definition is None:  # an Environment always has a definition; this guards a contract change
        raise InvalidInputError(f"Environment {reference!r} has no definition to show or build.")
    return definition


def _built_hashes() -> dict[str, Any]:
    """The finished builds by hash; none when the cache cannot be trusted (building says why)."""
    from runyard.environments.build import list_builds

    try:
        return {build.hash: build for build in list_builds()}
    except EnvironmentBuildError:
        return {}


def _plan_row(name: str, definition: Mapping[str, Any], builds: Mapping[str, Any]) -> dict[str, Any]:
    """python, number of requirements and built? for a table row. A definition that cannot be planned on
    this machine (a conda-only package, a Python version it lacks) says so in its row instead of failing
    the whole listing; `runyard env show NAME` gives the full reason."""
    from runyard.environments.plan import plan_environment

    try:
        plan = plan_environment(definition)
    except RunyardError as exc:
        return {
            "python": "?",
            "requirements": "?",
            "built": f"cannot build: `runyard env show {name}`",
            "problem": str(exc),
        }
    if plan.user_managed:
        return {"python": plan.python, "requirements": "-", "built": "user-managed", "hash": ""}
    built = "yes" if plan.hash in builds else "no"
    return {
        "python": plan.python,
        "requirements": str(len(plan.requirements)),
        "built": built,
        "hash": plan.hash,
    }


@env_app.command("list")
def list_environments(
    curated_too: bool = typer.Option(False, "--curated", help="Also list the curated environments."),
    builds_only: bool = typer.Option(False, "--builds", help="List the build cache instead."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List registered environments (the latest version of each), and with --curated the curated table."""
    if builds_only:
        _list_builds(as_json)
        return
    builds = _built_hashes()
    records = _workspace().store.list_environments()
    rows: list[dict[str, Any]] = []
    for record in records:
        base: dict[str, Any] = {
            "name": record.name,
            "version": record.version,
            "created": record.created_time,
        }
        rows.append({**base, **_plan_row(record.name, record.definition, builds), "kind": "registered"})
    if curated_too:
        from runyard.environments.curated import CURATED, curated_definition

        for name, entry in CURATED.items():
            base = {"name": name, "version": 1, "created": None}
            planned = _plan_row(name, curated_definition(name), builds)
            rows.append({**base, **planned, "kind": "curated", "description": entry.description})
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print(
            "No environments registered yet. Register one with env.register(ws); "
            "`runyard env list --curated` shows the curated ones."
        )
        return
    out = table("Name", "Version", "Python", "Requirements", "Built", "Created", "Kind")
    out.columns[0].min_width = min(40, max(len(row["name"]) for row in rows))  # names are never squeezed away
    for row in rows:
        out.add_row(
            escape(row["name"]),
            str(row["version"]),
            row["python"],
            row["requirements"],
            escape(row["built"]),
            when(row["created"]),
            row["kind"],
        )
    console.print(out)


def _list_builds(as_json: bool) -> None:
    from runyard.environments.build import cache_dir, list_builds, list_leftovers

    builds = sorted(list_builds(), key=lambda b: b.last_used, reverse=True)
    leftovers = list_leftovers()
    if as_json:
        print_json(
            [
                {
                    "hash": b.hash,
                    "name": b.name,
                    "python": b.python,
                    "requirements": _redacted(b.requirements),
                    "location": b.location,
                    "created": b.created,
                    "lastUsed": b.last_used,
                    "sizeBytes": b.size_bytes,
                }
                for b in builds
            ]
        )
        return
    if leftovers:  # killed builds and removals (or ones running now): prune removes the dead ones
        console.print(
            f"{len(leftovers)} unfinished build or removal folders ({decimal(sum(x.size_bytes for x in leftovers))})"
            " are in the cache; `runyard env prune` removes those no process is working on."
        )
    if not builds:
        console.print(f"No environment builds in {escape(str(cache_dir()))}.")
        return
    out = table("Hash", "Name", "Python", "Requirements", "Size", "Last used", "Location")
    for b in builds:
        out.add_row(
            b.hash[:12],
            escape(b.name),
            b.python,
            str(len(b.requirements)),
            decimal(b.size_bytes),
            when(b.last_used),
            escape(b.location),
        )
    console.print(out)
    console.print(
        f"{len(builds)} builds, {decimal(sum(b.size_bytes for b in builds))} in {escape(str(cache_dir()))}"
    )


@env_app.command("show")
def show(
    reference: str = typer.Argument(
        ..., metavar="NAME[:VERSION]", help="A registered or curated environment."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Show what an environment installs: its pip requirements after mapping, Python, hash, build."""
    from runyard.environments.plan import plan_environment

    definition = _definition(reference)
    plan = plan_environment(definition)
    build = _built_hashes().get(plan.hash) if plan.hash else None
    variables = _redacted(dict(definition.get("environmentVariables") or {}))  # PIP_INDEX_URL=https://u:t@...
    if as_json:
        print_json(
            {
                "name": definition.get("name"),
                "version": definition.get("version"),
                "plan": plan.summary(),
                "interpreter": plan.interpreter,
                "pipOptions": _redacted(plan.pip_options),
                "satisfiedByRunyard": list(plan.satisfied_by_runyard),
                "notes": list(plan.notes),
                "build": build.location if build else None,
                "environmentVariables": variables,
                "definition": _redacted(definition),
            }
        )
        return
    lines = [f"[bold]Environment {escape(_display(definition))}[/]"]
    lines.append(f"Python:       {escape(plan.python)} ({escape(plan.interpreter)})")
    if plan.user_managed:
        lines.append("Dependencies: user-managed: jobs run this interpreter as is; nothing is built.")
    else:
        lines.append(f"Hash:         {plan.hash}")
        if build is not None:
            lines.append(
                f"Built:        yes, in {escape(build.location)} ({decimal(build.size_bytes)}, "
                f"last used {when(build.last_used)})"
            )
        else:
            lines.append(f"Built:        no; `runyard env build {escape(reference)}` builds it now")
        lines.append(f"Requirements ({len(plan.requirements)}, after mapping):")
        lines.extend(f"  {escape(redact_urls(req))}" for req in plan.requirements or ("(none)",))
        if plan.pip_options:
            lines.append("Pip options:")
            lines.extend(f"  {escape(redact_urls(opt))}" for opt in plan.pip_options)
    if plan.satisfied_by_runyard:
        lines.append("Satisfied by runyard (never installed from the index):")
        lines.extend(f"  {escape(req)}" for req in plan.satisfied_by_runyard)
    if plan.notes:
        lines.append("Notes:")
        lines.extend(f"  - {escape(note)}" for note in plan.notes)
    if variables:
        lines.append("Environment variables:")
        lines.extend(f"  {escape(key)}={escape(str(value))}" for key, value in sorted(variables.items()))
    console.print("\n".join(lines), soft_wrap=True)


def _display(definition: Mapping[str, Any]) -> str:
    from runyard.environments.definition import definition_display_name

    return definition_display_name(definition)


@env_app.command("build")
def build(
    reference: str = typer.Argument(
        ..., metavar="NAME[:VERSION]", help="A registered or curated environment."
    ),
) -> None:
    """Build an environment's virtual environment now (or say which cached build it reuses)."""
    from runyard.environments.build import prepare_environment
    from runyard.environments.plan import plan_environment

    definition = _definition(reference)
    plan = plan_environment(definition)
    shown = escape(_display(definition))
    if plan.user_managed:
        console.print(
            f"Environment {shown} is user-managed: jobs run {escape(plan.interpreter)} as is; nothing to build."
        )
        return
    console.print(
        f"Environment {shown}: hash {plan.hash[:12]}, Python {plan.python}, {len(plan.requirements)} requirements"
    )
    for note in plan.notes:
        console.print(f"  {escape(note)}", style="dim")

    def say(line: str) -> None:
        console.print(escape(line))

    try:
        prepared = prepare_environment(plan, say=say)
    except EnvironmentBuildError as exc:
        tail = [line for line in (exc.log or "").splitlines() if line.strip()][-LOG_TAIL_LINES:]
        if tail:
            err_console.print(f"Build log (last {len(tail)} lines):", style="bold")
            err_console.print(escape("\n".join(tail)), soft_wrap=True)
        raise
    if prepared.built:
        console.print(f"Built in {prepared.seconds:.1f} s: {escape(prepared.location)}")
    else:
        waited = " (waited for another process's build)" if prepared.waited else ""
        console.print(f"Reused the build in {escape(prepared.location)}{waited} ({prepared.seconds:.3f} s)")
    console.print(f"Python: {escape(prepared.python)}")


@env_app.command("prune")
def prune(
    older_than: float = typer.Option(
        30.0, "--older-than", min=0, metavar="DAYS", help="Remove builds not used for this many days."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be removed."),
) -> None:
    """Remove cached environment builds that no run used for DAYS days (one being built is left alone), and
    what killed builds and removals left behind (folders untouched for DAYS days whose lock is free)."""
    from runyard.environments.build import cache_dir, list_builds, list_leftovers

    cutoff = time.time() - older_than * 86400
    stale = [b for b in list_builds() if b.last_used < cutoff]
    leftovers = [x for x in list_leftovers() if x.modified < cutoff]
    if not stale and not leftovers:
        console.print(f"No builds unused for {older_than:g} days in {escape(str(cache_dir()))}.")
        return
    freed, removed = _prune_builds(stale, dry_run)
    left_freed, left_removed = _prune_leftovers(leftovers, dry_run)
    if dry_run:
        total = decimal(sum(b.size_bytes for b in stale) + sum(x.size_bytes for x in leftovers))
        console.print(
            f"{len(stale)} builds and {len(leftovers)} unfinished folders ({total}) would be removed; run "
            "without --dry-run to remove them."
        )
    else:
        console.print(f"Removed {removed} of {len(stale)} builds, freed {decimal(freed)}.")
        if leftovers:
            console.print(
                f"Removed {left_removed} of {len(leftovers)} unfinished build/removal folders, freed "
                f"{decimal(left_freed)}."
            )


def _remove_each(
    items: Sequence[tuple[str, int, Callable[[], bool]]], dry_run: bool, busy: str
) -> tuple[int, int]:
    """Remove (or, with dry_run, list) each (description, size, remover); a remover answering False was
    refused because someone works on it. Returns (bytes freed, how many removed)."""
    freed, removed = 0, 0
    for what, size, remove in items:
        if dry_run:
            console.print(f"Would remove {what}")
        elif remove():
            console.print(f"Removed {what}")
            freed, removed = freed + size, removed + 1
        else:
            console.print(f"Skipped {what}: {busy}")
    return freed, removed


def _prune_builds(stale: list[Any], dry_run: bool) -> tuple[int, int]:
    from runyard.environments.build import remove_build

    items = [
        (
            f"{b.hash[:12]} {escape(b.name or '(unnamed)')} ({decimal(b.size_bytes)}, last used {when(b.last_used)})",
            b.size_bytes,
            functools.partial(remove_build, b.hash),
        )
        for b in sorted(stale, key=lambda b: b.last_used)
    ]
    return _remove_each(items, dry_run, "it is being built right now")


def _prune_leftovers(leftovers: list[Any], dry_run: bool) -> tuple[int, int]:
    """Folders of killed builds/removals: removed only when their hash's lock is free (no one works on it)."""
    from runyard.environments.build import remove_leftover

    items = [
        (
            f"unfinished {x.kind} folder {escape(x.location)} ({decimal(x.size_bytes)}, changed {when(x.modified)})",
            x.size_bytes,
            functools.partial(remove_leftover, x.location),
        )
        for x in leftovers
    ]
    return _remove_each(items, dry_run, "a process is still working on it")
