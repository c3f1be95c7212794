"""Credentials for EWS: OAuth2 app-only tokens from msal (Exchange Online), NTLM or basic
(Exchange Server). Secrets arrive as SecretStr and are never logged.

Exchange Online app-only access: https://learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-authenticate-an-ews-application-by-using-oauth
(permission `full_access_as_app`; the token's scope is https://outlook.office365.com/.default).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from oauthlib.oauth2 import OAuth2Token
from pydantic import SecretStr

from pushsync.errors import AuthenticationFailed, ConfigError

OUTLOOK_SCOPE = "https://outlook.office365.com/.default"
REFRESH_MARGIN_S = 300  # renew a token this long before it expires


@dataclass
class EwsCredentials:
    """What to log in with. `kind` is "oauth" (msal, app-only), "ntlm" or "basic"."""

    kind: str
    username: str | None = None
    password: SecretStr | None = None
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    authority_host: str = "https://login.microsoftonline.com"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._exl: Any = None
        self._expires_at = 0.0
        self._msal: Any = None
        needed = {
            "oauth": ("tenant_id", "client_id", "client_secret"),
            "ntlm": ("username", "password"),
            "basic": ("username", "password"),
        }
        if self.kind not in needed:
            raise ConfigError(f"EWS auth {self.kind!r}: use oauth, ntlm or basic")
        missing = [name for name in needed[self.kind] if not getattr(self, name)]
        if missing:
            raise ConfigError(f"EWS auth {self.kind} needs: {', '.join(missing)}")

    @property
    def auth_type(self) -> str:
        import exchangelib  # see _build

        kinds: dict[str, str] = {
            "oauth": exchangelib.OAUTH2,
            "ntlm": exchangelib.NTLM,
            "basic": exchangelib.BASIC,
        }
        return kinds[self.kind]

    def exchangelib_credentials(self) -> Any:
        with self._lock:
            if self._exl is None:
                self._exl = self._build()
            return self._exl

    def refresh(self) -> None:
        """Replace the OAuth token before it expires (msal caches and renews it)."""
        if self.kind != "oauth" or time.time() < self._expires_at - REFRESH_MARGIN_S:
            return
        with self._lock:
            token = self._acquire()
            self._exl.access_token = token

    def _build(self) -> Any:
        # on demand: importing exchangelib takes seconds, and processes that never call EWS
        # (the receiver, whose restart Exchange waits on for only StatusFrequency) import this
        import exchangelib

        if self.kind == "oauth":
            self._exl = exchangelib.OAuth2AuthorizationCodeCredentials(
                client_id=self.client_id, tenant_id=self.tenant_id
            )
            self._exl.access_token = self._acquire()
            return self._exl
        assert self.password is not None
        return exchangelib.Credentials(self.username, self.password.get_secret_value())

    def _acquire(self) -> Any:
        import msal  # only OAuth installations pay for importing it

        if self._msal is None:
            assert self.client_secret is not None
            self._msal = msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self.client_secret.get_secret_value(),
                authority=f"{self.authority_host}/{self.tenant_id}",
            )
        result = self._msal.acquire_token_for_client(scopes=[OUTLOOK_SCOPE])
        if "access_token" not in result:
            raise AuthenticationFailed(
                f"token refused: {result.get('error')}: {result.get('error_description')}"
            )
        self._expires_at = time.time() + float(result.get("expires_in", 3600))
        return OAuth2Token(
            {
                "access_token": result["access_token"],
                "token_type": "Bearer",
                "expires_in": result.get("expires_in", 3600),
                "expires_at": self._expires_at,
            }
        )
