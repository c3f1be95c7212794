"""What the sync processes derive from the settings alone: which protocols the rooms use, the
callback URL registered with Exchange, where Graph tokens come from. Kept apart from the
composition root (`sync.py`), which loads the protocol clients (exchangelib: seconds), so that
`pushsync doctor` can ask the same questions cheaply."""

from __future__ import annotations

from pushsync.errors import ConfigError
from pushsync.graph.auth import MsalTokens, TokenProvider, static_token
from pushsync.settings import Settings
from pushsync.web.access.callback_token import callback_url


def ews_callback_url(settings: Settings) -> str:
    if not settings.public_url:
        raise ConfigError(
            "PUSHSYNC_PUBLIC_URL is needed: the URL at which Exchange reaches pushsync"
        )
    token = settings.callback_token.get_secret_value() if settings.callback_token else None
    return callback_url(settings.public_url.rstrip("/") + settings.ews_path, token)


def graph_tokens(settings: Settings) -> TokenProvider:
    """The fixed token if one is set, else msal client credentials."""
    if settings.graph_token is not None:
        return static_token(settings.graph_token.get_secret_value())
    return MsalTokens(
        settings.tenant_id,
        settings.client_id,
        settings.client_secret,
        settings.authority_host,
        discovery=settings.authority_discovery,
        ca_bundle=settings.authority_ca_bundle,
    )
