"""The admin listener: health, readiness, metrics and status, on loopback by default.

It runs in the supervising process, beside the public listener's workers and never inside the
public application, so none of these paths can answer on the public port.

- `/healthz`  200 while the process runs;
- `/readyz`   200 when the database answers with the current schema, the public listener
              accepts connections and the address ranges are loaded; 503 with the reasons if not.
              `processes_down` names each pushsync process down and since when: it does not
              make the receiver unready (notifications are still stored and answered, and wait
              for the worker), but says why rooms stop syncing;
- `/metrics`  Prometheus text, summed over the worker processes (`pushsync.web.metrics`), with
              the rooms' and the processes' gauges;
- `/status`   JSON: the ranges in use, the authentication mode, the listeners and limits;
- `/rooms`    JSON: the rooms counted per status, then their sync status a page at a time, the
              worst first (`room_status`, `room_listing`: `?state=`, `?limit=`, `?after=`),
              and every process's liveness (`process_status`);
- `/`         the same as a page for people: which process is down since when, how many rooms
              are in sync, the fleet's last 24 hours as charts, and why the worst of the others
              are not, since when, and what to do;
- `/rooms/{mailbox}`          one room's page: its history, and a "resync now" button that
- `/rooms/{mailbox}/resync`   POSTs here (a per-page token, and no cross-site request), which
                              asks the worker for a resync and redirects back to the page.

The supervising process's heartbeat (kind "receiver") is beaten from this listener's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pushsync.admin.metrics import rooms_exposition
from pushsync.admin.process_status import fleet_of_rooms
from pushsync.admin.room_listing import BadListing, Listing, listing_json
from pushsync.admin.room_page import render_room, render_unknown_room, resync_token
from pushsync.admin.room_status import (
    Cursor,
    Overview,
    RoomStatus,
    discovery_answers,
    overview,
    room_overview,
)
from pushsync.admin.status_page import ATTENTION, HISTORY, render
from pushsync.errors import PushsyncError
from pushsync.settings import Settings
from pushsync.store import Connector, connect
from pushsync.store.fleet_samples import FleetSamples
from pushsync.store.migrations import applied_versions, latest_version
from pushsync.store.operator_lookup import UnknownName, find_room
from pushsync.store.processes import Heartbeat, ProcessHeartbeats
from pushsync.store.subscriptions import Subscriptions
from pushsync.web.access.address_filter import AddressFilter
from pushsync.web.asgi import Receive, Scope, Send, respond
from pushsync.web.metrics import exposition
from pushsync.web.request import Request, read_body

log = logging.getLogger("pushsync.admin")

_JSON = b"application/json"
_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
_HTML = b"text/html; charset=utf-8"
_ROOM = "/rooms/"
_RESYNC = "/resync"
MAX_FORM_BYTES = 4096
RESYNC_REASON = "asked for on the status page"


class AdminApp:
    def __init__(
        self, settings: Settings, allowed: AddressFilter, multiproc_dir: Path | None
    ) -> None:
        self.settings = settings
        self.allowed = allowed
        self.multiproc_dir = multiproc_dir
        self._connector: Connector | None = None  # opened at the first need, kept till shutdown
        self._opening = asyncio.Lock()
        self._form_secret = secrets.token_bytes(32)  # the resync buttons' tokens, per process

    async def store(self) -> Connector:
        """The listener's one connector. Opened lazily, so the listener starts (and /readyz
        says why it is not ready) while the database is away; a failed open is tried again at
        the next request."""
        async with self._opening:
            if self._connector is None:
                connector = connect(self.settings.database_url, **self.settings.connector_options())
                try:
                    await connector.open()
                except BaseException:
                    with contextlib.suppress(Exception):  # what a failed open left half-made
                        await connector.close()
                    raise
                self._connector = connector
            return self._connector

    async def close(self) -> None:
        if self._connector is not None:
            await self._connector.close()
            self._connector = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = Request.from_scope(scope)
        if request.method == "POST" and _is_resync(request.path):
            await self._resync(request, receive, send)
        else:
            await self._get(request, send)

    async def _get(self, request: Request, send: Send) -> None:
        if request.method not in ("GET", "HEAD"):
            await respond(send, 405, b"GET only\n", extra_headers=[(b"allow", b"GET, HEAD")])
        elif request.path == "/healthz":
            await respond(send, 200, b"ok\n")
        elif request.path == "/readyz":
            problems = await self.problems()
            ready = {"ready": not problems, "problems": problems}
            body = json.dumps(ready | {"processes_down": await self._processes_down()}).encode()
            await respond(send, 503 if problems else 200, body, _JSON)
        elif request.path == "/metrics":
            body = exposition(self.multiproc_dir) + await self._rooms_metrics()
            await respond(send, 200, body, _PROMETHEUS)
        elif request.path == "/status":
            await respond(send, 200, json.dumps(self.status(), indent=1).encode(), _JSON)
        elif request.path == "/":
            await self._status(send)
        elif request.path == "/rooms":
            await self._rooms(request, send)
        elif request.path.startswith(_ROOM) and not _is_resync(request.path):
            await self._room(request, send)
        else:
            await respond(send, 404, b"not found\n")

    async def overview(
        self,
        now: datetime,
        *,
        state: str | None = None,
        after: Cursor | None = None,
        limit: int | None = None,
    ) -> Overview:
        """The rooms counted, and the page of them asked for (`room_status.overview`)."""
        dead_after = timedelta(seconds=self.settings.process_dead_after_seconds)
        configured = self.settings.protocols_needed()
        return await overview(
            await self.store(), now, dead_after, configured, state=state, after=after, limit=limit
        )

    async def _rooms_metrics(self) -> bytes:
        """The rooms' gauges; without them (database down) the receiver's own still answer."""
        now = datetime.now(UTC)
        try:
            found = await self.overview(now, limit=0)
        except Exception as exc:  # the receiver's own metrics must still answer
            log.warning("metrics: database", extra={"detail": str(exc)})
            return rooms_exposition(None, now)
        return rooms_exposition(found.totals, now, found.fleet)

    async def _rooms(self, request: Request, send: Send) -> None:
        try:
            listing = Listing.from_query(request.query)
        except BadListing as exc:
            await respond(send, 400, f"{exc}\n".encode())
            return
        now = datetime.now(UTC)
        try:
            found = await self.overview(
                now, state=listing.state, after=listing.after, limit=listing.limit
            )
            discovery = await discovery_answers(await self.store())
        except Exception as exc:
            log.warning("status: database", extra={"detail": str(exc)})
            await respond(send, 503, f"database: {type(exc).__name__}: {exc}\n".encode())
            return
        body = listing_json(found, listing, discovery)
        await respond(send, 200, json.dumps(body, indent=1).encode(), _JSON)

    async def _status(self, send: Send) -> None:
        """The status page: the totals, the worst rooms out of sync, the rooms moving."""
        now = datetime.now(UTC)
        try:
            found = await self.overview(now, state="problem", limit=ATTENTION)
            moving = await self._moving(found, now)
            connector = await self.store()
            discovery = await discovery_answers(connector)
            samples = FleetSamples(connector)
            history = await samples.history(now - HISTORY)
            since = await samples.out_of_sync()
        except Exception as exc:
            log.warning("status: database", extra={"detail": str(exc)})
            await respond(send, 503, f"database: {type(exc).__name__}: {exc}\n".encode())
            return
        body = render(
            found.rooms, now, history, since, found.fleet, discovery, found.totals, moving
        )
        await respond(send, 200, body, _HTML)

    async def _moving(self, found: Overview, now: datetime) -> list[RoomStatus]:
        """The rooms being migrated, read only when the totals say some are."""
        if not found.totals.moving:
            return []
        return (await self.overview(now, state="moving", limit=ATTENTION)).rooms

    async def _room(self, request: Request, send: Send) -> None:
        """One room's page; a room the database does not know is a 404 page."""
        given = unquote(request.path.removeprefix(_ROOM))
        now = datetime.now(UTC)
        try:
            connector = await self.store()
            mailbox = await find_room(connector, given, [])
            dead_after = timedelta(seconds=self.settings.process_dead_after_seconds)
            configured = self.settings.protocols_needed()
            status, processes = await room_overview(connector, mailbox, now, dead_after, configured)
            samples = FleetSamples(connector)
            history = await samples.room_history(mailbox)
            since = await samples.room_since(mailbox)
            async with connector.session() as session:
                room = await session.fetch_one("room_by_mailbox", {"mailbox": mailbox})
        except UnknownName as exc:
            await respond(send, 404, render_unknown_room(given, str(exc)), _HTML)
            return
        except PushsyncError as exc:
            log.warning("room page: database", extra={"detail": str(exc)})
            await respond(send, 503, f"database: {exc}\n".encode())
            return
        if status is None or room is None:  # a room without a row of its own: nothing to show
            await respond(send, 404, render_unknown_room(given, f"no room {given!r}"), _HTML)
            return
        token = resync_token(self._form_secret, mailbox)
        queued = b"queued=1" in request.query
        body = render_room(
            status, room, history, since, now, token=token, queued=queued, processes=processes
        )
        await respond(send, 200, body, _HTML)

    async def _resync(self, request: Request, receive: Receive, send: Send) -> None:
        """Ask the worker for a resync of the room (as `pushsync resync ROOM` names it), then
        back to its page. Refused: a request another site made the browser send, a form
        without this page's token, a room nobody knows."""
        given = unquote(request.path.removeprefix(_ROOM).removesuffix(_RESYNC))
        refused = _cross_site(request, self.settings.admin_host)
        if refused:
            await respond(send, 403, f"refused: {refused}\n".encode())
            return
        try:
            form = parse_qs((await read_body(request, receive, MAX_FORM_BYTES)).decode())
            connector = await self.store()
            mailbox = await find_room(connector, given, [])
        except UnknownName as exc:
            await respond(send, 404, render_unknown_room(given, str(exc)), _HTML)
            return
        except (PushsyncError, UnicodeDecodeError) as exc:
            status = getattr(exc, "status", 400)
            await respond(send, status if isinstance(status, int) else 400, f"{exc}\n".encode())
            return
        expected = resync_token(self._form_secret, mailbox)
        if not secrets.compare_digest(form.get("token", [""])[0], expected):
            await respond(send, 403, b"refused: the form's token is missing or stale\n")
            return
        await Subscriptions(connector).request_resync(mailbox, RESYNC_REASON)
        log.info("resync asked for on the status page", extra={"mailbox": mailbox})
        location = f"{_ROOM}{mailbox}?queued=1".encode()
        await respond(send, 303, b"", extra_headers=[(b"location", location)])

    async def problems(self) -> list[str]:
        problems = []
        if self.settings.use_microsoft_ranges and self.allowed.ranges is None:
            problems.append("Microsoft address ranges not loaded")
        problems += await self._database_problems()
        if not await _accepts(self.settings.host, self.settings.port):
            problems.append("public listener does not accept connections")
        return problems

    async def _processes_down(self) -> list[str]:
        """Each process down or missing (nothing if the database cannot say)."""
        try:
            dead_after = timedelta(seconds=self.settings.process_dead_after_seconds)
            configured = self.settings.protocols_needed()
            found = await fleet_of_rooms(
                await self.store(), datetime.now(UTC), dead_after, configured
            )
            return found.problems()
        except Exception as exc:  # the database problem is among `problems` already
            log.warning("readiness: processes", extra={"detail": str(exc)})
            return []

    async def _database_problems(self) -> list[str]:
        try:
            connector = await self.store()
            versions = await applied_versions(connector)
        except Exception as exc:
            log.warning("readiness: database", extra={"detail": str(exc)})
            return [f"database: {exc}"]  # the cause ("database … does not exist"), not a class
        if latest_version(connector.dialect) not in versions:
            return ["database schema is not at the latest version"]
        return []

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        closing = asyncio.Event()
        beating: asyncio.Task[None] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                beating = asyncio.create_task(self._beat_until(closing))
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                closing.set()
                if beating is not None:
                    await beating  # marks the receiver stopped
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _beat_until(self, closing: asyncio.Event) -> None:
        """The receiver's heartbeat until `closing`. The store opens lazily: while the database
        is away, opening is tried again at each beat."""
        s = self.settings
        every = timedelta(seconds=s.process_heartbeat_seconds)
        while True:
            try:
                connector = await self.store()
                break
            except Exception as exc:
                log.warning("heartbeat: database", extra={"detail": str(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), every.total_seconds())
                return
        forget = timedelta(days=s.process_forget_after_days)
        heartbeat = Heartbeat(
            ProcessHeartbeats(connector), "receiver", [None], every=every, forget_after=forget
        )
        async with heartbeat.beating():
            await closing.wait()

    def status(self) -> dict[str, Any]:
        self.allowed.reload_if_changed()
        s = self.settings
        return {
            "public_listener": {"host": s.host, "port": s.port, "paths": [s.ews_path]},
            "address_filter": self.allowed.describe(),
            "trusted_proxies": len(s.trusted_proxies),
            "callback_token": "optional (legacy)"
            if s.allow_callbacks_without_token
            else "required",
            "limits": {
                "max_body_bytes": s.max_body_bytes,
                "max_header_bytes": s.max_header_bytes,
                "header_timeout_seconds": s.header_timeout_seconds,
                "body_timeout_seconds": s.body_timeout_seconds,
                "max_connections_per_process": s.max_connections,
            },
        }


async def _accepts(host: str, port: int) -> bool:
    target = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(target, port), 2.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def _is_resync(path: str) -> bool:
    return path.startswith(_ROOM) and path.endswith(_RESYNC) and len(path) > len(_ROOM + _RESYNC)


def _cross_site(request: Request, admin_host: str) -> str | None:
    """Why this POST looks sent by another site (None: it came from our own page, or from a
    client that is no browser, such as curl on the host). The Host must be an address, localhost
    or the configured admin host: a name of another site's that resolves to this listener (DNS
    rebinding) would otherwise make its pages same-origin with ours."""
    host = urlsplit(f"//{request.header(b'host') or ''}").hostname or ""
    if not _our_host(host, admin_host):
        return f"Host {host!r} is not this listener's address"
    fetch_site = request.header(b"sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {fetch_site}"
    origin = request.header(b"origin")
    if origin is not None and urlsplit(origin).netloc != (request.header(b"host") or ""):
        return f"Origin {origin} is not this listener"
    return None


def _our_host(host: str, admin_host: str) -> bool:
    if host in ("localhost", admin_host.lower()):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
