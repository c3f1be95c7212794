"""A write budget that several processes draw on: Graph's subscription write limit.

https://learn.microsoft.com/graph/throttling-limits (subscription service limits; §5a)

Graph allows an app 500 subscription writes (create, renew, delete) per 20 seconds in one
tenant, however many manager processes that app runs. So the budget lives in the database:
a row per app and tenant (`key`), locked by every draw, and a row per permit drawn. A permit
counts from the moment it is drawn until `window` seconds after the write it allowed has been
answered (`release`, a moment after): the request reached Graph somewhere in between, so
however late or early it arrived, no `window` of Graph's holds more than `limit` of our
writes. A permit never released (its process died) counts until `lease` seconds after its draw.

The same row holds a tenant-wide Retry-After (`hold`): one manager told to wait makes all of
them wait. Times are the database's clock (seconds since 1970), the one clock all processes
share.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pushsync.errors import StorageError
from pushsync.store.connector import Connector, Session


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

    async def release(self, permit_ids: Sequence[str]) -> None:
        """The writes these permits allowed have been answered: each counts `window` seconds
        more, from now (a moment after its answer: on the safe side)."""
        async with self._connector.session() as session:
            params = {"permit_ids": list(permit_ids), "window": self.window}
            await session.execute("release_write_permits", params)

    async def hold(self, seconds: float) -> None:
        """Graph asked this app to wait `seconds` in this tenant: no draw until then."""
        async with self._connector.session() as session:
            await session.execute("hold_write_budget", {"key": self.key, "seconds": seconds})
