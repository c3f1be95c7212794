"""The servers under test: pushsync (SQLite or PostgreSQL), the empty-handler ceiling, the naive
baseline. Each starts on a free loopback port with its own fresh database and counts its rows."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[2]
TOKEN = "bench-ingest-callback-token"  # pushsync refuses callbacks without its URL secret
EWS_PATH = f"/Webservices/SyncNotification.svc?Default&token={TOKEN}"
GRAPH_PATH = "/graph/notifications"
CLIENT_STATE = "bench-ingest-graph-client-state"  # every item carries it (else 403)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Target:
    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), **self.env}
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"{self.name} exited at start; see {self.log}:\n{self.log.read_text()}")
            if _answers(self.url + "/"):
                return
            time.sleep(0.1)
        self.stop()
        sys.exit(f"{self.name} did not come up in 30 s; see {self.log}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def count_rows(self) -> int:
        return 0

    def requests_per_commit(self) -> float | None:
        """Mean group-commit size over the workers, from their "inbox stopped" log lines."""
        commits = requests = 0
        for line in self.log.read_text(errors="replace").splitlines():
            if "inbox stopped" in line:
                fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
                commits += int(fields.get("commits", 0))
                requests += int(fields.get("requests", 0))
        return requests / commits if commits else None


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=0.5).close()
    except urllib.error.HTTPError:
        return True  # any status means the server is up
    except OSError:
        return False
    return True


@dataclass
class SQLiteTarget(Target):
    database: Path = Path()

    def count_rows(self) -> int:
        with sqlite3.connect(self.database) as db:
            return int(db.execute("SELECT count(*) FROM sync_notification").fetchone()[0])


@dataclass
class PostgreSQLTarget(Target):
    database_url: str = ""

    def count_rows(self) -> int:
        import psycopg

        with psycopg.connect(self.database_url) as db:
            row = db.execute("SELECT count(*) FROM sync_notification").fetchone()
            return int(row[0]) if row else 0


def pushsync_sqlite(workdir: Path, workers: int) -> SQLiteTarget:
    database = workdir / "pushsync.db"
    return SQLiteTarget(
        name="pushsync (SQLite)",
        command=_pushsync_serve(workers),
        env=_pushsync_env(f"sqlite:///{database}"),
        log=workdir / "pushsync-sqlite.log",
        database=database,
    )


def pushsync_postgresql(workdir: Path, workers: int, database_url: str) -> PostgreSQLTarget:
    return PostgreSQLTarget(
        name="pushsync (PostgreSQL)",
        command=_pushsync_serve(workers),
        env=_pushsync_env(database_url),
        log=workdir / "pushsync-postgresql.log",
        database_url=database_url,
    )


def _pushsync_env(database_url: str) -> dict[str, str]:
    return {
        "PUSHSYNC_DATABASE_URL": database_url,
        "PUSHSYNC_CALLBACK_TOKEN": TOKEN,
        "PUSHSYNC_GRAPH_CLIENT_STATE": CLIENT_STATE,  # serves the Graph path too
        "PUSHSYNC_ALLOWED_NETWORKS": "127.0.0.0/8",  # wrk posts from loopback
        "PUSHSYNC_ADMIN_PORT": str(free_port()),  # never collide with another instance
    }


def _pushsync_serve(workers: int) -> list[str]:
    return [
        *[sys.executable, "-m", "pushsync", "serve"],
        *["--workers", str(workers), "--host", "127.0.0.1", "--port", "{port}"],
    ]


def ceiling(workdir: Path, workers: int) -> Target:
    """Same server stack and options as `pushsync serve` (pushsync/processes/receiver.py)."""
    return Target(
        name="empty handler (ceiling)",
        command=[
            *[sys.executable, "-m", "uvicorn", "bench.ingest.empty_app:app"],
            *["--host", "127.0.0.1", "--port", "{port}", "--workers", str(workers)],
            *["--loop", "uvloop", "--http", "httptools", "--lifespan", "on"],
            *["--no-access-log", "--no-server-header", "--no-date-header"],
            *["--limit-concurrency", "2000", "--log-level", "warning"],
        ],
        env={},
        log=workdir / "ceiling.log",
    )


def naive(workdir: Path, workers: int) -> SQLiteTarget:
    database = workdir / "naive.db"
    return SQLiteTarget(
        name="naive (Flask+exchangelib)",
        command=[
            *[sys.executable, "-m", "gunicorn", "bench.naive.app:app"],
            *["--workers", str(workers), "--bind", "127.0.0.1:{port}"],
            *["--log-level", "warning", "--backlog", "2048"],
        ],
        env={"NAIVE_DATABASE": str(database)},
        log=workdir / "naive.log",
        database=database,
    )


class FreshPostgreSQLDatabase:
    """A database of its own on the server, dropped afterwards, so nothing else is touched."""

    def __init__(self, server_url: str, name: str) -> None:
        self.server_url = server_url
        self.name = name
        self.url = urlsplit(server_url)._replace(path=f"/{name}").geturl()

    def __enter__(self) -> FreshPostgreSQLDatabase:
        self._admin(f'CREATE DATABASE "{self.name}"')
        return self

    def __exit__(self, *exc: object) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def _admin(self, statement: str) -> None:
        import psycopg

        with psycopg.connect(self.server_url, autocommit=True) as db:
            db.execute(statement)
