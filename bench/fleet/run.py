"""pushsync at fleet size against the simulator (issue #17), time scaled, in five phases.

    uv run python -m bench.fleet --rooms 50000 --protocol ews|graph [--engine postgresql]
        [--workers N] [--scale X] [--status-frequency MIN] [--service-ms 50]

The simulator (this process) serves every room with `--service-ms` per call and enforces
Exchange's and Graph's limits (docs/simulator.md), counting each request refused for one as a
violation. pushsync runs as its own processes: the receiver (`python -m pushsync serve`) and the
manager + worker (`bench/fleet/sync_child.py`, built like `pushsync worker`, on the simulator's
time scale). Exchange time runs `--scale` times faster than real time; StatusFrequency, the
silence check, the daily resync and the 20 s write windows are Exchange time.

1. onboarding: every room subscribed and synced the first time (`--bookings` each);
2. steady state for `--hours` Exchange hours of heartbeats and light activity (`--activity`
   changes per room per day): false alarms (subscriptions the manager replaced, rooms broken),
   CPU per Exchange hour, calls per room per day (the daily resync included);
3. a morning burst: `--burst-share` of the rooms get `--burst-changes` changes within about a
   second: time until their reservations equal the simulator's calendars, lag, calls per
   notification;
4. the admin listener's status page, `/rooms`, `/metrics`, and `pushsync subscriptions list`;
5. the highest RSS of the receiver and of the manager + worker process.

It ends with one line per goal of the issue: figure, goal, ok/MISSED.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.worker import run as worker_bench
from pushsync.simulator import Meeting, Simulator, SimulatorConfig, generated_rooms
from pushsync.simulator.activity import ORGANIZERS
from pushsync.simulator.demo import free_port, truth_rows
from pushsync.simulator.graph.api import GRAPH_TOKEN
from pushsync.simulator.items import Instance

REPO = Path(__file__).resolve().parents[2]
WINDOW_PAST, WINDOW_FUTURE = timedelta(days=1), timedelta(days=60)
POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@dataclass
class Figures:
    """What the phases measured, by name, for the goal lines."""

    values: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], percent: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[percent - 1]


# -- the database, read directly (the bench's own view, not pushsync's code) ---------------------


class Database:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        if self.url.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(self.url.removeprefix("sqlite:///"))) as db:
                db.execute("PRAGMA busy_timeout = 10000")
                return db.execute(sql, params).fetchall()
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as db:
            sql = sql.replace("%", "%%").replace("?", "%s")  # a LIKE's % is not a placeholder
            return db.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def size_bytes(self) -> int:
        if self.url.startswith("sqlite:///"):
            path = Path(self.url.removeprefix("sqlite:///"))
            return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        return int(self.one("SELECT pg_database_size(current_database())"))


def create_postgres_database() -> str:
    import psycopg

    name = f"bench_fleet_{os.getpid()}"
    with psycopg.connect(POSTGRES + "/postgres", autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name}")
        db.execute(f"CREATE DATABASE {name}")
    return f"{POSTGRES}/{name}"


def drop_postgres_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES + "/postgres", autocommit=True) as db:
        db.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children that are still running."""
    total = 0.0
    for one in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found + [g for c in found for g in children(c)]


