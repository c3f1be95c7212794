"""How the worker learns a room's calendar over Graph: a calendarView delta round from the
room's cursor (a burst, a resync), GET the notified events when there is no usable cursor, the
instances of a series in the window, and a full delta round to read the room whole.

https://learn.microsoft.com/graph/api/event-get
https://learn.microsoft.com/graph/api/event-list-instances
https://learn.microsoft.com/graph/api/event-delta

docs/protocol.md §7 over Graph: a notification on a series names its master, so a master (or an
occurrence) is answered with all of the series' instances in the window, which replace the
stored set (a deleted occurrence is silent). An occurrence is keyed on its master's iCalUId
(v1.0 gives each occurrence its own), so a full round or a GET of events fetches each series'
master once (`_Masters`). A full resync is a delta round over the window; a calendarView spans
at most 1,825 days, so a longer window is refused at construction. The delta link a round ends
with is the room's cursor (handed back with the read, in its `RoomSnapshot` or `Changes`, and
kept by the worker in `room.sync_state`); `observe_since` turns the changes since a cursor into
observations. A calendarView delta only ever covers the
window of its first round, so a full round asks for `CURSOR_MARGIN` more future than the sync
window, and a cursor is used only while its window still covers the current one; otherwise, and
on 410, None asks for a full round.

Changes since a cursor (`observe_since`) answer a burst of notifications with one delta round
(docs/graph.md, "A burst is one delta round"): removed ids are gone, singles are taken from the
delta as they are, and each series with a changed occurrence is expanded afresh with one
instances call over the cursor's window. The series' key, its master's iCalUId, is taken from
the reservations stored for that master (`series_uids`, given by the composition root) and the
master is fetched only for a series nothing is stored of.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pushsync.errors import ConfigError
from pushsync.graph.client import DeltaExpired, GraphClient
from pushsync.graph.events import is_series_master, is_series_member, parse_time, to_reservation
from pushsync.model.reservation import (
    Changes,
    Gone,
    Observation,
    Reservation,
    RoomSnapshot,
    Snapshot,
    Window,
)

MAX_VIEW = timedelta(days=1825)
CURSOR_MARGIN = timedelta(days=7)  # how long a full round's delta link stays usable
# (mailbox, series master ids) -> the series UID stored for each master known
SeriesUids = Callable[[str, Sequence[str]], Awaitable[Mapping[str, str]]]


async def _none_stored(mailbox: str, master_ids: Sequence[str]) -> Mapping[str, str]:
    return {}


class GraphCalendar:
    def __init__(
        self,
        client: GraphClient,
        *,
        past: timedelta,
        future: timedelta,
        clock: Callable[[], datetime],
        series_uids: SeriesUids = _none_stored,
    ) -> None:
        if past + future > MAX_VIEW:
            raise ConfigError("a Graph calendarView spans at most 1825 days: shorten the window")
        self._client = client
        self._past = past
        self._future = future
        self._clock = clock
        self._series_uids = series_uids
        self.delta_links: dict[str, str] = {}  # mailbox -> the last round's deltaLink
        self._covered: dict[str, datetime] = {}  # mailbox -> end of that link's window
        self._margin = min(CURSOR_MARGIN, MAX_VIEW - past - future)

    @property
    def calls(self) -> int:
        return self._client.calls

    def window(self) -> Window:
        now = self._clock()
        return Window(now - self._past, now + self._future)

    async def observe(self, mailbox: str, item_ids: Sequence[str]) -> list[Observation]:
        """What the calendar says now about these events (GET each; instances for a series,
        whose master is fetched once however many of its instances were named)."""
        observations: list[Observation] = []
        masters = _Masters(self._client, mailbox)
        series: set[str] = set()
        for event_id in item_ids:
            event = await self._client.event(mailbox, event_id)
            if event is None:
                observations.append(Gone(mailbox, event_id))
            elif is_series_master(event):
                masters.known(event)
                series.add(event["id"])
            elif is_series_member(event):
                series.add(event["seriesMasterId"])
            else:
                observations.append(_single(mailbox, event))
        for master_id in sorted(series):
            master = await masters.get(master_id)
            observations.append(
                Gone(mailbox, master_id) if master is None else await self._expand(mailbox, master)
            )
        return observations

    async def observe_room(self, mailbox: str, cursor: str | None = None) -> RoomSnapshot:
        """Everything in the room's calendar inside the window: one full delta round (a new
        delta, whatever `cursor` held)."""
        nominal = self.window()
        window = Window(nominal.start, nominal.end + self._margin)
        taken_at = self._clock()
        delta = await self._client.calendar_view_delta(mailbox, window.start, window.end)
        self.delta_links[mailbox] = delta.delta_link
        self._covered[mailbox] = window.end
        rows = await self._rows(mailbox, [e for e in delta.events if "@removed" not in e])
        fresh = _cursor(delta.delta_link, window.end)  # this round's, whatever ran meanwhile
        return RoomSnapshot(mailbox, rows, window, taken_at, cursor=fresh)

    async def _rows(self, mailbox: str, events: list[dict[str, Any]]) -> tuple[Reservation, ...]:
        """A round's events as rows, occurrences keyed on their master's iCalUId (one GET per
        series). A series deleted since the round was read has no master left: its
        occurrences are left out, as they are gone too."""
        masters = _Masters(self._client, mailbox)
        rows = []
        for event in events:
            if is_series_master(event):
                continue
            series_uid = None
            if is_series_member(event):
                master = await masters.get(event["seriesMasterId"])
                if master is None:
                    continue
                series_uid = master["iCalUId"]
            rows.append(to_reservation(mailbox, event, series_uid=series_uid))
        return tuple(rows)

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

    async def observe_since(self, mailbox: str, cursor: str) -> Changes | None:
        """The changes since a stored cursor as observations; None: a full round is needed."""
        try:
            stored = json.loads(cursor)
            link, covered = str(stored["delta_link"]), parse_time(stored["covers_until"])
        except (ValueError, KeyError, TypeError):
            return None
        if covered < self.window().end:  # the link's window ends before ours: it misses events
            return None
        self.delta_links[mailbox], self._covered[mailbox] = link, covered
        events = await self.changes_since(mailbox)
        if events is None:  # 410
            self._covered.pop(mailbox, None)
            return None
        # taken before the series are read: another read of the room meanwhile moves the links
        fresh = _cursor(self.delta_links[mailbox], covered)
        window = Window(self.window().start, covered)  # all the link's rounds can report
        observations = await self._changed(mailbox, events, window)
        return Changes(observations, fresh)

    async def _changed(
        self, mailbox: str, events: list[dict[str, Any]], window: Window
    ) -> list[Observation]:
        """Delta entries as observations: a removed id is gone, a single event is taken as is,
        and a series (master or any instance) is expanded afresh, since a deleted occurrence
        is silent in delta."""
        observations: list[Observation] = []
        series: set[str] = set()
        removed: set[str] = set()
        for event in events:
            if "@removed" in event:
                observations.append(Gone(mailbox, event["id"]))
                removed.add(event["id"])
            elif is_series_master(event):  # not served by calendarView delta; kept for safety
                series.add(event["id"])
            elif is_series_member(event):
                series.add(event["seriesMasterId"])
            else:
                observations.append(_single(mailbox, event))
        series -= removed  # a deleted series: its Gone covers every row of it
        stored = await self._series_uids(mailbox, sorted(series)) if series else {}
        for master_id in sorted(series):
            observations.append(await self._series(mailbox, master_id, stored, window))
        return observations

    async def _series(
        self, mailbox: str, master_id: str, stored: Mapping[str, str], window: Window
    ) -> Observation:
        """A series' instances in `window`, keyed on the stored series UID when there is one
        (one instances call), else on its master's iCalUId (the master fetched first)."""
        series_uid = stored.get(master_id)
        if series_uid is None:
            master = await self._client.event(mailbox, master_id)
            if master is None:
                return Gone(mailbox, master_id)
            return await self._expand(mailbox, master, window)
        instances = await self._client.instances(mailbox, master_id, window.start, window.end)
        if instances is None:
            return Gone(mailbox, master_id)
        # no master read, so no last-modified time to order this read by: it is applied whole
        return _series_snapshot(mailbox, master_id, series_uid, instances, None, window)

    async def _expand(
        self, mailbox: str, master: dict[str, Any], window: Window | None = None
    ) -> Observation:
        window = window or self.window()
        instances = await self._client.instances(mailbox, master["id"], window.start, window.end)
        if instances is None:
            return Gone(mailbox, master["id"])
        modified = master.get("lastModifiedDateTime")
        last_modified = parse_time(modified) if modified else None
        series_uid = str(master["iCalUId"])
        return _series_snapshot(mailbox, master["id"], series_uid, instances, last_modified, window)


