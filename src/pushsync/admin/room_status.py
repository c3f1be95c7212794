"""Which room stopped syncing, and why: one verdict per room from what the database knows.

The subscription table says whether Exchange can still reach us for the room, the room table
whether the worker could read it (last error, a resync waiting, Exchange's back-off), and the
notification queue whether its rows are worked off (failed rows, the oldest one pending). The
first problem found, in that order, is the room's `problem`; a room without one is in sync.
Before all of them: a room whose protocol has no live worker (`process_status`) is not syncing,
whatever its rows say.
Both `pushsync subscriptions list` and the admin listener's `/rooms` and status page show it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pushsync.admin.process_status import Fleet, fleet
from pushsync.store.connector import Connector, Row
from pushsync.store.room_directory import RoomDirectory
from pushsync.store.subscriptions import DEFAULT_STATUS_FREQUENCY, UNREACHABLE

PROBLEM_KINDS = (
    "no worker",
    "polling failed",
    "polling",
    "no subscription",
    "subscription broken",
    "silent",
    "notifications failed",
    "behind",
    "throttled",
    "unreachable",
    "error",
    "resync waiting",
)
BEHIND = timedelta(minutes=5)
# How a room's last_error says its calls failed for the installation's sake (the token
# authority away), not the room's: the worker writes it, kind "unreachable" reads it.
# A room's last error counts for this long: later calls for the room mostly succeeded (only a
# resync clears last_error), and one that keeps failing keeps it fresh.
RECENT_ERROR = timedelta(hours=1)  # a pending notification older than this: the worker is behind


@dataclass(frozen=True, slots=True)
class RoomStatus:
    mailbox: str
    protocol: str
    subscription_id: str | None
    subscription_state: str | None  # active | broken | None (no live subscription)
    last_heard: datetime | None
    last_synced_at: datetime | None
    resync_reason: str | None  # None: no resync waiting
    paused_until: datetime | None
    pending: int
    failed: int
    oldest_pending: datetime | None
    problem: str | None  # None: in sync
    kind: str | None = None  # the problem's kind, for counting: "subscription broken", …
    # what the directory (Graph's Places) says of the room, for the booking system; None when
    # the room was configured by hand
    display_name: str | None = None
    capacity: int | None = None
    building: str | None = None
    floor_number: int | None = None
    missing_since: datetime | None = None  # no longer listed; let go of after a grace period
    polling_reason: str | None = None  # why the room is polled: its protocol refused it
    migration: str | None = None  # a move under way: "to graph: subscribed (why it waits)"

    def as_json(self) -> dict[str, Any]:
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in ((n, getattr(self, n)) for n in self.__slots__)
        }


@dataclass(frozen=True)
class Overview:
    """The rooms' verdicts with the processes' liveness they were judged against."""

    rooms: list[RoomStatus]
    fleet: Fleet

    @property
    def in_sync(self) -> int:
        return sum(1 for s in self.rooms if s.problem is None)


async def overview(
    connector: Connector, now: datetime, dead_after: timedelta, configured: Iterable[str] = ()
) -> Overview:
    """Every room judged with the processes: a room whose protocol has no live worker is
    "not syncing", whatever its rows say. What operators are shown. `configured`: the
    protocols the settings' rooms use, needed even before a worker recorded any room."""
    rooms, queue = await _rows(connector)
    protocols = {room["protocol"] for room in rooms} | set(configured)
    found = await fleet(connector, now, dead_after, protocols)
    return Overview(_judge(rooms, queue, now, found), found)


async def room_overview(
    connector: Connector,
    mailbox: str,
    now: datetime,
    dead_after: timedelta,
    configured: Iterable[str] = (),
) -> tuple[RoomStatus | None, Fleet]:
    """One room judged as `overview` judges it (None: no such row), reading that room's rows
    only: what its page shows."""
    async with connector.session() as session:
        rooms = await session.fetch_all("room_overview_one", {"mailbox": mailbox})
        queue = await session.fetch_all("room_queue_one", {"mailbox": mailbox})
    protocols = {room["protocol"] for room in rooms} | set(configured)
    found = await fleet(connector, now, dead_after, protocols)
    statuses = _judge(rooms, queue, now, found)
    return (statuses[0] if statuses else None), found


