"""The doctor's checks over the network: the public URL's self-test, clock skew, Graph's token.

The self-test posts what Exchange would post, to the URL pushsync registers with Exchange
(`public_url` + `ews_path` + the callback token), so it goes through the reverse proxy the
operator configured. Its answer is read honestly: a 403 "source address not allowed" from
pushsync means the URL reaches the receiver and its source filter works (this host is not one
of Microsoft's), though the token and the storage behind the filter were not exercised.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from pushsync.cli.doctor_findings import Finding, fail, ok, warn
from pushsync.errors import PushsyncError
from pushsync.ews.self_test import HEADERS, answered_status, self_test_notification
from pushsync.ews.send_notification_result import SubscriptionStatus
from pushsync.graph.token_claims import CALENDAR_ROLES, PLACES_ROLE, roles_of, token_claims
from pushsync.model.notification import UnknownSubscriptions
from pushsync.processes.settings_view import ews_callback_url, graph_tokens
from pushsync.settings import Settings

TIMEOUT = 10.0  # Exchange waits about this long for an answer, Graph's handshake 10 s
MAX_SKEW = 60.0  # seconds; tokens and Graph's expirations tolerate about five minutes
FILTERED = "source address not allowed"  # pushsync's own 403 body (web/app.py)
START_RECEIVER = "start `pushsync serve` and check that the proxy forwards the path to it"


async def probe(settings: Settings) -> list[Finding]:
    protocols = settings.protocols_needed()
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        found: list[Finding] = []
        if settings.public_url:
            found.append(await ews_self_test(client, settings))
            if settings.graph_client_state is not None:
                found.append(await graph_handshake(client, settings))
        if "ews" in protocols and settings.ews_url:
            found.append(await clock_skew(client, "Exchange", settings.ews_url))
        if "graph" in protocols:
            found.append(await clock_skew(client, "Graph", settings.graph_url))
            found.append(await graph_permissions(settings))
    return found


async def ews_self_test(client: httpx.AsyncClient, settings: Settings) -> Finding:
    check = "public URL (EWS)"
    url = ews_callback_url(settings)
    shown = settings.public_url.rstrip("/") + settings.ews_path  # type: ignore[union-attr]
    subscription_id = f"pushsync-doctor-{secrets.token_hex(8)}"
    try:
        answer = await client.post(
            url, content=self_test_notification(subscription_id), headers=HEADERS
        )
    except httpx.HTTPError as exc:
        return fail(check, f"{shown} does not answer: {type(exc).__name__} {exc}", START_RECEIVER)
    if answer.status_code == 200:
        return await _answered(settings, shown, subscription_id, answered_status(answer.content))
    return _refused(check, shown, answer)


async def _answered(
    settings: Settings, shown: str, subscription_id: str, status: SubscriptionStatus | None
) -> Finding:
    check = "public URL (EWS)"
    if status is None:
        return fail(
            check,
            f"{shown} answered 200 but not a SendNotificationResult: something else serves it",
            "point the proxy's notification path at `pushsync serve`",
        )
    expected = (
        SubscriptionStatus.OK
        if settings.unknown_subscriptions is UnknownSubscriptions.ACCEPT
        else SubscriptionStatus.UNSUBSCRIBE
    )
    if status is not expected:
        return warn(
            check,
            f"{shown} answered {status.value} to an unknown subscription, where "
            f"unknown_subscriptions = {settings.unknown_subscriptions.value} answers "
            f"{expected.value}: the receiver runs with other settings",
            "give `pushsync doctor` the receiver's settings (--config, environment)",
        )
    if status is SubscriptionStatus.UNSUBSCRIBE:
        return ok(
            check,
            f"{shown} answers a self-test notification through the proxy: Unsubscribe for an "
            "unknown subscription (unknown_subscriptions = unsubscribe), nothing stored",
        )
    return await _stored(shown, subscription_id, settings)


async def _stored(shown: str, subscription_id: str, settings: Settings) -> Finding:
    """The receiver stored the self-test row: it must be in the doctor's database, then goes."""
    from pushsync.cli.common import require_database
    from pushsync.store import open_store
    from pushsync.store.operator_lookup import forget_notifications_of

    check = "public URL (EWS)"
    try:
        require_database(settings.database_url)  # the doctor creates no database
        async with open_store(settings, migrate=False) as connector:
            forgotten = await forget_notifications_of(connector, subscription_id)
    except PushsyncError as exc:
        forgotten, problem = 0, f" ({exc})"
    else:
        problem = ""
    if not forgotten:
        return warn(
            check,
            f"{shown} answered OK to a self-test notification, but its row is not in "
            f"this database{problem}: the receiver writes to another one",
            "give serve, worker and doctor the same database_url",
        )
    return ok(
        check,
        f"{shown} answers a self-test notification through the proxy: stored (the row was "
        "found in this database and removed)",
    )


