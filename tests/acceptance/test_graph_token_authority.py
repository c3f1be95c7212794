"""The real msal path against the simulator's token authority (docs/simulator.md): tokens
come from it, a refused secret is a configuration error, and an authority that is away or
answers 5xx is `TokenUnavailable`, which the worker waits out."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pushsync.errors import AuthenticationFailed, TokenUnavailable
from pushsync.graph.auth import MsalTokens
from pushsync.graph.token_claims import roles_of, token_claims
from pushsync.simulator.access_token import verified_claims
from pushsync.simulator.authority import AuthorityServer, TokenAuthority

TENANT, CLIENT, SECRET = "contoso-tenant", "pushsync-app", "app-secret"
MSAL_5XX_MEMORY = 5.5  # msal's ThrottledHttpClient replays a 5xx for 5 s (confidential apps)


@pytest.fixture
async def authority(tmp_path: Path) -> AsyncIterator[AuthorityServer]:
    async with AuthorityServer(TokenAuthority(TENANT, CLIENT, SECRET), tmp_path) as server:
        yield server


def tokens(server: AuthorityServer, secret: str = SECRET, url: str | None = None) -> MsalTokens:
    return MsalTokens(
        TENANT,
        CLIENT,
        SecretStr(secret),
        url or server.url,
        discovery=False,
        ca_bundle=server.ca_bundle,
    )


async def test_msal_gets_the_graph_token_from_the_test_authority(
    authority: AuthorityServer,
) -> None:
    token = await tokens(authority)()
    assert authority.authority.issued == 1
    claims = token_claims(token)
    assert claims is not None and verified_claims(token) == claims  # the simulator's Graph takes it
    # the claims Microsoft documents for an app-only v1.0 Graph token
    assert claims["aud"] == "https://graph.microsoft.com"
    assert claims["tid"] == TENANT and claims["appid"] == CLIENT
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert claims["idtyp"] == "app" and claims["ver"] == "1.0" and claims["oid"] == claims["sub"]
    assert claims["exp"] - claims["iat"] == authority.authority.expires_in
    assert roles_of(claims) == {"Calendars.Read", "Place.Read.All"}


async def test_the_token_carries_only_the_permissions_granted(authority: AuthorityServer) -> None:
    authority.authority.roles = ("Place.Read.All",)
    claims = token_claims(await tokens(authority)())
    assert claims is not None and roles_of(claims) == {"Place.Read.All"}


async def test_a_refused_secret_is_an_authentication_failure_not_a_transient_one(
    authority: AuthorityServer,
) -> None:
    with pytest.raises(AuthenticationFailed, match=r"invalid_client|Invalid client secret"):
        await tokens(authority, secret="wrong")()


async def test_an_authority_away_or_failing_is_token_unavailable_until_it_is_back(
    authority: AuthorityServer,
) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        nowhere = f"https://127.0.0.1:{spare.getsockname()[1]}"  # bound, not listening
        with pytest.raises(TokenUnavailable, match="ConnectionError"):
            await tokens(authority, url=nowhere)()

    provider = tokens(authority)
    authority.authority.failing = True
    with pytest.raises(TokenUnavailable):
        await provider()
    authority.authority.failing = False
    await asyncio.sleep(MSAL_5XX_MEMORY)  # msal answers a 5xx again for 5 s without asking
    assert token_claims(await provider()) is not None  # the same provider recovers
