"""`pushsync simulate`: the simulator standalone, printing where it listens and what it does."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime

from rich.console import Console

from pushsync.simulator.config import SimulatorConfig, generated_rooms
from pushsync.simulator.simulator import Simulator

REPORT_EVERY_SECONDS = 10.0  # real seconds between two status lines


def run_simulator(
    console: Console,
    *,
    rooms: int,
    host: str,
    port: int,
    scale: float,
    activity: float,
    seed: int,
    busy_rate: float,
    epoch: datetime,
) -> None:
    config = SimulatorConfig(
        epoch=epoch,
        rooms=generated_rooms(rooms),
        host=host,
        port=port,
        scale=scale,
        seed=seed,
        busy_rate=busy_rate,
        activity_per_minute=activity,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(console, config))


async def _serve(console: Console, config: SimulatorConfig) -> None:
    async with Simulator(replace(config)) as sim:
        console.print(f"EWS endpoint: {sim.ews_url}")
        console.print(f"credentials:  {config.username} / {config.password} (Basic)")
        console.print(f"rooms:        {config.rooms[0].email} … {config.rooms[-1].email}")
        console.print(f"clock:        {sim.clock.now():%Y-%m-%d %H:%M:%S} UTC, x{config.scale:g}")
        while True:
            await asyncio.sleep(REPORT_EVERY_SECONDS)
            _report(console, sim)


def _report(console: Console, sim: Simulator) -> None:
    push = sim.push
    active = len(push.active()) if push else 0
    sent = len(push.deliveries) if push else 0
    calls = sum(sim.exchange.calls.values())
    instances = len(sim.exchange.truth())
    console.print(
        f"{sim.clock.now():%Y-%m-%d %H:%M} Exchange time: {len(sim.activity.log)} actions, "
        f"{instances} booked instances, {active} subscriptions, {sent} notifications, "
        f"{calls} EWS calls"
    )
