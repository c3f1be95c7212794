"""Two receivers fill the table under load while four consumers drain it, on both engines."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from pushsync.store import connect
from pushsync.store.migrations import latest_version
from pushsync.store.notification_queue import NotificationQueue
from tests.integration.helpers import query
from tests.integration.receiver import Answer, Receiver, send_all

SENDERS, EACH, CONSUMERS = 32, 40, 4


@pytest.fixture
def receivers(database_url: str, tmp_path: Path) -> Iterator[list[Receiver]]:
    started = [Receiver(database_url, tmp_path) for _ in range(2)]
    try:
        for receiver in started:
            receiver.launch()  # both at once: their start-up migrations race on purpose
        for receiver in started:
            receiver.wait_ready()
        yield started
    finally:
        for receiver in started:
            receiver.stop()


async def consume(url: str, owner: str, load_done: asyncio.Event, processed: list[str]) -> None:
    """Claim, 'process' (record the watermark), complete; stop once the load is done and the
    queue is empty. Rows are committed before their sender hears OK, so after the last OK an
    empty claim means there is nothing left."""
    connector = connect(url)
    await connector.open()
    try:
        queue = NotificationQueue(connector, owner=owner)
        while True:
            finished = load_done.is_set()  # read before claiming, so no row can slip past
            claimed = await queue.claim(25)
            processed.extend(c.notification.watermark for c in claimed)
            if claimed:
                assert await queue.complete([c.id for c in claimed]) == len(claimed)
            elif finished:
                return
            else:
                await asyncio.sleep(0.02)
    finally:
        await connector.close()


async def test_every_acknowledged_row_is_processed_exactly_once(
    database_url: str, receivers: list[Receiver]
) -> None:
    answers: list[Answer] = []
    processed: list[str] = []
    load_done = asyncio.Event()

    async def load() -> None:
        try:
            await send_all([r.url for r in receivers], SENDERS, EACH, answers)
        finally:
            load_done.set()

    consumers = [
        consume(database_url, f"consumer-{n}", load_done, processed) for n in range(CONSUMERS)
    ]
    await asyncio.gather(load(), *consumers)

    acknowledged = {a.watermark for a in answers if a.ok}
    assert len(acknowledged) == SENDERS * EACH
    assert len(processed) == len(set(processed)), "a row was processed twice"
    assert set(processed) == acknowledged
    states = query(database_url, "SELECT state, count(*) AS n FROM sync_notification GROUP BY 1")
    assert [(s["state"], s["n"]) for s in states] == [("done", SENDERS * EACH)]
    dialect = "sqlite" if database_url.startswith("sqlite:") else "postgresql"
    (version,) = query(database_url, "SELECT max(version) AS v FROM schema_version")
    assert version["v"] == latest_version(dialect), "the receivers migrated the empty database"
