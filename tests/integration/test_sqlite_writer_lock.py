"""SQLite's write transactions wait for the writers' lock that other processes hold.

The receiver's `transaction` runs on the event loop and hands only the wait for a busy lock to
the connector's thread; these tests hold the lock from outside, as another process would.
"""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pushsync.errors import StorageError
from pushsync.store.connector import Connector
from pushsync.store.inbox import Inbox, Verdict
from pushsync.store.sqlite import SQLiteConnector
from tests.integration.helpers import T0, event, query


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "pushsync.db"


@pytest.fixture
async def inbox(sqlite_connector: Connector) -> AsyncIterator[Inbox]:
    assert isinstance(sqlite_connector, SQLiteConnector)
    inbox = Inbox(sqlite_connector)
    await inbox.start()
    yield inbox
    await inbox.stop()


@pytest.fixture
def other_writer(database: Path) -> Iterator[int]:
    """The writers' lock file, opened the way another pushsync process opens it."""
    fd = os.open(f"{database}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def rows(database: Path) -> int:
    return int(
        query(f"sqlite:///{database}", "SELECT count(*) AS n FROM sync_notification")[0]["n"]
    )


async def test_a_commit_waits_for_the_other_writer_and_then_goes_through(
    inbox: Inbox, database: Path, other_writer: int
) -> None:
    fcntl.flock(other_writer, fcntl.LOCK_EX)
    append = asyncio.ensure_future(inbox.append([event(1)], T0))
    await asyncio.sleep(0.3)

    assert not append.done()  # waiting for the lock, and the event loop still runs
    assert rows(database) == 0

    fcntl.flock(other_writer, fcntl.LOCK_UN)
    assert await asyncio.wait_for(append, 5) is Verdict.STORED
    assert rows(database) == 1


async def test_a_writer_stopped_while_waiting_gives_the_lock_back_once_it_gets_it(
    inbox: Inbox, database: Path, other_writer: int
) -> None:
    fcntl.flock(other_writer, fcntl.LOCK_EX)
    append = asyncio.ensure_future(inbox.append([event(1)], T0))
    await asyncio.sleep(0.2)
    await inbox.stop()  # cancels the writer while its thread waits for the lock

    fcntl.flock(other_writer, fcntl.LOCK_UN)
    await asyncio.sleep(0.3)  # the thread takes the lock now, and must release it

    fcntl.flock(other_writer, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises if still held
    fcntl.flock(other_writer, fcntl.LOCK_UN)
    with pytest.raises(StorageError):
        append.result()
    assert rows(database) == 0


async def test_requests_that_arrive_while_waiting_for_the_lock_join_that_commit(
    inbox: Inbox, database: Path, other_writer: int
) -> None:
    fcntl.flock(other_writer, fcntl.LOCK_EX)
    first = asyncio.ensure_future(inbox.append([event(1)], T0))
    await asyncio.sleep(0.2)  # the writer has taken `first` and waits for the lock
    later = [asyncio.ensure_future(inbox.append([event(n)], T0)) for n in (2, 3)]
    await asyncio.sleep(0.1)

    fcntl.flock(other_writer, fcntl.LOCK_UN)
    verdicts = await asyncio.wait_for(asyncio.gather(first, *later), 5)

    assert verdicts == [Verdict.STORED] * 3
    assert rows(database) == 3
    assert inbox.commits == 1  # not two: the later ones did not wait for a second turn


async def test_a_writer_outside_pushsync_makes_the_commit_wait_off_the_event_loop(
    inbox: Inbox, database: Path
) -> None:
    outside = sqlite3.connect(database, isolation_level=None)  # takes no writer lock
    outside.execute("BEGIN IMMEDIATE")
    append = asyncio.ensure_future(inbox.append([event(1)], T0))
    ticks = [time.monotonic()]
    for _ in range(30):
        await asyncio.sleep(0.01)
        ticks.append(time.monotonic())

    assert not append.done()
    # the event loop never sat in SQLite's busy wait (5 s by default)
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.2

    outside.execute("COMMIT")
    outside.close()
    assert await asyncio.wait_for(append, 5) is Verdict.STORED
    assert rows(database) == 1
