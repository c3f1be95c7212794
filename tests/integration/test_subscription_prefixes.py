"""The listing's id prefixes, on both engines: each printed id's shortest prefix (at least 12
characters) that names it alone among every recorded subscription, retired ones too, read from
its neighbours in the table rather than from every id; and each prefix finds its id again."""

from __future__ import annotations

from pushsync.store import Connector
from pushsync.store.operator_lookup import MIN_PREFIX, find_subscription, subscription_prefixes
from pushsync.store.subscriptions import Subscriptions
from tests.integration.helpers import T0

# EWS ids share a long head (the server's name, base64); mixed case, as in real ids
IDS = [
    "FwBhc2hleDE1LmV4Y2gwMzUubG9jYWwQAAAAaaaa",
    "FwBhc2hleDE1LmV4Y2gwMzUubG9jYWwQAAAAaaab",
    "FwBhc2hleDE1LmV4Y2gwMzUubG9jYWwQAAAAZzzz",
    "FwBhc2hleDE1LmV4Y2gwMzUubG9jYWwQAAAA_xyz",
    "FwBhc2hleDE1LmV4Y2gwMzUubG9jYWwRBBBB",
    "aaaaaaaaaaaaaaaa-graph-1",
    "AAAAAAAAAAAAAAAA-graph-2",
]


def plain_prefixes(ids: list[str]) -> dict[str, str]:
    """What the listing must print, worked out the long way: the shortest prefix from
    MIN_PREFIX on that no other id starts with."""
    return {
        current: next(
            current[:n]
            for n in range(MIN_PREFIX, len(current) + 1)
            if not any(other.startswith(current[:n]) for other in ids if other != current)
        )
        for current in ids
    }


async def test_each_printed_id_gets_its_shortest_unique_prefix(connector: Connector) -> None:
    subscriptions = Subscriptions(connector)
    for n, subscription_id in enumerate(IDS):
        await subscriptions.record(
            f"room-{n}@contoso.example", subscription_id, protocol="ews", watermark="W0",
            status_frequency=15, now=T0,
        )  # fmt: skip
    await subscriptions.mark_gone(IDS[1], "retired by the test")  # still recorded: still counts

    shown = [IDS[0], IDS[2], IDS[3], IDS[5], IDS[6]]
    prefixes = await subscription_prefixes(connector, shown)

    expected = plain_prefixes(IDS)
    assert prefixes == {i: expected[i] for i in shown}
    for subscription_id, prefix in prefixes.items():
        assert (await find_subscription(connector, prefix)).subscription_id == subscription_id
    assert await subscription_prefixes(connector, []) == {}
