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
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pushsync.errors import ConfigError, PushsyncError
from pushsync.ews.adapter import EwsAdapter
from pushsync.ews.auth import EwsCredentials
from pushsync.ews.calendar_source import EwsCalendar
from pushsync.ews.client import EwsClient
from pushsync.ews.subscription_manager import SubscriptionManager
from pushsync.graph.adapter import GraphAdapter
from pushsync.graph.auth import TokenProvider
from pushsync.graph.calendar_source import GraphCalendar
from pushsync.graph.client import GraphClient
from pushsync.graph.places import Places
from pushsync.graph.room_discovery import RoomDiscovery, Roster, discover_forever
from pushsync.graph.subscription_manager import GraphSubscriptionManager, default_pacer
from pushsync.graph.throttling import WritePacer
from pushsync.model.clock import utcnow
from pushsync.processes.fleet_sampler import FleetSampler
from pushsync.processes.settings_view import ews_callback_url, graph_tokens
from pushsync.settings import Settings
from pushsync.store import Connector
from pushsync.store.notification_queue import NotificationQueue, QueuePolicy
from pushsync.store.processes import Heartbeat, Kind, ProcessHeartbeats, this_process
from pushsync.store.reservation_book import Reservations
from pushsync.store.room_directory import RoomDirectory
from pushsync.store.room_migrations import RoomMigrations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.adapter import CalendarSource, ProtocolAdapter
from pushsync.worker.loop import Worker
from pushsync.worker.migration import Migrator, Subscribe

log = logging.getLogger(__name__)

SHARE_COUNT_SECONDS = 1.0  # how often a process counts the EWS processes it shares the limit with


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


def heartbeat(
    settings: Settings, connector: Connector, kind: Kind, protocols: Iterable[str | None]
) -> Heartbeat:
    """The heartbeat a long-running process beats while it runs (`store/processes.py`)."""
    return Heartbeat(
        ProcessHeartbeats(connector),
        kind,
        protocols,
        every=timedelta(seconds=settings.process_heartbeat_seconds),
        forget_after=timedelta(days=settings.process_forget_after_days),
    )


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
        heartbeat=heartbeat(settings, connector, "manager", ["ews"]),
    )


def graph_notification_url(settings: Settings) -> str:
    """Both the notification and the lifecycle URL: the Graph endpoint handles both."""
    if not settings.public_url:
        raise ConfigError("PUSHSYNC_PUBLIC_URL is needed: the URL at which Graph reaches pushsync")
    return settings.public_url.rstrip("/") + settings.graph_path


def build_graph_client(settings: Settings, tokens: TokenProvider | None = None) -> GraphClient:
    """Tokens from msal client credentials unless a fixed token is set (or `tokens` given)."""
    return GraphClient(tokens or graph_tokens(settings), settings.graph_url)


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
        writes=graph_write_pacer(settings, connector),
        clock=clock,
        heartbeat=heartbeat(settings, connector, "manager", ["graph"]),
    )


def graph_write_pacer(settings: Settings, connector: Connector) -> WritePacer:
    """Graph's subscription write limit for this app in this tenant, shared by every manager
    process on the database."""
    key = f"graph:{settings.tenant_id or '-'}:{settings.client_id or '-'}"
    return default_pacer(
        Subscriptions(connector),
        key,
        limit=settings.graph_subscription_write_limit,
        window=settings.graph_subscription_write_window_seconds,
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
            stored_calendar_id=subscriptions.calendar_folder_id,
        )
        adapters["ews"] = EwsAdapter(ews_calendar, subscriptions)
    if graph is not None:
        graph_calendar = GraphCalendar(
            graph,
            past=past,
            future=future,
            clock=calendar_clock,
            series_uids=Reservations(connector).series_uids,
        )
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
        poll_every=timedelta(minutes=settings.graph_polling_minutes),
        resync_concurrency=settings.worker_resync_concurrency,
        max_pause=timedelta(seconds=settings.max_retry_after_seconds),
        heartbeat=heartbeat(settings, connector, "worker", sorted(adapters)),
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


