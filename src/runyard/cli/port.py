"""`runyard port PATH...`: show (or apply) the rewrite of Azure ML SDK v1 code to runyard.v1."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.text import Text

from runyard.cli.render import console, err_console
from runyard.errors import InvalidInputError

if TYPE_CHECKING:
    from runyard.porting import FileResult

_DIFF_STYLE = {"+": "green", "-": "red", "@": "cyan"}


def _print_diff(diff: str) -> None:
    """Each line as Rich Text: code is never read as markup or :emoji: codes."""
    for line in diff.splitlines():
        style = "bold" if line.startswith(("+++", "---")) else _DIFF_STYLE.get(line[:1], "")
        console.print(Text(line, style=style), soft_wrap=True)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def _summary(results: list[FileResult], write: bool) -> str:
    changed = [r for r in results if r.changed]
    if not changed:
        return f"Nothing to port: no azureml imports in {_plural(len(results), 'file')}."
    if write:
        written = [r for r in changed if r.written]
        rewrites = sum(r.rewrites for r in written)
        done = f"Ported {len(written)} of {_plural(len(results), 'file')} ({_plural(rewrites, 'rewrite')})."
        failed = len(changed) - len(written)
        if failed:
            done += f" {_plural(failed, 'file')} not written: see the warnings above."
        return done
    rewrites = sum(r.rewrites for r in changed)
    return (
        f"{len(changed)} of {_plural(len(results), 'file')} would change ({_plural(rewrites, 'rewrite')}); "
        "run again with --write to apply."
    )


def _warn(path: Path, problem: str) -> None:
    err_console.print(f"[yellow]Warning:[/] {escape(str(path))}: {escape(problem)}", soft_wrap=True)


def port(
    paths: list[Path] = typer.Argument(
        ..., help="Python files, notebooks or folders (all .py/.ipynb below)."
    ),
    write: bool = typer.Option(False, "--write", help="Rewrite the files in place (atomically)."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if anything would change."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No diffs: only problems and the summary."),
) -> None:
    """Rewrite `azureml.` to `runyard.v1.` in .py files and notebooks (imports, dotted uses, %%writefile
    cells). Prints a unified diff; changes files only with --write. Symbolic links below a folder are
    not followed; read-only files are not written (exit 1)."""
    if write and check:
        raise InvalidInputError(
            "--write and --check exclude each other: --check only reports, --write applies."
        )
    from runyard.porting import find_files, port_file  # libcst and nbformat (+jsonschema): ~2 s to import

    results = []
    unwritten = False
    for path in find_files(paths, on_skip=_warn):
        result = port_file(path)
        results.append(result)
        if not quiet:
            for diff in result.diffs:
                _print_diff(diff)
        if write and not result.write():
            unwritten = True
        for problem in result.problems:
            _warn(path, problem)
    console.print(_summary(results, write), soft_wrap=True)
    if unwritten or (check and any(r.changed for r in results)):
        raise typer.Exit(1)
