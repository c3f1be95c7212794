"""A real `pushsync serve` process on a free loopback port, with its own SQLite database."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

SOAP_ACTION = '"http://schemas.microsoft.com/exchange/services/2006/messages/SendNotification"'
EWS_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": SOAP_ACTION}
EWS_PATH = "/Webservices/SyncNotification.svc"
CALLBACK_TOKEN = "acceptance-test-token"
# The test server accepts loopback (where the tests post from) and knows the callback token; it
# also accepts callbacks without a token (the documented legacy mode) so tests not about
# authentication can post to the bare path. Tests about hardening override these.
SERVER_DEFAULTS = {
    "PUSHSYNC_ALLOWED_NETWORKS": "127.0.0.0/8,::1",
    "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
    "PUSHSYNC_ALLOW_CALLBACKS_WITHOUT_TOKEN": "true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pushsync_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pushsync", *args]


def run_pushsync(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> str:
    """Run the real CLI to the end; the test fails with its output unless it exits 0.
    Returns what it printed (stdout and stderr)."""
    result = subprocess.run(
        pushsync_command(*args),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


@dataclass
class ServerProcess:
    database: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    def start(self) -> None:
        self.log = self.database.with_suffix(f".{self.port}.log")
        env = {
            **os.environ,
            **SERVER_DEFAULTS,
            "PUSHSYNC_ADMIN_PORT": str(self.admin_port),
            "PUSHSYNC_HOST": "127.0.0.1",
            **self.env,
            "PUSHSYNC_DATABASE_URL": self.database_url,
            "PUSHSYNC_PORT": str(self.port),
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                pushsync_command("serve"), env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60  # a loaded 2-core box needs ~20 s to import and bind
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                httpx.get(self.url + "/", timeout=0.5)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not come up: {self.log.read_text()}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def rows(self, sql: str = "SELECT * FROM sync_notification ORDER BY id") -> list[sqlite3.Row]:
        connection = sqlite3.connect(self.database)
        connection.row_factory = sqlite3.Row
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def logs(self) -> str:
        return self.log.read_text() if self.log else ""

    def emptied(self) -> ServerProcess:
        """The same receiver with its notification and subscription tables empty, for tests
        that share one module-wide (a start costs seconds on a loaded machine). The receiver
        keeps nothing between requests but these rows."""
        connection = sqlite3.connect(self.database)
        try:
            with connection:
                connection.execute("DELETE FROM sync_notification")
                connection.execute("DELETE FROM subscription")
        finally:
            connection.close()
        return self


@contextlib.contextmanager
def shared_server(folder: Path, **env: str) -> Iterator[ServerProcess]:
    """A receiver for a whole module: `ServerProcess` in `folder`, stopped at the end."""
    server = ServerProcess(folder / "pushsync.db", {k.upper(): v for k, v in env.items()})
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[callable]:
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(tmp_path / "pushsync.db", {k.upper(): v for k, v in env.items()})
        started.append(server)  # stopped at teardown even if it fails to come up
        server.start()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory) -> ServerProcess:
    return server_factory()
