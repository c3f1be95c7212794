"""The worker's back-off while a protocol's token authority is away (docs/graph.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from pushsync.errors import TokenUnavailable
from pushsync.store import connect
from pushsync.store.notification_queue import NotificationQueue
from pushsync.store.reservation_book import Reservations
from pushsync.store.subscriptions import Subscriptions
from pushsync.worker.loop import OUTAGE_FIRST_WAIT, OUTAGE_MAX_WAIT, Worker


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_failures_during_an_outage_share_its_wait_and_later_ones_double_it() -> None:
    connector = connect("sqlite:///unused.db")  # never opened: no call reaches a database
    clock = Clock()
    worker = Worker(
        NotificationQueue(connector),
        Reservations(connector),
        Subscriptions(connector),
        {},
        clock=clock,
    )
    away = TokenUnavailable("token authority unreachable: ConnectionError")
    first = worker._outage("graph", away)
    for _ in range(50):  # the other mailboxes of the same batch fail as well
        assert worker._outage("graph", away) == first
    assert first - clock.now == OUTAGE_FIRST_WAIT
    assert worker.outage_until("graph") == first and worker.outage_until("ews") is None

    waits = []
    for _ in range(12):
        clock.now = worker.outage_until("graph") or clock.now
        waits.append(worker._outage("graph", away) - clock.now)
    assert waits[:3] == [OUTAGE_FIRST_WAIT * 2, OUTAGE_FIRST_WAIT * 4, OUTAGE_FIRST_WAIT * 8]
    assert waits[-1] == OUTAGE_MAX_WAIT
    assert worker.stats.unavailable == 13
