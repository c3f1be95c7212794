"""A write budget that several processes draw on: Graph's subscription write limit.

https://learn.microsoft.com/graph/throttling-limits (subscription service limits; §5a)

Graph allows an app 500 subscription writes (create, renew, delete) per 20 seconds in one
tenant, however many manager processes that app runs. So the budget lives in the database:
a row per app and tenant (`key`), locked by every draw, and a row per permit drawn. A permit
counts from the moment it is drawn until `window` seconds after Graph counted the write it
allowed, which is when the request arrived: no `window` of Graph's then holds more than `limit`
of our writes. We do not see the arrival; we see when the request had been sent in full, and
it arrives within the network's one-way delay after that (`SENT_MARGIN`). So a write known to
have been sent (and answered: graph/client.py `Sent`) counts until `window` + `SENT_MARGIN`
after it was sent; one not known to have been (an error before sending, no answer) until
`window` after `release`, a moment after its answer, when it had surely arrived. Counting from
the answer cost every permit the write's whole latency, Graph validating the notification URL
included: 22.4 s a cycle instead of 20 in bench/fleet (2,000 rooms, x5: onboarding 1.25x its
minimum). A permit never released (its process died) counts until `lease` seconds after its
draw.

The same row holds a tenant-wide Retry-After (`hold`): one manager told to wait makes all of
them wait. Times are the database's clock (seconds since 1970), the one clock all processes
share.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from pushsync.errors import StorageError
from pushsync.store.connector import Connector, Session

# Seconds a request may take from being sent in full to being counted by Graph: the network's
# one-way delay (tens of milliseconds to Graph, some 150 across an ocean), one lost segment
# sent again (Linux waits at least 200 ms), and Graph handing it on inside (not documented).
# Strictly it covers how much longer an earlier write's way may be than a later one's, which
# a steady way keeps far smaller. Each permit's cycle is the window and this: 1.25 % of 20 s.
SENT_MARGIN = 0.25


@dataclass(frozen=True, slots=True)
class Draw:
    """What a draw got: permits, or (none) how long to wait before drawing again."""

    permit_ids: tuple[str, ...] = ()
    wait: float = 0.0  # seconds; 0 with permits
    held: bool = False  # the wait is a Retry-After Graph gave, not a full budget


class WriteBudget:
    def __init__(
        self,
        connector: Connector,
        key: str,
        *,
        limit: int,
        window: float,
        lease: float,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a write budget needs a limit of at least 1 and a positive window")
        self._connector = connector
        self.key = key
        self.limit = limit
        self.window = window  # seconds
        self._lease = max(lease, window)  # seconds a permit counts if it is never released

    async def draw(self, count: int = 1) -> Draw:
        """Up to `count` permits, as many as the budget has, unless a Retry-After holds it;
        else the wait. One transaction however many: a process draws for all its waiting
        writes at once."""
        async with self._connector.session() as session:
            return await self._draw(session, count)

    async def _draw(self, session: Session, count: int) -> Draw:
        budget = await session.fetch_one("lock_write_budget", {"key": self.key})
        if budget is None:  # an UPSERT … RETURNING always returns its row
            raise StorageError(f"the write budget {self.key!r} returned no row")
        now, held_until = float(budget["now"]), float(budget["held_until"])
        if held_until > now:
            return Draw((), held_until - now, held=True)
        await session.execute("drop_expired_write_permits", {"key": self.key, "now": now})
        in_use = await session.fetch_one("write_permits_in_use", {"key": self.key})
        used = int(in_use["used"]) if in_use else 0
        if used >= self.limit:
            first_free = float(in_use["first_free"]) if in_use else now
            return Draw((), max(first_free - now, 0.0))
        permit_ids = tuple(uuid.uuid4().hex for _ in range(min(count, self.limit - used)))
        expires_at = now + self._lease
        rows = [{"permit_id": p, "key": self.key, "expires_at": expires_at} for p in permit_ids]
        await session.execute_many("insert_write_permit", rows)
        return Draw(permit_ids)

    async def release(self, sent_ago: Mapping[str, float | None]) -> None:
        """The writes these permits allowed are over: each permit counts until `window` +
        `SENT_MARGIN` after its request was sent (`sent_ago` it seconds before now), or, not
        known to have been sent (None), `window` from now; never longer than that, since the
        request had arrived by its answer, and the answer came before this. The database's
        clock says "now" (each process's own may differ); the caller's only measures how long
        ago, so a moment lost between the two makes a permit count longer, the safe side."""
        rows = [
            {"permit_id": permit_id, "counts_for": self.window - _credit(ago)}
            for permit_id, ago in sent_ago.items()
        ]
        async with self._connector.session() as session:
            await session.execute_many("release_write_permit", rows)

    async def hold(self, seconds: float) -> None:
        """Graph asked this app to wait `seconds` in this tenant: no draw until then."""
        async with self._connector.session() as session:
            await session.execute("hold_write_budget", {"key": self.key, "seconds": seconds})


def _credit(sent_ago: float | None) -> float:
    """Seconds less than `window` from now a released permit counts."""
    return 0.0 if sent_ago is None else max(sent_ago - SENT_MARGIN, 0.0)
