"""The `pushsync` command line. Each command builds what it needs from the settings, runs, exits."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Annotated, Any

import typer
from rich.table import Table

import pushsync.cli.sync as cli_sync
from pushsync.cli.common import (
    ConfigOption,
    DatabaseOption,
    console,
    settings_or_exit,
    with_connector,
)
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

    # as variables, not arguments: the receiver's worker processes read the same sources
    export_flags(database_url=database_url, host=host, port=port, workers=workers)
    settings = settings_or_exit(config)
    if settings.auto_migrate:  # once, here, before worker processes start
        with_connector(settings, upgrade)
    try:
        run_server(settings)
    except PushsyncError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Apply pending schema migrations."""
    settings = settings_or_exit(config, database_url=database_url)

    async def run(connector: Connector) -> tuple[list[int], int]:
        return await upgrade(connector), latest_version(connector.dialect)

    applied, latest = with_connector(settings, run)
    console.print(f"applied {applied or 'nothing'}; schema at version {latest}")


@db_app.command("status")
def db_status(config: ConfigOption = None, database_url: DatabaseOption = None) -> None:
    """Show which schema versions are applied."""
    settings = settings_or_exit(config, database_url=database_url)
    versions = with_connector(settings, applied_versions)
    console.print(f"applied versions: {versions or 'none'}")


@notifications_app.command("list")
def notifications_list(
    config: ConfigOption = None,
    database_url: DatabaseOption = None,
    limit: int = 50,
    state: Annotated[
        str | None,
        typer.Option(help="only rows in this state, newest first: pending, claimed, done, failed"),
    ] = None,
) -> None:
    """Show rows of the notification table: the oldest, or the newest in one state."""
    settings = settings_or_exit(config, database_url=database_url)
    if state not in (None, "pending", "claimed", "done", "failed"):
        raise typer.BadParameter("state is one of pending, claimed, done, failed")

    async def fetch(connector: Connector) -> list[dict[str, Any]]:
        return await NotificationQueue(connector).listed(limit, state)

    rows = with_connector(settings, fetch)
    table = Table(
        "id", "received", "proto", "subscription", "event", "item", "state", "tries", "last error"
    )
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["received_at"])[:19],
            row["protocol"],
            _short(row["subscription_id"]),
            row["event_type"],
            _short(row["item_id"]),
            row["state"],
            str(row["attempts"]),
            row["last_error"] or "",
        )
    console.print(table)


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
        console.print(f"[red]error:[/red] {exc}; the last good list stays in use")
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
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    for key, value in ranges.describe().items():
        console.print(f"{key}: {value}")


def _short(value: str | None, width: int = 16) -> str:
    if not value:
        return ""
    return value if len(value) <= width else value[: width - 1] + "…"


def main() -> None:
    add_plugin_commands(app)
    app()


def add_plugin_commands(target: typer.Typer) -> None:
    """Commands another package adds to `pushsync` (the simulator's `simulate` and `demo`),
    found by entry point: the production command line imports no test double."""
    for entry in entry_points(group=PLUGIN_GROUP):
        target.add_typer(entry.load())
