"""The composition root of `pushsync worker`: the subscription managers and the sync worker,
each built by one small function from the settings (`pushsync resync`, `subscriptions sync` and
the demo build the same parts). `pushsync serve` runs the public listener (`receiver.py`).

Each room is synced over EWS push or over Graph (`RoomPlan`); only the clients, managers and
calendar sources some room needs are built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pushsync.errors import ConfigError
from pushsync.ews.adapter import EwsAdapter
from pushsync.ews.auth import EwsCredentials
from pushsync.ews.calendar_source import EwsCalendar
from pushsync.ews.client import EwsClient
from pushsync.ews.subscription_manager import SubscriptionManager
from pushsync.graph.adapter import GraphAdapter
from pushsync.graph.auth import MsalTokens, TokenProvider, static_token
from pushsync.graph.calendar_source import GraphCalendar
from pushsync.graph.client import GraphClient
from pushsync.graph.subscription_manager import GraphSubscriptionManager
from pushsync.model.clock import utcnow
from pushsync.settings import Settings
from pushsync.store import Connector
from pushsync.store.notification_queue import NotificationQueue, QueuePolicy
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.web.access.callback_token import callback_url
from pushsync.worker.adapter import CalendarSource, ProtocolAdapter
from pushsync.worker.loop import Worker

log = logging.getLogger(__name__)


def ews_callback_url(settings: Settings) -> str:
    if not settings.public_url:
        raise ConfigError(
            "PUSHSYNC_PUBLIC_URL is needed: the URL at which Exchange reaches pushsync"
        )
    token = settings.callback_token.get_secret_value() if settings.callback_token else None
    return callback_url(settings.public_url.rstrip("/") + settings.ews_path, token)


def build_ews_client(settings: Settings) -> EwsClient:
    if not settings.ews_url:
        raise ConfigError("PUSHSYNC_EWS_URL is needed to reach Exchange")
    credentials = EwsCredentials(
        kind=settings.ews_auth,
        username=settings.ews_username,
        password=settings.ews_password,
        tenant_id=settings.tenant_id,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        authority_host=settings.authority_host,
    )
    return EwsClient(settings.ews_url, credentials, max_concurrency=settings.ews_max_concurrency)


def build_manager(
    settings: Settings,
    connector: Connector,
    client: EwsClient,
    minute: timedelta = timedelta(minutes=1),
) -> SubscriptionManager:
    return SubscriptionManager(
        client,
        Subscriptions(connector),
        callback_url=ews_callback_url(settings),
        status_frequency=settings.status_frequency_minutes,
        concurrency=settings.ews_max_concurrency,
        minute=minute,
        max_retry_after=timedelta(seconds=settings.max_retry_after_seconds),
    )


def graph_notification_url(settings: Settings) -> str:
    """Both the notification and the lifecycle URL: the Graph endpoint handles both."""
    if not settings.public_url:
        raise ConfigError("PUSHSYNC_PUBLIC_URL is needed: the URL at which Graph reaches pushsync")
    return settings.public_url.rstrip("/") + settings.graph_path


def build_graph_client(settings: Settings, tokens: TokenProvider | None = None) -> GraphClient:
    """Tokens from msal client credentials unless a fixed token is set (or `tokens` given)."""
    if tokens is None and settings.graph_token is not None:
        tokens = static_token(settings.graph_token.get_secret_value())
    if tokens is None:
        tokens = MsalTokens(
            settings.tenant_id,
            settings.client_id,
            settings.client_secret,
            settings.authority_host,
            discovery=settings.authority_discovery,
            ca_bundle=settings.authority_ca_bundle,
        )
    return GraphClient(tokens, settings.graph_url)


def build_graph_manager(
    settings: Settings,
    connector: Connector,
    client: GraphClient,
    clock: Callable[[], datetime] = utcnow,
) -> GraphSubscriptionManager:
    if settings.graph_client_state is None:
        raise ConfigError("PUSHSYNC_GRAPH_CLIENT_STATE is needed for Graph subscriptions")
    return GraphSubscriptionManager(
        client,
        Subscriptions(connector),
        notification_url=graph_notification_url(settings),
        client_state=settings.graph_client_state.get_secret_value(),
        lifetime=timedelta(minutes=settings.graph_subscription_minutes),
        renew_before=timedelta(minutes=settings.graph_renew_before_minutes),
        max_retry_after=timedelta(seconds=settings.max_retry_after_seconds),
        clock=clock,
    )


def protocol_adapter(
    protocol: str, source: CalendarSource, subscriptions: Subscriptions
) -> ProtocolAdapter:
    """The worker's adapter for one protocol's rows, reading through `source`."""
    if protocol == "graph":
        return GraphAdapter(source, subscriptions)
    if protocol == "ews":
        return EwsAdapter(source, subscriptions)
    raise ConfigError(f"no such protocol {protocol!r}: ews or graph")


def build_worker(
    settings: Settings,
    connector: Connector,
    client: EwsClient | None,
    calendar_clock: Callable[[], datetime] = utcnow,
    *,
    graph: GraphClient | None = None,
) -> Worker:
    """`calendar_clock` places the sync window: Exchange's clock (the simulator's in a demo).
    The worker reads each protocol whose client is given."""
    past = timedelta(days=settings.sync_window_past_days)
    future = timedelta(days=settings.sync_window_future_days)
    subscriptions = Subscriptions(connector)
    adapters: dict[str, ProtocolAdapter] = {}
    if client is not None:
        ews_calendar = EwsCalendar(
            client,
            past=past,
            future=future,
            clock=calendar_clock,
            fetch_chunk=settings.fetch_chunk_size,
        )
        adapters["ews"] = EwsAdapter(ews_calendar, subscriptions)
    if graph is not None:
        graph_calendar = GraphCalendar(graph, past=past, future=future, clock=calendar_clock)
        adapters["graph"] = GraphAdapter(graph_calendar, subscriptions)
    return Worker(
        NotificationQueue(
            connector, policy=QueuePolicy(lease=timedelta(seconds=settings.worker_lease_seconds))
        ),
        Reservations(connector),
        subscriptions,
        adapters,
        batch_size=settings.worker_batch_size,
        debounce=timedelta(milliseconds=settings.worker_debounce_ms),
        resync_every=timedelta(hours=settings.resync_interval_hours) or None,
        resync_concurrency=settings.worker_resync_concurrency,
        max_pause=timedelta(seconds=settings.max_retry_after_seconds),
    )


@dataclass(frozen=True)
class RoomPlan:
    """Which rooms are synced over EWS push and which over Graph."""

    ews: list[str]
    graph: list[str]
    default: str = "ews"

    @property
    def all(self) -> list[str]:
        return sorted([*self.ews, *self.graph])

    def protocol_of(self, mailbox: str) -> str:
        """A configured room's protocol; a room not configured gets the default."""
        if mailbox.lower() in {m.lower() for m in self.graph}:
            return "graph"
        if mailbox.lower() in {m.lower() for m in self.ews}:
            return "ews"
        return self.default


