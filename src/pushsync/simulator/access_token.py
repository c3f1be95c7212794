"""The access tokens the simulator's authority issues and its Graph accepts.

Shaped as Microsoft's documented app-only access tokens for Graph: a JWT whose payload carries
the claims of https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
for a v1.0 token (Graph's resource accepts v1.0 tokens): `aud` the Graph resource, `iss` and
`idp` the tenant's STS, `iat`/`nbf`/`exp`, `appid` (the client id), `appidacr` "1" (a client
secret), `idtyp` "app", `oid`/`sub` (the service principal), `roles` (the application
permissions granted), `tid`, `uti`, `ver` "1.0".

Entra signs with RS256 and keys published at the tenant's `jwks_uri`; clients must not read or
verify tokens (they are opaque to them). The simulator signs with HS256 and a key of its own,
so that its Graph, in any process, can tell its tokens from anything else: a guess at nothing,
only a stand-in signature (docs/simulator.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRANTED_ROLES = ("Calendars.Read", "Place.Read.All")  # what pushsync's app registration asks for
_KEY = b"pushsync-simulator-signing-key"
# How long past `exp` a resource still takes a token: Microsoft.IdentityModel's default clock
# skew (TokenValidationParameters.ClockSkew, five minutes). A guess for Graph, which does not
# say; it also lets a token issued for a second (a test's) be used a moment later.
CLOCK_SKEW = 300
_HEADER: dict[str, object] = {"typ": "JWT", "alg": "HS256"}


def issue(
    tenant_id: str,
    client_id: str,
    *,
    roles: Iterable[str] = GRANTED_ROLES,
    issued_at: int | None = None,
    lifetime: int = 3599,
    token_id: str | None = None,
) -> str:
    """A signed token for the app `client_id` of `tenant_id`, valid `lifetime` seconds."""
    now = int(time.time()) if issued_at is None else issued_at
    principal = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant_id}/{client_id}"))
    claims = {
        "aud": GRAPH_AUDIENCE,
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "idp": f"https://sts.windows.net/{tenant_id}/",
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": client_id,
        "appidacr": "1",
        "idtyp": "app",
        "oid": principal,
        "sub": principal,
        "roles": list(roles),
        "tid": tenant_id,
        "uti": token_id or uuid.uuid4().hex[:22],
        "ver": "1.0",
    }
    signed = f"{_part(_HEADER)}.{_part(claims)}"
    return f"{signed}.{_signature(signed)}"


def verified_claims(token: str, now: float | None = None) -> dict[str, Any] | None:
    """The claims of a token this simulator issued, still valid and for Graph; else None."""
    signed, _, signature = token.rpartition(".")
    if not signed or not hmac.compare_digest(signature, _signature(signed)):
        return None
    try:
        claims = json.loads(_unpad(signed.split(".")[1]))
    except (ValueError, IndexError):
        return None
    now = time.time() if now is None else now
    valid = claims.get("nbf", 0) - CLOCK_SKEW <= now < claims["exp"] + CLOCK_SKEW
    if claims.get("aud") != GRAPH_AUDIENCE or not valid:
        return None
    return dict(claims)


def _part(document: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).rstrip(b"=").decode()


def _unpad(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _signature(signed: str) -> str:
    digest = hmac.new(_KEY, signed.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
