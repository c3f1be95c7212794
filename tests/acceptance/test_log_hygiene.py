"""No secret in a log line or in a process's environment beyond what the operator set: the
demo's log, and `pushsync serve` + `pushsync worker` at DEBUG against the simulator (EWS over
Basic auth, so every request carries an Authorization header; Graph with a client state and a
bearer token), and /proc/<pid>/environ of each of those processes."""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pushsync.logs import MASK
from pushsync.simulator import SimulatorThread
from pushsync.simulator.graph.api import GRAPH_TOKEN
from tests.acceptance.conftest import CALLBACK_TOKEN, ServerProcess, pushsync_command, run_pushsync
from tests.acceptance.simulated_exchange import meeting, running, wait_for

EWS_ROOM, GRAPH_ROOM = "room-001@contoso.example", "room-002@contoso.example"
CLIENT_STATE = "hygiene-client-state-0123456789"
# an Authorization header's value as requests, httpx or a headers dict would print it
AUTHORIZATION = re.compile(r"(?i)authorization['\"]?\s*[:=]\s*['\"]?(?:basic|bearer)\s+(\S+)")


def leaks(text: str, secrets: list[str]) -> list[str]:
    found = [secret for secret in secrets if secret in text]
    found += [value for value in AUTHORIZATION.findall(text) if not value.startswith(MASK)]
    return found


def test_the_demo_log_holds_no_token_and_no_request_lines(tmp_path: Path) -> None:
    run_pushsync("demo", "--rooms", "3", "--duration", "5", cwd=tmp_path, timeout=240)
    log = (tmp_path / "var/demo/pushsync.log").read_text()

    tokens = re.findall(r"token=([^&\s\"'<>]+)", log)
    assert all(token.startswith(MASK) for token in tokens), tokens
    assert "HTTP Request:" not in log  # httpx's line per request is off by default
    assert leaks(log, []) == []
    assert "level=info" in log


@pytest.fixture
def fleet(server_factory) -> Iterator[tuple[SimulatorThread, ServerProcess, dict[str, str]]]:
    server = server_factory(
        pushsync_graph_client_state=CLIENT_STATE,
        pushsync_log_level="DEBUG",
        pushsync_allow_callbacks_without_token="false",
    )
    with running(epoch=datetime.now(UTC), scale=1) as thread:
        sim = thread.sim
        env = {
            **os.environ,
            "PUSHSYNC_DATABASE_URL": server.database_url,
            "PUSHSYNC_PUBLIC_URL": server.url,
            "PUSHSYNC_ROOMS": EWS_ROOM,
            "PUSHSYNC_GRAPH_ROOMS": GRAPH_ROOM,
            "PUSHSYNC_GRAPH_URL": sim.graph_url,
            "PUSHSYNC_GRAPH_TOKEN": GRAPH_TOKEN,
            "PUSHSYNC_GRAPH_CLIENT_STATE": CLIENT_STATE,
            "PUSHSYNC_EWS_URL": sim.ews_url,
            "PUSHSYNC_EWS_AUTH": "basic",
            "PUSHSYNC_EWS_USERNAME": sim.config.username,
            "PUSHSYNC_EWS_PASSWORD": sim.config.password,
            "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
            "PUSHSYNC_SUBSCRIPTION_CHECK_SECONDS": "0.5",
            "PUSHSYNC_WORKER_DEBOUNCE_MS": "50",
            "PUSHSYNC_LOG_LEVEL": "DEBUG",
        }
        yield thread, server, env


def _secrets(thread: SimulatorThread) -> list[str]:
    config = thread.sim.config
    basic = base64.b64encode(f"{config.username}:{config.password}".encode()).decode()
    return [CALLBACK_TOKEN, CLIENT_STATE, GRAPH_TOKEN, config.password, basic]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(entry.decode().partition("=")[::2] for entry in raw if entry)


def _added_environ(pid: int, given: dict[str, str]) -> dict[str, str]:
    """What the process's environment holds beyond what it was started with."""
    return {k: v for k, v in _environ(pid).items() if given.get(k) != v}


def _children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_serve_and_worker_at_debug_log_no_secret(fleet) -> None:
    thread, server, env = fleet
    secrets = _secrets(thread)
    log = server.database.with_suffix(".worker.log")
    with log.open("wb") as out:
        worker = subprocess.Popen(
            pushsync_command("worker"), env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: len(server.rows("SELECT * FROM subscription WHERE state = 'active'")) == 2)
        start = thread.sim.clock.now() + timedelta(days=2)
        thread.call(thread.sim.exchange.book, meeting("HYGIENE-E", start), [EWS_ROOM])
        thread.call(thread.sim.exchange.book, meeting("HYGIENE-G", start), [GRAPH_ROOM])
        wait_for(lambda: len(server.rows("SELECT * FROM reservation")) == 2)
        environments = {
            "worker": _added_environ(worker.pid, env),
            "serve": _added_environ(server.process.pid, {**os.environ, **server_env(server)}),
        }
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    worker_log, server_log = log.read_text(), server.logs()

    assert "level=debug" in worker_log and "level=debug" in server_log
    assert "Subscribe" in worker_log  # the request bodies were logged, masked
    assert leaks(worker_log, secrets) == []
    assert leaks(server_log, secrets) == []
    assert {
        k: leaks(v, secrets) for k, v in environments["worker"].items() if leaks(v, secrets)
    } == {}


def server_env(server: ServerProcess) -> dict[str, str]:
    from tests.acceptance.conftest import SERVER_DEFAULTS

    return {
        **SERVER_DEFAULTS,
        "PUSHSYNC_ADMIN_PORT": str(server.admin_port),
        "PUSHSYNC_HOST": "127.0.0.1",
        **server.env,
        "PUSHSYNC_DATABASE_URL": server.database_url,
        "PUSHSYNC_PORT": str(server.port),
    }


def test_serve_adds_no_secret_to_its_environment(server_factory) -> None:
    server = server_factory(pushsync_graph_client_state=CLIENT_STATE, pushsync_workers="2")
    given = {**os.environ, **server_env(server)}
    wait_for(lambda: len(_children(server.process.pid)) >= 1)
    pids = [server.process.pid, *_children(server.process.pid)]
    secrets = [CALLBACK_TOKEN, CLIENT_STATE]

    added = {pid: _added_environ(pid, given) for pid in pids}

    assert {
        (pid, key) for pid, extra in added.items() for key, value in extra.items()
        if any(secret in value for secret in secrets)
    } == set()  # fmt: skip
