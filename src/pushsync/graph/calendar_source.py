"""How the worker learns a room's calendar over Graph: GET the notified event, the instances
of a series in the sync window, and a calendarView delta round to resync.

https://learn.microsoft.com/graph/api/event-get
https://learn.microsoft.com/graph/api/event-list-instances
https://learn.microsoft.com/graph/api/event-delta

PROTOCOL.md §7 over Graph: a notification on a series names its master, so a master (or an
occurrence) is answered with all of the series' instances in the window, which replace the
stored set (a deleted occurrence is silent). A resync is a full delta round over the window; a
calendarView spans at most 1,825 days, so a longer window is refused at construction. The
delta link it ends with is kept (`delta_links`) for whoever stores cursors; a 410 on a stored
one means a full round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pushsync.errors import ConfigError
from pushsync.graph.client import DeltaExpired, GraphClient
from pushsync.graph.events import is_series_master, to_reservation
from pushsync.reservation import Gone, Observation, RoomSnapshot, Snapshot, Window

MAX_VIEW = timedelta(days=1825)


class GraphCalendar:
    def __init__(
        self,
        client: GraphClient,
        *,
        past: timedelta,
        future: timedelta,
        clock: Callable[[], datetime],
    ) -> None:
        if past + future > MAX_VIEW:
            raise ConfigError("a Graph calendarView spans at most 1825 days: shorten the window")
        self._client = client
        self._past = past
        self._future = future
        self._clock = clock
        self.delta_links: dict[str, str] = {}  # mailbox -> the last full round's deltaLink

    @property
    def calls(self) -> int:
        return self._client.calls

    def window(self) -> Window:
        now = self._clock()
        return Window(now - self._past, now + self._future)

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]:
        """What the calendar says now about these events (GET each; instances for a series)."""
        observations: list[Observation] = []
        series: dict[str, dict[str, Any]] = {}
        for event_id in item_ids:
            event = await self._client.event(mailbox, event_id)
            if event is None:
                observations.append(Gone(mailbox, event_id))
            elif is_series_master(event):
                series[event["id"]] = event
            elif event.get("seriesMasterId"):
                master = await self._client.event(mailbox, event["seriesMasterId"])
                if master is not None:
                    series[master["id"]] = master
            else:
                row = to_reservation(mailbox, event)
                observations.append(
                    Snapshot(mailbox, row.uid, (row,), last_modified=row.last_modified)
                )
        for master in series.values():
            observations.append(await self._expand(mailbox, master))
        return observations

    async def observe_room(self, mailbox: str) -> RoomSnapshot:
        """Everything in the room's calendar inside the window: one full delta round."""
        window = self.window()
        delta = await self._client.calendar_view_delta(mailbox, window.start, window.end)
        self.delta_links[mailbox] = delta.delta_link
        rows = tuple(
            to_reservation(mailbox, event)
            for event in delta.events
            if "@removed" not in event and not is_series_master(event)
        )
        return RoomSnapshot(mailbox, rows, window)

    async def changes_since(self, mailbox: str) -> list[dict[str, Any]] | None:
        """The events changed since the last round, or None when a full round is needed."""
        link = self.delta_links.get(mailbox)
        if link is None:
            return None
        try:
            delta = await self._client.calendar_view_delta(mailbox, delta_link=link)
        except DeltaExpired:
            del self.delta_links[mailbox]
            return None
        self.delta_links[mailbox] = delta.delta_link
        return delta.events

    async def _expand(self, mailbox: str, master: dict[str, Any]) -> Observation:
        window = self.window()
        instances = await self._client.instances(mailbox, master["id"], window.start, window.end)
        if instances is None:
            return Gone(mailbox, master["id"])
        rows = tuple(
            to_reservation(mailbox, {**event, "seriesMasterId": master["id"]})
            for event in instances
        )
        head = to_reservation(mailbox, master)
        return Snapshot(mailbox, head.uid, rows, last_modified=head.last_modified, window=window)
