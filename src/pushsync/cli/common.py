"""What every command of the CLI shares: the console, common options, settings and the store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from pushsync.errors import ConfigError, PushsyncError
from pushsync.logs import configure_from
from pushsync.settings import DEFAULT_DATABASE_URL, Settings, load_settings
from pushsync.store import open_store
from pushsync.store.connector import Connector
from pushsync.store.sqlite import require_folder, sqlite_path

T = TypeVar("T")

console = Console()
# errors: one line each however narrow the terminal, on stderr, markup in them left as typed
errors = Console(stderr=True, soft_wrap=True, highlight=False)


def print_error(problem: object) -> None:
    errors.print(f"[red]error:[/red] {escape(str(problem))}")


ConfigOption = Annotated[Path | None, typer.Option("--config", help="TOML settings file")]
DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help="sqlite:///… or postgresql://…")
]


def settings_or_exit(config: Path | None, **overrides: Any) -> Settings:
    try:
        settings = load_settings(config, **overrides)
    except PushsyncError as exc:
        print_error(exc)
        raise typer.Exit(2) from None
    configure_from(settings)
    return settings


def run_or_exit(work: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; our own errors end the command with exit code 1 and their message."""
    try:
        return asyncio.run(work)
    except PushsyncError as exc:
        print_error(exc)
        raise typer.Exit(1) from None


def with_connector(
    settings: Settings, work: Callable[[Connector], Awaitable[T]], *, existing: bool = False
) -> T:
    """`work` on an open connector. `existing`: a command that only reads or changes rows
    refuses to create a SQLite database that is not there (a mistyped path, the wrong folder)."""

    async def run() -> T:
        if existing:
            require_database(settings.database_url)
        async with open_store(settings, migrate=False) as connector:  # `db upgrade` migrates
            return await work(connector)

    return run_or_exit(run())


def require_database(url: str) -> None:
    if not url.startswith("sqlite:"):
        return  # PostgreSQL names a missing database itself
    path = sqlite_path(url)
    if path == ":memory:":
        return
    if url != DEFAULT_DATABASE_URL:  # the default's folder is made with the database
        require_folder(path)
    if not Path(path).is_file():
        raise ConfigError(
            f"no SQLite database at {path} (give --database-url; `pushsync db upgrade` creates one)"
        )