def protocols_needed(settings: Settings, moved_to: Iterable[str] = ()) -> set[str]:
    """The protocols some configured room uses (known without asking Exchange), and those
    rooms were moved to by `pushsync rooms migrate` (`moved_to`, from `protocols_moved_to`)."""
    return settings.protocols_needed() | set(moved_to)


async def protocols_moved_to(settings: Settings, connector: Connector) -> set[str]:
    """The protocols `pushsync rooms migrate` may move rooms to, or moved them to: the worker
    runs their managers whatever the room settings say. A protocol counts once its settings
    are there (EWS: `ews_url`; Graph: `graph_client_state`), so that a move requested while the
    worker runs is carried out without a restart."""
    migrations = RoomMigrations(connector)
    moving = {move["target"] for move in await migrations.open()}
    configured = {"ews"} if settings.ews_url else set()
    configured |= {"graph"} if settings.graph_client_state is not None else set()
    return moving | configured | set((await migrations.overridden()).values())


def build_discovery(
    settings: Settings, connector: Connector, graph: GraphClient, roster: Roster | None = None
) -> RoomDiscovery:
    return RoomDiscovery(
        Places(graph),
        RoomDirectory(connector),
        room_lists=settings.room_lists if not settings.ews_url else [],
        all_rooms=settings.discover_all_rooms,
        grace=timedelta(hours=settings.room_removal_grace_hours),
        configured=[*settings.rooms, *settings.graph_rooms, *settings.ews_rooms],
        protocol=settings.protocol,
        roster=roster,
    )


async def discovered_rooms(
    settings: Settings, graph: GraphClient | None, connector: Connector | None
) -> list[str]:
    """Read Places once and return the discovered rooms kept now (those of earlier runs too,
    when this answer was empty or failed). Graph refusing Places, or a room list it does not
    know, stops the start as a configuration error."""
    if graph is None or connector is None:
        raise ConfigError(
            "room lists are read from Graph's Places when PUSHSYNC_EWS_URL is not set: "
            "configure Graph (PUSHSYNC_TENANT_ID, _CLIENT_ID, _CLIENT_SECRET or _GRAPH_TOKEN)"
        )
    discovery = build_discovery(settings, connector, graph)
    await discovery.refresh(strict=True)
    return await discovery.rooms()


async def room_plan(
    settings: Settings,
    client: EwsClient | None,
    *,
    graph: GraphClient | None = None,
    connector: Connector | None = None,
) -> RoomPlan:
    """`rooms` and the rooms of `room_lists` use `protocol`; `graph_rooms` and `ews_rooms`
    override it. Room lists are expanded over EWS (GetRooms) when `ews_url` is set, otherwise
    read from Graph's Places (`graph`, recorded through `connector`), as is every room with
    `discover_all_rooms`."""
    rooms = {m.lower(): m for m in settings.rooms}
    if settings.room_lists and settings.ews_url:
        if client is None:
            raise ConfigError("PUSHSYNC_ROOM_LISTS are expanded over EWS: set PUSHSYNC_EWS_URL")
        for room_list in settings.room_lists:
            rooms.update({m.lower(): m for m in await client.rooms(room_list)})
    if settings.discovers_over_graph():
        found = await discovered_rooms(settings, graph, connector)
        rooms.update({m.lower(): m for m in found})
    over_graph = {m.lower(): m for m in settings.graph_rooms}
    ews = {m.lower(): m for m in settings.ews_rooms}
    for key, mailbox in rooms.items():
        if key not in over_graph and key not in ews:
            (over_graph if settings.protocol == "graph" else ews)[key] = mailbox
    return RoomPlan(sorted(ews.values()), sorted(over_graph.values()), settings.protocol)


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


