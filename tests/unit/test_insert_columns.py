"""The notification INSERT is positional: one tuple (`INSERT_COLUMNS`) gives the order, and
both dialects' statement and `insert_values` follow it. So are a reservation plan's writes
(`UPSERT_COLUMNS`, `CHANGE_COLUMNS`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from pushsync.model.notification import Notification
from pushsync.model.reservation import Reservation
from pushsync.store.inbox import INSERT_COLUMNS, insert_values
from pushsync.store.queries import load_queries
from pushsync.store.reservation_book import CHANGE_COLUMNS, UPSERT_COLUMNS, upsert_values


def test_the_values_come_in_that_order() -> None:
    row = Notification(
        protocol="ews", subscription_id="S1", event_type="Moved", watermark="W2",
        previous_watermark="W1", event_time=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
        item_id="I", old_item_id="OLD", remote_addr="192.0.2.1",
    )  # fmt: skip
    values = dict(zip(INSERT_COLUMNS, insert_values(row, "2026-11-24T10:00:01+00:00"), strict=True))
    assert values["received_at"] == "2026-11-24T10:00:01+00:00"
    assert values["event_time"] == "2026-11-24T10:00:00+00:00"
    assert (values["item_id"], values["old_item_id"]) == ("I", "OLD")
    assert (values["watermark"], values["remote_addr"]) == ("W2", "192.0.2.1")
    assert values["event_key"] == row.event_key()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize(
    ("query", "table", "columns"),
    [
        ("insert_notification", "sync_notification", INSERT_COLUMNS),
        ("upsert_reservation", "reservation", UPSERT_COLUMNS),
        ("record_reservation_change", "reservation_change", CHANGE_COLUMNS),
    ],
)
def test_the_statement_lists_the_columns_in_that_order(
    dialect: str, query: str, table: str, columns: tuple[str, ...]
) -> None:
    sql = load_queries(dialect)[query]
    listed = re.search(rf"INSERT INTO {table} \(([^)]*)\)", sql)
    assert listed is not None
    assert tuple(c.strip() for c in listed.group(1).split(",")) == columns
    placeholders = sql.count("?") if dialect == "sqlite" else sql.count("%b")
    assert placeholders == len(columns)


def test_a_reservation_s_values_come_in_that_order() -> None:
    row = Reservation(
        mailbox="room@contoso.example", uid="U", original_start=None, item_id="I",
        item_type="single", start=datetime(2026, 12, 4, 9, tzinfo=UTC),
        end=datetime(2026, 12, 4, 10, tzinfo=UTC), subject="S", is_cancelled=True,
    )  # fmt: skip
    now = datetime(2026, 12, 4, 8, tzinfo=UTC)
    values = dict(zip(UPSERT_COLUMNS, upsert_values(row, now), strict=True))
    assert (values["start_at"], values["end_at"]) == (row.start, row.end)
    assert (values["subject"], values["is_cancelled"]) == ("S", True)
    assert values["last_synced_at"] == now
