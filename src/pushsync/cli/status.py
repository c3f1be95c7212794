"""`pushsync status`: in the terminal, what the status page says. Which process is down and
since when, which room is out of sync, why and what to do, and the queue; the exit code says
whether anything is wrong (0 no, 3 yes; 1 the database could not be read, 2 bad settings)."""

from __future__ import annotations

from datetime import datetime, timedelta

import typer
from rich.table import Table

from pushsync.admin.process_status import Fleet
from pushsync.admin.room_status import Overview, RoomStatus, overview
from pushsync.cli.common import (
    ConfigOption,
    DatabaseOption,
    console,
    settings_or_exit,
    with_connector,
)
from pushsync.model.clock import utcnow
from pushsync.store.connector import Connector

commands = typer.Typer()

SOMETHING_WRONG = 3

# what an operator does about each kind of problem (docs/operations.md has the long form)
ADVICE = {
    "no worker": "start `pushsync worker` (systemctl start pushsync-worker)",
    "no subscription": "fix the cause shown (mailbox, permissions); the manager retries",
    "subscription broken": "none: the manager replaces it at its next round",
    "silent": "check that Exchange reaches the public URL; the manager replaces it",
    "notifications failed": "`pushsync notifications list --state failed`; `pushsync resync ROOM`",
    "behind": "the worker lags: read its log; more workers, or wait out the throttling",
    "throttled": "none: Exchange's back-off ends at the time shown",
    "unreachable": "check the network to Exchange / the token authority from the worker",
    "error": "read the error; a failed resync is retried, or `pushsync resync ROOM`",
    "resync waiting": "none: the worker resyncs it soon",
}


@commands.command()
def status(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Processes alive or down (since when), rooms out of sync (why, what to do), the queue.
    Exit code 0: all well; 3: a process is down or missing, or a room is out of sync;
    1: the database could not be read; 2: bad settings."""
    settings = settings_or_exit(config, database_url=database_url)
    dead_after = timedelta(seconds=settings.process_dead_after_seconds)
    now = utcnow()

    async def read(connector: Connector) -> Overview:
        return await overview(connector, now, dead_after, settings.protocols_needed())

    found = with_connector(settings, read, existing=True)
    wrong = _print_processes(found.fleet, now) | _print_rooms(found.rooms)
    _print_queue(found.rooms, now)
    if wrong:
        raise typer.Exit(SOMETHING_WRONG)


def _print_processes(fleet: Fleet, now: datetime) -> bool:
    table = Table(
        "process", "protocol", "host", "pid", "state", "last heartbeat", title="processes"
    )
    for process in fleet.processes:
        if process.alive:
            state = f"[green]alive[/green] since {_time(process.started_at)}"
        elif process.stopped_at:
            state = f"[red]stopped[/red] at {_time(process.stopped_at)}"
        else:
            state = f"[red]down[/red] since {_time(process.down_since)} (no heartbeat)"
        ago = f"{_time(process.last_beat)} ({_age(now - process.last_beat)} ago)"
        table.add_row(
            process.kind, process.protocol or "", process.host, str(process.pid), state, ago
        )
    for kind, protocol in fleet.missing():
        table.add_row(kind, protocol or "", "", "", "[red]never ran[/red]", "")
    console.print(table)
    problems = fleet.problems()
    for line in problems:
        console.print(f"[red]down:[/red] {line}", highlight=False)
    return bool(problems)


def _print_rooms(rooms: list[RoomStatus]) -> bool:
    troubled = [s for s in rooms if s.problem]
    console.print(f"{len(rooms) - len(troubled)} of {len(rooms)} rooms in sync")
    if not troubled:
        return False
    table = Table("room", "proto", "problem", "what to do", title="rooms out of sync")
    for room in troubled:
        table.add_row(room.mailbox, room.protocol, room.problem, ADVICE.get(room.kind or "", ""))
    console.print(table)
    return True


def _print_queue(rooms: list[RoomStatus], now: datetime) -> None:
    waiting = sum(s.pending for s in rooms)
    failed = sum(s.failed for s in rooms)
    oldest = min((s.oldest_pending for s in rooms if s.oldest_pending), default=None)
    age = f", the oldest for {_age(now - oldest)}" if oldest else ""
    console.print(f"queue: {waiting} notification(s) waiting{age}; {failed} failed, not healed")


def _time(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S} UTC" if value else "?"


def _age(span: timedelta) -> str:
    seconds = max(int(span.total_seconds()), 0)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
