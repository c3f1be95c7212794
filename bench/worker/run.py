"""The sync worker under a burst: Exchange calls per notification, time to converge, lag.

    uv run python -m bench.worker [--rooms 200] [--changes 50] [--naive-rooms 20]
                                  [--protocol ews|graph]

The Exchange simulator pushes to pushsync's real receiver (in this process, over loopback HTTP,
into SQLite); the subscription manager subscribes every room and the worker syncs them. Once
the initial resyncs are done, every room gets `--changes` changes within one second (a tenth
bookings, the rest moves and extensions of them), each of which Exchange notifies as several
events (item + folder, tentative then accepted). Measured from the burst until the reservation
table equals the simulator's calendars: Exchange requests of the worker per notification row,
the time to converge, and received -> applied lag. Then a trickle (one change per second in
random rooms) gives the lag outside bursts.

The baseline in the same run is the naive worker, one GetItem per notification row: the same
Worker with batches of one row, no debounce and one id per GetItem. It is slow, so it runs on
`--naive-rooms` rooms, beside pushsync on the same smaller burst for a like-for-like ratio.

With `--protocol graph` the simulator pushes Graph change notifications (one per changed
event) and pushsync answers each room's burst with one calendarView delta round from the
room's stored cursor; the naive baseline GETs each notified event (one row at a time), as
pushsync did before the delta path.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import uvicorn

from pushsync.ews.adapter import EwsAdapter
from pushsync.ews.calendar_source import EwsCalendar
from pushsync.ews.client import EwsClient
from pushsync.graph.adapter import GraphAdapter
from pushsync.graph.calendar_source import GraphCalendar
from pushsync.graph.client import GraphClient
from pushsync.model.reservation import Changes, Observation, RoomSnapshot
from pushsync.processes.sync import (
    build_ews_client,
    build_graph_client,
    build_graph_manager,
    build_manager,
    build_worker,
)
from pushsync.settings import Settings
from pushsync.simulator import Meeting, Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.activity import ORGANIZERS
from pushsync.simulator.demo import free_port, stored_rows, truth_rows
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.store import open_store
from pushsync.store.connector import Connector
from pushsync.store.notification_queue import Claimed, NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.web.app import build_app
from pushsync.web.protocol import Limits, guarded_protocol
from pushsync.worker.loop import Worker

SCALE = 60.0  # Exchange seconds per real second
CONVERGE_DEADLINE_S = 600.0


@dataclass
class Result:
    label: str
    rooms: int
    changes: int
    notifications: int
    calls: int
    converge_s: float
    burst_lag: list[float]
    trickle_lag: list[float]

    @property
    def calls_per_notification(self) -> float:
        return self.calls / self.notifications if self.notifications else 0.0


def percentile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def settings_for(
    sim: Simulator, database: Path, port: int, naive: bool, protocol: str = "ews"
) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite:///{database}",
        "host": "127.0.0.1",
        "port": port,
        "allowed_networks": ["127.0.0.0/8"],
        "use_microsoft_ranges": False,
        "callback_token": secrets.token_urlsafe(24),
        "public_url": f"http://127.0.0.1:{port}",
        "ews_url": sim.ews_url,
        "ews_auth": "basic",
        "ews_username": sim.config.username,
        "ews_password": sim.config.password,
        "rooms": [room.email for room in sim.config.rooms],
        "status_frequency_minutes": 30,
        "subscription_check_seconds": 5.0,
        "sync_window_past_days": 1,
        "sync_window_future_days": 60,
        "protocol": protocol,
        "graph_url": sim.graph_url,
        "graph_token": GRAPH_TOKEN,
        "graph_client_state": secrets.token_urlsafe(24),
    }
    if naive:  # one row at a time, at once, one id per GetItem
        values |= {"worker_batch_size": 1, "worker_debounce_ms": 0, "fetch_chunk_size": 1}
    return Settings(**values)  # type: ignore[arg-type]


def burst(exchange: Exchange, changes: int, seed: int) -> int:
    """`changes` changes per room, all now: a tenth bookings, then moves and extensions."""
    rng = random.Random(seed)
    now = exchange.clock.now()
    done = 0
    for calendar in exchange.calendars.values():
        zone = ZoneInfo(calendar.room.time_zone)
        meetings: list[Meeting] = []
        for n in range(max(changes // 10, 1)):
            day = now.astimezone(zone).date() + timedelta(days=1 + n)
            meetings.append(book(exchange, calendar.mailbox, day, rng))
            done += 1
        while done % changes or done == 0:
            index = rng.randrange(len(meetings))
            meeting = meetings[index]
            shift = timedelta(minutes=rng.choice((15, 30)))
            if rng.random() < 0.5:
                meeting = replace(meeting, start=meeting.start + shift, end=meeting.end + shift)
            else:
                meeting = replace(meeting, end=meeting.end + shift)
            meetings[index] = meeting
            exchange.update(meeting)
            done += 1
    return done


def book(exchange: Exchange, mailbox: str, day: date, rng: random.Random) -> Meeting:
    calendar = exchange.calendars[mailbox]
    zone = ZoneInfo(calendar.room.time_zone)
    start = datetime.combine(day, clock_time(8 + rng.randint(0, 9)), zone).astimezone(UTC)
    meeting = Meeting(
        uid=secrets.token_hex(16).upper(),
        organizer=rng.choice(ORGANIZERS),
        subject="Burst",
        start=start,
        end=start + timedelta(minutes=30),
        time_zone=calendar.room.time_zone,
    )
    exchange.book(meeting, [mailbox])
    return meeting


async def rows_received(connector: Connector) -> int:
    async with connector.session() as session:
        row = await session.fetch_one("demo_counts")
    return int(row["notifications"]) if row else 0


async def converged(sim: Simulator, connector: Connector) -> bool:
    sim.exchange.settle()
    now = sim.clock.now()
    window = (now - timedelta(days=1), now + timedelta(days=60))
    truth = truth_rows(sim.exchange.truth(*window))
    stored = stored_rows(await Reservations(connector).all(), *window)
    return truth == stored


async def until(condition, deadline_s: float = CONVERGE_DEADLINE_S) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > deadline_s:
            raise SystemExit(f"not converged within {deadline_s:.0f} s")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def measure(
    label: str, rooms: int, changes: int, naive: bool, trickle_s: float, protocol: str = "ews"
) -> Result:
    config = SimulatorConfig(rooms=generated_rooms(rooms), scale=SCALE, seed=3)
    directory = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    async with Simulator(config) as sim:
        settings = settings_for(sim, directory / "pushsync.db", free_port(), naive, protocol)
        receiver = uvicorn.Server(
            uvicorn.Config(
                build_app(settings),
                host=settings.host,
                port=settings.port,
                lifespan="on",
                http=guarded_protocol(Limits.from_settings(settings)),  # type: ignore[arg-type]
                access_log=False,
                log_config=None,
            )
        )
        serving = asyncio.create_task(receiver.serve())
        while not receiver.started:  # noqa: ASYNC110 - uvicorn has no "started" event
            await asyncio.sleep(0.01)
        stop = asyncio.Event()
        async with open_store(settings) as connector:
            if protocol == "graph":
                graph = build_graph_client(settings)
                worker = build_worker(settings, connector, None, sim.clock.now, graph=graph)
                if naive:
                    worker = naive_graph_worker(settings, connector, graph, sim)
                manager = build_graph_manager(settings, connector, graph, sim.clock.now)
            else:
                client = build_ews_client(settings)
                worker = build_worker(settings, connector, client, sim.clock.now)
                if naive:
                    worker = naive_worker(settings, connector, client, sim)
                manager = build_manager(settings, connector, client, timedelta(seconds=60 / SCALE))
            running = asyncio.gather(
                manager.run(stop, settings.rooms, settings.subscription_check_seconds),
                worker.run(stop),
            )
            await until(lambda: _resynced(worker, rooms))
            await _quiet(connector, worker)
            result = await _burst_and_trickle(
                label, sim, connector, worker, rooms, changes, trickle_s
            )
            stop.set()
            await running
        if protocol == "graph":
            await graph.aclose()
        else:
            client.close()
        receiver.should_exit = True
        await serving
    return result


class ItemsOnly:
    """The naive worker's source: GetItem for the items rows name, nothing for a folder's row
    (pushsync's own source would catch a lone folder event up with SyncFolderItems)."""

    def __init__(self, source: EwsCalendar) -> None:
        self._source = source

    @property
    def calls(self) -> int:
        return self._source.calls

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]:
        return await self._source.observe(mailbox, item_ids)

    async def observe_room(self, mailbox: str, cursor: str | None = None) -> RoomSnapshot:
        return await self._source.observe_room(mailbox, cursor)


