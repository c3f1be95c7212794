"""What an operator types, matched against the tables: subscription ids (whole, or by a
prefix that names one), and the shortest prefixes a listing can print for them to paste back.

A command given something that names nothing, or more than one thing, fails naming it and
changes nothing: it never reports success for something it did not do.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from pushsync.errors import PushsyncError
from pushsync.store.connector import Connector

# The listing never prints fewer characters than this: a prefix this long stays unique while
# the table grows by a few subscriptions, so yesterday's paste still works.
MIN_PREFIX = 12


class UnknownName(PushsyncError):
    """The id or room given names nothing pushsync knows, or more than one thing."""


@dataclass(frozen=True)
class SubscriptionRef:
    subscription_id: str
    protocol: str
    state: str | None  # None: not in the subscription table, only seen in notifications
    mailbox: str | None = None


async def find_subscription(connector: Connector, given: str) -> SubscriptionRef:
    """The subscription `given` names: its whole id, an unambiguous prefix of a recorded one,
    or the whole id of one whose notifications arrived although it was never recorded."""
    given = given.strip()
    if not given:
        raise UnknownName("no subscription id given")
    async with connector.session() as session:
        rows = await session.fetch_all("subscriptions_by_prefix", {"prefix": given})
        exact = [row for row in rows if row["subscription_id"] == given]
        if exact or len(rows) == 1:
            row = (exact or rows)[0]
            return SubscriptionRef(
                row["subscription_id"], row["protocol"], row["state"], row["mailbox"]
            )
        if rows:
            raise UnknownName(_ambiguous(given, [row["subscription_id"] for row in rows]))
        seen = await session.fetch_one("notified_protocol", {"subscription_id": given})
    if seen is None:
        raise UnknownName(
            f"no subscription {given!r}: not in the subscription table (by id or prefix) and "
            "no notification came from it; `pushsync subscriptions list` shows the ids"
        )
    return SubscriptionRef(given, str(seen["protocol"]), None)


def _ambiguous(given: str, candidates: list[str]) -> str:
    shown = ", ".join(candidates[:5]) + (", …" if len(candidates) > 5 else "")
    return f"subscription id prefix {given!r} matches several, give more of it: {shown}"


async def retire_subscription(connector: Connector, ref: SubscriptionRef, now: datetime) -> None:
    """Mark it retired. An orphan (only seen in notifications) gets a row, so that the
    receiver answers Exchange Unsubscribe at its next notification."""
    params = {"subscription_id": ref.subscription_id, "now": now}
    async with connector.session() as session:
        if ref.state is None:
            await session.execute("retire_subscription", params | {"protocol": ref.protocol})
        else:
            await session.execute("retire_known_subscription", params)


async def subscription_prefixes(connector: Connector, ids: Iterable[str]) -> dict[str, str]:
    """The shortest prefix (at least MIN_PREFIX long) that names each of `ids` alone among
    every recorded subscription, for listings: read from each id's neighbours in sorted order,
    so a page of a listing costs the same whatever the number of subscriptions."""
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    async with connector.session() as session:
        rows = await session.fetch_all("subscription_neighbours", {"ids": wanted})
    prefixes = {}
    for row in rows:
        current = str(row["subscription_id"])
        neighbours = [str(n) for n in (row["before"], row["after"]) if n is not None]
        shared = max((_common(current, other) for other in neighbours), default=0)
        prefixes[current] = current[: max(shared + 1, MIN_PREFIX)]
    return prefixes


def _common(a: str, b: str) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


async def find_room(connector: Connector, given: str, configured: list[str]) -> str:
    """The room `given` names (any case): a configured room or one in the room table."""
    by_key = {mailbox.lower(): mailbox for mailbox in configured}
    if given.lower() in by_key:
        return by_key[given.lower()]
    async with connector.session() as session:
        row = await session.fetch_one("room_by_mailbox", {"mailbox": given})
    if row is None:
        raise UnknownName(
            f"unknown room {given!r}: not configured (PUSHSYNC_ROOMS, _ROOM_LISTS, "
            "_GRAPH_ROOMS, _EWS_ROOMS) and not in the room table"
        )
    return str(row["mailbox"])


async def room_failure(connector: Connector, mailbox: str, now: datetime) -> str:
    """Why a resync of this room did nothing: its last recorded error, or what else it can be."""
    async with connector.session() as session:
        row = await session.fetch_one("room_by_mailbox", {"mailbox": mailbox})
    until = row.get("paused_until") if row is not None else None
    if isinstance(until, datetime) and until.replace(tzinfo=until.tzinfo or UTC) > now:
        return f"throttled by Exchange; paused until {until:%Y-%m-%d %H:%M:%S}"
    if row is not None and row.get("last_error"):
        return str(row["last_error"])
    return "not resynced (no client for its protocol is configured, or it is being resynced)"


async def forget_notifications_of(connector: Connector, subscription_id: str) -> int:
    """Delete the rows of a subscription no room owns (the doctor's self-test); how many."""
    async with connector.session() as session:
        return await session.execute(
            "forget_notifications_of", {"subscription_id": subscription_id}
        )
