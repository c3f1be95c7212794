"""`pushsync notifications list --state failed` shows an operator why rows gave up."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

from pushsync.store import connect
from pushsync.store.migrations import upgrade
from pushsync.store.notification_queue import NotificationQueue, QueuePolicy
from tests.acceptance.conftest import pushsync_command
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