def peak_rss(pid: int) -> int:
    """The highest RSS (VmHWM) of the process or any of its children, in bytes."""
    best = 0
    for one in [pid, *children(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    best = max(best, int(line.split()[1]) * 1024)
    return best


# pushsync's processes run at this niceness, the simulator (this process) at the caller's. The
# simulator stands for Exchange, which does not share pushsync's cores: on two cores, the sync
# processes' dozens of threads otherwise left the simulator's one loop runnable but waiting for
# a core, its deliveries fell minutes behind, and the manager rightly replaced thousands of
# subscriptions it had not heard from (docs/benchmarks.md). pushsync still gets every cycle the
# simulator does not use.
CHILD_NICENESS = 10


class Child:
    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self._file = log.open("w")
        self.process = subprocess.Popen(
            ["nice", "-n", str(CHILD_NICENESS), *command],
            env={**os.environ, **env},
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )
        self.rss = 0

    @property
    def pid(self) -> int:
        return self.process.pid

    def sample(self) -> None:
        self.rss = max(self.rss, peak_rss(self.pid))

    def stop(self) -> None:
        self.sample()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._file.close()


# -- the simulated organisation -------------------------------------------------------------------


def meeting_at(room: Any, day: date, hour: int, subject: str, rng: random.Random) -> Meeting:
    zone = ZoneInfo(room.time_zone)
    start = datetime.combine(day, clock_time(hour), zone).astimezone(UTC)
    return Meeting(
        uid=secrets.token_hex(16).upper(),
        organizer=rng.choice(ORGANIZERS),
        subject=subject,
        start=start,
        end=start + timedelta(minutes=30),
        time_zone=room.time_zone,
    )


def seed_bookings(sim: Simulator, per_room: int) -> int:
    """`per_room` accepted meetings in every room, on the coming days at distinct hours."""
    rng = random.Random(11)
    today = sim.clock.now().date()
    made = 0
    for calendar in sim.exchange.calendars.values():
        for n in range(per_room):
            day = today + timedelta(days=1 + n % 20)
            meeting = meeting_at(calendar.room, day, 8 + n // 20, "Booked", rng)
            sim.exchange.book(meeting, [calendar.mailbox])
            made += 1
    sim.exchange.settle()
    return made


def calls(sim: Simulator) -> int:
    graph = sum(sim.graph.calls.values()) if sim.graph is not None else 0
    return sum(sim.exchange.calls.values()) + graph


def violations(sim: Simulator) -> Counter[str]:
    return Counter(sim.exchange.violations)


def window(sim: Simulator) -> tuple[datetime, datetime]:
    now = sim.clock.now()
    return now - WINDOW_PAST, now + WINDOW_FUTURE


def stored(db: Database, mailboxes: list[str], start: datetime, end: datetime) -> set[Any]:
    """The reservation rows of these rooms as `demo.truth_rows` shapes the simulator's."""
    rows: set[Any] = set()
    for n in range(0, len(mailboxes), 500):
        chunk = mailboxes[n : n + 500]
        marks = ",".join("?" * len(chunk))
        for row in db.query(
            "SELECT mailbox, uid, original_start, start_at, end_at, is_cancelled,"
            f" response_state, is_all_day FROM reservation WHERE mailbox IN ({marks})",
            tuple(chunk),
        ):
            mailbox, uid, original, begin, finish, cancelled, response, all_day = row
            begin, finish = _time(begin), _time(finish)
            if finish > start and begin < end:
                rows.add(
                    (
                        mailbox.lower(),
                        uid,
                        _time(original),
                        begin,
                        finish,
                        bool(cancelled),
                        response,
                        bool(all_day),
                    )
                )
    return rows


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def truth_of(sim: Simulator, mailboxes: list[str], start: datetime, end: datetime) -> set[Any]:
    instances: list[Instance] = []
    for mailbox in mailboxes:
        instances += sim.exchange.calendars[mailbox].instances(start, end)
    return truth_rows(instances)


def queued(sim: Simulator) -> bool:
    """Whether the simulator holds notifications it has not delivered yet."""
    pushes = sim.push.subscriptions.values() if sim.push else ()
    hooks = sim.graph.webhooks.subscriptions.values() if sim.graph else ()
    return any(s.queue for s in pushes) or any(s.queue or s.task for s in hooks)


def unconverged(sim: Simulator, db: Database, mailboxes: list[str]) -> list[str]:
    """The rooms whose reservations differ from the simulator's calendar."""
    sim.exchange.settle()
    start, end = window(sim)
    truth = truth_of(sim, mailboxes, start, end)
    rows = stored(db, mailboxes, start, end)
    wrong = {r[0] for r in truth ^ rows}
    return [m for m in mailboxes if m.lower() in wrong]


# -- the run ---------------------------------------------------------------------------------------


class Fleet:
    def __init__(self, args: argparse.Namespace, sim: Simulator, workdir: Path) -> None:
        self.args = args
        self.sim = sim
        self.workdir = workdir
        self.rooms = [room.email for room in sim.config.rooms]
        self.figures = Figures()
        self.port, self.admin_port = free_port(), free_port()
        self.token = secrets.token_urlsafe(24)
        self.client_state = secrets.token_urlsafe(24)
        if args.engine == "postgresql":
            self.database_url = create_postgres_database()
        else:
            self.database_url = f"sqlite:///{workdir / 'pushsync.db'}"
        self.db = Database(self.database_url)
        self.processes: list[Child] = []

    @property
    def scale(self) -> float:
        return self.sim.clock.scale

    def real_seconds(self, exchange_seconds: float) -> float:
        return exchange_seconds / self.scale

    def env(self) -> dict[str, str]:
        return {
            "PUSHSYNC_DATABASE_URL": self.database_url,
            "PUSHSYNC_CALLBACK_TOKEN": self.token,
            "PUSHSYNC_GRAPH_CLIENT_STATE": self.client_state,
            "PUSHSYNC_ALLOWED_NETWORKS": "127.0.0.0/8",
            "PUSHSYNC_USE_MICROSOFT_RANGES": "false",
            "PUSHSYNC_ADMIN_PORT": str(self.admin_port),
            "PUSHSYNC_LOG_LEVEL": "WARNING",
        }

    def sync_settings(self) -> dict[str, Any]:
        args = self.args
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "public_url": f"http://127.0.0.1:{self.port}",
            "callback_token": self.token,
            "graph_client_state": self.client_state,
            "protocol": args.protocol,
            "rooms": self.rooms,
            "status_frequency_minutes": args.status_frequency,
            # a round every quarter StatusFrequency (Exchange time), at most every 30 real s
            "subscription_check_seconds": min(
                30.0, max(1.0, self.real_seconds(args.status_frequency * 15))
            ),
            "resync_interval_hours": self.real_seconds(24 * 3600) / 3600,
            "sync_window_past_days": WINDOW_PAST.days,
            "sync_window_future_days": WINDOW_FUTURE.days,
            "max_retry_after_seconds": 600,
            # Graph's 20 s write window is Exchange time; the manager's pacer counts real time
            "graph_subscription_write_window_seconds": self.real_seconds(
                self.sim.config.graph_subscription_window_seconds
            ),
            "log_level": "WARNING",
        }
        if args.protocol == "ews":
            values |= {
                "ews_url": self.sim.ews_url,
                "ews_auth": "basic",
                "ews_username": self.sim.config.username,
                "ews_password": self.sim.config.password,
            }
        else:
            values |= {"graph_url": self.sim.graph_url, "graph_token": GRAPH_TOKEN}
        return values

    async def start_receiver(self) -> None:
        command = [sys.executable, "-m", "pushsync", "serve", "--host", "127.0.0.1"]
        command += ["--port", str(self.port)]
        receiver = Child("receiver", command, self.env(), self.workdir / "receiver.log")
        self.processes.append(receiver)
        await self._until_up(f"http://127.0.0.1:{self.admin_port}/healthz", receiver)

    async def _until_up(self, url: str, child: Child) -> None:
        async with httpx.AsyncClient() as http:
            for _ in range(600):
                if child.process.poll() is not None:
                    raise SystemExit(f"{child.name} exited: see {child.log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise SystemExit(f"{child.name} did not start")

    def start_sync(self) -> None:
        path = self.workdir / "sync.json"
        path.write_text(json.dumps(self.sync_settings()))
        clock = self.sim.clock
        anchor = time.monotonic() - (clock.now() - clock.epoch).total_seconds() / clock.scale
        for n in range(self.args.workers):
            role = "both" if n == 0 else "worker"
            command = [sys.executable, "-m", "bench.fleet.sync_child", str(path)]
            command += [clock.epoch.isoformat(), repr(anchor), repr(clock.scale), "--role", role]
            log = self.workdir / f"sync-{n}.log"
            self.processes.append(Child(f"sync-{n}", command, self.env(), log))

    def sample(self) -> None:
        for child in self.processes:
            child.sample()
            if child.process.poll() is not None:
                raise SystemExit(f"{child.name} exited: see {child.log}")

    def cpu(self) -> dict[str, float]:
        return {child.name: cpu_seconds(child.pid) for child in self.processes}

    def stop(self) -> None:
        for child in reversed(self.processes):
            child.stop()
        if self.args.engine == "postgresql" and not self.args.keep_database:
            drop_postgres_database(self.database_url)
        elif self.args.engine == "postgresql":
            print(f"  database kept: {self.database_url}", flush=True)

    async def wait(self, condition: Any, deadline_s: float, what: str) -> float:
        started = time.monotonic()
        while not condition():
            self.sample()
            if time.monotonic() - started > deadline_s:
                raise SystemExit(f"{what}: not within {deadline_s:.0f} s")
            await asyncio.sleep(1.0)
        return time.monotonic() - started

    # -- phases ------------------------------------------------------------------------------

    def exchange_seconds(self) -> float:
        """Exchange (simulator) time now, in seconds since its epoch."""
        clock = self.sim.clock
        return (clock.now() - clock.epoch).total_seconds()

    async def onboarding(self) -> None:
        n = len(self.rooms)
        calls_before, violations_before = calls(self.sim), violations(self.sim)
        cpu_before = self.cpu()  # the receiver's start-up is not onboarding's
        started, simulator_cpu_before = time.monotonic(), time.process_time()
        writes_before = self.graph_writes_so_far()
        started, started_x = time.monotonic(), self.exchange_seconds()
        self.start_sync()
        protocol = self.args.protocol
        subscribed_s = await self.wait(
            lambda: self.live() >= n, self.args.deadline, "every room subscribed"
        )
        subscribed_x = self.exchange_seconds() - started_x
        synced_s = subscribed_s + await self.wait(
            lambda: self.synced() >= n, self.args.deadline, "every room synced"
        )
        synced_x = self.exchange_seconds() - started_x
        wall = time.monotonic() - started
        cpu = {name: s - cpu_before.get(name, 0.0) for name, s in self.cpu().items()}
        used = calls(self.sim) - calls_before
        # CPU per call on both sides: the sync processes and this process, which is the
        # simulator (its polling here is small)
        sync_cpu = sum(s for name, s in cpu.items() if name.startswith("sync"))
        simulator_cpu = time.process_time() - simulator_cpu_before
        refused = violations(self.sim) - violations_before
        wrong = unconverged(self.sim, self.db, self.rooms)
        size = self.db.size_bytes()
        print(
            f"1 onboarding ({protocol}, {n} rooms x {self.args.bookings} bookings):"
            f" all subscribed after {subscribed_s:.0f} s, all synced after {wall:.0f} s;"
            f" {used} calls ({used / n:.2f} per room): {self.operations()};"
            f" CPU per call: manager + worker {1000 * sync_cpu / max(used, 1):.1f} ms,"
            f" simulator {1000 * simulator_cpu / max(used, 1):.1f} ms; {n / wall:.1f} rooms/s;"
            f" limit violations {dict(refused) or 0}; database {size / 2**20:.0f} MB;"
            f" rooms differing from Exchange: {len(wrong)}; {self.deliveries()};"
            f" subscriptions replaced as silent or broken: {self.replaced()};"
            f" CPU: {', '.join(f'{name} {s:.1f} s' for name, s in cpu.items())}",
            flush=True,
        )
        if protocol == "graph":
            self.graph_onboarding(writes_before, subscribed_x, synced_x)
        self.figures.values |= {
            "onboarding_replaced": self.replaced(),
            "onboarding_s": wall,
            "subscribed_s": subscribed_s,
            "synced_s": synced_s,
            "onboarding_violations": sum(refused.values()),
            "onboarding_write_refusals": refused["graph.subscription_writes"],
            "onboarding_wrong": len(wrong),
            "onboarding_calls_per_room": used / n,
            "onboarding_sync_cpu_ms_per_call": 1000 * sync_cpu / max(used, 1),
        }

    def graph_writes_so_far(self) -> int:
        graph = self.sim.graph
        return len(graph.write_limit.writes) if graph is not None else 0

    def graph_onboarding(self, writes_before: int, subscribed_x: float, synced_x: float) -> None:
        """Onboarding over Graph in Exchange time, as the tenant's write limit counts it: from
        the first subscription write the simulator saw to the last, against `rooms / 25` s of
        Exchange time (500 writes per 20 s), with the writes it refused and the most any 20 s
        window of its clock held."""
        assert self.sim.graph is not None
        limit = self.sim.graph.write_limit
        writes = limit.writes[writes_before:]
        span = writes[-1].at - writes[0].at if writes else 0.0
        refused = sum(1 for w in writes if w.refused_for)
        most = limit.most_in_any_window(since=writes_before)
        minimum = len(self.rooms) / (limit.limit / limit.window)
        # writes sent in bursts of `limit`, one window apart: the least first-to-last can be
        bursts = (math.ceil(len(self.rooms) / limit.limit) - 1) * limit.window
        real_span = self.real_seconds(span)
        # how long a permit took to come round: write i came `cycle` after write i - limit;
        # the window (20 s) at best, plus what a write costs beyond it (docs/graph.md)
        cycles = [b.at - a.at for a, b in zip(writes, writes[limit.limit :], strict=False)]
        cycle = f"{statistics.median(cycles):.1f} s" if cycles else "-"
        print(
            f"  Graph onboarding in Exchange time: {len(writes)} subscription writes from the"
            f" first to the last in {span:.0f} s ({real_span:.1f} real s,"
            f" {len(writes) / max(real_span, 1e-9):.0f} writes per real s); the write-limit"
            f" minimum {minimum:.0f} s (rooms / 25 per s; in bursts of {limit.limit} one window"
            f" apart, {bursts:.0f} s); {refused} refused (429); at most {most} in any"
            f" {limit.window:g} s (limit {limit.limit}); write n came a median {cycle} after"
            f" write n - {limit.limit}; every room subscribed after"
            f" {subscribed_x:.0f} s, first sync of every room done after {synced_x:.0f} s"
            " (Exchange time from the manager's start)",
            flush=True,
        )
        self.figures.values |= {
            "graph_write_span_x": span,
            "graph_write_minimum_x": minimum,
            "graph_writes_refused": refused,
            "graph_most_in_window": most,
            "graph_subscribed_x": subscribed_x,
            "graph_synced_x": synced_x,
        }

    def deliveries(self) -> str:
        """The push deliveries' answers so far (EWS), e.g. "OK 2040, HTTP 503 3"."""
        if self.sim.push is None or not self.sim.push.deliveries:
            return "no EWS deliveries"
        counts = Counter(d.status for d in self.sim.push.deliveries)
        return "deliveries: " + ", ".join(f"{k} {v}" for k, v in counts.most_common())

    def operations(self) -> str:
        counts = Counter(self.sim.exchange.calls)
        if self.sim.graph is not None:
            counts += Counter({f"graph.{k}": v for k, v in self.sim.graph.calls.items()})
        return ", ".join(f"{op} {count}" for op, count in counts.most_common() if count)

    def live(self) -> int:
        return int(self.db.one("SELECT count(*) FROM subscription WHERE state = 'active'") or 0)

    def synced(self) -> int:
        return int(
            self.db.one(
                "SELECT count(*) FROM room WHERE last_synced_at IS NOT NULL AND NOT needs_resync"
            )
            or 0
        )

    def pending_rows(self, after_id: int) -> bool:
        """Whether a notification row after `after_id` waits for the worker."""
        sql = "SELECT 1 FROM sync_notification WHERE id > ? AND processed_at IS NULL LIMIT 1"
        return bool(self.db.query(sql, (after_id,)))

    def replaced(self) -> int:
        return int(self.db.one("SELECT count(*) FROM subscription WHERE replaced_by IS NOT NULL"))

    async def steady(self) -> None:
        hours = self.args.hours
        replaced_before, calls_before = self.replaced(), calls(self.sim)
        violations_before, cpu_before = violations(self.sim), self.cpu()
        resynced_before = self.db.one("SELECT max(last_synced_at) FROM room")
        rng = random.Random(13)
        changes = 0
        # light activity: `--activity` bookings per room per Exchange day, in random rooms
        per_real_s = self.args.activity * len(self.rooms) * self.scale / 86400
        deadline = time.monotonic() + self.real_seconds(hours * 3600)
        next_sample = 0.0
        while time.monotonic() < deadline:
            due = per_real_s * 0.5 + rng.random()
            for _ in range(int(due)):
                mailbox = rng.choice(self.rooms)
                calendar = self.sim.exchange.calendars[mailbox]
                day = self.sim.clock.now().date() + timedelta(days=rng.randint(2, 30))
                meeting = meeting_at(calendar.room, day, rng.randint(12, 17), "Light", rng)
                self.sim.exchange.book(meeting, [mailbox])
                changes += 1
            if time.monotonic() > next_sample:
                self.sample()
                next_sample = time.monotonic() + 2
            await asyncio.sleep(0.5)
        cpu = self.cpu()
        used = calls(self.sim) - calls_before
        refused = violations(self.sim) - violations_before
        alarms = self.replaced() - replaced_before
        broken = int(self.db.one("SELECT count(*) FROM subscription WHERE state = 'broken'"))
        resynced = int(
            self.db.one("SELECT count(*) FROM room WHERE last_synced_at > ?", (resynced_before,))
        )
        per_room_day = used / len(self.rooms) / (hours / 24)
        cpu_text = ", ".join(
            f"{name} {(cpu[name] - cpu_before.get(name, 0.0)) / hours:.2f} s" for name in cpu
        )
        print(
            f"2 steady state ({hours:g} Exchange hours in"
            f" {self.real_seconds(hours * 3600):.0f} s, StatusFrequency"
            f" {self.args.status_frequency} min, {changes} light changes): false alarms"
            f" {alarms} replaced + {broken} broken; CPU per Exchange hour: {cpu_text};"
            f" calls {used} = {per_room_day:.2f} per room per day; rooms given their daily"
            f" resync {resynced} of {len(self.rooms)}; limit violations {dict(refused) or 0}",
            flush=True,
        )
        self.figures.values |= {
            "false_alarms": alarms + broken,
            "calls_per_room_day": per_room_day,
            "daily_resynced": resynced,
            "steady_violations": sum(refused.values()),
        }

    async def burst(self) -> None:
        rng = random.Random(17)
        count = max(1, int(len(self.rooms) * self.args.burst_share))
        rooms = rng.sample(self.rooms, count)
        try:  # let the steady state's last changes land
            await self.wait(lambda: not unconverged(self.sim, self.db, rooms), 120, "quiet")
        except SystemExit:  # the burst is measured anyway: its rooms must converge in the end
            left = len(unconverged(self.sim, self.db, rooms))
            print(f"  {left} of the burst's rooms still differ 120 s after the steady state")
        calls_before, violations_before = calls(self.sim), violations(self.sim)
        operations_before = Counter(self.sim.exchange.calls)
        last_id = int(self.db.one("SELECT coalesce(max(id), 0) FROM sync_notification"))
        started, started_at = time.monotonic(), datetime.now(UTC)
        made = 0
        for mailbox in rooms:  # a booking, then moves and extensions of it
            calendar = self.sim.exchange.calendars[mailbox]
            day = self.sim.clock.now().date() + timedelta(days=1)
            meeting = meeting_at(calendar.room, day, 19, "Burst", rng)
            self.sim.exchange.book(meeting, [mailbox])
            made += 1
            for _ in range(self.args.burst_changes - 1):
                shift = timedelta(minutes=rng.choice((15, 30)))
                meeting = replace(meeting, end=meeting.end + shift)
                self.sim.exchange.update(meeting)
                made += 1
        made_s = time.monotonic() - started
        waiting = list(rooms)
        compared = [0.0]  # monotonic: the last comparison

        def done() -> bool:
            # Comparing 5,000 rooms with the simulator's calendars takes about a second of the
            # simulator's own loop, which would delay the burst it measures: it waits until
            # nothing is queued on either side, and at most 15 s between two.
            now = time.monotonic()
            if now - compared[0] < 15 and (queued(self.sim) or self.pending_rows(last_id)):
                return False
            compared[0] = now
            waiting[:] = unconverged(self.sim, self.db, waiting)
            return not waiting

        await self.wait(done, self.args.deadline, "burst converged")
        converge_s = time.monotonic() - started
        await asyncio.sleep(self.real_seconds(60))  # late rows (attendant answers) counted too
        used = calls(self.sim) - calls_before
        operations = Counter(self.sim.exchange.calls) - operations_before
        refused = violations(self.sim) - violations_before
        rows = self.db.query(
            "SELECT received_at, processed_at FROM sync_notification WHERE id > ?"
            " AND event_type NOT LIKE 'Status%' AND processed_at IS NOT NULL",
            (last_id,),
        )
        lags = [(_time(done_at) - _time(got)).total_seconds() for got, done_at in rows]  # type: ignore[operator]
        # the receiver's clock is this machine's: when the simulator had delivered the burst
        arrived = max((_time(got) for got, _ in rows), default=started_at) - started_at  # type: ignore[operator,type-var]
        notifications = len(rows)
        per = used / notifications if notifications else 0.0
        print(
            f"3 burst ({count} rooms x {self.args.burst_changes} changes, made in"
            f" {made_s:.1f} s): converged in {converge_s:.1f} s, the last notification"
            f" received after {arrived.total_seconds():.1f} s; lag p50/p99"
            f" {percentile(lags, 50):.2f}/{percentile(lags, 99):.2f} s; {used} calls for"
            f" {notifications} notifications = {per:.3f} per notification {dict(operations)}"
            f" limit violations {dict(refused) or 0}",
            flush=True,
        )
        self.figures.values |= {
            "burst_converge_s": converge_s,
            "burst_calls_per_notification": per,
            "burst_calls_per_room": used / max(count, 1),
            "burst_notifications_per_room": notifications / max(count, 1),
            "burst_violations": sum(refused.values()),
        }

    async def operations_phase(self) -> None:
        admin = f"http://127.0.0.1:{self.admin_port}"
        times: dict[str, float] = {}
        async with httpx.AsyncClient(timeout=OPERATION_TIMEOUT_S) as http:
            pages = (("status page", "/"), ("/rooms", "/rooms"), ("/metrics", "/metrics"))
            for name, path in pages:
                started = time.monotonic()
                try:
                    answer = await self.watched(http.get(admin + path), name)
                except httpx.TimeoutException:  # a figure too: the goal is missed, go on
                    self.figures.notes.append(f"{name}: no answer in {OPERATION_TIMEOUT_S} s")
                    times[name] = float("inf")
                    continue
                times[name] = time.monotonic() - started
                if answer.status_code != 200:
                    self.figures.notes.append(f"{name} answered {answer.status_code}")
        started = time.monotonic()
        listed = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pushsync", "subscriptions", "list"],
            env={**os.environ, **self.env()},
            capture_output=True,
            check=False,
        )
        times["subscriptions list"] = time.monotonic() - started
        text = "; ".join(f"{name} {seconds:.2f} s" for name, seconds in times.items())
        print(f"4 operations at {len(self.rooms)} rooms: {text} (exit {listed.returncode})")
        self.figures.values |= {f"op:{name}": seconds for name, seconds in times.items()}

    async def watched(self, request: Any, name: str) -> Any:
        """`request`, and on PostgreSQL, while it takes over 10 s, what the server is running
        (pg_stat_activity), printed every 10 s: what a slow page waits on."""
        task = asyncio.ensure_future(request)
        while self.args.engine == "postgresql":
            done, _ = await asyncio.wait({task}, timeout=10)
            if done:
                break
            running = await asyncio.to_thread(
                self.db.query,
                "SELECT now() - query_start, wait_event_type, wait_event, left(query, 160)"
                " FROM pg_stat_activity WHERE datname = current_database()"
                " AND state = 'active' AND pid <> pg_backend_pid()",
            )
            for age, kind, event, query in running:
                text = " ".join(query.split())
                print(f"    {name} waits; the server runs ({age}, {kind}/{event}): {text}")
        return await task

    def memory(self) -> None:
        self.sample()
        text = ", ".join(f"{c.name} {c.rss / 2**20:.0f} MB" for c in self.processes)
        print(f"5 highest RSS: {text}")
        sync = sum(c.rss for c in self.processes if c.name.startswith("sync"))
        self.figures.values["sync_rss_mb"] = sync / 2**20


OPERATION_TIMEOUT_S = 120  # an operator's page that takes longer has failed, whatever it says

LOOP_LAG = [0.0]  # the longest the simulator's loop was late for a 0.1 s sleep


async def loop_lag() -> None:
    while True:
        started = time.monotonic()
        await asyncio.sleep(0.1)
        LOOP_LAG[0] = max(LOOP_LAG[0], time.monotonic() - started - 0.1)


NAIVE_DEADLINE_S = 300


async def naive_baseline(args: argparse.Namespace) -> float | None:
    """The burst's baseline in the same run: bench/worker's naive worker (one read per
    notification row, no debounce) beside pushsync's worker, each in this process on a simulator
    of its own with `--naive-rooms` rooms and `--burst-changes` changes each (the naive worker
    is too slow for the fleet's burst). Its calls per notification stand beside the fleet's.
    It runs first, and within NAIVE_DEADLINE_S: after a 50,000-room fleet its worker's rounds
    failed in this process (a retryable error; its detail was not logged) and the run hung."""
    rooms, changes, protocol = args.naive_rooms, args.burst_changes, args.protocol

    async def both() -> tuple[worker_bench.Result, worker_bench.Result]:  # one after the other
        same = await worker_bench.measure("pushsync", rooms, changes, False, 0.0, protocol)
        return same, await worker_bench.measure("naive", rooms, changes, True, 0.0, protocol)

    try:
        same, naive = await asyncio.wait_for(both(), NAIVE_DEADLINE_S)
    except TimeoutError:
        print(f"  naive baseline: not done within {NAIVE_DEADLINE_S} s, left out", flush=True)
        return None
    print(
        f"  naive baseline ({protocol}, {rooms} rooms x {changes} changes, bench/worker's burst):"
        f" naive {naive.calls_per_notification:.3f} calls per notification, converged in"
        f" {naive.converge_s:.1f} s; pushsync on the same burst {same.calls_per_notification:.3f},"
        f" {same.converge_s:.1f} s ({naive.calls / max(same.calls, 1):.0f}x the calls)",
        flush=True,
    )
    return naive.calls_per_notification


def goals(fleet: Fleet) -> None:
    values = fleet.figures.values
    protocol, rooms = fleet.args.protocol, len(fleet.rooms)
    lines: list[tuple[str, str, str, bool]] = []
    if protocol == "ews":
        onboarding = values.get("onboarding_s", float("inf"))
        lines.append(
            (
                f"EWS onboarding of {rooms} rooms, {fleet.args.service_ms:g} ms per call",
                f"{onboarding / 60:.1f} min (at this rate 50,000 rooms:"
                f" {onboarding * 50_000 / rooms / 60:.0f} min)",
                "<= 10 min (at 50,000 rooms)",
                onboarding * max(50_000 / rooms, 1) <= 600,  # a smaller run: its projection
            )
        )
    else:
        span = values.get("graph_write_span_x", float("inf"))
        minimum = values.get("graph_write_minimum_x", 0.0)
        refused = int(values.get("graph_writes_refused", 0))
        ratio = span / minimum if minimum else float("inf")
        lines.append(
            (
                f"Graph onboarding of {rooms} rooms vs the write-limit minimum (Exchange time,"
                " first write to last)",
                f"{span:.0f} s vs {minimum:.0f} s ({ratio:.3f}x), {refused} writes refused",
                "<= 1.05x, 0 refused",
                ratio <= 1.05 and refused == 0,
            )
        )
    # a subscription replaced while onboarding counts too: an operator sees its alarm the same
    alarms = values.get("false_alarms", -1)
    early = values.get("onboarding_replaced", 0)
    lines.append(
        (
            f"false alarms over {fleet.args.hours:g} Exchange hours and onboarding",
            f"{alarms:.0f} + {early:.0f} replaced while onboarding",
            "0",
            alarms == 0 and early == 0,
        )
    )
    per = values.get("burst_calls_per_notification", float("inf"))
    naive = values.get("naive_calls_per_notification")
    figure = f"{per:.3f}" + (f" (naive {naive:.3f})" if naive is not None else "")
    per_room = values.get("burst_calls_per_room")
    if per_room is not None:  # one read per burst room is the least a room's changes can cost
        each = values.get("burst_notifications_per_room", 0.0)
        figure += (
            f"; {per_room:.2f} calls per burst room for {each:.1f} notifications each"
            f" (one read per room: {1 / each if each else 0:.3f} per notification)"
        )
    lines.append((f"burst calls per notification ({protocol})", figure, "<= 0.1", per <= 0.1))
    converge = values.get("burst_converge_s", float("inf"))
    burst_rooms = int(rooms * fleet.args.burst_share)
    burst_small = burst_rooms < 5_000 or fleet.args.burst_changes < 5
    lines.append(
        (
            f"burst converge, {burst_rooms} rooms x {fleet.args.burst_changes}",
            f"{converge:.1f} s",
            "<= 60 s (5,000 rooms)",
            converge <= 60,
        )
    )
    day = values.get("calls_per_room_day", float("inf"))
    lines.append(("steady-state calls per room per day", f"{day:.2f}", "<= 5", day <= 5))
    for name in ("status page", "/rooms", "/metrics"):
        seconds = values.get(f"op:{name}", float("inf"))
        goal = "<= 1 s (at 50,000 rooms)"
        lines.append((f"{name} at {rooms} rooms", f"{seconds:.2f} s", goal, seconds <= 1))
    rss = values.get("sync_rss_mb", float("inf"))
    goal = "<= 500 MB (at 50,000 rooms)"
    lines.append(("worker + manager RSS", f"{rss:.0f} MB", goal, rss <= 500))
    violated = sum(v for k, v in values.items() if k.endswith("_violations"))
    lines.append(("limit violations, all phases", f"{violated:.0f}", "0", violated == 0))
    print("\ngoals:")
    for figure, value, goal, ok in lines:
        verdict = "ok" if ok else "MISSED"
        # a goal for the fleet says nothing of a smaller run; the burst's is for its 5,000 rooms
        if "50,000" in goal and rooms < 50_000:
            verdict = f"not judged at {rooms} rooms (would be {verdict})"
        elif "5,000 rooms" in goal and burst_small:
            verdict = f"not judged for a burst of {burst_rooms} rooms (would be {verdict})"
        print(f"  {figure}: {value}; goal {goal}: {verdict}")
    for note in fleet.figures.notes:
        print(f"  note: {note}")


async def run(args: argparse.Namespace) -> None:
    rooms = generated_rooms(args.rooms)
    config = SimulatorConfig(
        rooms=rooms, scale=args.scale, service_ms=args.service_ms, seed=7, port=0
    )
    workdir = Path(tempfile.mkdtemp(prefix="bench-fleet-", dir=REPO / "var"))
    print(
        f"bench/fleet: {args.rooms} rooms over {args.protocol}, {args.engine}, {args.workers}"
        f" worker process(es); {args.service_ms:g} ms per call; Exchange time x{args.scale:g};"
        f" {os.cpu_count()} cores (shared); logs in {workdir}",
        flush=True,
    )
    started = time.monotonic()
    naive = await naive_baseline(args) if args.naive_rooms else None
    async with Simulator(config) as sim:
        lag = asyncio.create_task(loop_lag())
        made = seed_bookings(sim, args.bookings)
        print(f"  simulator ready: {made} bookings in {time.monotonic() - started:.0f} s")
        fleet = Fleet(args, sim, workdir)
        if naive is not None:
            fleet.figures.values["naive_calls_per_notification"] = naive
        try:
            await fleet.start_receiver()
            await fleet.onboarding()
            await fleet.steady()
            await fleet.burst()
            await fleet.operations_phase()
            fleet.memory()
        except SystemExit:
            print(f"  stopped; {fleet.deliveries()}", flush=True)
            raise
        finally:
            fleet.stop()
            lag.cancel()
    print(
        f"  whole run {time.monotonic() - started:.0f} s; the simulator's event loop was late by"
        f" up to {LOOP_LAG[0]:.1f} s (a late loop delays heartbeats and answers, as an"
        f" overloaded Exchange would)"
    )
    goals(fleet)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--rooms", type=int, default=2000)
    parser.add_argument("--protocol", choices=("ews", "graph"), default="ews")
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="sync worker processes")
    parser.add_argument("--scale", type=float, default=120.0, help="Exchange s per real s")
    parser.add_argument("--service-ms", type=float, default=50.0)
    parser.add_argument("--status-frequency", type=int, default=30, help="minutes")
    parser.add_argument("--bookings", type=int, default=10, help="per room before onboarding")
    parser.add_argument("--hours", type=float, default=24.0, help="steady state, Exchange hours")
    parser.add_argument("--activity", type=float, default=1.0, help="changes per room per day")
    parser.add_argument("--burst-share", type=float, default=0.1)
    parser.add_argument("--burst-changes", type=int, default=5)
    parser.add_argument(
        "--naive-rooms", type=int, default=20, help="the naive burst baseline's rooms (0: none)"
    )
    parser.add_argument("--deadline", type=float, default=1800.0, help="per wait, real s")
    parser.add_argument(
        "--keep-database", action="store_true", help="PostgreSQL: keep it afterwards, to look into"
    )
    args = parser.parse_args()
    (REPO / "var").mkdir(exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))
