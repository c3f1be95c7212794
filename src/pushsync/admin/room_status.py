"""Which room stopped syncing, and why: one verdict per room from what the database knows.

The subscription table says whether Exchange can still reach us for the room, the room table
whether the worker could read it (last error, a resync waiting, Exchange's back-off), and the
notification queue whether its rows are worked off (failed rows, the oldest one pending). The
first problem found, in that order, is the room's `problem`; a room without one is in sync.
Before all of them: a room whose protocol has no live worker (`process_status`) is not syncing,
whatever its rows say.

The database judges: one named statement (`room_verdicts`, sql/<dialect>/verdicts.sql) holds
the rules, chooses each room's kind of problem and counts the rooms per kind, so that a page of
50,000 rooms reads a page of rows and the totals, not every room (docs/benchmarks.md,
"Operations at fleet size"). Python words the kind it chose. `pushsync status`,
`pushsync subscriptions list`, the admin listener's status page, `/rooms`, `/metrics` and the
room page all read it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pushsync.admin.process_status import Fleet, fleet_of_rooms
from pushsync.errors import PushsyncError
from pushsync.store.connector import Connector, Row
from pushsync.store.room_directory import RoomDirectory

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
BEHIND = timedelta(minutes=5)  # a pending notification older than this: the worker is behind
# A room's last error counts for this long: later calls for the room mostly succeeded (only a
# resync clears last_error), and one that keeps failing keeps it fresh.
RECENT_ERROR = timedelta(hours=1)


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


# The page after the last room of a page: its verdict's rank (PROBLEM_KINDS, 1-based) and
# mailbox, the order rooms are listed in (worst kind first, then by mailbox).
Cursor = tuple[int, str]
IN_SYNC_RANK = len(PROBLEM_KINDS) + 1
NO_LIMIT = 2**62
# `state` filters besides a problem's kind: any problem, in sync, being migrated
STATES = ("problem", "in sync", "moving", *PROBLEM_KINDS)


class UnknownState(PushsyncError):
    """A `state` filter that names no kind of problem (nor problem, in sync, moving)."""


@dataclass(frozen=True)
class Totals:
    """Every room's verdict counted by the database (`room_verdicts`, part 0): what the status
    page's header, /metrics and listings' footers show, without reading the rooms."""

    rooms: int = 0
    by_kind: Mapping[str | None, int] = field(default_factory=dict)  # None: in sync
    polling: Mapping[str, int] = field(default_factory=dict)  # polled rooms by why
    moving: int = 0
    pending: int = 0
    failed: int = 0
    oldest_pending: datetime | None = None

    @property
    def in_sync(self) -> int:
        return self.by_kind.get(None, 0)

    @property
    def troubled(self) -> int:
        return self.rooms - self.in_sync

    @classmethod
    def of(cls, statuses: Sequence[RoomStatus]) -> Totals:
        """The totals of rooms already judged (all of them): for a caller that holds every
        room, such as a test."""
        oldest = [s.oldest_pending for s in statuses if s.oldest_pending is not None]
        return cls(
            rooms=len(statuses),
            by_kind=Counter(s.kind for s in statuses),
            polling=Counter(s.polling_reason for s in statuses if s.polling_reason),
            moving=sum(1 for s in statuses if s.migration),
            pending=sum(s.pending for s in statuses),
            failed=sum(s.failed for s in statuses),
            oldest_pending=min(oldest, default=None),
        )


@dataclass(frozen=True)
class Overview:
    """The rooms' verdicts with the processes' liveness they were judged against: `rooms` is
    a page of them when a limit was given (`next` the cursor of the page after it, None at
    the end), `totals` counts every room."""

    rooms: list[RoomStatus]
    fleet: Fleet
    totals: Totals = field(default_factory=Totals)
    next: Cursor | None = None

    @property
    def in_sync(self) -> int:
        return self.totals.in_sync


async def overview(
    connector: Connector,
    now: datetime,
    dead_after: timedelta,
    configured: Iterable[str] = (),
    *,
    state: str | None = None,
    after: Cursor | None = None,
    limit: int | None = None,
) -> Overview:
    """Rooms judged with the processes: a room whose protocol has no live worker is
    "not syncing", whatever its rows say. What operators are shown. `configured`: the
    protocols the settings' rooms use, needed even before a worker recorded any room.
    `state` (one of STATES), `after` and `limit` choose a page; the totals count them all."""
    found = await fleet_of_rooms(connector, now, dead_after, configured)
    page, totals, following = await _verdicts(
        connector, now, found, state=state, after=after, limit=limit
    )
    return Overview(page, found, totals, following)


async def room_overview(
    connector: Connector,
    mailbox: str,
    now: datetime,
    dead_after: timedelta,
    configured: Iterable[str] = (),
) -> tuple[RoomStatus | None, Fleet]:
    """One room judged as `overview` judges it (None: no such row), reading that room's rows
    only: what its page shows."""
    found = await fleet_of_rooms(connector, now, dead_after, configured)
    statuses, _, _ = await _verdicts(connector, now, found, mailbox=mailbox, totals=False)
    return (statuses[0] if statuses else None), found


async def room_statuses(
    connector: Connector, now: datetime, processes: Fleet | None = None, state: str | None = None
) -> list[RoomStatus]:
    """Every room (or those of `state`, one of STATES), the worst kinds of problem first (then
    by mailbox). Without `processes` the rows alone are judged (no worker's liveness):
    `overview` is what operators are shown."""
    statuses, _, _ = await _verdicts(connector, now, processes, state=state, totals=False)
    return statuses


async def room_statuses_on_a_thread(connector: Connector, now: datetime) -> list[RoomStatus]:
    """The rooms with a problem, judged from their rows alone: all the worker's status samples
    read. The database judges them, so the worker's event loop no longer stalls while 50,000
    rooms are judged in Python (the name stays for its caller)."""
    return await room_statuses(connector, now, state="problem")


async def _verdicts(
    connector: Connector,
    now: datetime,
    processes: Fleet | None,
    *,
    state: str | None = None,
    after: Cursor | None = None,
    limit: int | None = None,
    mailbox: str | None = None,
    totals: bool = True,
) -> tuple[list[RoomStatus], Totals, Cursor | None]:
    """A page of judged rooms, the totals (if asked for) and the cursor after the page."""
    params = _params(now, processes, state, after, limit, mailbox, totals)
    async with connector.session() as session:
        rows = [_typed(row) for row in await session.fetch_all("room_verdicts", params)]
    statuses = [verdict(row, now, processes) for row in rows if row["part"] == 1]
    full = bool(statuses) and len(statuses) == limit
    following = (_rank(statuses[-1]), statuses[-1].mailbox) if full else None
    return statuses, _totals([row for row in rows if row["part"] == 0]), following


def _params(
    now: datetime,
    processes: Fleet | None,
    state: str | None,
    after: Cursor | None,
    limit: int | None,
    mailbox: str | None,
    totals: bool,
) -> dict[str, Any]:
    if state is not None and state not in STATES:
        raise UnknownState(f"unknown state {state!r}: one of {', '.join(STATES)}")
    after_rank, after_mailbox = after or (0, "")
    return {
        "now": now,
        "error_since": now - RECENT_ERROR,
        "behind_before": now - BEHIND,
        "ews_down": _down(processes, "ews"),
        "graph_down": _down(processes, "graph"),
        "mailbox": mailbox,
        "state": state,
        "state_rank": IN_SYNC_RANK if state == "in sync" else _kind_rank(state),
        "after_rank": after_rank,
        "after_mailbox": after_mailbox,
        "limit": NO_LIMIT if limit is None else limit,
        "totals": totals,
    }


def _down(processes: Fleet | None, protocol: str) -> bool:
    return processes is not None and processes.no_worker(protocol) is not None


def _kind_rank(kind: str | None) -> int:
    return PROBLEM_KINDS.index(kind) + 1 if kind in PROBLEM_KINDS else -1


def _rank(status: RoomStatus) -> int:
    return _kind_rank(status.kind) if status.kind else IN_SYNC_RANK


def _totals(rows: list[Row]) -> Totals:
    by_kind: Counter[str | None] = Counter()
    polling: Counter[str] = Counter()
    moving = pending = failed = 0
    oldest: datetime | None = None
    for row in rows:
        count = int(row["room_count"])
        by_kind[_kind_of(row["rank"])] += count
        if row["poll_reason"]:
            polling[row["poll_reason"]] += count
        moving += count if row["migration_state"] else 0
        pending, failed = pending + int(row["pending"] or 0), failed + int(row["failed"] or 0)
        if row["oldest_pending"] is not None:
            oldest = min(oldest or row["oldest_pending"], row["oldest_pending"])
    return Totals(sum(by_kind.values()), by_kind, polling, moving, pending, failed, oldest)


def _kind_of(rank: int) -> str | None:
    return PROBLEM_KINDS[rank - 1] if rank < IN_SYNC_RANK else None


_TIMESTAMPS = (
    "last_synced_at",
    "last_error_at",
    "paused_until",
    "poll_since",
    "created_at",
    "last_event_at",
    "expires_at",
    "missing_since",
    "oldest_pending",
)


def _typed(row: Row) -> Row:
    """SQLite returns timestamps that went through a compound SELECT or an aggregate as text,
    and booleans as integers; PostgreSQL returns them typed."""
    for name in _TIMESTAMPS:
        if isinstance(row.get(name), str):
            row[name] = _when(row[name])
    row["needs_resync"] = bool(row.get("needs_resync"))
    return row


async def discovery_answers(connector: Connector) -> list[dict[str, Any]]:
    """Room discovery's last answer per source (a room list, or every room): how many rooms
    Places listed, and why it changed nothing (empty, refused, failed); none without
    discovery."""
    rows = await RoomDirectory(connector).answers()
    return [
        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()} for row in rows
    ]


def _when(value: datetime | str) -> datetime:
    """SQLite returns aggregates of timestamps as text, PostgreSQL as timestamps."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def verdict(room: Row, now: datetime, processes: Fleet | None = None) -> RoomStatus:
    """One room's status from its `room_verdicts` row: the statement chose its problem's kind
    (`rank`); this words it for an operator."""
    kind = _kind_of(room["rank"])
    return RoomStatus(
        mailbox=room["mailbox"],
        protocol=room["protocol"],
        subscription_id=room["subscription_id"],
        subscription_state=room["state"],
        last_heard=room["last_event_at"],
        last_synced_at=room["last_synced_at"],
        resync_reason=(room["resync_reason"] or "requested") if room["needs_resync"] else None,
        paused_until=room["paused_until"],
        pending=int(room["pending"]),
        failed=int(room["failed"]),
        oldest_pending=room["oldest_pending"],
        problem=_WORDS[kind](room, now, processes) if kind else None,
        kind=kind,
        display_name=room.get("display_name"),
        capacity=room.get("capacity"),
        building=room.get("building"),
        floor_number=room.get("floor_number"),
        missing_since=room.get("missing_since"),
        polling_reason=room["poll_reason"] if room["polled"] else None,
        migration=_migration(room),
    )


def _migration(room: Row) -> str | None:
    """A move by `pushsync rooms migrate` under way, and why its step waits, if it does."""
    if room["migration_state"] is None:
        return None
    waiting = f" ({room['migration_error']})" if room["migration_error"] else ""
    return f"to {room['migration_target']}: {room['migration_state']}{waiting}"


# How each kind of problem reads, from the room's row. Which kind a room has is decided by
# `room_verdicts` alone (sql/<dialect>/verdicts.sql), in this order:
# - no worker: its protocol has no live worker, whatever its rows say;
# - polling failed / polling: its protocol refused it a subscription (`room.poll_reason`),
#   so the worker reads it every few minutes instead: synced, but late by up to that, until an
#   admin lifts the refusal; "failed" if the reads fail too (an error less than RECENT_ERROR
#   old, not "unreachable", which every room of the protocol shares);
# - no subscription, subscription broken, silent (EWS: no heartbeat for twice the status
#   frequency);
# - throttled (Exchange's back-off: before "behind", it is why rows wait);
# - notifications failed (not healed by a later resync), behind (a row waiting over BEHIND);
# - unreachable / error (a last error less than RECENT_ERROR old), resync waiting.
Words = Callable[[Row, datetime, "Fleet | None"], str]


def _no_worker(room: Row, _now: datetime, processes: Fleet | None) -> str:
    why = processes.no_worker(room["protocol"]) if processes is not None else None
    return why or f"not syncing: no live {room['protocol']} worker"


def _refused(room: Row) -> str:
    detail = f" ({room['poll_detail']})" if room["poll_detail"] else ""
    return f"no {room['protocol']} subscription: {room['poll_reason']}{detail}"


def _polling_failed(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    return f"broken: polling fails too: {room['last_error']}; {_refused(room)}"


def _polling(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    read, since = room["last_synced_at"], room["poll_since"]
    unread = read is None or (since is not None and read < since)
    last = "not read yet" if unread else f"last read {read:%Y-%m-%d %H:%M:%S} UTC"
    return f"polling, {last}; {_refused(room)}"


def _no_subscription(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    why = room["last_error"]
    return f"no subscription: {why}" if why else "no subscription yet"


def _broken(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    return f"subscription broken: {room['subscription_error'] or 'unknown reason'}"


def _silent(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    heard = room["last_event_at"] or room["created_at"]
    return f"silent since {heard:%Y-%m-%d %H:%M} UTC (no heartbeat from Exchange)"


def _failed(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    why = room["last_error"] or "see `pushsync notifications list --state failed`"
    return f"{room['failed']} notifications failed: {why}"


def _behind(room: Row, now: datetime, _processes: Fleet | None) -> str:
    minutes = (now - room["oldest_pending"]).total_seconds() / 60
    return f"behind: a notification has waited {minutes:.0f} min"


def _throttled(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    return f"Exchange asked to back off until {room['paused_until']:%H:%M:%S} UTC"


def _unreachable(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    return f"{room['last_error']} (every room on this protocol)"


def _error(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    return f"last error: {room['last_error']}"


def _resync_waiting(room: Row, _now: datetime, _processes: Fleet | None) -> str:
    return f"resync waiting: {room['resync_reason'] or 'requested'}"


_WORDS: dict[str, Words] = {
    "no worker": _no_worker,
    "polling failed": _polling_failed,
    "polling": _polling,
    "no subscription": _no_subscription,
    "subscription broken": _broken,
    "silent": _silent,
    "notifications failed": _failed,
    "behind": _behind,
    "throttled": _throttled,
    "unreachable": _unreachable,
    "error": _error,
    "resync waiting": _resync_waiting,
}
