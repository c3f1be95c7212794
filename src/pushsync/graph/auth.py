"""App-only tokens for Microsoft Graph: msal client credentials.

https://learn.microsoft.com/graph/auth-v2-service
The scope is https://graph.microsoft.com/.default (application permission Calendars.Read,
granted by an administrator). msal caches the token and renews it before it expires; it is a
synchronous library, so it is called through a thread. `TokenProvider` is what `GraphClient`
takes, so the simulator's well-known token can stand in for msal in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import SecretStr

from pushsync.errors import AuthenticationFailed, ConfigError

GRAPH_SCOPE = "https://graph.microsoft.com/.default"

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
    ) -> None:
        if not (tenant_id and client_id and client_secret):
            raise ConfigError(
                "Graph needs PUSHSYNC_TENANT_ID, PUSHSYNC_CLIENT_ID and PUSHSYNC_CLIENT_SECRET"
            )
        self._authority = f"{authority_host.rstrip('/')}/{tenant_id}"
        self._client_id = client_id
        self._secret = client_secret
        self._app: Any = None

    async def __call__(self) -> str:
        return await asyncio.to_thread(self._acquire)

    def _acquire(self) -> str:
        import msal

        if self._app is None:
            self._app = msal.ConfidentialClientApplication(
                self._client_id,
                authority=self._authority,
                client_credential=self._secret.get_secret_value(),
            )
        result = self._app.acquire_token_for_client(scopes=[GRAPH_SCOPE])
        token = result.get("access_token") if isinstance(result, dict) else None
        if not token:
            detail = result.get("error_description", result) if isinstance(result, dict) else ""
            raise AuthenticationFailed(f"no Graph token from msal: {detail}")
        return str(token)
