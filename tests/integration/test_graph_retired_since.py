"""Whether a Graph subscription was retired since a moment (both engines): the Graph manager
lists Graph's subscriptions, 50,000 at fleet size, only when one may wait to be DELETEd."""

from __future__ import annotations

from datetime import timedelta

from pushsync.store import Connector
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0

ROOM = "room-1@example.org"


async def test_a_retirement_is_seen_from_its_moment_on_and_per_protocol(
    connector: Connector,
) -> None:
    subscriptions = Subscriptions(connector)
    await subscriptions.ensure_rooms([ROOM], "graph", T0)
    record = {"protocol": "graph", "watermark": None, "status_frequency": None}
    await subscriptions.record(ROOM, "sub-a", now=T0, **record)
    assert not await subscriptions.retired_since("graph", T0 - timedelta(hours=1))

    later = T0 + timedelta(minutes=5)
    await subscriptions.record(ROOM, "sub-b", now=later, replaces="sub-a", **record)

    assert await subscriptions.retired_since("graph", later)
    assert await subscriptions.retired_since("graph", T0)
    assert not await subscriptions.retired_since("graph", later + timedelta(seconds=1))
    assert not await subscriptions.retired_since("ews", T0)
