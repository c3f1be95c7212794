"""The doctor's self-test row is removed by its subscription id, and nothing else, on both
engines."""

from __future__ import annotations

from pushsync.store import Connector
from pushsync.store.operator_lookup import forget_notifications_of
from tests.integration.helpers import add_rows, event


async def test_only_the_self_test_subscriptions_rows_are_forgotten(connector: Connector) -> None:
    await add_rows(connector, [event(1, "pushsync-doctor-1"), event(2, "SUB-1"), event(3, "SUB-1")])

    assert await forget_notifications_of(connector, "pushsync-doctor-1") == 1
    assert await forget_notifications_of(connector, "pushsync-doctor-1") == 0
    async with connector.session() as session:
        left = await session.fetch_all(
            "notifications_newest", {"state": None, "room": None, "limit": 10}
        )
    assert sorted(row["subscription_id"] for row in left) == ["SUB-1", "SUB-1"]
