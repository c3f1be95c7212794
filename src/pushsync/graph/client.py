"""Calls to Microsoft Graph with httpx: subscriptions, events, instances, calendarView delta.

https://learn.microsoft.com/graph/api/resources/subscription
https://learn.microsoft.com/graph/api/event-get
https://learn.microsoft.com/graph/api/event-list-instances
https://learn.microsoft.com/graph/api/event-delta
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits

Graph's answers become our exceptions here and nowhere else: 429 and 503 are `Throttled` with
the Retry-After the server gave, 401/403 `AuthenticationFailed`, 404 `NotFound`, 409
`Conflict`, 410 `DeltaExpired`, 400 on a renewal `RenewalRefused`, other 5xx and transport
failures `ExchangeUnavailable`.
Outlook allows four requests in flight per app and mailbox; a semaphore per mailbox keeps to
that. Times are asked for in UTC (`Prefer: outlook.timezone="UTC"`). A subscription write can
say when its request had been sent (`Sent`): Graph counts the write against its limit then,
not when it answers (store/write_budget.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from pushsync.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    SubscriptionRefused,
    Throttled,
)
from pushsync.graph.auth import TokenProvider
from pushsync.graph.events import parse_time

GRAPH_URL = "https://graph.microsoft.com/v1.0"
PER_MAILBOX = 4  # concurrent requests per app and mailbox (Outlook limit)
# Connections to Graph: subscription writes and reads each have their own, as many as each
# keeps in flight, every one kept alive. httpcore (1.0.9) looks at every pooled connection for
# each idle one on every request and answer (encode/httpcore#1035), a cost in the square of
# the pool's size: with one pool of 100 that bookkeeping was a quarter of a worker's CPU in
# bench/fleet's burst (5,000 rooms, py-spy), though reads need a few dozen at once.
# Writes: the manager keeps about a hundred in flight (subscription_manager.py: Graph
# validates the notification URL before it answers a creation), and httpx's default keeps 20
# of its 100 alive, so that at fleet size most writes paid a new connection (and TLS) each.
CONNECTIONS = 100
# Reads: what one process has under way at once; further reads wait their turn before the pool.
READ_CONNECTIONS = 24
DEFAULT_RETRY_AFTER = 10.0
MAX_PAGES = 1000
# events per calendarView delta page we ask for (`Prefer: odata.maxpagesize`, event-delta);
# Graph documents no ceiling or default for it
DELTA_PAGE_SIZE = 100
SUBSCRIPTION_CAP = "SubscriptionCountReached"  # 1,000 subscriptions on one mailbox, all apps


class NotFound(ExchangeError):
    """The event (or subscription) is not there (any more)."""

    retryable = False


class Conflict(SubscriptionRefused):
    """409: a subscription like this one exists already."""


class RenewalRefused(ExchangeError):
    """400 on a renewal (PATCH): Graph will not extend this subscription (docs/protocol.md
    §5a); it is to be recreated, not renewed again."""

    retryable = False


class DeltaExpired(ExchangeError):
    """410 SyncStateNotFound: the delta token is gone; a full resync follows."""


class Sent:
    """When one request had been sent in full (`time.monotonic()`), from httpcore's trace
    events; None unless its answer then began to come back.

    Graph counts a subscription write when the request arrives, which is after it was sent and
    before the answer: a write that was sent but never answered (a timeout, a dropped
    connection) may have arrived any time since, so it tells no moment (`at` stays None), as
    one never sent does."""

    __slots__ = ("_sent", "at")

    def __init__(self) -> None:
        self._sent: float | None = None
        self.at: float | None = None

    def seconds_ago(self) -> float | None:
        return None if self.at is None else time.monotonic() - self.at

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's `trace` extension: `http11.send_request_body.complete` (or `http2.…`)."""
        if event.endswith(".send_request_body.complete"):
            self._sent = time.monotonic()
        elif event.endswith(".receive_response_headers.complete"):
            self.at = self._sent


@dataclass(frozen=True, slots=True)
class GraphSubscription:
    subscription_id: str
    resource: str
    expires_at: datetime
    notification_url: str | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    events: list[dict[str, Any]]
    delta_link: str


