"""Which rooms a Graph-only installation keeps: room lists (or every room) read from Places,
again every `room_discovery_minutes`, since Places has no change notifications (§5a).

A room that appears is recorded (`store/room_directory.py`) and joins the roster the Graph
subscription manager subscribes each round; the worker reads it in full first (a new room
needs a resync). A room that is no longer listed is noted as missing and still kept; only when
it has been missing from every answer for `grace`, and is missing from this one too, is it let
go of: its subscription retired (the manager DELETEs it at Graph), its reservations deleted
(each a `delete` in `reservation_change`). Answers that say nothing trustworthy change nothing
and are logged: a failed call, or an empty list. Places is empty until the tenant's admin has
set it up (`Set-PlacesSettings -EnableBuildings`, docs/graph.md), and a room list is never
emptied on purpose by one edit, so an empty answer is far likelier a directory problem than a
tenant with no rooms. A room configured by hand (`rooms`, `graph_rooms`) is never let go of.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pushsync.errors import AuthenticationFailed, ConfigError, ExchangeError
from pushsync.graph.client import NotFound
from pushsync.graph.places import PERMISSION, Places
from pushsync.model.clock import utcnow
from pushsync.retry import Backoff, survive
from pushsync.store.room_directory import ALL_ROOMS, ListedRoom, RoomDirectory

log = logging.getLogger(__name__)

EMPTY_PLACES = (
    "Places listed no rooms: nothing is added or let go of. Places is empty until the tenant's "
    "admin runs Set-PlacesSettings -EnableBuildings 'Default:true' (Exchange Online "
    "PowerShell) and the rooms are set up in Places (Set-PlaceV3 / Initialize-Places; changes "
    "can take up to 24 hours); rooms hidden from the address book are never listed"
)
LET_GO = "room no longer listed in Places"
EMPTY_LIST = (
    "Places listed no rooms here: its rooms are kept as they were (Places needs "
    "Set-PlacesSettings -EnableBuildings 'Default:true'; see docs/graph.md)"
)


class Roster:
    """The rooms the Graph manager keeps subscribed, changed as discovery finds or drops
    rooms; each iteration is a snapshot."""

    def __init__(self, rooms: Iterable[str] = ()) -> None:
        self._rooms: tuple[str, ...] = tuple(sorted(set(rooms)))

    def __iter__(self) -> Iterator[str]:
        return iter(self._rooms)

    def __len__(self) -> int:
        return len(self._rooms)

    def replace(self, rooms: Iterable[str]) -> None:
        self._rooms = tuple(sorted(set(rooms)))

    def discard(self, mailbox: str) -> None:
        self._rooms = tuple(m for m in self._rooms if m.lower() != mailbox.lower())


@dataclass
class Round:
    """What one refresh found."""

    listed: int = 0
    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # newly noted as no longer listed
    let_go: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # answers that changed nothing


class RoomDiscovery:
    def __init__(
        self,
        places: Places,
        directory: RoomDirectory,
        *,
        room_lists: Iterable[str],
        all_rooms: bool,
        grace: timedelta,
        configured: Iterable[str] = (),
        protocol: str = "graph",
        roster: Roster | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._roster = roster  # a room let go of leaves it first: no subscribe round races it
        self._protocol = protocol  # of a room new to the table; the managers settle it
        self._places = places
        self._directory = directory
        self._sources = [*room_lists, *([ALL_ROOMS] if all_rooms else [])]
        self._grace = grace
        self._configured = {m.lower() for m in configured}
        self._clock = clock

    async def refresh(self, *, strict: bool = False) -> Round:
        """One look at Places: record what it lists, note what it no longer lists, let go of
        rooms missing for longer than the grace period. `strict` (at start): a 403 or an
        unknown room list is a ConfigError, raised before anything is written."""
        found = Round()
        answers = await self._ask(found, strict=strict)
        listed = {room.mailbox.lower(): room for rooms in answers.values() for room in rooms}
        if not listed:
            if answers:  # Places answered, with nothing in it
                found.problems.append(EMPTY_PLACES)
                log.warning("room discovery: " + EMPTY_PLACES, extra={"sources": _names(answers)})
            return found
        now = self._clock()
        before = {row["mailbox"].lower(): row for row in await self._directory.known()}
        found.listed = len(listed)
        found.added = sorted(
            room.mailbox
            for key, room in listed.items()
            if key not in before or before[key]["removed_at"] is not None
        )
        await self._directory.listed(listed.values(), self._protocol, now)
        trusted = {source for source, rooms in answers.items() if rooms}
        silent = set(self._sources) - trusted  # failed or empty: they say nothing this round
        for key, row in before.items():
            if key in listed or row["removed_at"] is not None or key in self._configured:
                continue
            if row["discovered_from"] in silent and ALL_ROOMS not in trusted:
                continue
            if row["missing_since"] is None:
                found.missing.append(row["mailbox"])
            elif now - _aware(row["missing_since"], now) >= self._grace:
                if self._roster is not None:
                    self._roster.discard(row["mailbox"])
                await self._directory.let_go(row["mailbox"], LET_GO, now)
                found.let_go.append(row["mailbox"])
        await self._directory.missing(found.missing, now)
        self._log(found)
        return found

    async def rooms(self) -> list[str]:
        """The discovered rooms pushsync keeps now (missing ones inside the grace included)."""
        return [
            row["mailbox"] for row in await self._directory.known() if row["removed_at"] is None
        ]

    async def _ask(self, found: Round, *, strict: bool) -> dict[str, list[ListedRoom]]:
        """Each source's answer; a source whose call failed is left out (and noted). `strict`:
        Graph refusing Places, or not knowing a list, raises ConfigError before anything is
        written (a start with a wrong setting writes nothing)."""
        answers: dict[str, list[ListedRoom]] = {}
        failed: dict[str, str] = {}
        for source in self._sources:
            try:
                answers[source] = await self._source(source)
            except ExchangeError as exc:
                failed[source] = _failure(source, exc)
                if strict and isinstance(exc, AuthenticationFailed | NotFound):
                    raise ConfigError(failed[source]) from None
        now = self._clock()
        for source, why in failed.items():
            found.problems.append(why)
            log.error("room discovery: " + why + "; nothing changed for its rooms")
            await self._directory.answered(source, 0, why, now)
        for source, rooms in answers.items():
            await self._directory.answered(source, len(rooms), None if rooms else EMPTY_LIST, now)
        return answers

    async def _source(self, source: str) -> list[ListedRoom]:
        if source == ALL_ROOMS:
            return await self._places.all_rooms()
        return await self._places.rooms_in(source)

    def _log(self, found: Round) -> None:
        if found.added or found.missing or found.let_go:
            log.info(
                "room discovery",
                extra={
                    "listed": found.listed,
                    "added": ",".join(found.added) or "-",
                    "no_longer_listed": ",".join(found.missing) or "-",
                    "let_go": ",".join(found.let_go) or "-",
                    "grace_hours": round(self._grace.total_seconds() / 3600, 3),
                },
            )


async def discover_forever(
    discovery: RoomDiscovery,
    roster: Roster,
    configured: Iterable[str],
    stop: asyncio.Event,
    interval_s: float,
    protocol_of: Callable[[str], str],
) -> None:
    """Refresh every `interval_s` until `stop`, giving the roster the Graph rooms kept now
    (`configured` ones and discovered ones whose protocol is Graph)."""
    fixed = list(configured)
    backoff = Backoff()

    async def one_round() -> None:
        await discovery.refresh()
        found = [m for m in await discovery.rooms() if protocol_of(m) == "graph"]
        roster.replace([*fixed, *found])

    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval_s)
        if not stop.is_set():
            await survive(one_round, "room discovery", backoff, stop)  # the database away


def _failure(source: str, exc: ExchangeError) -> str:
    where = "every room" if source == ALL_ROOMS else f"room list {source}"
    if isinstance(exc, AuthenticationFailed):
        return f"Graph refused to list {where} ({exc}): the app needs {PERMISSION} (application)"
    if isinstance(exc, NotFound):
        return f"{source} is not a room list Places knows ({exc})"
    return f"listing {where} failed: {type(exc).__name__}: {exc}"


def _names(answers: dict[str, list[ListedRoom]]) -> str:
    return ",".join(answers)


def _aware(moment: datetime, like: datetime) -> datetime:
    """SQLite hands back naive UTC timestamps."""
    return moment if moment.tzinfo or like.tzinfo is None else moment.replace(tzinfo=like.tzinfo)
