"""pushsync's subscription manager and sync worker on a thread of their own, for tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pushsync.simulator.demo as demo
from pushsync.processes.sync import build_ews_client, build_manager, build_worker
from pushsync.settings import Settings
from pushsync.simulator import SimulatorThread
from pushsync.simulator.items import Instance
from pushsync.store import open_store
from pushsync.worker.loop import Worker
from tests.acceptance.conftest import CALLBACK_TOKEN, ServerProcess

RESPONSES = demo.RESPONSES


def sync_settings(server: ServerProcess, thread: SimulatorThread, **overrides: Any) -> Settings:
    config = thread.sim.config
    values: dict[str, Any] = {
        "database_url": server.database_url,
        "ews_url": thread.sim.ews_url,
        "ews_auth": "basic",
        "ews_username": config.username,
        "ews_password": config.password,
        "rooms": [room.email for room in config.rooms],
        "public_url": server.url,
        "callback_token": CALLBACK_TOKEN,
        "status_frequency_minutes": 5,
        "subscription_check_seconds": 0.2,
        "worker_debounce_ms": 100,
        "sync_window_past_days": 1,
        "sync_window_future_days": 120,
    }
    values.update(overrides)
    return Settings(**values)


class Workers:
    """One subscription manager and `count` workers (each its own queue owner) on a thread."""

    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime],
        minute: timedelta,
        count: int = 1,
        *,
        manager: bool = True,
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._minute = minute
        self._count = count
        self._manager = manager
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="pushsync-workers", daemon=True)
        self.workers: list[Worker] = []
        self.failure: BaseException | None = None

    def __enter__(self) -> Workers:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # surfaced by the test through `failure`
            self.failure = exc

    async def _main(self) -> None:
        client = build_ews_client(self.settings)
        async with open_store(self.settings) as connector:
            self.workers = [
                build_worker(self.settings, connector, client, self._clock)
                for _ in range(self._count)
            ]
            tasks = [worker.run(self._stop) for worker in self.workers]
            if self._manager:
                manager = build_manager(self.settings, connector, client, self._minute)
                rooms = self.settings.rooms
                tasks.append(
                    manager.run(self._stop, rooms, self.settings.subscription_check_seconds)
                )
            await asyncio.gather(*tasks)
        client.close()


class SyncLoop(Workers):
    """The subscription manager and one worker; `minute` is one Exchange minute in real time."""

    def __init__(
        self, settings: Settings, clock: Callable[[], datetime], minute: timedelta
    ) -> None:
        super().__init__(settings, clock, minute)

    @property
    def worker(self) -> Worker | None:
        return self.workers[0] if self.workers else None


def truth_rows(thread: SimulatorThread, start: datetime, end: datetime) -> set[tuple[Any, ...]]:
    """The simulator's booked instances, as the comparable tuples of `stored_rows`."""
    instances: list[Instance] = thread.call(thread.sim.exchange.truth, start, end)
    return demo.truth_rows(instances)


stored_rows = demo.stored_rows
