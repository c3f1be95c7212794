"""`pushsync demo`: the whole loop on one machine, with no Microsoft tenant.

The Exchange simulator (a test double, src/pushsync/simulator/) holds N room calendars with live
random booking activity and pushes notifications (EWS push, or Graph change notifications with
`--protocol graph`) to pushsync's public listener, which writes them to embedded SQLite; the
subscription manager keeps every room subscribed and the worker turns rows into reservations.
At the end the reservation table is checked against the simulator's calendars, and a summary
says how it went.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import socket
import statistics
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from rich.console import Console
from rich.live import Live
from rich.table import Table

from pushsync.ews.subscription_manager import SubscriptionManager
from pushsync.graph.room_discovery import Roster, discover_forever
from pushsync.graph.subscription_manager import GraphSubscriptionManager
from pushsync.logs import add_secrets, secret_values
from pushsync.model.reservation import Reservation
from pushsync.processes.sync import (
    Clients,
    build_clients,
    build_discovery,
    build_graph_manager,
    build_manager,
    build_worker,
    room_plan,
)
from pushsync.settings import Settings
from pushsync.simulator import Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.booking import Room
from pushsync.simulator.config import ALL_ROOMS
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.simulator.items import Instance, Response
from pushsync.store import open_store
from pushsync.store.connector import Connector
from pushsync.store.reservation_book import Reservations
from pushsync.web.app import build_app
from pushsync.web.protocol import Limits, guarded_protocol
from pushsync.worker.loop import Worker

log = logging.getLogger(__name__)

RESPONSES = {
    Response.ACCEPT: "accepted",
    Response.TENTATIVE: "tentative",
    Response.DECLINE: "declined",
}
SETTLE_DEADLINE_S = 60.0
DISCOVERY_SECONDS = 3.0  # how often the Graph demo reads its room list again
NEW_ROOM = "annex-1@contoso.example"


@dataclass(frozen=True)
class DemoOptions:
    rooms: int = 20
    duration_s: float = 60.0
    scale: float = 60.0  # Exchange seconds per real second
    activity_per_minute: float = 20.0  # booking actions per Exchange minute
    seed: int = 1
    directory: Path = Path("var/demo")
    protocol: str = "ews"  # or "graph"


@dataclass
class DemoSummary:
    notifications: int
    reservations: int
    lag_p50_s: float
    lag_p99_s: float
    calls: int
    actions: int
    consistent: bool
    missing: list[Any]
    extra: list[Any]
    database: str = ""
    interrupted: bool = False

    @property
    def calls_per_notification(self) -> float:
        return self.calls / self.notifications if self.notifications else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_settings(options: DemoOptions, sim: Simulator, port: int) -> Settings:
    """Over EWS the rooms are listed by hand; over Graph the installation is Graph-only, as
    a tenant after EWS: no `ews_url`, its rooms read from the simulator's room list in Places,
    again every few seconds (a room created half-way through is picked up)."""
    database = options.directory / "pushsync.db"
    for leftover in options.directory.glob("pushsync.db*"):
        leftover.unlink()  # every demo starts from an empty database
    if options.protocol == "graph":
        return _settings(
            options,
            sim,
            port,
            database,
            room_lists=[ALL_ROOMS.email],
            room_discovery_minutes=DISCOVERY_SECONDS / 60,
        )
    return _settings(
        options,
        sim,
        port,
        database,
        ews_url=sim.ews_url,
        ews_auth="basic",
        ews_username=sim.config.username,
        ews_password=sim.config.password,
        rooms=[room.email for room in sim.config.rooms],
    )


def _settings(
    options: DemoOptions, sim: Simulator, port: int, database: Path, **where: Any
) -> Settings:
    return Settings(
        database_url=f"sqlite:///{database}",
        host="127.0.0.1",
        port=port,
        allowed_networks=["127.0.0.0/8", "::1/128"],
        use_microsoft_ranges=False,
        callback_token=secrets.token_urlsafe(32),
        public_url=f"http://127.0.0.1:{port}",
        protocol=options.protocol,
        graph_url=sim.graph_url,
        graph_token=GRAPH_TOKEN,
        graph_client_state=secrets.token_urlsafe(32),
        status_frequency_minutes=15,
        subscription_check_seconds=1.0,
        worker_debounce_ms=300,
        sync_window_past_days=1,
        sync_window_future_days=120,
        **where,
    )


async def run_demo(options: DemoOptions, console: Console) -> DemoSummary:
    options.directory.mkdir(parents=True, exist_ok=True)
    config = SimulatorConfig(
        rooms=generated_rooms(options.rooms),
        scale=options.scale,
        seed=options.seed,
        activity_per_minute=options.activity_per_minute,
    )
    minute = timedelta(seconds=60 / options.scale)
    async with Simulator(config) as sim:
        settings = demo_settings(options, sim, free_port())
        add_secrets(secret_values(settings))  # the log file was opened before they existed
        receiver = _receiver(settings)
        serving = asyncio.create_task(receiver.serve())
        while not receiver.started:  # noqa: ASYNC110 - uvicorn has no "started" event
            await asyncio.sleep(0.01)
        clients = build_clients(settings)
        stop = asyncio.Event()
        async with open_store(settings) as connector:
            worker = build_worker(
                settings, connector, clients.ews, sim.clock.now, graph=clients.graph
            )
            plan = await room_plan(settings, clients.ews, graph=clients.graph, connector=connector)
            roster = Roster(plan.all)
            loops = [
                _manager(settings, connector, clients, sim, minute).run(
                    stop, roster, settings.subscription_check_seconds
                ),
                worker.run(stop),
            ]
            if clients.graph is not None:
                discovery = build_discovery(settings, connector, clients.graph, roster)
                every = settings.room_discovery_minutes * 60
                loops.append(discover_forever(discovery, roster, [], stop, every, _graph))
                loops.append(_new_room_later(sim, options.duration_s / 2, stop))
            running = asyncio.gather(*loops)
            interrupted = await _show_progress(options, sim, connector, worker, console)
            sim.pause_activity()
            console.print(
                "\ninterrupted: " * interrupted + "activity stopped; waiting for the last "
                "changes to arrive (Ctrl-C again to quit at once) …"
            )
            missing, extra = await _settle(sim, connector)
            stop.set()
            await running
            summary = await _summary(sim, connector, worker, clients.calls, missing, extra)
            summary.database = settings.database_url
            summary.interrupted = interrupted
        await clients.aclose()
        receiver.should_exit = True
        await serving
    return summary


def _graph(_mailbox: str) -> str:
    return "graph"


async def _new_room_later(sim: Simulator, after_s: float, stop: asyncio.Event) -> None:
    """Half-way through, an admin creates a room and adds it to the room list."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), after_s)
    if not stop.is_set() and sim.graph is not None:
        room = Room(NEW_ROOM, "Annex", "Europe/Berlin")
        sim.graph.places.add_room(room, ALL_ROOMS.email, capacity=30, building="Annex")
        log.info("room created and added to the room list", extra={"mailbox": NEW_ROOM})


