"""The error tree decides, over a real database and the Exchange simulator: the worker and the
EWS subscription manager wait out a storage outage and an unreachable Exchange, and give up at
once on what retrying cannot mend (credentials refused)."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pushsync.ews.adapter import EwsAdapter
from pushsync.ews.calendar_source import EwsCalendar
from pushsync.ews.client import EwsClient
from pushsync.ews.subscription_manager import SubscriptionManager
from pushsync.model.clock import utcnow
from pushsync.model.notification import Notification
from pushsync.model.reservation import Observation, RoomSnapshot
from pushsync.processes.sync import build_ews_client
from pushsync.settings import Settings
from pushsync.simulator import SimulatorThread
from pushsync.store import Connector, connect
from pushsync.store.migrations import upgrade
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import UNREACHABLE, Subscriptions
from pushsync.worker.loop import Worker
from tests.acceptance.simulated_exchange import running
from tests.integration.helpers import T0, add_rows, query
from tests.integration.receiver import TcpProxy, through

ROOM = "room-001@contoso.example"


class NoCalendar:
    """A heartbeat needs no calendar: any read fails the test."""

    calls = 0

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]:
        raise AssertionError("read items for a heartbeat")

    async def observe_room(self, mailbox: str, cursor: str | None = None) -> RoomSnapshot:
        raise AssertionError("read a calendar for a heartbeat")


def modified(item_id: str = "ITEM-1") -> Notification:
    return Notification(
        protocol="ews", subscription_id="S1", event_type="Modified", watermark="W1",
        previous_watermark="W0", item_id=item_id, event_time=T0,
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ews_client(url: str, username: str = "u", password: str = "p") -> EwsClient:
    return build_ews_client(
        Settings(ews_url=url, ews_auth="basic", ews_username=username, ews_password=password)
    )


async def with_room(connector: Connector) -> Subscriptions:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "ews", T0)
    await subscriptions.record(
        ROOM, "S1", protocol="ews", watermark="W0", status_frequency=15, now=T0
    )
    return subscriptions


def worker(connector: Connector, subscriptions: Subscriptions, source: object) -> Worker:
    return Worker(
        NotificationQueue(connector),
        Reservations(connector),
        subscriptions,
        {"ews": EwsAdapter(source, subscriptions)},  # type: ignore[arg-type]
        debounce=timedelta(0),
        idle_sleep=0.05,
    )


@pytest.fixture
def simulator() -> Iterator[SimulatorThread]:
    with running() as thread:
        yield thread


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[Connector]:
    connector = connect(f"sqlite:///{tmp_path / 'policy.db'}")
    await connector.open()
    await upgrade(connector)
    yield connector
    await connector.close()


def calendar(client: EwsClient) -> EwsCalendar:
    return EwsCalendar(client, past=timedelta(days=1), future=timedelta(days=7), clock=utcnow)


async def test_rows_fail_at_once_when_exchange_refuses_the_credentials(
    simulator: SimulatorThread, sqlite: Connector
) -> None:
    subscriptions = await with_room(sqlite)
    await add_rows(sqlite, [modified()])
    client = ews_client(simulator.sim.ews_url, simulator.sim.config.username, "wrong")
    try:
        assert await worker(sqlite, subscriptions, calendar(client)).run_once() == 1
    finally:
        client.close()
    [row] = await NotificationQueue(sqlite).listed(1)
    assert (row["state"], row["attempts"]) == ("failed", 1)
    assert "UnauthorizedError" in row["last_error"]


async def test_rows_wait_uncounted_while_exchange_cannot_be_reached(sqlite: Connector) -> None:
    subscriptions = await with_room(sqlite)
    await add_rows(sqlite, [modified()])
    client = ews_client(f"http://127.0.0.1:{free_port()}/EWS/Exchange.asmx")
    try:
        sync = worker(sqlite, subscriptions, calendar(client))
        assert await sync.run_once() == 1
        assert await sync.run_once() == 0  # inside the room's wait: not claimed, nothing called
    finally:
        client.close()
    [row] = await NotificationQueue(sqlite).listed(1)
    # Exchange away is not the row's fault: no attempt counted, so no outage ends it `failed`
    assert (row["state"], row["attempts"]) == ("pending", 0)
    assert row["available_at"] > utcnow()
    [room] = await subscriptions.rooms()
    assert room["last_error"].startswith(UNREACHABLE)


@pytest.fixture
def proxy(postgres_schema_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_schema_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    yield proxy
    proxy.close()


async def eventually(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.postgres
async def test_the_worker_waits_out_a_storage_outage(
    postgres_schema_url: str, proxy: TcpProxy, caplog: pytest.LogCaptureFixture
) -> None:
    direct = connect(postgres_schema_url)
    await direct.open()
    await upgrade(direct)
    cut_off = connect(through(postgres_schema_url, proxy.port), timeout_s=0.5)
    await cut_off.open()
    stop = asyncio.Event()
    try:
        subscriptions = await with_room(direct)
        sync = worker(cut_off, Subscriptions(cut_off), NoCalendar())
        with caplog.at_level(logging.WARNING, logger="pushsync.retry"):
            await asyncio.to_thread(proxy.cut)
            run = asyncio.create_task(sync.run(stop))
            await eventually(lambda: "round failed" in caplog.text, "a failed round")
            assert not run.done(), "the worker ended with the database away"
            await asyncio.to_thread(proxy.restore)
            status = Notification(
                protocol="ews", subscription_id="S1", event_type="Status", watermark="W1",
                previous_watermark="W0",
            )  # fmt: skip
            await add_rows(direct, [status])
            await eventually(lambda: sync.stats.notifications == 1, "the row worked off")
        record = await subscriptions.by_id("S1")
        assert record is not None and record["last_watermark"] == "W1"
    finally:
        stop.set()
        await cut_off.close()
        await direct.close()


def manager(client: EwsClient, connector: Connector) -> SubscriptionManager:
    return SubscriptionManager(
        client, Subscriptions(connector), callback_url="http://127.0.0.1:9/ews", status_frequency=1
    )


async def test_the_manager_gives_up_on_a_room_whose_credentials_are_refused(
    simulator: SimulatorThread, sqlite: Connector
) -> None:
    client = ews_client(simulator.sim.ews_url, simulator.sim.config.username, "wrong")
    try:
        ews = manager(client, sqlite)
        outcome = await ews.subscribe_rooms([ROOM])
        assert ROOM in outcome.failed and ROOM in ews.given_up
        calls = client.calls
        await ews._maintain([ROOM])
        assert client.calls == calls, "a refused room was tried again"
    finally:
        client.close()


async def test_the_manager_tries_an_unreachable_exchange_again(sqlite: Connector) -> None:
    client = ews_client(f"http://127.0.0.1:{free_port()}/EWS/Exchange.asmx")
    try:
        ews = manager(client, sqlite)
        assert ROOM in (await ews.subscribe_rooms([ROOM])).failed
        assert ews.given_up == {}
        calls = client.calls
        assert ROOM in (await ews._maintain([ROOM])).failed
        assert client.calls > calls
    finally:
        client.close()


@pytest.mark.postgres
async def test_the_manager_waits_out_a_storage_outage_at_start(
    simulator: SimulatorThread, postgres_schema_url: str, proxy: TcpProxy
) -> None:
    direct = connect(postgres_schema_url)
    await direct.open()
    await upgrade(direct)
    cut_off = connect(through(postgres_schema_url, proxy.port), timeout_s=0.5)
    await cut_off.open()
    sim = simulator.sim
    client = ews_client(sim.ews_url, sim.config.username, sim.config.password)
    stop = asyncio.Event()
    try:
        await asyncio.to_thread(proxy.cut)
        run = asyncio.create_task(manager(client, cut_off).run(stop, [ROOM], interval_s=60))
        await asyncio.sleep(1.5)
        assert not run.done(), "the manager ended with the database away"
        await asyncio.to_thread(proxy.restore)
        subscriptions = Subscriptions(direct)
        live: list[object] = []

        async def subscribed() -> None:
            while not live:
                live[:] = await subscriptions.live()
                await asyncio.sleep(0.1)

        await asyncio.wait_for(subscribed(), 30)
        assert [s.mailbox for s in await subscriptions.live()] == [ROOM]
        assert query(postgres_schema_url, "SELECT count(*) AS n FROM room")[0]["n"] == 1
    finally:
        stop.set()
        client.close()
        await cut_off.close()
        await direct.close()