async def room_statuses(
    connector: Connector, now: datetime, processes: Fleet | None = None
) -> list[RoomStatus]:
    """Every room, those with a problem first (then by mailbox). Without `processes` the
    rows alone are judged (no worker's liveness): `overview` is what operators are shown."""
    rooms, queue = await _rows(connector)
    return _judge(rooms, queue, now, processes)


async def room_statuses_on_a_thread(connector: Connector, now: datetime) -> list[RoomStatus]:
    """`room_statuses`, judged on a thread: for the worker's status samples, whose event loop
    must not stall while 50,000 rooms are judged (about a second)."""
    rooms, queue = await _rows(connector)
    return await asyncio.to_thread(_judge, rooms, queue, now, None)


async def _rows(connector: Connector) -> tuple[list[Row], list[Row]]:
    async with connector.session() as session:
        rooms = await session.fetch_all("subscription_overview")
        queue = await session.fetch_all("queue_by_room")
    return rooms, queue


def _judge(
    rooms: list[Row], queue: list[Row], now: datetime, processes: Fleet | None
) -> list[RoomStatus]:
    by_room: dict[str, dict[str, Row]] = defaultdict(dict)
    for row in queue:
        by_room[row["mailbox"]][row["state"]] = row
    first: dict[str, Row] = {}  # a room moving between protocols has two live subscriptions
    for room in rooms:
        first.setdefault(room["mailbox"], room)
    statuses = [
        verdict(room, _queue_of(by_room[mailbox], room), now, processes)
        for mailbox, room in first.items()
    ]
    return sorted(statuses, key=lambda s: (s.problem is None, s.mailbox))


async def discovery_answers(connector: Connector) -> list[dict[str, Any]]:
    """Room discovery's last answer per source (a room list, or every room): how many rooms
    Places listed, and why it changed nothing (empty, refused, failed); none without
    discovery."""
    rows = await RoomDirectory(connector).answers()
    return [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()} for row in rows
    ]


def _queue_of(mine: dict[str, Row], room: Row) -> dict[str, Any]:
    """The room's rows waiting (and since when), and its failed rows not yet healed by a full
    resync (failed rows stay in the table for weeks; a resync after them repairs what they
    missed). `mine`: the room's `queue_by_room` rows by state."""
    waiting = [mine[state] for state in ("pending", "claimed") if state in mine]
    failed, synced = mine.get("failed"), room["last_synced_at"]
    failed_rows = 0
    if failed is not None:
        last = failed["last_processed"]
        healed = synced is not None and last is not None and _when(last) < synced
        failed_rows = 0 if healed else failed["row_count"]
    return {
        "pending": sum(row["row_count"] for row in waiting),
        "failed": failed_rows,
        "oldest_pending": min((_when(row["oldest"]) for row in waiting), default=None),
    }


