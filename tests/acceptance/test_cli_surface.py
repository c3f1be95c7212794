"""The CLI's surface: `--version`, help without a value placeholder after flags, the
`./scripts/pushsync` wrapper from a shell without the venv, and `pushsync simulate` whose clock
starts at the real time (a worker's sync window follows the real date)."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

from tests.acceptance.conftest import CALLBACK_TOKEN, free_port, pushsync_command, run_pushsync
from tests.acceptance.simulated_exchange import wait_for

REPO = Path(__file__).resolve().parents[2]


def test_version() -> None:
    assert run_pushsync("--version").strip() == f"pushsync {version('pushsync')}"


def test_flags_show_no_value_placeholder() -> None:
    output = run_pushsync("subscriptions", "list", "--help", env={**os.environ, "COLUMNS": "120"})
    [problems] = [line for line in output.splitlines() if "--problems" in line]
    assert "<bool>" not in output and "only rooms out of sync" in problems
    assert "<path>" in output  # options that take a value keep theirs


def test_the_wrapper_runs_the_cli_outside_the_venv(tmp_path: Path) -> None:
    env = {"HOME": os.environ["HOME"], "PATH": "/usr/bin:/bin"}  # no venv, maybe no uv
    result = subprocess.run(
        [str(REPO / "scripts/pushsync"), "db", "status", "--database-url", "sqlite:///x.db"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    # relative paths are the caller's: the missing database is named, in tmp_path, not created
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no SQLite database at x.db" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _clock_line(*args: str) -> datetime:
    process = subprocess.Popen(
        pushsync_command("simulate", "--rooms", "2", *args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("clock:"):
                stamp = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", line)
                assert stamp, line
                return datetime.fromisoformat(stamp[1]).replace(tzinfo=UTC)
        raise AssertionError("simulate printed no clock line")
    finally:
        process.terminate()
        process.wait(20)


def test_simulate_starts_at_the_real_time_unless_told() -> None:
    started = _clock_line()
    assert abs(started - datetime.now(UTC)) < timedelta(minutes=2)
    assert _clock_line("--start", "2026-03-02") - datetime(2026, 3, 2, tzinfo=UTC) < timedelta(
        minutes=2
    )


def test_serve_and_worker_against_pushsync_simulate_fill_the_reservation_table(
    server_factory,
) -> None:
    """The docs/operations.md walk-through: three processes, the simulator's clock at the real
    time, and the worker's window (which follows the real date) holds its bookings."""
    server = server_factory()
    port = free_port()
    simulator = subprocess.Popen(
        pushsync_command("simulate", "--rooms", "2", "--port", str(port), "--activity", "30"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "PUSHSYNC_DATABASE_URL": server.database_url,
        "PUSHSYNC_PUBLIC_URL": server.url,
        "PUSHSYNC_CALLBACK_TOKEN": CALLBACK_TOKEN,
        "PUSHSYNC_EWS_URL": f"http://127.0.0.1:{port}/EWS/Exchange.asmx",
        "PUSHSYNC_EWS_AUTH": "basic",
        "PUSHSYNC_EWS_USERNAME": "svc-pushsync@contoso.example",
        "PUSHSYNC_EWS_PASSWORD": "simulator",
        "PUSHSYNC_ROOMS": "room-001@contoso.example,room-002@contoso.example",
    }
    worker = subprocess.Popen(
        pushsync_command("worker"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: server.rows("SELECT * FROM reservation"), timeout=120)
        upcoming = server.rows("SELECT start_at FROM reservation")
    finally:
        for process in (worker, simulator):
            process.terminate()
            process.wait(30)
    now = datetime.now(UTC)
    assert any(now - timedelta(days=2) < _aware(row["start_at"]) for row in upcoming)


def _aware(value: str) -> datetime:
    stamp = datetime.fromisoformat(value)
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
