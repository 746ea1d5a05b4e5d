"""Entry point: the only place where errors become exit codes."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import typer

from runyard import Workspace
from runyard.cli import env, models, pipelines, port, runs, schedules, server
from runyard.cli.render import err_console
from runyard.errors import RunyardError

app = typer.Typer(
    name="runyard",
    help="Runs, metrics, logs and models recorded in a local workspace, with the Azure ML SDK v1 API.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(runs.runs_app, name="runs")
app.add_typer(models.models_app, name="models")
app.add_typer(env.env_app, name="env")
app.add_typer(pipelines.pipeline_app, name="pipeline")
app.add_typer(server.token_app, name="token")
app.add_typer(schedules.schedule_app, name="schedule")
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(db_app, name="db")
for command in (runs.submit, runs.logs, runs.metrics, pipelines.up, server.server, port.port):
    app.command(context_settings=getattr(command, "context_settings", None))(command)

_state: dict[str, Any] = {"debug": False}


@app.callback()
def _options(
    workspace: str | None = typer.Option(
        None,
        "--workspace",
        "-w",
        envvar="RUNYARD_WORKSPACE",
        help="Workspace folder or server URL (default: the nearest .runyard/ walking up from here).",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks."),
) -> None:
    _state["debug"] = debug
    runs.workspace_path = models.workspace_path = pipelines.workspace_path = server.workspace_path = workspace
    schedules.workspace_path = workspace


@app.command()
def init(
    path: Path = typer.Argument(Path(".runyard"), help="Folder for the new workspace."),
    tracking_uri: str | None = typer.Option(None, help="Database URI (default: SQLite inside the folder)."),
) -> None:
    """Create a workspace folder (a SQLite database and an artifact folder)."""
    ws = Workspace.create(path, tracking_uri=tracking_uri, exist_ok=True)
    ws.store  # noqa: B018 - opens the database, so a damaged runyard.db in an existing folder is reported here
    print(f"Workspace ready at {ws.path} (database {ws.tracking_uri})")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the workspace database to the schema this runyard needs."""
    from runyard.store import upgrade_store

    ws = Workspace.get(runs.workspace_path) if runs.workspace_path else Workspace.from_config()
    upgrade_store(ws.tracking_uri)
    print(f"Database {ws.tracking_uri} is up to date.")


def main() -> None:
    try:
        app()
    except RunyardError as exc:
        if _state["debug"]:
            traceback.print_exc()
        err_console.print(f"[bold red]Error:[/] {exc}", markup=True, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
