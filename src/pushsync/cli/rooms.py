"""`pushsync rooms migrate`: move rooms between EWS push and Graph, room by room.

The command only records the moves (`store/room_migrations.py`); the running worker carries
them out (`worker/migration.py`): a subscription over the new protocol first, a full read over
it next, and only then the old subscription retired. So the command says what it recorded, not
that anything moved, and `pushsync subscriptions list` shows each move's step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import typer

from pushsync.cli.common import (
    ConfigOption,
    DatabaseOption,
    console,
    print_error,
    settings_or_exit,
    with_connector,
)
from pushsync.cli.sync import Protocol
from pushsync.model.clock import utcnow
from pushsync.settings import Settings
from pushsync.store.connector import Connector
from pushsync.store.operator_lookup import UnknownName
from pushsync.store.room_migrations import RoomMigrations
from pushsync.store.subscriptions import Subscriptions

rooms_app = typer.Typer(help="Rooms and the protocol each is synced over.", no_args_is_help=True)


@dataclass
class Requested:
    moved: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)  # on the target, nothing under way


@rooms_app.command("migrate")
def migrate(
    to: Annotated[Protocol, typer.Option("--to", help="the protocol to move them to")],
    rooms: Annotated[
        list[str] | None,
        typer.Argument(metavar="ROOM", help="rooms' SMTP addresses", show_default=False),
    ] = None,
    all_rooms: Annotated[bool, typer.Option("--all", help="every room pushsync knows")] = False,
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
) -> None:
    """Move rooms to Graph (or back to EWS) without losing a change: the worker subscribes
    them over the new protocol, resyncs them over it, and only then retires the old one."""
    if bool(rooms) == all_rooms:
        raise typer.BadParameter("name one or more ROOMs or give --all")
    settings = settings_or_exit(config, database_url=database_url)
    missing = _missing_settings(settings, to.value)
    if missing:
        print_error(f"rooms cannot be moved to {to.value}: {missing}")
        raise typer.Exit(2)

    async def record(connector: Connector) -> Requested:
        return await request_moves(connector, rooms or [], to.value, every=all_rooms)

    done = with_connector(settings, record, existing=True)
    if done.already:
        console.print(f"{len(done.already)} room(s) already on {to.value}, left as they are")
    if not done.moved:
        console.print("nothing to migrate")
        return
    console.print(
        f"migration of {len(done.moved)} room(s) to {to.value} requested; "
        "follow with `pushsync subscriptions list`",
        highlight=False,
    )


async def request_moves(
    connector: Connector, given: list[str], target: str, *, every: bool
) -> Requested:
    """Record a move to `target` for each named room (or every known room), all or none: a
    name pushsync does not know fails the command before anything is written."""
    known = {row["mailbox"].lower(): row for row in await Subscriptions(connector).rooms()}
    unknown = [name for name in given if name.strip().lower() not in known]
    if unknown:
        raise UnknownName(
            f"unknown room(s): {', '.join(unknown)} (`pushsync subscriptions list` shows the "
            "rooms pushsync knows; a room is known once the worker has seen it)"
        )
    migrations = RoomMigrations(connector)
    moving = {move["mailbox"] for move in await migrations.open()}
    chosen = list(known.values()) if every else [known[n.strip().lower()] for n in given]
    done = Requested()
    for room in {row["mailbox"]: row for row in chosen}.values():
        on_target = room["protocol"] == target and room["mailbox"] not in moving
        (done.already if on_target else done.moved).append(room["mailbox"])
    by_mailbox = {row["mailbox"]: row for row in chosen}
    moves = [(m, by_mailbox[m]["protocol"], target) for m in done.moved]
    await migrations.request(moves, utcnow())
    return done


def _missing_settings(settings: Settings, target: str) -> str | None:
    """What the worker would lack to run `target` (it refuses to start without it)."""
    if not settings.public_url:
        return "PUSHSYNC_PUBLIC_URL is not set (where Exchange and Graph reach pushsync)"
    if target == "ews":
        return None if settings.ews_url else "PUSHSYNC_EWS_URL is not set"
    if settings.graph_client_state is None:
        return "PUSHSYNC_GRAPH_CLIENT_STATE is not set"
    credentials = settings.tenant_id and settings.client_id and settings.client_secret
    if settings.graph_token is None and not credentials:
        return "no Graph credentials (PUSHSYNC_TENANT_ID, _CLIENT_ID and _CLIENT_SECRET)"
    return None
