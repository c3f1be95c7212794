"""The simulator on a thread of its own, for synchronous callers (exchangelib tests, the CLI).

All simulator state lives on that thread's event loop; `call` runs a function there and
returns its result, so a test never touches the state from two threads at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

from pushsync.simulator.config import SimulatorConfig
from pushsync.simulator.simulator import Simulator

P = ParamSpec("P")
T = TypeVar("T")

CALL_TIMEOUT_SECONDS = 30.0


class SimulatorThread:
    def __init__(self, config: SimulatorConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="exchange-simulator", daemon=True)
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._config = config
        self.simulator: Simulator | None = None

    @property
    def sim(self) -> Simulator:
        if self.simulator is None:
            raise RuntimeError("the simulator is not running")
        return self.simulator

    def start(self) -> SimulatorThread:
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError("the simulator did not start") from self._failure
        return self

    def call(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `function` on the simulator's loop and return its result."""

        async def run() -> T:
            return function(*args, **kwargs)

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(CALL_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self.sim.stop(), self._loop).result(CALL_TIMEOUT_SECONDS)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT_SECONDS)

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.simulator = Simulator(self._config)
            self._loop.run_until_complete(self.simulator.start())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()