def _cursor(delta_link: str, covers_until: datetime) -> str:
    """A room's cursor: a round's delta link and how far its window reaches."""
    return json.dumps({"delta_link": delta_link, "covers_until": covers_until.isoformat()})


def _series_snapshot(
    mailbox: str,
    master_id: str,
    series_uid: str,
    instances: list[dict[str, Any]],
    last_modified: datetime | None,
    window: Window,
) -> Snapshot:
    rows = tuple(
        to_reservation(mailbox, {**event, "seriesMasterId": master_id}, series_uid=series_uid)
        for event in instances
    )
    return Snapshot(mailbox, series_uid, rows, last_modified=last_modified, window=window)


class _Masters:
    """Series masters of one room, each fetched at most once per read."""

    def __init__(self, client: GraphClient, mailbox: str) -> None:
        self._client = client
        self._mailbox = mailbox
        self._found: dict[str, dict[str, Any] | None] = {}

    def known(self, master: dict[str, Any]) -> None:
        self._found[master["id"]] = master

    async def get(self, master_id: str) -> dict[str, Any] | None:
        if master_id not in self._found:
            self._found[master_id] = await self._client.event(self._mailbox, master_id)
        return self._found[master_id]


def _single(mailbox: str, event: dict[str, Any]) -> Snapshot:
    row = to_reservation(mailbox, event)
    return Snapshot(mailbox, row.uid, (row,), last_modified=row.last_modified)
