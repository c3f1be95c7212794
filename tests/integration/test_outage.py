"""The database connection is cut under load: 503 meanwhile, never OK; afterwards every
notification the client retried is stored exactly once.

The receiver reaches PostgreSQL through a TCP proxy the test closes and reopens; the shared
server itself keeps running for everyone else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pushsync.store import connect
from pushsync.store.migrations import upgrade
from tests.integration.helpers import query
from tests.integration.receiver import Answer, Receiver, TcpProxy, send_all, through

SENDERS, EACH = 16, 40
pytestmark = pytest.mark.postgres


@pytest.fixture
def proxy(postgres_schema_url: str) -> Iterator[TcpProxy]:
    parts = urlsplit(postgres_schema_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    proxy.start()
    yield proxy
    proxy.close()


@pytest.fixture
async def receiver(
    postgres_schema_url: str, proxy: TcpProxy, tmp_path: Path
) -> AsyncIterator[Receiver]:
    connector = connect(postgres_schema_url)
    await connector.open()
    await upgrade(connector)
    await connector.close()
    receiver = Receiver(through(postgres_schema_url, proxy.port), tmp_path)
    receiver.start()
    yield receiver
    receiver.stop()


async def wait_for(condition: Callable[[], bool], what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def test_cut_connection_gives_503_then_every_retried_notification_once(
    receiver: Receiver, proxy: TcpProxy, postgres_schema_url: str
) -> None:
    answers: list[Answer] = []
    load = asyncio.create_task(send_all([receiver.url], SENDERS, EACH, answers))

    await wait_for(lambda: sum(a.ok for a in answers) >= 150, "the load to get going")
    await asyncio.to_thread(proxy.cut)
    cut_at = time.monotonic()
    await wait_for(
        lambda: sum(a.status == 503 and a.sent_at > cut_at for a in answers) >= 5,
        "503 answers during the outage",
    )
    restored_at = time.monotonic()
    await asyncio.to_thread(proxy.restore)
    await asyncio.wait_for(load, 120)

    during = [a for a in answers if a.sent_at > cut_at and a.answered_at < restored_at]
    assert during, "no request fell inside the outage"
    assert not [a for a in during if a.ok], "answered OK while the database was unreachable"
    assert {a.status for a in during} <= {503}
    sent = {a.watermark for a in answers}
    assert len(sent) == SENDERS * EACH
    assert {a.watermark for a in answers if a.ok} == sent, "every notification ended OK"
    stored = query(postgres_schema_url, "SELECT watermark FROM sync_notification")
    watermarks = [row["watermark"] for row in stored]
    assert len(watermarks) == len(set(watermarks)), "a retried notification was stored twice"
    assert set(watermarks) == sent