class GraphClient:
    def __init__(
        self,
        tokens: TokenProvider,
        base_url: str = GRAPH_URL,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._tokens = tokens
        self._base = base_url.rstrip("/")
        self._writes = _pool(CONNECTIONS, timeout, transport)  # subscription writes
        self._reads = self._writes if transport else _pool(READ_CONNECTIONS, timeout, None)
        self._reading = asyncio.Semaphore(READ_CONNECTIONS)
        self._slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(PER_MAILBOX)
        )
        self.calls = 0

    async def aclose(self) -> None:
        await self._writes.aclose()
        if self._reads is not self._writes:
            await self._reads.aclose()

    # -- subscriptions ----------------------------------------------------------------------

    async def create_subscription(
        self,
        mailbox: str,
        *,
        notification_url: str,
        lifecycle_url: str,
        client_state: str,
        expires_at: datetime,
        sent: Sent | None = None,
    ) -> GraphSubscription:
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": notification_url,
            "lifecycleNotificationUrl": lifecycle_url,
            "resource": events_resource(mailbox),
            "expirationDateTime": _time(expires_at),
            "clientState": client_state,
        }
        answer = await self._request("POST", "/subscriptions", mailbox, json=body, sent=sent)
        return _subscription(answer)

    async def renew_subscription(
        self, subscription_id: str, expires_at: datetime, sent: Sent | None = None
    ) -> datetime:
        body = {"expirationDateTime": _time(expires_at)}
        path = f"/subscriptions/{subscription_id}"
        answer = await self._request("PATCH", path, json=body, sent=sent)
        return parse_time(answer["expirationDateTime"])

    async def delete_subscription(self, subscription_id: str, sent: Sent | None = None) -> None:
        with contextlib.suppress(NotFound):  # gone already: what we wanted
            await self._request("DELETE", f"/subscriptions/{subscription_id}", sent=sent)

    async def subscriptions(self) -> list[GraphSubscription]:
        """This app's subscriptions (to find the one a 409 refers to)."""
        found = []
        async for page in self._pages(self._base + "/subscriptions", None, None):
            found += [_subscription(item) for item in page]
        return found

    # -- events -----------------------------------------------------------------------------

    async def event(self, mailbox: str, event_id: str) -> dict[str, Any] | None:
        """One event (single, series master or occurrence), or None if it is gone."""
        try:
            return await self._request("GET", f"{_user(mailbox)}/events/{quote(event_id)}", mailbox)
        except NotFound:
            return None

    async def instances(
        self, mailbox: str, master_id: str, start: datetime, end: datetime
    ) -> list[dict[str, Any]] | None:
        """A series' occurrences and exceptions in [start, end); None if the series is gone."""
        url = f"{self._base}{_user(mailbox)}/events/{quote(master_id)}/instances"
        params = {"startDateTime": _time(start), "endDateTime": _time(end)}
        found: list[dict[str, Any]] = []
        try:
            async for page in self._pages(url, params, mailbox):
                found += page
        except NotFound:
            return None
        return found

    async def calendar_view_delta(
        self,
        mailbox: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        delta_link: str | None = None,
    ) -> Delta:
        """Every page of a calendarView delta round: a full one over [start, end), or the
        changes since `delta_link`. Raises DeltaExpired when Graph forgot the token."""
        if delta_link is not None:
            url, params = delta_link, None
        else:
            if start is None or end is None:
                raise ValueError("a first delta round needs a window")
            url = f"{self._base}{_user(mailbox)}/calendarView/delta"
            params = {"startDateTime": _time(start), "endDateTime": _time(end)}
        events: list[dict[str, Any]] = []
        last: dict[str, Any] = {}
        prefer = f"odata.maxpagesize={DELTA_PAGE_SIZE}"
        async for page in self._pages(url, params, mailbox, last=last, prefer=prefer):
            events += page
        link = last.get("@odata.deltaLink")
        if not link:
            raise ExchangeUnavailable("calendarView delta ended without a deltaLink")
        return Delta(events, str(link))

    # -- collections not about one mailbox (the directory) -----------------------------------

    async def collection(self, path: str, params: dict[str, str] | None = None) -> list[Any]:
        """Every item of a collection, page by page (`@odata.nextLink`), e.g. Places."""
        found: list[Any] = []
        async for page in self._pages(self._base + path, params, None):
            found += page
        return found

    # -- plumbing ---------------------------------------------------------------------------

    async def _pages(
        self,
        url: str,
        params: dict[str, str] | None,
        mailbox: str | None,
        *,
        last: dict[str, Any] | None = None,
        prefer: str | None = None,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        next_url: str | None = url
        for _ in range(MAX_PAGES):
            if next_url is None:
                return
            answer = await self._request("GET", next_url, mailbox, params=params, prefer=prefer)
            params = None  # a nextLink carries its own query
            yield list(answer.get("value") or [])
            next_url = answer.get("@odata.nextLink")
            if last is not None:
                last.update(answer)
        raise ExchangeUnavailable(f"more than {MAX_PAGES} pages")

    async def _request(
        self,
        method: str,
        path: str,
        mailbox: str | None = None,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        prefer: str | None = None,
        sent: Sent | None = None,
    ) -> dict[str, Any]:
        """One request; `prefer`, a preference besides the time zone (its own Prefer header);
        `sent` learns when it was sent."""
        url = path if path.startswith("http") else self._base + path
        headers = [
            ("Authorization", f"Bearer {await self._tokens()}"),
            ("Prefer", 'outlook.timezone="UTC"'),
        ]
        if prefer is not None:
            headers.append(("Prefer", prefer))
        reading = method == "GET"
        turn = self._reading if reading else contextlib.nullcontext()
        async with self._slots[(mailbox or "").lower()], turn:
            for attempt in (1, 2):
                self.calls += 1
                try:
                    response = await (self._reads if reading else self._writes).request(
                        method,
                        url,
                        json=json,
                        params=params,
                        headers=headers,
                        extensions={} if sent is None else {"trace": sent.trace},
                    )
                    break
                except httpx.RemoteProtocolError as exc:
                    # A kept-alive connection the server closed as we sent on it: a read is
                    # sent again once, on a new connection; a write may have been done.
                    if not reading or attempt == 2:
                        raise ExchangeUnavailable(f"Graph {method}: {_said(exc)}") from None
                except httpx.HTTPError as exc:
                    raise ExchangeUnavailable(f"Graph {method}: {_said(exc)}") from None
        return _answer(method, response)


def _said(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}"


def _pool(
    connections: int, timeout: float, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(timeout=timeout, transport=transport, limits=limits)


def events_resource(mailbox: str) -> str:
    return f"/users/{mailbox}/events"


def _answer(method: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    if status < 300:
        if status == 204 or not response.content:
            return {}
        document = response.json()
        return document if isinstance(document, dict) else {}
    code, message = _error(response)
    detail = f"Graph {method} answered {status} {code}: {message}"
    if status in (429, 503):
        raise Throttled(detail, _retry_after(response), _limit(code, message))
    if status in (401, 403):
        raise AuthenticationFailed(detail)
    if status == 404:
        raise NotFound(detail)
    if status == 409:
        raise Conflict(detail, code)
    if status == 410:
        raise DeltaExpired(detail)
    if status >= 500:
        raise ExchangeUnavailable(detail)
    if status == 400 and method == "PATCH":
        raise RenewalRefused(detail)
    raise SubscriptionRefused(detail, code) if method == "POST" else ExchangeError(detail)


def _error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
        return str(error.get("code", "")), str(error.get("message", ""))[:500]
    except (ValueError, AttributeError):
        return "", response.text[:200]


def _limit(code: str, message: str) -> str:
    """The limit a 429 names. The per-mailbox subscription cap comes as a generic code with
    "Resource 'SubscriptionCountReached' has reached limit of '1000'" in the message."""
    return SUBSCRIPTION_CAP if SUBSCRIPTION_CAP in message else code


def _retry_after(response: httpx.Response) -> float:
    """Retry-After in delta-seconds (what Graph sends) or as an HTTP-date (RFC 9110 §10.2.3)."""
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - datetime.now(UTC)).total_seconds(), 0.0)


def _subscription(item: dict[str, Any]) -> GraphSubscription:
    return GraphSubscription(
        subscription_id=str(item["id"]),
        resource=str(item.get("resource", "")),
        expires_at=parse_time(item["expirationDateTime"]),
        notification_url=item.get("notificationUrl"),
    )


def _user(mailbox: str) -> str:
    return f"/users/{quote(mailbox)}"


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