def _when(value: datetime | str) -> datetime:
    """SQLite returns aggregates of timestamps as text, PostgreSQL as timestamps."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def verdict(
    room: Row, queue: dict[str, Any], now: datetime, processes: Fleet | None = None
) -> RoomStatus:
    """One room's status from its overview row (`subscription_overview`) and queue counts,
    and if given the processes: without a live worker for its protocol it is not syncing."""
    no_worker = processes.no_worker(room["protocol"]) if processes is not None else None
    found = ("no worker", no_worker) if no_worker else problem(room, queue, now)
    return RoomStatus(
        mailbox=room["mailbox"],
        protocol=room["protocol"],
        subscription_id=room["subscription_id"],
        subscription_state=room["state"],
        last_heard=room["last_event_at"],
        last_synced_at=room["last_synced_at"],
        resync_reason=(room["resync_reason"] or "requested") if room["needs_resync"] else None,
        paused_until=room["paused_until"],
        pending=queue["pending"],
        failed=queue["failed"],
        oldest_pending=queue["oldest_pending"],
        problem=found[1] if found else None,
        kind=found[0] if found else None,
        display_name=room.get("display_name"),
        capacity=room.get("capacity"),
        building=room.get("building"),
        floor_number=room.get("floor_number"),
        missing_since=room.get("missing_since"),
        polling_reason=room["poll_reason"] if _polled(room) else None,
        migration=_migration(room),
    )


def _polled(room: Row) -> bool:
    """Polled: its protocol refused it a subscription and it has none."""
    return bool(room["poll_reason"]) and room["state"] is None


def _migration(room: Row) -> str | None:
    """A move by `pushsync rooms migrate` under way, and why its step waits, if it does."""
    if room["migration_state"] is None:
        return None
    waiting = f" ({room['migration_error']})" if room["migration_error"] else ""
    return f"to {room['migration_target']}: {room['migration_state']}{waiting}"


Problem = tuple[str, str]  # (kind, what an operator reads)


def problem(room: Row, queue: dict[str, Any], now: datetime) -> Problem | None:
    """The first thing wrong with the room, in words an operator can act on."""
    checks = (_polling_problem, _subscription_problem, _paused_problem, _queue_problem)
    for check in (*checks, _room_problem):
        found = check(room, queue, now)
        if found:
            return found
    return None


def _polling_problem(room: Row, _queue: dict[str, Any], now: datetime) -> Problem | None:
    """A room its protocol refused a subscription (`room.poll_reason`) is read every few
    minutes instead: synced, but late by up to that, until an admin lifts the refusal. If the
    reads fail too (an access policy denies everything), the room is not synced at all."""
    if not _polled(room):
        return None
    refused = f"no {room['protocol']} subscription: {room['poll_reason']}"
    detail = f" ({room['poll_detail']})" if room["poll_detail"] else ""
    failed_at, read = room["last_error_at"], room["last_synced_at"]
    error = room["last_error"] if failed_at is None or now - failed_at < RECENT_ERROR else None
    if error and error.startswith(UNREACHABLE):
        return None  # every room of the protocol: "unreachable" says it
    # The refusal is kept in poll_detail and a successful read clears the room's error: one
    # left says the reads fail too.
    if error:
        return "polling failed", f"broken: polling fails too: {error}; {refused}{detail}"
    unread = read is None or (room["poll_since"] is not None and read < room["poll_since"])
    last = "not read yet" if unread or read is None else f"last read {read:%Y-%m-%d %H:%M:%S} UTC"
    return "polling", f"polling, {last}; {refused}{detail}"


def _subscription_problem(room: Row, _queue: dict[str, Any], now: datetime) -> Problem | None:
    if room["state"] is None:
        why = room["last_error"]
        return "no subscription", f"no subscription: {why}" if why else "no subscription yet"
    if room["state"] == "broken":
        why = room["subscription_error"] or "unknown reason"
        return "subscription broken", f"subscription broken: {why}"
    heard = room["last_event_at"] or room["created_at"]
    minutes = room["status_frequency"] or DEFAULT_STATUS_FREQUENCY
    if room["protocol"] == "ews" and heard and now - heard > 2 * timedelta(minutes=minutes):
        return "silent", f"silent since {heard:%Y-%m-%d %H:%M} UTC (no heartbeat from Exchange)"
    return None


def _queue_problem(room: Row, queue: dict[str, Any], now: datetime) -> Problem | None:
    if queue["failed"]:
        why = room["last_error"] or "see `pushsync notifications list --state failed`"
        return "notifications failed", f"{queue['failed']} notifications failed: {why}"
    oldest = queue["oldest_pending"]
    if oldest is not None and now - oldest > BEHIND:
        minutes = (now - oldest).total_seconds() / 60
        return "behind", f"behind: a notification has waited {minutes:.0f} min"
    return None


def _paused_problem(room: Row, _queue: dict[str, Any], now: datetime) -> Problem | None:
    paused = room["paused_until"]
    if paused is not None and paused > now:  # before "behind": it is why rows wait
        return "throttled", f"Exchange asked to back off until {paused:%H:%M:%S} UTC"
    return None


def _room_problem(room: Row, _queue: dict[str, Any], now: datetime) -> Problem | None:
    failed_at = room["last_error_at"]
    if room["last_error"] and (failed_at is None or now - failed_at < RECENT_ERROR):
        if room["last_error"].startswith(UNREACHABLE):
            return "unreachable", f"{room['last_error']} (every room on this protocol)"
        return "error", f"last error: {room['last_error']}"
    if room["needs_resync"]:
        return "resync waiting", f"resync waiting: {room['resync_reason'] or 'requested'}"
    return None
