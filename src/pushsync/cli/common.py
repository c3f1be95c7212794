"""What every command of the CLI shares: the console, common options, settings and the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from pushsync.errors import PushsyncError
from pushsync.logs import configure_logging
from pushsync.settings import Settings, load_settings
from pushsync.store import open_store
from pushsync.store.connector import Connector

T = TypeVar("T")

console = Console()

ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="sqlite:///… or postgresql://…")
]


def settings_or_exit(config: Path | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config, **overrides)
    except PushsyncError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    configure_logging(settings.log_level)
    return settings


def run_or_exit(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; our own errors end the command with exit code 1 and their message."""
    try:
        return asyncio.run(work)
    except PushsyncError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


def with_connector(settings: Settings, work: Callable[[Connector], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_store(settings, migrate=False) as connector:  # `db upgrade` migrates
            return await work(connector)

    return run_or_exit(run())
