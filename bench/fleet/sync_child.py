"""The `pushsync worker` process of bench/fleet: the subscription manager and the sync worker,
built by the same functions as `pushsync worker` (processes/sync.py), with the simulator's time
scale: a StatusFrequency minute and the daily resync in real seconds, the sync window and the
Graph manager on Exchange's clock.

    python -m bench.fleet.sync_child SETTINGS.json EPOCH ANCHOR SCALE [--role both|worker]

EPOCH (ISO) and ANCHOR (`time.monotonic()` in the simulator's process: the clock is one for the
machine) give Exchange time = EPOCH + (monotonic - ANCHOR) x SCALE. It runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta

from pushsync.logs import configure_from
from pushsync.processes.sync import (
    build_clients,
    build_graph_manager,
    build_manager,
    build_worker,
    share_ews_concurrency,
)
from pushsync.settings import Settings
from pushsync.store import open_store


def exchange_clock(epoch: datetime, anchor: float, scale: float):  # type: ignore[no-untyped-def]
    def now() -> datetime:
        return epoch + timedelta(seconds=(time.monotonic() - anchor) * scale)

    return now


async def run(settings: Settings, clock, scale: float, role: str) -> None:  # type: ignore[no-untyped-def]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    clients = build_clients(settings)
    async with open_store(settings) as connector:
        worker = build_worker(settings, connector, clients.ews, clock, graph=clients.graph)
        loops: list[Awaitable[None]] = [worker.run(stop)]
        rooms = list(settings.rooms)
        interval = settings.subscription_check_seconds
        if clients.ews is not None:
            loops.append(share_ews_concurrency(settings, connector, clients.ews, stop))
        if role == "both" and clients.ews is not None:
            manager = build_manager(settings, connector, clients.ews, timedelta(seconds=60 / scale))
            loops.append(manager.run(stop, rooms, interval))
        if role == "both" and clients.graph is not None:
            graph_manager = build_graph_manager(settings, connector, clients.graph, clock)
            loops.append(graph_manager.run(stop, rooms, interval))
        await asyncio.gather(*loops)
    await clients.aclose()


def main() -> None:
    path, epoch, anchor, scale = sys.argv[1:5]
    role = sys.argv[6] if len(sys.argv) > 6 and sys.argv[5] == "--role" else "both"
    with open(path) as file:
        settings = Settings(**json.load(file))
    configure_from(settings)  # to stderr (the bench's log of this child), secrets masked
    clock = exchange_clock(datetime.fromisoformat(epoch), float(anchor), float(scale))
    asyncio.run(run(settings, clock, float(scale), role))


if __name__ == "__main__":
    main()
