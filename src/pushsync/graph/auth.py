"""App-only tokens for Microsoft Graph: msal client credentials.

https://learn.microsoft.com/graph/auth-v2-service
The scope is https://graph.microsoft.com/.default (application permission Calendars.Read,
granted by an administrator). msal caches the token and renews it before it expires; it is a
synchronous library, so it is called through a thread. `TokenProvider` is what `GraphClient`
takes, so the simulator's well-known token can stand in for msal in tests.

An authority that cannot be reached, or answers 5xx, is `TokenUnavailable`: a transient
failure of the whole installation, which the worker and managers wait out (msal raises
requests' exceptions for both). A refused secret or an unknown tenant is `AuthenticationFailed`.
`discovery=False` turns off msal's instance discovery and authority validation, so that msal
can be pointed at a test authority (`authority_host`; the simulator serves one,
docs/simulator.md), trusted through `ca_bundle`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from pushsync.errors import AuthenticationFailed, ConfigError, TokenUnavailable

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
AUTHORITY_TIMEOUT = 30.0  # seconds; msal's default is to wait for ever

TokenProvider = Callable[[], Awaitable[str]]


def static_token(token: str) -> TokenProvider:
    """A fixed bearer token (the simulator's)."""

    async def provide() -> str:
        return token

    return provide


class MsalTokens:
    """Client-credentials tokens for one app registration in one tenant."""

    def __init__(
        self,
        tenant_id: str | None,
        client_id: str | None,
        client_secret: SecretStr | None,
        authority_host: str = "https://login.microsoftonline.com",
        *,
        discovery: bool = True,
        ca_bundle: str | None = None,
    ) -> None:
        if not (tenant_id and client_id and client_secret):
            raise ConfigError(
                "Graph needs PUSHSYNC_TENANT_ID, PUSHSYNC_CLIENT_ID and PUSHSYNC_CLIENT_SECRET"
            )
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._client_id = client_id
        self._secret = client_secret
        self._discovery = discovery
        self._ca_bundle = ca_bundle
        self._app: Any = None

    async def __call__(self) -> str:
        return await asyncio.to_thread(self._acquire)

    def _acquire(self) -> str:
        import msal
        import requests

        try:
            if self._app is None:  # built here: msal reads the authority's metadata at once
                self._app = msal.ConfidentialClientApplication(
                    self._client_id,
                    authority=self._authority,
                    client_credential=self._secret.get_secret_value(),
                    validate_authority=self._discovery,
                    instance_discovery=self._discovery,
                    http_client=self._http_client(),
                    timeout=AUTHORITY_TIMEOUT,
                )
            result = self._app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:
            # unreachable, timed out, or 5xx (msal raises its own error for a 5xx it cached)
            raise TokenUnavailable(
                f"token authority unreachable: {type(exc).__name__}: {exc}"
            ) from None
        except ValueError as exc:  # msal: the tenant's metadata is not there (4xx)
            raise AuthenticationFailed(f"token authority refused the tenant: {exc}") from None
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            detail = result.get("error_description", result) if isinstance(result, dict) else ""
            raise AuthenticationFailed(f"no Graph token from msal: {detail}")
        return str(token)

    def _http_client(self) -> Any:
        """None (msal's own session) unless a CA bundle is to be trusted. Given per request,
        so that REQUESTS_CA_BUNDLE in the environment does not override it."""
        if self._ca_bundle is None:
            return None
        import requests

        session = requests.Session()
        session.request = functools.partial(  # type: ignore[method-assign]
            session.request, verify=self._ca_bundle, timeout=AUTHORITY_TIMEOUT
        )
        return session
