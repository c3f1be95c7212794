"""A fleet's rows, written straight into a migrated database with plain SQL that matches the
schema (tests/integration/schema): rooms, their subscriptions (the live one and a renewed one
retired), notification rows worked off and a few waiting, ten reservations per room, the
processes' heartbeats and a day of the worker's minute samples.

About one room in twenty has a problem, spread over the kinds an operator meets: silent,
broken, throttled, never synced, failing, behind, an error, polled instead of subscribed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

RESERVATIONS_PER_ROOM = 10
DONE_ROWS_PER_ROOM = 4
# every PROBLEM_EVERY-th room has a problem, its kind chosen in turn from PROBLEMS
PROBLEM_EVERY = 20
PROBLEMS = (
    "silent",
    "broken",
    "throttled",
    "never synced",
    "failed",
    "behind",
    "error",
    "polling",
)


@dataclass(frozen=True)
class Fleet:
    rooms: int
    now: datetime

    def mailbox(self, index: int) -> str:
        return f"room-{index:06d}@bench.example"

    def problem(self, index: int) -> str | None:
        if index % PROBLEM_EVERY:
            return None
        return PROBLEMS[(index // PROBLEM_EVERY) % len(PROBLEMS)]

    def protocol(self, index: int) -> str:
        return "graph" if index % 5 == 1 or self.problem(index) == "polling" else "ews"


COLUMNS = {
    "room": (
        "mailbox",
        "protocol",
        "needs_resync",
        "resync_reason",
        "last_synced_at",
        "last_error",
        "last_error_at",
        "created_at",
        "paused_until",
        "poll_reason",
        "poll_detail",
        "poll_since",
    ),
    "subscription": (
        "subscription_id",
        "protocol",
        "mailbox",
        "state",
        "status_frequency",
        "created_at",
        "last_event_at",
        "retired_at",
        "last_error",
        "expires_at",
    ),
    "sync_notification": (
        "received_at",
        "protocol",
        "subscription_id",
        "event_type",
        "event_key",
        "state",
        "attempts",
        "processed_at",
        "last_error",
    ),
    "reservation": (
        "mailbox",
        "uid",
        "item_id",
        "item_type",
        "subject",
        "start_at",
        "end_at",
        "response_state",
        "last_synced_at",
    ),
    "process_heartbeat": ("kind", "protocol", "host", "pid", "started_at", "last_beat"),
    "fleet_sample": ("minute_at", "process", "received", "worked", "rooms_out_of_sync", "calls"),
    "room_out_of_sync": ("mailbox", "since", "kind"),
}


def rooms(fleet: Fleet) -> Iterator[tuple[Any, ...]]:
    now = fleet.now
    for i in range(fleet.rooms):
        kind = fleet.problem(i)
        never = kind == "never synced"
        error = {"error": "resync: ErrorServerBusy", "failed": "ErrorItemCorrupt"}.get(kind or "")
        polled = kind == "polling"
        yield (
            fleet.mailbox(i),
            fleet.protocol(i),
            never or polled,
            "new room" if never else None,
            None if never else now - timedelta(minutes=30),
            error,
            now - timedelta(minutes=5) if error else None,
            now - timedelta(days=1),
            now + timedelta(minutes=10) if kind == "throttled" else None,
            "access denied" if polled else None,
            "403 ErrorAccessDenied" if polled else None,
            now - timedelta(hours=1) if polled else None,
        )


def subscriptions(fleet: Fleet) -> Iterator[tuple[Any, ...]]:
    now, day = fleet.now, timedelta(days=1)
    for i in range(fleet.rooms):
        kind, protocol, mailbox = fleet.problem(i), fleet.protocol(i), fleet.mailbox(i)
        frequency = 15 if protocol == "ews" else None
        yield (f"OLD-{i}", protocol, mailbox, "retired", frequency, now - 3 * day,
               now - day, now - day, "renewed", None)  # fmt: skip
        if kind in ("never synced", "polling"):
            continue
        heard = now - (timedelta(hours=2) if kind == "silent" else timedelta(minutes=2))
        state, why = ("broken", "ErrorReadEventsFailed") if kind == "broken" else ("active", None)
        yield (f"SUB-{i}", protocol, mailbox, state, frequency, now - day, heard, None, why,
               now + day)  # fmt: skip


def notifications(fleet: Fleet) -> Iterator[tuple[Any, ...]]:
    now, key = fleet.now, 0
    for i in range(fleet.rooms):
        kind, protocol = fleet.problem(i), fleet.protocol(i)
        subscription = f"SUB-{i}" if kind not in ("never synced", "polling") else f"OLD-{i}"
        for n in range(DONE_ROWS_PER_ROOM):
            key += 1
            at = now - timedelta(minutes=10 * (n + 1))
            yield (at, protocol, subscription, "StatusEvent" if n % 2 else "ModifiedEvent",
                   key.to_bytes(8, "big"), "done", 1, at, None)  # fmt: skip
        if kind in ("behind", "failed") or i % 97 == 3:  # a few rows wait everywhere
            key += 1
            at = now - timedelta(minutes=20 if kind == "behind" else 1)
            state = "failed" if kind == "failed" else "pending"
            yield (at, protocol, subscription, "ModifiedEvent", key.to_bytes(8, "big"), state,
                   1, now - timedelta(minutes=2) if state == "failed" else None,
                   "ErrorItemCorrupt" if state == "failed" else None)  # fmt: skip


def reservations(fleet: Fleet) -> Iterator[tuple[Any, ...]]:
    now = fleet.now
    for i in range(fleet.rooms):
        mailbox = fleet.mailbox(i)
        for n in range(RESERVATIONS_PER_ROOM):
            start = now + timedelta(hours=3 * n)
            yield (mailbox, f"UID-{i}-{n}", f"ITEM-{i}-{n}", "Single", f"Meeting {n}", start,
                   start + timedelta(hours=1), "Accept", now)  # fmt: skip


def heartbeats(fleet: Fleet) -> Iterator[tuple[Any, ...]]:
    started = fleet.now - timedelta(hours=1)
    for n, (kind, protocol) in enumerate(
        [("worker", "ews"), ("manager", "ews"), ("worker", "graph"), ("manager", "graph")]
    ):
        yield (kind, protocol, "bench-host", 1000 + n, started, fleet.now)


def samples(fleet: Fleet) -> Iterator[tuple[Any, ...]]:
    minute = fleet.now.replace(second=0, microsecond=0)
    troubled = fleet.rooms // PROBLEM_EVERY
    for m in range(1, 24 * 60):
        yield (minute - timedelta(minutes=m), "bench-host:1000", 40, 40, troubled, 12)


def out_of_sync(fleet: Fleet) -> Iterator[tuple[Any, ...]]:
    for i in range(0, fleet.rooms, PROBLEM_EVERY):
        yield (fleet.mailbox(i), fleet.now - timedelta(minutes=30), fleet.problem(i) or "")


ROWS = {
    "room": rooms,
    "subscription": subscriptions,
    "sync_notification": notifications,
    "reservation": reservations,
    "process_heartbeat": heartbeats,
    "fleet_sample": samples,
    "room_out_of_sync": out_of_sync,
}


def fill_sqlite(path: str, fleet: Fleet) -> None:
    """The rows, through sqlite3 with pushsync's own way of storing values (ISO-8601 UTC text,
    booleans as 0/1)."""
    connection = sqlite3.connect(path)
    try:
        for table, make in ROWS.items():
            columns = COLUMNS[table]
            marks = ", ".join("?" for _ in columns)
            statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
            connection.executemany(statement, (_sqlite_row(row) for row in make(fleet)))
        connection.commit()
        connection.execute("ANALYZE")
    finally:
        connection.close()


def _sqlite_row(row: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        value.astimezone(UTC).isoformat()
        if isinstance(value, datetime)
        else int(value)
        if isinstance(value, bool)
        else value
        for value in row
    )


def fill_postgresql(url: str, fleet: Fleet) -> None:
    """The rows, through COPY."""
    with psycopg.connect(url) as connection:
        for table, make in ROWS.items():
            columns = ", ".join(COLUMNS[table])
            with connection.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in make(fleet):
                    copy.write_row(row)
        connection.commit()
        connection.execute("ANALYZE")