def naive_worker(
    settings: Settings, connector: Connector, client: EwsClient, sim: Simulator
) -> Worker:
    """One row at a time, at once, one id per GetItem (the settings say so), items only."""
    calendar = EwsCalendar(
        client,
        past=timedelta(days=settings.sync_window_past_days),
        future=timedelta(days=settings.sync_window_future_days),
        clock=sim.clock.now,
        fetch_chunk=settings.fetch_chunk_size,
    )
    return Worker(
        NotificationQueue(connector),
        Reservations(connector),
        Subscriptions(connector),
        {"ews": EwsAdapter(ItemsOnly(calendar), Subscriptions(connector))},
        batch_size=settings.worker_batch_size,
        debounce=timedelta(milliseconds=settings.worker_debounce_ms),
    )


class PerEventGraphAdapter(GraphAdapter):
    """The naive Graph worker's adapter: every notified event is fetched with its own GET
    (and its series' master and instances), never the delta round."""

    async def changes_since_cursor(
        self, mailbox: str, rows: Sequence[Claimed], fetch: Sequence[str]
    ) -> Changes | None:
        return None


def naive_graph_worker(
    settings: Settings, connector: Connector, client: GraphClient, sim: Simulator
) -> Worker:
    """One row at a time, at once (the settings say so), one GET per notified event."""
    calendar = GraphCalendar(
        client,
        past=timedelta(days=settings.sync_window_past_days),
        future=timedelta(days=settings.sync_window_future_days),
        clock=sim.clock.now,
    )
    return Worker(
        NotificationQueue(connector),
        Reservations(connector),
        Subscriptions(connector),
        {"graph": PerEventGraphAdapter(calendar, Subscriptions(connector))},
        batch_size=settings.worker_batch_size,
        debounce=timedelta(milliseconds=settings.worker_debounce_ms),
    )


