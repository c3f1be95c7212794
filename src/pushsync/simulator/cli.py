"""`pushsync simulate` (the simulator standalone, printing where it listens and what it does)
and `pushsync demo`. The `pushsync` command line finds these by the entry point
`pushsync.commands` (pyproject.toml), so it imports nothing of the simulator itself."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console

from pushsync.cli.common import console
from pushsync.cli.sync import Protocol
from pushsync.logs import configure_logging
from pushsync.simulator.config import SimulatorConfig, generated_rooms
from pushsync.simulator.simulator import Simulator

REPORT_EVERY_SECONDS = 10.0  # real seconds between two status lines

commands = typer.Typer()


@commands.command()
def simulate(
    rooms: Annotated[int, typer.Option(help="number of room mailboxes")] = 20,
    port: Annotated[int, typer.Option(help="port to listen on (0: any free port)")] = 0,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    scale: Annotated[float, typer.Option(help="Exchange seconds per real second")] = 1.0,
    activity: Annotated[float, typer.Option(help="booking actions per Exchange minute")] = 6.0,
    seed: Annotated[int, typer.Option(help="seed of the random activity")] = 1,
    busy_rate: Annotated[float, typer.Option(help="share of calls answered ErrorServerBusy")] = 0.0,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Exchange time at start (default: now, the time a worker's sync window "
            "follows; with --scale above 1 Exchange time runs ahead of it)",
            formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        ),
    ] = None,
) -> None:
    """Run the Exchange simulator (a test double) with random booking activity."""
    epoch = datetime.now(UTC) if start is None else start.replace(tzinfo=start.tzinfo or UTC)
    run_simulator(
        console,
        rooms=rooms,
        host=host,
        port=port,
        scale=scale,
        activity=activity,
        seed=seed,
        busy_rate=busy_rate,
        epoch=epoch,
    )


@commands.command()
def demo(
    rooms: Annotated[int, typer.Option(help="simulated room mailboxes")] = 20,
    protocol: Annotated[
        Protocol, typer.Option(help="push over EWS or Graph change notifications")
    ] = Protocol.EWS,
    duration: Annotated[float, typer.Option(help="seconds of live activity")] = 60.0,
    scale: Annotated[float, typer.Option(help="Exchange seconds per real second")] = 60.0,
    activity: Annotated[float, typer.Option(help="bookings per Exchange minute")] = 20.0,
    seed: Annotated[int, typer.Option(help="seed of the random activity")] = 1,
) -> None:
    """Simulator, receiver, subscription manager and worker on embedded SQLite, then a check."""
    # on demand: the demo builds the EWS client (exchangelib, seconds of start-up), and every
    # `pushsync` command, `serve` too, loads this module as a plugin
    from pushsync.simulator.demo import DemoOptions, main

    options = DemoOptions(
        rooms=rooms,
        duration_s=duration,
        scale=scale,
        activity_per_minute=activity,
        seed=seed,
        protocol=protocol.value,
    )
    options.directory.mkdir(parents=True, exist_ok=True)
    log_file = options.directory / "pushsync.log"
    configure_logging("INFO", log_file)
    console.print(
        f"pushsync demo over {protocol.value}: {rooms} rooms, {duration:.0f} s; logs in {log_file}"
    )
    summary = main(options, console)
    if summary.interrupted:
        raise typer.Exit(130)  # the shell's code for "ended by SIGINT", after the summary
    if not summary.consistent:
        raise typer.Exit(1)


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