def build_clients(
    settings: Settings, graph_tokens: TokenProvider | None = None, moved_to: Iterable[str] = ()
) -> Clients:
    needed = protocols_needed(settings, moved_to)
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
    plan = await room_plan(settings, clients.ews, graph=clients.graph, connector=connector)
    discovering = settings.discovers_over_graph() and clients.graph is not None
    if not plan.all and not discovering:
        log.warning("no rooms configured (PUSHSYNC_ROOMS, _ROOM_LISTS or _GRAPH_ROOMS)")
    worker = build_worker(settings, connector, clients.ews, graph=clients.graph)
    sampler = FleetSampler(connector, worker, lambda: clients.calls)
    loops: list[Awaitable[None]] = [
        worker.run(stop),
        _purge_forever(connector, settings, stop),
        sampler.run(stop, settings.status_sample_seconds),
    ]
    interval = settings.subscription_check_seconds
    subscribe: dict[str, Subscribe] = {}  # a manager runs for each protocol with a client
    if clients.ews is not None:
        loops.append(share_ews_concurrency(settings, connector, clients.ews, stop))
        manager = build_manager(settings, connector, clients.ews, minute)
        loops.append(manager.run(stop, plan.ews, interval))
        subscribe["ews"] = manager.subscribe_missing
    roster = Roster(plan.graph)
    if clients.graph is not None:
        graph_manager = build_graph_manager(settings, connector, clients.graph)
        loops.append(graph_manager.run(stop, roster, interval))
        subscribe["graph"] = graph_manager.subscribe_missing
    if discovering and clients.graph is not None:
        discovery = build_discovery(settings, connector, clients.graph, roster)
        kept = [
            m for m in (*settings.rooms, *settings.graph_rooms) if plan.protocol_of(m) == "graph"
        ]
        every = settings.room_discovery_minutes * 60
        loops.append(discover_forever(discovery, roster, kept, stop, every, plan.protocol_of))
    migrator = build_migrator(connector, worker, subscribe, plan)
    loops.append(migrator.run(stop, interval))
    await asyncio.gather(*loops)
    return worker


def build_migrator(
    connector: Connector, worker: Worker, subscribe: dict[str, Subscribe], plan: RoomPlan
) -> Migrator:
    """What carries out `pushsync rooms migrate`: the managers subscribe, the worker reads."""

    async def resync(mailbox: str, protocol: str) -> int:
        return await worker.resync(mailbox, protocol, full=True)

    return Migrator(
        RoomMigrations(connector),
        Subscriptions(connector),
        subscribe,
        resync,
        covered={"ews": plan.ews, "graph": plan.graph},
    )


async def share_ews_concurrency(
    settings: Settings, connector: Connector, client: EwsClient, stop: asyncio.Event
) -> None:
    """Keep this process's share of EWSMaxConcurrency (`ews/concurrency.py`) by the live EWS
    processes, counted every second (counted at each 15 s heartbeat, two workers started
    together kept 27 each long enough to be refused). No call leaves before the table shows
    this process and has been counted once more; while it cannot be read the share stays."""
    heartbeats = ProcessHeartbeats(connector)
    dead_after = timedelta(seconds=settings.process_dead_after_seconds)
    me = this_process()
    seen = False  # whether an earlier count showed this process: the next one splits
    await client.share_concurrency(None)
    try:
        while not stop.is_set():
            try:
                processes = await heartbeats.sharing("ews", utcnow(), dead_after)
            except PushsyncError as exc:
                log.warning("EWS processes not counted", extra={"error": str(exc)})
            else:
                if seen:
                    await client.share_concurrency(len(processes))
                seen = seen or me in processes
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SHARE_COUNT_SECONDS)
    finally:
        if client.concurrency == 0:  # stopped before it was counted: let waiting calls end
            await client.share_concurrency(1)


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
        forget = timedelta(days=settings.process_forget_after_days)
        await ProcessHeartbeats(connector).forget(datetime.now(UTC) - forget)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 3600)