def protocols_needed(settings: Settings) -> set[str]:
    """The protocols some configured room uses (known without asking Exchange)."""
    needed: set[str] = {settings.protocol} if settings.rooms or settings.room_lists else set()
    needed |= {"graph"} if settings.graph_rooms else set()
    needed |= {"ews"} if settings.ews_rooms or settings.room_lists else set()
    return needed


async def room_plan(settings: Settings, client: EwsClient | None) -> RoomPlan:
    """`rooms` and the rooms of `room_lists` use `protocol`; `graph_rooms` and `ews_rooms`
    override it. Room lists are expanded over EWS (GetRooms), whichever protocol they use."""
    rooms = {m.lower(): m for m in settings.rooms}
    if settings.room_lists:
        if client is None:
            raise ConfigError("PUSHSYNC_ROOM_LISTS are expanded over EWS: set PUSHSYNC_EWS_URL")
        for room_list in settings.room_lists:
            rooms.update({m.lower(): m for m in await client.rooms(room_list)})
    graph = {m.lower(): m for m in settings.graph_rooms}
    ews = {m.lower(): m for m in settings.ews_rooms}
    for key, mailbox in rooms.items():
        if key not in graph and key not in ews:
            (graph if settings.protocol == "graph" else ews)[key] = mailbox
    return RoomPlan(sorted(ews.values()), sorted(graph.values()), settings.protocol)


@dataclass
class Clients:
    """The clients the configured rooms need: EWS, Graph or both."""

    ews: EwsClient | None = None
    graph: GraphClient | None = None

    @property
    def calls(self) -> int:
        return (self.ews.calls if self.ews else 0) + (self.graph.calls if self.graph else 0)

    async def aclose(self) -> None:
        if self.ews is not None:
            self.ews.close()
        if self.graph is not None:
            await self.graph.aclose()


def build_clients(settings: Settings, graph_tokens: TokenProvider | None = None) -> Clients:
    needed = protocols_needed(settings)
    return Clients(
        ews=build_ews_client(settings) if "ews" in needed else None,
        graph=build_graph_client(settings, graph_tokens) if "graph" in needed else None,
    )


async def run_sync(
    settings: Settings,
    connector: Connector,
    clients: Clients,
    stop: asyncio.Event,
    minute: timedelta = timedelta(minutes=1),
) -> Worker:
    """The managers and the worker until `stop` is set; returns the worker (for its stats)."""
    plan = await room_plan(settings, clients.ews)
    if not plan.all:
        log.warning("no rooms configured (PUSHSYNC_ROOMS, _ROOM_LISTS or _GRAPH_ROOMS)")
    worker = build_worker(settings, connector, clients.ews, graph=clients.graph)
    loops: list[Awaitable[None]] = [worker.run(stop), _purge_forever(connector, settings, stop)]
    interval = settings.subscription_check_seconds
    if clients.ews is not None and plan.ews:
        manager = build_manager(settings, connector, clients.ews, minute)
        loops.append(manager.run(stop, plan.ews, interval))
    if clients.graph is not None and plan.graph:
        graph_manager = build_graph_manager(settings, connector, clients.graph)
        loops.append(graph_manager.run(stop, plan.graph, interval))
    await asyncio.gather(*loops)
    return worker


async def _purge_forever(connector: Connector, settings: Settings, stop: asyncio.Event) -> None:
    queue = NotificationQueue(connector)
    retention = timedelta(days=settings.notification_retention_days)
    while not stop.is_set():
        purged = await queue.purge(retention, failed_after=4 * retention)
        if purged:
            log.info("purged processed notifications", extra={"rows": purged})
        changes = await Reservations(connector).purge_changes(datetime.now(UTC) - retention)
        if changes:
            log.info("purged reservation changes", extra={"rows": changes})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 3600)
