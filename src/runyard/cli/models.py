"""`runyard models ...`"""

from __future__ import annotations

from dataclasses import asdict

import typer

from runyard import Workspace
from runyard.cli.render import console, print_json, table, when

models_app = typer.Typer(help="Registered models.", no_args_is_help=True)
workspace_path: str | None = None


@models_app.command("list")
def list_models(
    name: str | None = typer.Option(None, "--name", help="Only this model's versions."),
    latest: bool = typer.Option(False, "--latest", help="Only the newest version of each model."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List registered models, newest version first."""
    ws = Workspace.get(workspace_path) if workspace_path else Workspace.from_config()
    records = ws.store.list_models(name=name, latest=latest)
    if as_json:
        print_json([asdict(r) for r in records])
        return
    if not records:
        console.print("No models registered yet. Register one with Model.register(workspace, path, name).")
        return
    out = table("Name", "Version", "Registered", "From run", "Tags", "Path")
    for r in records:
        tags = ", ".join(f"{k}={v}" for k, v in r.tags.items())
        out.add_row(r.name, str(r.version), when(r.created_time), r.run_id or "", tags, r.path)
    console.print(out)
