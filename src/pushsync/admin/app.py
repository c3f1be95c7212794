"""The admin listener: health, readiness, metrics and status, on loopback by default.

It runs in the supervising process, beside the public listener's workers and never inside the
public application, so none of these paths can answer on the public port.

- `/healthz`  200 while the process runs;
- `/readyz`   200 when the database answers with the current schema, the public listener
              accepts connections and the address ranges are loaded; 503 with the reasons if not;
- `/metrics`  Prometheus text, summed over the worker processes (`pushsync.web.metrics`);
- `/status`   JSON: the ranges in use, the authentication mode, the listeners and limits;
- `/rooms`    JSON: every room's sync status, those with a problem first (`room_status`);
- `/`         the same as a page for people: how many rooms are in sync, and why the others
              are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pushsync.admin.metrics import rooms_exposition
from pushsync.admin.room_status import discovery_answers, room_statuses
from pushsync.admin.status_page import render
from pushsync.settings import Settings
from pushsync.store import Connector, connect
from pushsync.store.migrations import applied_versions, latest_version
from pushsync.web.access.address_filter import AddressFilter
from pushsync.web.asgi import Receive, Scope, Send, respond
from pushsync.web.metrics import exposition
from pushsync.web.request import Request

log = logging.getLogger("pushsync.admin")

_JSON = b"application/json"
_PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
_HTML = b"text/html; charset=utf-8"


class AdminApp:
    def __init__(
        self, settings: Settings, allowed: AddressFilter, multiproc_dir: Path | None
    ) -> None:
        self.settings = settings
        self.allowed = allowed
        self.multiproc_dir = multiproc_dir
        self._connector: Connector | None = None  # opened at the first need, kept till shutdown
        self._opening = asyncio.Lock()

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
        if request.method not in ("GET", "HEAD"):
            await respond(send, 405, b"GET only\n", extra_headers=[(b"allow", b"GET, HEAD")])
        elif request.path == "/healthz":
            await respond(send, 200, b"ok\n")
        elif request.path == "/readyz":
            problems = await self.problems()
            body = json.dumps({"ready": not problems, "problems": problems}).encode()
            await respond(send, 503 if problems else 200, body, _JSON)
        elif request.path == "/metrics":
            body = exposition(self.multiproc_dir) + await self._rooms_metrics()
            await respond(send, 200, body, _PROMETHEUS)
        elif request.path == "/status":
            await respond(send, 200, json.dumps(self.status(), indent=1).encode(), _JSON)
        elif request.path in ("/", "/rooms"):
            await self._rooms(send, page=request.path == "/")
        else:
            await respond(send, 404, b"not found\n")

    async def _rooms_metrics(self) -> bytes:
        """The rooms' gauges; without them (database down) the receiver's own still answer."""
        now = datetime.now(UTC)
        try:
            statuses = await room_statuses(await self.store(), now)
        except Exception as exc:  # the receiver's own metrics must still answer
            log.warning("metrics: database", extra={"detail": str(exc)})
            return rooms_exposition(None, now)
        return rooms_exposition(statuses, now)

    async def _rooms(self, send: Send, *, page: bool) -> None:
        now = datetime.now(UTC)
        try:
            statuses = await room_statuses(await self.store(), now)
        except Exception as exc:
            log.warning("status: database", extra={"detail": str(exc)})
            await respond(send, 503, f"database: {type(exc).__name__}: {exc}\n".encode())
            return
        discovery = await discovery_answers(await self.store())
        if page:
            await respond(send, 200, render(statuses, now, discovery), _HTML)
            return
        body = {
            "rooms": len(statuses),
            "in_sync": sum(1 for s in statuses if s.problem is None),
            "statuses": [s.as_json() for s in statuses],
            "room_discovery": discovery,
        }
        await respond(send, 200, json.dumps(body, indent=1).encode(), _JSON)

    async def problems(self) -> list[str]:
        problems = []
        if self.settings.use_microsoft_ranges and self.allowed.ranges is None:
            problems.append("Microsoft address ranges not loaded")
        problems += await self._database_problems()
        if not await _accepts(self.settings.host, self.settings.port):
            problems.append("public listener does not accept connections")
        return problems

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
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

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
