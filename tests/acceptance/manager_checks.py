"""What the subscription-manager tests read: the subscription table and the simulator's view."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from pushsync.simulator import Meeting, SimulatorThread
from pushsync.simulator.push import Delivery
from tests.acceptance.conftest import ServerProcess
from tests.acceptance.simulated_exchange import ADA


def subscription_rows(server: ServerProcess) -> dict[str, sqlite3.Row]:
    rows = server.rows("SELECT * FROM subscription WHERE protocol = 'ews' ORDER BY created_at")
    return {row["subscription_id"]: row for row in rows}


def active_ids(server: ServerProcess) -> dict[str, str]:
    """mailbox -> id of its active subscription."""
    return {
        row["mailbox"]: sid
        for sid, row in subscription_rows(server).items()
        if row["state"] == "active"
    }


def room_row(server: ServerProcess, mailbox: str) -> sqlite3.Row:
    rows = server.rows(f"SELECT * FROM room WHERE mailbox = '{mailbox}'")
    assert rows, f"no room {mailbox}"
    return rows[0]


def simulator_states(thread: SimulatorThread) -> dict[str, str]:
    """subscription id -> the simulator's state of it (active, dead, unsubscribed, failed)."""

    def read() -> dict[str, str]:
        assert thread.sim.push is not None
        return {sid: s.state.value for sid, s in thread.sim.push.subscriptions.items()}

    return thread.call(read)


def deliveries(thread: SimulatorThread, subscription_id: str) -> list[Delivery]:
    def read() -> list[Delivery]:
        assert thread.sim.push is not None
        return [d for d in thread.sim.push.deliveries if d.subscription_id == subscription_id]

    return thread.call(read)


def failed(delivery: Delivery) -> bool:
    return delivery.status not in ("OK", "Unsubscribe")


def moment(value: object) -> datetime:
    """A timestamp column as an aware datetime, whatever form SQLite kept it in."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def tomorrow_at_nine(thread: SimulatorThread) -> datetime:
    now = thread.call(thread.sim.clock.now)
    return now.replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=1)


def meeting(uid: str, start: datetime, hours: float = 1) -> Meeting:
    return Meeting(
        uid=uid,
        organizer=ADA,
        subject="Planning",
        start=start,
        end=start + timedelta(hours=hours),
        time_zone="Europe/Berlin",
    )
