"""v1's authentication classes, accepted so that cloud set-up code can stay as it is.

A local workspace has no sign-in: these objects do nothing and never prompt. Against a runyard
server the bearer token is what counts (`Workspace.get(url, token=...)` or `RUNYARD_TOKEN`), not an Azure
identity, so `get_authentication_header()` returns the runyard token header when a token is known
and `{}` otherwise. Secrets passed in (a service principal's password) are not kept.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from runyard import config
from runyard.compat import v1_ignores, v1_keywords, warn_ignored
from runyard.errors import AuthError

_NO_AZURE = "runyard has no Azure sign-in; a server is reached with a runyard token (RUNYARD_TOKEN)"


class AbstractAuthentication:
    """What every authentication object offers: a header for HTTP requests, and nothing else."""

    def __init__(self, cloud: str | None = None) -> None:
        self._cloud = cloud
        self._token: str | None = None

    def get_authentication_header(self) -> dict[str, str]:
        """`{"Authorization": "Bearer <runyard token>"}` when a token is known, else `{}`."""
        token = self._token or os.environ.get(config.ENV_TOKEN)
        return {"Authorization": f"Bearer {token}"} if token else {}

    def get_token(self, *scopes: Any, **kwargs: Any) -> Any:
        """There is no Azure access token to hand out; raises with what to use instead."""
        raise AuthError(
            "runyard has no Azure access tokens. A runyard server accepts a runyard token: create one with "
            "`runyard token create` and pass Workspace.get(url, token=...) or set RUNYARD_TOKEN."
        )

    def signed_session(self, session: Any = None) -> Any:
        """The given HTTP session (or a new `httpx.Client`) carrying `get_authentication_header()`."""
        if session is None:
            return httpx.Client(headers=self.get_authentication_header())
        session.headers.update(self.get_authentication_header())
        return session

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@v1_keywords
class InteractiveLoginAuthentication(AbstractAuthentication):
    """v1 opens a browser sign-in; locally there is nothing to sign in to."""

    @v1_ignores(force=_NO_AZURE, tenant_id=_NO_AZURE, cloud=_NO_AZURE)
    def __init__(self, force: bool = False, tenant_id: str | None = None, cloud: str | None = None) -> None:
        super().__init__(cloud)


@v1_keywords
class ServicePrincipalAuthentication(AbstractAuthentication):
    """v1 signs in as a service principal; locally the credentials are accepted and dropped."""

    @v1_ignores(cloud=_NO_AZURE)
    def __init__(
        self,
        tenant_id: str,
        service_principal_id: str,
        service_principal_password: str,
        cloud: str = "AzureCloud",
        _enable_caching: bool = True,
    ) -> None:
        super().__init__(cloud)
        self.tenant_id = tenant_id
        self.service_principal_id = service_principal_id  # the password is not kept


@v1_keywords
class AzureCliAuthentication(AbstractAuthentication):
    """v1 reuses `az login`; locally nothing is read from the Azure CLI."""

    @v1_ignores(cloud=_NO_AZURE)
    def __init__(self, cloud: str | None = None) -> None:
        super().__init__(cloud)


@v1_keywords
class MsiAuthentication(AbstractAuthentication):
    """v1 uses the VM's managed identity; locally there is none to use."""

    @v1_ignores(cloud=_NO_AZURE)
    def __init__(self, cloud: str | None = None, **kwargs: Any) -> None:
        for name in kwargs:  # v1 passes identity settings (client_id, object_id, ...) through here
            warn_ignored("MsiAuthentication", name, _NO_AZURE)
        super().__init__(cloud)
