"""What an access token says it carries, read for reporting only (`pushsync doctor`).

Microsoft's access tokens are JWTs whose payload lists the application permissions granted in
`roles`: https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
A client must not rely on a token's contents (Microsoft may change the format), so nothing here
verifies the signature or decides anything; the doctor only shows what the token claims.
"""

from __future__ import annotations

import base64
import json
from typing import Any

# What pushsync needs: a room's calendar (events, subscriptions, delta) and, for room
# discovery (GET /places/microsoft.graph.room), the places directory (docs/protocol.md).
CALENDAR_ROLES = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
PLACES_ROLE = "Place.Read.All"


def token_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWT, unverified; None if the token is not one (an opaque token)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    return claims if isinstance(claims, dict) else None


def roles_of(claims: dict[str, Any]) -> set[str]:
    roles = claims.get("roles")
    return {str(role) for role in roles} if isinstance(roles, list) else set()
