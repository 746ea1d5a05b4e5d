"""`runyard server` and `runyard token ...`."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable

import typer

from runyard import Workspace
from runyard.cli.render import console, err_console, print_json, table, when
from runyard.errors import InvalidInputError
from runyard.store import SqlStore

token_app = typer.Typer(help="Workspace tokens for the server's --auth mode.", no_args_is_help=True)
workspace_path: str | None = None

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _local_store() -> SqlStore:
    ws = Workspace.get(workspace_path) if workspace_path else Workspace.from_config()
    if not isinstance(ws.store, SqlStore):
        raise InvalidInputError("Tokens are managed on the server's own workspace folder, not through a URL.")
    return ws.store


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (non-loopback needs --auth)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on (1-65535)."),
    auth: bool = typer.Option(False, "--auth", help="Require a token on every request."),
    compute: bool = typer.Option(
        False,
        "--compute",
        envvar="RUNYARD_SERVER_COMPUTE",
        help="This machine is compute: the studio may start a scheduler here for pipelines it submits "
        "(still only for tokens that hold compute for each step's target).",
    ),
) -> None:
    """Serve the workspace over HTTP: the studio, the tracking API, artifacts, and MLflow-compatible routes."""
    if not _is_loopback(host) and not auth:
        raise InvalidInputError(
            f"Refusing to serve on {host} without --auth: anyone who can reach it could read and change every run. "
            "Add --auth (and create tokens with `runyard token create`), or bind to 127.0.0.1."
        )
    check_port(port)
    ws = Workspace.get(workspace_path) if workspace_path else Workspace.from_config()
    serve(ws, host, port, auth=auth, host_is_compute=compute)


def check_port(port: int) -> None:
    """A port outside 1-65535 is a one-line error, not a traceback from the socket layer."""
    if not 1 <= port <= 65535:
        raise InvalidInputError(f"--port {port} is not a TCP port; use a number from 1 to 65535, e.g. 8765.")


def serve(
    ws: Workspace,
    host: str,
    port: int,
    *,
    auth: bool,
    until: Callable[[], bool] | None = None,
    host_is_compute: bool = False,
) -> None:
    """Serve until Ctrl-C, or until `until()` turns true (checked every second)."""
    import uvicorn

    from runyard.server.app import create_app

    check_port(port)
    app = create_app(ws, auth=auth, host_is_compute=host_is_compute)
    if host in ("127.0.0.1", "localhost"):
        # A page on another site can point a DNS name at 127.0.0.1 (DNS rebinding); a loopback server
        # answers only requests addressed to the loopback names.
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])
    console.print(f"Serving workspace {ws.path} on http://{host}:{port} (auth {'on' if auth else 'off'})")
    if host_is_compute:
        console.print("This machine is compute: the studio may start pipelines here for tokens with compute.")
    console.print(f"Studio: http://{host}:{port}/experiments")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    if until is not None:

        def watch() -> None:
            while not server.should_exit:
                if until():
                    server.should_exit = True
                time.sleep(1)

        threading.Thread(target=watch, name="runyard-serve-until", daemon=True).start()
    server.run()


def _seconds(text: str) -> float:
    unit = text[-1:].lower()
    try:
        return float(text[:-1]) * _UNITS[unit] if unit in _UNITS else float(text)
    except ValueError:
        raise InvalidInputError(
            f"--expires-in {text!r} is not a duration like 3600, 30m, 12h or 7d."
        ) from None


@token_app.command("create")
def create(
    scope: str = typer.Option(..., "--scope", help="admin, write or read."),
    name: str | None = typer.Option(None, "--name", help="A label to recognise the token by."),
    expires_in: str | None = typer.Option(None, "--expires-in", help="Lifetime: seconds, or 30m / 12h / 7d."),
    compute: list[str] = typer.Option(
        [],
        "--compute",
        help="A compute target this token may submit code to (repeat it, or '*' for every target). "
        "Without it the token can read and change records but never run code.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create a token and print it once (only its hash is stored)."""
    from runyard.server.auth import create_token

    secret, record = create_token(
        _local_store(),
        scope,
        name=name,
        expires_in=_seconds(expires_in) if expires_in else None,
        compute=compute,
    )
    if as_json:
        print_json(
            {
                "token": secret,
                "token_id": record.token_id,
                "scope": record.scope,
                "expires_time": record.expires_time,
                "compute": list(record.compute),
            }
        )
        return
    print(secret)
    err_console.print(  # stderr: `TOKEN=$(runyard token create ...)` captures the token alone
        f"Token {record.token_id} ({record.scope}; compute: {', '.join(record.compute) or 'none'}) created. It is shown only now; "
        "clients send it as `Authorization: Bearer TOKEN` or set RUNYARD_TOKEN.",
        style="dim",
    )


@token_app.command("list")
def list_tokens(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List workspace tokens (never their secrets)."""
    records = _local_store().list_tokens()
    if as_json:
        print_json(
            [
                {
                    "token_id": r.token_id,
                    "scope": r.scope,
                    "name": r.name,
                    "created_time": r.created_time,
                    "expires_time": r.expires_time,
                    "revoked_time": r.revoked_time,
                    "compute": list(r.compute),
                }
                for r in records
            ]
        )
        return
    out = table("Token", "Scope", "Compute", "Name", "Created", "Expires", "State")
    now = time.time()
    for r in records:
        state = (
            "revoked"
            if r.revoked_time
            else "expired"
            if r.expires_time and r.expires_time < now
            else "active"
        )
        out.add_row(
            r.token_id,
            r.scope,
            ", ".join(r.compute) or "none",
            r.name or "",
            when(r.created_time),
            when(r.expires_time) or "never",
            state,
        )
    console.print(out)


@token_app.command("revoke")
def revoke(token_id: str) -> None:
    """Revoke a token: requests that use it are refused from now on."""
    _local_store().revoke_token(token_id)
    console.print(f"Token {token_id} revoked.")