def _manager(
    settings: Settings, connector: Connector, clients: Clients, sim: Simulator, minute: timedelta
) -> SubscriptionManager | GraphSubscriptionManager:
    """The demo's rooms all use one protocol: the EWS or the Graph subscription manager."""
    if clients.graph is not None:
        return build_graph_manager(settings, connector, clients.graph, sim.clock.now)
    assert clients.ews is not None
    return build_manager(settings, connector, clients.ews, minute)


def _receiver(settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        lifespan="on",
        http=guarded_protocol(Limits.from_settings(settings)),  # type: ignore[arg-type]
        access_log=False,
        log_config=None,
        proxy_headers=False,
    )
    return uvicorn.Server(config)


async def _show_progress(
    options: DemoOptions, sim: Simulator, connector: Connector, worker: Worker, console: Console
) -> bool:
    """The live view until the duration is over or Ctrl-C; True if interrupted. The first
    Ctrl-C ends the activity early and the demo still checks and summarises; a second one
    stops it at once (the default handler is back)."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, interrupted.set)
    started = time.monotonic()
    try:
        with Live(console=console, refresh_per_second=2) as live:
            while (elapsed := time.monotonic() - started) < options.duration_s:
                live.update(await _progress_table(elapsed, options, sim, connector, worker))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(interrupted.wait(), 1.0)
                if interrupted.is_set():
                    return True
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return False


async def _progress_table(
    elapsed: float, options: DemoOptions, sim: Simulator, connector: Connector, worker: Worker
) -> Table:
    counts = await _counts(connector)
    table = Table(
        "elapsed",
        "Exchange time",
        "bookings",
        "notifications",
        "pending",
        "reservations",
        "lag p50",
        title=f"pushsync demo: {options.rooms} rooms",
    )
    table.add_row(
        f"{elapsed:.0f} / {options.duration_s:.0f} s",
        f"{sim.clock.now():%a %H:%M}",
        str(len(sim.activity.log)),
        str(counts["notifications"]),
        str(counts["pending"]),
        str(counts["reservations"]),
        _seconds(_percentile(worker.stats.lag_seconds, 50)),
    )
    return table


async def _counts(connector: Connector) -> dict[str, int]:
    async with connector.session() as session:
        row = await session.fetch_one("demo_counts")
    return {k: int(v) for k, v in (row or {}).items()}


async def _settle(sim: Simulator, connector: Connector) -> tuple[list[Any], list[Any]]:
    """Wait until the reservation table equals the simulator's calendars, or the deadline."""
    deadline = time.monotonic() + SETTLE_DEADLINE_S
    while True:
        sim.exchange.settle()
        now = sim.clock.now()
        window = (now - timedelta(days=1), now + timedelta(days=120))
        truth = truth_rows(sim.exchange.truth(*window))
        stored = stored_rows(await Reservations(connector).all(), *window)
        if truth == stored or time.monotonic() > deadline:
            return sorted(truth - stored), sorted(stored - truth)
        await asyncio.sleep(0.5)


