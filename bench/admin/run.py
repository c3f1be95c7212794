"""The operator's pages at fleet size: the status page, /rooms, /metrics, a room's page and
`pushsync subscriptions list`, timed over real HTTP and the real CLI against a real database.

    uv run python -m bench.admin [--rooms 50000] [--baseline-rooms 500]
                                 [--engine sqlite|postgresql] [--repeat 5]

The database is filled with plain SQL that matches the schema (`fill.py`: about one room in
twenty with a problem, ten reservations per room), then the real `pushsync serve` is started on
it, as the acceptance tests start it, and its admin listener asked. PostgreSQL: a throw-away
database on PUSHSYNC_BENCH_POSTGRES_URL's server (default 127.0.0.1:5432, user postgres),
dropped afterwards.

Each figure is the median of `--repeat` requests after one to warm up, printed against the goal
(<= 1 s at 50,000 rooms) and against the same request at `--baseline-rooms` in the same run:
the ratio shows how it grows with the fleet. /healthz (no database) is the floor of a request,
`pushsync --help` that of a command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from bench.admin.fill import Fleet, fill_postgresql, fill_sqlite
from pushsync.store import connect
from pushsync.store.migrations import upgrade

GOAL_S = 1.0
POSTGRES_ENV = "PUSHSYNC_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
SERVE_ENV = {
    "PUSHSYNC_HOST": "127.0.0.1",
    "PUSHSYNC_ALLOWED_NETWORKS": "127.0.0.0/8,::1",
    "PUSHSYNC_CALLBACK_TOKEN": "bench-callback-token-0123456789abcdef",
    # the filled heartbeats stay "alive" for the whole run
    "PUSHSYNC_PROCESS_DEAD_AFTER_SECONDS": "86400",
}
SILENT_ROOM = 0  # fill.py: room 0 has a problem ("silent")
FLOORS = ("/healthz", "pushsync --help")  # what any request / command costs: no goal


@dataclass
class Figure:
    name: str
    seconds: float  # wall time
    cpu: float  # CPU seconds of pushsync's process (the server's, or the command's)
    size: int  # bytes answered (or printed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.admin", description=__doc__)
    parser.add_argument("--rooms", type=int, default=50_000)
    parser.add_argument("--baseline-rooms", type=int, default=500)
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"engine {args.engine}; {os.cpu_count()} CPUs, shared with whatever else runs")
    baseline = measure(args.engine, args.baseline_rooms, args.repeat)
    fleet = measure(args.engine, args.rooms, args.repeat)
    report(baseline, fleet, args.baseline_rooms, args.rooms)


def measure(engine: str, rooms: int, repeat: int) -> dict[str, Figure]:
    with database(engine, rooms) as url:
        started = time.perf_counter()
        asyncio.run(_migrate(url))
        fleet = Fleet(rooms, datetime.now(UTC))
        if engine == "sqlite":
            fill_sqlite(url.removeprefix("sqlite:///"), fleet)
        else:
            fill_postgresql(url, fleet)
        print(f"{rooms:>7,} rooms: filled in {time.perf_counter() - started:.1f} s")
        with serving(url) as (admin, pid):
            figures = _requests(admin, fleet, repeat, pid)
        figures |= _commands(url, repeat)
    return figures


def _requests(admin: str, fleet: Fleet, repeat: int, pid: int) -> dict[str, Figure]:
    paths = {
        "/healthz": "/healthz",
        "status page /": "/",
        "/rooms (first page)": "/rooms",
        "/rooms?state=problem": "/rooms?state=problem&limit=1000",
        "/metrics": "/metrics",
        "room page": f"/rooms/{fleet.mailbox(SILENT_ROOM)}",
    }
    figures = {}
    with httpx.Client(base_url=admin, timeout=120) as client:
        for name, path in paths.items():

            def get(path: str = path) -> int:
                response = client.get(path)
                response.raise_for_status()
                return len(response.content)

            figures[name] = _timed(name, get, repeat, lambda: _process_cpu(pid))
    return figures


def _commands(url: str, repeat: int) -> dict[str, Figure]:
    env = {**os.environ, "PUSHSYNC_DATABASE_URL": url, "COLUMNS": "200"}
    commands = {
        "pushsync --help": ["--help"],
        "subscriptions list": ["subscriptions", "list"],
        "subscriptions list --problems": ["subscriptions", "list", "--problems"],
    }
    figures = {}
    for name, args in commands.items():

        def run(args: list[str] = args) -> int:
            done = subprocess.run(
                [sys.executable, "-m", "pushsync", *args],
                env=env,
                capture_output=True,
                check=True,
                timeout=600,
            )
            return len(done.stdout)

        figures[name] = _timed(name, run, max(repeat // 2, 1), _children_cpu)
    return figures


def _timed(name: str, call: Callable[[], int], repeat: int, cpu: Callable[[], float]) -> Figure:
    call()  # warm: connections opened, statements prepared, pages cached
    times, cpus, size = [], [], 0
    for _ in range(repeat):
        started, used = time.perf_counter(), cpu()
        size = call()
        times.append(time.perf_counter() - started)
        cpus.append(cpu() - used)
    return Figure(name, statistics.median(times), statistics.median(cpus), size)


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of the process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def report(baseline: dict[str, Figure], fleet: dict[str, Figure], small: int, big: int) -> None:
    print(
        f"\n{'':36} {small:>6,} rooms {big:>7,} rooms  ratio  goal <= {GOAL_S:.0f} s"
        f"   CPU at {big:,} (ratio)"
    )
    for name, figure in fleet.items():
        base = baseline[name]
        ratio = figure.seconds / base.seconds if base.seconds else float("inf")
        cpu_ratio = f"({figure.cpu / base.cpu:.1f}x)" if base.cpu else "(-)"
        verdict = "floor" if name in FLOORS else "ok" if figure.seconds <= GOAL_S else "OVER"
        print(
            f"{name:36} {base.seconds * 1000:>6.0f} ms {figure.seconds * 1000:>7.0f} ms "
            f"{ratio:>6.1f}x  {verdict:5} {figure.cpu * 1000:>10.0f} ms {cpu_ratio}"
            f"  {figure.size:,} bytes"
        )
    print(
        "medians; wall time, and the CPU of pushsync's process (the server's Python for a\n"
        "request, PostgreSQL's own not counted; the command's for a command, Python's start\n"
        "included: see pushsync --help)"
    )


async def _migrate(url: str) -> None:
    connector = connect(url)
    await connector.open()
    try:
        await upgrade(connector)
    finally:
        await connector.close()


@contextlib.contextmanager
def database(engine: str, rooms: int) -> Iterator[str]:
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-admin-") as folder:
            yield f"sqlite:///{Path(folder) / 'pushsync.db'}"
        return
    server = os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES)
    name = f"pushsync_bench_admin_{rooms}_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield str(httpx.URL(server).copy_with(path=f"/{name}"))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def serving(url: str) -> Iterator[tuple[str, int]]:
    """The real `pushsync serve` on the database; yields its admin listener's address and
    the pid of the process that serves it (the supervising one)."""
    port, admin_port = _free_port(), _free_port()
    env = {
        **os.environ,
        **SERVE_ENV,
        "PUSHSYNC_DATABASE_URL": url,
        "PUSHSYNC_PORT": str(port),
        "PUSHSYNC_ADMIN_PORT": str(admin_port),
    }
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pushsync", "serve"], env=env, stdout=log, stderr=log
        )
        try:
            admin = f"http://127.0.0.1:{admin_port}"
            _wait_for(admin + "/healthz", process, log)
            yield admin, process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_for(url: str, process: subprocess.Popen[bytes], log: object) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("pushsync serve exited; its log: " + _read(log))
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise RuntimeError("pushsync serve did not come up; its log: " + _read(log))


def _read(log: object) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    return log.read().decode(errors="replace")  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
