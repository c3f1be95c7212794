"""A notification that can never be stored gets its own 400 and harms no other request, on a
real receiver in front of each engine (issue #15).

- boundary values: the last value inside what the table holds is stored exactly, the first
  outside is a 400 naming the element, with no row, and both engines answer alike;
- a poisoned request inside a group commit: the database itself refuses it (a trigger; on
  PostgreSQL an error that is neither a constraint nor a data error), the batch is retried
  request by request, every valid neighbour is answered 200 and stored;
- a property: valid notifications, mutated, are never answered 5xx; a 200 stores exactly the
  rows the reference reading gives (tests/integration/ews_model.py), a 4xx stores nothing.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings

from tests.integration.ews_model import Request, expected_rows, mutated_requests, render
from tests.integration.ews_receiver import (
    EWS_HEADERS,
    EWS_PATH,
    Engine,
    engine,
    envelope,
    last_id,
    stored_since,
)
from tests.integration.helpers import query

__all__ = ["engine"]  # the module-scoped fixture: one receiver per engine for this module


def modified(
    timestamp: str = "2026-11-24T10:00:00Z",
    unread: str = "3",
    watermark: str = "WM",
    item: str = "F",
) -> str:
    return (
        "<t:SubscriptionId>SUB</t:SubscriptionId><t:ModifiedEvent>"
        f"<t:Watermark>{watermark}</t:Watermark><t:TimeStamp>{timestamp}</t:TimeStamp>"
        f'<t:FolderId Id="{item}" ChangeKey="CK"/><t:ParentFolderId Id="P"/>'
        f"<t:UnreadCount>{unread}</t:UnreadCount></t:ModifiedEvent>"
    )


INSIDE = [
    ({"timestamp": "0001-01-02T00:00:00Z"}, "event_time", datetime(1, 1, 2, tzinfo=UTC)),
    ({"timestamp": "0001-01-02T14:00:00+14:00"}, "event_time", datetime(1, 1, 2, tzinfo=UTC)),
    (
        {"timestamp": "9999-12-30T23:59:59.9999999Z"},
        "event_time",
        datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
    ),
    ({"timestamp": "9999-12-29T24:00:00Z"}, "event_time", datetime(9999, 12, 30, tzinfo=UTC)),
    ({"unread": "2147483647"}, "unread_count", 2**31 - 1),
    ({"unread": "-2147483648"}, "unread_count", -(2**31)),
    ({"unread": "+0002147483647"}, "unread_count", 2**31 - 1),
    ({"watermark": "W" * 512}, "watermark", "W" * 512),
    ({"watermark": "\u00a0W\u3000"}, "watermark", "\u00a0W\u3000"),
    ({"item": "I" * 512}, "folder_id", "I" * 512),
]

OUTSIDE = [
    ({"timestamp": "9999-12-31T23:30:00-01:00"}, "TimeStamp"),
    ({"timestamp": "0001-01-01T00:00:00+14:00"}, "TimeStamp"),
    ({"timestamp": "0001-01-01T23:59:59Z"}, "TimeStamp"),
    ({"timestamp": "9999-12-31T00:00:00Z"}, "TimeStamp"),
    ({"timestamp": "9999-12-30T24:00:00Z"}, "TimeStamp"),
    ({"timestamp": "2026-11-24 10:00:00Z"}, "TimeStamp"),
    ({"unread": "2147483648"}, "UnreadCount"),
    ({"unread": "-2147483649"}, "UnreadCount"),
    ({"unread": str(2**64)}, "UnreadCount"),
    ({"unread": "5_0"}, "UnreadCount"),
    ({"watermark": "W" * 513}, "Watermark"),
    ({"watermark": "AQAA<t:x/>AB9"}, "Watermark"),
    ({"item": "I" * 513}, "Id"),
]


def test_the_last_values_inside_are_stored_exactly(engine: Engine) -> None:
    for n, (parts, column, value) in enumerate(INSIDE):
        before = last_id(engine.url)
        response = engine.post(envelope(modified(**({"watermark": f"IN-{n}"} | parts))))
        assert response.status_code == 200, (parts, response.text)
        (row,) = stored_since(engine.url, before)
        assert row[column] == value, parts


def test_the_first_values_outside_are_refused_naming_the_element(engine: Engine) -> None:
    for parts, element in OUTSIDE:
        before = last_id(engine.url)
        response = engine.post(envelope(modified(**parts)))
        assert response.status_code == 400, (parts, response.text)
        assert element in response.text
        assert stored_since(engine.url, before) == [], parts
    log = engine.receiver.log.read_text()
    assert "detail=\"UnreadCount '18446744073709551616' is outside xs:int\"" in log
    assert engine.post(envelope(modified(watermark="AFTER"))).status_code == 200


@pytest.mark.postgres
def test_the_extreme_times_read_back_in_any_session_zone(postgres_schema_url: str) -> None:
    """Why the range keeps a day off year 1 and year 10000: psycopg reads a timestamptz in the
    session's zone, and every stored instant must be a datetime in every zone."""
    with psycopg.connect(postgres_schema_url, autocommit=True) as pg:
        pg.execute(b"CREATE TABLE t (at timestamptz)")
        pg.execute(
            b"INSERT INTO t VALUES ('0001-01-02T00:00:00Z'), ('9999-12-30T23:59:59.999999Z')"
        )
        for zone in ("Pacific/Kiritimati", "Etc/GMT+12", "America/Adak", "Asia/Kolkata"):
            pg.execute(f"SET TIME ZONE '{zone}'".encode())
            times = [row[0] for row in pg.execute(b"SELECT at FROM t ORDER BY at")]
            assert [t.astimezone(UTC) for t in times] == [
                datetime(1, 1, 2, tzinfo=UTC),
                datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC),
            ]
        pg.execute(b"INSERT INTO t VALUES ('0001-01-01T00:00:00Z')")
        pg.execute(b"SET TIME ZONE 'America/New_York'")
        with pytest.raises(psycopg.DataError):  # one day earlier: unreadable west of UTC
            pg.execute(b"SELECT at FROM t ORDER BY at LIMIT 1").fetchall()


