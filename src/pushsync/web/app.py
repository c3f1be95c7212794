"""The public listener's ASGI application and its composition root, `build_app`.

Resources (database, inbox writer) open in the ASGI lifespan, never at import. The router is a
dict of notification paths; each route names the sources allowed to post to it, so the Graph
endpoint can be added beside EWS with its own allowed sources and its own authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pushsync.errors import (
    ConfigError,
    Forbidden,
    NotFound,
    RejectedRequest,
    RowRejected,
    StorageError,
)
from pushsync.graph.change_notification import ClientStateCheck, client_state_matches
from pushsync.logs import configure_from
from pushsync.settings import Settings, load_settings
from pushsync.store import connect
from pushsync.store.inbox import Inbox
from pushsync.store.migrations import upgrade
from pushsync.web import garbage_collector
from pushsync.web.access.address_filter import AddressFilter
from pushsync.web.access.callback_token import CallbackToken
from pushsync.web.access.client_address import ClientAddress
from pushsync.web.access.networks import NetworkSet
from pushsync.web.asgi import Receive, Scope, Send
from pushsync.web.errors import answer_rejection, answer_storage_failure, unstorable
from pushsync.web.ews_endpoint import EwsEndpoint
from pushsync.web.graph_endpoint import GraphEndpoint
from pushsync.web.metrics import set_allowed_networks
from pushsync.web.request import Request

log = logging.getLogger("pushsync.receiver")

Handler = Callable[[Request, Receive, Send], Awaitable[None]]
RANGES_CHECK_SECONDS = 30.0  # how soon a refreshed ranges list is picked up


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    allowed: AddressFilter


def address_filter(settings: Settings) -> AddressFilter:
    return AddressFilter(
        NetworkSet.parse(settings.allowed_networks),
        microsoft_ranges=settings.use_microsoft_ranges,
        state_dir=settings.ipranges_dir,
        instance=settings.ipranges_instance,
    )


def callback_token(settings: Settings) -> CallbackToken:
    secrets = [
        s.get_secret_value()
        for s in (settings.callback_token, settings.callback_token_previous)
        if s
    ]
    if not secrets and not settings.allow_callbacks_without_token:
        raise ConfigError(
            "no callback token: set PUSHSYNC_CALLBACK_TOKEN (see docs/deploying.md), or "
            "PUSHSYNC_ALLOW_CALLBACKS_WITHOUT_TOKEN=true for subscriptions made by other software"
        )
    return CallbackToken(secrets, allow_missing=settings.allow_callbacks_without_token)


def graph_client_state(settings: Settings) -> ClientStateCheck:
    secrets = [
        s.get_secret_value()
        for s in (settings.graph_client_state, settings.graph_client_state_previous)
        if s
    ]
    return client_state_matches(*secrets)


def graph_sources(settings: Settings) -> AddressFilter:
    """Graph publishes no feed of its source addresses (docs/protocol.md §6): any source unless the
    operator lists some; clientState is what authenticates a Graph notification."""
    networks = settings.graph_allowed_networks or ["0.0.0.0/0", "::/0"]
    return AddressFilter(
        NetworkSet.parse(networks),
        microsoft_ranges=False,
        state_dir=settings.ipranges_dir,
        instance=settings.ipranges_instance,
    )


def client_address(settings: Settings) -> ClientAddress:
    return ClientAddress(NetworkSet.parse(settings.trusted_proxies), settings.forwarded_header)


class PublicApp:
    """Routes the notification paths; every other path is a 404."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.connector = connect(settings.database_url, **settings.connector_options())
        self.inbox = Inbox(
            self.connector,
            unknown_subscriptions=settings.unknown_subscriptions,
            max_batch_rows=settings.max_batch_rows,
        )
        self.allowed = address_filter(settings)
        self.clients = client_address(settings)
        ews = EwsEndpoint(
            self.inbox, callback_token(settings), max_body_bytes=settings.max_body_bytes
        )
        self.routes: dict[str, Route] = {settings.ews_path: Route(ews, self.allowed)}
        if settings.graph_client_state is not None:
            graph = GraphEndpoint(
                self.inbox, graph_client_state(settings), max_body_bytes=settings.max_body_bytes
            )
            self.routes[settings.graph_path] = Route(graph, graph_sources(settings))
        self._watcher: asyncio.Task[None] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request.from_scope(scope, self.clients)
        try:
            route = self.routes.get(request.path)
            if route is None:
                raise NotFound(f"no such path {request.path[:200]!r}")
            if request.remote_addr not in route.allowed:
                raise Forbidden("source address not allowed", reason="address")
            await route.handler(request, receive, send)
        except RejectedRequest as exc:
            await answer_rejection(send, exc, request)
        except RowRejected as exc:  # this request's rows alone cannot be stored: a retry won't do
            await answer_rejection(send, unstorable(exc), request)
        except StorageError as exc:
            await answer_storage_failure(send, exc, request)

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
        set_allowed_networks(len(self.allowed.allowed))
        self._watcher = asyncio.create_task(self._watch_ranges())
        garbage_collector.settle()

    async def shutdown(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await self.inbox.stop()
        await self.connector.close()

    async def _watch_ranges(self) -> None:
        """Pick up a list written by `pushsync ipranges refresh` without a restart."""
        while True:
            await asyncio.sleep(RANGES_CHECK_SECONDS)
            if self.allowed.reload_if_changed():
                set_allowed_networks(len(self.allowed.allowed))


def build_app(settings: Settings) -> PublicApp:
    return PublicApp(settings)


def create_app() -> PublicApp:
    """Factory for server worker processes: they read the settings from the same sources as
    the parent (the environment, and the config file it names), which checked them already."""
    settings = load_settings()
    if not logging.getLogger().handlers:  # a spawned worker: same log format as the parent
        configure_from(settings)
    return build_app(settings)
