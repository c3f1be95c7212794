"""The simulator as one async object: EWS server, push deliveries, attendant and activity.

`Simulator` runs on the caller's event loop (`async with Simulator(config) as sim`); the thread
wrapper in `server.py` gives synchronous tests and the CLI the same thing on a loop of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from types import TracebackType

import uvicorn

from pushsync.simulator.activity import Activity
from pushsync.simulator.app import SimulatorApp
from pushsync.simulator.clock import SimClock
from pushsync.simulator.config import SimulatorConfig
from pushsync.simulator.exchange import Exchange
from pushsync.simulator.graph.api import GraphApi
from pushsync.simulator.graph.webhooks import GraphWebhooks
from pushsync.simulator.listener_client import ListenerClient
from pushsync.simulator.push import PushEngine

PUSH_SLOTS = 64  # deliveries (EWS push, Graph webhooks) in flight at once; the rest wait in turn
ATTENDANT_TICK_SECONDS = 1.0  # Exchange time between two rounds of the booking attendant


class Simulator:
    def __init__(self, config: SimulatorConfig, *, clock: SimClock | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock(epoch=config.epoch, scale=config.scale)
        self.exchange = Exchange(config, self.clock)
        self.activity = Activity(self.exchange, config.seed)
        self.push: PushEngine | None = None
        self.graph: GraphApi | None = None  # Microsoft Graph under /v1.0
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._activity_task: asyncio.Task[None] | None = None
        self._http: ListenerClient | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ews_url(self) -> str:
        """The service endpoint to give exchangelib."""
        return self.url + "/EWS/Exchange.asmx"

    @property
    def graph_url(self) -> str:
        """The Graph base URL to give pushsync's Graph client."""
        return self.url + "/v1.0"

    async def start(self) -> None:
        self._http = ListenerClient(PUSH_SLOTS)
        self.push = PushEngine(self.exchange, self._http)
        self.exchange.push = self.push
        self.graph = GraphApi(self.exchange, GraphWebhooks(self.exchange, self._http))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self.port = sock.getsockname()[1]
        self.graph.base_url = self.url
        uvicorn_config = uvicorn.Config(
            SimulatorApp(self.exchange, self.graph),
            lifespan="off",
            access_log=False,
            log_config=None,
            server_header=False,
        )
        self._server = uvicorn.Server(uvicorn_config)
        self._tasks.append(asyncio.create_task(self._server.serve(sockets=[sock])))
        self._tasks.append(asyncio.create_task(self._attendant()))
        if self.config.activity_per_minute > 0:
            self._activity_task = asyncio.create_task(self._activity())
            self._tasks.append(self._activity_task)
        while not self._server.started:  # noqa: ASYNC110 - uvicorn has no "started" event
            await asyncio.sleep(0.01)

    def pause_activity(self) -> None:
        """Stop the random booking activity; the rooms' attendants and push go on."""
        if self._activity_task is not None:
            self._activity_task.cancel()

    async def stop(self) -> None:
        if self.push is not None:
            await self.push.close()
        if self.graph is not None:
            await self.graph.webhooks.close()
        if self._server is not None:
            self._server.should_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _activity(self) -> None:
        """Random booking activity at the configured rate, seeded for reproducibility."""
        interval = 60.0 / self.config.activity_per_minute
        while True:
            await self.clock.sleep(interval)
            self.activity.step()

    async def _attendant(self) -> None:
        """Rooms answer bookings on their own schedule, not only when someone calls EWS."""
        while True:
            await self.clock.sleep(ATTENDANT_TICK_SECONDS)
            self.exchange.attend()
