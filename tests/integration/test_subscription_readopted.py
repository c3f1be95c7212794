"""A subscription Graph hands back on a 409 after we had retired it lives again (both engines):
recording it twice must not fail on its primary key, which stopped the worker."""

from __future__ import annotations

from datetime import timedelta

from pushsync.store import Connector
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0

ROOM = "room-1@example.org"


async def test_a_retired_subscription_recorded_again_is_active(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "graph", T0)
    record = {"protocol": "graph", "watermark": None, "status_frequency": None}
    await subscriptions.record(ROOM, "sub-a", now=T0, expires_at=T0 + timedelta(days=3), **record)
    await subscriptions.record(ROOM, "sub-b", now=T0, replaces="sub-a", **record)
    assert {s.subscription_id for s in await subscriptions.live()} == {"sub-b"}

    later = T0 + timedelta(hours=1)
    expires = later + timedelta(days=6)
    await subscriptions.record(ROOM, "sub-a", now=later, expires_at=expires, **record)

    async with connector.session() as session:
        rows = await session.fetch_all("live_subscriptions", {})
    again = {row["subscription_id"]: row for row in rows}["sub-a"]
    assert again["state"] == "active" and again["retired_at"] is None
    assert again["replaced_by"] is None
