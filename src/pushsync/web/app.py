"""The public listener's ASGI application and its composition root, `build_app`.

Resources (database, inbox writer) open in the ASGI lifespan, never at import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable

from pushsync.errors import RejectedRequest, StorageError
from pushsync.inbox import Inbox
from pushsync.settings import Settings
from pushsync.store import connect
from pushsync.store.migrations import upgrade
from pushsync.web.asgi import Receive, Scope, Send, respond
from pushsync.web.ews_endpoint import EwsEndpoint
from pushsync.web.request import Request

log = logging.getLogger("pushsync.receiver")

Handler = Callable[[Request, Receive, Send], Awaitable[None]]
SETTINGS_ENV = "PUSHSYNC__RESOLVED_SETTINGS"  # how the CLI hands settings to worker processes


class PublicApp:
    """Routes the notification paths; every other path is a 404."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connector = connect(settings.database_url, **_connector_options(settings))
        self.inbox = Inbox(
            self.connector,
            unknown_subscriptions=settings.unknown_subscriptions,
            max_batch_rows=settings.max_batch_rows,
        )
        self.routes: dict[str, Handler] = {
            settings.ews_path: EwsEndpoint(self.inbox, max_body_bytes=settings.max_body_bytes),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request.from_scope(scope)
        handler = self.routes.get(request.path)
        try:
            if handler is None:
                raise RejectedRequest(f"no such path {request.path!r}", status=404, reason="path")
            await handler(request, receive, send)
        except RejectedRequest as exc:
            log.warning(
                "rejected",
                extra={
                    "reason": exc.reason,
                    "status": exc.status,
                    "remote_addr": request.remote_addr,
                    "detail": exc.detail,
                },
            )
            headers = [(b"allow", b"POST")] if exc.status == 405 else []
            await respond(send, exc.status, f"{exc.detail}\n".encode(), extra_headers=headers)
        except StorageError as exc:
            log.error(
                "not stored, answered 503",
                extra={"remote_addr": request.remote_addr, "detail": str(exc)},
            )
            await respond(
                send,
                503,
                b"storage unavailable, retry later\n",
                extra_headers=[(b"retry-after", b"30")],
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        await self.connector.open()
        if self.settings.auto_migrate:
            await upgrade(self.connector)
        await self.inbox.start()

    async def shutdown(self) -> None:
        await self.inbox.stop()
        await self.connector.close()


def _connector_options(settings: Settings) -> dict[str, int]:
    if settings.database_url.startswith("sqlite:"):
        return {"busy_timeout_ms": settings.sqlite_busy_timeout_ms}
    return {}


def build_app(settings: Settings) -> PublicApp:
    return PublicApp(settings)


def create_app() -> PublicApp:
    """Factory for server worker processes: settings come resolved from the parent."""
    resolved = os.environ.get(SETTINGS_ENV)
    settings = Settings.model_validate_json(resolved) if resolved else Settings()
    return build_app(settings)
