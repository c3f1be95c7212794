"""What the worker needs of a protocol: one adapter per protocol, given by the composition root.

The worker knows no event name and no protocol rule; it loops over rows and asks the adapter
of their protocol (`ews/adapter.py`, `graph/adapter.py`) what they mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from pushsync.model.reservation import Changes, Observation, RoomSnapshot
from pushsync.store.connector import Row
from pushsync.store.notification_queue import Claimed


class CalendarSource(Protocol):
    """A protocol's way of reading a room's calendar (EWS or Graph)."""

    @property
    def calls(self) -> int:
        """Requests sent to Exchange or Graph so far."""

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]: ...

    async def observe_room(self, mailbox: str, cursor: str | None = None) -> RoomSnapshot:
        """The whole window; `cursor`, the room's stored one, may make the new one cheaper."""


@runtime_checkable
class IncrementalSource(Protocol):
    """A source that can resync a room from a stored cursor (EWS: a sync state; Graph: the
    delta link). Each read hands back the cursor it ends on (`Changes.cursor`,
    `RoomSnapshot.cursor`), never kept aside in the source: several reads of one room may be
    under way at once."""

    async def observe_since(self, mailbox: str, cursor: str) -> Changes | None:
        """Changes since the cursor; None when a full round is needed (expired, too old)."""


class ProtocolAdapter(Protocol):
    """One protocol's rules for the worker."""

    @property
    def source(self) -> CalendarSource: ...

    @property
    def periodic_reads_whole(self) -> bool:
        """Whether the periodic resync reads the whole window (else it starts from the room's
        cursor, and the source itself asks for a full round when the cursor no longer
        serves)."""

    def reports_change(self, event_type: str) -> bool:
        """False for rows that tell of the subscription only (heartbeats, errors, lifecycle)."""

    def items(self, rows: Sequence[Claimed]) -> tuple[set[str], list[str]]:
        """The item ids the rows report gone, and those to fetch (sorted, none of the gone)."""

    async def changes_since_cursor(
        self, mailbox: str, rows: Sequence[Claimed], fetch: Sequence[str]
    ) -> Changes | None:
        """What changed since the room's cursor when the rows say only that (the worker
        stores the cursor once applied); None when the named items are all there is."""

    async def note_subscription(
        self, mailbox: str, subscription_id: str, rows: Sequence[Claimed], record: Row | None
    ) -> bool:
        """What one subscription's rows (arrival order) say of it: breaks, gaps, resyncs.
        True when the worker is to note it heard at the last row's watermark."""
