"""The notification INSERT is positional: one tuple (`INSERT_COLUMNS`) gives the order, and
both dialects' statement and `insert_values` follow it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from pushsync.model.notification import Notification
from pushsync.store.inbox import INSERT_COLUMNS, insert_values
from pushsync.store.queries import load_queries


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_statement_lists_the_columns_in_that_order(dialect: str) -> None:
    sql = load_queries(dialect)["insert_notification"]
    listed = re.search(r"INSERT INTO sync_notification \(([^)]*)\)", sql)
    assert listed is not None
    assert tuple(c.strip() for c in listed.group(1).split(",")) == INSERT_COLUMNS
    placeholders = sql.count("?") if dialect == "sqlite" else sql.count("%b")
    assert placeholders == len(INSERT_COLUMNS)


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
