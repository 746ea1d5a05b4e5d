"""Studio login: the same tokens as the API, carried in a cookie so pages work in a browser.

The cookie holds the token itself (HttpOnly, SameSite=Strict), so revoking a token logs its
browser sessions out at once and there is no second secret to manage. SameSite=Strict keeps other
sites from riding the session; form posts also check the Origin header when the browser sends one.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from fastapi import Request

from runyard.server.auth import ADMIN, Principal, authenticate
from runyard.server.errors import HTTPError
from runyard.store import SqlStore

COOKIE = "runyard_studio"


class LoginRequired(Exception):
    """A studio page was asked for without a usable token; the handler sends the browser to /login."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


class StudioForbidden(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def login_url(next_url: str) -> str:
    return f"/login?next={quote(next_url, safe='')}"


def safe_next(next_url: str | None) -> str:
    """Only same-site paths: a login link must not be able to send the user elsewhere."""
    if not next_url or not next_url.startswith("/") or next_url.startswith("//") or "\\" in next_url:
        return "/experiments"
    return next_url


def check_token(store: SqlStore, token: str) -> Principal:
    """The principal for a pasted token, or HTTPError (401) when it is not valid."""
    principal = authenticate(store, f"Bearer {token.strip()}")
    if principal.scope == "run":
        raise StudioForbidden(
            "This is a run token, made for one job. Sign in to the studio with a workspace token "
            "(`runyard token create --scope read`)."
        )
    return principal


def studio_principal(store: SqlStore, enabled: bool):
    """Dependency for studio routes: the cookie's principal, else LoginRequired (pages) or 401 (data)."""

    def dependency(request: Request) -> Principal:
        if not enabled:
            return ADMIN
        token = request.cookies.get(COOKIE)
        kind, _, header_token = request.headers.get("authorization", "").partition(" ")
        if not token and kind.lower() == "bearer":
            token = header_token
        try:
            if token:
                return check_token(store, token)  # run tokens are refused here too: they belong to one job
        except HTTPError:
            pass
        if request.url.path.startswith("/studio/api/"):
            raise HTTPError(401, {"error": {"code": "AuthenticationFailed", "message": "Sign in at /login."}})
        raw = request.scope.get("raw_path")  # as sent, still percent-encoded
        path = raw.decode("latin-1") if raw else request.url.path
        target = path + (f"?{request.url.query}" if request.url.query else "")
        raise LoginRequired(target)

    return dependency


def require_same_origin(request: Request) -> None:
    """Form posts must come from the studio's own pages (browsers send Origin with every POST)."""
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise StudioForbidden(f"Refusing a form posted from {origin}: it must come from the studio itself.")


def require_write(principal: Principal, request: Request) -> None:
    """Changes need a write token and a same-origin form post."""
    require_same_origin(request)
    if principal.scope not in ("write", "admin"):
        raise StudioForbidden(
            f"Your token has the '{principal.scope}' scope, which can look but not change anything. "
            "Sign in with a 'write' token to clone and submit runs."
        )
