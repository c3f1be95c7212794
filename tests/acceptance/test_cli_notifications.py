"""`pushsync notifications list --state failed` shows an operator why rows gave up."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from pushsync.store import connect
from pushsync.store.migrations import upgrade
from pushsync.store.notification_queue import NotificationQueue, QueuePolicy
from pushsync.store.subscriptions import Subscriptions
from tests.acceptance.conftest import pushsync_command, run_pushsync
from tests.integration.helpers import add_rows, event


async def _one_failed_row(url: str) -> None:
    connector = connect(url)
    await connector.open()
    try:
        await upgrade(connector)
        await add_rows(connector, [event(1), event(2)])
        queue = NotificationQueue(connector, owner="w", policy=QueuePolicy(max_attempts=1))
        claimed = await queue.claim(1)
        await queue.fail(claimed[0], "ErrorItemNotFound: gone for good")
    finally:
        await connector.close()


def test_failed_rows_and_their_last_error_are_listed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pushsync.db"
    asyncio.run(_one_failed_row(url))

    def listing(*args: str) -> str:
        command = pushsync_command("notifications", "list", "--database-url", url, *args)
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=True,
            env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
        )
        return result.stdout

    failed = listing("--state", "failed")
    assert "ErrorItemNotFound: gone for good" in failed
    assert "WM-SUB-1-2" not in failed and failed.count("failed") == 1
    assert "pending" in listing()


WIDE = {**os.environ, "COLUMNS": "300"}
LONG = "AAMkADk0MjM5NzQ1LTdlNjYtNDk4Ny1iMjQzLWMxZTc5ZTk4NmU1YgBGAAAAAAC"


async def _two_rooms(url: str) -> None:
    connector = connect(url)
    await connector.open()
    try:
        await upgrade(connector)
        subscriptions = Subscriptions(connector)
        for n, room in enumerate(("alpha@contoso.example", "beta@contoso.example")):
            await subscriptions.record(
                room, f"{LONG}-SUB-{n}", protocol="ews", watermark=None,
                status_frequency=15, now=datetime.now(UTC),
            )  # fmt: skip
        rows = [event(1, f"{LONG}-SUB-0"), event(2, f"{LONG}-SUB-1"), event(3, f"{LONG}-SUB-0")]
        await add_rows(connector, rows)
    finally:
        await connector.close()


def test_rows_are_newest_first_with_their_room_and_filtered_by_room(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pushsync.db"
    asyncio.run(_two_rooms(url))

    def ids(output: str) -> list[str]:
        return re.findall(r"^│\s*(\d+)\s", output, re.MULTILINE)

    everything = run_pushsync("notifications", "list", "--database-url", url, env=WIDE)
    assert ids(everything) == ["3", "2", "1"]
    assert "alpha@contoso.example" in everything and "beta@contoso.example" in everything
    alpha = run_pushsync(
        "notifications", "list", "--room", "ALPHA@contoso.example", "--database-url", url, env=WIDE
    )
    assert ids(alpha) == ["3", "1"] and "beta@" not in alpha
    pending = run_pushsync("notifications", "list", "--state", "pending", "--database-url", url)
    assert ids(pending) == ["3", "2", "1"]  # newest first with a state too
    assert f"{LONG}-SUB-0" not in everything  # cut by default …
    full = run_pushsync("notifications", "list", "--full-ids", "--database-url", url, env=WIDE)
    assert f"{LONG}-SUB-0" in full  # … whole on request
    none = run_pushsync("notifications", "list", "--room", "nobody@x", "--database-url", url)
    assert "no notifications for room nobody@x" in none