def _refused(check: str, shown: str, answer: httpx.Response) -> Finding:
    said = answer.text.strip().splitlines()[0][:200] if answer.text.strip() else ""
    what = f"{shown} answered {answer.status_code} {said}".rstrip()
    if answer.status_code == 403 and said == FILTERED:
        return ok(
            check,
            f"{shown} reachable, and sources are filtered as they should be: this host is "
            "not an allowed source, so the token and storage behind the filter were not tried",
        )
    if answer.status_code == 403 and "token" in said:
        fix = "give serve and worker the same callback_token (the doctor sends the worker's)"
        return fail(check, what, fix)
    if answer.status_code == 404:
        return fail(check, what, f"publish {shown} in the proxy; check ews_path")
    if answer.status_code == 503:
        return fail(check, what, "the receiver cannot store: check its database (`db status`)")
    if answer.status_code in (502, 504):
        return fail(check, what, START_RECEIVER)
    return fail(check, what, "see the receiver's log for this rejection")


async def graph_handshake(client: httpx.AsyncClient, settings: Settings) -> Finding:
    """Graph's validation handshake, as Graph does it when a subscription is created."""
    check = "public URL (Graph)"
    shown = settings.public_url.rstrip("/") + settings.graph_path  # type: ignore[union-attr]
    token = f"pushsync-doctor-{secrets.token_hex(8)}"
    try:
        answer = await client.post(
            shown, params={"validationToken": token}, headers={"Content-Type": "text/plain"}
        )
    except httpx.HTTPError as exc:
        return fail(check, f"{shown} does not answer: {type(exc).__name__} {exc}", START_RECEIVER)
    if answer.status_code == 200 and answer.text == token:
        return ok(check, f"{shown} answers Graph's validation handshake through the proxy")
    if answer.status_code == 200:
        return fail(
            check,
            f"{shown} answered 200 without the validation token: something else serves it",
            "point the proxy's Graph path at `pushsync serve`",
        )
    return _refused(check, shown, answer)


async def clock_skew(client: httpx.AsyncClient, name: str, url: str) -> Finding:
    """The local clock against the Date header of an answer (any status) from `url`."""
    check = f"clock ({name})"
    before = time.time()
    try:
        answer = await client.get(url)
    except httpx.HTTPError as exc:
        return warn(
            check, f"{url} not reachable ({type(exc).__name__}): skew unknown", f"check {url}"
        )
    local = (before + time.time()) / 2
    try:
        remote = parsedate_to_datetime(answer.headers["date"])
    except (KeyError, TypeError, ValueError):
        return warn(check, f"{url} sends no Date header: skew unknown", "check the NTP service")
    skew = remote.timestamp() - local
    what = f"{abs(skew):.0f} s {'behind' if skew > 0 else 'ahead of'} {name} ({url})"
    if abs(skew) > MAX_SKEW:
        return warn(
            check, f"this clock is {what}", "synchronise the clock (chrony, systemd-timesyncd)"
        )
    return ok(check, f"within {MAX_SKEW:.0f} s of {name}'s")


async def graph_permissions(settings: Settings) -> Finding:
    """The application permissions the Graph token says it carries (read, not verified)."""
    check = "Graph permissions"
    try:
        token = await asyncio.wait_for(graph_tokens(settings)(), TIMEOUT * 3)
    except (PushsyncError, TimeoutError) as exc:
        return fail(
            check, f"no token: {exc or 'timed out'}", "check tenant_id, client_id, client_secret"
        )
    claims = token_claims(token)
    if claims is None:
        return warn(check, "the token is not a JWT: its permissions cannot be read", "none needed")
    roles = roles_of(claims)
    held = ", ".join(sorted(roles)) or "none"
    if not roles & CALENDAR_ROLES:
        return fail(
            check,
            f"the token carries {held}, not Calendars.Read: Graph refuses every calendar call",
            "grant the application permission Calendars.Read and an administrator's consent",
        )
    if PLACES_ROLE not in roles:
        return warn(
            check,
            f"the token carries {held}, not {PLACES_ROLE}, which room discovery needs",
            f"grant the application permission {PLACES_ROLE} and an administrator's consent",
        )
    expires = datetime.fromtimestamp(float(claims.get("exp", 0)), UTC)
    return ok(
        check, f"the token carries {held} (tenant {claims.get('tid')}, until {expires:%H:%M} UTC)"
    )
