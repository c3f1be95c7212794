"""Commands that talk to Exchange: the worker, subscriptions and resync."""

from __future__ import annotations

import asyncio
import signal
from datetime import timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from pushsync.admin.room_status import STATES, Overview, RoomStatus, overview
from pushsync.cli.common import (
    ConfigOption,
    DatabaseOption,
    console,
    print_error,
    run_or_exit,
    settings_or_exit,
    with_connector,
)
from pushsync.errors import PushsyncError
from pushsync.model.clock import utcnow
from pushsync.settings import Settings
from pushsync.store import open_store
from pushsync.store.connector import Connector
from pushsync.store.operator_lookup import (
    SubscriptionRef,
    find_room,
    find_subscription,
    retire_subscription,
    room_failure,
    subscription_prefixes,
)

commands = typer.Typer()


class Protocol(StrEnum):
    EWS = "ews"
    GRAPH = "graph"


subscription_commands = typer.Typer()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return stop


@commands.command()
def worker(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Run the subscription managers (EWS, Graph) and the sync worker until interrupted."""
    settings = settings_or_exit(config, database_url=database_url)

    async def run() -> None:
        # imported in each command, not at the top: the EWS and Graph clients import
        # exchangelib, seconds of start-up, and `serve` loads this module too (a receiver
        # restarted late makes Exchange drop the subscriptions just created for it)
        from pushsync.processes.sync import build_clients, protocols_moved_to, run_sync

        async with open_store(settings) as connector:
            moved_to = await protocols_moved_to(settings, connector)
            clients = build_clients(settings, moved_to=moved_to)
            try:
                await run_sync(settings, connector, clients, _stop_on_signals())
            finally:
                await clients.aclose()

    run_or_exit(run())


@commands.command()
def resync(
    room: Annotated[str | None, typer.Argument(help="the room's SMTP address")] = None,
    all_rooms: Annotated[bool, typer.Option("--all", help="every configured room")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Read a room's calendar afresh and reconcile its reservations."""
    if (room is None) == (not all_rooms):
        raise typer.BadParameter("name one ROOM or give --all")
    settings = settings_or_exit(config, database_url=database_url)

    async def run() -> tuple[int, dict[str, str]]:
        from pushsync.processes.sync import build_clients, build_worker, room_plan
        from pushsync.store.room_migrations import RoomMigrations

        failed: dict[str, str] = {}
        done = 0
        async with open_store(settings) as connector:
            moved = await RoomMigrations(connector).overridden()  # `rooms migrate` outranks
            clients = build_clients(settings, moved_to=set(moved.values()))
            try:
                plan = await room_plan(
                    settings, clients.ews, graph=clients.graph, connector=connector
                )
                rooms = [await find_room(connector, room, plan.all)] if room else plan.all
                sync = build_worker(settings, connector, clients.ews, graph=clients.graph)
                with Progress(console=console) as progress:
                    task = progress.add_task("resync", total=len(rooms))
                    for mailbox in rooms:  # one at a time: a resync is the heaviest load
                        protocol = moved.get(mailbox) or plan.protocol_of(mailbox)
                        if await sync.resync(mailbox, protocol, full=True):
                            done += 1
                        else:
                            failed[mailbox] = await room_failure(connector, mailbox, utcnow())
                        progress.advance(task)
            finally:
                await clients.aclose()
        return done, failed

    done, failed = run_or_exit(run())
    console.print(f"resynced {done} room(s)" + (f", failed {len(failed)}" if failed else ""))
    for mailbox, why in sorted(failed.items()):
        console.print(f"[red]{mailbox}[/red]: {why}", highlight=False)
    if failed:
        raise typer.Exit(1)


@subscription_commands.command("sync")
def subscriptions_sync(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Subscribe every configured room that has no live subscription."""
    settings = settings_or_exit(config, database_url=database_url)
    outcome = run_or_exit(_subscribe_all(settings))
    console.print(f"subscribed {len(outcome[0])}, failed {len(outcome[1])}")
    for mailbox, error in sorted(outcome[1].items()):
        console.print(f"[red]{mailbox}[/red]: {error}")
    if outcome[1]:
        raise typer.Exit(1)


async def _subscribe_all(settings: Settings) -> tuple[list[str], dict[str, str]]:
    from pushsync.processes.sync import build_clients, build_graph_manager, build_manager, room_plan

    clients = build_clients(settings)
    subscribed: list[str] = []
    failed: dict[str, str] = {}
    try:
        async with open_store(settings) as connector:
            plan = await room_plan(settings, clients.ews, graph=clients.graph, connector=connector)
            with Progress(console=console) as progress:
                task = progress.add_task("subscribing", total=len(plan.all))
                if clients.ews is not None and plan.ews:
                    manager = build_manager(settings, connector, clients.ews)
                    outcome = await manager.subscribe_rooms(
                        plan.ews, lambda _room, _ok: progress.advance(task)
                    )
                    subscribed += outcome.subscribed
                    failed |= outcome.failed
                if clients.graph is not None and plan.graph:
                    graph_manager = build_graph_manager(settings, connector, clients.graph)
                    outcome = await graph_manager.subscribe_rooms(plan.graph)
                    progress.advance(task, len(plan.graph))
                    subscribed += outcome.subscribed
                    failed |= outcome.failed
    finally:
        await clients.aclose()
    return subscribed, failed


@subscription_commands.command("retire")
def subscriptions_retire(
    subscription_id: Annotated[
        str, typer.Argument(help="the id, or a prefix of it that names one subscription")
    ],
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Mark a subscription retired: EWS is answered Unsubscribe at its next notification, a
    Graph one is deleted at Graph (now if Graph can be reached, else by the worker's manager)."""
    settings = settings_or_exit(config, database_url=database_url)

    async def retire(connector: Connector) -> SubscriptionRef:
        ref = await find_subscription(connector, subscription_id)
        if ref.state != "retired":
            await retire_subscription(connector, ref, utcnow())
        return ref

    ref = with_connector(settings, retire, existing=True)
    room = f" ({ref.mailbox})" if ref.mailbox else ""
    room = " (known only from its notifications)" if ref.state is None else room
    already = "was already retired" if ref.state == "retired" else "retired"
    console.print(f"{ref.subscription_id}{room} {already}", highlight=False)
    if ref.protocol == Protocol.GRAPH:
        console.print(_delete_at_graph(settings, ref.subscription_id))


def _delete_at_graph(settings: Settings, subscription_id: str) -> str:
    async def delete() -> None:
        from pushsync.processes.sync import build_graph_client

        client = build_graph_client(settings)
        try:
            await client.delete_subscription(subscription_id)  # 404: gone already
        finally:
            await client.aclose()

    try:
        asyncio.run(delete())
    except PushsyncError as exc:
        return (
            f"[yellow]not deleted at Graph[/yellow] ({exc}); "
            "the worker's Graph manager deletes it at its next round"
        )
    return "deleted at Graph"


# What `subscriptions list` shows unless told otherwise: a fleet this size or smaller in full,
# a larger one its worst rooms (the totals line counts them all). Drawing the table costs about
# 1.5 ms a room (bench/admin), so a page a terminal can show.
DEFAULT_LIST_LIMIT = 200


@subscription_commands.command("list")
def subscriptions_list(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    problems: Annotated[bool, typer.Option("--problems", help="only rooms out of sync")] = False,
    state: Annotated[
        str | None,
        typer.Option(
            help="only rooms of this status: a kind of problem (as `pushsync status` names "
            "them), problem, in sync or moving"
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(help="at most this many rooms, the worst first (0: every room)")
    ] = DEFAULT_LIST_LIMIT,
    full_ids: Annotated[bool, typer.Option("--full-ids", help="whole subscription ids")] = False,
) -> None:
    """Each room's subscription and sync status, the worst first: which rooms are out of sync,
    and why. The last line counts every room."""
    settings = settings_or_exit(config, database_url=database_url)
    if state is not None and state not in STATES:
        print_error(f"unknown --state {state!r}: one of {', '.join(STATES)}")
        raise typer.Exit(2)
    dead_after = timedelta(seconds=settings.process_dead_after_seconds)
    wanted = state or ("problem" if problems else None)

    async def fetch(connector: Connector) -> tuple[Overview, dict[str, str]]:
        found = await overview(
            connector, utcnow(), dead_after, settings.protocols_needed(),
            state=wanted, limit=limit or None,
        )  # fmt: skip
        ids = [s.subscription_id for s in found.rooms if s.subscription_id]
        return found, await subscription_prefixes(connector, ids)

    found, prefixes = with_connector(settings, fetch, existing=True)
    _print_rooms(found.rooms, prefixes, full_ids)
    if found.next is not None and found.totals.rooms > len(found.rooms):
        console.print(f"(the first {len(found.rooms)}, the worst first; --limit 0 lists them all)")
    console.print(f"{found.totals.in_sync} of {found.totals.rooms} rooms in sync")
    for line in found.fleet.problems():  # why rooms say "not syncing"; `pushsync status` too
        console.print(f"[red]down:[/red] {line}", highlight=False)


def _print_rooms(statuses: list[RoomStatus], prefixes: dict[str, str], full_ids: bool) -> None:
    heading = "subscription" if full_ids else "subscription (id prefix)"
    columns = ["room", "proto", heading, "state", "last heard", "waiting", "problem"]
    moving = any(status.migration for status in statuses)  # the column only when it says something
    table = Table(*columns, *(["migration"] if moving else []))
    for status in statuses:
        state = "polling" if status.polling_reason else status.subscription_state or "none"
        table.add_row(
            status.mailbox,
            status.protocol,
            _subscription_id(status.subscription_id, prefixes, full_ids),
            state,
            _time(status.last_heard),
            str(status.pending) if status.pending else "",
            escape(status.problem) if status.problem else "[green]in sync[/green]",
            *([escape(status.migration or "")] if moving else []),
        )
    console.print(table)


def _subscription_id(value: str | None, prefixes: dict[str, str], full: bool) -> str:
    """A prefix that `subscriptions retire` accepts as it is (no ellipsis to paste by mistake)."""
    if not value:
        return ""
    return value if full else prefixes.get(value, value)


def _time(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else ""