async def _summary(
    sim: Simulator,
    connector: Connector,
    worker: Worker,
    calls: int,
    missing: list[Any],
    extra: list[Any],
) -> DemoSummary:
    counts = await _counts(connector)
    lags = worker.stats.lag_seconds
    return DemoSummary(
        notifications=counts["notifications"],
        reservations=counts["reservations"],
        lag_p50_s=_percentile(lags, 50),
        lag_p99_s=_percentile(lags, 99),
        calls=calls,
        actions=len(sim.activity.log),
        consistent=not missing and not extra,
        missing=missing,
        extra=extra,
    )


def truth_rows(instances: list[Instance]) -> set[tuple[Any, ...]]:
    """The simulator's booked instances as comparable tuples (a declined meeting books nothing)."""
    return {
        (
            i.mailbox.lower(),
            i.uid,
            i.original_start,
            i.start,
            i.end,
            i.cancelled,
            RESPONSES[i.response],
            i.all_day,
        )
        for i in instances
        if i.response is not Response.DECLINE
    }


def stored_rows(
    reservations: list[Reservation], start: datetime, end: datetime
) -> set[tuple[Any, ...]]:
    return {
        (
            r.mailbox.lower(),
            r.uid,
            r.original_start,
            r.start,
            r.end,
            r.is_cancelled,
            r.response_state,
            r.is_all_day,
        )
        for r in reservations
        if r.end > start and r.start < end
    }


def _percentile(values: list[float], percent: int) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


def _seconds(value: float) -> str:
    return f"{value:.2f} s"


def print_summary(summary: DemoSummary, console: Console) -> None:
    table = Table("", "", title="pushsync demo: summary", show_header=False)
    table.add_row("booking actions in Exchange", str(summary.actions))
    table.add_row("notifications received", str(summary.notifications))
    table.add_row("reservations", str(summary.reservations))
    table.add_row("lag p50 / p99", f"{_seconds(summary.lag_p50_s)} / {_seconds(summary.lag_p99_s)}")
    table.add_row("Exchange calls per notification", f"{summary.calls_per_notification:.3f}")
    verdict = "[green]PASS[/green]" if summary.consistent else "[red]FAIL[/red]"
    table.add_row("calendars = reservations", verdict)
    if summary.interrupted:
        table.add_row("interrupted", "yes: the activity was cut short by Ctrl-C")
    table.add_row("database", summary.database)
    console.print(table)
    console.print(
        "The CLI against this database: ./scripts/pushsync subscriptions list "
        f"--database-url {summary.database}",
        highlight=False,
        soft_wrap=True,
    )
    for label, rows in (("missing", summary.missing), ("unexpected", summary.extra)):
        for row in rows[:10]:
            console.print(f"[red]{label}[/red] {row}")


def main(options: DemoOptions, console: Console) -> DemoSummary:
    """Run the demo and print its summary; `consistent` when the reservations equal the
    simulator's calendars."""
    summary = asyncio.run(run_demo(options, console))
    print_summary(summary, console)
    return summary
