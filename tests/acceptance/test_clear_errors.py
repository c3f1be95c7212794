"""A command that cannot start says why in one line, exits non-zero and leaves nothing behind:
a SQLite path in a missing folder, a PostgreSQL server that refuses (its own words), a TOML
syntax error (file, line, column), a bad log level, the public port in use (also with two
receiver processes, and before the admin listener has started)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import free_port, pushsync_command
from tests.integration.conftest import DEFAULT_POSTGRES_URL, POSTGRES_URL_ENV

POSTGRES_URL = os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL)


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    merged = {**os.environ, "COLUMNS": "60", **(env or {})}  # narrow: errors must not wrap
    result = subprocess.run(
        pushsync_command(*args),
        cwd=cwd,
        env={name: value for name, value in merged.items() if value != ""},  # "": unset
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stderr.splitlines()


def error_line(lines: list[str]) -> str:
    [line] = [line for line in lines if line.startswith("error:")]
    assert not any("Traceback" in line for line in lines), lines
    return line


@pytest.mark.parametrize("command", [["db", "status"], ["serve"], ["worker"], ["db", "upgrade"]])
def test_sqlite_in_a_missing_folder_is_named_and_nothing_is_created(
    tmp_path: Path, command: list[str]
) -> None:
    env = {"PUSHSYNC_PORT": str(free_port()), "PUSHSYNC_ADMIN_PORT": str(free_port())}
    code, lines = run(
        *command, "--database-url", "sqlite:///nonexistent-dir/x.db", cwd=tmp_path, env=env
    )

    assert code != 0
    assert "nonexistent-dir/ does not exist" in error_line(lines)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["db", "status"], ["notifications", "list"]])
def test_reading_commands_create_no_database(tmp_path: Path, command: list[str]) -> None:
    code, lines = run(*command, "--database-url", "sqlite:///here.db", cwd=tmp_path)

    assert code != 0
    assert "no SQLite database at here.db" in error_line(lines)
    assert list(tmp_path.iterdir()) == []


def test_the_default_database_gets_its_folder_and_only_the_default(tmp_path: Path) -> None:
    env = {"PUSHSYNC_DATABASE_URL": ""}  # unset below: the default URL, sqlite:///var/pushsync.db
    code, lines = run("db", "status", cwd=tmp_path, env=env)
    assert code != 0
    assert "no SQLite database at var/pushsync.db" in error_line(lines)
    assert list(tmp_path.iterdir()) == []  # reading creates nothing, not even var/

    code, lines = run("db", "upgrade", cwd=tmp_path, env=env)
    assert code == 0, lines
    assert (tmp_path / "var" / "pushsync.db").is_file()

    code, lines = run("db", "upgrade", "--database-url", "sqlite:///elsewhere/x.db", cwd=tmp_path)
    assert code != 0
    assert "elsewhere/ does not exist" in error_line(lines)
    assert not (tmp_path / "elsewhere").exists()


def _postgres(db: str) -> str:
    return f"{POSTGRES_URL.rsplit('/', 1)[0]}/{db}"


@pytest.mark.parametrize(
    ("url", "cause"),
    [
        (_postgres(db="pushsync_no_such_db"), 'database "pushsync_no_such_db" does not exist'),
        ("postgresql://pushsync_no_such_role@127.0.0.1:5432/test", 'role "pushsync_no_such_role"'),
        (f"postgresql://postgres@127.0.0.1:{free_port()}/test", "Connection refused"),
    ],
    ids=["no-database", "no-role", "refused"],  # the same in every xdist worker
)
def test_postgresql_failures_carry_the_servers_own_message(
    tmp_path: Path, url: str, cause: str
) -> None:
    code, lines = run("db", "status", "--database-url", url, cwd=tmp_path)

    assert code != 0
    line = error_line(lines)
    assert cause in line and "couldn't get a connection" not in line


def test_readyz_names_the_database_cause(tmp_path: Path) -> None:
    """The admin listener's readiness names why the database fails, not an exception class."""
    import asyncio

    from pushsync.admin.app import AdminApp
    from pushsync.settings import Settings

    settings = Settings(database_url=_postgres(db="pushsync_no_such_db"))
    admin = AdminApp(settings, allowed=None, multiproc_dir=None)  # the database part alone
    [problem] = asyncio.run(admin._database_problems())
    assert 'database "pushsync_no_such_db" does not exist' in problem
    assert "StorageError" not in problem


def test_toml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "pushsync.toml"
    config.write_text('port = 8080\nrooms = ["a@example.com"\nhost = "x"\n')

    code, lines = run("db", "status", "--config", str(config), cwd=tmp_path)

    assert code == 2
    line = error_line(lines)
    assert f"config file {config}, line 3, column 1" in line, line
    assert len(lines) == 1


def test_a_bad_log_level_is_one_line(tmp_path: Path) -> None:
    code, lines = run("db", "status", cwd=tmp_path, env={"PUSHSYNC_LOG_LEVEL": "LOUD"})

    assert code == 2
    assert "'LOUD' is not a log level" in error_line(lines) and len(lines) == 1


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_public_port_in_use_stops_serve_before_anything_starts(
    tmp_path: Path, taken_port: int, workers: str
) -> None:
    admin_port = free_port()
    env = {
        "PUSHSYNC_HOST": "127.0.0.1",
        "PUSHSYNC_PORT": str(taken_port),
        "PUSHSYNC_ADMIN_PORT": str(admin_port),
        "PUSHSYNC_WORKERS": workers,
        "PUSHSYNC_DATABASE_URL": "sqlite:///pushsync.db",
        "TMPDIR": str(tmp_path),
    }

    code, lines = run("serve", cwd=tmp_path, env=env)

    assert code != 0
    assert f"127.0.0.1:{taken_port} in use" in error_line(lines)
    assert not any("admin" in line.lower() and "start" in line.lower() for line in lines)
    assert list(tmp_path.iterdir()) == []  # no database, no metrics folder
