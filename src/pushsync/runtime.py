"""Composition roots: one small function per long-running part, each given the settings.

`pushsync serve` runs the public listener alone (several processes); `pushsync worker` runs the
subscription manager and the sync worker; `pushsync run` runs all three in one process, which is
what a small installation and the demo want.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from pushsync.access.callback_token import callback_url
from pushsync.errors import ConfigError
from pushsync.ews.auth import EwsCredentials
from pushsync.ews.calendar_source import EwsCalendar
from pushsync.ews.client import EwsClient
from pushsync.queue import NotificationQueue, QueuePolicy
from pushsync.reservations import Reservations
from pushsync.settings import Settings
from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade
from pushsync.subscription_manager import SubscriptionManager
from pushsync.subscriptions import Subscriptions
from pushsync.worker import Worker

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[Connector]:
    connector = connect(settings.database_url)
    await connector.open()
    try:
        if settings.auto_migrate:
            await upgrade(connector)
        yield connector
    finally:
        await connector.close()


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
    )


def build_worker(
    settings: Settings,
    connector: Connector,
    client: EwsClient,
    calendar_clock: Callable[[], datetime] = utcnow,
) -> Worker:
    """`calendar_clock` places the sync window: Exchange's clock (the simulator's in a demo)."""
    calendar = EwsCalendar(
        client,
        past=timedelta(days=settings.sync_window_past_days),
        future=timedelta(days=settings.sync_window_future_days),
        clock=calendar_clock,
        fetch_chunk=settings.fetch_chunk_size,
    )
    return Worker(
        NotificationQueue(
            connector, policy=QueuePolicy(lease=timedelta(seconds=settings.worker_lease_seconds))
        ),
        Reservations(connector),
        Subscriptions(connector),
        {"ews": calendar},
        batch_size=settings.worker_batch_size,
        debounce=timedelta(milliseconds=settings.worker_debounce_ms),
    )


async def configured_rooms(settings: Settings, client: EwsClient) -> list[str]:
    rooms = set(settings.rooms)
    for room_list in settings.room_lists:
        rooms.update(await client.rooms(room_list))
    return sorted(rooms)


async def run_sync(
    settings: Settings,
    connector: Connector,
    client: EwsClient,
    stop: asyncio.Event,
    minute: timedelta = timedelta(minutes=1),
) -> Worker:
    """The manager and the worker until `stop` is set; returns the worker (for its stats)."""
    manager = build_manager(settings, connector, client, minute)
    worker = build_worker(settings, connector, client)
    rooms = await configured_rooms(settings, client)
    if not rooms:
        log.warning("no rooms configured (PUSHSYNC_ROOMS or PUSHSYNC_ROOM_LISTS)")
    await asyncio.gather(
        manager.run(stop, rooms, settings.subscription_check_seconds),
        worker.run(stop),
        _purge_forever(connector, settings, stop),
    )
    return worker


async def _purge_forever(connector: Connector, settings: Settings, stop: asyncio.Event) -> None:
    queue = NotificationQueue(connector)
    retention = timedelta(days=settings.notification_retention_days)
    while not stop.is_set():
        purged = await queue.purge(retention, failed_after=4 * retention)
        if purged:
            log.info("purged processed notifications", extra={"rows": purged})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 3600)