async def _resynced(worker: Worker, rooms: int) -> bool:
    return worker.stats.resyncs >= rooms


async def _quiet(connector: Connector, worker: Worker) -> None:
    """Wait until the start-up notifications (first StatusEvents) are worked off."""
    before = -1
    while (now := await rows_received(connector)) != before or worker.stats.notifications < now:
        before = now
        await asyncio.sleep(0.5)


async def _burst_and_trickle(
    label: str,
    sim: Simulator,
    connector: Connector,
    worker: Worker,
    rooms: int,
    changes: int,
    trickle_s: float,
) -> Result:
    rows_before = await rows_received(connector)
    calls_before, lags_before = worker.stats.calls, len(worker.stats.lag_seconds)
    started = time.monotonic()
    made = burst(sim.exchange, changes, seed=5)
    burst_s = time.monotonic() - started
    await until(lambda: converged(sim, connector))
    await until(lambda: _drained(connector, worker))
    converge_s = time.monotonic() - started
    notifications = await rows_received(connector) - rows_before
    calls = worker.stats.calls - calls_before
    burst_lag = worker.stats.lag_seconds[lags_before:]
    print(f"  {label}: {made} changes made in {burst_s:.2f} s")
    trickle_from = len(worker.stats.lag_seconds)
    rng = random.Random(9)
    deadline = time.monotonic() + trickle_s
    while time.monotonic() < deadline:  # one booking a second, in a random room
        mailbox = rng.choice(sorted(sim.exchange.calendars))
        book(sim.exchange, mailbox, sim.clock.now().date() + timedelta(days=30), rng)
        await asyncio.sleep(1.0)
    await until(lambda: converged(sim, connector))
    await until(lambda: _drained(connector, worker))
    trickle_lag = worker.stats.lag_seconds[trickle_from:]
    return Result(label, rooms, made, notifications, calls, converge_s, burst_lag, trickle_lag)


async def _drained(connector: Connector, worker: Worker) -> bool:
    return worker.stats.notifications >= await rows_received(connector)


def report(result: Result) -> None:
    burst, trickle = result.burst_lag, result.trickle_lag
    print(
        f"{result.label:>8} {result.rooms:>5} x {result.changes // result.rooms:<3}"
        f" notifications {result.notifications:>6}  calls {result.calls:>6}"
        f"  calls/notification {result.calls_per_notification:.3f}"
        f"  converged in {result.converge_s:6.1f} s"
        f"  burst lag p50/p99 {percentile(burst, 50):.2f}/{percentile(burst, 99):.2f} s"
        f"  quiet lag p50/p99 {percentile(trickle, 50):.2f}/{percentile(trickle, 99):.2f} s"
    )


async def run(args: argparse.Namespace) -> None:
    protocol = args.protocol
    print(
        f"bench/worker ({protocol}): {args.rooms} rooms x {args.changes} changes; scale {SCALE:.0f}"
    )
    full = await measure("pushsync", args.rooms, args.changes, False, args.trickle, protocol)
    report(full)
    same = await measure("pushsync", args.naive_rooms, args.changes, False, args.trickle, protocol)
    report(same)
    naive = await measure("naive", args.naive_rooms, args.changes, True, args.trickle, protocol)
    print()
    for result in (full, same, naive):
        report(result)
    print(
        f"\ncalls per notification: pushsync {same.calls_per_notification:.3f}, naive "
        f"{naive.calls_per_notification:.3f} ({naive.calls / max(same.calls, 1):.0f}x the calls);"
        f" time to converge: naive / pushsync = {naive.converge_s / same.converge_s:.1f}"
    )
    print(
        f"targets: <= 0.1 calls/notification: {full.calls_per_notification:.3f}; quiet lag "
        f"p50 <= 1 s: {percentile(full.trickle_lag, 50):.2f}; p99 <= 5 s: "
        f"{percentile(full.trickle_lag, 99):.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.worker", description=__doc__)
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--changes", type=int, default=50, help="changes per room")
    parser.add_argument("--naive-rooms", type=int, default=20)
    parser.add_argument("--trickle", type=float, default=10.0, help="seconds of quiet changes")
    parser.add_argument("--protocol", choices=("ews", "graph"), default="ews")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
