"""The simulator's Graph REST endpoints under /v1.0, enough for pushsync's Graph client.

| request | answer |
|---|---|
| POST /subscriptions | 201 after validating the URLs; 409 duplicate; 400 past 10,080 min |
| GET /subscriptions | this app's active subscriptions |
| PATCH / DELETE /subscriptions/{id} | renew (200); delete (204); 404 once gone or expired |
| GET /users/{room}/events/{id} | a single, a series master or an occurrence; 404 if gone |
| GET /users/{room}/events/{id}/instances | a series' occurrences and exceptions in a window |
| GET /users/{room}/calendarView/delta | pages (nextLink), then a deltaLink; 410 SyncStateNotFound |
| GET /places/… | rooms and room lists (`simulator/graph/places.py`) |

calendarView delta as event-delta documents it: the window of a round's first request is the
token's for good (a deltaLink carries it; new startDateTime/endDateTime are not read), pages
hold at most `Prefer: odata.maxpagesize` events (PAGE_SIZE when not asked), `$select`,
`$expand`, `$filter`, `$orderby` and `$search` are refused with 400, series masters are never
returned (occurrences and exceptions are), and an event changed since the token whose
instances all lie outside the window comes `@removed` with the reason `deleted`.

Every call needs `Authorization: Bearer` with `GRAPH_TOKEN` (what the test's token provider
gives). Every call about a mailbox (its events, instances and delta; creating, renewing or
deleting a subscription on it) is answered 429 with Retry-After for the configured share of calls
(`busy_rate`, as for EWS: a generic "Too many requests") and, after `throttle()`, for that
mailbox (Outlook's per-mailbox wording, "Application is over its RequestRate limit."). A
mailbox holding 1,000 subscriptions, ours and other apps' (`hold_subscriptions`), refuses a
new one with 429 SubscriptionCountReached and a Retry-After that ends in the year 9999.
Subscription writes (create, renew, delete, GET by id) count against the tenant's write limit
(`write_limit`, subscription_limit.py: 500 per 20 s unless a test sets less): beyond it, 429
with Retry-After, and a violation counted; a create is counted when it arrives and answered
`create_latency` seconds later (a test's slow validation). A renewal Graph refuses
(`refuse_renewal`) answers 400. `drop()` ends a subscription the way Graph may end an app-only
one, without a lifecycle notification: its renewal then answers 404. A room of
`on_premises_rooms` refuses a subscription (404 MailboxNotEnabledForRESTAPI) and is read as any
other; one of `denied_rooms` answers every call about it 403 ErrorAccessDenied.
https://learn.microsoft.com/graph/api/subscription-post-subscriptions
https://learn.microsoft.com/graph/throttling-limits#outlook-service-limits
https://learn.microsoft.com/graph/api/event-delta
https://learn.microsoft.com/graph/throttling
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from pushsync.simulator import access_token
from pushsync.simulator.calendar import RoomCalendar
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.graph import subscription_limit
from pushsync.simulator.graph.places import Places, PlacesError
from pushsync.simulator.graph.resources import ews_id, graph_id, instance_json, master_json
from pushsync.simulator.graph.subscription_limit import SubscriptionWriteLimit
from pushsync.simulator.graph.webhooks import MAX_EXPIRATION, GraphWebhooks, ValidationFailed
from pushsync.simulator.items import Folder
from pushsync.web.asgi import Receive, Scope, Send, respond

# The well-known token of `pushsync simulate` and the tests: one of the authority's tokens, for
# its default tenant and app, valid for a century (Entra's last about an hour).
GRAPH_TOKEN = access_token.issue(
    "simulator-tenant",
    "simulator-app",
    issued_at=1767225600,  # 2026-01-01
    lifetime=100 * 365 * 86400,
    token_id="simulator-well-known",  # noqa: S106 - an id, not a password
)
# What Graph answers a call whose token lacks the calendar permission (403 ErrorAccessDenied):
# https://learn.microsoft.com/graph/resolve-auth-errors
CALENDAR_ROLES = frozenset({"Calendars.Read", "Calendars.ReadWrite"})
PREFIX = "/v1.0"
PAGE_SIZE = 50
MAX_VIEW = timedelta(days=1825)
DELTA_TOKEN_LIFETIME = timedelta(days=7)
JSON = b"application/json; charset=utf-8"
_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)$")
_EVENT = re.compile(r"^/users/([^/]+)/events/([^/]+)$")
_INSTANCES = re.compile(r"^/users/([^/]+)/events/([^/]+)/instances$")
_DELTA = re.compile(r"^/users/([^/]+)/calendarview/delta$", re.IGNORECASE)
_MAXPAGESIZE = re.compile(r"odata\.maxpagesize\s*=\s*(\d+)", re.IGNORECASE)
UNSUPPORTED_IN_DELTA = ("$select", "$expand", "$filter", "$orderby", "$search")  # event-delta
_USER = re.compile(r"^/users/([^/]+)/")
_RESOURCE = re.compile(r"^/?users/([^/]+)/events$", re.IGNORECASE)
MAX_SUBSCRIPTIONS_PER_MAILBOX = 1000  # all apps together
# Graph's answer when the cap is reached, as users report it (docs/simulator.md).
CAP_RETRY_AT = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
CAP_MESSAGE = (
    "Operation: Create; Exception: [Status Code: 429; Reason: Resource"
    " 'SubscriptionCountReached' has reached limit of '1000'. Please retry after"
    " '12/31/9999 11:59:59 PM']"
)

# A renewal Graph will not grant, as reported from the field (docs/simulator.md).
RENEWAL_REFUSED = (
    "Operation: Update; Exception: [Status Code: BadRequest; Reason: ErrorInvalidParameter:"
    " the subscription cannot be renewed]"
)

# A hybrid tenant's on-premises mailbox (KB 4462988) and a mailbox an application access policy
# keeps from the app, as Graph words them (docs/simulator.md: where the docs are silent).
ON_PREMISES_MESSAGE = "REST API is not yet supported for this mailbox."
DENIED_MESSAGE = (
    "Access to OData is disabled: Blocked by tenant configured AppOnly AccessPolicy settings."
)

Answer = tuple[int, dict[str, Any] | None, list[tuple[bytes, bytes]]]


class GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after  # seconds; a 429 without it gets the API's default


class GraphApi:
    def __init__(self, exchange: Exchange, webhooks: GraphWebhooks) -> None:
        self.exchange = exchange
        self.webhooks = webhooks
        self.base_url = ""  # set once the server knows its port
        self.calls: Counter[str] = Counter()
        self.retry_after = 1  # seconds, on every 429
        self.delta_epoch = datetime.min.replace(tzinfo=UTC)  # older delta tokens: 410
        self._throttled: Counter[str] = Counter()  # mailbox -> 429s still to give
        self._in_flight: Counter[str] = Counter()  # mailbox -> requests about it being served
        # limit key -> (window number, requests in it): fixed windows of Exchange time
        self._windows: dict[str, tuple[int, int]] = {}
        self._held_elsewhere: Counter[str] = Counter()  # mailbox -> other apps' subscriptions
        # A test's time compression: subscriptions are granted at most this lifetime (Graph
        # grants what was asked, up to 10,080 minutes). None: as Graph.
        self.max_lifetime: timedelta | None = None
        self.places = Places(exchange)  # rooms and room lists (simulator/graph/places.py)
        # the tenant's, for this app, counted on the simulator's clock (a scaled run's too)
        config, clock = exchange.config, exchange.clock
        self.write_limit = SubscriptionWriteLimit(
            config.graph_subscription_writes or 10**9,
            config.graph_subscription_window_seconds,
            monotonic=lambda: (clock.now() - clock.epoch).total_seconds(),
        )
        self._unrenewable: set[str] = set()  # subscriptions whose renewal answers 400
        # Seconds a create takes to answer once counted against the write limit: a test's slow
        # URL validation or service time (Graph counts a write when it arrives, answers later).
        self.create_latency = 0.0
        # A test's hook, called with the mailbox as a delta round from a token is answered
        # (before the answer leaves): to stop a worker between the delta and its commit.
        self.on_delta_round: Callable[[str], None] | None = None

    def throttle(self, mailbox: str, calls: int = 1) -> None:
        """Answer the next `calls` requests about this mailbox 429."""
        self._throttled[mailbox.lower()] += calls

    def hold_subscriptions(self, mailbox: str, count: int = MAX_SUBSCRIPTIONS_PER_MAILBOX) -> None:
        """Other apps hold `count` subscriptions on this mailbox (0: none); they count against
        the per-mailbox cap but are not ours to list, renew or delete."""
        self._held_elsewhere[mailbox.lower()] = count

    def drop(self, subscription_id: str) -> None:
        """Graph ends the subscription on its own, telling no one (docs/protocol.md §5a)."""
        self.webhooks.delete(subscription_id)

    def refuse_renewal(self, subscription_id: str) -> None:
        """Every renewal of this subscription is answered 400 from now on; it still exists
        (deliveries go on, DELETE works) until it expires."""
        self._unrenewable.add(subscription_id)

    def expire_delta_tokens(self) -> None:
        """Every delta token issued so far is answered 410 SyncStateNotFound from now on."""
        self.delta_epoch = self.exchange.clock.now()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        status, document, headers = await self.answer(scope, body)
        payload = json.dumps(document).encode() if document is not None else b""
        await respond(send, status, payload, JSON, headers)

    async def answer(self, scope: Scope, body: bytes) -> Answer:
        claims = _token_claims(scope)
        if claims is None:
            error = {"error": {"code": "InvalidAuthenticationToken", "message": "no token"}}
            return 401, error, [(b"www-authenticate", b'Bearer realm="simulator"')]
        if not CALENDAR_ROLES & set(claims.get("roles") or ()):
            message = "Access is denied. Check credentials and try again."
            return 403, {"error": {"code": "ErrorAccessDenied", "message": message}}, []
        path = scope["path"][len(PREFIX) :]
        query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode()).items()}
        room = _user_path(path)
        try:
            if room is not None:
                self._enter(room)
            try:
                if self.exchange.config.service_ms > 0:  # a real server takes a while
                    await asyncio.sleep(self.exchange.config.service_ms / 1000)
                return await self._route(scope["method"], path, query, body, _page_size(scope))
            finally:
                if room is not None:
                    self._in_flight[room] -= 1
        except GraphError as exc:
            retry_after = self.retry_after if exc.retry_after is None else exc.retry_after
            headers = [(b"retry-after", str(retry_after).encode())] if exc.status == 429 else []
            return exc.status, {"error": {"code": exc.code, "message": exc.message}}, headers

    def _enter(self, room: str) -> None:
        """One more request about `room` in flight, or 429 beyond the 4 Outlook allows."""
        limit = self.exchange.config.graph_mailbox_concurrency
        if limit > 0 and self._in_flight[room] >= limit:
            self.exchange.violations["graph.concurrency"] += 1
            self.exchange.note("graph.concurrency", room, True)
            raise GraphError(
                429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
            )
        self._in_flight[room] += 1

    def _within(self, key: str, limit: int, window_s: float, violation: str) -> int | None:
        """Count one request against a fixed window; the seconds until the window ends when
        the limit is already used up (counted as a violation), else None."""
        if limit <= 0:
            return None
        elapsed = (self.exchange.clock.now() - self.exchange.clock.epoch).total_seconds()
        number = int(elapsed // window_s)
        seen, count = self._windows.get(key, (number, 0))
        if seen != number:
            count = 0
        if count >= limit:
            self.exchange.violations[violation] += 1
            return max(1, math.ceil((number + 1) * window_s - elapsed))
        self._windows[key] = (number, count + 1)
        return None

    async def _route(
        self, method: str, path: str, query: dict[str, str], body: bytes, page_size: int
    ) -> Answer:
        if self.places.serves(path):
            return self._places(method, path, query)
        if path == "/subscriptions":
            if method == "POST":
                return await self._create(_json(body))
            return self._ok(method, "GET", "list", {"value": self._subscriptions()})
        if match := _SUBSCRIPTION.match(path):
            return self._subscription(method, match.group(1), body)
        if match := _INSTANCES.match(path):
            calendar = self._call(method, "instances", match.group(1))
            return 200, self._instances(calendar, match.group(2), query), []
        if match := _EVENT.match(path):
            calendar = self._call(method, "event", match.group(1))
            return 200, self._event(calendar, unquote(match.group(2))), []
        if match := _DELTA.match(path):
            calendar = self._call(method, "delta", match.group(1))
            return 200, self._delta(calendar, query, page_size), []
        raise GraphError(404, "ResourceNotFound", f"{method} {path} is not served")

    def _places(self, method: str, path: str, query: dict[str, str]) -> Answer:
        self.calls["places"] += 1
        try:
            return 200, self.places.answer(method, path, query, self.base_url), []
        except PlacesError as exc:
            raise GraphError(exc.status, exc.code, exc.message) from None

    def _ok(self, method: str, allowed: str, operation: str, document: dict[str, Any]) -> Answer:
        if method != allowed:
            raise GraphError(405, "MethodNotAllowed", f"{method} not allowed")
        self.calls[operation] += 1
        return 200, document, []

    def _call(self, method: str, operation: str, mailbox: str) -> RoomCalendar:
        """Count, journal and maybe throttle one call about a mailbox."""
        if method != "GET":
            raise GraphError(405, "MethodNotAllowed", f"{method} not allowed")
        room = unquote(mailbox).lower()
        self.calls[operation] += 1
        self._admit(operation, room)
        self._refuse_denied(room)
        self.exchange.attend(room)
        calendar = self.exchange.calendar(room)
        if calendar is None:
            raise GraphError(404, "ErrorInvalidUser", f"no mailbox {room}")
        return calendar

    def _admit(self, operation: str, room: str) -> None:
        """Journal one call about a room; 429 if it is throttled or the server is busy."""
        config = self.exchange.config
        rate_wait = self._within(
            "mailbox:" + room,
            config.graph_mailbox_requests,
            config.graph_mailbox_window_seconds,
            "graph.requests",
        )
        if rate_wait is not None:
            self.exchange.note(f"graph.{operation}", room, True)
            raise GraphError(
                429, "ApplicationThrottled", "Application is over its RequestRate limit.", rate_wait
            )
        mailbox_limit = self._throttled[room] > 0
        busy = mailbox_limit or self.exchange.busy()
        self.exchange.note(f"graph.{operation}", room, busy)
        if mailbox_limit:
            self._throttled[room] -= 1
            raise GraphError(
                429, "ApplicationThrottled", "Application is over its RequestRate limit."
            )
        if busy:
            raise GraphError(429, "TooManyRequests", "Too many requests. Please try again later.")

    # -- subscriptions ----------------------------------------------------------------------

    async def _create(self, request: dict[str, Any]) -> Answer:
        self.calls["subscribe"] += 1
        self._count_write()
        if self.create_latency > 0:
            await asyncio.sleep(self.create_latency)
        resource = str(request.get("resource", ""))
        match = _RESOURCE.match(resource)
        if not match:
            raise GraphError(400, "InvalidRequest", f"resource {resource!r} not supported")
        room = unquote(match.group(1)).lower()
        self._admit("subscribe", room)
        calendar = self.exchange.calendar(room)
        if calendar is None:
            raise GraphError(404, "ResourceNotFound", f"no mailbox {room}")
        self._refuse_denied(room)
        if self.exchange.config.on_premises(room):
            raise GraphError(404, "MailboxNotEnabledForRESTAPI", ON_PREMISES_MESSAGE)
        change_types = frozenset(str(request.get("changeType", "")).split(","))
        if not change_types <= {"created", "updated", "deleted"}:
            raise GraphError(400, "InvalidRequest", "changeType must be created, updated, deleted")
        expires = self._expiration(request.get("expirationDateTime"))
        client_state = request.get("clientState")
        if client_state is not None and len(str(client_state)) > 128:
            raise GraphError(400, "InvalidRequest", "clientState is longer than 128 characters")
        url = str(request.get("notificationUrl", ""))
        if self.webhooks.duplicate(resource, url, change_types) is not None:
            raise GraphError(409, "ExtensionError", "a subscription for this resource exists")
        self._check_cap(room)
        try:
            subscription = await self.webhooks.create(
                calendar,
                resource=resource,
                change_types=change_types,
                notification_url=url,
                lifecycle_url=request.get("lifecycleNotificationUrl"),
                client_state=client_state,
                expires=expires,
            )
        except ValidationFailed as exc:
            raise GraphError(
                400, "ValidationError", f"Subscription validation request failed: {exc}"
            ) from None
        return 201, subscription.as_json(), []

    def _refuse_denied(self, room: str) -> None:
        if self.exchange.config.denied(room):
            raise GraphError(403, "ErrorAccessDenied", DENIED_MESSAGE)

    def _check_cap(self, room: str) -> None:
        held = len(self.webhooks.active(room)) + self._held_elsewhere[room]
        if held >= MAX_SUBSCRIPTIONS_PER_MAILBOX:
            wait = int((CAP_RETRY_AT - self.exchange.clock.now()).total_seconds())
            raise GraphError(429, "ExtensionError", CAP_MESSAGE, retry_after=max(wait, 0))

    def _subscription(self, method: str, subscription_id: str, body: bytes) -> Answer:
        if method in ("PATCH", "DELETE", "GET"):
            self._count_write()
        subscription = self.webhooks.subscriptions.get(subscription_id)
        now = self.exchange.clock.now()
        if subscription is None or not subscription.active or subscription.expires <= now:
            raise GraphError(404, "ResourceNotFound", f"no subscription {subscription_id}")
        if method == "DELETE":
            self.calls["unsubscribe"] += 1
            self._admit("unsubscribe", subscription.calendar.mailbox)
            self.webhooks.delete(subscription_id)
            return 204, None, []
        if method == "PATCH":
            self.calls["renew"] += 1
            self._admit("renew", subscription.calendar.mailbox)
            if subscription_id in self._unrenewable:
                raise GraphError(400, "ExtensionError", RENEWAL_REFUSED)
            subscription.expires = self._expiration(_json(body).get("expirationDateTime"))
            return 200, subscription.as_json(), []
        return self._ok(method, "GET", "subscription", subscription.as_json())

    def _count_write(self) -> None:
        """One subscription write against the tenant's limit: 429 beyond it."""
        refused_before = self.write_limit.violations
        retry_after = self.write_limit.admit()
        if self.write_limit.violations > refused_before:
            self.exchange.violations["graph.subscription_writes"] += 1
        if retry_after is not None:
            raise GraphError(
                429, subscription_limit.CODE, subscription_limit.MESSAGE, retry_after=retry_after
            )

    def _expiration(self, value: Any) -> datetime:
        try:
            expires = _parse_time(str(value))
        except ValueError:
            raise GraphError(400, "InvalidRequest", "expirationDateTime is not a time") from None
        now = self.exchange.clock.now()
        if expires <= now or expires > now + MAX_EXPIRATION:
            raise GraphError(
                400, "InvalidRequest", "expirationDateTime must be within 10080 minutes from now"
            )
        return expires if self.max_lifetime is None else min(expires, now + self.max_lifetime)

    def _subscriptions(self) -> list[dict[str, Any]]:
        return [s.as_json() for s in self.webhooks.active()]

    # -- events -----------------------------------------------------------------------------

    def _event(self, calendar: RoomCalendar, event_id: str) -> dict[str, Any]:
        item = calendar.item(ews_id(event_id))
        if item is not None and item.folder is Folder.CALENDAR:
            return master_json(calendar.mailbox, item)
        found = calendar.occurrence(ews_id(event_id))
        if found is not None:
            master, original_start = found
            if original_start not in master.deleted:
                return instance_json(calendar.instance(master, original_start))
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found")

    def _instances(
        self, calendar: RoomCalendar, master_id: str, query: dict[str, str]
    ) -> dict[str, Any]:
        start, end = _window(query)
        master = calendar.item(ews_id(unquote(master_id)))
        if master is None or master.folder is not Folder.CALENDAR:
            raise GraphError(404, "ErrorItemNotFound", "The specified object was not found")
        found = [instance_json(i) for i in calendar.instances(start, end, of=[master])]
        return {"value": [i for i in found if i["type"] != "singleInstance"]}

    def _delta(
        self, calendar: RoomCalendar, query: dict[str, str], page_size: int
    ) -> dict[str, Any]:
        refused = [name for name in UNSUPPORTED_IN_DELTA if name in query]
        if refused:
            raise GraphError(
                400, "ErrorInvalidUrlQuery", f"{refused[0]} is not supported with delta"
            )
        if "$deltatoken" in query:  # a new round: what changed since the token
            state = self._state(query["$deltatoken"], calendar)
            state = state | {"upto": calendar.log.sequence, "offset": 0}
            if self.on_delta_round is not None:
                self.on_delta_round(calendar.mailbox)
            return self._changes(calendar, state, page_size)
        if "$skiptoken" in query:
            state = self._state(query["$skiptoken"], calendar)
            if "upto" in state:
                return self._changes(calendar, state, page_size)
        else:
            start, end = _window(query)
            state = {
                "seq": calendar.log.sequence,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "offset": 0,
            }
        start, end = _parse_time(state["start"]), _parse_time(state["end"])
        instances = [instance_json(i) for i in calendar.instances(start, end)]
        return self._page(calendar, state, instances, page_size)

    def _page(
        self,
        calendar: RoomCalendar,
        state: dict[str, Any],
        value: list[dict[str, Any]],
        page_size: int,
    ) -> dict[str, Any]:
        """One page of a round's events; a nextLink while more follow, else the deltaLink."""
        offset = int(state.get("offset", 0))
        page = value[offset : offset + page_size]
        if offset + page_size < len(value):
            token = self._token(state | {"offset": offset + page_size})
            return {"value": page, "@odata.nextLink": self._link(calendar, "$skiptoken", token)}
        done = {k: v for k, v in state.items() if k != "upto"}
        done["seq"] = state.get("upto", state["seq"])
        return {"value": page, "@odata.deltaLink": self._delta_link(calendar, done)}

    def _changes(
        self, calendar: RoomCalendar, state: dict[str, Any], page_size: int
    ) -> dict[str, Any]:
        """What changed between the token and the round's start (`upto`): the current
        instances of changed items inside the window, and removed ids: deleted items, and
        changed ones with no instance left inside it (event-delta: "events that are outside
        the date range and that have been added, deleted, or updated")."""
        start, end = _parse_time(state["start"]), _parse_time(state["end"])
        changed: dict[str, None] = {}
        for event in calendar.log.since(int(state["seq"])):
            if event.sequence > int(state["upto"]):
                break
            for item_id in (event.old_item_id, event.item_id):
                if item_id is not None:
                    changed[item_id] = None
        value: list[dict[str, Any]] = []
        for item_id in changed:  # each changed item expanded alone
            item = calendar.item(item_id)
            if item is not None and item.folder is not Folder.CALENDAR:
                continue  # the id an event got when moved out (Deleted Items): not the view's
            found = [] if item is None else calendar.instances(start, end, of=[item])
            if not found:
                value.append({"id": graph_id(item_id), "@removed": {"reason": "deleted"}})
            value += [instance_json(i) for i in found]
        return self._page(calendar, state, value, page_size)

    def _delta_link(self, calendar: RoomCalendar, state: dict[str, Any]) -> str:
        issued = {"issued": self.exchange.clock.now().isoformat(), "offset": 0}
        return self._link(calendar, "$deltatoken", self._token(state | issued))

    def _link(self, calendar: RoomCalendar, name: str, token: str) -> str:
        mailbox = quote(calendar.mailbox)
        return f"{self.base_url}{PREFIX}/users/{mailbox}/calendarView/delta?{name}={token}"

    def _token(self, state: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()

    def _state(self, token: str, calendar: RoomCalendar) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(base64.urlsafe_b64decode(token.encode()))
        except ValueError:
            raise GraphError(400, "InvalidRequest", "not a token of ours") from None
        issued = state.get("issued")
        if issued is not None:
            at = _parse_time(issued)
            if at < self.delta_epoch or self.exchange.clock.now() - at > DELTA_TOKEN_LIFETIME:
                raise GraphError(410, "SyncStateNotFound", "The sync state is not found")
            if not calendar.log.holds(int(state["seq"]), self.exchange.clock.now()):
                raise GraphError(410, "SyncStateNotFound", "The sync state is not found")
        return state


def _user_path(path: str) -> str | None:
    """The mailbox a `/users/{mailbox}/…` request is about (lower-cased), else None."""
    match = _USER.match(path)
    return unquote(match.group(1)).lower() if match else None


def _token_claims(scope: Scope) -> dict[str, Any] | None:
    """The claims of the request's bearer token, if the simulator's authority issued it."""
    for name, value in scope["headers"]:
        if name == b"authorization" and value.startswith(b"Bearer "):
            return access_token.verified_claims(value[len(b"Bearer ") :].decode("latin-1"))
    return None


def _page_size(scope: Scope) -> int:
    """`Prefer: odata.maxpagesize=n` (among other preferences, in one header or several)."""
    for name, value in scope["headers"]:
        if name == b"prefer" and (found := _MAXPAGESIZE.search(value.decode("latin-1"))):
            return max(int(found.group(1)), 1)
    return PAGE_SIZE


def _window(query: dict[str, str]) -> tuple[datetime, datetime]:
    try:
        start, end = _parse_time(query["startDateTime"]), _parse_time(query["endDateTime"])
    except (KeyError, ValueError):
        raise GraphError(400, "ErrorInvalidParameter", "startDateTime and endDateTime") from None
    if end <= start or end - start > MAX_VIEW:
        raise GraphError(400, "ErrorInvalidParameter", "the window spans at most 1825 days")
    return start, end


def _parse_time(value: str) -> datetime:
    text = re.sub(r"\.(\d{6})\d+", r".\1", value.replace("Z", "+00:00"))
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except ValueError:
        raise GraphError(400, "BadRequest", "the body is not JSON") from None
    if not isinstance(document, dict):
        raise GraphError(400, "BadRequest", "the body is not a JSON object")
    return document


async def read_body(receive: Receive) -> bytes:
    """A request's whole body (the simulator's token authority reads its bodies so too)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)
