"""`runyard port PATH...`: show (or apply) the rewrite of Azure ML SDK v1 code to runyard.v1."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.text import Text

from runyard.cli.render import console, err_console
from runyard.errors import InvalidInputError
from runyard.porting import FileResult, find_files, port_file

_DIFF_STYLE = {"+": "green", "-": "red", "@": "cyan"}


def _print_diff(diff: str) -> None:
    """Each line as Rich Text: code is never read as markup or :emoji: codes."""
    for line in diff.splitlines():
        style = "bold" if line.startswith(("+++", "---")) else _DIFF_STYLE.get(line[:1], "")
        console.print(Text(line, style=style), soft_wrap=True)


def _summary(results: list[FileResult], write: bool) -> str:
    changed = [r for r in results if r.changed]
    rewrites = sum(r.rewrites for r in changed)
    files = f"{len(changed)} of {len(results)} file{'s' if len(results) != 1 else ''}"
    if not changed:
        return (
            f"Nothing to port: no azureml imports in {len(results)} file{'s' if len(results) != 1 else ''}."
        )
    if write:
        return f"Ported {files} ({rewrites} rewrite{'s' if rewrites != 1 else ''})."
    return (
        f"{files} would change ({rewrites} rewrite{'s' if rewrites != 1 else ''}); "
        "run again with --write to apply."
    )


def port(
    paths: list[Path] = typer.Argument(
        ..., help="Python files, notebooks or folders (all .py/.ipynb below)."
    ),
    write: bool = typer.Option(False, "--write", help="Rewrite the files in place (atomically)."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if anything would change."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No diffs: only problems and the summary."),
) -> None:
    """Rewrite `azureml.` to `runyard.v1.` in .py files and notebooks (imports, dotted uses, %%writefile
    cells). Prints a unified diff; changes files only with --write."""
    if write and check:
        raise InvalidInputError(
            "--write and --check exclude each other: --check only reports, --write applies."
        )
    results = []
    for path in find_files(paths):
        result = port_file(path)
        results.append(result)
        if not quiet:
            for diff in result.diffs:
                _print_diff(diff)
        for problem in result.problems:
            err_console.print(f"[yellow]Warning:[/] {escape(str(path))}: {escape(problem)}", soft_wrap=True)
        if write:
            result.write()
    console.print(_summary(results, write), soft_wrap=True)
    if check and any(r.changed for r in results):
        raise typer.Exit(1)
