"""The `pushsync` command line. Each command builds what it needs from the settings, runs, exits."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated, Any

import typer
from rich.table import Table

import pushsync.cli.doctor as cli_doctor
import pushsync.cli.status as cli_status
import pushsync.cli.sync as cli_sync
from pushsync.cli.common import (
    ConfigOption,
    DatabaseOption,
    console,
    print_error,
    settings_or_exit,
    with_connector,
)
from pushsync.cli.help_format import hide_flag_placeholders
from pushsync.cli.rooms import rooms_app
from pushsync.errors import PushsyncError
from pushsync.settings import export_flags
from pushsync.store.connector import Connector
from pushsync.store.migrations import applied_versions, latest_version, upgrade
from pushsync.store.notification_queue import NotificationQueue

PLUGIN_GROUP = "pushsync.commands"

app = typer.Typer(
    help="Room bookings kept in sync with Exchange by push notifications.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="The database schema.", no_args_is_help=True)
subscriptions_app = typer.Typer(help="Push subscriptions.", no_args_is_help=True)
notifications_app = typer.Typer(help="The notification table.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(notifications_app, name="notifications")
ipranges_app = typer.Typer(help="Microsoft 365's published address ranges.", no_args_is_help=True)
app.add_typer(ipranges_app, name="ipranges")
app.add_typer(cli_sync.commands)
app.add_typer(cli_status.commands)
app.add_typer(cli_doctor.commands)
app.add_typer(rooms_app, name="rooms")


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"pushsync {version('pushsync')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="print it, exit"),
    ] = False,
) -> None:
    """Room bookings kept in sync with Exchange by push notifications."""


subscriptions_app.add_typer(cli_sync.subscription_commands)


@app.command()
def serve(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    host: Annotated[str | None, typer.Option(help="address of the public listener")] = None,
    port: Annotated[int | None, typer.Option(help="port of the public listener")] = None,
    workers: Annotated[int | None, typer.Option(help="receiver processes")] = None,
) -> None:
    """Run the public notification listener."""
    from pushsync.processes.receiver import serve as run_server
    from pushsync.web.ports import require_free

    # as variables, not arguments: the receiver's worker processes read the same sources
    export_flags(database_url=database_url, host=host, port=port, workers=workers)
    settings = settings_or_exit(config)
    try:  # before anything is created or started
        require_free(settings.host, settings.port, "public listener")
        require_free(settings.admin_host, settings.admin_port, "admin listener")
    except PushsyncError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    # once, here, before any listener or receiver process starts: a database that cannot be
    # opened stops the command with its cause and nothing started
    with_connector(settings, upgrade if settings.auto_migrate else applied_versions)
    try:
        run_server(settings)
    except PushsyncError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Apply pending schema migrations."""
    settings = settings_or_exit(config, database_url=database_url)

    async def run(connector: Connector) -> tuple[list[int], int]:
        return await upgrade(connector), latest_version(connector.dialect)

    applied, latest = with_connector(settings, run)
    console.print(f"applied {applied or 'nothing'}; schema at version {latest}", soft_wrap=True)


@db_app.command("status")
def db_status(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Show which schema versions are applied."""
    settings = settings_or_exit(config, database_url=database_url)
    versions = with_connector(settings, applied_versions, existing=True)
    console.print(f"applied versions: {versions or 'none'}")


@notifications_app.command("list")
def notifications_list(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    limit: Annotated[int, typer.Option(help="rows at most")] = 50,
    state: Annotated[
        str | None,
        typer.Option(help="only rows in this state: pending, claimed, done, failed"),
    ] = None,
    room: Annotated[str | None, typer.Option(help="only this room's rows")] = None,
    full_ids: Annotated[bool, typer.Option("--full-ids", help="whole ids, not cut")] = False,
) -> None:
    """Show rows of the notification table, newest first."""
    if state not in (None, "pending", "claimed", "done", "failed"):
        raise typer.BadParameter("state is one of pending, claimed, done, failed")
    settings = settings_or_exit(config, database_url=database_url)

    async def fetch(connector: Connector) -> list[dict[str, Any]]:
        return await NotificationQueue(connector).listed(limit, state, room)

    rows = with_connector(settings, fetch, existing=True)
    cut = (lambda value: value or "") if full_ids else _short
    table = Table(
        "id", "received", "room", "proto", "subscription", "event", "item", "state", "tries",
        "last error",
    )  # fmt: skip
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["received_at"])[:19],
            row["mailbox"] or "",
            row["protocol"],
            cut(row["subscription_id"]),
            row["event_type"],
            cut(row["item_id"]),
            row["state"],
            str(row["attempts"]),
            row["last_error"] or "",
        )
    console.print(table)
    if not rows:
        console.print("no notifications" + (f" for room {room}" if room else ""))


@ipranges_app.command("refresh")
def ipranges_refresh(config: ConfigOption = None) -> None:
    """Poll Microsoft's version endpoint (at most hourly); fetch and swap in a new list."""
    import httpx

    from pushsync.web.access.ipranges import Refresher

    settings = settings_or_exit(config)
    try:
        with httpx.Client(timeout=30, follow_redirects=True) as client:
            refresher = Refresher(
                client,
                settings.ipranges_dir,
                settings.ipranges_instance,
                settings.ipranges_service_url,
            )
            result = refresher.refresh()
    except PushsyncError as exc:
        print_error(f"{exc}; the last good list stays in use")
        raise typer.Exit(1) from None
    console.print(f"{settings.ipranges_instance} {result.version}: {result.outcome.value}")


@ipranges_app.command("show")
def ipranges_show(config: ConfigOption = None) -> None:
    """Show the address ranges list the listener uses (refreshed, or the packaged snapshot)."""
    from pushsync.web.access.ipranges import load_ranges

    settings = settings_or_exit(config)
    try:
        ranges = load_ranges(settings.ipranges_dir, settings.ipranges_instance)
    except PushsyncError as exc:
        print_error(exc)
        raise typer.Exit(1) from None
    for key, value in ranges.describe().items():
        console.print(f"{key}: {value}")


def _short(value: str | None, width: int = 16) -> str:
    """Ids of one mailbox share their first ~40 characters: keep the end, which differs."""
    if not value:
        return ""
    return value if len(value) <= width else "…" + value[-(width - 1) :]


def main() -> None:
    hide_flag_placeholders()
    add_plugin_commands(app)
    app()


def add_plugin_commands(target: typer.Typer) -> None:
    """Commands another package adds to `pushsync` (the simulator's `simulate` and `demo`),
    found by entry point: the production command line imports no test double."""
    for entry in entry_points(group=PLUGIN_GROUP):
        target.add_typer(entry.load())
