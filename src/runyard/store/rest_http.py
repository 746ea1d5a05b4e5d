"""The HTTP client under RestStore and RestArtifactStore: runyard's error translation, and retries that
let a client ride out a server restart.

A request is retried with exponential backoff (honouring Retry-After) for
RUNYARD_SERVER_RETRY_SECONDS (default 60) when

- it never reached the server (connection refused or timed out while connecting), or the server
  answered 503 (it did not do the work: busy, or its database was unavailable) — any request;
- the connection broke before the answer came (the server may or may not have done the work), or a
  proxy answered 502/504 — only requests the caller marks as safe to repeat (`retry=True`, the
  default for GET, HEAD, PUT and DELETE). RestStore's docstring lists which of its calls are.

After that the request fails with a StoreError that names the server and how long it was tried.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_before_delay, wait_exponential_jitter

from runyard import config
from runyard import errors as e

#: Methods that mean the same thing when sent twice (RFC 9110 idempotent methods).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_backoff = wait_exponential_jitter(multiplier=0.1, max=2.0, jitter=0.1)  # 0.1, 0.2, 0.4 … 2 s


def error_from_response(response: httpx.Response) -> e.RunyardError:
    try:
        payload = response.json()
    except ValueError:
        payload = {}
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    if not isinstance(error, dict):
        error = {}
    message = error.get("message") or (payload.get("message") if isinstance(payload, dict) else None)
    if isinstance(payload, dict) and payload.get("details") and payload.get("code") == "Unauthorized":
        message = payload["details"][0].get("message")
    message = message or f"HTTP {response.status_code} from {response.request.url}"
    kind = getattr(e, str(error.get("type")), None) if error.get("type") else None
    if isinstance(kind, type) and issubclass(kind, e.RunyardError):
        exc = kind.__new__(kind)
        Exception.__init__(exc, message)
        return exc
    status = response.status_code
    if status in (401, 403):
        return e.AuthError(f"{message} (HTTP {status}; set RUNYARD_TOKEN or pass token= to Workspace.get)")
    if status == 404:
        return e.NotFoundError(message)
    if status == 409:
        return e.ConflictError(message)
    if status >= 500:
        return e.StoreError(message)
    return e.InvalidInputError(message)


class AnswerLost(e.StoreError):
    """The connection broke after a request that is not safe to repeat was sent: the server may or may
    not have applied it. A caller that can check (RestStore.create_runs) looks before sending it again."""


class _Unavailable(Exception):
    """A 502/503/504 answer: the server (or a proxy in front of it) cannot serve the request now."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = _retry_after(response)
        # waiting does not help a server whose database needs `runyard db upgrade`
        self.permanent = _error_type(response) == "StoreMigrationRequired"
        self.not_done = response.status_code == 503


def _error_type(response: httpx.Response) -> str | None:
    try:
        payload = response.json()
    except ValueError:
        return None
    error = payload.get("error") if isinstance(payload, dict) else None
    return str(error.get("type")) if isinstance(error, dict) and error.get("type") else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None  # an HTTP date, or nothing: fall back to the backoff


def _never_delivered(exc: BaseException) -> bool:
    return isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


class HttpClient:
    """A shared httpx client with runyard's error translation and retries."""

    def __init__(
        self, base_url: str, token: str | None, timeout: float = 60.0, client: httpx.Client | None = None
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        # `client` lets tests drive the ASGI app in-process (starlette's TestClient is an httpx.Client).
        self.client = client or httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)
        if client is not None:
            self.client.headers.update(headers)
        self._outage_reported = False

    def request(
        self,
        method: str,
        path: str,
        *,
        retry: bool | None = None,
        sink: Callable[[httpx.Response], None] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send one request, retrying as the module docstring says. `retry`: whether sending it again after
        a broken connection is harmless (default: for idempotent methods). `kwargs` go to httpx; a body
        must be bytes or JSON, or `content` a function returning a fresh iterator of bytes for each attempt
        (a file streamed from disk), so that it can be sent again. `sink`, if given, receives a successful
        answer before its body is read (to stream it to disk); it is called again for each attempt."""
        safe = method.upper() in IDEMPOTENT_METHODS if retry is None else retry
        limit = config.server_retry_seconds()

        def worth_retrying(exc: BaseException) -> bool:
            if isinstance(exc, _Unavailable):
                return not exc.permanent and (exc.not_done or safe)
            return _never_delivered(exc) or (safe and isinstance(exc, httpx.TransportError))

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            backoff = _backoff(state)
            if isinstance(exc, _Unavailable) and exc.retry_after is not None:
                return max(backoff, exc.retry_after)
            return float(backoff)

        retrying = Retrying(
            stop=stop_before_delay(limit),
            wait=wait,
            retry=retry_if_exception(worth_retrying),
            before_sleep=self._report_outage,
            reraise=True,
        )
        started = time.monotonic()
        try:
            response = retrying(self._send_once, method, path, sink, **kwargs)
        except _Unavailable as exc:
            if exc.permanent:
                raise error_from_response(exc.response) from None
            status, waited = exc.response.status_code, time.monotonic() - started
            if not worth_retrying(exc):  # a gateway error on a request that is not safe to repeat
                raise AnswerLost(
                    f"The runyard server at {self.base_url} answered HTTP {status} to {method} {path} "
                    f"({error_from_response(exc.response)}); it may or may not have been applied. Check the "
                    "record before sending it again."
                ) from None
            raise e.StoreError(
                f"{error_from_response(exc.response)} (the server at {self.base_url} still answered HTTP "
                f"{status} after {waited:.0f} s of retries; set RUNYARD_SERVER_RETRY_SECONDS to wait longer)"
            ) from None
        except httpx.TransportError as exc:
            waited = time.monotonic() - started
            if _never_delivered(exc) or safe:
                raise e.StoreError(
                    f"The runyard server at {self.base_url} was unreachable for {waited:.1f} s ({exc}). Start it "
                    "with `runyard server`, check the tracking URI, or set RUNYARD_SERVER_RETRY_SECONDS to "
                    "wait longer."
                ) from exc
            raise AnswerLost(
                f"The connection to the runyard server at {self.base_url} broke before it answered "
                f"{method} {path} ({exc}); it may or may not have been applied. Check the record before "
                "sending it again."
            ) from exc
        if self._outage_reported:
            self._outage_reported = False
            print(f"runyard: the server at {self.base_url} answers again", file=sys.stderr, flush=True)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _send_once(
        self, method: str, path: str, sink: Callable[[httpx.Response], None] | None, **kwargs: Any
    ) -> httpx.Response:
        if callable(kwargs.get("content")):  # a streamed body starts again from its beginning
            kwargs = {**kwargs, "content": kwargs["content"]()}
        if sink is None:
            response = self.client.request(method, path, **kwargs)
        else:
            with self.client.stream(method, path, **kwargs) as response:
                if response.status_code < 400:
                    sink(response)  # a connection broken meanwhile is a TransportError, retried
                else:
                    response.read()  # an error's body is small: read it for the message
        if response.status_code in (502, 503, 504):
            raise _Unavailable(response)
        return response

    def _report_outage(self, state: RetryCallState) -> None:
        """One line per outage, not one per retry: the caller carries on once the server is back."""
        if not self._outage_reported:
            self._outage_reported = True
            exc = state.outcome.exception() if state.outcome else None
            what = " ".join(str(a) for a in state.args[:2])
            print(
                f"runyard: the server at {self.base_url} is not answering ({what}: {exc}); retrying for up to "
                f"{config.server_retry_seconds():.0f} s",
                file=sys.stderr,
                flush=True,
            )