POISON = "POISONED-15"
TRIGGERS = {
    # SQLite: a constraint error (RowRejected)
    "sqlite": (
        "CREATE TRIGGER IF NOT EXISTS poison_15 BEFORE INSERT ON sync_notification "
        f"WHEN NEW.watermark = '{POISON}' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
    ),
    # PostgreSQL: SQLSTATE P0001, neither a constraint nor a data error, and not an outage
    "postgresql": (
        "CREATE OR REPLACE FUNCTION poison_15() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.watermark = '{POISON}' THEN RAISE EXCEPTION 'poisoned row'; END IF; "
        "RETURN NEW; END $$; CREATE OR REPLACE TRIGGER poison_15 BEFORE INSERT ON "
        "sync_notification FOR EACH ROW EXECUTE FUNCTION poison_15()"
    ),
}
ROUNDS, VALID = 4, 40


async def _round(engine: Engine, number: int) -> tuple[list[tuple[str, int]], int]:
    """VALID notifications and one poisoned one, all at once; (watermark, status) of each."""
    watermarks = [f"R{number}-{n}" for n in range(VALID)]
    watermarks.insert(VALID // 2, POISON)
    limits = httpx.Limits(max_connections=len(watermarks))
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def send(watermark: str) -> tuple[str, int]:
            body = envelope(modified(watermark=watermark))
            response = await client.post(
                engine.receiver.url + EWS_PATH, content=body, headers=EWS_HEADERS
            )
            return watermark, response.status_code

        return list(await asyncio.gather(*(send(w) for w in watermarks))), len(watermarks)


def test_a_poisoned_request_in_a_group_commit_fails_alone(engine: Engine) -> None:
    query(engine.url, TRIGGERS[engine.name])
    try:
        before = last_id(engine.url)
        answers = []
        for number in range(ROUNDS):
            answers += asyncio.run(_round(engine, number))[0]
        stored = {row["watermark"] for row in stored_since(engine.url, before)}
    finally:
        query(
            engine.url,
            "DROP TRIGGER poison_15"
            + (" ON sync_notification" if engine.name == "postgresql" else ""),
        )
    assert {status for watermark, status in answers if watermark == POISON} == {400}
    valid = {watermark for watermark, _ in answers if watermark != POISON}
    assert {status for watermark, status in answers if watermark != POISON} == {200}
    assert stored == valid, "a valid neighbour of the poisoned request was not stored"
    log = engine.receiver.log.read_text()
    assert "retrying its" in log, "the poisoned request never shared a group commit"
    assert "reason=unstorable" in log


FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
CHECK = envelope(modified(watermark="CHECK"))


def test_mutated_notifications_get_a_4xx_or_exactly_their_rows(engine: Engine) -> None:
    @FUZZ
    @given(mutated_requests())
    def property(request: Request) -> None:
        query(engine.url, "DELETE FROM sync_notification")
        response = engine.post(envelope(render(request)))
        expected = expected_rows(request)
        stored = stored_since(engine.url, 0)
        assert response.status_code < 500, response.text
        if expected is None:
            assert 400 <= response.status_code < 500, (response.status_code, stored)
            assert stored == []
        else:
            assert response.status_code == 200, response.text
            assert stored == expected
        assert engine.post(CHECK).status_code == 200  # and the receiver still stores

    property()
